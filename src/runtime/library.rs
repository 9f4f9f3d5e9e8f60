//! Finding and loading libonnxruntime, once per process.
//!
//! Search order: the element's `ort-library` property, then `ORT_DYLIB_PATH`, then the copy
//! the project's setup links at `<source>/.ort/libonnxruntime.so` (baked in at build time,
//! overridable with `DEFECT_ORT_LIBRARY` when building), then the dynamic loader's own
//! search for `libonnxruntime.so.1` / `libonnxruntime.so`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ort::environment::Environment;

use super::RuntimeError;

/// The environment, created on first use with the library it was created from.
static ENVIRONMENT: Mutex<Option<(Environment, PathBuf)>> = Mutex::new(None);

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
