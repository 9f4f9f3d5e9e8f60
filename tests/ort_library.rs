// SPDX-License-Identifier: MIT OR Apache-2.0
//! An ONNX Runtime library that cannot be found, is not a library, or is too old is an
//! error at NULL→READY naming the path and the reason. Its own test binary, because a
//! process can load ONNX Runtime only once and these tests must run before any load.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use gst::prelude::*;

fn ready_error(library: &Path) -> String {
    init();
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc ! defectdetect model={} ort-library={} ! fakesink",
        test_model("squares_v8"),
        library.display()
    ))
    .unwrap();
    assert!(pipeline.set_state(gst::State::Ready).is_err());
    let message = pipeline
        .bus()
        .unwrap()
        .timed_pop_filtered(gst::ClockTime::from_seconds(5), &[gst::MessageType::Error])
        .expect("an error");
    pipeline.set_state(gst::State::Null).unwrap();
    let gst::MessageView::Error(e) = message.view() else {
        unreachable!()
    };
    e.error().to_string()
}

/// A shared object that exports `OrtGetApiBase` but reports ONNX Runtime 1.10.0.
fn old_runtime_stub(dir: &Path) -> Option<std::path::PathBuf> {
    let source = dir.join("old_ort.c");
    std::fs::write(
        &source,
        r#"
        typedef struct { const void* (*GetApi)(unsigned); const char* (*GetVersionString)(void); } OrtApiBase;
        static const void* get_api(unsigned v) { (void)v; return 0; }
        static const char* version(void) { return "1.10.0"; }
        static const OrtApiBase base = { get_api, version };
        const OrtApiBase* OrtGetApiBase(void) { return &base; }
        "#,
    )
    .ok()?;
    let library = dir.join("libonnxruntime_old.so");
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&library)
        .arg(&source)
        .status()
        .ok()?;
    status.success().then_some(library)
}

#[test]
fn unusable_onnx_runtime_libraries_are_reported() {
    let dir = std::env::temp_dir().join(format!("defect-ortlib-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let missing = dir.join("libonnxruntime_missing.so");
    let message = ready_error(&missing);
    assert!(
        message.contains("cannot load the ONNX Runtime library")
            && message.contains("no such file"),
        "{message}"
    );

    let not_a_library = dir.join("not_a_library.so");
    std::fs::write(&not_a_library, "text").unwrap();
    let message = ready_error(&not_a_library);
    assert!(message.contains("not_a_library.so"), "{message}");

    match old_runtime_stub(&dir) {
        Some(old) => {
            let message = ready_error(&old);
            assert!(
                message.contains("1.10.0") && message.contains("not compatible"),
                "{message}"
            );
        }
        None => eprintln!("no C compiler: the too-old-library case was not checked"),
    }
}
