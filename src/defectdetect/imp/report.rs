// SPDX-License-Identifier: MIT OR Apache-2.0
//! The element's side of a frame's report: the metas and messages of
//! [`crate::defectdetect::metas`] attached and posted, the model in use announced downstream,
//! finished parts sent, the warnings and errors the engine's notes ask for, and the latency
//! raised.

use crate::meta::prelude::*;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;

use super::{CAT, DefectDetect};
use crate::defectdetect::metas::{Report, attach_anomaly_map, attach_roi_metas, part_message};
use crate::defectdetect::settings::Settings;
use crate::element::lock;
use crate::inspect::model::Identity;
use crate::inspect::stream::{Applied, Decided};

impl DefectDetect {
    /// Attaches the metas, posts the messages and reports the finished parts.
    pub(super) fn report(
        &self,
        buffer: &mut gst::BufferRef,
        settings: &Settings,
        decided: Decided,
        started: Instant,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let identity = &decided.identity;
        let info = &identity.model;
        let total = started.elapsed();
        self.announce_model(identity);
        let report = Report {
            inference_ms: decided.inference.as_secs_f64() * 1e3,
            total_ms: total.as_secs_f64() * 1e3,
            frame_number: decided.frame_number,
            inspected: decided.inspected,
            carried_from: decided.carried_from,
            skipped: self.engine.skipped.load(Ordering::Relaxed),
            part_id: decided.part_id.as_deref(),
            shadow: settings.shadow_mode,
            model_id: &identity.model_id,
            model: info,
            policy_sha256: identity.policy_sha256.as_deref(),
            verdict: &decided.verdict,
            class_name: &|id| info.class_name(id),
        };
        attach_roi_metas(
            buffer,
            info.task,
            &decided.verdict,
            decided.width,
            decided.height,
            report.class_name,
        );
        report.attach_verdict_meta(buffer);
        if let (Some(output), Some(thresholds)) = (&decided.anomaly, identity.anomaly_thresholds) {
            attach_anomaly_map(
                buffer,
                output,
                thresholds.pixel,
                decided.width,
                decided.height,
            );
        }
        let running_time = self.running_time(buffer);
        let messages = [
            report.detections_message(buffer, running_time),
            report.verdict_message(buffer, running_time),
        ];
        if !settings.async_inference {
            self.track_latency(total);
        }
        for message in messages {
            self.post(message);
        }
        for part in &decided.parts {
            self.report_part(part_message(part, settings.shadow_mode, &identity.model_id));
        }
        Ok(gst::FlowSuccess::Ok)
    }

    /// The model in use goes downstream as a sticky `model-info` event ahead of its first
    /// frame (again after a swap), so that elements downstream know its classes
    /// (`defectcapture` names them in its dataset files).
    fn announce_model(&self, identity: &Identity) {
        {
            let mut running = lock(&self.running);
            if running.announced_model.as_deref() == Some(identity.model_id.as_str()) {
                return;
            }
            running.announced_model = Some(identity.model_id.clone());
        }
        let _ = self
            .obj()
            .src_pad()
            .push_event(gst::event::CustomDownstreamSticky::new(
                identity.describe().to_structure(),
            ));
    }

    /// A finished part goes downstream in-band, as a custom event ahead of the next frame (or
    /// of EOS), and onto the bus.
    pub(super) fn report_part(&self, part: gst::Structure) {
        let _ = self
            .obj()
            .src_pad()
            .push_event(gst::event::CustomDownstream::new(part.clone()));
        self.post(part);
    }

    /// Posts what the worker's results asked for: decoder warnings, and an error for a failed
    /// inference.
    pub(super) fn post_applied(&self, applied: Applied) -> Result<(), gst::FlowError> {
        self.warn_decode(applied.warnings);
        for note in applied.non_finite {
            self.warn_non_finite(Some(note));
        }
        match applied.failure {
            Some(reason) => {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Failed,
                    ("inference failed: {reason}")
                );
                Err(gst::FlowError::Error)
            }
            None => Ok(()),
        }
    }

    /// Warns, once per stream and kind, about what the decoder dropped or changed.
    pub(super) fn warn_decode(&self, warnings: Vec<String>) {
        for warning in warnings {
            gst::element_imp_warning!(self, gst::StreamError::Decode, ("{warning}"));
        }
    }

    /// Says why an anomaly model's frame with NaN or infinite scores was not passed: a warning
    /// the first time in a stream, the debug log after.
    pub(super) fn warn_non_finite(&self, note: Option<(String, bool)>) {
        match note {
            Some((text, true)) => gst::element_imp_warning!(
                self,
                gst::StreamError::Decode,
                ("{text}; later frames like it are logged at debug level")
            ),
            Some((text, false)) => gst::debug!(CAT, imp = self, "{text}"),
            None => {}
        }
    }

    /// Raises the reported latency when a frame took longer than it says
    /// ([`crate::inspect::Engine::raise_latency`]) and, in a live pipeline, asks the pipeline to recompute its
    /// latency. A non-live pipeline has no latency to keep: no message (gst-launch-1.0 would
    /// print "Redistribute latency..." for each).
    pub(super) fn track_latency(&self, took: Duration) {
        let Some(reported) = self.engine.raise_latency(took) else {
            return;
        };
        gst::debug!(
            CAT,
            imp = self,
            "a frame took {} (latency said {}): latency raised",
            gst::ClockTime::from_nseconds(took.as_nanos() as u64),
            gst::ClockTime::from_nseconds(reported.as_nanos() as u64)
        );
        let _ = self
            .obj()
            .post_message(gst::message::Latency::builder().src(&*self.obj()).build());
    }

    pub(super) fn running_time(&self, buffer: &gst::BufferRef) -> Option<gst::ClockTime> {
        self.obj()
            .segment()
            .downcast_ref::<gst::ClockTime>()
            .and_then(|segment| segment.to_running_time(buffer.pts()))
    }

    pub(super) fn post(&self, structure: gst::Structure) {
        let _ = self.obj().post_message(
            gst::message::Element::builder(structure)
                .src(&*self.obj())
                .build(),
        );
    }
}
