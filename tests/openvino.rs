// SPDX-License-Identifier: MIT OR Apache-2.0
//! The OpenVINO execution provider through the OpenVINO-enabled ONNX Runtime that
//! scripts/setup.sh installs (`.ort-openvino/`, the onnxruntime-openvino wheel): the f32 path
//! gives the CPU path's output within 1e-4 (scores absolute, boxes relative), the precision
//! hint reaches OpenVINO, and `defectdetect` runs on it. Its own test binary: this process loads
//! that library, once. `SKIP_OPENVINO=1` (as for scripts/setup.sh) skips it where the
//! library is deliberately not installed; otherwise a missing library fails.

mod common;

use std::path::PathBuf;

use common::*;
use gst::prelude::*;
use gstdefect::meta::prelude::*;
use gstdefect::runtime::{Detector, DetectorOptions, OpenVinoDevice, Precision, Provider};

/// The library, or None when SKIP_OPENVINO=1 says it is not installed.
fn openvino_library() -> Option<PathBuf> {
    let path = std::env::var_os("ORT_OPENVINO_DYLIB_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_path(".ort-openvino/libonnxruntime.so"));
    if std::env::var("SKIP_OPENVINO").is_ok_and(|v| v == "1") {
        eprintln!("SKIP_OPENVINO=1: the OpenVINO tests are skipped");
        return None;
    }
    assert!(
        path.is_file(),
        "{} is missing: run scripts/setup.sh --tests (or set SKIP_OPENVINO=1)",
        path.display()
    );
    Some(path)
}

/// Frame 30 of the bundled colour video as the model's [3, 384, 640] input (RGB / 255).
fn real_input() -> Vec<f32> {
    init();
    let pipeline = gst::parse::launch(&format!(
        "filesrc location={} ! qtdemux ! avdec_h264 ! videoconvert ! videoscale ! \
         video/x-raw,format=RGB,width=640,height=384 ! appsink name=sink sync=false",
        repo_path("tests/data/conveyor_color.mp4").display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut sample = None;
    for _ in 0..=30 {
        sample = sink.try_pull_sample(gst::ClockTime::from_seconds(30));
    }
    pipeline.set_state(gst::State::Null).unwrap();
    let sample = sample.expect("30 frames");
    let caps = sample.caps().unwrap();
    let info = gst_video::VideoInfo::from_caps(caps).unwrap();
    let buffer = sample.buffer().unwrap().map_readable().unwrap();
    let (w, h, stride) = (640, 384, info.stride()[0] as usize);
    let mut input = vec![0f32; 3 * w * h];
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                input[c * w * h + y * w + x] = buffer[y * stride + x * 3 + c] as f32 / 255.0;
            }
        }
    }
    input
}

fn output(options: &DetectorOptions, input: &[f32]) -> (Vec<i64>, Vec<f32>, &'static str) {
    let (mut detector, warnings) = Detector::load(options).unwrap();
    detector.input_mut().copy_from_slice(input);
    let (shape, values) = detector.output().unwrap();
    let provider = detector.info().provider;
    assert!(
        warnings.is_empty() || provider != "cpu" || options.provider == Provider::Cpu,
        "{warnings:?}"
    );
    (shape, values, provider)
}

/// The largest difference of two outputs [1, 4 + nc, N]: boxes relative to their size (at
/// least 1 pixel), scores absolute.
fn largest_difference(shape: &[i64], a: &[f32], b: &[f32]) -> (f32, f32) {
    let anchors = shape[2] as usize;
    let (mut boxes, mut scores) = (0f32, 0f32);
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let d = (x - y).abs();
        if i / anchors < 4 {
            boxes = boxes.max(d / x.abs().max(1.0));
        } else {
            scores = scores.max(d);
        }
    }
    (boxes, scores)
}

#[test]
fn openvino_f32_matches_the_cpu_path_and_the_precision_hint_reaches_openvino() {
    let Some(library) = openvino_library() else {
        return;
    };
    let input = real_input();
    let cpu = DetectorOptions {
        model: repo_path("models/surface-defects.onnx"),
        provider: Provider::Cpu,
        threads: 2,
        ort_library: Some(library.clone()),
        ..Default::default()
    };
    let openvino = DetectorOptions {
        provider: Provider::OpenVino,
        openvino_device: OpenVinoDevice::Cpu,
        precision: Precision::F32,
        ..cpu.clone()
    };
    let (shape, reference, provider) = output(&cpu, &input);
    assert_eq!(provider, "cpu");
    let (ov_shape, f32_values, provider) = output(&openvino, &input);
    assert_eq!(provider, "openvino/f32");
    assert_eq!(ov_shape, shape);
    let (boxes, scores) = largest_difference(&shape, &reference, &f32_values);
    println!("OpenVINO f32 vs CPU: boxes {boxes:.2e} (relative), scores {scores:.2e}");
    assert!(
        boxes <= 1e-4 && scores <= 1e-4,
        "boxes {boxes:e}, scores {scores:e}"
    );
    assert!(
        reference[4 * shape[2] as usize..].iter().any(|&s| s > 0.25),
        "the frame has detections, so the comparison means something"
    );

    // bf16: the hint reaches OpenVINO, whose CPU plugin computes bf16 natively or, on AVX-512
    // without it, emulates it; the output then differs from f32, a little.
    let (_, bf16_values, provider) = output(
        &DetectorOptions {
            precision: Precision::Bf16,
            ..openvino.clone()
        },
        &input,
    );
    assert_eq!(provider, "openvino/bf16");
    let (boxes, scores) = largest_difference(&shape, &reference, &bf16_values);
    println!("OpenVINO bf16 vs CPU: boxes {boxes:.2e} (relative), scores {scores:.2e}");
    if std::arch::is_x86_feature_detected!("avx512bw") {
        assert!(
            boxes > 1e-4 || scores > 1e-4,
            "bf16 computes exactly as f32: the hint did not reach OpenVINO"
        );
    }
    assert!(scores < 0.2, "bf16 scores within 0.2 ({scores})");
}

#[test]
fn defectdetect_runs_on_openvino() {
    let Some(library) = openvino_library() else {
        return;
    };
    init();
    let pipeline = gst::parse::launch(&format!(
        "filesrc location={} ! qtdemux ! avdec_h264 ! videoconvert ! \
         defectdetect name=d model={} ort-library={} execution-provider=openvino openvino-device=CPU \
         precision=f32 threads=2 ! appsink name=sink sync=false",
        repo_path("tests/data/conveyor_color.mp4").display(),
        repo_path("models/surface-defects.onnx").display(),
        library.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut boxes = 0;
    for _ in 0..40 {
        let sample = sink
            .try_pull_sample(gst::ClockTime::from_seconds(60))
            .expect("a frame");
        boxes += rois(sample.buffer().unwrap()).len();
    }
    let info = gstdefect::meta::ModelInfoMeta::of(&pipeline.by_name("d").unwrap());
    let warnings: Vec<String> = pipeline
        .bus()
        .unwrap()
        .iter()
        .filter_map(|m| match m.view() {
            gst::MessageView::Warning(w) => Some(w.error().to_string()),
            _ => None,
        })
        .collect();
    pipeline.set_state(gst::State::Null).unwrap();
    let info = info
        .expect("a model is loaded")
        .expect("model-info as the contract says");
    assert!(info.provider == "openvino/f32", "{info:?} {warnings:?}");
    assert!(boxes > 0, "detections on 40 frames of the video");
}

#[test]
fn a_device_openvino_lacks_falls_back_to_cpu_with_a_warning() {
    let Some(library) = openvino_library() else {
        return;
    };
    if std::path::Path::new("/dev/accel").exists() {
        eprintln!("this machine may have an NPU (/dev/accel): the fallback is not tested here");
        return;
    }
    init();
    let (detector, warnings) = Detector::load(&DetectorOptions {
        model: repo_path("models/surface-defects.onnx"),
        provider: Provider::OpenVino,
        openvino_device: OpenVinoDevice::Npu,
        precision: Precision::F32,
        threads: 2,
        ort_library: Some(library),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(detector.info().provider, "cpu");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("openvino/f32 execution provider failed")
                && w.contains("falling back to CPU")),
        "{warnings:?}"
    );
}
