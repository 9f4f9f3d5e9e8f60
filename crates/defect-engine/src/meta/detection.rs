// SPDX-License-Identifier: MIT OR Apache-2.0
//! A detection as the verdict's reasons, the `defect-detections` message and the challenger's
//! frames carry it (box in pixels). The plugin's `meta` module writes and reads it as a
//! structure.

use super::values::{Decision, Severity};

/// A detection in the verdict's `reasons` and the `defect-detections` message: box in pixels,
/// judged by the policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Reason {
    pub label_id: u32,
    pub label: String,
    pub confidence: f64,
    pub x_min: f64,
    pub y_min: f64,
    pub x_max: f64,
    pub y_max: f64,
    pub severity: Severity,
    pub decision: Decision,
    /// An anomaly region's peak and mean score.
    pub peak_score: Option<f64>,
    pub mean_score: Option<f64>,
}
