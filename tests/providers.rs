// SPDX-License-Identifier: MIT OR Apache-2.0
//! Execution-provider selection with the plain ONNX Runtime (no OpenVINO in it): asking for
//! OpenVINO falls back to CPU with a warning naming what is missing; the `spin`,
//! `openvino-device` and `precision` properties hold what is set and reach the session.
//! Its own test binary: the process loads the plain library explicitly, before anything else.

mod common;

use common::*;
use gst::prelude::*;
use gstdefect::meta::prelude::*;
use gstdefect::runtime::{Detector, DetectorOptions, OpenVinoDevice, Precision, Provider};

/// The plain library scripts/setup.sh links (the one the plugin finds by default).
fn plain_library() -> std::path::PathBuf {
    repo_path(".ort/libonnxruntime.so")
}

#[test]
fn openvino_without_the_provider_falls_back_to_cpu_with_a_warning() {
    init();
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=2 ! video/x-raw,format=RGB,width=320,height=240 ! \
         defectdetect name=d model={} ort-library={} execution-provider=openvino precision=f32 ! fakesink",
        test_model("squares_v8"),
        plain_library().display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let mut warnings = Vec::new();
    for message in bus.iter_timed(gst::ClockTime::from_seconds(60)) {
        match message.view() {
            gst::MessageView::Warning(w) => warnings.push(w.error().to_string()),
            gst::MessageView::Error(e) => panic!("error: {}", e.error()),
            gst::MessageView::Eos(_) => break,
            _ => {}
        }
    }
    let info = gstdefect::meta::ModelInfoMeta::of(&pipeline.by_name("d").unwrap())
        .expect("a model is loaded")
        .expect("model-info as the contract says");
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(
        warnings.iter().any(|w| w.contains(
            "the OpenVINO execution provider is not available in the loaded ONNX Runtime"
        ) && w.contains("falling back to CPU")
            && w.contains("ORT_OPENVINO_DYLIB_PATH")),
        "{warnings:?}"
    );
    assert_eq!(info.provider, "cpu", "{info:?}");
}

#[test]
fn provider_properties_hold_what_is_set() {
    init();
    let element = gst::ElementFactory::make("defectdetect").build().unwrap();
    assert!(!element.property::<bool>("spin"), "spin is off by default");
    let nick = |name: &str| {
        let value = element.property_value(name);
        gst::glib::EnumValue::from_value(&value)
            .unwrap()
            .1
            .nick()
            .to_string()
    };
    assert_eq!(nick("precision"), "auto");
    assert_eq!(nick("openvino-device"), "CPU");
    assert_eq!(nick("execution-provider"), "auto");

    let pipeline = gst::parse::launch(
        "fakesrc ! defectdetect name=d spin=true precision=bf16 openvino-device=GPU \
         execution-provider=openvino ! fakesink",
    )
    .unwrap()
    .downcast::<gst::Bin>()
    .unwrap();
    let d = pipeline.by_name("d").unwrap();
    let nick = |name: &str| {
        let value = d.property_value(name);
        gst::glib::EnumValue::from_value(&value)
            .unwrap()
            .1
            .nick()
            .to_string()
    };
    assert!(d.property::<bool>("spin"));
    assert_eq!(nick("precision"), "bf16");
    assert_eq!(nick("openvino-device"), "GPU");
    assert_eq!(nick("execution-provider"), "openvino");
    for precision in ["auto", "f32", "bf16", "f16"] {
        d.set_property_from_str("precision", precision);
        assert_eq!(nick("precision"), precision);
    }
    for device in ["CPU", "GPU", "NPU", "AUTO"] {
        d.set_property_from_str("openvino-device", device);
        assert_eq!(nick("openvino-device"), device);
    }
}

#[test]
fn spin_and_openvino_options_key_the_shared_session() {
    init();
    let options = DetectorOptions {
        model: test_model("squares_v8").into(),
        provider: Provider::Cpu,
        threads: 1,
        ort_library: Some(plain_library()),
        spin: Some(false),
        ..Default::default()
    };
    let (a, _) = Detector::load(&options).unwrap();
    let (b, _) = Detector::load(&options).unwrap();
    assert_eq!(b.session_users(), 2, "same options: one session");
    let (c, _) = Detector::load(&DetectorOptions {
        spin: Some(true),
        ..options.clone()
    })
    .unwrap();
    assert_eq!(c.session_users(), 1, "spinning: a session of its own");
    let (d, warnings) = Detector::load(&DetectorOptions {
        provider: Provider::OpenVino,
        openvino_device: OpenVinoDevice::Cpu,
        precision: Precision::F32,
        ..options.clone()
    })
    .unwrap();
    assert_eq!(
        d.session_users(),
        1,
        "another provider: a session of its own"
    );
    assert_eq!(d.info().provider, "cpu", "{warnings:?}");
    drop((a, b, c));
}
