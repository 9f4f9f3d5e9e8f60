// SPDX-License-Identifier: MIT OR Apache-2.0
//! A challenger model beside the production model (`defectdetect challenger-model`):
//!
//! - `defect-challenger-frame`, a custom downstream serialized event for every frame offered
//!   to the challenger ([`ChallengerFrame`]): its detections and verdict, or
//!   `challenger-skipped` when it had no time for the frame, and the frame's agreement with
//!   production. It follows the frame (the challenger's result comes later), so it names the
//!   frame by `frame` and `pts`;
//! - `defect-challenger`, the element message at end of stream and the `challenger-stats`
//!   property ([`ChallengerSummary`]): both model ids, frames judged and skipped, and the
//!   agreement table.
//!
//! An `agreement` entry ([`AgreementRow`]) counts, for one class (`level` `class`) or verdict
//! (`level` `verdict`) named by `label`: `found-by-both`, `only-production`,
//! `only-challenger`.
//!
//! The types; the plugin's `meta` module writes and reads them as structures and events.

use super::detection::Reason;
use super::values::Verdict;

/// One line of an agreement table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgreementRow {
    /// `class` or `verdict`.
    pub level: String,
    /// The class or verdict.
    pub label: String,
    pub both: u64,
    pub only_production: u64,
    pub only_challenger: u64,
}

/// The challenger's result for one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct ChallengerFrame {
    /// The frame (`VerdictMeta::frame`) and its PTS in nanoseconds.
    pub frame: u64,
    pub pts: Option<u64>,
    /// The challenger's model.
    pub model_id: String,
    pub production_model_id: String,
    /// The challenger had no time for this frame: no detections, verdict UNKNOWN, no
    /// agreement.
    pub skipped: bool,
    pub verdict: Verdict,
    pub production_verdict: Verdict,
    /// Every detection the challenger's policy judged (boxes in frame pixels).
    pub detections: Vec<Reason>,
    /// This frame's agreement (the classes either model found, and the verdicts).
    pub agreement: Vec<AgreementRow>,
}

/// The challenger's figures so far: at end of stream, and at any time from `challenger-stats`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChallengerSummary {
    pub model_id: String,
    pub production_model_id: String,
    pub judged_frames: u64,
    pub skipped_frames: u64,
    /// Per class, then per verdict.
    pub agreement: Vec<AgreementRow>,
}
