// SPDX-License-Identifier: MIT OR Apache-2.0
//! What the PLC elements read of `defectdetect`'s output, and the only place that reads it:
//! a frame's `DefectVerdictMeta` ([`frame_verdict`]) and a finished part's
//! `defect-part-verdict` event ([`part_verdict`]). When the meta contract moves into typed
//! structs in [`crate::meta`], these two functions are all that change.

use crate::meta;

/// A verdict as the policy gives it: PASS, UNKNOWN (the model has not judged the frame, or
/// some frames of the part; never a PASS), REVIEW or FAIL.
pub use crate::policy::Verdict;

/// Detections of a frame or a part counted by severity: critical, major, minor, cosmetic.
pub type SeverityCounts = [u32; 4];

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

/// Name of the custom downstream event `defectdetect` sends ahead of the frame that follows a
/// finished part.
pub const PART_VERDICT_EVENT: &str = "defect-part-verdict";

fn counts(s: &gst::StructureRef) -> SeverityCounts {
    ["critical", "major", "minor", "cosmetic"].map(|f| s.get::<u32>(f).unwrap_or(0))
}

/// The verdict of a frame, `None` when it has no `DefectVerdictMeta` or a verdict this code
/// does not know (never read as PASS: the elements warn about such frames).
pub fn frame_verdict(buffer: &gst::BufferRef) -> Option<FrameVerdict> {
    let custom = gst::meta::CustomMeta::from_buffer(buffer, meta::VERDICT_META).ok()?;
    let s = custom.structure();
    let text = |f: &str| s.get::<String>(f).ok();
    let defects = s
        .get::<gst::ArrayRef>("reasons")
        .map(|reasons| {
            reasons
                .iter()
                .filter_map(|r| r.get::<gst::Structure>().ok())
                .filter_map(|r| r.get::<String>("label").ok())
                .collect()
        })
        .unwrap_or_default();
    Some(FrameVerdict {
        verdict: Verdict::parse(&text("verdict")?)?,
        shadow: s.get::<bool>("shadow").unwrap_or(false),
        part_id: meta::part_id_of(s),
        frame: s.get::<u64>("frame").unwrap_or(0),
        counts: counts(s),
        model_id: text("model-id").unwrap_or_default(),
        model_version: text("model-version").unwrap_or_default(),
        defects,
    })
}

/// The verdict of a finished part, from a custom downstream event's structure; `None` for
/// any other structure.
pub fn part_verdict(s: &gst::StructureRef) -> Option<PartVerdict> {
    if s.name() != PART_VERDICT_EVENT {
        return None;
    }
    Some(PartVerdict {
        part_id: meta::part_id_of(s)?,
        verdict: Verdict::parse(&s.get::<String>("verdict").ok()?)?,
        shadow: s.get::<bool>("shadow").unwrap_or(false),
        first_frame: s.get::<u64>("first-frame").unwrap_or(0),
        last_frame: s.get::<u64>("last-frame").unwrap_or(0),
        counts: counts(s),
        model_id: s.get::<String>("model-id").unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init() {
        gst::init().unwrap();
        meta::register();
    }

    #[test]
    fn reads_the_frame_meta() {
        init();
        let mut buffer = gst::Buffer::with_size(4).unwrap();
        {
            let buffer = buffer.get_mut().unwrap();
            let mut custom = gst::meta::CustomMeta::add(buffer, meta::VERDICT_META).unwrap();
            let s = custom.mut_structure();
            s.set("verdict", "FAIL");
            s.set("shadow", true);
            s.set("part-id", "7");
            s.set("frame", 42u64);
            s.set("critical", 1u32);
            s.set("major", 2u32);
            s.set("model-id", "m:1.0:abc");
            s.set("model-version", "1.0");
            s.set(
                "reasons",
                gst::Array::new([
                    gst::Structure::builder("reason")
                        .field("label", "scratches")
                        .build(),
                    gst::Structure::builder("reason")
                        .field("label", "inclusion")
                        .build(),
                ]),
            );
        }
        let v = frame_verdict(&buffer).unwrap();
        assert_eq!(v.verdict, Verdict::Fail);
        assert!(v.shadow);
        assert_eq!(v.part_id.as_deref(), Some("7"));
        assert_eq!(v.frame, 42);
        assert_eq!(v.counts, [1, 2, 0, 0]);
        assert_eq!(v.model_version, "1.0");
        assert_eq!(v.defects, ["scratches", "inclusion"]);
        assert_eq!(frame_verdict(&gst::Buffer::new()), None);
    }

    #[test]
    fn reads_the_part_event() {
        init();
        let s = gst::Structure::builder(PART_VERDICT_EVENT)
            .field("part-id", "3")
            .field("verdict", "REVIEW")
            .field("shadow", false)
            .field("first-frame", 10u64)
            .field("last-frame", 20u64)
            .field("minor", 4u32)
            .build();
        let unknown = gst::Structure::builder(PART_VERDICT_EVENT)
            .field("part-id", "4")
            .field("verdict", "UNKNOWN")
            .build();
        assert_eq!(part_verdict(&unknown).unwrap().verdict, Verdict::Unknown);
        let p = part_verdict(&s).unwrap();
        assert_eq!(
            (p.part_id.as_str(), p.verdict, p.last_frame, p.counts),
            ("3", Verdict::Review, 20, [0, 0, 4, 0])
        );
        let other = gst::Structure::builder("defect-part").build();
        assert_eq!(part_verdict(&other), None);
    }
}
