//! Finding and loading libonnxruntime, once per process.
//!
//! Search order: the element's `ort-library` property, then `ORT_DYLIB_PATH`, then the copy
//! the project's setup links at `<source>/.ort/libonnxruntime.so` (baked in at build time,
//! overridable with `DEFECT_ORT_LIBRARY` when building), then the dynamic loader's own
//! search for `libonnxruntime.so.1` / `libonnxruntime.so`.
//!
//! The OpenVINO execution provider needs an OpenVINO-enabled build (the onnxruntime-openvino
//! wheel, which lags the plain one): for a session asking for it, [`openvino_library`] comes
//! before `ORT_DYLIB_PATH` and the default. Whichever session loads the library first decides
//! for the whole process.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ort::environment::Environment;

use super::RuntimeError;

/// The environment, created on first use with the library it was created from.
static ENVIRONMENT: Mutex<Option<(Environment, PathBuf)>> = Mutex::new(None);

/// The environment variable naming the OpenVINO-enabled libonnxruntime.
pub const OPENVINO_LIBRARY_ENV: &str = "ORT_OPENVINO_DYLIB_PATH";

/// The OpenVINO-enabled libonnxruntime a session on the OpenVINO provider loads when the
/// `ort-library` property names none: `ORT_OPENVINO_DYLIB_PATH`, else the copy
/// scripts/setup.sh links at `<source>/.ort-openvino/libonnxruntime.so` (baked in at build time,
/// overridable with `DEFECT_ORT_OPENVINO_LIBRARY` when building) where it exists and
/// `ORT_DYLIB_PATH` is not set. None: the usual search.
pub fn openvino_library() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(OPENVINO_LIBRARY_ENV).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    if std::env::var_os("ORT_DYLIB_PATH").is_some_and(|p| !p.is_empty()) {
        return None;
    }
    Some(PathBuf::from(env!("DEFECT_ORT_OPENVINO_LIBRARY"))).filter(|p| p.is_file())
}

/// Candidates in search order, the explicit one first.
pub fn default_library_candidates(explicit: Option<&Path>) -> Vec<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(path) = explicit {
        candidates.push(path.to_path_buf());
        return candidates;
    }
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        candidates.push(PathBuf::from(path));
        return candidates;
    }
    candidates.push(PathBuf::from(env!("DEFECT_ORT_LIBRARY")));
    candidates.push(PathBuf::from("libonnxruntime.so.1"));
    candidates.push(PathBuf::from("libonnxruntime.so"));
    candidates
}

/// The first candidate that exists as a file, or the last (a bare name left to the loader).
pub fn resolve_library(explicit: Option<&Path>) -> PathBuf {
    let candidates = default_library_candidates(explicit);
    if explicit.is_some() || std::env::var_os("ORT_DYLIB_PATH").is_some_and(|p| !p.is_empty()) {
        return candidates[0].clone();
    }
    candidates
        .iter()
        .find(|p| p.is_absolute() && p.is_file())
        .cloned()
        .unwrap_or_else(|| candidates[1].clone())
}

/// The library the process loaded, if it has loaded one.
pub fn loaded_library() -> Option<PathBuf> {
    ENVIRONMENT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .as_ref()
        .map(|(_, path)| path.clone())
}

/// The process-wide environment, loading the library on first call. A later call naming a
/// different library gets the loaded one and a warning: ONNX Runtime can be loaded only once.
pub fn environment(explicit: Option<&Path>) -> Result<(Environment, Option<String>), RuntimeError> {
    let wanted = resolve_library(explicit);
    let mut slot = ENVIRONMENT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((env, loaded)) = slot.as_ref() {
        let warning = (explicit.is_some() && *loaded != wanted).then(|| {
            format!(
                "ONNX Runtime is already loaded from {}; {} is ignored (one library per process)",
                loaded.display(),
                wanted.display()
            )
        });
        return Ok((env.clone(), warning));
    }
    if wanted.is_absolute() && !wanted.exists() {
        return Err(RuntimeError::Library {
            path: wanted,
            reason: "no such file".into(),
        });
    }
    let builder = ort::init_from(&wanted).map_err(|e| RuntimeError::Library {
        path: wanted.clone(),
        reason: e.to_string(),
    })?;
    let env = builder
        .with_name("gst-plugin-defect")
        .with_telemetry(false)
        .build()
        .map_err(|e| RuntimeError::Environment(e.to_string()))?;
    *slot = Some((env.clone(), wanted));
    Ok((env, None))
}
