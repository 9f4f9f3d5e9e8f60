// SPDX-License-Identifier: MIT OR Apache-2.0
//! The element's side of a frame's report: the metas and messages of
//! [`crate::defectdetect::metas`] attached and posted, the model in use announced downstream,
//! finished parts sent.

use crate::meta::prelude::*;
use std::sync::atomic::Ordering;
use std::time::Instant;

use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;

use super::DefectDetect;
use crate::defectdetect::metas::{Report, attach_anomaly_map, attach_roi_metas, part_message};
use crate::defectdetect::settings::Settings;
use crate::element::lock;
use crate::inspect::model::Identity;
use crate::inspect::stream::Decided;

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
}
