// SPDX-License-Identifier: MIT OR Apache-2.0
//! A detection as the ROI meta's `detection` parameters carry it (DL Streamer's names, box
//! normalised to [0, 1]) and as the verdict's reasons and the `defect-detections` message carry
//! it (box in pixels).

use super::fields as f;
use super::structure::{MetaError, Reader};
use super::{Decision, Reason, Severity};

/// One detection. The box is normalised to [0, 1] in the ROI meta's parameters, in pixels in
/// [`Reason`]s.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectionParams {
    pub label_id: u32,
    pub label: String,
    pub confidence: f64,
    pub x_min: f64,
    pub y_min: f64,
    pub x_max: f64,
    pub y_max: f64,
    /// The policy's judgement; absent on ROIs of other elements (DL Streamer's).
    pub severity: Option<Severity>,
    pub decision: Option<Decision>,
    /// An anomaly region's peak and mean score.
    pub peak_score: Option<f64>,
    pub mean_score: Option<f64>,
}

impl DetectionParams {
    /// Whether the policy counted it (anything not judged counts).
    pub fn counted(&self) -> bool {
        self.decision.is_none_or(Decision::counted)
    }

    /// The ROI meta's `detection` parameter structure.
    pub fn to_roi_param(&self) -> gst::Structure {
        gst::Structure::builder(f::DETECTION)
            // Class ids are below 100,000 (decode::MAX_CLASS_ID): they fit a gint.
            .field(f::ROI_LABEL_ID, self.label_id as i32)
            .field(f::LABEL, &self.label)
            .field(f::CONFIDENCE, self.confidence)
            .field(f::ROI_X_MIN, self.x_min)
            .field(f::ROI_Y_MIN, self.y_min)
            .field(f::ROI_X_MAX, self.x_max)
            .field(f::ROI_Y_MAX, self.y_max)
            .field_if_some(f::SEVERITY, self.severity.map(Severity::as_str))
            .field_if_some(f::DECISION, self.decision.map(Decision::as_str))
            .field_if_some(f::ROI_PEAK_SCORE, self.peak_score)
            .field_if_some(f::ROI_MEAN_SCORE, self.mean_score)
            .build()
    }

    pub fn from_roi_param(s: &gst::StructureRef) -> Result<Self, MetaError> {
        let r = Reader::new(s);
        Ok(Self {
            label_id: roi_label_id(&r)?,
            label: r.required(f::LABEL)?,
            confidence: r.required(f::CONFIDENCE)?,
            x_min: r.required(f::ROI_X_MIN)?,
            y_min: r.required(f::ROI_Y_MIN)?,
            x_max: r.required(f::ROI_X_MAX)?,
            y_max: r.required(f::ROI_Y_MAX)?,
            severity: r.optional_named(f::SEVERITY, Severity::parse)?,
            decision: r.optional_named(f::DECISION, Decision::parse)?,
            peak_score: r.optional(f::ROI_PEAK_SCORE)?,
            mean_score: r.optional(f::ROI_MEAN_SCORE)?,
        })
    }

    /// The `detection` parameters of an ROI meta: None when it has none (an ROI of another
    /// element), an error naming the field when they are malformed.
    pub fn of_roi(roi: &gst_video::VideoRegionOfInterestMeta) -> Option<Result<Self, MetaError>> {
        roi.param(f::DETECTION).map(Self::from_roi_param)
    }

    /// Attaches a `GstVideoRegionOfInterestMeta` with these parameters; `rect` in pixels.
    pub fn attach(&self, buffer: &mut gst::BufferRef, id: i32, rect: (u32, u32, u32, u32)) {
        let mut roi = gst_video::VideoRegionOfInterestMeta::add(buffer, &self.label, rect);
        roi.set_id(id);
        roi.add_param(self.to_roi_param());
    }
}

/// The `label_id` of an ROI parameter structure (a gint there), never negative.
fn roi_label_id(r: &Reader) -> Result<u32, MetaError> {
    let label_id: i32 = r.required(f::ROI_LABEL_ID)?;
    u32::try_from(label_id)
        .map_err(|_| r.error(f::ROI_LABEL_ID, format!("is negative ({label_id})")))
}

/// A [`Reason`] as a structure of the verdict's `reasons`, the `defect-detections` message's
/// and the challenger's `detections`.
pub trait ReasonExt: Sized {
    /// As a structure named `name` ([`fields::REASON`](super::fields::REASON) or
    /// [`fields::DETECTION`](super::fields::DETECTION)).
    fn to_structure(&self, name: &str) -> gst::Structure;
    fn from_structure(s: &gst::StructureRef) -> Result<Self, MetaError>;
}

impl ReasonExt for Reason {
    fn to_structure(&self, name: &str) -> gst::Structure {
        gst::Structure::builder(name)
            .field(f::LABEL_ID, self.label_id)
            .field(f::LABEL, &self.label)
            .field(f::SEVERITY, self.severity.as_str())
            .field(f::DECISION, self.decision.as_str())
            .field(f::CONFIDENCE, self.confidence)
            .field(f::X_MIN, self.x_min)
            .field(f::Y_MIN, self.y_min)
            .field(f::X_MAX, self.x_max)
            .field(f::Y_MAX, self.y_max)
            .field_if_some(f::PEAK_SCORE, self.peak_score)
            .field_if_some(f::MEAN_SCORE, self.mean_score)
            .build()
    }

    fn from_structure(s: &gst::StructureRef) -> Result<Self, MetaError> {
        let r = Reader::new(s);
        Ok(Self {
            label_id: r.required(f::LABEL_ID)?,
            label: r.required(f::LABEL)?,
            confidence: r.required(f::CONFIDENCE)?,
            x_min: r.required(f::X_MIN)?,
            y_min: r.required(f::Y_MIN)?,
            x_max: r.required(f::X_MAX)?,
            y_max: r.required(f::Y_MAX)?,
            severity: r.named(f::SEVERITY, Severity::parse)?,
            decision: r.named(f::DECISION, Decision::parse)?,
            peak_score: r.optional(f::PEAK_SCORE)?,
            mean_score: r.optional(f::MEAN_SCORE)?,
        })
    }
}

/// The `defect-detections` element message: every detection of a frame.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectionsMessage {
    /// The model's task (`detect`, `classify`, `anomaly`); empty when the sender said none.
    pub task: String,
    pub frame: u64,
    pub pts: Option<gst::ClockTime>,
    pub running_time: Option<gst::ClockTime>,
    pub detections: Vec<Reason>,
}

impl DetectionsMessage {
    pub fn to_structure(&self) -> gst::Structure {
        gst::Structure::builder(f::DETECTIONS_MESSAGE)
            .field(f::TASK, &self.task)
            .field(f::FRAME, self.frame)
            .field(f::PTS, self.pts)
            .field(f::RUNNING_TIME, self.running_time)
            .field(
                f::DETECTIONS,
                gst::Array::new(self.detections.iter().map(|d| d.to_structure(f::DETECTION))),
            )
            .build()
    }

    /// The message's contents, None when the structure is another message.
    pub fn from_structure(s: &gst::StructureRef) -> Option<Result<Self, MetaError>> {
        (s.name() == f::DETECTIONS_MESSAGE).then(|| {
            let r = Reader::new(s);
            Ok(Self {
                task: r.optional(f::TASK)?.unwrap_or_default(),
                frame: r.required(f::FRAME)?,
                pts: r.optional::<Option<gst::ClockTime>>(f::PTS)?.flatten(),
                running_time: r
                    .optional::<Option<gst::ClockTime>>(f::RUNNING_TIME)?
                    .flatten(),
                detections: r.structures(f::DETECTIONS, Reason::from_structure)?,
            })
        })
    }
}

/// The `classification` parameter structure a classifier attaches to a region (as
/// `gvaclassify` does), with the policy's judgement of that class where it has one.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    pub label_id: u32,
    pub label: String,
    pub confidence: f64,
    pub severity: Option<Severity>,
    pub decision: Option<Decision>,
}

impl Classification {
    pub fn to_roi_param(&self) -> gst::Structure {
        gst::Structure::builder(f::CLASSIFICATION)
            .field(f::LABEL, &self.label)
            .field(f::ROI_LABEL_ID, self.label_id as i32)
            .field(f::CONFIDENCE, self.confidence)
            .field_if_some(f::SEVERITY, self.severity.map(Severity::as_str))
            .field_if_some(f::DECISION, self.decision.map(Decision::as_str))
            .build()
    }

    pub fn from_roi_param(s: &gst::StructureRef) -> Result<Self, MetaError> {
        let r = Reader::new(s);
        Ok(Self {
            label_id: roi_label_id(&r)?,
            label: r.required(f::LABEL)?,
            confidence: r.required(f::CONFIDENCE)?,
            severity: r.optional_named(f::SEVERITY, Severity::parse)?,
            decision: r.optional_named(f::DECISION, Decision::parse)?,
        })
    }

    /// The `classification` parameters of an ROI meta: None when it has none.
    pub fn of_roi(roi: &gst_video::VideoRegionOfInterestMeta) -> Option<Result<Self, MetaError>> {
        roi.param(f::CLASSIFICATION).map(Self::from_roi_param)
    }
}
