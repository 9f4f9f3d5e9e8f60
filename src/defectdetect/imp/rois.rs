// SPDX-License-Identifier: MIT OR Apache-2.0
//! `defectdetect on-rois=true`: a classifier names the regions of interest already on the
//! buffer (through the engine's region path, [`crate::inspect::model::Loaded::judge_regions`])
//! and the frame's and the parts' verdicts are re-decided by its policy on the classified
//! labels.

use crate::meta::prelude::*;
use gst::subclass::prelude::*;

use super::{CAT, DefectDetect, Running};
use crate::defectdetect::metas::{classification, restage_verdict};
use crate::defectdetect::settings::Settings;
use crate::element::lock;
use crate::inspect::checks;
use crate::inspect::flow::FrameError;
use crate::inspect::stream::Caps;
use crate::meta;
use crate::video::with_frame_view_or;

/// What a region frame starts from: the caps and its number.
struct FrameStart {
    info: std::sync::Arc<gst_video::VideoInfo>,
    caps: Caps,
    frame_number: u64,
}

impl DefectDetect {
    /// `on-rois`: classifies the crop of every `GstVideoRegionOfInterestMeta` already on the
    /// buffer (clipped to the frame; at most `max-rois` of them) and adds a `classification`
    /// structure (`label`, `label_id`, `confidence`, and the policy's `severity` and `decision`
    /// for that class) to it, as `gvaclassify` does. The frame's verdict is then re-decided by
    /// this policy on the classified labels ([`restage_verdict`]): the buffer's
    /// `DefectVerdictMeta` is replaced and a `defect-verdict` message posted.
    pub(super) fn classify_rois(
        &self,
        buffer: &mut gst::BufferRef,
        settings: &Settings,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut current_guard = self.engine.slot.lock_current();
        let start = {
            let mut running = lock(&self.running);
            let Running {
                info: Some(info),
                stream: Some(stream),
                challenger,
                ..
            } = &mut *running
            else {
                return Err(self.not_negotiated());
            };
            self.adopt(&mut current_guard, stream.frame_number, challenger.as_ref());
            let (frame_number, _) = stream.next_frame(None);
            FrameStart {
                info: info.clone(),
                caps: stream.caps,
                frame_number,
            }
        };
        let Some(current) = current_guard.as_mut() else {
            gst::element_imp_error!(self, gst::CoreError::Negotiation, ("no model loaded"));
            return Err(gst::FlowError::NotNegotiated);
        };
        let loaded = &mut current.model;
        let identity = loaded.identity.clone();
        let task = (identity.model_id.as_str(), identity.model.task);
        if let Some(reason) = checks::needs_classifier("on-rois", task) {
            gst::element_imp_error!(self, gst::LibraryError::Settings, ("{reason}"));
            return Err(gst::FlowError::Error);
        }
        let (rects, upstream): (Vec<(u32, u32, u32, u32)>, Vec<_>) = buffer
            .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
            .map(|m| (m.rect(), meta::DetectionParams::of_roi(&m)))
            .unzip();
        // A frame without regions is still re-decided (its verdict and part).
        let max_rois = settings.max_rois as usize;
        let (regions, results) = self.checked(with_frame_view_or(buffer, &start.info, |view| {
            let input = start
                .caps
                .input(view.map_err(FrameError::Unmapped)?, (0, 0), None, false);
            Ok::<_, FrameError>(loaded.judge_regions(&input, &rects, max_rois)?)
        }))?;
        drop(current_guard);
        for (mut roi, result) in buffer
            .iter_meta_mut::<gst_video::VideoRegionOfInterestMeta>()
            .zip(&results)
        {
            if let Some(j) = result.as_ref().map(|v| v.judged[0]) {
                let label = identity.model.class_name(j.detection.class_id);
                let mut c = classification(j.detection.class_id, &label, j.detection.confidence);
                c.severity = Some(j.severity);
                c.decision = Some(j.decision);
                roi.add_param(c.to_roi_param());
            }
        }
        // The frame's verdict follows this policy on each region's classified label.
        let upstream = upstream
            .into_iter()
            .map(|read| read.and_then(|r| self.problems.check(&*self.obj(), *CAT, r)))
            .collect::<Vec<_>>();
        let restaged = meta::VerdictMeta::from_buffer(buffer)
            .and_then(|read| self.problems.check(&*self.obj(), *CAT, read))
            .and_then(|verdict| {
                restage_verdict(verdict, &regions.clipped, &upstream, &results, &|id| {
                    identity.model.class_name(id)
                })
            });
        let over_limit = {
            let mut running = lock(&self.running);
            let stream = running
                .stream
                .as_mut()
                .ok_or(gst::FlowError::NotNegotiated)?;
            if let Some(verdict) = &restaged
                && let Some(part_id) = &verdict.part_id
            {
                let result_frame = verdict.source_frame.unwrap_or(verdict.frame);
                stream.staged_parts.observe(
                    part_id,
                    result_frame,
                    verdict.verdict,
                    &verdict.counts,
                );
            }
            stream.warned.regions_over_limit(rects.len(), max_rois)
        };
        if let Some(warning) = over_limit {
            gst::element_imp_warning!(self, gst::StreamError::Failed, ("{warning}"));
        }
        gst::trace!(
            CAT,
            imp = self,
            "frame {}: {} regions, {} left unclassified over max-rois",
            start.frame_number,
            rects.len(),
            regions.over_limit
        );
        if let Some(verdict) = restaged {
            verdict.replace_on(buffer);
            let running_time = self.running_time(buffer);
            self.post(verdict.to_message(buffer.pts(), running_time));
        }
        Ok(gst::FlowSuccess::Ok)
    }

    /// `on-rois`: a part verdict from upstream is re-decided from this element's re-decided
    /// frames of the part, when they hold every result of it (else it passes unchanged).
    pub(super) fn restage_part(&self, event: gst::Event) -> gst::Event {
        let gst::EventView::CustomDownstream(custom) = event.view() else {
            return event;
        };
        let Some(Ok(mut part)) = custom
            .structure()
            .and_then(meta::PartVerdictMeta::from_structure)
        else {
            return event;
        };
        let restaged = lock(&self.running).stream.as_mut().and_then(|stream| {
            stream
                .staged_parts
                .finish(&part.part_id, part.verdict, part.inspected_frames)
        });
        let Some((verdict, counts)) = restaged else {
            gst::debug!(
                CAT,
                imp = self,
                "part {} keeps the upstream verdict",
                part.part_id
            );
            return event;
        };
        part.verdict = verdict;
        part.counts = counts;
        self.post(part.to_structure());
        part.to_event()
    }
}
