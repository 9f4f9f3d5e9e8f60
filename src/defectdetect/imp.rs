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
//!   state of [`crate::inspect::stream`], drift, and the challenger, which stays after stop
//!   for `challenger-stats`). The one lock of the running state: held only to read or update
//!   it, never across an inference or a wait (handles are cloned out of it first).
//!
//! The logic is the engine's ([`crate::inspect`]: preprocessing, inference, the stream state,
//! the settings' checks); the glue of each feature has a file of its own: [`super::load`]
//! (model loading and background builds), `on-rois`, [`super::challenger`]
//! and [`super::drift`], each with the element's side of it in a module of `imp` (`load`,
//! `rois`, `challenge`, `drift`, and `report` for the metas and messages of a frame).

use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;

use super::challenger::Challenger;
use super::metas::part_message;
use super::settings::{self, Change, Settings};
use super::worker::{Job, Submit, Worker};
use crate::element::{self, lock};
use crate::frame::FrameView;
use crate::inspect::checks::{self, Combination, Refusal};
use crate::inspect::infer::InferError;
use crate::inspect::model::Loaded;
use crate::inspect::slot::Current;
use crate::inspect::stream::{Applied, Caps, Decided, Output, Stream};
use crate::inspect::{Engine, infer};
use crate::meta;
use crate::meta::prelude::*;
use crate::policy::Seen;
use crate::video::{pixel_format, with_frame_view, yuv_matrix};

mod challenge;
mod drift;
mod load;
mod report;
mod rois;

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
    /// The challenger (`challenger-model`), from start on; kept after stop for
    /// `challenger-stats`.
    challenger: Option<Challenger>,
}

/// The element's locks, in the order they are taken where two are held: the slot's current
/// model (inside `engine`, held for a whole inference), then `running`, then the short locks
/// inside the engine, the worker and the challenger (the slot's control, the interrupter, the
/// worker's results, the challenger's state). `settings` is only copied, never held while
/// another lock is taken; no lock is held while waiting for the worker or the challenger.
#[derive(Default)]
pub struct DefectDetect {
    settings: Mutex<Settings>,
    /// The model slot and the counters, shared with the asynchronous worker.
    engine: Arc<Engine<Settings>>,
    running: Mutex<Running>,
    /// Malformed part metas and events seen (the first is a warning).
    problems: element::MetaProblems,
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
        let combination = Combination {
            crop: crop.is_some(),
            on_rois: settings.on_rois,
            async_inference: settings.async_inference,
            challenger: settings.challenger_model.is_some(),
        };
        let model = self.engine.slot.published();
        let task = model.as_ref().map(|i| (i.model_id.as_str(), i.model.task));
        if let Some(refusal) = checks::start(combination, task) {
            return Err(refused(refusal));
        }
        let challenger = self.start_challenger(&settings, combination)?;
        self.engine.resume();
        self.engine.skipped.store(0, Ordering::Relaxed);
        self.engine.batched.store(0, Ordering::Relaxed);
        let mut running = Running {
            challenger,
            ..Default::default()
        };
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
        let running = {
            let mut running = lock(&self.running);
            let challenger = running.challenger.clone();
            std::mem::replace(
                &mut *running,
                Running {
                    challenger,
                    ..Default::default()
                },
            )
        };
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
                self.engine.live.store(live, Ordering::Relaxed);
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

/// A refused combination of settings as the error of `start`.
fn refused(refusal: Refusal) -> gst::ErrorMessage {
    match refusal {
        Refusal::Message(text) => gst::error_msg!(gst::LibraryError::Settings, ("{text}")),
        Refusal::Detail(text) => gst::error_msg!(gst::LibraryError::Settings, ["{text}"]),
    }
}

impl DefectDetect {
    fn worker(&self) -> Option<Worker> {
        lock(&self.running).worker.clone()
    }

    fn challenger(&self) -> Option<Challenger> {
        lock(&self.running).challenger.clone()
    }

    fn take_challenger(&self) -> Option<Challenger> {
        lock(&self.running).challenger.take()
    }

    /// The negotiated caps, None before the first.
    fn caps(&self) -> Option<(Arc<gst_video::VideoInfo>, Caps)> {
        let running = lock(&self.running);
        running
            .info
            .clone()
            .zip(running.stream.as_ref().map(|s| s.caps))
    }

    /// At a frame boundary, with the current model locked (and `running`, whose challenger
    /// this is): takes over a pending model. Returns whether the model changed.
    fn adopt(
        &self,
        current: &mut Option<Current<Loaded>>,
        frame: u64,
        challenger: Option<&Challenger>,
    ) -> bool {
        let Some(adopted) = self.engine.adopt(current) else {
            return false;
        };
        if let Some(model_id) = adopted.model_id {
            let challenger = challenger
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

    /// The part its `DefectPartMeta` names (a malformed one is reported).
    fn part_in(&self, buffer: &gst::BufferRef) -> Option<String> {
        meta::part_id_from_buffer(buffer)
            .and_then(|read| self.problems.check(&*self.obj(), *CAT, read))
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

    /// The streaming thread runs the model (every `interval` frames of a part; the frames
    /// between carry its result). Locks: the current model for the whole frame, `running`
    /// twice briefly (before and after the run). With the verdict, drift's image statistics
    /// of a frame the model ran on (taken on the same mapping).
    fn frame_sync(
        &self,
        buffer: &gst::BufferRef,
        settings: &Settings,
    ) -> Result<(Decided, Option<DriftImage>), gst::FlowError> {
        let mut current = self.engine.slot.lock_current();
        let (start, frame, carried) = {
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
            if self.adopt(&mut current, stream.frame_number, challenger.as_ref()) {
                stream.carry = None;
            }
            let frame =
                stream.count(stream.part_of(self.part_in(buffer), settings.frames_per_part));
            let carried = stream
                .carried_for(frame.number, frame.key, settings.interval)
                .map(|c| (c.frame, c.output()));
            let start = FrameStart {
                info: info.clone(),
                caps: stream.caps,
                frame_number: frame.number,
            };
            (start, frame, carried)
        };
        let mut image = None;
        let (output, carried_from) = match carried {
            Some((from, output)) => (output, Some(from)),
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
                (Output::of(result, loaded.identity.clone()), None)
            }
        };
        drop(current);
        let (decided, notes) = lock(&self.running)
            .stream
            .as_mut()
            .ok_or(gst::FlowError::NotNegotiated)?
            .conclude(frame, output, carried_from, settings.interval);
        self.warn_non_finite(notes.non_finite);
        self.warn_decode(notes.warnings);
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
        let frame = stream.count(stream.part_of(self.part_in(buffer), settings.frames_per_part));
        let job = Job::new(buffer, &frame, info.clone(), stream, settings);
        // Without parts the queue is kept full; with parts, a busy worker queues only the
        // frame a part needs (its first), so that every part is inspected.
        let may_queue = frame
            .part_id
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
        let decided = stream
            .decide_pending(frame, seen, || self.engine.slot.published())
            .ok_or(gst::FlowError::NotNegotiated)?;
        drop(running);
        self.post_applied(applied)?;
        Ok(decided)
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

    /// Raises the reported latency when a frame took longer than it says
    /// ([`Engine::raise_latency`]) and, in a live pipeline, asks the pipeline to recompute its
    /// latency. A non-live pipeline has no latency to keep: no message (gst-launch-1.0 would
    /// print "Redistribute latency..." for each).
    fn track_latency(&self, took: Duration) {
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

    fn running_time(&self, buffer: &gst::BufferRef) -> Option<gst::ClockTime> {
        self.obj()
            .segment()
            .downcast_ref::<gst::ClockTime>()
            .and_then(|segment| segment.to_running_time(buffer.pts()))
    }

    fn post(&self, structure: gst::Structure) {
        let _ = self.obj().post_message(
            gst::message::Element::builder(structure)
                .src(&*self.obj())
                .build(),
        );
    }
}
