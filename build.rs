use std::path::Path;

fn main() {
    gst_plugin_version_helper::info();

    // Where the plugin looks for libonnxruntime when neither the `ort-library` property nor
    // ORT_DYLIB_PATH names one: the link scripts/setup.sh makes, unless the build says otherwise.
    println!("cargo:rerun-if-env-changed=DEFECT_ORT_LIBRARY");
    let default = std::env::var("DEFECT_ORT_LIBRARY").unwrap_or_else(|_| {
        let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
        Path::new(&manifest)
            .join(".ort/libonnxruntime.so")
            .display()
            .to_string()
    });
    println!("cargo:rustc-env=DEFECT_ORT_LIBRARY={default}");

    // The OpenVINO-enabled libonnxruntime (the onnxruntime-openvino wheel) for
    // `execution-provider=openvino`: the link scripts/setup.sh makes, unless the build says otherwise.
    println!("cargo:rerun-if-env-changed=DEFECT_ORT_OPENVINO_LIBRARY");
    let openvino = std::env::var("DEFECT_ORT_OPENVINO_LIBRARY").unwrap_or_else(|_| {
        let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
        Path::new(&manifest)
            .join(".ort-openvino/libonnxruntime.so")
            .display()
            .to_string()
    });
    println!("cargo:rustc-env=DEFECT_ORT_OPENVINO_LIBRARY={openvino}");
}
