// SPDX-License-Identifier: MIT OR Apache-2.0
//! The plugin's custom metas and events, shared by its elements and documented for
//! applications.
//!
//! - `DefectVerdictMeta` (a `GstCustomMeta`, added by `defectdetect` to every buffer): its
//!   structure holds `verdict` (string PASS, FAIL, REVIEW, or UNKNOWN when the model has not
//!   judged the frame), `shadow` (boolean), `part-id` (string, absent when the frame belongs to
//!   no part), `frame` (guint64), `inspected` (boolean: the model ran on this frame), `carried`
//!   (boolean) and `source-frame` (guint64, the frame whose result it carries), `critical`,
//!   `major`, `minor`, `cosmetic` (guint: detections counted by severity), `model-id`
//!   (string), `inference-ms` and `total-ms` (double: model time; whole element time) and `reasons` (array of `reason` structures: `label-id`, `label`, `severity`,
//!   `decision`, `confidence`, `x-min`, `y-min`, `x-max`, `y-max` in pixels). From C:
//!   `gst_custom_meta_get_structure (gst_buffer_get_custom_meta (buf, "DefectVerdictMeta"))`;
//!   from Python: `buf.get_custom_meta("DefectVerdictMeta").get_structure()`.
//! - `DefectPartMeta` (a `GstCustomMeta` an application adds upstream): field `part-id`
//!   (string or integer) names the part the frame shows.
//! - `defect-part` (a custom downstream serialized event an application sends upstream):
//!   field `part-id` names the part of the frames that follow, until the next such event.
//! - `DefectAnomalyMapMeta` (a `GstCustomMeta`, added by `defectdetect` running an anomaly
//!   model to the frames it inferred or carries a result to): the anomaly map's raw
//!   scores, the frame rectangle it covers and its scale ([`AnomalyMapMeta`]); `defectoverlay`
//!   draws it with `show-heatmap=true`. It is tagged `video`, `size` and `orientation`: it is
//!   copied with the buffer, its rectangle follows `videoscale`, and a transform it cannot
//!   follow drops it (`videoflip`: GStreamer 1.22 gives metas no flip or rotation transform).
//!
//! - `defect-mask` and `defect-size` (parameter structures of the ROI metas `defectdetect`
//!   attaches): a segmentation model's mask at its box, as COCO RLE ([`MaskParams`]), and a
//!   detection's area and length in pixels and millimetres ([`SizeParams`]).
//!
//! `DefectVerdictMeta` and `DefectPartMeta` carry no tags: every element keeps them, so a verdict
//! survives scaling and flipping. The pixel boxes of a verdict's `reasons` stay those of the
//! frame `defectdetect` judged (as in its `defect-verdict` message); the ROI metas, which
//! `defectoverlay`, `defectcapture` and `defectmetaconvert` draw and record, are GStreamer's own
//! and are scaled with the frame (GStreamer 1.22 drops their `detection` parameters when it
//! scales them).

//!
//! Each of them is a type here, written to and read from its `gst::Structure` by this module
//! alone: [`DetectionParams`] (the ROI meta's `detection` parameters), [`Reason`] and
//! [`DetectionsMessage`], [`VerdictMeta`], [`PartVerdictMeta`], [`ModelInfoMeta`] (the
//! `model-info` property), with [`Verdict`], [`Severity`] and [`Decision`] as enums. Reading
//! a structure with a missing or mistyped field, or a value the contract does not know, is a
//! [`MetaError`] naming the structure and the field.

//!
//! The types the engine works with too (the verdicts, parts, drift, challenger and model
//! records, [`Verdict`], [`Severity`], [`Decision`] and the names in [`fields`]) are defined
//! without GStreamer in `defect_engine::meta` and re-exported here; this module writes and
//! reads them as structures through its extension traits ([`VerdictMetaExt`] and the others,
//! all in [`prelude`]).

use gst::glib;

mod anomaly_map;
mod challenger;
mod detection;
mod drift;
mod mask;
mod model_info;
mod reject;
mod structure;
mod verdict;

pub use defect_engine::meta::fields;
pub use defect_engine::meta::{
    AgreementRow, CameraStatus, CameraVerdict, ChallengerFrame, ChallengerSummary, Decision,
    DriftFeature, DriftReport, ModelInfoMeta, ModelRef, PartVerdictMeta, Reason, Severity, Verdict,
    VerdictMeta,
};

pub use anomaly_map::AnomalyMapMeta;
pub use challenger::{ChallengerFrameExt, ChallengerSummaryExt};
pub use detection::{Classification, DetectionParams, DetectionsMessage, ReasonExt};
pub use drift::DriftReportExt;
pub use fields::{ANOMALY_MAP_META, PART_EVENT, PART_META, VERDICT_META};
pub use mask::{MaskParams, SizeParams};
pub use model_info::ModelInfoMetaExt;
pub use reject::{RejectMessage, RejectMissedMessage};
pub use structure::MetaError;
pub use verdict::{CameraVerdictExt, PartVerdictMetaExt, VerdictMetaExt};

/// The extension traits that write and read the engine's types as structures, metas, messages
/// and events: `use gstdefect::meta::prelude::*;`.
pub mod prelude {
    pub use super::{
        CameraVerdictExt, ChallengerFrameExt, ChallengerSummaryExt, DriftReportExt,
        ModelInfoMetaExt, PartVerdictMetaExt, ReasonExt, VerdictMetaExt,
    };
}

const PART_ID_FIELD: &str = fields::PART_ID;

/// Registers the custom metas (idempotent and safe from several threads at once: GStreamer
/// must not see a name registered twice). Every `attach` calls it, so a meta an application
/// attaches before it registers the plugin is not silently dropped.
pub fn register() {
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    REGISTERED.call_once(|| {
        for name in [VERDICT_META, PART_META] {
            if !gst::meta::CustomMeta::is_registered(name) {
                gst::meta::CustomMeta::register(name, &[]);
            }
        }
        // Tagged as a video meta with a transform function (it follows scaling).
        if !gst::meta::CustomMeta::is_registered(ANOMALY_MAP_META) {
            anomaly_map::register();
        }
    });
}

/// The `part-id` of a `DefectPartMeta` or a `defect-part` event, a string or an integer.
pub fn part_id_of(structure: &gst::StructureRef) -> Result<String, MetaError> {
    let reader = structure::Reader::new(structure);
    let Ok(value) = structure.value(PART_ID_FIELD) else {
        return Err(reader.error(PART_ID_FIELD, "is missing"));
    };
    if let Ok(text) = value.get::<String>() {
        return Ok(text);
    }
    for read in [
        |v: &glib::SendValue| v.get::<u64>().ok().map(|n| n.to_string()),
        |v: &glib::SendValue| v.get::<i64>().ok().map(|n| n.to_string()),
        |v: &glib::SendValue| v.get::<u32>().ok().map(|n| n.to_string()),
        |v: &glib::SendValue| v.get::<i32>().ok().map(|n| n.to_string()),
    ] {
        if let Some(text) = read(value) {
            return Ok(text);
        }
    }
    Err(reader.error(
        PART_ID_FIELD,
        format!(
            "is a {} where a string or an integer is expected",
            value.type_()
        ),
    ))
}

/// The part id an application attached to a buffer with `DefectPartMeta`: None without
/// one, an error naming the field when it has no usable `part-id`.
pub fn part_id_from_buffer(buffer: &gst::BufferRef) -> Option<Result<String, MetaError>> {
    let meta = gst::meta::CustomMeta::from_buffer(buffer, PART_META).ok()?;
    Some(part_id_of(meta.structure()))
}

/// The part a `defect-part` event names: None when the event is another one.
pub fn part_of_event(event: &gst::event::CustomDownstream) -> Option<Result<String, MetaError>> {
    event
        .structure()
        .filter(|s| s.name() == PART_EVENT)
        .map(part_id_of)
}

/// A `defect-part` event for applications and tests.
pub fn part_event(part_id: &str) -> gst::Event {
    gst::event::CustomDownstream::new(
        gst::Structure::builder(PART_EVENT)
            .field(PART_ID_FIELD, part_id)
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::prelude::*;
    use super::*;

    fn verdict() -> VerdictMeta {
        VerdictMeta {
            task: String::new(),
            anomaly_score: None,
            verdict: Verdict::Fail,
            shadow: true,
            part_id: Some("p-7".into()),
            frame: 12,
            inspected: false,
            carried: true,
            skipped_frames: 3,
            source_frame: Some(10),
            counts: [1, 2, 3, 4],
            model: ModelRef {
                id: "m:1:abc".into(),
                name: "m".into(),
                version: "1".into(),
                sha256: "abc".into(),
            },
            policy_sha256: None,
            inference_ms: 4.5,
            total_ms: 6.0,
            reasons: vec![Reason {
                peak_score: None,
                mean_score: None,
                label_id: 2,
                label: "dent".into(),
                confidence: 0.75,
                x_min: 1.0,
                y_min: 2.0,
                x_max: 30.5,
                y_max: 40.0,
                severity: Severity::Major,
                decision: Decision::Fail,
            }],
            capture_dropped: Some(9),
        }
    }

    #[test]
    fn every_type_reads_back_what_it_wrote() {
        gst::init().unwrap();
        let v = verdict();
        assert_eq!(
            VerdictMeta::from_structure(&v.to_structure()),
            Ok(v.clone())
        );
        assert_eq!(
            VerdictMeta::from_structure(&v.to_message(None, Some(gst::ClockTime::SECOND))),
            Ok(v.clone())
        );
        let part = PartVerdictMeta {
            part_id: "p-7".into(),
            verdict: Verdict::Unknown,
            shadow: false,
            first_frame: 3,
            last_frame: 9,
            frames: 7,
            inspected_frames: 5,
            counts: [0, 1, 0, 2],
            model_id: "m".into(),
            cameras: Vec::new(),
        };
        assert_eq!(
            PartVerdictMeta::from_structure(&part.to_structure()),
            Some(Ok(part.clone()))
        );
        // A joined part names its cameras; a camera that did not report has no frames.
        let joined = PartVerdictMeta {
            cameras: vec![
                CameraVerdict {
                    name: "top".into(),
                    status: CameraStatus::Reported,
                    required: true,
                    verdict: Verdict::Fail,
                    first_frame: Some(3),
                    last_frame: Some(9),
                    frames: 7,
                    inspected_frames: 5,
                    counts: [0, 1, 0, 2],
                    model_id: "m".into(),
                },
                CameraVerdict {
                    name: "side".into(),
                    status: CameraStatus::Timeout,
                    required: false,
                    ..CameraVerdict::default()
                },
            ],
            ..part
        };
        assert_eq!(
            PartVerdictMeta::from_structure(&joined.to_structure()),
            Some(Ok(joined))
        );
        let detection = DetectionParams {
            peak_score: None,
            mean_score: None,
            label_id: 4,
            label: "scratch".into(),
            confidence: 0.5,
            x_min: 0.1,
            y_min: 0.2,
            x_max: 0.3,
            y_max: 0.4,
            severity: None,
            decision: Some(Decision::TooSmall),
        };
        assert!(!detection.counted());
        assert_eq!(
            DetectionParams::from_roi_param(&detection.to_roi_param()),
            Ok(detection)
        );
        let message = DetectionsMessage {
            task: String::new(),
            frame: 5,
            pts: Some(gst::ClockTime::from_mseconds(200)),
            running_time: None,
            detections: v.reasons.clone(),
        };
        assert_eq!(
            DetectionsMessage::from_structure(&message.to_structure()),
            Some(Ok(message))
        );
        let info = ModelInfoMeta {
            task: String::new(),
            model_id: "m:1:abc".into(),
            input_name: "images".into(),
            channels: 3,
            width: 640,
            height: 480,
            output_shape: vec![1, 6, 8400],
            output_layout: "yolov8".into(),
            classes: vec!["a".into(), "b, c".into()],
            provider: "cpu".into(),
            int8_risk: Some("full-range int8 weights on AVX2".into()),
        };
        assert_eq!(
            ModelInfoMeta::from_structure(&info.to_structure()),
            Ok(info)
        );
    }

    #[test]
    fn missing_mistyped_and_unknown_fields_are_named() {
        gst::init().unwrap();
        let mut s = verdict().to_structure();
        s.remove_field(fields::TOTAL_MS);
        let e = VerdictMeta::from_structure(&s).unwrap_err();
        assert_eq!(
            e.to_string(),
            "DefectVerdictMeta: field `total-ms` is missing"
        );
        let mut s = verdict().to_structure();
        s.set(fields::FRAME, 12u32);
        let e = VerdictMeta::from_structure(&s).unwrap_err();
        assert_eq!(
            e.to_string(),
            "DefectVerdictMeta: field `frame` is a guint where a guint64 is expected"
        );
        let mut s = verdict().to_structure();
        s.set(fields::VERDICT, "OK");
        let e = VerdictMeta::from_structure(&s).unwrap_err();
        assert_eq!(e.field, fields::VERDICT);
        assert!(e.to_string().contains("unknown value \"OK\""), "{e}");
        let mut s = verdict().to_structure();
        s.remove_field(fields::SOURCE_FRAME);
        let e = VerdictMeta::from_structure(&s).unwrap_err();
        assert_eq!(e.field, fields::CARRIED);
        let mut roi = verdict().reasons[0].to_structure(fields::DETECTION);
        roi.set(fields::DECISION, "maybe");
        assert_eq!(
            Reason::from_structure(&roi).unwrap_err().to_string(),
            "detection: field `decision` has the unknown value \"maybe\""
        );
        let mut info = ModelInfoMeta::default().to_structure();
        info.set(fields::CLASSES, gst::Array::new([1i32, 2]));
        assert_eq!(
            ModelInfoMeta::from_structure(&info)
                .unwrap_err()
                .to_string(),
            "model-info: field `classes` holds a gint where a gchararray is expected"
        );
    }
}
