// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `defectmetricssink` element: video buffers with metas and `defectdetect`'s events in,
//! a [`Station`] of the process-wide metrics out, served by an [`Endpoint`].
//!
//! Locks: `settings` (properties), `state` (the streaming thread's; a scrape never takes
//! it), `bound` (an atomic). None is held while another is taken.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;

use crate::element::{self, MetaProblems, lock};
use crate::meta::prelude::*;
use crate::meta::{
    ChallengerFrame, Classification, DetectionParams, DriftReport, PartVerdictMeta, Severity,
    VerdictMeta,
};
use crate::monitor::metrics::{DetectionSeen, FrameSeen, ModelSeen, Station};
use crate::monitor::server::{self, Endpoint};

static CAT: LazyLock<gst::DebugCategory> =
    LazyLock::new(|| element::debug_category("defectmetricssink", "Defect metrics for Prometheus"));

element::subclass!(DefectMetricsSink, "GstDefectMetricsSink", gst_base::BaseSink, element::pads(&element::verdict_caps(), None) => "Defect metrics sink", "Sink/Network", "Serves inspection metrics (verdicts, detections, latency, model, drift) to Prometheus over HTTP");

#[derive(Debug, Clone)]
struct Settings {
    host: String,
    port: u32,
    source_id: String,
}

element::settings_properties!(Settings for DefectMetricsSink {
    "host" => host,
    "port" => port,
    "source-id" => source_id,
});

/// What lives between start and stop.
struct State {
    station: Station,
    /// Held while running: the last element on a port to stop closes it.
    _endpoint: Arc<Endpoint>,
    /// Whether a frame without a verdict was reported on the bus.
    warned_no_verdict: bool,
}

#[derive(Default)]
pub struct DefectMetricsSink {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    /// The port listened on while running, 0 when stopped.
    bound: AtomicU32,
    /// The input is `defectpartmux`'s joined parts: its buffers carry no frame (the parts come
    /// as events).
    parts: std::sync::atomic::AtomicBool,
    problems: MetaProblems,
}

impl ObjectImpl for DefectMetricsSink {
    element::sink::constructed!(true);

    element::properties! {
        string("host", "Host", "127.0.0.1").mutable_ready(): "Address to serve the metrics on (0.0.0.0: every interface)",
        uint("port", "Port", 0..=u16::MAX.into(), crate::monitor::DEFAULT_PORT.into()).mutable_ready(): "TCP port of http://host:port/metrics (0 = any free port, see bound-port); elements of one process on the same host and port share it",
        string("source-id", "Source id", "camera-0").mutable_ready(): "The source label of this element's series: the camera or station, unique in the process",
        uint("bound-port", "Bound port", 0..=u16::MAX.into()).read_only(): "The port the metrics are served on while running (0 when stopped)",
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        element::set_property(&self.settings, value, pspec);
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "bound-port" => self.bound.load(Ordering::Relaxed).to_value(),
            _ => element::property(&self.settings, pspec),
        }
    }
}

impl BaseSinkImpl for DefectMetricsSink {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let s = lock(&self.settings).clone();
        let port = element::sink::port(s.port)?;
        if s.source_id.is_empty() {
            return Err(gst::error_msg!(
                gst::LibraryError::Settings,
                ["source-id is empty: it labels this element's series"]
            ));
        }
        let station = Station::new(&s.source_id)
            .map_err(|e| gst::error_msg!(gst::LibraryError::Settings, ["{}", e]))?;
        let endpoint =
            server::endpoint(&s.host, port, crate::monitor::exposition).map_err(|e| {
                gst::error_msg!(
                    gst::ResourceError::OpenRead,
                    ("Cannot serve metrics on {}:{}", s.host, port),
                    ["{}", e]
                )
            })?;
        gst::info!(
            CAT,
            imp = self,
            "serving source {} at {}",
            s.source_id,
            endpoint.url()
        );
        self.bound
            .store(endpoint.address().port().into(), Ordering::Relaxed);
        *lock(&self.state) = Some(State {
            station,
            _endpoint: endpoint,
            warned_no_verdict: false,
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        // Dropping the station removes its series; the endpoint closes with its last user.
        let state = lock(&self.state).take();
        drop(state);
        self.bound.store(0, Ordering::Relaxed);
        Ok(())
    }

    fn set_caps(&self, caps: &gst::Caps) -> Result<(), gst::LoggableError> {
        self.parts.store(
            element::is_parts_caps(caps),
            std::sync::atomic::Ordering::Relaxed,
        );
        Ok(())
    }

    fn render(&self, buffer: &gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        if self.parts.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(gst::FlowSuccess::Ok);
        }
        let verdict = VerdictMeta::from_buffer(buffer)
            .and_then(|read| self.problems.check(&*self.obj(), *CAT, read));
        let detections = match &verdict {
            Some(v) if v.inspected && !v.carried => self.detections(buffer),
            _ => Vec::new(),
        };
        let frame = FrameSeen {
            verdict: verdict.as_ref().map(|v| v.verdict),
            inspected: verdict.as_ref().is_some_and(|v| v.inspected),
            carried: verdict.as_ref().is_some_and(|v| v.carried),
            model: verdict.as_ref().map(|v| ModelSeen {
                id: &v.model.id,
                name: &v.model.name,
                version: &v.model.version,
                task: &v.task,
            }),
            inference_seconds: verdict.as_ref().map(|v| v.inference_ms / 1000.0),
            latency_seconds: verdict.as_ref().map(|v| v.total_ms / 1000.0),
            anomaly_score: verdict.as_ref().and_then(|v| v.anomaly_score),
            detections,
        };
        let warn = {
            let mut guard = lock(&self.state);
            let state = guard.as_mut().ok_or(gst::FlowError::Flushing)?;
            state.station.frame(&frame);
            frame.verdict.is_none() && !std::mem::replace(&mut state.warned_no_verdict, true)
        };
        if warn {
            gst::element_imp_warning!(
                self,
                gst::StreamError::Format,
                ("A frame came without a defect verdict: is defectdetect upstream?"),
                ["Counted in defect_frames_without_verdict_total; said once"]
            );
        }
        Ok(gst::FlowSuccess::Ok)
    }

    fn event(&self, event: gst::Event) -> bool {
        if let gst::EventView::CustomDownstream(custom) = event.view()
            && let Some(structure) = custom.structure()
        {
            if let Some(part) = PartVerdictMeta::from_structure(structure)
                .and_then(|read| self.problems.check(&*self.obj(), *CAT, read))
            {
                if let Some(state) = lock(&self.state).as_mut() {
                    state.station.part(part.verdict);
                }
            } else if let Some(frame) = ChallengerFrame::from_structure(structure)
                .and_then(|read| self.problems.check(&*self.obj(), *CAT, read))
            {
                if let Some(state) = lock(&self.state).as_mut() {
                    state.station.challenger(&frame);
                }
            } else if let Some(report) = DriftReport::from_structure(structure)
                .and_then(|read| self.problems.check(&*self.obj(), *CAT, read))
                && let Some(state) = lock(&self.state).as_mut()
            {
                state.station.drift(&report);
            }
        }
        self.parent_event(event)
    }
}

impl DefectMetricsSink {
    /// The frame's detections: a region a second stage classified (and the detector's
    /// policy did not ignore) counts with the classification's class, severity, decision
    /// and confidence.
    fn detections(&self, buffer: &gst::BufferRef) -> Vec<DetectionSeen> {
        let obj = self.obj();
        buffer
            .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
            .filter_map(|roi| {
                let params = self
                    .problems
                    .check(&*obj, *CAT, DetectionParams::of_roi(&roi)?)?;
                let classification = Classification::of_roi(&roi)
                    .and_then(|read| self.problems.check(&*obj, *CAT, read))
                    .filter(|_| params.counted());
                let severity = |s: Option<Severity>| s.map(Severity::as_str);
                Some(match classification {
                    Some(c) if c.decision.is_some() => DetectionSeen {
                        class: c.label,
                        severity: severity(c.severity),
                        decision: c.decision.map(|d| d.as_str()),
                        confidence: c.confidence,
                    },
                    _ => DetectionSeen {
                        class: params.label,
                        severity: severity(params.severity),
                        decision: params.decision.map(|d| d.as_str()),
                        confidence: params.confidence,
                    },
                })
            })
            .collect()
    }
}
