// SPDX-License-Identifier: MIT OR Apache-2.0
//! The model slot: the one place that owns the model in use, the model waiting to take over
//! and the generation that tells them apart, whatever a "model" is (for `defectdetect` a detector
//! with its preprocessing plan and policy, see [`super::model`]).
//!
//! - The thread that runs inference (the streaming thread, or the asynchronous worker) locks
//!   the current model for the whole run ([`Slot::lock_current`]) and, at each frame
//!   boundary, [`Slot::adopt`]s a pending model: swaps happen between frames only.
//! - Everything else only ever takes the short `control` lock: [`Slot::request`] (a property
//!   set while running) never waits for an inference.
//! - Requests are built on one background builder thread, after a short settling time, newest
//!   first: N requests in quick succession are one build; a build that a later request, a
//!   [`Slot::load`] or a [`Slot::clear`] made stale is thrown away.
//! - [`Slot::load`] (NULL to READY) and [`Slot::clear`] (READY to NULL) drop whatever was
//!   pending, so that a build still under way cannot replace a freshly loaded model.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// Locks a mutex; a panic elsewhere while it was held must not turn every later call into
/// another panic, so a poisoned lock is taken as it is.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the slot needs of a model: a summary that other threads may read at any time (the
/// model's identity, its policy) without waiting for the model itself.
pub trait SlotModel: Send + 'static {
    type Summary: Send + Sync + 'static;
    fn summary(&self) -> Arc<Self::Summary>;
}

/// Builds a model from a request; returns it with warnings to post, or the reason it cannot.
pub type BuildFn<M, R> = Arc<dyn Fn(&R) -> Result<(M, Vec<String>), String> + Send + Sync>;

/// What became of a background build.
#[derive(Debug)]
pub enum Outcome {
    /// Built and pending: it takes over at the next frame boundary.
    Ready {
        generation: u64,
        warnings: Vec<String>,
    },
    /// The request cannot be built: the current model stays.
    Failed { generation: u64, reason: String },
    /// A later request, load or clear made this build stale; it was dropped.
    Superseded { generation: u64 },
}

pub type ReportFn = Arc<dyn Fn(Outcome) + Send + Sync>;

/// How long requests must settle before the builder starts: requests closer together than
/// this are one build.
pub const SETTLE: Duration = Duration::from_millis(100);

/// The model in use and the generation it was built for.
pub struct Current<M> {
    pub generation: u64,
    pub model: M,
}

struct Control<M: SlotModel, R> {
    /// Bumped by every request, load and clear.
    generation: u64,
    /// Models of generations below this are stale (set by load and clear).
    floor: u64,
    /// Between load and clear: requests are built only then.
    active: bool,
    requested: Option<(u64, R)>,
    pending: Option<(u64, M)>,
    published: Option<Arc<M::Summary>>,
    builder_running: bool,
    /// Builds started, for the log.
    builds: u64,
}

struct Shared<M: SlotModel, R> {
    control: Mutex<Control<M, R>>,
    /// Wakes the builder when a request arrives.
    requested: Condvar,
    current: Mutex<Option<Current<M>>>,
}

pub struct Slot<M: SlotModel, R> {
    shared: Arc<Shared<M, R>>,
}

impl<M: SlotModel, R> Clone for Slot<M, R> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<M: SlotModel, R> Default for Slot<M, R> {
    fn default() -> Self {
        Self {
            shared: Arc::new(Shared {
                control: Mutex::new(Control {
                    generation: 0,
                    floor: 0,
                    active: false,
                    requested: None,
                    pending: None,
                    published: None,
                    builder_running: false,
                    builds: 0,
                }),
                requested: Condvar::new(),
                current: Mutex::new(None),
            }),
        }
    }
}

/// What [`Slot::adopt`] did.
pub struct Swap<M> {
    /// The generation now in use.
    pub generation: u64,
    /// The model replaced, dropped by the caller outside any lock.
    pub previous: Option<M>,
}

impl<M: SlotModel, R: Send + 'static> Slot<M, R> {
    /// NULL to READY: `model`, built synchronously, becomes the model to use; anything pending
    /// or being built is dropped.
    pub fn load(&self, model: M) {
        let mut control = lock(&self.shared.control);
        control.generation += 1;
        control.floor = control.generation;
        control.active = true;
        control.requested = None;
        control.published = Some(model.summary());
        control.pending = Some((control.generation, model));
    }

    /// READY to NULL: drops the pending model and any request; the current model goes too,
    /// unless an inference holds it (then it goes at that thread's next adoption). A build
    /// under way is thrown away when it ends.
    pub fn clear(&self) {
        let dropped = {
            let mut control = lock(&self.shared.control);
            control.generation += 1;
            control.floor = control.generation;
            control.active = false;
            control.requested = None;
            control.published = None;
            control.pending.take()
        };
        drop(dropped);
        // Never wait for an inference in progress (a detached worker may still hold it).
        let stale = match self.shared.current.try_lock() {
            Ok(mut current) => current.take(),
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner().take(),
            Err(std::sync::TryLockError::WouldBlock) => None,
        };
        drop(stale);
    }

    /// Whether the slot is between [`Slot::load`] and [`Slot::clear`].
    #[cfg(test)]
    pub fn is_active(&self) -> bool {
        lock(&self.shared.control).active
    }

    /// The summary of the model in use (or about to be, after a load).
    pub fn published(&self) -> Option<Arc<M::Summary>> {
        lock(&self.shared.control).published.clone()
    }

    /// Asks for a new model built from `request` in the background; returns false (and does
    /// nothing) when the slot is not active. Never waits for a build or an inference.
    pub fn request(&self, request: R, build: BuildFn<M, R>, report: ReportFn) -> bool {
        let mut control = lock(&self.shared.control);
        if !control.active {
            return false;
        }
        control.generation += 1;
        control.requested = Some((control.generation, request));
        self.shared.requested.notify_all();
        if !control.builder_running {
            let shared = self.shared.clone();
            let builder_report = report.clone();
            let spawned = std::thread::Builder::new()
                .name("defectdetect-build".into())
                .spawn(move || builder(shared, build, builder_report));
            match spawned {
                Ok(_) => control.builder_running = true,
                Err(e) => {
                    let generation = control.generation;
                    control.requested = None;
                    drop(control);
                    // Reported without the lock: the report may post messages.
                    report(Outcome::Failed {
                        generation,
                        reason: format!("cannot start the model builder thread: {e}"),
                    });
                    return false;
                }
            }
        }
        true
    }

    /// Locks the current model for an inference. Only inference threads take this lock.
    pub fn lock_current(&self) -> MutexGuard<'_, Option<Current<M>>> {
        lock(&self.shared.current)
    }

    /// At a frame boundary, with the current model locked: takes the pending model, if any,
    /// in place of the current one (and drops a current model made stale by a clear).
    pub fn adopt(&self, current: &mut Option<Current<M>>) -> Option<Swap<M>> {
        let mut control = lock(&self.shared.control);
        let stale = current
            .as_ref()
            .is_some_and(|c| c.generation < control.floor);
        let (generation, model) = match control.pending.take() {
            Some(pending) => pending,
            None if stale => {
                drop(control);
                return Some(Swap {
                    generation: 0,
                    previous: current.take().map(|c| c.model),
                });
            }
            None => return None,
        };
        control.published = Some(model.summary());
        drop(control);
        let previous = current
            .replace(Current { generation, model })
            .map(|c| c.model);
        Some(Swap {
            generation,
            previous,
        })
    }

    /// Builds started since the slot was made.
    #[cfg(test)]
    pub fn builds(&self) -> u64 {
        lock(&self.shared.control).builds
    }
}

/// The builder thread: waits for requests to settle, builds the newest, hands it over if it is
/// still wanted, and ends when no request is left.
fn builder<M: SlotModel, R: Send + 'static>(
    shared: Arc<Shared<M, R>>,
    build: BuildFn<M, R>,
    report: ReportFn,
) {
    loop {
        let (generation, request) = {
            let mut control = lock(&shared.control);
            loop {
                let Some(wanted) = control.requested.as_ref().map(|(g, _)| *g) else {
                    control.builder_running = false;
                    return;
                };
                // Wait until no newer request came for SETTLE.
                let (guard, timeout) = shared
                    .requested
                    .wait_timeout_while(control, SETTLE, |c| {
                        c.requested.as_ref().is_some_and(|(g, _)| *g == wanted)
                    })
                    .unwrap_or_else(|p| p.into_inner());
                control = guard;
                if timeout.timed_out() {
                    break;
                }
            }
            control.builds += 1;
            control.requested.take().expect("a settled request")
        };
        let result = build(&request);
        let outcome = {
            let mut control = lock(&shared.control);
            if generation != control.generation {
                Outcome::Superseded { generation }
            } else {
                match result {
                    Ok((model, warnings)) => {
                        control.pending = Some((generation, model));
                        Outcome::Ready {
                            generation,
                            warnings,
                        }
                    }
                    Err(reason) => Outcome::Failed { generation, reason },
                }
            }
        };
        report(outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Model(u32);

    impl SlotModel for Model {
        type Summary = u32;
        fn summary(&self) -> Arc<u32> {
            Arc::new(self.0)
        }
    }

    fn builder_counting(builds: Arc<AtomicUsize>, delay: Duration) -> BuildFn<Model, u32> {
        Arc::new(move |n: &u32| {
            builds.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(delay);
            if *n == 0 {
                Err("zero".into())
            } else {
                Ok((Model(*n), vec![]))
            }
        })
    }

    fn outcomes() -> (ReportFn, Arc<Mutex<Vec<String>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        (
            Arc::new(move |o: Outcome| lock(&s).push(format!("{o:?}"))),
            seen,
        )
    }

    fn wait_for(what: impl Fn() -> bool) {
        let started = std::time::Instant::now();
        while !what() {
            assert!(started.elapsed() < Duration::from_secs(20), "timed out");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Item 16 of issue 14: many requests in quick succession are one build, of the newest.
    #[test]
    fn quick_requests_are_one_build_of_the_newest() {
        let slot: Slot<Model, u32> = Slot::default();
        slot.load(Model(1));
        let mut current = None;
        slot.adopt(&mut current);
        let builds = Arc::new(AtomicUsize::new(0));
        let (report, seen) = outcomes();
        for n in 2..=11 {
            assert!(slot.request(
                n,
                builder_counting(builds.clone(), Duration::ZERO),
                report.clone()
            ));
        }
        wait_for(|| !lock(&seen).is_empty());
        assert_eq!(builds.load(Ordering::SeqCst), 1);
        assert_eq!(slot.builds(), 1);
        assert!(slot.adopt(&mut current).is_some());
        assert_eq!(current.as_ref().unwrap().model.0, 11);
        assert_eq!(*slot.published().unwrap(), 11);
    }

    /// Item 14 of issue 14: a build under way when the slot is cleared and loaded again does not
    /// replace the freshly loaded model.
    #[test]
    fn load_and_clear_drop_what_is_pending_or_being_built() {
        let slot: Slot<Model, u32> = Slot::default();
        slot.load(Model(1));
        let builds = Arc::new(AtomicUsize::new(0));
        let (report, seen) = outcomes();
        slot.request(
            7,
            builder_counting(builds.clone(), Duration::from_millis(300)),
            report,
        );
        wait_for(|| builds.load(Ordering::SeqCst) == 1);
        slot.clear();
        assert!(!slot.is_active() && slot.published().is_none());
        slot.load(Model(2));
        wait_for(|| !lock(&seen).is_empty());
        assert!(
            lock(&seen)[0].starts_with("Superseded"),
            "{:?}",
            lock(&seen)
        );
        let mut current = None;
        slot.adopt(&mut current);
        assert_eq!(current.as_ref().unwrap().model.0, 2);
        assert!(slot.adopt(&mut current).is_none(), "nothing else pending");
    }

    #[test]
    fn a_failed_build_keeps_the_current_model_and_inactive_slots_refuse() {
        let slot: Slot<Model, u32> = Slot::default();
        let builds = Arc::new(AtomicUsize::new(0));
        let (report, seen) = outcomes();
        assert!(!slot.request(
            3,
            builder_counting(builds.clone(), Duration::ZERO),
            report.clone()
        ));
        slot.load(Model(1));
        let mut current = None;
        slot.adopt(&mut current);
        slot.request(0, builder_counting(builds, Duration::ZERO), report);
        wait_for(|| !lock(&seen).is_empty());
        assert!(lock(&seen)[0].starts_with("Failed"));
        assert!(slot.adopt(&mut current).is_none());
        assert_eq!(current.unwrap().model.0, 1);
    }

    /// A request never waits for an inference holding the current model.
    #[test]
    fn requests_do_not_wait_for_inference() {
        let slot: Slot<Model, u32> = Slot::default();
        slot.load(Model(1));
        let held = slot.clone();
        let (locked_tx, locked_rx) = std::sync::mpsc::channel();
        let inference = std::thread::spawn(move || {
            let mut current = held.lock_current();
            held.adopt(&mut current);
            locked_tx.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(500));
        });
        locked_rx.recv().unwrap();
        let started = std::time::Instant::now();
        let (report, _) = outcomes();
        slot.request(5, builder_counting(Arc::default(), Duration::ZERO), report);
        slot.clear();
        assert!(started.elapsed() < Duration::from_millis(250));
        inference.join().unwrap();
    }
}
