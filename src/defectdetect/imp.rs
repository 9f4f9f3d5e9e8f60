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
//! A frame: the element copies the settings, maps the buffer once (only when the model runs on
//! it here or drift is on), lets the engine decide it ([`crate::inspect::flow`]: what to infer
//! or carry, the pending bookkeeping, the verdict, the counters) and attaches the metas and
//! posts the messages. The rest of the logic is the engine's too ([`crate::inspect`]:
//! preprocessing, inference, the stream state, the checks of settings and caps); the glue of
//! each feature has a file of its own: [`super::load`] (model loading and background builds),
//! `on-rois`, [`super::challenger`] and [`super::drift`], each with the element's side of it in
//! a module of `imp` (`load`, `rois`, `challenge`, `drift`, and `report` for the metas and
//! messages of a frame).

use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Instant;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;

use super::challenger::Challenger;
use super::metas::part_message;
use super::settings::{self, Change, Settings};
use super::worker::{Job, Worker};
use crate::element::{self, lock};
use crate::inspect::Engine;
use crate::inspect::checks::{self, Combination, Refusal};
use crate::inspect::flow::{FrameError, Options, drift_image};
use crate::inspect::infer::InferError;
use crate::inspect::stream::{Caps, Decided, Stream};
use crate::meta;
use crate::meta::prelude::*;
use crate::video::{pixel_format, with_frame_view_or, yuv_matrix};

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
        let options = settings.options();
        let fit = checks::caps(
            (width, height),
            options.tiling,
            options.crop,
            &identity.policy,
        )
        .map_err(|refusal| {
            gst::element_imp_error!(self, gst::LibraryError::Settings, ("{}", refusal.text));
            gst::loggable_error!(CAT, "{}", refusal.logged)
        })?;
        for warning in &fit.warnings {
            gst::element_imp_warning!(self, gst::LibraryError::Settings, ("{warning}"));
        }
        gst::info!(
            CAT,
            imp = self,
            "{width}x{height} {:?} frames in {} tile(s) for {}",
            info.format(),
            fit.tiles,
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
        let (part, options) = (self.part_in(buffer), settings.options());
        let mut decided = if settings.async_inference {
            self.frame_async(buffer, part, &options)?
        } else {
            self.frame_sync(buffer, part, &options)?
        };
        // Drift (see super::drift): one call per frame after the verdict; posted after it.
        let drift = match decided.image.take() {
            Some(image) => {
                self.drift_frame(&mut lock(&self.running).drift, &settings, &decided, image)
            }
            None => Default::default(),
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

    /// The engine's error as the element's (an interrupted run is a flush, not an error).
    fn checked<T>(&self, result: Result<T, FrameError>) -> Result<T, gst::FlowError> {
        let (error, flow) = match result {
            Ok(result) => return Ok(result),
            Err(FrameError::Infer(InferError::Interrupted)) => {
                return Err(gst::FlowError::Flushing);
            }
            Err(FrameError::NoModel) => (
                gst::error_msg!(gst::CoreError::Negotiation, ("no model loaded")),
                gst::FlowError::NotNegotiated,
            ),
            Err(FrameError::Infer(InferError::Failed(reason))) => (
                gst::error_msg!(gst::StreamError::Failed, ("{reason}")),
                gst::FlowError::Error,
            ),
            Err(FrameError::Unmapped(reason)) => (
                gst::error_msg!(gst::StreamError::Format, ("{reason}")),
                gst::FlowError::Error,
            ),
        };
        self.post_error_message(error);
        Err(flow)
    }

    /// The streaming thread's frame ([`crate::inspect::flow`]): the engine counts it and
    /// decides whether the model runs (`running` locked), looks at its one mapping (the model's
    /// run, drift's statistics; the current model locked, not `running`) and concludes its
    /// verdict (`running` again).
    fn frame_sync(
        &self,
        buffer: &gst::BufferRef,
        part: Option<String>,
        options: &Options,
    ) -> Result<Decided, gst::FlowError> {
        let mut current = self.engine.slot.lock_current();
        let (info, begun) = {
            let mut running = lock(&self.running);
            let Running {
                info: Some(info),
                stream: Some(stream),
                challenger,
                drift,
                ..
            } = &mut *running
            else {
                return Err(self.not_negotiated());
            };
            let changed = self.adopt(&mut current, stream.frame_number, challenger.as_ref());
            (
                info.clone(),
                stream.begin(part, changed, drift.is_some(), options),
            )
        };
        let model = current.as_mut().map(|c| &mut c.model);
        let looked = if begun.needs_view() {
            with_frame_view_or(buffer, &info, |view| {
                self.engine.look(begun, model, Some(view), options)
            })
        } else {
            self.engine.look(begun, model, None, options)
        };
        let looked = self.checked(looked)?;
        drop(current);
        let (decided, notes) = lock(&self.running)
            .stream
            .as_mut()
            .ok_or(gst::FlowError::NotNegotiated)?
            .conclude_looked(looked, options.interval);
        self.warn_non_finite(notes.non_finite);
        self.warn_decode(notes.warnings);
        Ok(decided)
    }

    /// The asynchronous frame ([`crate::inspect::flow`]), under one short `running` lock: the
    /// engine takes the worker's results and counts the frame, which is handed to the worker if
    /// it is free (never waited for) and decided from the newest result of its part. Drift's
    /// statistics, when on, are taken after, on the frame's one mapping on this thread.
    fn frame_async(
        &self,
        buffer: &gst::BufferRef,
        part: Option<String>,
        options: &Options,
    ) -> Result<Decided, gst::FlowError> {
        let mut running = lock(&self.running);
        let Running {
            worker,
            info,
            stream,
            drift,
            ..
        } = &mut *running;
        let worker = worker.clone().ok_or(gst::FlowError::Flushing)?;
        let (Some(info), Some(stream)) = (info.clone(), stream.as_mut()) else {
            return Err(gst::FlowError::NotNegotiated);
        };
        let finished = worker.take_finished();
        let (applied, pending) = stream.begin_pending(finished, part, options.frames_per_part);
        let Some(pending) = pending else {
            drop(running);
            self.post_applied(applied)?;
            return Err(gst::FlowError::Error);
        };
        let job = Job::new(buffer, &pending, info.clone(), *options);
        // None: the worker ended after an error it reported; no result will come.
        let submitted = worker.submit(job, pending.may_queue);
        let seen = self.engine.handed(submitted).ok_or(gst::FlowError::Error)?;
        let caps = pending.caps;
        let mut decided = stream
            .decide_pending(pending.frame, seen, || self.engine.slot.published())
            .ok_or(gst::FlowError::NotNegotiated)?;
        let drift = drift.is_some();
        drop(running);
        self.post_applied(applied)?;
        if drift {
            let image =
                with_frame_view_or(buffer, &info, |v| v.and_then(|v| drift_image(v, &caps)));
            decided.image = Some(image);
        }
        Ok(decided)
    }

    /// End of stream: waits for the worker's last results (they count for their parts), ends
    /// the part in progress and reports every part still to report ([`Stream::end`]).
    fn finish_stream(&self) {
        let settings = lock(&self.settings).clone();
        let (mut complete, mut finished) = (true, Vec::new());
        if let Some(worker) = self.worker().filter(|_| settings.async_inference) {
            complete = worker.wait_idle();
            finished = worker.take_finished();
        }
        let published = || self.engine.slot.published();
        let Some(ended) = (lock(&self.running).stream.as_mut())
            .map(|stream| stream.end(finished, complete, published))
        else {
            return;
        };
        let _ = self.post_applied(ended.applied);
        for part in &ended.parts {
            self.report_part(part_message(part, settings.shadow_mode, &ended.model_id));
        }
    }
}
