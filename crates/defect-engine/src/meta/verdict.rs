// SPDX-License-Identifier: MIT OR Apache-2.0
//! The verdict of a frame (`DefectVerdictMeta` and the `defect-verdict` message) and of a part
//! (`defect-part-verdict` message and event).
//!
//! The types; the plugin's `meta` module writes and reads them as metas, structures,
//! messages and events.

use super::detection::Reason;
use super::values::Verdict;
use crate::policy::SeverityCounts;

/// The model a verdict came from.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ModelRef {
    pub id: String,
    pub name: String,
    pub version: String,
    pub sha256: String,
}

/// A frame's verdict, as `DefectVerdictMeta` and the `defect-verdict` message carry it.
#[derive(Debug, Clone, PartialEq)]
pub struct VerdictMeta {
    pub verdict: Verdict,
    /// The model's task (`detect`, `classify`, `anomaly`); empty when the sender said none.
    pub task: String,
    /// An anomaly model's image score.
    pub anomaly_score: Option<f64>,
    pub shadow: bool,
    pub part_id: Option<String>,
    pub frame: u64,
    /// The model ran on this frame.
    pub inspected: bool,
    /// The detections are those of another frame (`source_frame`).
    pub carried: bool,
    pub skipped_frames: u64,
    pub source_frame: Option<u64>,
    /// Detections counted by severity, worst first.
    pub counts: SeverityCounts,
    pub model: ModelRef,
    pub policy_sha256: Option<String>,
    pub inference_ms: f64,
    pub total_ms: f64,
    /// The detections that decided a FAIL or a REVIEW.
    pub reasons: Vec<Reason>,
    /// Set by `defectcapture`: captures it dropped so far.
    pub capture_dropped: Option<u64>,
}

/// What became of one camera's report of a joined part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CameraStatus {
    /// The camera reported the part in time: its verdict counts.
    #[default]
    Reported,
    /// The camera had not reported the part `timeout-ms` after the first camera did.
    Timeout,
    /// The camera was stopped (end of stream, pad released) when the part was joined.
    Stopped,
}

impl CameraStatus {
    pub const ALL: [CameraStatus; 3] = [
        CameraStatus::Reported,
        CameraStatus::Timeout,
        CameraStatus::Stopped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CameraStatus::Reported => "reported",
            CameraStatus::Timeout => "timeout",
            CameraStatus::Stopped => "stopped",
        }
    }

    /// The status a string names (`reported`, `timeout`, `stopped`).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// One camera's part in a joined part verdict (`defectpartmux`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CameraVerdict {
    /// The pad's `camera-name`.
    pub name: String,
    pub status: CameraStatus,
    /// Whether the camera's absence makes the part UNKNOWN.
    pub required: bool,
    /// The camera's own verdict of the part; UNKNOWN when it did not report it.
    pub verdict: Verdict,
    /// The camera's frames of the part (its own frame numbers); None when it did not report.
    pub first_frame: Option<u64>,
    pub last_frame: Option<u64>,
    pub frames: u64,
    pub inspected_frames: u64,
    pub counts: SeverityCounts,
    /// The camera's model; empty when it did not report.
    pub model_id: String,
}

/// A finished part's verdict: the `defect-part-verdict` message and downstream event.
///
/// `defectdetect` sends one per part and camera (`cameras` empty); `defectpartmux` joins
/// them into one per part, the worst of its cameras', with an entry per camera.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PartVerdictMeta {
    pub part_id: String,
    pub verdict: Verdict,
    pub shadow: bool,
    pub first_frame: u64,
    pub last_frame: u64,
    pub frames: u64,
    pub inspected_frames: u64,
    pub counts: SeverityCounts,
    pub model_id: String,
    /// A joined part's cameras, in pad order; empty for a single camera's part.
    pub cameras: Vec<CameraVerdict>,
}
