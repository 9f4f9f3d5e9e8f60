// SPDX-License-Identifier: MIT OR Apache-2.0
//! `defectdetect`'s drift: the adapter between its frames and [`crate::monitor::drift`].
//!
//! One [`Drift`] per stream (in the element's state): at each frame, after the verdict, the
//! frame's image statistics (on a subsampled view, taken by the engine on the frame's one
//! mapping) and the verdict's detections go to the monitor; a compared window goes downstream as the `defect-drift` event, the start and the
//! end of an episode are posted as the `defect-drift` element message (the start with a
//! warning naming the features that moved and by how much).

use std::path::{Path, PathBuf};

use super::settings::Settings;
use crate::inspect::model::Identity;
use crate::meta::{Decision, DriftReport};
use crate::monitor::drift::{Baseline, Change, DriftMonitor, ImageStats, Observation};
use crate::policy::FrameVerdict;

/// The drift of one stream.
pub(super) struct Drift {
    monitor: DriftMonitor,
    /// The model and policy it was set up for: another one starts over.
    model_id: String,
    policy_sha256: Option<String>,
    /// Where to write the baseline it learns.
    out: Option<PathBuf>,
    /// The image statistics failed once (reported once).
    image_failed: bool,
}

/// A frame as drift takes it.
pub(super) struct Frame {
    /// Its `VerdictMeta::frame`.
    pub number: u64,
    /// Its image statistics ([`crate::inspect::flow::drift_image`]), taken on the frame's one
    /// mapping (the model's input when the model ran on it on the streaming thread), or why
    /// there are none.
    pub image: Result<ImageStats, String>,
}

/// What a frame did, to be posted once no lock is held.
#[derive(Default)]
pub(super) struct Outcome {
    pub report: Option<DriftReport>,
    pub change: Option<Change>,
    pub warnings: Vec<String>,
    pub info: Vec<String>,
}

/// The baseline file in force: the property's, else the policy's `[drift] baseline`
/// (relative to the policy file).
fn baseline_path(settings: &Settings, identity: &Identity) -> Option<PathBuf> {
    if let Some(path) = &settings.drift_baseline {
        return Some(path.to_path_buf());
    }
    let name = identity.policy.drift.baseline.as_ref()?;
    let policy_dir = Path::new(&identity.policy.source.file)
        .parent()
        .unwrap_or(Path::new(""));
    Some(policy_dir.join(name))
}

/// Whether drift is on for these settings and this policy (as [`Drift::new`] decides).
fn wanted(settings: &Settings, identity: &Identity) -> bool {
    settings.drift && identity.policy.drift.enabled
}

impl Drift {
    /// The drift of a stream for a model and policy; None when switched off. An error names
    /// a baseline that cannot be read.
    pub fn new(settings: &Settings, identity: &Identity) -> Result<Option<Self>, String> {
        let mut config = identity.policy.drift.clone();
        if !wanted(settings, identity) {
            return Ok(None);
        }
        if settings.drift_learn_frames > 0 {
            config.learn_frames = settings.drift_learn_frames;
        }
        let baseline = baseline_path(settings, identity)
            .map(|path| Baseline::load(&path))
            .transpose()?;
        let monitor = DriftMonitor::new(config, identity.model.names.clone(), baseline);
        Ok(Some(Self {
            monitor,
            model_id: identity.model_id.clone(),
            policy_sha256: identity.policy_sha256.clone(),
            out: settings
                .drift_baseline_out
                .as_deref()
                .map(Path::to_path_buf),
            image_failed: false,
        }))
    }

    pub fn is_for(&self, identity: &Identity) -> bool {
        self.model_id == identity.model_id && self.policy_sha256 == identity.policy_sha256
    }

    /// Starts the rolling window over: at a flush or a new segment (a seek), so that a window
    /// never mixes two positions of the stream.
    pub fn restart_window(&mut self) {
        self.monitor.restart_window();
    }

    /// One frame, after its verdict.
    pub fn frame(&mut self, frame: Frame, inspected: bool, verdict: &FrameVerdict) -> Outcome {
        let mut outcome = Outcome::default();
        let Frame {
            number: frame,
            image,
        } = frame;
        let image = match image {
            Ok(stats) => Some(stats),
            Err(reason) => {
                if !self.image_failed {
                    self.image_failed = true;
                    outcome.warnings.push(format!(
                        "drift: no image statistics for frame {frame}: {reason}"
                    ));
                }
                None
            }
        };
        let observation = Observation {
            frame,
            image,
            inspected,
            detections: verdict
                .judged
                .iter()
                .filter(|j| {
                    !matches!(
                        j.decision,
                        Decision::OutsideRegion | Decision::Masked | Decision::TooSmall
                    )
                })
                .map(|j| (j.detection.class_id, j.detection.confidence))
                .collect(),
            verdict: verdict.verdict,
            anomaly_score: verdict.anomaly_score,
        };
        let step = self.monitor.observe(&observation);
        if step.learnt {
            let baseline = self.monitor.baseline().expect("just learnt");
            outcome.info.push(format!(
                "drift: baseline learnt from frames up to {frame} ({} features)",
                baseline.features.len()
            ));
            if let Some(path) = self.out.take() {
                self.write(baseline.clone(), &path, &mut outcome);
            }
        }
        outcome.report = step.report;
        outcome.change = step.change;
        outcome
    }

    fn write(&self, baseline: Baseline, path: &Path, outcome: &mut Outcome) {
        match baseline.save(path) {
            Ok(()) => outcome.info.push(format!(
                "drift: baseline of {} frames written to {}",
                baseline.frames,
                path.display()
            )),
            Err(reason) => outcome.warnings.push(reason),
        }
    }

    /// End of stream: a baseline still being learnt is written (to `drift-baseline-out`) from
    /// the frames seen.
    pub fn finish(&mut self) -> Outcome {
        let mut outcome = Outcome::default();
        if let Some(path) = self.out.take() {
            match self.monitor.learnt_so_far() {
                Some(baseline) => self.write(baseline, &path, &mut outcome),
                None => outcome.warnings.push(format!(
                    "drift: no frame to learn a baseline from: {} not written",
                    path.display()
                )),
            }
        }
        outcome
    }
}
