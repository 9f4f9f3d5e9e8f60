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

use super::fields as f;
use super::structure::{MetaError, Reader};
use super::{AgreementRow, ChallengerFrame, ChallengerSummary, Reason, ReasonExt, Verdict};

fn row_to_structure(row: &AgreementRow) -> gst::Structure {
    gst::Structure::builder(f::AGREEMENT)
        .field(f::AGREEMENT_LEVEL, &row.level)
        .field(f::LABEL, &row.label)
        .field(f::FOUND_BY_BOTH, row.both)
        .field(f::ONLY_PRODUCTION, row.only_production)
        .field(f::ONLY_CHALLENGER, row.only_challenger)
        .build()
}

fn row_from_structure(s: &gst::StructureRef) -> Result<AgreementRow, MetaError> {
    let r = Reader::new(s);
    Ok(AgreementRow {
        level: r.required(f::AGREEMENT_LEVEL)?,
        label: r.required(f::LABEL)?,
        both: r.required(f::FOUND_BY_BOTH)?,
        only_production: r.required(f::ONLY_PRODUCTION)?,
        only_challenger: r.required(f::ONLY_CHALLENGER)?,
    })
}

fn rows(rows: &[AgreementRow]) -> gst::Array {
    gst::Array::new(rows.iter().map(row_to_structure))
}

/// A [`ChallengerFrame`] as the `defect-challenger-frame` event's structure.
pub trait ChallengerFrameExt: Sized {
    fn to_structure(&self) -> gst::Structure;
    /// The frame's result in an event's structure; None when it is another structure.
    fn from_structure(s: &gst::StructureRef) -> Option<Result<Self, MetaError>>;
    /// The custom downstream serialized event.
    fn to_event(&self) -> gst::Event;
}

impl ChallengerFrameExt for ChallengerFrame {
    fn to_structure(&self) -> gst::Structure {
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

    fn from_structure(s: &gst::StructureRef) -> Option<Result<Self, MetaError>> {
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
                agreement: r.structures(f::AGREEMENT, row_from_structure)?,
            })
        })
    }

    fn to_event(&self) -> gst::Event {
        gst::event::CustomDownstream::new(self.to_structure())
    }
}

/// A [`ChallengerSummary`] as the `defect-challenger` message's structure and the
/// `challenger-stats` property.
pub trait ChallengerSummaryExt: Sized {
    fn to_structure(&self) -> gst::Structure;
    /// The summary in a structure; None when it is another structure.
    fn from_structure(s: &gst::StructureRef) -> Option<Result<Self, MetaError>>;
}

impl ChallengerSummaryExt for ChallengerSummary {
    fn to_structure(&self) -> gst::Structure {
        gst::Structure::builder(f::CHALLENGER_SUMMARY)
            .field(f::MODEL_ID, &self.model_id)
            .field(f::PRODUCTION_MODEL_ID, &self.production_model_id)
            .field(f::JUDGED_FRAMES, self.judged_frames)
            .field(f::SKIPPED_FRAMES, self.skipped_frames)
            .field(f::AGREEMENT, rows(&self.agreement))
            .build()
    }

    fn from_structure(s: &gst::StructureRef) -> Option<Result<Self, MetaError>> {
        (s.name() == f::CHALLENGER_SUMMARY).then(|| {
            let r = Reader::new(s);
            Ok(Self {
                model_id: r.required(f::MODEL_ID)?,
                production_model_id: r.required(f::PRODUCTION_MODEL_ID)?,
                judged_frames: r.required(f::JUDGED_FRAMES)?,
                skipped_frames: r.required(f::SKIPPED_FRAMES)?,
                agreement: r.structures(f::AGREEMENT, row_from_structure)?,
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
