// SPDX-License-Identifier: MIT OR Apache-2.0
//! `defectdetect`'s `model-info` property: what the loaded model is. The type; the plugin's
//! `meta` module writes and reads it as a structure.

/// The loaded model, as the `model-info` property gives it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ModelInfoMeta {
    /// `name:version:sha256-prefix`, the id verdicts carry.
    pub model_id: String,
    /// `detect`, `classify` or `anomaly`.
    pub task: String,
    pub input_name: String,
    /// 3 (RGB) or 1 (grey).
    pub channels: u32,
    pub width: u32,
    pub height: u32,
    pub output_shape: Vec<i64>,
    /// How the output is decoded (`yolov8`, `yolov5`, `end2end`).
    pub output_layout: String,
    /// Class names in class-id order.
    pub classes: Vec<String>,
    /// The execution provider sessions run on (`cpu`, `cuda`, `tensorrt`).
    pub provider: String,
    /// Why the model's 8-bit kernels can give wrong results on this CPU (full-range int8
    /// weights on a CPU without VNNI); the field `int8-risk` is an empty string where not.
    pub int8_risk: Option<String>,
}
