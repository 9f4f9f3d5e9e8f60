// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `defectdetect` element: an in-place `BaseTransform` adapting [`crate::analysis`],
//! [`crate::policy`] and [`crate::runtime`] to GStreamer buffers, metas and messages.
//!
//! Who holds what:
//! - `settings`: the properties (set by the application at any time; copied by the
//!   streaming thread at each frame);
//! - `slot` ([`super::slot`]): the model in use, the one waiting to take over, and their
//!   generation. Only the thread that infers (the streaming thread, or the asynchronous
//!   worker of [`super::worker`]) locks the model in use; property changes only queue a
//!   background build;
//! - `state`: what lives between caps and stop (frame counting, parts, the result carried
//!   forward), touched by the streaming thread only (and by events, serialized with it).
//!
//! Lock order, where two are held: the slot's current model, then `state`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;

use super::inference::{self, AnomalyOutput, FrameInput, InferError, MAX_TILES};
use super::loaded::{self, Identity, LoadError, Loaded};
use super::metas::{
    Report, attach_anomaly_map, attach_roi_metas, classification, part_message, restage_verdict,
};
use super::settings::{self, Change, Settings};
use super::slot::{BuildFn, Current, Outcome, ReportFn, Slot};
use super::worker::{Finished, Job, Submit, Worker};
use crate::analysis::Detection;
use crate::analysis::classify::{self, ClassifyGeometry, ClassifyPreprocess};
use crate::analysis::decode::{DecodeStats, MAX_CLASS_ID};
use crate::analysis::letterbox::PixelFormat;
use crate::analysis::task::Task;
use crate::element::{self, lock};
use crate::meta;
use crate::policy::stages::StagedParts;
use crate::policy::{FrameVerdict, PartKey, PartTracker, PartVerdict, Seen};
use crate::runtime::{Interrupter, RuntimeError};
use crate::video::{frame_view, pixel_format};

pub(super) static CAT: LazyLock<gst::DebugCategory> =
    LazyLock::new(|| element::debug_category("defectdetect", "Defect detection with ONNX models"));

/// A result carried forward to later frames (`interval`, `async-inference`).
struct Carry {
    frame: u64,
    part: Option<PartKey>,
    caps_serial: u64,
    detections: Vec<Detection>,
    anomaly: Option<Arc<AnomalyOutput>>,
    identity: Arc<Identity>,
    inference: Duration,
}

/// Which decoder warnings were posted (each once per stream).
#[derive(Default)]
struct Warned {
    non_finite: bool,
    inverted: bool,
    bad_class: bool,
    clamped: bool,
}

/// What lives between caps and stop.
struct State {
    info: gst_video::VideoInfo,
    format: PixelFormat,
    /// Counts caps: results are carried only to frames of the caps they were made for.
    caps_serial: u64,
    frame_number: u64,
    parts: PartTracker,
    /// The part named by the last `defect-part` event.
    upstream_part: Option<String>,
    carry: Option<Carry>,
    warned: Warned,
    /// `on-rois`: the re-decided frames of the parts in progress.
    staged_parts: StagedParts,
    /// Drift against the baseline (None when switched off); see [`super::drift`].
    drift: Option<super::drift::Drift>,
}

#[derive(Default)]
pub struct DefectDetect {
    settings: Mutex<Settings>,
    slot: Slot<Loaded, Settings>,
    /// Interrupts the current detector's run (set at each adoption): stopping never waits
    /// for a long inference.
    interrupter: Mutex<Option<Interrupter>>,
    worker: Mutex<Option<Worker>>,
    /// Frames the asynchronous worker had no time for.
    skipped: AtomicU64,
    /// Model runs that shared a batch with other elements' frames.
    batched: AtomicU64,
    /// The processing latency answered to latency queries, in nanoseconds: the warm run at
    /// load, raised when frames take longer (then a latency message asks to recompute).
    latency_ns: AtomicU64,
    /// Upstream answered the last latency query as live: only then does a latency message
    /// (which makes the pipeline recompute its latency) matter.
    upstream_live: AtomicBool,
    state: Mutex<Option<State>>,
    /// The negotiated frame size, against which background builds check the policy.
    frame_size: Mutex<Option<(u32, u32)>>,
    /// Malformed part metas and events seen (the first is a warning).
    problems: element::MetaProblems,
}

element::subclass!(DefectDetect, "GstDefectDetect", gst_base::BaseTransform);

/// A frame's width and height, for boxes and anomaly regions.
fn frame_size(info: &gst_video::VideoInfo) -> (f32, f32) {
    (info.width() as f32, info.height() as f32)
}

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
            "skipped" => self.skipped.load(Ordering::Relaxed).to_value(),
            "batched-frames" => self.batched.load(Ordering::Relaxed).to_value(),
            crate::meta::fields::MODEL_INFO => {
                self.slot.published().map(|i| i.describe()).to_value()
            }
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
                if let Some(worker) = lock(&self.worker).as_ref() {
                    worker.stop_waiting();
                }
                if let Some(interrupter) = lock(&self.interrupter).as_ref() {
                    interrupter.interrupt();
                }
            }
            _ => {}
        }
        let success = self.parent_change_state(transition)?;
        if transition == gst::StateChange::ReadyToNull {
            self.slot.clear();
            *lock(&self.interrupter) = None;
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
        if settings.on_rois {
            if settings.async_inference {
                return Err(gst::error_msg!(
                    gst::LibraryError::Settings,
                    [
                        "on-rois classifies on the streaming thread: it cannot be combined with async-inference"
                    ]
                ));
            }
            if let Some(identity) = self.slot.published()
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
        if let Some(interrupter) = lock(&self.interrupter).as_ref() {
            interrupter.reset();
        }
        self.skipped.store(0, Ordering::Relaxed);
        self.batched.store(0, Ordering::Relaxed);
        if settings.async_inference {
            let worker = Worker::start(&self.obj()).map_err(|e| {
                gst::error_msg!(
                    gst::CoreError::Thread,
                    ["cannot start the inference worker: {e}"]
                )
            })?;
            *lock(&self.worker) = Some(worker);
        }
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        // The worker is not waited for: a long inference in progress ends on its own.
        if let Some(worker) = lock(&self.worker).take() {
            worker.stop();
        }
        *lock(&self.state) = None;
        *lock(&self.frame_size) = None;
        Ok(())
    }

    fn set_caps(&self, incaps: &gst::Caps, _outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let info = gst_video::VideoInfo::from_caps(incaps)
            .map_err(|_| gst::loggable_error!(CAT, "cannot parse video caps {incaps}"))?;
        let format = pixel_format(info.format())
            .ok_or_else(|| gst::loggable_error!(CAT, "unsupported format {:?}", info.format()))?;
        let settings = lock(&self.settings).clone();
        let identity = self
            .slot
            .published()
            .ok_or_else(|| gst::loggable_error!(CAT, "no model loaded"))?;
        let (width, height) = (info.width(), info.height());
        let tiles = inference::tile_count(width, height, settings.tile_size, settings.tile_overlap);
        if tiles > MAX_TILES {
            gst::element_imp_error!(
                self,
                gst::LibraryError::Settings,
                (
                    "tile-size {} with tile-overlap {} cuts a {width}x{height} frame into {tiles} tiles; at most {MAX_TILES}",
                    settings.tile_size,
                    settings.tile_overlap
                )
            );
            return Err(gst::loggable_error!(CAT, "too many tiles"));
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
        *lock(&self.frame_size) = Some((width, height));
        let mut state = lock(&self.state);
        match state.as_mut() {
            // A caps change keeps the frame count and the part in progress.
            Some(state) => {
                state.info = info;
                state.format = format;
                state.caps_serial += 1;
            }
            None => {
                // Drift: the baseline file is read here (an error names it).
                let drift = super::drift::Drift::new(&settings, &identity).map_err(|reason| {
                    gst::element_imp_error!(self, gst::ResourceError::Read, ("{reason}"));
                    gst::loggable_error!(CAT, "drift baseline")
                })?;
                *state = Some(State {
                    info,
                    format,
                    caps_serial: 0,
                    frame_number: 0,
                    parts: PartTracker::new(),
                    upstream_part: None,
                    carry: None,
                    warned: Warned::default(),
                    staged_parts: StagedParts::default(),
                    drift,
                })
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
                    gst::ClockTime::from_nseconds(self.latency_ns.load(Ordering::Relaxed))
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
                    if let Some(state) = lock(&self.state).as_mut() {
                        state.upstream_part = part;
                    }
                }
            }
            gst::EventView::Eos(_) => {
                self.finish_stream();
                // Drift: a baseline being learnt is written at end of stream.
                let drift = lock(&self.state)
                    .as_mut()
                    .and_then(|s| s.drift.as_mut())
                    .map(|d| d.finish());
                if let Some(outcome) = drift {
                    self.drift_post(outcome);
                }
            }
            gst::EventView::FlushStart(_) => {
                if let Some(worker) = lock(&self.worker).as_ref() {
                    worker.stop_waiting();
                }
                // A frame waiting for other elements' frames to fill its batch stops waiting.
                if lock(&self.settings).batch_size > 1
                    && let Some(interrupter) = lock(&self.interrupter).as_ref()
                {
                    interrupter.interrupt();
                }
            }
            gst::EventView::FlushStop(_) => {
                if lock(&self.settings).batch_size > 1
                    && let Some(interrupter) = lock(&self.interrupter).as_ref()
                {
                    interrupter.reset();
                }
                let worker = lock(&self.worker).clone();
                if let Some(worker) = &worker {
                    drop(worker.take_finished());
                    worker.resume();
                }
                if let Some(state) = lock(&self.state).as_mut() {
                    state.parts.reset();
                    state.carry = None;
                    state.staged_parts.clear();
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
            return self.classify_rois(buffer);
        }
        let started = Instant::now();
        let decided = if settings.async_inference {
            self.frame_async(buffer, &settings)?
        } else {
            self.frame_sync(buffer, &settings)?
        };
        // Drift (see super::drift): one call per frame after the verdict; posted after it.
        let drift = match lock(&self.state).as_mut() {
            Some(state) => self.drift_frame(
                &mut state.drift,
                &settings,
                &decided.identity,
                (&*buffer, &state.info, state.format, decided.frame_number),
                decided.inspected,
                &decided.verdict,
            ),
            None => Default::default(),
        };
        let flow = self.report(buffer, &settings, decided, started);
        self.drift_post(drift);
        flow
    }
}

/// A frame's verdict and where it came from, ready to be reported.
struct Decided {
    identity: Arc<Identity>,
    frame_number: u64,
    verdict: FrameVerdict,
    inference: Duration,
    carried_from: Option<u64>,
    inspected: bool,
    part_id: Option<String>,
    /// Parts whose verdicts are complete, oldest first.
    parts: Vec<PartVerdict>,
    width: f32,
    height: f32,
    /// An anomaly model's map and score, for `DefectAnomalyMapMeta`.
    anomaly: Option<Arc<AnomalyOutput>>,
}

impl DefectDetect {
    pub(super) fn slot(&self) -> &Slot<Loaded, Settings> {
        &self.slot
    }

    pub(super) fn count_batched(&self, runs: u64) {
        self.batched.fetch_add(runs, Ordering::Relaxed);
    }

    /// At a frame boundary, with the current model locked: takes over a pending model.
    /// Returns whether the model changed.
    pub(super) fn adopt(&self, current: &mut Option<Current<Loaded>>, frame: u64) -> bool {
        let Some(swap) = self.slot.adopt(current) else {
            return false;
        };
        if let Some(current) = current.as_ref() {
            let interrupter = current.model.detector.interrupter();
            *lock(&self.interrupter) = Some(interrupter);
            let warm = current.model.detector.info().warm_run.as_nanos() as u64;
            self.latency_ns.store(warm + warm / 4, Ordering::Relaxed);
            gst::info!(
                CAT,
                imp = self,
                "model generation {} ({}) in use from frame {frame}",
                swap.generation,
                current.model.identity.model_id
            );
        }
        drop(swap.previous);
        true
    }

    /// The part of a frame: its `DefectPartMeta`, else the last `defect-part` event, else
    /// `frames-per-part`.
    fn part_of(
        &self,
        buffer: &gst::BufferRef,
        state: &State,
        settings: &Settings,
        frame: u64,
    ) -> Option<String> {
        meta::part_id_from_buffer(buffer)
            .and_then(|read| self.problems.check(&*self.obj(), *CAT, read))
            .or_else(|| state.upstream_part.clone())
            .or_else(|| {
                (settings.frames_per_part > 0)
                    .then(|| (frame / settings.frames_per_part as u64).to_string())
            })
    }

    /// The model slot and the stream state for one frame, locked in that order (as everywhere);
    /// an error when no caps have come yet (the state is then `None`).
    #[allow(clippy::type_complexity)]
    fn lock_for_frame(
        &self,
    ) -> Result<
        (
            std::sync::MutexGuard<'_, Option<Current<Loaded>>>,
            std::sync::MutexGuard<'_, Option<State>>,
        ),
        gst::FlowError,
    > {
        let current = self.slot.lock_current();
        let state = lock(&self.state);
        if state.is_none() {
            gst::element_imp_error!(
                self,
                gst::CoreError::Negotiation,
                ("frames arrived before caps")
            );
            return Err(gst::FlowError::NotNegotiated);
        }
        Ok((current, state))
    }

    /// The streaming thread runs the model (every `interval` frames of a part).
    fn frame_sync(
        &self,
        buffer: &gst::BufferRef,
        settings: &Settings,
    ) -> Result<Decided, gst::FlowError> {
        let (mut current_guard, mut state_guard) = self.lock_for_frame()?;
        let Some(state) = state_guard.as_mut() else {
            return Err(gst::FlowError::NotNegotiated);
        };
        if self.adopt(&mut current_guard, state.frame_number) {
            state.carry = None;
        }
        let Some(current) = current_guard.as_mut() else {
            gst::element_imp_error!(self, gst::CoreError::Negotiation, ("no model loaded"));
            return Err(gst::FlowError::NotNegotiated);
        };
        let frame_number = state.frame_number;
        state.frame_number += 1;
        let part_id = self.part_of(buffer, state, settings, frame_number);
        let key = part_id.as_deref().map(|p| state.parts.key_for(p));
        let carry = settings.interval > 1
            && frame_number % settings.interval as u64 != 0
            && state
                .carry
                .as_ref()
                .is_some_and(|c| c.part == key && c.caps_serial == state.caps_serial);
        let (identity, detections, anomaly, inference, carried_from) = match &state.carry {
            Some(c) if carry => (
                c.identity.clone(),
                c.detections.clone(),
                c.anomaly.clone(),
                Duration::ZERO,
                Some(c.frame),
            ),
            _ => {
                let result = self.detect_sync(state, settings, &mut current.model, buffer)?;
                let identity = current.model.identity.clone();
                if settings.interval > 1 {
                    state.carry = Some(Carry {
                        frame: frame_number,
                        part: key,
                        caps_serial: state.caps_serial,
                        detections: result.detections.clone(),
                        anomaly: result.anomaly.clone(),
                        identity: identity.clone(),
                        inference: result.duration,
                    });
                }
                (
                    identity,
                    result.detections,
                    result.anomaly,
                    result.duration,
                    None,
                )
            }
        };
        drop(current_guard);
        let verdict = identity.evaluate(&detections, anomaly.as_deref(), frame_size(&state.info));
        let inspected = carried_from.is_none();
        let seen = if inspected {
            Seen::Judged(verdict.verdict, verdict.counts)
        } else {
            Seen::NotInspected
        };
        let mut decided = self.decided(
            state,
            identity,
            frame_number,
            part_id,
            seen,
            verdict,
            inference,
            carried_from,
        );
        decided.anomaly = anomaly;
        Ok(decided)
    }

    /// The streaming thread hands the frame to the worker if it is free and takes the newest
    /// result of the frame's part; it never waits for the model.
    fn frame_async(
        &self,
        buffer: &gst::BufferRef,
        settings: &Settings,
    ) -> Result<Decided, gst::FlowError> {
        let worker = lock(&self.worker).clone().ok_or(gst::FlowError::Flushing)?;
        let mut state_guard = lock(&self.state);
        let state = state_guard.as_mut().ok_or(gst::FlowError::NotNegotiated)?;
        self.apply_finished(state, worker.take_finished())?;
        let frame_number = state.frame_number;
        state.frame_number += 1;
        let part_id = self.part_of(buffer, state, settings, frame_number);
        let key = part_id.as_deref().map(|p| state.parts.key_for(p));
        let job = Job {
            buffer: buffer.to_owned(),
            frame: frame_number,
            info: state.info.clone(),
            format: state.format,
            thresholds: settings.thresholds(),
            tile_size: settings.tile_size,
            tile_overlap: settings.tile_overlap,
            part: key,
            caps_serial: state.caps_serial,
        };
        // Without parts the queue is kept full; with parts, a busy worker queues only the
        // frame a part needs (its first), so that every part is inspected.
        let may_queue = part_id
            .as_deref()
            .is_none_or(|p| state.parts.needs_inspection(p));
        let seen = match worker.submit(job, may_queue) {
            Submit::Accepted => Seen::Pending,
            Submit::Busy => {
                self.skipped.fetch_add(1, Ordering::Relaxed);
                Seen::NotInspected
            }
            Submit::Gone => {
                // The worker ended after an error it reported; no result will come.
                return Err(gst::FlowError::Error);
            }
        };
        let carried = state
            .carry
            .as_ref()
            .filter(|c| c.part == key && c.caps_serial == state.caps_serial);
        let anomaly = carried.and_then(|c| c.anomaly.clone());
        let (identity, verdict, inference, carried_from) = match carried {
            Some(c) => (
                c.identity.clone(),
                c.identity
                    .evaluate(&c.detections, c.anomaly.as_deref(), frame_size(&state.info)),
                c.inference,
                Some(c.frame),
            ),
            // No result of this part yet: not PASS, UNKNOWN.
            None => (
                self.slot.published().ok_or(gst::FlowError::NotNegotiated)?,
                FrameVerdict::unknown(),
                Duration::ZERO,
                None,
            ),
        };
        let mut decided = self.decided(
            state,
            identity,
            frame_number,
            part_id,
            seen,
            verdict,
            inference,
            carried_from,
        );
        decided.inspected = matches!(seen, Seen::Pending);
        decided.anomaly = anomaly;
        Ok(decided)
    }

    /// Adds the frame to its part and gathers what the report needs.
    #[allow(clippy::too_many_arguments)]
    fn decided(
        &self,
        state: &mut State,
        identity: Arc<Identity>,
        frame_number: u64,
        part_id: Option<String>,
        seen: Seen,
        verdict: FrameVerdict,
        inference: Duration,
        carried_from: Option<u64>,
    ) -> Decided {
        match &part_id {
            Some(id) => {
                state.parts.observe(id, frame_number, seen);
            }
            None => state.parts.finish(),
        }
        Decided {
            identity,
            frame_number,
            verdict,
            inference,
            carried_from,
            inspected: matches!(seen, Seen::Judged(..)),
            part_id,
            parts: state.parts.take_ready(),
            width: state.info.width() as f32,
            height: state.info.height() as f32,
            anomaly: None,
        }
    }

    /// Takes the worker's results: each counts for its own frame's part, and the newest is
    /// carried forward.
    fn apply_finished(
        &self,
        state: &mut State,
        finished: Vec<Finished>,
    ) -> Result<(), gst::FlowError> {
        for result in finished {
            match result.outcome {
                Ok(output) => {
                    self.warn_decode(&mut state.warned, &output.stats);
                    let verdict = output.identity.evaluate(
                        &output.detections,
                        output.anomaly.as_deref(),
                        frame_size(&state.info),
                    );
                    if let Some(key) = result.part {
                        state.parts.result(key, verdict.verdict, &verdict.counts);
                    }
                    if state.carry.as_ref().is_none_or(|c| c.frame < result.frame) {
                        state.carry = Some(Carry {
                            frame: result.frame,
                            part: result.part,
                            caps_serial: result.caps_serial,
                            detections: output.detections,
                            anomaly: output.anomaly,
                            identity: output.identity,
                            inference: output.duration,
                        });
                    }
                }
                Err(InferError::Interrupted) => {
                    if let Some(key) = result.part {
                        state.parts.abandon(key);
                    }
                }
                Err(InferError::Failed(reason)) => {
                    if let Some(key) = result.part {
                        state.parts.abandon(key);
                    }
                    gst::element_imp_error!(
                        self,
                        gst::StreamError::Failed,
                        ("inference failed: {reason}")
                    );
                    return Err(gst::FlowError::Error);
                }
            }
        }
        Ok(())
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
        let report = Report {
            inference_ms: decided.inference.as_secs_f64() * 1e3,
            total_ms: total.as_secs_f64() * 1e3,
            frame_number: decided.frame_number,
            inspected: decided.inspected,
            carried_from: decided.carried_from,
            skipped: self.skipped.load(Ordering::Relaxed),
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
            &decided.verdict.judged,
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
        let worker = lock(&self.worker).clone();
        let mut complete = true;
        let mut finished = Vec::new();
        if let Some(worker) = worker.filter(|_| settings.async_inference) {
            complete = worker.wait_idle();
            finished = worker.take_finished();
        }
        let (parts, model_id) = {
            let mut state_guard = lock(&self.state);
            let Some(state) = state_guard.as_mut() else {
                return;
            };
            if self.apply_finished(state, finished).is_err() {
                complete = false;
            }
            state.parts.finish();
            if !complete || state.parts.has_pending() {
                state.parts.abandon_all();
            }
            let model_id = state
                .carry
                .as_ref()
                .map(|c| c.identity.model_id.clone())
                .or_else(|| self.slot.published().map(|i| i.model_id.clone()))
                .unwrap_or_default();
            (state.parts.take_ready(), model_id)
        };
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
        match loaded::build(&settings, None) {
            Ok((loaded, warnings)) => {
                for warning in warnings {
                    gst::element_imp_warning!(self, gst::LibraryError::Settings, ("{warning}"));
                }
                gst::info!(CAT, imp = self, "loaded {:?}", loaded.detector.info());
                let warm = loaded.detector.info().warm_run.as_nanos() as u64;
                self.latency_ns.store(warm + warm / 4, Ordering::Relaxed);
                *lock(&self.interrupter) = Some(loaded.detector.interrupter());
                self.slot.load(loaded);
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
            let frame_size = *lock(&imp.frame_size);
            loaded::build(settings, frame_size).map_err(|e| e.to_string())
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
        if self.slot.request(settings, build, report) {
            gst::debug!(CAT, imp = self, "background build requested");
        }
    }

    /// `on-rois`: classifies the crop of every `GstVideoRegionOfInterestMeta` already on the
    /// buffer and adds a `classification` structure (`label`, `label_id`, `confidence`, and the
    /// policy's `severity` and `decision` for that class) to it, as `gvaclassify` does. The
    /// frame's verdict is then re-decided by this policy on the classified labels
    /// ([`restage_verdict`]): the buffer's `DefectVerdictMeta` is replaced and a `defect-verdict`
    /// message posted.
    fn classify_rois(
        &self,
        buffer: &mut gst::BufferRef,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let (mut current_guard, mut state_guard) = self.lock_for_frame()?;
        let Some(state) = state_guard.as_mut() else {
            return Err(gst::FlowError::NotNegotiated);
        };
        self.adopt(&mut current_guard, state.frame_number);
        state.frame_number += 1;
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
        let (width, height) = (state.info.width(), state.info.height());
        let mut results = Vec::with_capacity(rects.len());
        {
            let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(&*buffer, &state.info)
                .map_err(|_| {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Format,
                    ("cannot map a {width}x{height} frame")
                );
                gst::FlowError::Error
            })?;
            let view = frame_view(&frame).map_err(|reason| {
                gst::element_imp_error!(self, gst::StreamError::Format, ("{reason}"));
                gst::FlowError::Error
            })?;
            let yuv = crate::video::yuv_matrix(&state.info);
            let (model_w, model_h, channels) = {
                let info = loaded.detector.info();
                (info.width, info.height, info.channels)
            };
            let (mut scores, mut probabilities) = (Vec::new(), Vec::new());
            for &(x, y, w, h) in &rects {
                // Clipped to the frame; an empty crop gets no classification.
                let (x, y) = (x.min(width), y.min(height));
                let (w, h) = (w.min(width - x), h.min(height - y));
                if w == 0 || h == 0 {
                    results.push(None);
                    continue;
                }
                let mut pre =
                    ClassifyPreprocess::new(ClassifyGeometry::new(w, h, model_w, model_h));
                let ran = pre
                    .run(
                        &view,
                        state.format,
                        yuv,
                        (x, y),
                        channels,
                        loaded.detector.input_mut(),
                    )
                    .map_err(|e| InferError::Failed(e.to_string()))
                    .and_then(|()| {
                        loaded
                            .detector
                            .classify(&mut scores)
                            .map_err(InferError::from)
                    })
                    .and_then(|()| {
                        classify::probabilities(&scores, &mut probabilities)
                            .map_err(|e| InferError::Failed(e.to_string()))
                    });
                match ran {
                    Ok(_) => {}
                    Err(InferError::Interrupted) => return Err(gst::FlowError::Flushing),
                    Err(InferError::Failed(reason)) => {
                        gst::element_imp_error!(self, gst::StreamError::Failed, ("{reason}"));
                        return Err(gst::FlowError::Error);
                    }
                }
                let (class_id, confidence) = classify::top_k(&probabilities, 1)[0];
                let detection = Detection {
                    bbox: crate::analysis::BBox {
                        x1: x as f32,
                        y1: y as f32,
                        x2: (x + w) as f32,
                        y2: (y + h) as f32,
                    },
                    confidence,
                    class_id,
                };
                let judged = identity
                    .policy
                    .evaluate(&[detection], |id| identity.model.class_name(id));
                results.push(Some(judged));
            }
        }
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
                restage_verdict(verdict, &rects, &upstream, &results, &|id| {
                    identity.model.class_name(id)
                })
            });
        if let Some(verdict) = restaged {
            if let Some(part_id) = &verdict.part_id {
                let result_frame = verdict.source_frame.unwrap_or(verdict.frame);
                state
                    .staged_parts
                    .observe(part_id, result_frame, verdict.verdict, &verdict.counts);
            }
            drop(state_guard);
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
        let restaged = lock(&self.state).as_mut().and_then(|state| {
            state
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

    /// Preprocesses the frame, runs the model and post-processes: detections in frame pixels.
    fn detect_sync(
        &self,
        state: &mut State,
        settings: &Settings,
        loaded: &mut Loaded,
        buffer: &gst::BufferRef,
    ) -> Result<inference::Inference, gst::FlowError> {
        let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &state.info)
            .map_err(|_| {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Format,
                    (
                        "cannot map a {}x{} frame",
                        state.info.width(),
                        state.info.height()
                    )
                );
                gst::FlowError::Error
            })?;
        let view = frame_view(&frame).map_err(|reason| {
            gst::element_imp_error!(self, gst::StreamError::Format, ("{reason}"));
            gst::FlowError::Error
        })?;
        let input = FrameInput {
            info: &state.info,
            format: state.format,
            view: &view,
            tile_size: settings.tile_size,
            tile_overlap: settings.tile_overlap,
        };
        let result = match inference::infer(loaded, &input, settings.thresholds()) {
            Ok(result) => result,
            // Stopping: not an error.
            Err(InferError::Interrupted) => return Err(gst::FlowError::Flushing),
            Err(InferError::Failed(reason)) => {
                gst::element_imp_error!(self, gst::StreamError::Failed, ("{reason}"));
                return Err(gst::FlowError::Error);
            }
        };
        self.warn_decode(&mut state.warned, &result.stats);
        self.count_batched(result.batched);
        Ok(result)
    }

    /// Warns, once per stream and kind, about what the decoder dropped or changed.
    fn warn_decode(&self, warned: &mut Warned, stats: &DecodeStats) {
        let once = |flag: &mut bool, count: usize, message: &dyn Fn() -> String| {
            if count > 0 && !*flag {
                *flag = true;
                gst::element_imp_warning!(self, gst::StreamError::Decode, ("{}", message()));
            }
        };
        once(&mut warned.non_finite, stats.non_finite, &|| {
            format!(
                "the model output {} candidates with NaN or infinite values; they were dropped",
                stats.non_finite
            )
        });
        once(&mut warned.inverted, stats.inverted, &|| {
            format!(
                "the model output {} inverted boxes (x2 < x1 or y2 < y1); they were dropped",
                stats.inverted
            )
        });
        once(&mut warned.bad_class, stats.bad_class, &|| {
            format!(
                "the model output {} detections whose class is not an integer in [0, {MAX_CLASS_ID}); they were dropped",
                stats.bad_class
            )
        });
        once(&mut warned.clamped, stats.clamped, &|| {
            format!(
                "the model output {} scores above 1 (up to {:e}); they were clamped to 1: scores must be probabilities in [0, 1]",
                stats.clamped, stats.max_score
            )
        });
    }

    /// Raises the reported latency when a frame took longer than it says, with room (half
    /// again) so that the jitter of the next frames does not raise it once more, and, in a
    /// live pipeline, asks the pipeline to recompute its latency. A non-live pipeline has no
    /// latency to keep: no message (gst-launch-1.0 would print "Redistribute latency..." for
    /// each).
    fn track_latency(&self, took: Duration) {
        let took = took.as_nanos() as u64;
        let reported = self.latency_ns.load(Ordering::Relaxed);
        if took <= reported {
            return;
        }
        self.latency_ns.store(took + took / 2, Ordering::Relaxed);
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
