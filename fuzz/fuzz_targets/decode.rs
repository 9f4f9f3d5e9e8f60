//! Output decoders and NMS on any shape and any values: errors, never panics.
#![no_main]

use gstdefect::analysis::decode::{Decoder, OutputLayout, class_count_of, infer_layout};
use gstdefect::analysis::nms;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 6 {
        return;
    }
    // Header: rank (1-4), dims (each 0-255, with -1 for 0xff), forced layout, threshold.
    let rank = 1 + (data[0] % 4) as usize;
    let dims: Vec<i64> = data[1..1 + rank.min(data.len() - 1)].iter().map(|&d| if d == 0xff { -1 } else { d as i64 }).collect();
    let rest = &data[(1 + rank).min(data.len())..];
    let (forced, threshold, payload) = match rest {
        [f, t, payload @ ..] => (*f, *t as f32 / 255.0, payload),
        _ => return,
    };
    let values: Vec<f32> = payload.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    let layout = match forced % 4 {
        0 => infer_layout(&dims, None, forced & 0x80 != 0).ok(),
        1 => Some(OutputLayout::YoloV8),
        2 => Some(OutputLayout::YoloV5),
        _ => Some(OutputLayout::EndToEnd),
    };
    let Some(layout) = layout else { return };
    let _ = class_count_of(layout, &dims);
    let mut out = Vec::new();
    if Decoder::new().decode(layout, &dims, &values, threshold, &mut out).is_ok() {
        assert!(out.iter().all(|d| d.confidence.is_finite() && d.bbox.is_finite()));
        nms::nms_classwise(&mut out, threshold, 300);
        assert!(out.len() <= 300);
    }
});
