//! ONNX Runtime behind a small API: loading the shared library once per process,
//! building a session on the requested execution provider (falling back to CPU),
//! introspecting a YOLO-style model and running it on a ready input tensor.
//!
//! No GStreamer here: the elements turn [`RuntimeError`]s into element errors and
//! the returned warnings into element warnings.

mod library;
mod model;

pub use library::{default_library_candidates, environment, resolve_library};
pub use model::{
    DEFAULT_MAX_INPUT_PIXELS, Detector, DetectorOptions, Interrupter, MAX_LABELS_BYTES, ModelInfo,
    file_sha256, sha256_hex,
};

use std::path::PathBuf;

/// Which ONNX Runtime execution provider runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Provider {
    /// TensorRT, then CUDA, where the loaded ONNX Runtime has them; else CPU.
    #[default]
    Auto,
    Cpu,
    Cuda,
    TensorRt,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot load the ONNX Runtime library {path}: {reason}")]
    Library { path: PathBuf, reason: String },
    #[error("cannot create the ONNX Runtime environment: {0}")]
    Environment(String),
    #[error("model file {0} does not exist")]
    ModelMissing(PathBuf),
    #[error("model {path}: {reason}")]
    Model { path: PathBuf, reason: String },
    #[error("labels file {path}: {reason}")]
    Labels { path: PathBuf, reason: String },
    #[error("inference failed: {0}")]
    Inference(String),
    #[error("inference interrupted")]
    Interrupted,
}
