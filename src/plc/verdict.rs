// SPDX-License-Identifier: MIT OR Apache-2.0
//! What the PLC elements read of `defectdetect`'s output, and the only place that reads it:
//! a frame's `DefectVerdictMeta` ([`frame_verdict`]) and a finished part's
//! `defect-part-verdict` event ([`part_verdict`]), both through the contract's types in
//! [`crate::meta`].

use crate::meta::prelude::*;
use crate::meta::{MetaError, PartVerdictMeta, VerdictMeta};

/// A verdict as the policy gives it: PASS, UNKNOWN (the model has not judged the frame, or
/// some frames of the part; never a PASS), REVIEW or FAIL.
pub use crate::policy::Verdict;

/// Detections of a frame or a part counted by severity: critical, major, minor, cosmetic.
pub use crate::policy::SeverityCounts;

/// What a frame's `DefectVerdictMeta` says.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameVerdict {
    pub verdict: Verdict,
    pub shadow: bool,
    pub part_id: Option<String>,
    pub frame: u64,
    pub counts: SeverityCounts,
    /// `model-id`: file stem, metadata version and SHA-256 prefix.
    pub model_id: String,
    /// The model's metadata `version` (may be empty).
    pub model_version: String,
    /// Class labels of the detections that decided the verdict, in the meta's order.
    pub defects: Vec<String>,
}

/// What a finished part's `defect-part-verdict` event says.
#[derive(Debug, Clone, PartialEq)]
pub struct PartVerdict {
    pub part_id: String,
    pub verdict: Verdict,
    pub shadow: bool,
    pub first_frame: u64,
    pub last_frame: u64,
    pub counts: SeverityCounts,
    pub model_id: String,
}

/// The verdict of a frame: None when it has no `DefectVerdictMeta`, an error naming the field
/// when the meta is malformed or holds a verdict this code does not know (never read as
/// PASS: the elements warn about such frames).
pub fn frame_verdict(buffer: &gst::BufferRef) -> Option<Result<FrameVerdict, MetaError>> {
    Some(VerdictMeta::from_buffer(buffer)?.map(|v| FrameVerdict {
        verdict: v.verdict,
        shadow: v.shadow,
        part_id: v.part_id,
        frame: v.frame,
        counts: v.counts,
        model_id: v.model.id,
        model_version: v.model.version,
        defects: v.reasons.into_iter().map(|r| r.label).collect(),
    }))
}

/// [`frame_verdict`] for a sink's streaming thread: a frame without a readable verdict is a
/// warning on the bus the first time (`warned` remembers it) and None, so that the sink skips
/// it (never read as PASS).
pub fn frame_verdict_or_warn(
    element: &gst::Element,
    buffer: &gst::BufferRef,
    warned: &mut bool,
) -> Option<FrameVerdict> {
    let read = frame_verdict(buffer);
    if let Some(Ok(frame)) = read {
        return Some(frame);
    }
    if !std::mem::replace(warned, true) {
        match read {
            Some(Err(e)) => gst::element_warning!(
                element,
                gst::StreamError::Format,
                ("Malformed defect metadata: {}", e)
            ),
            _ => gst::element_warning!(
                element,
                gst::StreamError::Format,
                ("Frames without a verdict (DefectVerdictMeta): is defectdetect upstream?")
            ),
        }
    }
    None
}

/// The verdict of a finished part, from a custom downstream event's structure; None for any
/// other structure, an error naming the field when it is malformed.
pub fn part_verdict(s: &gst::StructureRef) -> Option<Result<PartVerdict, MetaError>> {
    Some(PartVerdictMeta::from_structure(s)?.map(|p| PartVerdict {
        part_id: p.part_id,
        verdict: p.verdict,
        shadow: p.shadow,
        first_frame: p.first_frame,
        last_frame: p.last_frame,
        counts: p.counts,
        model_id: p.model_id,
    }))
}

/// [`part_verdict`], a malformed one posted as a warning naming the field (parts are few:
/// each is reported).
pub fn part_verdict_or_warn(
    element: &impl gst::prelude::IsA<gst::Element>,
    s: &gst::StructureRef,
) -> Option<PartVerdict> {
    match part_verdict(s)? {
        Ok(part) => Some(part),
        Err(e) => {
            gst::element_warning!(
                element,
                gst::StreamError::Format,
                ("Malformed defect metadata: {}", e)
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{Decision, ModelRef, Reason, Severity, fields};

    fn init() {
        gst::init().unwrap();
        crate::meta::register();
    }

    fn reason(label: &str) -> Reason {
        Reason {
            peak_score: None,
            mean_score: None,
            label_id: 0,
            label: label.into(),
            confidence: 0.9,
            x_min: 0.0,
            y_min: 0.0,
            x_max: 1.0,
            y_max: 1.0,
            severity: Severity::Critical,
            decision: Decision::Fail,
        }
    }

    #[test]
    fn reads_the_frame_meta() {
        init();
        let mut buffer = gst::Buffer::with_size(4).unwrap();
        VerdictMeta {
            task: String::new(),
            anomaly_score: None,
            verdict: Verdict::Fail,
            shadow: true,
            part_id: Some("7".into()),
            frame: 42,
            inspected: true,
            carried: false,
            skipped_frames: 0,
            source_frame: None,
            counts: [1, 2, 0, 0],
            model: ModelRef {
                id: "m:1.0:abc".into(),
                name: "m".into(),
                version: "1.0".into(),
                sha256: "abc".into(),
            },
            policy_sha256: None,
            inference_ms: 1.0,
            total_ms: 2.0,
            reasons: vec![reason("scratches"), reason("inclusion")],
            capture_dropped: None,
        }
        .attach(buffer.get_mut().unwrap());
        let v = frame_verdict(&buffer).unwrap().unwrap();
        assert_eq!(v.verdict, Verdict::Fail);
        assert!(v.shadow);
        assert_eq!(v.part_id.as_deref(), Some("7"));
        assert_eq!(v.frame, 42);
        assert_eq!(v.counts, [1, 2, 0, 0]);
        assert_eq!(v.model_version, "1.0");
        assert_eq!(v.defects, ["scratches", "inclusion"]);
        assert_eq!(frame_verdict(&gst::Buffer::new()), None);
        // A meta another writer left without its fields is an error naming one.
        let mut partial = gst::Buffer::new();
        let mut custom =
            gst::meta::CustomMeta::add(partial.get_mut().unwrap(), fields::VERDICT_META).unwrap();
        custom.mut_structure().set(fields::VERDICT, "FAIL");
        let error = frame_verdict(&partial).unwrap().unwrap_err();
        assert_eq!(error.field, fields::SHADOW);
    }

    #[test]
    fn reads_the_part_event() {
        init();
        let part = PartVerdictMeta {
            part_id: "3".into(),
            verdict: Verdict::Review,
            shadow: false,
            first_frame: 10,
            last_frame: 20,
            frames: 11,
            inspected_frames: 11,
            counts: [0, 0, 4, 0],
            model_id: "m".into(),
            cameras: Vec::new(),
        };
        let p = part_verdict(&part.to_structure()).unwrap().unwrap();
        assert_eq!(
            (p.part_id.as_str(), p.verdict, p.last_frame, p.counts),
            ("3", Verdict::Review, 20, [0, 0, 4, 0])
        );
        let mut unknown = part.to_structure();
        unknown.set(fields::VERDICT, "MAYBE");
        assert_eq!(
            part_verdict(&unknown).unwrap().unwrap_err().field,
            fields::VERDICT
        );
        let other = gst::Structure::builder(fields::PART_EVENT).build();
        assert_eq!(part_verdict(&other), None);
    }
}
