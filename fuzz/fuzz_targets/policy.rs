//! The policy parser on any text, and evaluation of what it accepts: errors, never panics.
#![no_main]

use gstdefect::analysis::{BBox, Detection};
use gstdefect::policy::parse_policy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match parse_policy(&text, "fuzz.toml") {
        Ok(policy) => {
            let detections: Vec<Detection> = (0..4)
                .map(|i| Detection {
                    class_id: i,
                    confidence: i as f32 / 4.0,
                    bbox: BBox { x1: 10.0 * i as f32, y1: 5.0, x2: 10.0 * i as f32 + 30.0, y2: 40.0 },
                })
                .collect();
            let _ = policy.evaluate(&detections, |id| format!("class{id}"));
            // What it writes, it reads back.
            assert!(parse_policy(&policy.to_toml(), "again.toml").is_ok(), "{}", policy.to_toml());
        }
        Err(e) => assert!(e.line <= text.lines().count() + 1, "{e}"),
    }
});
