// SPDX-License-Identifier: MIT OR Apache-2.0
//! What the threads of one element share: the model slot, the interrupter of the model in use
//! and the counters.
//!
//! Locks: the slot's (see [`super::slot`]) and `interrupter`, short, taken after the slot's
//! current model when both are held.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use super::model::Loaded;
use super::slot::{Current, Slot, lock};
use crate::runtime::Interrupter;

/// What the threads of one element share (behind an `Arc`): the model slot (built from
/// requests of type `R`), the interrupter of the model in use and the counters.
pub struct Engine<R> {
    pub slot: Slot<Loaded, R>,
    /// Interrupts the current detector's run (set at each load and adoption): stopping never
    /// waits for a long inference. Short lock, taken after the current model.
    interrupter: Mutex<Option<Interrupter>>,
    /// Frames the asynchronous worker had no time for.
    pub skipped: AtomicU64,
    /// Model runs that shared a batch with other elements' frames.
    pub batched: AtomicU64,
    /// The processing latency answered to latency queries, in nanoseconds: the warm run at
    /// load, raised when frames take longer.
    pub latency_ns: AtomicU64,
    /// Upstream answered the last latency query as live: only then does a raised latency
    /// need announcing (a non-live pipeline has no latency to keep).
    pub live: AtomicBool,
}

impl<R> Default for Engine<R> {
    fn default() -> Self {
        Self {
            slot: Slot::default(),
            interrupter: Mutex::new(None),
            skipped: AtomicU64::new(0),
            batched: AtomicU64::new(0),
            latency_ns: AtomicU64::new(0),
            live: AtomicBool::new(false),
        }
    }
}

/// What changed at a frame boundary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adopted {
    pub generation: u64,
    /// The model now in use; None when the current model was dropped as stale (cleared).
    pub model_id: Option<String>,
}

impl<R: Send + 'static> Engine<R> {
    /// NULL to READY: `loaded` becomes the model to use.
    pub fn load(&self, loaded: Loaded) {
        self.took_over(&loaded);
        self.slot.load(loaded);
    }

    /// READY to NULL: the models go, and with them their interrupter.
    pub fn clear(&self) {
        self.slot.clear();
        *lock(&self.interrupter) = None;
    }

    /// At a frame boundary, with the current model locked: takes over a pending model (the
    /// replaced one is dropped here). Returns what changed, None when nothing did.
    pub fn adopt(&self, current: &mut Option<Current<Loaded>>) -> Option<Adopted> {
        let swap = self.slot.adopt(current)?;
        let model_id = current.as_ref().map(|current| {
            self.took_over(&current.model);
            current.model.identity.model_id.clone()
        });
        drop(swap.previous);
        Some(Adopted {
            generation: swap.generation,
            model_id,
        })
    }

    fn took_over(&self, loaded: &Loaded) {
        *lock(&self.interrupter) = Some(loaded.detector.interrupter());
        let warm = loaded.detector.info().warm_run.as_nanos() as u64;
        self.latency_ns.store(warm + warm / 4, Ordering::Relaxed);
    }

    /// Interrupts the inference in progress, and the next ones until [`Engine::resume`].
    pub fn interrupt(&self) {
        if let Some(interrupter) = lock(&self.interrupter).as_ref() {
            interrupter.interrupt();
        }
    }

    pub fn resume(&self) {
        if let Some(interrupter) = lock(&self.interrupter).as_ref() {
            interrupter.reset();
        }
    }

    pub fn count_batched(&self, runs: u64) {
        self.batched.fetch_add(runs, Ordering::Relaxed);
    }

    /// A frame took `took`: when longer than the latency reported, raises it with room (half
    /// again), so that the jitter of the next frames does not raise it once more. Returns the
    /// latency reported before when it was raised in a live stream: the pipeline must then
    /// recompute its latency.
    pub fn raise_latency(&self, took: Duration) -> Option<Duration> {
        let took = took.as_nanos() as u64;
        let reported = self.latency_ns.load(Ordering::Relaxed);
        if took <= reported {
            return None;
        }
        self.latency_ns.store(took + took / 2, Ordering::Relaxed);
        self.live
            .load(Ordering::Relaxed)
            .then_some(Duration::from_nanos(reported))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_is_raised_with_room_and_announced_only_when_live() {
        let engine = Engine::<()>::default();
        let ms = Duration::from_millis;
        assert_eq!(engine.raise_latency(ms(10)), None, "not live");
        assert_eq!(engine.latency_ns.load(Ordering::Relaxed), 15_000_000);
        engine.live.store(true, Ordering::Relaxed);
        assert_eq!(
            engine.raise_latency(ms(12)),
            None,
            "within what was reported"
        );
        assert_eq!(engine.raise_latency(ms(20)), Some(ms(15)));
        assert_eq!(engine.latency_ns.load(Ordering::Relaxed), 30_000_000);
    }
}
