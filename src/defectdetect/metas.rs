// SPDX-License-Identifier: MIT OR Apache-2.0
//! What `defectdetect` attaches to buffers and posts: the ROI metas of the detections, the
//! `DefectVerdictMeta`, the `defect-detections` and `defect-verdict` messages, and the
//! `defect-part-verdict` message and event.

use crate::analysis::task::Task;
use crate::meta;
use crate::policy::{FrameVerdict, Judged, PartVerdict};
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
        let list = gst::Array::new(self.verdict.judged.iter().map(|j| {
            let d = &j.detection;
            gst::Structure::builder("detection")
                .field("label-id", d.class_id as u32)
                .field("label", (self.class_name)(d.class_id))
                .field("confidence", d.confidence as f64)
                .field("x-min", d.bbox.x1 as f64)
                .field("y-min", d.bbox.y1 as f64)
                .field("x-max", d.bbox.x2 as f64)
                .field("y-max", d.bbox.y2 as f64)
                .field("severity", j.severity.as_str())
                .field("decision", j.decision.as_str())
                .field_if_some("peak-score", j.scores.map(|s| s[0] as f64))
                .field_if_some("mean-score", j.scores.map(|s| s[1] as f64))
                .build()
        }));
        gst::Structure::builder("defect-detections")
            .field("task", self.model.task.as_str())
            .field("frame", self.frame_number)
            .field("pts", buffer.pts())
            .field("running-time", running_time)
            .field("detections", list)
            .build()
    }

    /// The verdict fields shared by the meta and the message.
    fn verdict_fields(&self, builder: gst::structure::Builder) -> gst::structure::Builder {
        let [critical, major, minor, cosmetic] = self.verdict.counts;
        let reasons = gst::Array::new(
            self.verdict
                .reasons()
                .map(|j| reason_structure(j, self.class_name)),
        );
        builder
            .field("verdict", self.verdict.verdict.as_str())
            .field("task", self.model.task.as_str())
            .field_if_some("anomaly-score", self.verdict.anomaly_score.map(f64::from))
            .field("shadow", self.shadow)
            .field_if_some("part-id", self.part_id)
            .field("frame", self.frame_number)
            .field("inspected", self.inspected)
            .field("carried", self.carried_from.is_some())
            .field("skipped-frames", self.skipped)
            .field_if_some("source-frame", self.carried_from)
            .field("critical", critical)
            .field("major", major)
            .field("minor", minor)
            .field("cosmetic", cosmetic)
            .field("model-id", self.model_id)
            .field("model-name", self.model.name().as_ref())
            .field(
                "model-version",
                self.model
                    .metadata
                    .get("version")
                    .map_or("", String::as_str),
            )
            .field("model-sha256", &self.model.sha256)
            .field_if_some("policy-sha256", self.policy_sha256)
            .field("inference-ms", self.inference_ms)
            .field("total-ms", self.total_ms)
            .field("reasons", reasons)
    }

    pub fn verdict_message(
        &self,
        buffer: &gst::BufferRef,
        running_time: Option<gst::ClockTime>,
    ) -> gst::Structure {
        self.verdict_fields(gst::Structure::builder("defect-verdict"))
            .field("pts", buffer.pts())
            .field("running-time", running_time)
            .build()
    }

    pub fn attach_verdict_meta(&self, buffer: &mut gst::BufferRef) {
        let fields = self
            .verdict_fields(gst::Structure::builder(meta::VERDICT_META))
            .build();
        if let Ok(mut custom) = gst::meta::CustomMeta::add(buffer, meta::VERDICT_META) {
            let structure = custom.mut_structure();
            for (name, value) in fields.iter() {
                structure.set_value(name, value.clone());
            }
        }
    }
}

fn reason_structure(j: &Judged, class_name: &dyn Fn(usize) -> String) -> gst::Structure {
    let d = &j.detection;
    gst::Structure::builder("reason")
        .field("label-id", d.class_id as u32)
        .field("label", class_name(d.class_id))
        .field("severity", j.severity.as_str())
        .field("decision", j.decision.as_str())
        .field("confidence", d.confidence as f64)
        .field("x-min", d.bbox.x1 as f64)
        .field("y-min", d.bbox.y1 as f64)
        .field("x-max", d.bbox.x2 as f64)
        .field("y-max", d.bbox.y2 as f64)
        .build()
}

/// The `defect-part-verdict` structure of a finished part (message and event).
pub(super) fn part_message(part: &PartVerdict, shadow: bool, model_id: &str) -> gst::Structure {
    let [critical, major, minor, cosmetic] = part.counts;
    gst::Structure::builder("defect-part-verdict")
        .field("part-id", &part.part_id)
        .field("verdict", part.verdict.as_str())
        .field("shadow", shadow)
        .field("first-frame", part.first_frame)
        .field("last-frame", part.last_frame)
        .field("frames", part.frames)
        .field("inspected-frames", part.inspected)
        .field("critical", critical)
        .field("major", major)
        .field("minor", minor)
        .field("cosmetic", cosmetic)
        .field("model-id", model_id)
        .build()
}

/// One `GstVideoRegionOfInterestMeta` a detection, with the DL Streamer `detection`
/// parameters plus the policy's `severity` and `decision`; an anomaly region's also carry
/// `peak_score` and `mean_score`; a classifier's classes (whole-frame ROIs) also carry a
/// `classification` structure (`label`, `label_id`, `confidence`), as `gvaclassify` adds.
pub(super) fn attach_roi_metas(
    buffer: &mut gst::BufferRef,
    task: Task,
    judged: &[Judged],
    width: f32,
    height: f32,
    class_name: &dyn Fn(usize) -> String,
) {
    for (id, j) in judged.iter().enumerate() {
        let (d, b) = (&j.detection, j.detection.bbox);
        let rect = (
            b.x1.round() as u32,
            b.y1.round() as u32,
            b.width().round() as u32,
            b.height().round() as u32,
        );
        let label = class_name(d.class_id);
        let mut roi = gst_video::VideoRegionOfInterestMeta::add(buffer, &label, rect);
        // Ids 0..n-1 let bindings without meta iteration fetch every ROI by id.
        roi.set_id(id as i32);
        if task == Task::Classify {
            roi.add_param(classification(d.class_id, &label, d.confidence));
        }
        roi.add_param(
            gst::Structure::builder("detection")
                // Class ids are below 100,000 (decode::MAX_CLASS_ID): they fit a gint.
                .field("label_id", d.class_id as i32)
                .field("label", label)
                .field("confidence", d.confidence as f64)
                .field("x_min", (b.x1 / width) as f64)
                .field("y_min", (b.y1 / height) as f64)
                .field("x_max", (b.x2 / width) as f64)
                .field("y_max", (b.y2 / height) as f64)
                .field("severity", j.severity.as_str())
                .field("decision", j.decision.as_str())
                .field_if_some("peak_score", j.scores.map(|s| s[0] as f64))
                .field_if_some("mean_score", j.scores.map(|s| s[1] as f64))
                .build(),
        );
    }
}

/// The `classification` parameter structure `gvaclassify` attaches to a region.
pub(super) fn classification(class_id: usize, label: &str, confidence: f32) -> gst::Structure {
    gst::Structure::builder("classification")
        .field("label", label)
        .field("label_id", class_id as i32)
        .field("confidence", confidence as f64)
        .build()
}
