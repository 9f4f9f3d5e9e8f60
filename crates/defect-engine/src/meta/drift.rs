// SPDX-License-Identifier: MIT OR Apache-2.0
//! Drift: `defectdetect`'s comparison of a rolling window of frames against its baseline
//! profile. The same structure is the `defect-drift` element message (posted when an episode
//! starts and when it ends) and the `defect-drift` custom downstream serialized event (sent
//! at every window, so sinks after it, such as `defectmetaconvert` and `defectmetricssink`,
//! see the current scores and whether an episode is on).
//!
//! The types; the plugin's `meta` module writes and reads them as structures and events.

/// One feature compared with its baseline (an image statistic such as `brightness`, a
/// detection rate, a confidence or anomaly-score distribution).
#[derive(Debug, Clone, PartialEq)]
pub struct DriftFeature {
    /// The feature, e.g. `brightness`, `contrast`, `focus`, `colour-balance`,
    /// `detections:scratch`, `confidence:scratch`, `verdict:FAIL`, `anomaly-score`.
    pub name: String,
    /// How far the window moved from the baseline (population stability index).
    pub score: f64,
    /// The score at which the feature counts as moved.
    pub threshold: f64,
    /// `score >= threshold` in this window.
    pub moved: bool,
    /// The feature's mean (or rate) in the baseline and in the window.
    pub baseline: f64,
    pub current: f64,
}

/// The state of drift after a window of frames.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftReport {
    /// An episode is on (it started at or before this window and has not ended).
    pub active: bool,
    /// The episode's number in this stream (1, 2 ...); 0 before the first episode.
    pub episode: u64,
    /// The frame (`VerdictMeta::frame`) that closed the window.
    pub frame: u64,
    /// Frames in the window.
    pub window_frames: u64,
    pub features: Vec<DriftFeature>,
}

impl DriftReport {
    /// The features that moved in this window.
    pub fn moved(&self) -> impl Iterator<Item = &DriftFeature> {
        self.features.iter().filter(|x| x.moved)
    }
}
