//! The MQTT packet decoder (`gstdefect::mqtt::codec::decode`) on any bytes a broker could
//! send: packets one after another, as the reader does; errors, never panics, never a
//! length past the input, and every proper prefix of a decoded packet is "incomplete".
//! Also: any text escaped as a topic level is a topic name brokers accept.
#![no_main]

use gstdefect::mqtt::codec::{decode, validate_topic_name};
use gstdefect::mqtt::topic;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the size limit, as the reader's MAX_INCOMING_PACKET does.
    let Some((&limit, stream)) = data.split_first() else {
        return;
    };
    let max = 2 + limit as usize * 17;
    let mut rest = stream;
    while let Ok(Some((_, used))) = decode(rest, max) {
        assert!(used >= 2 && used <= rest.len() && used <= max);
        for cut in 0..used {
            assert_eq!(decode(&rest[..cut], max), Ok(None));
        }
        rest = &rest[used..];
    }
    let text = String::from_utf8_lossy(stream);
    let (level, _) = topic::level(&text);
    assert!(validate_topic_name(&level).is_ok() || level.is_empty());
    assert!(level.len() <= topic::MAX_LEVEL_BYTES);
});
