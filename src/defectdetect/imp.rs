// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `defectdetect` element: an in-place `BaseTransform` adapting the inspection engine
//! ([`crate::inspect`]) to GStreamer buffers, events, metas and messages.
//!
//! Who holds what:
//! - `settings`: the properties (set by the application at any time; copied by the
//!   streaming thread at each frame, never held while another lock is taken);
//! - `engine` ([`crate::inspect::Engine`], shared with the asynchronous worker): the model
//!   slot, the interrupter of the model in use and the counters. Only the thread that infers
//!   (the streaming thread, or the worker of [`super::worker`]) locks the model in use;
//!   property changes only queue a background build;
//! - `running`: what lives between start and stop (the worker handle, the caps, the stream
//!   state of [`crate::inspect::stream`]). The one lock of the running state: held only to
//!   read or update it, never across an inference or a wait.
//!
//! Lock order, where two are held: the slot's current model, then `running`, then the short
//! locks inside the engine and the worker (the slot's control, the interrupter, the worker's
//! results).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;

use super::challenger::{self, Challenger};
use super::metas::{
    Report, attach_anomaly_map, attach_roi_metas, classification, part_message, restage_verdict,
};
use super::settings::{self, Change, Settings};
use super::worker::{Job, Submit, Worker};
use crate::analysis::task::Task;
use crate::element::{self, lock};
use crate::frame::FrameView;
use crate::inspect::infer::InferError;
use crate::inspect::model::{self, LoadError, Loaded};
use crate::inspect::slot::{BuildFn, Current, Outcome, ReportFn};
use crate::inspect::stream::{Applied, Caps, Carry, Decided, Stream};
use crate::inspect::{Engine, infer};
use crate::meta;
use crate::meta::prelude::*;
use crate::policy::{FrameVerdict, Seen};
use crate::runtime::RuntimeError;
use crate::video::{pixel_format, with_frame_view, yuv_matrix};

pub(super) static CAT: LazyLock<gst::DebugCategory> =
    LazyLock::new(|| element::debug_category("defectdetect", "Defect detection with ONNX models"));

/// What lives between start and stop.
#[derive(Default)]
struct Running {
    /// The asynchronous worker (`async-inference`).
    worker: Option<Worker>,
    /// The negotiated caps; None before the first.
    info: Option<Arc<gst_video::VideoInfo>>,
    /// The stream state, from the first caps on.
    stream: Option<Stream>,
    /// Drift against the baseline (None when switched off); see [`super::drift`].
    drift: Option<super::drift::Drift>,
    /// The model whose `model-info` went downstream last.
    announced_model: Option<String>,
}

#[derive(Default)]
pub struct DefectDetect {
    settings: Mutex<Settings>,
    engine: Arc<Engine<Settings>>,
    running: Mutex<Running>,
    /// Upstream answered the last latency query as live: only then does a latency message
    /// (which makes the pipeline recompute its latency) matter.
    upstream_live: AtomicBool,
    /// Malformed part metas and events seen (the first is a warning).
    problems: element::MetaProblems,
    /// The challenger (`challenger-model`), from start on; kept after stop for
    /// `challenger-stats`. A short lock: the handle is cloned out of it.
    challenger: Mutex<Option<Challenger>>,
}

element::subclass!(DefectDetect, "GstDefectDetect", gst_base::BaseTransform);

impl ObjectImpl for DefectDetect {
    fn properties() -> &'static [glib::ParamSpec] {
        settings::properties()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let change = lock(&self.settings).set(value, pspec);
        gst::debug!(CAT, imp = self, "set {} to {:?}", pspec.name(), value);
        match change {
            Change::None => {}
            Change::Reload => self.reload_in_background(),
            Change::Unknown => gst::warning!(CAT, imp = self, "unknown property {}", pspec.name()),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "skipped" => self.engine.skipped.load(Ordering::Relaxed).to_value(),
            "batched-frames" => self.engine.batched.load(Ordering::Relaxed).to_value(),
            "challenger-stats" => self
                .challenger()
                .map(|c| c.summary().to_structure())
                .to_value(),
            crate::meta::fields::MODEL_INFO => self
                .engine
                .slot
                .published()
                .map(|i| i.describe().to_structure())
                .to_value(),
            _ => lock(&self.settings)
                .get(pspec)
                .unwrap_or_else(|| unimplemented!("property {}", pspec.name())),
        }
    }
}

impl ElementImpl for DefectDetect {
    element::describe!(element::video_filter_pads() =>
        "Defect detector", "Filter/Analyzer/Video",
        "Detects defects with an ONNX model (YOLO-style detector, image classifier or anomaly model); attaches region-of-interest metas, verdicts and posts detections");

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        match transition {
            gst::StateChange::NullToReady => self.load()?,
            gst::StateChange::PausedToReady => {
                // Before the pads deactivate (which waits for the streaming thread): end a wait
                // for the worker at end of stream, and interrupt the inference in progress.
                if let Some(worker) = self.worker() {
                    worker.stop_waiting();
                }
                if let Some(challenger) = self.challenger() {
                    challenger.stop_waiting();
                }
                self.engine.interrupt();
            }
            _ => {}
        }
        let success = self.parent_change_state(transition)?;
        if transition == gst::StateChange::ReadyToNull {
            self.engine.clear();
        }
        Ok(success)
    }
}

impl BaseTransformImpl for DefectDetect {
    element::in_place_transform!();

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = lock(&self.settings).clone();
        if let Some(reason) = settings.tiling_error() {
            return Err(gst::error_msg!(gst::LibraryError::Settings, ["{reason}"]));
        }
        let crop = settings
            .crop()
            .map_err(|reason| gst::error_msg!(gst::LibraryError::Settings, ("{reason}")))?;
        if crop.is_some() {
            if settings.on_rois {
                return Err(gst::error_msg!(
                    gst::LibraryError::Settings,
                    ("crop and on-rois cannot be combined: on-rois classifies the regions on the buffer, crop one fixed region of the frame")
                ));
            }
            if let Some(identity) = self.engine.slot.published()
                && identity.model.task != Task::Classify
            {
                return Err(gst::error_msg!(
                    gst::LibraryError::Settings,
                    (
                        "crop needs a classifier; model {} is a {} model",
                        identity.model_id,
                        identity.model.task
                    )
                ));
            }
        }
        if settings.on_rois {
            if settings.async_inference {
                return Err(gst::error_msg!(
                    gst::LibraryError::Settings,
                    [
                        "on-rois classifies on the streaming thread: it cannot be combined with async-inference"
                    ]
                ));
            }
            if let Some(identity) = self.engine.slot.published()
                && identity.model.task != Task::Classify
            {
                return Err(gst::error_msg!(
                    gst::LibraryError::Settings,
                    (
                        "on-rois needs a classifier; model {} is a {} model",
                        identity.model_id,
                        identity.model.task
                    )
                ));
            }
        }
        self.start_challenger(&settings)?;
        self.engine.resume();
        self.engine.skipped.store(0, Ordering::Relaxed);
        self.engine.batched.store(0, Ordering::Relaxed);
        let mut running = Running::default();
        if settings.async_inference {
            let worker = Worker::start(
                self.engine.clone(),
                *CAT,
                self.obj().upcast_ref::<gst::Element>().downgrade(),
            )
            .map_err(|e| {
                gst::error_msg!(
                    gst::CoreError::Thread,
                    ["cannot start the inference worker: {e}"]
                )
            })?;
            running.worker = Some(worker);
        }
        *lock(&self.running) = running;
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        // The worker is not waited for: a long inference in progress ends on its own.
        let running = std::mem::take(&mut *lock(&self.running));
        if let Some(worker) = running.worker {
            worker.stop();
        }
        if let Some(challenger) = self.challenger() {
            challenger.stop();
        }
        Ok(())
    }

    fn set_caps(&self, incaps: &gst::Caps, _outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let info = gst_video::VideoInfo::from_caps(incaps)
            .map_err(|_| gst::loggable_error!(CAT, "cannot parse video caps {incaps}"))?;
        let format = pixel_format(info.format())
            .ok_or_else(|| gst::loggable_error!(CAT, "unsupported format {:?}", info.format()))?;
        let settings = lock(&self.settings).clone();
        let identity = self
            .engine
            .slot
            .published()
            .ok_or_else(|| gst::loggable_error!(CAT, "no model loaded"))?;
        let (width, height) = (info.width(), info.height());
        let tiles = infer::tile_count(width, height, settings.tile_size, settings.tile_overlap)
            .map_err(|reason| {
                gst::element_imp_error!(self, gst::LibraryError::Settings, ("{reason}"));
                gst::loggable_error!(CAT, "too many tiles")
            })?;
        if let Some(reason) = settings
            .crop_region()
            .and_then(|crop| infer::crop_error(crop, width, height))
        {
            gst::element_imp_error!(self, gst::LibraryError::Settings, ("{reason}"));
            return Err(gst::loggable_error!(CAT, "crop outside the frame"));
        }
        let problems = identity.policy.frame_problems(width, height);
        if let Some(error) = problems.errors.first() {
            gst::element_imp_error!(self, gst::LibraryError::Settings, ("policy {error}"));
            return Err(gst::loggable_error!(CAT, "policy region outside the frame"));
        }
        for warning in &problems.warnings {
            gst::element_imp_warning!(self, gst::LibraryError::Settings, ("policy {warning}"));
        }
        gst::info!(
            CAT,
            imp = self,
            "{width}x{height} {:?} frames in {tiles} tile(s) for {}",
            info.format(),
            identity.model_id
        );
        let caps = Caps {
            width,
            height,
            format,
            yuv: yuv_matrix(&info),
        };
        let mut running = lock(&self.running);
        running.info = Some(Arc::new(info));
        match running.stream.as_mut() {
            // A caps change keeps the frame count and the part in progress.
            Some(stream) => stream.set_caps(caps),
            None => {
                // Drift: the baseline file is read here (an error names it).
                running.drift =
                    super::drift::Drift::new(&settings, &identity).map_err(|reason| {
                        gst::element_imp_error!(self, gst::ResourceError::Read, ("{reason}"));
                        gst::loggable_error!(CAT, "drift baseline")
                    })?;
                running.stream = Some(Stream::new(caps));
            }
        }
        Ok(())
    }

    fn query(&self, direction: gst::PadDirection, query: &mut gst::QueryRef) -> bool {
        if direction == gst::PadDirection::Src
            && let gst::QueryViewMut::Latency(latency) = query.view_mut()
        {
            let upstream = self.obj().sink_pad().peer_query(latency.query_mut());
            if upstream {
                let (live, min, max) = latency.result();
                self.upstream_live.store(live, Ordering::Relaxed);
                let ours = if lock(&self.settings).async_inference {
                    gst::ClockTime::ZERO
                } else {
                    gst::ClockTime::from_nseconds(self.engine.latency_ns.load(Ordering::Relaxed))
                };
                gst::debug!(CAT, imp = self, "adding {ours} of processing latency");
                latency.set(live, min + ours, max.map(|m| m + ours));
            }
            return upstream;
        }
        BaseTransformImplExt::parent_query(self, direction, query)
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::CustomDownstream(custom) => {
                if let Some(read) = meta::part_of_event(custom) {
                    // An event without a usable part id ends the upstream part (reported).
                    let part = self.problems.check(&*self.obj(), *CAT, read);
                    gst::debug!(CAT, imp = self, "upstream part is now {part:?}");
                    if let Some(stream) = lock(&self.running).stream.as_mut() {
                        stream.upstream_part = part;
                    }
                }
            }
            gst::EventView::Eos(_) => {
                self.finish_stream();
                self.finish_challenger();
                // Drift: a baseline being learnt is written at end of stream.
                let drift = lock(&self.running).drift.as_mut().map(|d| d.finish());
                if let Some(outcome) = drift {
                    self.drift_post(outcome);
                }
            }
            gst::EventView::FlushStart(_) => {
                if let Some(worker) = self.worker() {
                    worker.stop_waiting();
                }
                if let Some(challenger) = self.challenger() {
                    challenger.stop_waiting();
                }
                // A frame waiting for other elements' frames to fill its batch stops waiting.
                if lock(&self.settings).batch_size > 1 {
                    self.engine.interrupt();
                }
            }
            gst::EventView::FlushStop(_) => {
                if let Some(challenger) = self.challenger() {
                    challenger.resume();
                }
                if lock(&self.settings).batch_size > 1 {
                    self.engine.resume();
                }
                if let Some(worker) = self.worker() {
                    drop(worker.take_finished());
                    worker.resume();
                }
                let mut running = lock(&self.running);
                if let Some(stream) = running.stream.as_mut() {
                    stream.flush();
                }
                // A window never mixes the frames before and after a seek.
                if let Some(drift) = running.drift.as_mut() {
                    drift.restart_window();
                }
            }
            gst::EventView::Segment(_) => {
                // A new segment without a flush (a segment seek) is another position too.
                if let Some(drift) = lock(&self.running).drift.as_mut() {
                    drift.restart_window();
                }
            }
            _ => {}
        }
        if lock(&self.settings).on_rois {
            return self.parent_sink_event(self.restage_part(event));
        }
        self.parent_sink_event(event)
    }

    fn transform_ip(
        &self,
        buffer: &mut gst::BufferRef,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let settings = lock(&self.settings).clone();
        if settings.on_rois {
            return self.classify_rois(buffer, &settings);
        }
        let started = Instant::now();
        let (decided, image) = if settings.async_inference {
            (self.frame_async(buffer, &settings)?, None)
        } else {
            self.frame_sync(buffer, &settings)?
        };
        // Drift (see super::drift): one call per frame after the verdict; posted after it.
        let drift = {
            let mut running = lock(&self.running);
            let Running { info, drift, .. } = &mut *running;
            match info.clone() {
                Some(info) => self.drift_frame(
                    drift,
                    &settings,
                    &decided.identity,
                    super::drift::Frame {
                        buffer: &*buffer,
                        info: &info,
                        number: decided.frame_number,
                        image,
                    },
                    decided.inspected,
                    &decided.verdict,
                ),
                None => Default::default(),
            }
        };
        // The challenger sees the frame after production decided it, never before.
        if let Some(challenger) = self.challenger() {
            self.offer_challenger(&challenger, buffer, &settings, &decided);
            self.send_challenger_results(&challenger);
        }
        let flow = self.report(buffer, &settings, decided, started);
        self.drift_post(drift);
        flow
    }
}

/// Drift's image statistics of a frame (see `super::drift::Frame::image`).
type DriftImage = Result<crate::monitor::drift::ImageStats, String>;

/// What a frame on the streaming thread starts from: the caps and its number.
struct FrameStart {
    info: Arc<gst_video::VideoInfo>,
    caps: Caps,
    frame_number: u64,
}

impl DefectDetect {
    fn worker(&self) -> Option<Worker> {
        lock(&self.running).worker.clone()
    }

    fn challenger(&self) -> Option<Challenger> {
        lock(&self.challenger).clone()
    }

    /// Start: loads the challenger's model on its thread (an error names it), or drops the
    /// previous challenger when there is none.
    fn start_challenger(&self, settings: &Settings) -> Result<(), gst::ErrorMessage> {
        if let Some(previous) = lock(&self.challenger).take() {
            previous.stop();
        }
        let Some(request) = settings.challenger_request() else {
            return Ok(());
        };
        if settings.async_inference || settings.on_rois {
            return Err(gst::error_msg!(
                gst::LibraryError::Settings,
                ["challenger-model cannot be combined with async-inference or on-rois"]
            ));
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
        *lock(&self.challenger) = Some(challenger);
        Ok(())
    }

    /// Offers a frame production inferred (not one carrying an earlier result) to the
    /// challenger, every `challenger-interval` frames, with production's judgement of it.
    fn offer_challenger(
        &self,
        challenger: &Challenger,
        buffer: &gst::BufferRef,
        settings: &Settings,
        decided: &Decided,
    ) {
        if !decided.inspected
            || decided.carried_from.is_some()
            || !decided
                .frame_number
                .is_multiple_of(settings.challenger_interval.max(1) as u64)
        {
            return;
        }
        let Some((info, caps)) = ({
            let running = lock(&self.running);
            running
                .info
                .clone()
                .zip(running.stream.as_ref().map(|s| s.caps))
        }) else {
            return;
        };
        let model = &decided.identity.model;
        let job = challenger::Job {
            buffer: buffer.to_owned(),
            info,
            caps,
            frame: decided.frame_number,
            pts: buffer.pts().map(|t| t.nseconds()),
            thresholds: settings.thresholds(),
            tile_size: settings.tile_size,
            tile_overlap: settings.tile_overlap,
            crop: settings.crop_region(),
            production: challenger::judgement(&decided.verdict, &|id| model.class_name(id)),
            production_model_id: decided.identity.model_id.clone(),
        };
        challenger.submit(job, settings.challenger_wait);
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
    fn finish_challenger(&self) {
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

    /// At a frame boundary, with the current model locked: takes over a pending model.
    /// Returns whether the model changed.
    fn adopt(&self, current: &mut Option<Current<Loaded>>, frame: u64) -> bool {
        let Some(adopted) = self.engine.adopt(current) else {
            return false;
        };
        if let Some(model_id) = adopted.model_id {
            let challenger = self
                .challenger()
                .map(|c| format!("; challenger {}", c.model_id))
                .unwrap_or_default();
            gst::info!(
                CAT,
                imp = self,
                "model generation {} ({model_id}) in use from frame {frame}{challenger}",
                adopted.generation
            );
        }
        true
    }

    /// The part of a frame: its `DefectPartMeta`, else the last `defect-part` event, else
    /// `frames-per-part`.
    fn part_of(
        &self,
        buffer: &gst::BufferRef,
        stream: &Stream,
        settings: &Settings,
    ) -> Option<String> {
        let frame = stream.frame_number;
        meta::part_id_from_buffer(buffer)
            .and_then(|read| self.problems.check(&*self.obj(), *CAT, read))
            .or_else(|| stream.upstream_part.clone())
            .or_else(|| {
                (settings.frames_per_part > 0)
                    .then(|| (frame / settings.frames_per_part as u64).to_string())
            })
    }

    /// An error for a frame that came before caps.
    fn not_negotiated(&self) -> gst::FlowError {
        gst::element_imp_error!(
            self,
            gst::CoreError::Negotiation,
            ("frames arrived before caps")
        );
        gst::FlowError::NotNegotiated
    }

    /// Maps the frame once and runs `f` (the engine) on it; the errors of both become the
    /// element's (an interrupted run is a flush, not an error).
    fn on_frame<T>(
        &self,
        buffer: &gst::BufferRef,
        info: &gst_video::VideoInfo,
        f: impl FnOnce(&FrameView) -> Result<T, InferError>,
    ) -> Result<T, gst::FlowError> {
        match with_frame_view(buffer, info, f) {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(InferError::Interrupted)) => Err(gst::FlowError::Flushing),
            Ok(Err(InferError::Failed(reason))) => {
                gst::element_imp_error!(self, gst::StreamError::Failed, ("{reason}"));
                Err(gst::FlowError::Error)
            }
            Err(reason) => {
                gst::element_imp_error!(self, gst::StreamError::Format, ("{reason}"));
                Err(gst::FlowError::Error)
            }
        }
    }

    /// Posts what the worker's results asked for: decoder warnings, and an error for a failed
    /// inference.
    fn post_applied(&self, applied: Applied) -> Result<(), gst::FlowError> {
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

    /// The streaming thread runs the model (every `interval` frames of a part). Locks: the
    /// current model for the whole frame, `running` twice briefly (before and after the run).
    /// With the verdict, drift's image statistics of a frame the model ran on (taken on the
    /// same mapping).
    fn frame_sync(
        &self,
        buffer: &gst::BufferRef,
        settings: &Settings,
    ) -> Result<(Decided, Option<DriftImage>), gst::FlowError> {
        let mut current = self.engine.slot.lock_current();
        let (start, part_id, key, carried) = {
            let mut running = lock(&self.running);
            let Running {
                info: Some(info),
                stream: Some(stream),
                ..
            } = &mut *running
            else {
                return Err(self.not_negotiated());
            };
            if self.adopt(&mut current, stream.frame_number) {
                stream.carry = None;
            }
            let part_id = self.part_of(buffer, stream, settings);
            let (frame_number, key) = stream.next_frame(part_id.as_deref());
            let carried = stream
                .carried_for(frame_number, key, settings.interval)
                .map(|c| {
                    let result = (c.detections.clone(), c.anomaly.clone(), c.masks.clone());
                    (c.identity.clone(), result, c.frame)
                });
            let start = FrameStart {
                info: info.clone(),
                caps: stream.caps,
                frame_number,
            };
            (start, part_id, key, carried)
        };
        let mut image = None;
        let (identity, (detections, anomaly, masks), inference, carried_from, stats) = match carried
        {
            Some((identity, result, frame)) => {
                (identity, result, Duration::ZERO, Some(frame), None)
            }
            None => {
                let Some(current) = current.as_mut() else {
                    gst::element_imp_error!(self, gst::CoreError::Negotiation, ("no model loaded"));
                    return Err(gst::FlowError::NotNegotiated);
                };
                let loaded = &mut current.model;
                let tiling = (settings.tile_size, settings.tile_overlap);
                let crop = settings.crop_region();
                let drift = super::drift::wanted(settings, &loaded.identity);
                let (result, drift_image) = self.on_frame(buffer, &start.info, |view| {
                    let image = drift.then(|| super::drift::image_of_view(view, &start.info));
                    let input = start.caps.input(view, tiling, crop);
                    Ok((loaded.infer(&input, settings.thresholds())?, image))
                })?;
                image = drift_image;
                self.engine.count_batched(result.batched);
                let output = (result.detections, result.anomaly, result.masks);
                let identity = loaded.identity.clone();
                (identity, output, result.duration, None, Some(result.stats))
            }
        };
        drop(current);
        let frame_number = start.frame_number;
        let mut running = lock(&self.running);
        let stream = running
            .stream
            .as_mut()
            .ok_or(gst::FlowError::NotNegotiated)?;
        let mut warnings = Vec::new();
        if let Some(stats) = stats {
            warnings = stream.warned.new_warnings(&stats);
            if settings.interval > 1 {
                stream.carry = Some(Carry {
                    frame: frame_number,
                    part: key,
                    caps_serial: stream.caps_serial,
                    detections: detections.clone(),
                    anomaly: anomaly.clone(),
                    masks: masks.clone(),
                    identity: identity.clone(),
                    inference,
                });
            }
        }
        let verdict = identity.evaluate(
            &detections,
            anomaly.as_deref(),
            masks.as_ref(),
            stream.size(),
        );
        if carried_from.is_none() {
            let note = stream.warned.non_finite_map(frame_number, &verdict);
            self.warn_non_finite(note);
        }
        let inspected = carried_from.is_none();
        let seen = if inspected {
            Seen::Judged(verdict.verdict, verdict.counts)
        } else {
            Seen::NotInspected
        };
        let mut decided = stream.decide(
            identity,
            frame_number,
            part_id,
            seen,
            verdict,
            inference,
            carried_from,
        );
        drop(running);
        self.warn_decode(warnings);
        decided.anomaly = anomaly;
        Ok((decided, image))
    }

    /// The streaming thread hands the frame to the worker if it is free and takes the newest
    /// result of the frame's part; it never waits for the model.
    fn frame_async(
        &self,
        buffer: &gst::BufferRef,
        settings: &Settings,
    ) -> Result<Decided, gst::FlowError> {
        let mut running = lock(&self.running);
        let Running {
            worker,
            info,
            stream,
            ..
        } = &mut *running;
        let worker = worker.clone().ok_or(gst::FlowError::Flushing)?;
        let (Some(info), Some(stream)) = (info.as_ref(), stream.as_mut()) else {
            return Err(gst::FlowError::NotNegotiated);
        };
        let applied = stream.apply_finished(worker.take_finished());
        if applied.failure.is_some() {
            drop(running);
            self.post_applied(applied)?;
            return Err(gst::FlowError::Error);
        }
        let part_id = self.part_of(buffer, stream, settings);
        let (frame_number, key) = stream.next_frame(part_id.as_deref());
        let job = Job {
            buffer: buffer.to_owned(),
            frame: frame_number,
            info: info.clone(),
            caps: stream.caps,
            thresholds: settings.thresholds(),
            tile_size: settings.tile_size,
            tile_overlap: settings.tile_overlap,
            crop: settings.crop_region(),
            part: key,
            caps_serial: stream.caps_serial,
        };
        // Without parts the queue is kept full; with parts, a busy worker queues only the
        // frame a part needs (its first), so that every part is inspected.
        let may_queue = part_id
            .as_deref()
            .is_none_or(|p| stream.parts.needs_inspection(p));
        let seen = match worker.submit(job, may_queue) {
            Submit::Accepted => Seen::Pending,
            Submit::Busy => {
                self.engine.skipped.fetch_add(1, Ordering::Relaxed);
                Seen::NotInspected
            }
            Submit::Gone => {
                // The worker ended after an error it reported; no result will come.
                return Err(gst::FlowError::Error);
            }
        };
        let carried = stream.carry_of(key);
        let anomaly = carried.and_then(|c| c.anomaly.clone());
        let (identity, verdict, inference, carried_from) = match carried {
            Some(c) => (
                c.identity.clone(),
                c.identity.evaluate(
                    &c.detections,
                    c.anomaly.as_deref(),
                    c.masks.as_ref(),
                    stream.size(),
                ),
                c.inference,
                Some(c.frame),
            ),
            // No result of this part yet: not PASS, UNKNOWN.
            None => (
                self.engine
                    .slot
                    .published()
                    .ok_or(gst::FlowError::NotNegotiated)?,
                FrameVerdict::unknown(),
                Duration::ZERO,
                None,
            ),
        };
        let mut decided = stream.decide(
            identity,
            frame_number,
            part_id,
            seen,
            verdict,
            inference,
            carried_from,
        );
        drop(running);
        self.post_applied(applied)?;
        decided.inspected = matches!(seen, Seen::Pending);
        decided.anomaly = anomaly;
        Ok(decided)
    }

    /// Attaches the metas, posts the messages and reports the finished parts.
    fn report(
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

    /// End of stream: waits for the worker's last results (they count for their parts), ends
    /// the part in progress and reports every part still to report.
    fn finish_stream(&self) {
        let settings = lock(&self.settings).clone();
        let mut complete = true;
        let mut finished = Vec::new();
        if let Some(worker) = self.worker().filter(|_| settings.async_inference) {
            complete = worker.wait_idle();
            finished = worker.take_finished();
        }
        let (parts, model_id, applied) = {
            let mut running = lock(&self.running);
            let Some(stream) = running.stream.as_mut() else {
                return;
            };
            let applied = stream.apply_finished(finished);
            let complete = complete && applied.failure.is_none();
            let model_id = stream
                .carry
                .as_ref()
                .map(|c| c.identity.model_id.clone())
                .or_else(|| self.engine.slot.published().map(|i| i.model_id.clone()))
                .unwrap_or_default();
            (stream.finish(complete), model_id, applied)
        };
        let _ = self.post_applied(applied);
        for part in &parts {
            self.report_part(part_message(part, settings.shadow_mode, &model_id));
        }
    }

    /// NULL to READY: loads model and policy, or fails the state change naming the reason.
    fn load(&self) -> Result<(), gst::StateChangeError> {
        let settings = lock(&self.settings).clone();
        if let Some(reason) = settings.tiling_error() {
            gst::element_imp_error!(self, gst::LibraryError::Settings, ("{reason}"));
            return Err(gst::StateChangeError);
        }
        match model::build(&settings.load_request(), None) {
            Ok((loaded, warnings)) => {
                for warning in warnings {
                    gst::element_imp_warning!(self, gst::LibraryError::Settings, ("{warning}"));
                }
                gst::info!(CAT, imp = self, "loaded {:?}", loaded.detector.info());
                self.engine.load(loaded);
                Ok(())
            }
            Err(LoadError::Runtime(error)) => {
                let kind = match &error {
                    RuntimeError::ModelMissing(_) => gst::ResourceError::NotFound,
                    RuntimeError::Library { .. } | RuntimeError::Environment(_) => {
                        gst::ResourceError::OpenRead
                    }
                    _ => gst::ResourceError::Read,
                };
                gst::element_imp_error!(self, kind, ("{error}"));
                Err(gst::StateChangeError)
            }
            Err(LoadError::Policy(message)) => {
                gst::element_imp_error!(self, gst::ResourceError::Settings, ("{message}"));
                Err(gst::StateChangeError)
            }
        }
    }

    /// `model` or `policy` set while READY or beyond: the slot builds the new model and policy
    /// in the background (requests in quick succession are one build) and the next frame after
    /// it is ready switches to it. One that fails to load keeps the current one, with a
    /// warning. Never waits for a build or an inference.
    fn reload_in_background(&self) {
        let settings = lock(&self.settings).clone();
        let weak = self.obj().downgrade();
        let build: BuildFn<Loaded, Settings> = Arc::new(move |settings: &Settings| {
            let element = weak.upgrade().ok_or("the element is gone")?;
            let imp = element.imp();
            gst::info!(
                CAT,
                imp = imp,
                "building model {:?} with policy {:?} in the background",
                settings.model,
                settings.policy
            );
            let frame_size = lock(&imp.running)
                .stream
                .as_ref()
                .map(|s| (s.caps.width, s.caps.height));
            model::build(&settings.load_request(), frame_size).map_err(|e| e.to_string())
        });
        let weak = self.obj().downgrade();
        let report: ReportFn = Arc::new(move |outcome: Outcome| {
            let Some(element) = weak.upgrade() else {
                return;
            };
            let imp = element.imp();
            match outcome {
                Outcome::Ready {
                    generation,
                    warnings,
                } => {
                    for warning in warnings {
                        gst::element_imp_warning!(imp, gst::LibraryError::Settings, ("{warning}"));
                    }
                    gst::info!(CAT, imp = imp, "model generation {generation} ready");
                    // The next frame uses it: applications (and tests) can tell when a new
                    // policy or threshold is in force.
                    imp.post(
                        gst::Structure::builder(crate::meta::fields::MODEL_READY_MESSAGE)
                            .field(crate::meta::fields::GENERATION, generation)
                            .build(),
                    );
                }
                Outcome::Failed { generation, reason } => {
                    gst::info!(CAT, imp = imp, "build {generation} failed");
                    gst::element_imp_warning!(
                        imp,
                        gst::ResourceError::Read,
                        ("keeping the current model and policy: {reason}")
                    );
                }
                Outcome::Superseded { generation } => {
                    gst::debug!(CAT, imp = imp, "build {generation} superseded");
                }
            }
        });
        if self.engine.slot.request(settings, build, report) {
            gst::debug!(CAT, imp = self, "background build requested");
        }
    }

    /// `on-rois`: classifies the crop of every `GstVideoRegionOfInterestMeta` already on the
    /// buffer (clipped to the frame; at most `max-rois` of them) and adds a `classification`
    /// structure (`label`, `label_id`, `confidence`, and the policy's `severity` and `decision`
    /// for that class) to it, as `gvaclassify` does. The frame's verdict is then re-decided by
    /// this policy on the classified labels ([`restage_verdict`]): the buffer's
    /// `DefectVerdictMeta` is replaced and a `defect-verdict` message posted.
    fn classify_rois(
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
                ..
            } = &mut *running
            else {
                return Err(self.not_negotiated());
            };
            self.adopt(&mut current_guard, stream.frame_number);
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
        if identity.model.task != Task::Classify {
            gst::element_imp_error!(
                self,
                gst::LibraryError::Settings,
                (
                    "on-rois needs a classifier; model {} is a {} model",
                    identity.model_id,
                    identity.model.task
                )
            );
            return Err(gst::FlowError::Error);
        }
        let (rects, upstream): (Vec<(u32, u32, u32, u32)>, Vec<_>) = buffer
            .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
            .map(|m| (m.rect(), meta::DetectionParams::of_roi(&m)))
            .unzip();
        // A frame without regions is still re-decided (its verdict and part).
        let max_rois = settings.max_rois as usize;
        let (regions, results) = self.on_frame(buffer, &start.info, |view| {
            let input = start.caps.input(view, (0, 0), None);
            loaded.judge_regions(&input, &rects, max_rois)
        })?;
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
    fn restage_part(&self, event: gst::Event) -> gst::Event {
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

    /// Warns, once per stream and kind, about what the decoder dropped or changed.
    fn warn_decode(&self, warnings: Vec<String>) {
        for warning in warnings {
            gst::element_imp_warning!(self, gst::StreamError::Decode, ("{warning}"));
        }
    }

    /// Says why an anomaly model's frame with NaN or infinite output was not passed: a warning
    /// the first time in a stream, a debug line for every frame.
    /// An anomaly map with NaN or infinite scores: a warning the first time in a stream, the
    /// debug log after.
    fn warn_non_finite(&self, note: Option<(String, bool)>) {
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

    /// Raises the reported latency when a frame took longer than it says, with room (half
    /// again) so that the jitter of the next frames does not raise it once more, and, in a
    /// live pipeline, asks the pipeline to recompute its latency. A non-live pipeline has no
    /// latency to keep: no message (gst-launch-1.0 would print "Redistribute latency..." for
    /// each).
    fn track_latency(&self, took: Duration) {
        let took = took.as_nanos() as u64;
        let reported = self.engine.latency_ns.load(Ordering::Relaxed);
        if took <= reported {
            return;
        }
        self.engine
            .latency_ns
            .store(took + took / 2, Ordering::Relaxed);
        if self.upstream_live.load(Ordering::Relaxed) {
            gst::debug!(
                CAT,
                imp = self,
                "a frame took {} (latency said {}): latency raised",
                gst::ClockTime::from_nseconds(took),
                gst::ClockTime::from_nseconds(reported)
            );
            let _ = self
                .obj()
                .post_message(gst::message::Latency::builder().src(&*self.obj()).build());
        }
    }

    fn running_time(&self, buffer: &gst::BufferRef) -> Option<gst::ClockTime> {
        self.obj()
            .segment()
            .downcast_ref::<gst::ClockTime>()
            .and_then(|segment| segment.to_running_time(buffer.pts()))
    }

    /// The model in use goes downstream as a sticky `model-info` event ahead of its first
    /// frame (again after a swap), so that elements downstream know its classes
    /// (`defectcapture` names them in its dataset files).
    fn announce_model(&self, identity: &crate::inspect::model::Identity) {
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

    fn post(&self, structure: gst::Structure) {
        let _ = self.obj().post_message(
            gst::message::Element::builder(structure)
                .src(&*self.obj())
                .build(),
        );
    }

    /// A finished part goes downstream in-band, as a custom event ahead of the next frame (or
    /// of EOS), and onto the bus.
    fn report_part(&self, part: gst::Structure) {
        let _ = self
            .obj()
            .src_pad()
            .push_event(gst::event::CustomDownstream::new(part.clone()));
        self.post(part);
    }
}
