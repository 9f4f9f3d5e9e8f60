//! Model-metadata parsing (`names`, `imgsz`, label files) on any text: never panics.
#![no_main]

use gstdefect::analysis::model_meta::{parse_bool, parse_image_size, parse_labels, parse_names};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(names) = parse_names(&text) {
        assert!(names.len() <= 100_000);
    }
    if let Ok((h, w)) = parse_image_size(&text) {
        assert!(h > 0 && w > 0);
    }
    let _ = parse_labels(&text);
    let _ = parse_bool(&text);
});
