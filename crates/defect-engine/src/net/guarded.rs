// SPDX-License-Identifier: MIT OR Apache-2.0
//! A worker's state shared with its handle: one mutex and the condition variable the worker
//! and its callers wait on. A panic elsewhere never poisons it for good: the state is taken
//! as it is (each worker keeps it consistent between statements).

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

pub struct Guarded<T> {
    state: Mutex<T>,
    cond: Condvar,
}

impl<T> Guarded<T> {
    pub fn new(state: T) -> Self {
        Self {
            state: Mutex::new(state),
            cond: Condvar::new(),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits for a notification, or `timeout` at most.
    pub fn wait_timeout<'a>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> MutexGuard<'a, T> {
        match self.cond.wait_timeout(guard, timeout) {
            Ok((guard, _)) => guard,
            Err(poisoned) => poisoned.into_inner().0,
        }
    }

    pub fn wait<'a>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        match self.cond.wait(guard) {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub fn notify_all(&self) {
        self.cond.notify_all();
    }
}
