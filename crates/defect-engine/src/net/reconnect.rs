// SPDX-License-Identifier: MIT OR Apache-2.0
//! The one reconnection policy of the network sinks (Modbus, MQTT): how long to wait before
//! the next connection attempt, when a connection counts as stable, and when an outage is
//! reported. No GStreamer, no I/O: the workers tell it what happened and it says what to do.
//!
//! * **Backoff.** Attempts are spaced by an exponential backoff: `initial` after the first
//!   failure, doubling up to `max`.
//! * **Stable connection.** A connection that was up for [`STABLE_CONNECTION`] is stable:
//!   losing it resets the backoff and the next attempt is made at once. One that broke
//!   sooner waits the backoff, so a peer that accepts and drops connections (a PLC
//!   restarting, a broker closing a duplicate client id) is not hammered.
//! * **One report an outage.** The first failed attempt of an outage, or the loss of a
//!   connection that had ended the previous outage, is reported; later failures of the same
//!   outage are quiet. A connection ends an outage when it was stable or when the peer
//!   answered over it (`heard`).

use std::time::{Duration, Instant};

/// A connection that lasted this long is stable: losing it resets the backoff.
pub const STABLE_CONNECTION: Duration = Duration::from_secs(1);

/// What a worker does after a failed attempt or a lost connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Wait before the next attempt (zero: at once).
    pub delay: Duration,
    /// Report the outage (a warning): false while the outage was already reported.
    pub report: bool,
}

/// The reconnection state of one worker.
#[derive(Debug, Clone)]
pub struct Reconnect {
    initial: Duration,
    max: Duration,
    next: Duration,
    /// When the current connection was made, while connected.
    since: Option<Instant>,
    connected_before: bool,
    outage_reported: bool,
}

impl Reconnect {
    /// `initial` is at least 1 ms, `max` at least `initial`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.max(Duration::from_millis(1));
        Self {
            initial,
            max: max.max(initial),
            next: initial,
            since: None,
            connected_before: false,
            outage_reported: false,
        }
    }

    /// A connection is up; returns whether it is a reconnection (not the first one).
    pub fn connected(&mut self, now: Instant) -> bool {
        self.next = self.initial;
        self.since = Some(now);
        std::mem::replace(&mut self.connected_before, true)
    }

    /// A connection attempt failed.
    pub fn attempt_failed(&mut self) -> Retry {
        self.since = None;
        Retry {
            delay: self.next_delay(),
            report: !std::mem::replace(&mut self.outage_reported, true),
        }
    }

    /// The connection made at [`Reconnect::connected`] was lost at `now`; `heard`: the peer
    /// answered over it (beyond the handshake).
    pub fn lost(&mut self, now: Instant, heard: bool) -> Retry {
        let stable = self
            .since
            .take()
            .is_some_and(|since| now.saturating_duration_since(since) >= STABLE_CONNECTION);
        let delay = if stable {
            self.next = self.initial;
            Duration::ZERO
        } else {
            self.next_delay()
        };
        let report = stable || heard || !self.outage_reported;
        self.outage_reported = true;
        Retry { delay, report }
    }

    fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn backoff_doubles_up_to_the_maximum_and_a_connection_resets_it() {
        let mut r = Reconnect::new(100 * MS, 350 * MS);
        let delays: Vec<_> = (0..4)
            .map(|_| r.attempt_failed().delay.as_millis())
            .collect();
        assert_eq!(delays, [100, 200, 350, 350]);
        r.connected(Instant::now());
        assert_eq!(r.attempt_failed().delay, 100 * MS);
    }

    #[test]
    fn bounds_are_sane() {
        let mut r = Reconnect::new(Duration::ZERO, Duration::ZERO);
        assert_eq!(r.attempt_failed().delay, MS);
        assert_eq!(r.attempt_failed().delay, MS);
    }

    #[test]
    fn a_stable_connection_lost_is_retried_at_once_an_unstable_one_waits() {
        let t0 = Instant::now();
        let mut r = Reconnect::new(100 * MS, 1000 * MS);
        assert!(!r.connected(t0));
        let retry = r.lost(t0 + STABLE_CONNECTION, false);
        assert_eq!(retry.delay, Duration::ZERO);
        assert!(retry.report);
        assert!(r.connected(t0 + 2 * STABLE_CONNECTION));
        let retry = r.lost(t0 + 2 * STABLE_CONNECTION + 10 * MS, false);
        assert_eq!(retry.delay, 100 * MS);
        // The drop right after connecting continues the outage already reported.
        assert!(!retry.report);
        r.connected(t0 + 3 * STABLE_CONNECTION);
        assert_eq!(r.lost(t0 + 3 * STABLE_CONNECTION, false).delay, 100 * MS);
    }

    #[test]
    fn one_report_an_outage() {
        let t0 = Instant::now();
        let mut r = Reconnect::new(10 * MS, 100 * MS);
        assert!(r.attempt_failed().report);
        assert!(!r.attempt_failed().report);
        // A connection that drops at once without a word from the peer: same outage.
        r.connected(t0);
        assert!(!r.lost(t0, false).report);
        // One over which the peer answered ended the outage: its loss is a new one.
        r.connected(t0);
        assert!(r.lost(t0 + MS, true).report);
        assert!(!r.attempt_failed().report);
    }

    #[test]
    fn the_first_connection_lost_at_once_is_reported() {
        let t0 = Instant::now();
        let mut r = Reconnect::new(10 * MS, 100 * MS);
        r.connected(t0);
        assert!(r.lost(t0, false).report);
    }
}
