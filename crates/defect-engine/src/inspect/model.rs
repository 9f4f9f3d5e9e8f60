// SPDX-License-Identifier: MIT OR Apache-2.0
//! What the model slot holds: a detector, its preprocessing plan (made for the frames it
//! sees, dropped with it) and the policy its verdicts follow; built from a [`Request`] by
//! [`build`], synchronously at NULL to READY, in the background while running.

use std::path::Path;
use std::sync::Arc;

use super::infer::{
    self, AnomalyOutput, FrameInput, InferError, Inference, Preprocess, RegionClasses, Thresholds,
};
use super::slot::SlotModel;
use crate::analysis::Detection;
use crate::analysis::mask::Mask;
use crate::analysis::task::Task;
use crate::meta::ModelInfoMeta;
use crate::policy::{AnomalyThresholds, FrameVerdict, Policy, parse_policy};
use crate::runtime::{Detector, DetectorOptions, ModelInfo, RuntimeError};

/// Policy files are read up to this size.
pub const MAX_POLICY_BYTES: u64 = 16 << 20;

/// What a model is built from: the detector's options and the policy file.
#[derive(Debug, Clone)]
pub struct Request {
    pub detector: DetectorOptions,
    pub policy: Option<Arc<Path>>,
    /// `test-time-flip` is set: a model that is not a detector is warned about.
    pub test_time_flip: bool,
}

/// What the verdicts need of the loaded model and policy: cheap to share with the streaming
/// thread while another thread holds the detector.
#[derive(Debug)]
pub struct Identity {
    pub model: ModelInfo,
    pub policy: Policy,
    pub model_id: String,
    /// SHA-256 of the policy file, when there is one.
    pub policy_sha256: Option<String>,
    /// An anomaly model's thresholds in force (the policy's, else the model's).
    pub anomaly_thresholds: Option<AnomalyThresholds>,
}

impl Identity {
    /// Judges a frame's result (detections, classes, or an anomaly map) by the policy, on a
    /// `width` x `height` frame; a segmentation model's `masks` (one per detection) give the
    /// detections' areas and lengths.
    pub fn evaluate(
        &self,
        detections: &[Detection],
        anomaly: Option<&AnomalyOutput>,
        masks: Option<&Arc<Vec<Mask>>>,
        frame: (f32, f32),
    ) -> FrameVerdict {
        match (anomaly, self.anomaly_thresholds) {
            (Some(output), Some(thresholds)) => {
                self.policy
                    .evaluate_anomaly(thresholds, output.score, &output.map, frame, 0)
            }
            _ => self
                .policy
                .evaluate_masked(detections, masks, |id| self.model.class_name(id)),
        }
    }

    /// What the `model-info` property says (the adapter turns it into a structure).
    pub fn describe(&self) -> ModelInfoMeta {
        let info = &self.model;
        let output_layout = match (info.task, self.anomaly_thresholds) {
            (Task::Detect, _) => info.layout.to_string(),
            (Task::Segment, _) => match info.segment {
                Some(l) => format!(
                    "segment [1, 4+nc+{nm}, N] with mask prototypes [1, {nm}, h, w]",
                    nm = l.coefficients
                ),
                None => info.task.to_string(),
            },
            (Task::Anomaly, Some(t)) => format!(
                "anomaly map, image threshold {}, pixel threshold {}",
                t.image, t.pixel
            ),
            (task, _) => task.to_string(),
        };
        ModelInfoMeta {
            task: info.task.to_string(),
            model_id: self.model_id.clone(),
            input_name: info.input_name.clone(),
            channels: info.channels as u32,
            width: info.width,
            height: info.height,
            output_shape: info.output_shape.clone(),
            output_layout,
            classes: info.names.clone(),
            provider: info.provider.to_string(),
            int8_risk: info.int8_risk.clone(),
        }
    }
}

/// A detector with its policy and preprocessing plan: the unit the slot swaps.
pub struct Loaded {
    pub detector: Detector,
    pub identity: Arc<Identity>,
    /// Made for the first frame the detector sees and remade when the frames change; a
    /// new `Loaded` starts without one, so that every swap re-plans.
    pub plan: Option<Preprocess>,
}

impl Loaded {
    /// One frame through the model ([`infer::infer`]) with this model's plan.
    pub fn infer(
        &mut self,
        frame: &FrameInput,
        limits: Thresholds,
    ) -> Result<Inference, InferError> {
        infer::infer(&mut self.detector, &mut self.plan, frame, limits)
    }

    /// `on-rois`: classifies regions of the frame ([`infer::classify_regions`]) and judges each
    /// classified region by the policy (None: not classified).
    pub fn judge_regions(
        &mut self,
        frame: &FrameInput,
        regions: &[(u32, u32, u32, u32)],
        max_regions: usize,
    ) -> Result<(RegionClasses, Vec<Option<FrameVerdict>>), InferError> {
        let classes = infer::classify_regions(&mut self.detector, frame, regions, max_regions)?;
        let identity = &self.identity;
        let judged = classes
            .classes
            .iter()
            .map(|class| {
                class.map(|detection| {
                    identity
                        .policy
                        .evaluate(&[detection], |id| identity.model.class_name(id))
                })
            })
            .collect();
        Ok((classes, judged))
    }
}

impl SlotModel for Loaded {
    type Summary = Identity;

    fn summary(&self) -> Arc<Identity> {
        self.identity.clone()
    }
}

/// Why a model and policy could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    Runtime(RuntimeError),
    Policy(String),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Runtime(e) => write!(f, "{e}"),
            LoadError::Policy(message) => f.write_str(message),
        }
    }
}

/// Loads the model and the policy the request names; `frame_size` (when frames are already
/// flowing) is checked against the policy's region. Returns the warnings to post.
pub fn build(
    request: &Request,
    frame_size: Option<(u32, u32)>,
) -> Result<(Loaded, Vec<String>), LoadError> {
    let (detector, mut warnings) = Detector::load(&request.detector).map_err(LoadError::Runtime)?;
    let (policy, policy_sha256) =
        load_policy(request.policy.as_deref(), detector.info()).map_err(LoadError::Policy)?;
    if let Some((width, height)) = frame_size {
        let problems = policy.frame_problems(width, height);
        if let Some(error) = problems.errors.into_iter().next() {
            return Err(LoadError::Policy(format!("policy {error}")));
        }
        warnings.extend(problems.warnings.into_iter().map(|w| format!("policy {w}")));
    }
    let model = detector.info().clone();
    if request.test_time_flip && model.task != Task::Detect {
        warnings.push(format!(
            "test-time-flip applies to detectors; model {} is a {} model and runs once a frame",
            model.model_id(),
            model.task
        ));
    }
    let anomaly_thresholds = if model.task == Task::Anomaly {
        let (image, pixel) = model.anomaly_thresholds;
        Some(policy.anomaly.thresholds(image, pixel).map_err(|missing| {
            LoadError::Policy(format!(
                "model {} gives no {missing} (no `{}` metadata, no Anomalib post-processor): set {missing} in the policy's [anomaly] section",
                model.path.display(),
                missing.replace('-', "_")
            ))
        })?)
    } else {
        None
    };
    let identity = Arc::new(Identity {
        model_id: model.model_id(),
        model,
        policy,
        policy_sha256,
        anomaly_thresholds,
    });
    Ok((
        Loaded {
            detector,
            identity,
            plan: None,
        },
        warnings,
    ))
}

/// Reads and validates the policy against the model's classes; no file: fail on any detection.
fn load_policy(path: Option<&Path>, model: &ModelInfo) -> Result<(Policy, Option<String>), String> {
    let Some(path) = path else {
        return Ok((Policy::fail_on_any_detection(), None));
    };
    let text = crate::files::read_text(path, MAX_POLICY_BYTES)
        .map_err(|e| format!("policy file {}: {e}", path.display()))?;
    let policy =
        parse_policy(&text, &path.display().to_string()).map_err(|e| format!("policy {e}"))?;
    if let Some((name, line)) = policy
        .classes_not_known(|name| model.knows_class(name))
        .next()
    {
        return Err(format!(
            "policy {}:{line}: unknown class {name:?}; the model's classes are {:?}",
            path.display(),
            model.names
        ));
    }
    Ok((policy, Some(crate::runtime::sha256_hex(text.as_bytes()))))
}
