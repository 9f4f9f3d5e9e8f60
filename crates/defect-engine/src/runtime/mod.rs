//! ONNX Runtime behind a small API: loading the shared library once per process,
//! building a session on the requested execution provider (falling back to CPU),
//! introspecting a YOLO-style model and running it on a ready input tensor.
//!
//! No GStreamer here: the elements turn [`RuntimeError`]s into element errors and
//! the returned warnings into element warnings.

mod batch;
pub mod cpu;
mod library;
mod model;
pub mod quant;

pub use library::{
    OPENVINO_LIBRARY_ENV, default_library_candidates, environment, openvino_library,
    resolve_library,
};
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
    /// Intel's OpenVINO execution provider (an OpenVINO-enabled ONNX Runtime, such as the
    /// onnxruntime-openvino wheel, is needed), on the given device and precision.
    OpenVino,
}

/// The device OpenVINO runs the model on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OpenVinoDevice {
    #[default]
    Cpu,
    Gpu,
    Npu,
    /// OpenVINO's automatic device selection.
    Auto,
}

impl OpenVinoDevice {
    /// The name OpenVINO knows the device by.
    pub fn as_str(self) -> &'static str {
        match self {
            OpenVinoDevice::Cpu => "CPU",
            OpenVinoDevice::Gpu => "GPU",
            OpenVinoDevice::Npu => "NPU",
            OpenVinoDevice::Auto => "AUTO",
        }
    }
}

/// The inference precision asked of OpenVINO (its `INFERENCE_PRECISION_HINT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// bf16 where the CPU computes it natively (AVX512-BF16 or AMX-BF16), else f32.
    #[default]
    Auto,
    F32,
    Bf16,
    F16,
}

impl Precision {
    /// The concrete precision, `Auto` resolved for this machine's CPU.
    pub fn resolve(self) -> Precision {
        match self {
            Precision::Auto if cpu_has_bf16() => Precision::Bf16,
            Precision::Auto => Precision::F32,
            other => other,
        }
    }

    /// The hint's value as OpenVINO spells it (`Auto` resolved first).
    pub fn hint(self) -> &'static str {
        match self.resolve() {
            Precision::Bf16 => "bf16",
            Precision::F16 => "f16",
            Precision::F32 | Precision::Auto => "f32",
        }
    }
}

/// Whether this machine's CPU computes bf16 natively: `avx512_bf16` or `amx_bf16` among the
/// flags of /proc/cpuinfo (read once).
pub fn cpu_has_bf16() -> bool {
    static HAS: std::sync::LazyLock<bool> = std::sync::LazyLock::new(|| {
        std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|text| cpuinfo_has_bf16(&text))
    });
    *HAS
}

/// Whether the first `flags` line of a /proc/cpuinfo text names a native bf16 unit.
pub fn cpuinfo_has_bf16(cpuinfo: &str) -> bool {
    cpuinfo
        .lines()
        .find(|line| line.starts_with("flags"))
        .and_then(|line| line.split_once(':'))
        .is_some_and(|(_, flags)| {
            flags
                .split_whitespace()
                .any(|flag| flag == "avx512_bf16" || flag == "amx_bf16")
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_is_found_among_the_cpu_flags() {
        let with = "processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16 avx512_vnni\n";
        let amx = "flags\t: fpu amx_tile amx_bf16 amx_int8\n";
        let without = "flags\t\t: fpu avx512f avx512_vnni avx512_bf16x\nbugs\t: avx512_bf16\n";
        assert!(cpuinfo_has_bf16(with));
        assert!(cpuinfo_has_bf16(amx));
        assert!(
            !cpuinfo_has_bf16(without),
            "only whole flags of the flags line count"
        );
        assert!(!cpuinfo_has_bf16(""));
    }

    #[test]
    fn precision_hints() {
        assert_eq!(Precision::F32.hint(), "f32");
        assert_eq!(Precision::Bf16.hint(), "bf16");
        assert_eq!(Precision::F16.hint(), "f16");
        let auto = if cpu_has_bf16() { "bf16" } else { "f32" };
        assert_eq!(Precision::Auto.hint(), auto);
        assert_eq!(OpenVinoDevice::Auto.as_str(), "AUTO");
    }
}
