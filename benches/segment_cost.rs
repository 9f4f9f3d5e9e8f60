// SPDX-License-Identifier: MIT OR Apache-2.0
//! `cargo bench --bench segment_cost`: what decoding the masks of a segmentation model costs
//! per 1080p frame, next to the model's own inference time measured in the same run.
//!
//! 1. the model's run on its input (`Detector::run_only`: ONNX Runtime only, no decoding);
//! 2. decoding 20 masks at 1920x1080 ([`MaskDecoder`]) from 32 prototypes of 160x160 (a 640
//!    input's), with boxes of 120 px and of 320 px a side: the logits on the prototype cells
//!    under each box, the bilinear resize and the threshold of the box's frame pixels;
//! 3. for scale, the frame-sized way (every mask resized to the whole frame, then cropped).
//!
//! `BENCH_MODEL` (default `models/magnetic-tile-seg.onnx` where it exists, else the bundled
//! detector `models/surface-defects.onnx`, whose run stands for a same-size model's),
//! `BENCH_THREADS` (default 2), `BENCH_SECONDS` (default 3 per measurement).

mod common;
use common::{env_or, time_per_call};

use gstdefect::analysis::BBox;
use gstdefect::analysis::letterbox::LetterboxGeometry;
use gstdefect::analysis::segment::{MaskDecoder, Protos};
use gstdefect::runtime::{Detector, DetectorOptions, Provider};

/// 20 boxes of `side` px spread over a 1080p frame.
fn boxes(side: f32) -> Vec<BBox> {
    (0..20)
        .map(|i| {
            let (col, row) = ((i % 5) as f32, (i / 5) as f32);
            let (x, y) = (40.0 + col * 370.0, 30.0 + row * 260.0);
            BBox {
                x1: x,
                y1: y,
                x2: (x + side).min(1920.0),
                y2: (y + side).min(1080.0),
            }
        })
        .collect()
}

fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let seconds: f64 = env_or("BENCH_SECONDS", if smoke { 0.02 } else { 3.0 });
    let threads: usize = env_or("BENCH_THREADS", 2);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = std::env::var("BENCH_MODEL").unwrap_or_else(|_| {
        let seg = root.join("models/magnetic-tile-seg.onnx");
        if seg.exists() {
            seg
        } else {
            root.join("models/surface-defects.onnx")
        }
        .display()
        .to_string()
    });
    if smoke {
        println!(
            "smoke run (no --bench): figures are meaningless; measure with `cargo bench --bench segment_cost`"
        );
    }
    println!(
        "CPU: {}",
        gstdefect::runtime::cpu::CpuDescription::detect().summary()
    );
    let options = DetectorOptions {
        model: model.clone().into(),
        provider: Provider::Cpu,
        threads,
        spin: Some(false),
        ..Default::default()
    };
    let (mut detector, _) = Detector::load(&options).expect("load the model");
    let (ih, iw) = (detector.info().height, detector.info().width);
    let inference = time_per_call(seconds, || detector.run_only().expect("run"));
    println!(
        "model {model} input {ih}x{iw}, {threads} ONNX Runtime threads: inference {:.2} ms",
        inference.as_secs_f64() * 1e3
    );

    // 32 prototypes of a 640x640 input, textured; coefficients that set about half a box.
    let (nm, ph, pw) = (32usize, 160usize, 160usize);
    let data: Vec<f32> = (0..nm * ph * pw)
        .map(|i| ((i as u32).wrapping_mul(2654435761) >> 16) as f32 / 65536.0 - 0.5)
        .collect();
    let protos = Protos::new(&[1, nm as i64, ph as i64, pw as i64], &data, nm).unwrap();
    let coefficients: Vec<f32> = (0..nm)
        .map(|k| if k % 2 == 0 { 1.0 } else { -0.5 })
        .collect();
    let geometry = LetterboxGeometry::new(1920, 1080, 640, 640);
    let mut decoder = MaskDecoder::new();
    for side in [120.0f32, 320.0] {
        let boxes = boxes(side);
        let mut set = 0u64;
        let cost = time_per_call(seconds, || {
            set = 0;
            for b in &boxes {
                set += decoder.decode(&protos, &coefficients, b, &geometry).area();
            }
        });
        println!(
            "20 masks of {side} px boxes at 1920x1080: {:.3} ms per frame = {:.1} % of inference ({set} pixels set)",
            cost.as_secs_f64() * 1e3,
            100.0 * cost.as_secs_f64() / inference.as_secs_f64()
        );
    }
    // The frame-sized way, for scale: one box covering the frame is what each mask would cost.
    let whole = BBox {
        x1: 0.0,
        y1: 0.0,
        x2: 1920.0,
        y2: 1080.0,
    };
    let frame_sized = time_per_call(seconds, || {
        for _ in 0..20 {
            std::hint::black_box(decoder.decode(&protos, &coefficients, &whole, &geometry));
        }
    });
    println!(
        "for scale, 20 frame-sized masks: {:.2} ms per frame = {:.1} % of inference",
        frame_sized.as_secs_f64() * 1e3,
        100.0 * frame_sized.as_secs_f64() / inference.as_secs_f64()
    );
}
