// SPDX-License-Identifier: MIT OR Apache-2.0
//! `defectdetect` names the risk of a quantised model whose 8-bit kernels saturate on the CPU:
//! a model with full-range int8 weights (models/test/squares_v8_int8_full.onnx) on an x86 CPU
//! without VNNI gets a GStreamer warning naming the CPU flags and the `int8-risk` field of
//! `model-info`; the same model with 7-bit weights, a CPU with VNNI, or a float model do not.
//!
//! The CPU is forced through `GST_DEFECT_CPU_FLAGS` (gstdefect::runtime::cpu::CPU_FLAGS_ENV),
//! so the test means the same on every machine. One test function: the variable is
//! process-wide, and this file holds no other test that could read it meanwhile.

mod common;

use common::*;
use gst::prelude::*;
use gstdefect::meta::ModelInfoMeta;
use gstdefect::meta::prelude::*;
use gstdefect::runtime::cpu::CPU_FLAGS_ENV;

const AVX2_ONLY: &str = "avx avx2 fma sse4_2";
const AVX512_VNNI: &str = "avx2 fma avx512f avx512bw avx512dq avx512vl avx512_vnni";

/// Loads `model` (NULL to READY) on a CPU with `flags`: the warnings posted and model-info.
fn load(model: &str, flags: &str) -> (Vec<String>, ModelInfoMeta) {
    // SAFETY: the only test of this binary; GStreamer's threads do not write the environment.
    unsafe { std::env::set_var(CPU_FLAGS_ENV, flags) };
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=1 ! defectdetect name=d model={} ! fakesink",
        test_model(model)
    ))
    .unwrap();
    pipeline.set_state(gst::State::Ready).unwrap();
    let bus = pipeline.bus().unwrap();
    // The warnings of the load, posted while the state changes (waits 200 ms for more).
    let mut warnings = Vec::new();
    while let Some(message) = bus.timed_pop_filtered(
        gst::ClockTime::from_mseconds(200),
        &[gst::MessageType::Warning],
    ) {
        if let gst::MessageView::Warning(w) = message.view() {
            warnings.push(w.error().to_string());
        }
    }
    let detect = pipeline
        .downcast_ref::<gst::Bin>()
        .unwrap()
        .by_name("d")
        .unwrap();
    let info = ModelInfoMeta::of(&detect)
        .expect("a model is loaded")
        .expect("model-info as the contract says");
    pipeline.set_state(gst::State::Null).unwrap();
    (warnings, info)
}

#[test]
fn a_full_range_int8_model_on_a_cpu_without_vnni_is_named_a_risk() {
    init();
    let (warnings, info) = load("squares_v8_int8_full", AVX2_ONLY);
    assert_eq!(info.provider, "cpu");
    let risk = info.int8_risk.expect("model-info names the risk");
    for part in [
        "squares_v8_int8_full.onnx",
        "largest |w| 127",
        "[avx2 fma]",
        "AVX2 (vpmaddubsw",
        "reduce_range",
    ] {
        assert!(risk.contains(part), "{risk:?} lacks {part:?}");
    }
    assert!(
        warnings.iter().any(|w| w == &risk),
        "a warning says what model-info says: {warnings:?}"
    );

    for (model, flags, why) in [
        ("squares_v8_int8_7bit", AVX2_ONLY, "7-bit weights"),
        ("squares_v8_int8_full", AVX512_VNNI, "a CPU with VNNI"),
        ("squares_v8", AVX2_ONLY, "a float model"),
    ] {
        let (warnings, info) = load(model, flags);
        assert_eq!(info.int8_risk, None, "{why}: {model} on {flags}");
        assert!(
            !warnings.iter().any(|w| w.contains("int8")),
            "{why}: {warnings:?}"
        );
    }
    // SAFETY: as above.
    unsafe { std::env::remove_var(CPU_FLAGS_ENV) };
}
