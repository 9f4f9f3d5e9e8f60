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

use super::detection::Reason;
use super::fields as f;
use super::structure::{MetaError, Reader};
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

impl AgreementRow {
    fn to_structure(&self) -> gst::Structure {
        gst::Structure::builder(f::AGREEMENT)
            .field(f::AGREEMENT_LEVEL, &self.level)
            .field(f::LABEL, &self.label)
            .field(f::FOUND_BY_BOTH, self.both)
            .field(f::ONLY_PRODUCTION, self.only_production)
            .field(f::ONLY_CHALLENGER, self.only_challenger)
            .build()
    }

    fn from_structure(s: &gst::StructureRef) -> Result<Self, MetaError> {
        let r = Reader::new(s);
        Ok(Self {
            level: r.required(f::AGREEMENT_LEVEL)?,
            label: r.required(f::LABEL)?,
            both: r.required(f::FOUND_BY_BOTH)?,
            only_production: r.required(f::ONLY_PRODUCTION)?,
            only_challenger: r.required(f::ONLY_CHALLENGER)?,
        })
    }
}

fn rows(rows: &[AgreementRow]) -> gst::Array {
    gst::Array::new(rows.iter().map(AgreementRow::to_structure))
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

impl ChallengerFrame {
    pub fn to_structure(&self) -> gst::Structure {
        let detections =
            gst::Array::new(self.detections.iter().map(|d| d.to_structure(f::DETECTION)));
        gst::Structure::builder(f::CHALLENGER_FRAME)
            .field(f::FRAME, self.frame)
            .field_if_some(f::PTS, self.pts)
            .field(f::MODEL_ID, &self.model_id)
            .field(f::PRODUCTION_MODEL_ID, &self.production_model_id)
            .field(f::CHALLENGER_SKIPPED, self.skipped)
            .field(f::VERDICT, self.verdict.as_str())
            .field(f::PRODUCTION_VERDICT, self.production_verdict.as_str())
            .field(f::DETECTIONS, detections)
            .field(f::AGREEMENT, rows(&self.agreement))
            .build()
    }

    /// The frame's result in an event's structure; None when it is another structure.
    pub fn from_structure(s: &gst::StructureRef) -> Option<Result<Self, MetaError>> {
        (s.name() == f::CHALLENGER_FRAME).then(|| {
            let r = Reader::new(s);
            Ok(Self {
                frame: r.required(f::FRAME)?,
                pts: r.optional(f::PTS)?,
                model_id: r.required(f::MODEL_ID)?,
                production_model_id: r.required(f::PRODUCTION_MODEL_ID)?,
                skipped: r.required(f::CHALLENGER_SKIPPED)?,
                verdict: r.named(f::VERDICT, Verdict::parse)?,
                production_verdict: r.named(f::PRODUCTION_VERDICT, Verdict::parse)?,
                detections: r.structures(f::DETECTIONS, Reason::from_structure)?,
                agreement: r.structures(f::AGREEMENT, AgreementRow::from_structure)?,
            })
        })
    }

    /// The custom downstream serialized event.
    pub fn to_event(&self) -> gst::Event {
        gst::event::CustomDownstream::new(self.to_structure())
    }
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

impl ChallengerSummary {
    pub fn to_structure(&self) -> gst::Structure {
        gst::Structure::builder(f::CHALLENGER_SUMMARY)
            .field(f::MODEL_ID, &self.model_id)
            .field(f::PRODUCTION_MODEL_ID, &self.production_model_id)
            .field(f::JUDGED_FRAMES, self.judged_frames)
            .field(f::SKIPPED_FRAMES, self.skipped_frames)
            .field(f::AGREEMENT, rows(&self.agreement))
            .build()
    }

    pub fn from_structure(s: &gst::StructureRef) -> Option<Result<Self, MetaError>> {
        (s.name() == f::CHALLENGER_SUMMARY).then(|| {
            let r = Reader::new(s);
            Ok(Self {
                model_id: r.required(f::MODEL_ID)?,
                production_model_id: r.required(f::PRODUCTION_MODEL_ID)?,
                judged_frames: r.required(f::JUDGED_FRAMES)?,
                skipped_frames: r.required(f::SKIPPED_FRAMES)?,
                agreement: r.structures(f::AGREEMENT, AgreementRow::from_structure)?,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{Decision, Severity};

    fn row(level: &str) -> AgreementRow {
        AgreementRow {
            level: level.into(),
            label: "scratch".into(),
            both: 3,
            only_production: 1,
            only_challenger: 2,
        }
    }

    #[test]
    fn frames_and_summaries_round_trip_through_their_structures() {
        gst::init().unwrap();
        let frame = ChallengerFrame {
            frame: 7,
            pts: Some(233_333_333),
            model_id: "b:1".into(),
            production_model_id: "a:1".into(),
            skipped: false,
            verdict: Verdict::Fail,
            production_verdict: Verdict::Pass,
            detections: vec![Reason {
                label_id: 0,
                label: "scratch".into(),
                confidence: 0.5,
                x_min: 1.0,
                y_min: 2.0,
                x_max: 3.0,
                y_max: 4.0,
                severity: Severity::Major,
                decision: Decision::Fail,
                peak_score: None,
                mean_score: None,
            }],
            agreement: vec![row("class")],
        };
        let read = ChallengerFrame::from_structure(&frame.to_structure());
        assert_eq!(read.unwrap().unwrap(), frame);
        let summary = ChallengerSummary {
            model_id: "b:1".into(),
            production_model_id: "a:1".into(),
            judged_frames: 10,
            skipped_frames: 2,
            agreement: vec![row("class"), row("verdict")],
        };
        let read = ChallengerSummary::from_structure(&summary.to_structure());
        assert_eq!(read.unwrap().unwrap(), summary);
        let mut broken = summary.to_structure();
        broken.remove_field(f::JUDGED_FRAMES);
        let error = ChallengerSummary::from_structure(&broken)
            .unwrap()
            .unwrap_err();
        assert_eq!(error.field, f::JUDGED_FRAMES);
    }
}
