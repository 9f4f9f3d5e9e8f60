// SPDX-License-Identifier: MIT OR Apache-2.0
//! The asynchronous inference worker (`async-inference=true`): a queue of one frame and a
//! thread that infers the frames it is handed, one at a time, with the engine's current model
//! (adopting a pending one between frames). Finished results wait in a list that the
//! streaming thread drains at each frame and at end of stream, where it waits for the last.
//!
//! The thread holds the engine (the slot and the counters), not the element: only a weak
//! reference to it, to name it in its log lines.
//!
//! Stopping never waits for an inference: [`Worker::stop`] closes the queue and leaves the
//! thread to end on its own (the run is interrupted by the element); waits for results end
//! at once.
//!
//! Locks: `results` (short; never held while another lock is taken). The thread holds the
//! slot's current model for each inference and takes `results` after releasing it.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex};

use gst::glib;

use super::settings::Settings;
use crate::element::lock;
use crate::inspect::Engine;
use crate::inspect::flow::{Options, Pending, Submit};
use crate::inspect::infer::InferError;
use crate::inspect::stream::{Caps, Finished, Output};
use crate::policy::PartKey;
use crate::video::with_frame_view;

/// One frame handed to the worker.
pub(super) struct Job {
    pub buffer: gst::Buffer,
    pub info: Arc<gst_video::VideoInfo>,
    pub frame: u64,
    /// The part of the frame, whose verdict waits for this result.
    pub part: Option<PartKey>,
    pub caps: Caps,
    /// The caps the frame came with (results are carried only to frames of the same caps).
    pub caps_serial: u64,
    pub options: Options,
}

impl Job {
    /// The frame the engine counted (`pending`), inferred with `options`.
    pub fn new(
        buffer: &gst::BufferRef,
        pending: &Pending,
        info: Arc<gst_video::VideoInfo>,
        options: Options,
    ) -> Self {
        Self {
            buffer: buffer.to_owned(),
            info,
            frame: pending.frame.number,
            part: pending.frame.key,
            caps: pending.caps,
            caps_serial: pending.caps_serial,
            options,
        }
    }
}

#[derive(Default)]
struct Results {
    finished: VecDeque<Finished>,
    /// Jobs accepted and not finished.
    in_flight: usize,
    /// The element is stopping: waits end.
    stopping: bool,
}

#[derive(Default)]
struct Shared {
    results: Mutex<Results>,
    changed: Condvar,
}

/// A handle on the worker; cheap to clone, so that no lock is held while waiting on it.
#[derive(Clone)]
pub(super) struct Worker {
    sender: SyncSender<Job>,
    shared: Arc<Shared>,
}

impl Worker {
    /// Starts the thread; it logs in `cat` (the element's category) as `element`.
    pub fn start(
        engine: Arc<Engine<Settings>>,
        cat: gst::DebugCategory,
        element: glib::WeakRef<gst::Element>,
    ) -> std::io::Result<Self> {
        let (sender, receiver) = std::sync::mpsc::sync_channel::<Job>(1);
        let shared = Arc::new(Shared::default());
        let worker_shared = shared.clone();
        std::thread::Builder::new()
            .name("defectdetect-infer".into())
            .spawn(move || run(receiver, worker_shared, engine, (cat, element)))?;
        Ok(Self { sender, shared })
    }

    /// Hands a frame to the worker when it is idle; when it is busy, queues it (one frame at
    /// most) only if `may_queue`, else the frame is not inferred. Keeping the queue for the
    /// frames that need it (a part's first) means every part gets inspected.
    pub fn submit(&self, job: Job, may_queue: bool) -> Submit {
        let mut results = lock(&self.shared.results);
        if results.in_flight > 0 && !may_queue {
            return Submit::Busy;
        }
        match self.sender.try_send(job) {
            Ok(()) => {
                results.in_flight += 1;
                Submit::Accepted
            }
            Err(TrySendError::Full(_)) => Submit::Busy,
            Err(TrySendError::Disconnected(_)) => Submit::Gone,
        }
    }

    /// The results finished since the last call, oldest first.
    pub fn take_finished(&self) -> Vec<Finished> {
        lock(&self.shared.results).finished.drain(..).collect()
    }

    /// Waits until every accepted job has finished; false when the wait ended because the
    /// element is stopping.
    pub fn wait_idle(&self) -> bool {
        let results = lock(&self.shared.results);
        let results = self
            .shared
            .changed
            .wait_while(results, |r| r.in_flight > 0 && !r.stopping)
            .unwrap_or_else(|p| p.into_inner());
        results.in_flight == 0
    }

    /// Ends any wait at once (flushing or stopping); new waits end at once too until
    /// [`Worker::resume`].
    pub fn stop_waiting(&self) {
        lock(&self.shared.results).stopping = true;
        self.shared.changed.notify_all();
    }

    pub fn resume(&self) {
        lock(&self.shared.results).stopping = false;
    }

    /// Closes the queue: the thread ends after the frame in hand, without being waited for.
    pub fn stop(self) {
        self.stop_waiting();
    }
}

/// Where the worker logs: the element's category, and the element (weakly) to name it.
type Log = (gst::DebugCategory, glib::WeakRef<gst::Element>);

/// The worker thread.
fn run(jobs: Receiver<Job>, shared: Arc<Shared>, engine: Arc<Engine<Settings>>, log: Log) {
    for job in jobs {
        let outcome = infer_job(&engine, &job, &log);
        let failed = matches!(outcome, Err(InferError::Failed(_)));
        let mut results = lock(&shared.results);
        results.in_flight = results.in_flight.saturating_sub(1);
        results.finished.push_back(Finished {
            frame: job.frame,
            part: job.part,
            caps_serial: job.caps_serial,
            outcome,
        });
        shared.changed.notify_all();
        if failed {
            // The streaming thread reports the error; frames still queued are not inferred.
            results.in_flight = 0;
            return;
        }
    }
}

fn infer_job(
    engine: &Engine<Settings>,
    job: &Job,
    (cat, element): &Log,
) -> Result<Output, InferError> {
    let mut current = engine.slot.lock_current();
    if let Some(adopted) = engine.adopt(&mut current)
        && let Some(model_id) = adopted.model_id
    {
        let message = format!(
            "model generation {} ({model_id}) in use from frame {}",
            adopted.generation, job.frame
        );
        match element.upgrade() {
            Some(element) => gst::info!(*cat, obj = &element, "{message}"),
            None => gst::info!(*cat, "{message}"),
        }
    }
    let Some(current) = current.as_mut() else {
        return Err(InferError::Failed("no model loaded".into()));
    };
    let (options, caps) = (&job.options, &job.caps);
    with_frame_view(job.buffer.as_ref(), &job.info, |view| {
        engine.infer(
            &mut current.model,
            &options.input(caps, view),
            options.thresholds,
        )
    })
    .map_err(InferError::Failed)?
}
