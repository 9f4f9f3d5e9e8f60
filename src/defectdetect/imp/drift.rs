// SPDX-License-Identifier: MIT OR Apache-2.0
//! The element's side of drift ([`crate::defectdetect::drift`]): one step per frame after its
//! verdict, and what it says posted.

use crate::meta::prelude::*;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;

use super::{CAT, DefectDetect};
use crate::defectdetect::drift::{Drift, Frame, Outcome};
use crate::defectdetect::settings::Settings;
use crate::inspect::stream::{Decided, DriftImage};
use crate::monitor::drift::{Change, describe_moved};

impl DefectDetect {
    /// The drift step of a frame, after its verdict (the one call per frame), with its image
    /// statistics (`image`, taken on the frame's one mapping): updates the stream's drift (set
    /// up again when the model or policy changed) and returns what it says, to be posted.
    pub(super) fn drift_frame(
        &self,
        drift: &mut Option<Drift>,
        settings: &Settings,
        decided: &Decided,
        image: DriftImage,
    ) -> Outcome {
        let identity = &decided.identity;
        if drift.as_ref().is_some_and(|d| !d.is_for(identity)) {
            gst::info!(
                CAT,
                imp = self,
                "drift starts over for model {}",
                identity.model_id
            );
            *drift = match Drift::new(settings, identity) {
                Ok(d) => d,
                Err(reason) => {
                    return Outcome {
                        warnings: vec![format!("drift is off: {reason}")],
                        ..Default::default()
                    };
                }
            };
        }
        match drift.as_mut() {
            Some(d) => {
                let number = decided.frame_number;
                let frame = Frame { number, image };
                d.frame(frame, decided.inspected, &decided.verdict)
            }
            None => Outcome::default(),
        }
    }

    /// Posts a frame's drift outcome (no lock held): the event downstream at every window, the
    /// message and a warning at an episode's start, the message at its end.
    pub(super) fn drift_post(&self, outcome: Outcome) {
        for line in &outcome.info {
            gst::info!(CAT, imp = self, "{line}");
        }
        for warning in &outcome.warnings {
            gst::element_imp_warning!(self, gst::StreamError::Failed, ("{warning}"));
        }
        let Some(report) = outcome.report else {
            return;
        };
        gst::debug!(
            CAT,
            imp = self,
            "drift window at frame {}: {}",
            report.frame,
            report
                .features
                .iter()
                .map(|f| format!("{} {:.2}", f.name, f.score))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let _ = self.obj().src_pad().push_event(report.to_event());
        match outcome.change {
            Some(Change::Onset) => {
                gst::element_imp_warning!(
                    self,
                    gst::StreamError::Failed,
                    (
                        "drift episode {} at frame {}: {}",
                        report.episode,
                        report.frame,
                        describe_moved(&report)
                    )
                );
                let _ = self.obj().post_message(
                    gst::message::Element::builder(report.to_structure())
                        .src(&*self.obj())
                        .build(),
                );
            }
            Some(Change::Recovery) => {
                gst::info!(
                    CAT,
                    imp = self,
                    "drift episode {} ended at frame {}",
                    report.episode,
                    report.frame
                );
                let _ = self.obj().post_message(
                    gst::message::Element::builder(report.to_structure())
                        .src(&*self.obj())
                        .build(),
                );
            }
            None => {}
        }
    }
}
