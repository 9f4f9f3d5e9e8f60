// SPDX-License-Identifier: MIT OR Apache-2.0
//! The challenger (`challenger-model`): a second model that judges the frames the production
//! model inferred, on a thread of its own at the lowest scheduling priority, so that it never
//! delays production. The streaming thread hands it a reference to the frame (no copy, no
//! preprocessing there) with production's judgement of it; its queue holds one frame: a newer
//! frame replaces one still waiting, which counts as skipped (`challenger-wait`, for
//! validation runs, makes the streaming thread wait instead).
//!
//! The thread loads its model itself, after lowering its priority, so that ONNX Runtime's
//! threads for it inherit that priority; [`Challenger::start`] waits for the load and returns
//! its error. Its results ([`ChallengerFrame`]) wait in a list that the streaming thread drains
//! at each frame and at end of stream (it sends them downstream as events); the agreement
//! table ([`crate::inspect::agreement`]) and the counts are kept here.
//!
//! The element's side (set-up at start, offering frames, sending results, the summary at end
//! of stream) is the `impl DefectDetect` block here; which frames are offered and which
//! settings combine with a challenger is [`crate::inspect::checks`].
//!
//! Locks: `state` (short; never held during an inference or while another lock is taken).

use std::sync::{Arc, Condvar, Mutex};

use gst::glib;

use super::settings::Settings;
use crate::element::lock;
use crate::inspect::agreement::{self, Agreement, Found, Judgement};
use crate::inspect::infer::{InferError, Region, Thresholds};
use crate::inspect::model::{self, Loaded, Request};
use crate::inspect::stream::{Caps, Decided};
use crate::meta::{AgreementRow, ChallengerFrame, ChallengerSummary, Reason, Verdict};
use crate::policy::FrameVerdict;
use crate::runtime::Interrupter;
use crate::video::with_frame_view;

/// One frame offered to the challenger, with production's judgement of it.
pub(super) struct Job {
    pub buffer: gst::Buffer,
    pub info: Arc<gst_video::VideoInfo>,
    pub caps: Caps,
    pub frame: u64,
    pub pts: Option<u64>,
    pub thresholds: Thresholds,
    pub tile_size: u32,
    pub tile_overlap: u32,
    pub test_time_flip: bool,
    /// The window a classifier judges (`crop`), as production's.
    pub crop: Option<Region>,
    pub production: Judgement,
    pub production_model_id: String,
}

impl Job {
    /// A frame production decided, with production's judgement of it, judged as production
    /// judged it (`settings`: thresholds, tiling, crop).
    pub fn new(
        buffer: &gst::BufferRef,
        (info, caps): (Arc<gst_video::VideoInfo>, Caps),
        settings: &Settings,
        decided: &Decided,
    ) -> Self {
        let model = &decided.identity.model;
        Self {
            buffer: buffer.to_owned(),
            info,
            caps,
            frame: decided.frame_number,
            pts: buffer.pts().map(|t| t.nseconds()),
            thresholds: settings.thresholds(),
            tile_size: settings.tile_size,
            tile_overlap: settings.tile_overlap,
            test_time_flip: settings.test_time_flip,
            crop: settings.crop_region(),
            production: judgement(&decided.verdict, &|id| model.class_name(id)),
            production_model_id: decided.identity.model_id.clone(),
        }
    }
}

#[derive(Default)]
struct State {
    queued: Option<Job>,
    /// A frame is being judged.
    busy: bool,
    /// The element is stopping, or the challenger failed: the thread ends, frames are
    /// skipped.
    closed: bool,
    /// Waits end at once (flushing, stopping).
    stopping: bool,
    finished: Vec<ChallengerFrame>,
    agreement: Agreement,
    judged: u64,
    skipped: u64,
    production_model_id: String,
    /// Why the challenger stopped judging, not yet reported.
    failure: Option<String>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

/// A handle on the challenger; cheap to clone, so that no lock is held while waiting on it.
#[derive(Clone)]
pub(super) struct Challenger {
    shared: Arc<Shared>,
    pub model_id: Arc<str>,
    interrupter: Interrupter,
}

/// Where the thread logs: the element's category, and the element (weakly) to name it.
type Log = (gst::DebugCategory, glib::WeakRef<gst::Element>);

/// A model's judgement of a frame, as the agreement compares it: the detections its policy
/// counted.
pub(super) fn judgement(verdict: &FrameVerdict, class_name: &dyn Fn(usize) -> String) -> Judgement {
    Judgement {
        verdict: verdict.verdict,
        found: verdict
            .judged
            .iter()
            .filter(|j| j.decision.counted())
            .map(|j| Found {
                class: class_name(j.detection.class_id),
                confidence: j.detection.confidence,
                bbox: j.detection.bbox,
            })
            .collect(),
    }
}

/// An agreement table as the rows of the contract: per class, then per verdict.
pub(super) fn rows(agreement: &Agreement) -> Vec<AgreementRow> {
    let row = |level: &str, (label, t): (&String, &agreement::Tally)| AgreementRow {
        level: level.into(),
        label: label.clone(),
        both: t.both,
        only_production: t.only_production,
        only_challenger: t.only_challenger,
    };
    let classes = agreement.classes.iter().map(|e| row("class", e));
    let verdicts = agreement.verdicts.iter().map(|e| row("verdict", e));
    classes.chain(verdicts).collect()
}

impl Challenger {
    /// Starts the thread, which lowers its priority and loads the challenger's model; returns
    /// once it is loaded (with the load's warnings), or the reason it cannot be.
    pub fn start(request: Request, log: Log) -> Result<(Self, Vec<String>), String> {
        let shared = Arc::new(Shared::default());
        let (loaded_tx, loaded_rx) = std::sync::mpsc::channel();
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name("defectdetect-challenger".into())
            .spawn(move || {
                lower_priority();
                match model::build(&request, None) {
                    Ok((loaded, warnings)) => {
                        let started = (
                            loaded.identity.model_id.clone(),
                            loaded.detector.interrupter(),
                            warnings,
                        );
                        let _ = loaded_tx.send(Ok(started));
                        run(loaded, thread_shared, log);
                    }
                    Err(e) => {
                        let _ = loaded_tx.send(Err(e.to_string()));
                    }
                }
            })
            .map_err(|e| format!("cannot start the challenger thread: {e}"))?;
        let (model_id, interrupter, warnings) = loaded_rx
            .recv()
            .map_err(|_| "the challenger thread ended while loading".to_string())??;
        Ok((
            Self {
                shared,
                model_id: model_id.into(),
                interrupter,
            },
            warnings,
        ))
    }

    /// Offers a frame: it replaces a frame still waiting (counted as skipped); with `wait`, the
    /// streaming thread waits for the challenger to take the waiting frame instead.
    pub fn submit(&self, job: Job, wait: bool) {
        let mut state = lock(&self.shared.state);
        if wait {
            state = self
                .shared
                .changed
                .wait_while(state, |s| s.queued.is_some() && !s.stopping && !s.closed)
                .unwrap_or_else(|p| p.into_inner());
        }
        state.production_model_id = job.production_model_id.clone();
        if state.closed {
            let skipped = self.skipped(&job);
            state.skipped += 1;
            state.finished.push(skipped);
            return;
        }
        if let Some(replaced) = state.queued.replace(job) {
            let skipped = self.skipped(&replaced);
            state.skipped += 1;
            state.finished.push(skipped);
        }
        self.shared.changed.notify_all();
    }

    fn skipped(&self, job: &Job) -> ChallengerFrame {
        ChallengerFrame {
            frame: job.frame,
            pts: job.pts,
            model_id: self.model_id.to_string(),
            production_model_id: job.production_model_id.clone(),
            skipped: true,
            verdict: Verdict::Unknown,
            production_verdict: job.production.verdict,
            detections: Vec::new(),
            agreement: Vec::new(),
        }
    }

    /// The results since the last call, oldest first, and a failure not reported yet.
    pub fn take_finished(&self) -> (Vec<ChallengerFrame>, Option<String>) {
        let mut state = lock(&self.shared.state);
        (std::mem::take(&mut state.finished), state.failure.take())
    }

    /// Waits until the challenger has judged the frame in hand and the one waiting; false when
    /// the wait ended because the element is flushing or stopping.
    pub fn wait_idle(&self) -> bool {
        let state = lock(&self.shared.state);
        let state = self
            .shared
            .changed
            .wait_while(state, |s| {
                (s.busy || s.queued.is_some()) && !s.stopping && !s.closed
            })
            .unwrap_or_else(|p| p.into_inner());
        !state.busy && state.queued.is_none()
    }

    /// Ends any wait at once; new waits end at once too until [`Challenger::resume`].
    pub fn stop_waiting(&self) {
        lock(&self.shared.state).stopping = true;
        self.shared.changed.notify_all();
    }

    pub fn resume(&self) {
        lock(&self.shared.state).stopping = false;
    }

    /// The figures so far.
    pub fn summary(&self) -> ChallengerSummary {
        let state = lock(&self.shared.state);
        ChallengerSummary {
            model_id: self.model_id.to_string(),
            production_model_id: state.production_model_id.clone(),
            judged_frames: state.judged,
            skipped_frames: state.skipped,
            agreement: rows(&state.agreement),
        }
    }

    /// Ends the thread after (an interrupted) frame in hand, without waiting for it; the frame
    /// waiting is dropped.
    pub fn stop(&self) {
        {
            let mut state = lock(&self.shared.state);
            state.closed = true;
            state.stopping = true;
            state.queued = None;
        }
        self.interrupter.interrupt();
        self.shared.changed.notify_all();
    }
}

/// Lowers the calling thread's scheduling priority to the lowest (nice 19), best effort: the
/// challenger only runs on what production leaves.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority on the calling thread's id only changes its nice value.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19);
    }
}

/// The challenger's thread: judges the waiting frame, one at a time, until closed.
fn run(mut loaded: Loaded, shared: Arc<Shared>, (cat, element): Log) {
    loop {
        let job = {
            let state = lock(&shared.state);
            let mut state = shared
                .changed
                .wait_while(state, |s| s.queued.is_none() && !s.closed)
                .unwrap_or_else(|p| p.into_inner());
            if state.closed {
                return;
            }
            state.busy = true;
            state.queued.take()
        };
        let Some(job) = job else { continue };
        let outcome = judge(&mut loaded, &job);
        let mut state = lock(&shared.state);
        state.busy = false;
        match outcome {
            Ok((verdict, reasons)) => {
                let identity = &loaded.identity;
                let mine = judgement(&verdict, &|id| identity.model.class_name(id));
                let frame = agreement::compare(&job.production, &mine);
                let mut this_frame = Agreement::default();
                this_frame.add(&frame);
                state.agreement.add(&frame);
                state.judged += 1;
                state.finished.push(ChallengerFrame {
                    frame: job.frame,
                    pts: job.pts,
                    model_id: identity.model_id.clone(),
                    production_model_id: job.production_model_id.clone(),
                    skipped: false,
                    verdict: verdict.verdict,
                    production_verdict: job.production.verdict,
                    detections: reasons,
                    agreement: rows(&this_frame),
                });
            }
            Err(InferError::Interrupted) => {
                state.closed = true;
            }
            Err(InferError::Failed(reason)) => {
                let message = format!(
                    "the challenger failed on frame {} and judges no more frames: {reason}",
                    job.frame
                );
                match element.upgrade() {
                    Some(element) => gst::warning!(cat, obj = &element, "{message}"),
                    None => gst::warning!(cat, "{message}"),
                }
                state.failure = Some(message);
                state.closed = true;
            }
        }
        shared.changed.notify_all();
        if state.closed {
            return;
        }
    }
}

/// One frame through the challenger's model and policy: its verdict, and its detections as
/// the event reports them.
fn judge(loaded: &mut Loaded, job: &Job) -> Result<(FrameVerdict, Vec<Reason>), InferError> {
    let result = with_frame_view(job.buffer.as_ref(), &job.info, |view| {
        let input = job.caps.input(
            view,
            (job.tile_size, job.tile_overlap),
            job.crop,
            job.test_time_flip,
        );
        loaded.infer(&input, job.thresholds)
    })
    .map_err(InferError::Failed)??;
    let size = (job.caps.width as f32, job.caps.height as f32);
    let identity = &loaded.identity;
    let verdict = identity.evaluate(
        &result.detections,
        result.anomaly.as_deref(),
        result.masks.as_ref(),
        size,
    );
    let reasons = verdict
        .judged
        .iter()
        .map(|j| super::metas::reason(j, &|id| identity.model.class_name(id)))
        .collect();
    Ok((verdict, reasons))
}
