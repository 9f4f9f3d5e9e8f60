// SPDX-License-Identifier: MIT OR Apache-2.0
//! The element's side of the challenger ([`crate::defectdetect::challenger`]): set up at start,
//! offered the frames production inferred, its results sent downstream, its summary posted at
//! end of stream. Which frames it sees and which settings combine with it is
//! [`crate::inspect::checks`].

use crate::meta::prelude::*;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;

use super::{CAT, DefectDetect, refused};
use crate::defectdetect::challenger::{Challenger, Job};
use crate::defectdetect::settings::Settings;
use crate::inspect::checks::{self, Combination};
use crate::inspect::stream::Decided;

impl DefectDetect {
    /// Start: stops the previous challenger, and loads the new one's model on its thread (an
    /// error names it) when there is one.
    pub(super) fn start_challenger(
        &self,
        settings: &Settings,
        combination: Combination,
    ) -> Result<Option<Challenger>, gst::ErrorMessage> {
        if let Some(previous) = self.take_challenger() {
            previous.stop();
        }
        let Some(request) = settings.challenger_request() else {
            return Ok(None);
        };
        if let Some(refusal) = checks::challenger(combination) {
            return Err(refused(refusal));
        }
        let log = (*CAT, self.obj().upcast_ref::<gst::Element>().downgrade());
        let (challenger, warnings) = Challenger::start(request, log).map_err(|reason| {
            gst::error_msg!(
                gst::ResourceError::Read,
                [
                    "challenger-model {}: {reason}",
                    settings
                        .challenger_model
                        .as_deref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                ]
            )
        })?;
        for warning in warnings {
            gst::element_imp_warning!(self, gst::LibraryError::Settings, ("challenger: {warning}"));
        }
        let production = self
            .engine
            .slot
            .published()
            .map(|i| i.model_id.clone())
            .unwrap_or_default();
        gst::info!(
            CAT,
            imp = self,
            "production model {production}, challenger model {} (every {} frame(s){})",
            challenger.model_id,
            settings.challenger_interval,
            if settings.challenger_wait {
                ", waited for"
            } else {
                ""
            }
        );
        Ok(Some(challenger))
    }

    /// Offers a frame production inferred (not one carrying an earlier result) to the
    /// challenger, every `challenger-interval` frames, with production's judgement of it; then
    /// sends the challenger's results so far.
    pub(super) fn offer_challenger(
        &self,
        challenger: &Challenger,
        buffer: &gst::BufferRef,
        settings: &Settings,
        decided: &Decided,
    ) {
        let due = checks::challenger_due(
            decided.inspected,
            decided.carried_from,
            decided.frame_number,
            settings.challenger_interval,
        );
        if due && let Some(caps) = self.caps() {
            let job = Job::new(buffer, caps, settings, decided);
            challenger.submit(job, settings.challenger_wait);
        }
        self.send_challenger_results(challenger);
    }

    /// Sends the challenger's results so far downstream, each as a `defect-challenger-frame`
    /// event (before the current frame), and warns once when it stopped judging.
    fn send_challenger_results(&self, challenger: &Challenger) {
        let (finished, failure) = challenger.take_finished();
        if let Some(reason) = failure {
            gst::element_imp_warning!(self, gst::StreamError::Failed, ("{reason}"));
        }
        let obj = self.obj();
        let pad = obj.src_pad();
        for frame in finished {
            if !pad.push_event(frame.to_event()) {
                gst::debug!(
                    CAT,
                    imp = self,
                    "challenger event of frame {} not sent",
                    frame.frame
                );
            }
        }
    }

    /// End of stream: waits for the challenger's last frames, sends their results, and posts
    /// the `defect-challenger` summary.
    pub(super) fn finish_challenger(&self) {
        let Some(challenger) = self.challenger() else {
            return;
        };
        if !challenger.wait_idle() {
            gst::debug!(
                CAT,
                imp = self,
                "end of stream without the challenger's last frame"
            );
        }
        self.send_challenger_results(&challenger);
        let summary = challenger.summary();
        gst::info!(
            CAT,
            imp = self,
            "challenger {} beside {}: {} frames judged, {} skipped",
            summary.model_id,
            summary.production_model_id,
            summary.judged_frames,
            summary.skipped_frames
        );
        self.post(summary.to_structure());
    }
}
