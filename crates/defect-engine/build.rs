use std::path::Path;

/// The workspace root (this crate is `crates/defect-engine` in it): `.ort` and `.ort-openvino`
/// are there.
fn workspace_root() -> std::path::PathBuf {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = Path::new(&manifest).parent().and_then(Path::parent);
    root.expect("crates/defect-engine has a workspace root")
        .to_path_buf()
}

fn main() {
    // Where the runtime looks for libonnxruntime when neither the `ort-library` property nor
    // ORT_DYLIB_PATH names one: the link scripts/setup.sh makes, unless the build says otherwise.
    println!("cargo:rerun-if-env-changed=DEFECT_ORT_LIBRARY");
    let default = std::env::var("DEFECT_ORT_LIBRARY").unwrap_or_else(|_| {
        workspace_root()
            .join(".ort/libonnxruntime.so")
            .display()
            .to_string()
    });
    println!("cargo:rustc-env=DEFECT_ORT_LIBRARY={default}");

    // The OpenVINO-enabled libonnxruntime (the onnxruntime-openvino wheel) for
    // `execution-provider=openvino`: the link scripts/setup.sh makes, unless the build says otherwise.
    println!("cargo:rerun-if-env-changed=DEFECT_ORT_OPENVINO_LIBRARY");
    let openvino = std::env::var("DEFECT_ORT_OPENVINO_LIBRARY").unwrap_or_else(|_| {
        workspace_root()
            .join(".ort-openvino/libonnxruntime.so")
            .display()
            .to_string()
    });
    println!("cargo:rustc-env=DEFECT_ORT_OPENVINO_LIBRARY={openvino}");
}
