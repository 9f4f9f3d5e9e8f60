// SPDX-License-Identifier: MIT OR Apache-2.0
//! What `defectdetect` attaches to buffers and posts, built as the contract's types
//! ([`crate::meta`]): the ROI metas of the detections, the `DefectVerdictMeta`, the
//! `defect-detections` and `defect-verdict` messages, and the `defect-part-verdict` message
//! and event; and the element's side: [`DefectDetect::report`] attaches and posts them for
//! each frame, the model in use is announced downstream, finished parts are sent.

use crate::analysis::task::Task;
use crate::inspect::infer::AnomalyOutput;
use crate::meta::prelude::*;
use crate::meta::{
    AnomalyMapMeta, Classification, DetectionParams, DetectionsMessage, MaskParams, ModelRef,
    PartVerdictMeta, Reason, SizeParams, VerdictMeta,
};
use crate::policy::stages::{StagedRegion, two_stage};
use crate::policy::{FrameVerdict, Judged, PartVerdict, Verdict};
use crate::runtime::ModelInfo;

/// One frame's results, as the metas and messages carry them.
pub(super) struct Report<'a> {
    /// Model run and decoding.
    pub inference_ms: f64,
    /// Preprocessing, inference, NMS and the policy.
    pub total_ms: f64,
    pub frame_number: u64,
    /// The model ran on this frame (asynchronous inference: it was handed to the worker; its
    /// result comes with a later frame, as `source-frame`, and in its part's verdict).
    pub inspected: bool,
    /// The inferred frame whose detections this frame carries (`interval`,
    /// `async-inference`); None when they are this frame's own, or when there are none
    /// (verdict UNKNOWN).
    pub carried_from: Option<u64>,
    /// Frames the asynchronous worker skipped so far.
    pub skipped: u64,
    pub part_id: Option<&'a str>,
    pub shadow: bool,
    pub model_id: &'a str,
    pub model: &'a ModelInfo,
    pub policy_sha256: Option<&'a str>,
    pub verdict: &'a FrameVerdict,
    pub class_name: &'a dyn Fn(usize) -> String,
}

impl Report<'_> {
    pub fn detections_message(
        &self,
        buffer: &gst::BufferRef,
        running_time: Option<gst::ClockTime>,
    ) -> gst::Structure {
        DetectionsMessage {
            task: self.model.task.as_str().to_string(),
            frame: self.frame_number,
            pts: buffer.pts(),
            running_time,
            detections: self
                .verdict
                .judged
                .iter()
                .map(|j| reason(j, self.class_name))
                .collect(),
        }
        .to_structure()
    }

    fn verdict_meta(&self) -> VerdictMeta {
        VerdictMeta {
            task: self.model.task.as_str().to_string(),
            anomaly_score: self.verdict.anomaly_score.map(f64::from),
            verdict: self.verdict.verdict,
            shadow: self.shadow,
            part_id: self.part_id.map(str::to_string),
            frame: self.frame_number,
            inspected: self.inspected,
            carried: self.carried_from.is_some(),
            skipped_frames: self.skipped,
            source_frame: self.carried_from,
            counts: self.verdict.counts,
            model: ModelRef {
                id: self.model_id.to_string(),
                name: self.model.name().into_owned(),
                version: self
                    .model
                    .metadata
                    .get("version")
                    .cloned()
                    .unwrap_or_default(),
                sha256: self.model.sha256.clone(),
            },
            policy_sha256: self.policy_sha256.map(str::to_string),
            inference_ms: self.inference_ms,
            total_ms: self.total_ms,
            reasons: self
                .verdict
                .reasons()
                .map(|j| reason(j, self.class_name))
                .collect(),
            capture_dropped: None,
        }
    }

    pub fn verdict_message(
        &self,
        buffer: &gst::BufferRef,
        running_time: Option<gst::ClockTime>,
    ) -> gst::Structure {
        self.verdict_meta().to_message(buffer.pts(), running_time)
    }

    pub fn attach_verdict_meta(&self, buffer: &mut gst::BufferRef) {
        self.verdict_meta().attach(buffer);
    }
}

/// A judged detection with its box in pixels.
pub(super) fn reason(j: &Judged, class_name: &dyn Fn(usize) -> String) -> Reason {
    let d = &j.detection;
    Reason {
        peak_score: j.scores.map(|s| s[0] as f64),
        mean_score: j.scores.map(|s| s[1] as f64),
        label_id: d.class_id as u32,
        label: class_name(d.class_id),
        confidence: d.confidence as f64,
        x_min: d.bbox.x1 as f64,
        y_min: d.bbox.y1 as f64,
        x_max: d.bbox.x2 as f64,
        y_max: d.bbox.y2 as f64,
        severity: j.severity,
        decision: j.decision,
    }
}

/// The `defect-part-verdict` structure of a finished part (message and event).
pub(super) fn part_message(part: &PartVerdict, shadow: bool, model_id: &str) -> gst::Structure {
    PartVerdictMeta {
        part_id: part.part_id.clone(),
        verdict: part.verdict,
        shadow,
        first_frame: part.first_frame,
        last_frame: part.last_frame,
        frames: part.frames,
        inspected_frames: part.inspected,
        counts: part.counts,
        model_id: model_id.to_string(),
        cameras: Vec::new(),
    }
    .to_structure()
}

/// One `GstVideoRegionOfInterestMeta` a detection, with the DL Streamer `detection`
/// parameters plus the policy's `severity` and `decision`; an anomaly region's also carry
/// `peak_score` and `mean_score`; a classifier's classes (whole-frame ROIs) also carry a
/// `classification` structure (`label`, `label_id`, `confidence`), as `gvaclassify` adds.
/// Detectors' and segmentation models' detections carry their sizes (`defect-size`), a
/// segmentation model's its mask (`defect-mask`).
pub(super) fn attach_roi_metas(
    buffer: &mut gst::BufferRef,
    task: Task,
    verdict: &FrameVerdict,
    width: f32,
    height: f32,
    class_name: &dyn Fn(usize) -> String,
) {
    let judged = &verdict.judged;
    let masks = verdict.masks.as_deref().filter(|m| m.len() == judged.len());
    for (id, j) in judged.iter().enumerate() {
        let (d, b) = (&j.detection, j.detection.bbox);
        let rect = (
            b.x1.round() as u32,
            b.y1.round() as u32,
            b.width().round() as u32,
            b.height().round() as u32,
        );
        let params = DetectionParams {
            peak_score: j.scores.map(|s| s[0] as f64),
            mean_score: j.scores.map(|s| s[1] as f64),
            label_id: d.class_id as u32,
            label: class_name(d.class_id),
            confidence: d.confidence as f64,
            x_min: (b.x1 / width) as f64,
            y_min: (b.y1 / height) as f64,
            x_max: (b.x2 / width) as f64,
            y_max: (b.y2 / height) as f64,
            severity: Some(j.severity),
            decision: Some(j.decision),
        };
        // Ids 0..n-1 let bindings without meta iteration fetch every ROI by id.
        let mut roi = gst_video::VideoRegionOfInterestMeta::add(buffer, &params.label, rect);
        roi.set_id(id as i32);
        if task == Task::Classify {
            roi.add_param(classification(d.class_id, &params.label, d.confidence).to_roi_param());
        }
        roi.add_param(params.to_roi_param());
        if matches!(task, Task::Detect | Task::Segment) {
            let ppm = verdict.pixels_per_mm.map(f64::from);
            roi.add_param(
                SizeParams::new(j.area_px as f64, j.length_px as f64, ppm).to_roi_param(),
            );
        }
        if let Some(mask) = masks.map(|m| &m[id]) {
            roi.add_param(MaskParams::from_mask(mask).to_roi_param());
        }
    }
}

/// The `classification` parameters `gvaclassify` attaches to a region (the policy's judgement
/// is added where the class has one).
pub(super) fn classification(class_id: usize, label: &str, confidence: f32) -> Classification {
    Classification {
        label_id: class_id as u32,
        label: label.to_string(),
        confidence: confidence as f64,
        severity: None,
        decision: None,
    }
}

/// An anomaly model's map as a `DefectAnomalyMapMeta`, on every frame that carries an anomaly
/// result (its raw scores, with the pixel threshold in force as the display scale). The
/// map covers the whole frame: anomaly models get the frame stretched over their input
/// (`inference::Preprocess::plan`), and the policy scales regions the same way.
pub(super) fn attach_anomaly_map(
    buffer: &mut gst::BufferRef,
    output: &AnomalyOutput,
    pixel_threshold: f32,
    width: f32,
    height: f32,
) {
    let map = &output.map;
    AnomalyMapMeta::new(
        map.width as u32,
        map.height as u32,
        &map.data,
        [0.0, 0.0, width as f64, height as f64],
        pixel_threshold,
    )
    .attach(buffer);
}

/// `on-rois`: the upstream frame verdict re-decided by this element's policy on each region's
/// classified label ([`two_stage`]): regions the detector's policy ignored stay ignored, the
/// others are judged by the rule of their class (`results`, one per ROI, None when not
/// classified: the detector's judgement stands). The verdict's reasons become the deciding
/// regions, named by the classifier. None (the verdict left alone) when the upstream frame was
/// not judged (UNKNOWN).
pub(super) fn restage_verdict(
    mut verdict: VerdictMeta,
    rects: &[(u32, u32, u32, u32)],
    upstream: &[Option<DetectionParams>],
    results: &[Option<FrameVerdict>],
    class_name: &dyn Fn(usize) -> String,
) -> Option<VerdictMeta> {
    if verdict.verdict == Verdict::Unknown {
        return None;
    }
    let regions: Vec<StagedRegion> = upstream
        .iter()
        .zip(results)
        .map(|(detector, classified)| match (detector, classified) {
            (Some(d), _) if !d.counted() => StagedRegion::Ignored,
            (_, Some(judged)) => StagedRegion::Classified(judged.clone()),
            (Some(d), None) => match (d.severity, d.decision) {
                (Some(severity), Some(decision)) => StagedRegion::Detector { severity, decision },
                _ => StagedRegion::Ignored,
            },
            (None, None) => StagedRegion::Ignored,
        })
        .collect();
    // The first stage's own cause beyond its regions: a FAIL or REVIEW without reasons (an
    // anomaly model's image score alone).
    let frame = if verdict.reasons.is_empty() && verdict.verdict != Verdict::Pass {
        (verdict.verdict, verdict.counts)
    } else {
        (Verdict::Pass, [0; 4])
    };
    let staged = two_stage(frame, &regions);
    let reasons = staged
        .reasons
        .iter()
        .filter_map(|&i| {
            let (x, y, w, h) = rects[i];
            let (label_id, label, confidence, severity, decision) = match (&regions[i], &results[i])
            {
                (StagedRegion::Classified(_), Some(v)) => {
                    let j = &v.judged[0];
                    let id = j.detection.class_id;
                    (
                        id as u32,
                        class_name(id),
                        j.detection.confidence as f64,
                        j.severity,
                        j.decision,
                    )
                }
                _ => {
                    let d = upstream[i].as_ref()?;
                    (
                        d.label_id,
                        d.label.clone(),
                        d.confidence,
                        d.severity?,
                        d.decision?,
                    )
                }
            };
            Some(Reason {
                label_id,
                label,
                confidence,
                x_min: x as f64,
                y_min: y as f64,
                x_max: (x + w) as f64,
                y_max: (y + h) as f64,
                severity,
                decision,
                peak_score: None,
                mean_score: None,
            })
        })
        .collect();
    verdict.verdict = staged.verdict;
    verdict.counts = staged.counts;
    verdict.reasons = reasons;
    Some(verdict)
}
