// SPDX-License-Identifier: MIT OR Apache-2.0
//! The Modbus worker: one thread that owns the Modbus TCP connection (the blocking client of
//! [`super::modbus_tcp`]: no runtime, each request made on this thread) and fires reject
//! pulses when they fall due, so that
//! callers never wait on the PLC.
//!
//! * **Rejects.** [`Modbus::schedule`] queues a reject and returns at once. A reject due at a
//!   time ([`Due::At`]) is fired by the worker's own timer (a condition variable wait with a
//!   deadline, not a polling loop): the coil goes on at the due time and off `pulse` later.
//!   A reject due after encoder counts ([`Due::Counts`]) is fired at the first poll of the
//!   encoder register that shows the belt has moved that far since the frame was seen.
//!   Rejects closer together than the pulse length merge into one longer pulse.
//! * **Never late, never lost silently.** A reject that cannot leave within `max_lateness`
//!   of its due time (not connected, the connection broke, the verdict came after its due
//!   time, the PLC refused the write) is not fired at all: it is counted as missed and
//!   reported with its reason through [`Event::Missed`].
//! * **Status.** The status block ([`super::map`]) is written when it changed and the
//!   heartbeat register every second; neither is started when a pulse edge is due within a
//!   guard time (2 ms plus twice the last round trip), so that they never delay a pulse.
//! * **Connection.** Reconnection follows the policy of [`crate::net::reconnect`]: a backoff
//!   from `initial_backoff` doubling up to `max_backoff`, a stable connection that breaks
//!   retried at once, [`Event::ConnectFailed`] or [`Event::ConnectionLost`] once per outage.
//!   After every (re)connection the coil is written off first.

use std::collections::{HashSet, VecDeque};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::map::{HEARTBEAT, Status};
use super::modbus_tcp::{self, Client};
use crate::net::{Guarded, Reconnect};

/// Encoder samples kept, to find the count at the moment a frame was seen.
const ENCODER_HISTORY: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderConfig {
    /// Holding register with the belt encoder's count (16 bits, wrapping).
    pub register: u16,
    /// How often it is read.
    pub poll: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModbusConfig {
    pub host: String,
    pub port: u16,
    pub unit_id: u8,
    pub reject_coil: u16,
    pub pulse: Duration,
    pub max_lateness: Duration,
    /// First register of the status block; `None`: no status block and no heartbeat.
    pub status_register: Option<u16>,
    pub encoder: Option<EncoderConfig>,
    /// For the connection and for each request.
    pub timeout: Duration,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub heartbeat_period: Duration,
    /// `SCHED_FIFO` priority (1-99) of the worker thread, for pulses on time on a busy
    /// machine; `None`: normal scheduling.
    pub realtime_priority: Option<i32>,
}

impl ModbusConfig {
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
            unit_id: 1,
            reject_coil: 0,
            pulse: Duration::from_millis(100),
            max_lateness: Duration::from_millis(20),
            status_register: Some(0),
            encoder: None,
            timeout: Duration::from_millis(500),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(5000),
            heartbeat_period: Duration::from_secs(1),
            realtime_priority: None,
        }
    }
}

/// When a reject falls due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    At(Instant),
    /// When the encoder has counted `counts` (at most 32767) past its reading at `seen`.
    Counts {
        seen: Instant,
        counts: u16,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub due: Due,
    /// Names the reject in events: e.g. `part 3` or `frame 120`.
    pub label: String,
}

/// What the worker reports, from its thread, through the callback given to
/// [`Modbus::start`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Connected (`reconnect`: not for the first time).
    Connected { reconnect: bool },
    /// The first failed attempt of an outage (later ones of the same outage are quiet).
    ConnectFailed(String),
    /// An established connection was lost (the outage's one report).
    ConnectionLost(String),
    /// The PLC answered a request with a Modbus exception (once per distinct message).
    Refused(String),
    /// A pulse went out: `written` is when its request started, `due` when it fell due.
    Fired {
        label: String,
        due: Instant,
        written: Instant,
    },
    /// A reject that was not fired, and why.
    Missed { label: String, reason: String },
    /// The reject coil may be left on: the PLC refused to switch it off (`reason`), or the
    /// connection was lost after it went on and the worker stopped before it could write it
    /// off. Sent once until the coil is confirmed off.
    CoilStuck { coil: u16, reason: String },
    /// The worker stopped on an internal error: no reject is fired any more.
    Failed(String),
    /// The real-time priority asked for was refused (the worker runs at normal priority).
    PriorityRefused { priority: i32, reason: String },
}

/// Counters since the worker started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub fired: u64,
    pub missed: u64,
    /// Rejects waiting to fall due.
    pub pending: usize,
    pub connected: bool,
    /// Connections established after the first one.
    pub reconnects: u64,
    pub status_writes: u64,
    /// The coil was written on and the PLC has not yet acknowledged it off.
    pub coil_on: bool,
}

struct Timed {
    due: Instant,
    label: String,
}

struct Counted {
    seen: Instant,
    counts: u16,
    label: String,
    /// The encoder's count when the frame was seen, once known.
    start: Option<u16>,
}

struct State {
    /// Time-based rejects, earliest first.
    timed: VecDeque<Timed>,
    counted: Vec<Counted>,
    /// When the coil must go off, while a pulse is on.
    coil_off_at: Option<Instant>,
    status: Status,
    status_dirty: bool,
    stop: bool,
    finished: bool,
    /// The worker is acting on rejects it took out of the queues.
    busy: bool,
    /// The PLC refuses to switch the coil off (reported as [`Event::CoilStuck`]).
    coil_stuck: bool,
    stats: Stats,
}

impl State {
    fn idle(&self) -> bool {
        self.timed.is_empty()
            && self.counted.is_empty()
            && self.coil_off_at.is_none()
            && !self.stats.coil_on
            && !self.busy
    }
}

type Shared = Guarded<State>;

type EventCallback = Arc<dyn Fn(Event) + Send + Sync + 'static>;

/// The handle on the worker. Dropping it stops the worker.
pub struct Modbus {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Modbus {
    /// Starts the worker thread, which connects at once. `on_event` runs on the worker
    /// thread and must not block for long.
    pub fn start(
        mut config: ModbusConfig,
        on_event: impl Fn(Event) + Send + Sync + 'static,
    ) -> std::io::Result<Modbus> {
        config.initial_backoff = config.initial_backoff.max(Duration::from_millis(1));
        config.max_backoff = config.max_backoff.max(config.initial_backoff);
        config.timeout = config.timeout.max(Duration::from_millis(1));
        config.heartbeat_period = config.heartbeat_period.max(Duration::from_millis(10));
        if let Some(encoder) = &mut config.encoder {
            encoder.poll = encoder.poll.max(Duration::from_micros(100));
        }
        let shared = Arc::new(Guarded::new(State {
            timed: VecDeque::new(),
            counted: Vec::new(),
            coil_off_at: None,
            status: Status::default(),
            status_dirty: false,
            stop: false,
            finished: false,
            busy: false,
            coil_stuck: false,
            stats: Stats::default(),
        }));
        let on_event: EventCallback = Arc::new(on_event);
        let worker = Worker {
            shared: shared.clone(),
            config,
            on_event: on_event.clone(),
        };
        let thread_shared = shared.clone();
        let priority = worker.config.realtime_priority;
        let thread = std::thread::Builder::new()
            .name("modbus-reject".into())
            .spawn(move || {
                if let Some(priority) = priority
                    && let Err(reason) = set_realtime_priority(priority)
                {
                    (worker.on_event)(Event::PriorityRefused { priority, reason });
                }
                let run = std::panic::AssertUnwindSafe(move || worker.run());
                if let Err(panic) = std::panic::catch_unwind(run) {
                    let message = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "panic".into());
                    {
                        let mut st = thread_shared.lock();
                        st.finished = true;
                        st.stats.connected = false;
                    }
                    thread_shared.notify_all();
                    on_event(Event::Failed(message));
                }
            })?;
        Ok(Modbus {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queues a reject; never blocks on the network.
    pub fn schedule(&self, reject: Reject) {
        let mut st = self.shared.lock();
        match reject.due {
            Due::At(due) => {
                let at = st.timed.partition_point(|t| t.due <= due);
                st.timed.insert(
                    at,
                    Timed {
                        due,
                        label: reject.label,
                    },
                );
            }
            Due::Counts { seen, counts } => st.counted.push(Counted {
                seen,
                counts: counts.min(i16::MAX as u16),
                label: reject.label,
                start: None,
            }),
        }
        st.stats.pending = st.timed.len() + st.counted.len();
        drop(st);
        self.shared.notify_all();
    }

    /// Changes what the status block shows (heartbeat and reject counters are the worker's).
    pub fn update_status(&self, update: impl FnOnce(&mut Status)) {
        let mut st = self.shared.lock();
        update(&mut st.status);
        st.status_dirty = true;
        drop(st);
        self.shared.notify_all();
    }

    pub fn stats(&self) -> Stats {
        self.shared.lock().stats
    }

    /// Waits until every queued reject was fired or missed and the coil is off, for at
    /// most `timeout`, while `go_on()` says so (checked every 20 ms); returns whether it
    /// got there.
    pub fn wait_idle(&self, timeout: Duration, go_on: impl Fn() -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.lock();
        loop {
            if st.idle() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline || st.finished || !go_on() {
                return false;
            }
            st = self
                .shared
                .wait_timeout(st, (deadline - now).min(Duration::from_millis(20)));
        }
    }

    /// Stops the worker: the coil is written off, rejects still queued are missed.
    pub fn stop(&self) -> Stats {
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(thread) = thread {
            self.shared.lock().stop = true;
            self.shared.notify_all();
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
        self.stats()
    }
}

impl Drop for Modbus {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Puts the calling thread under `SCHED_FIFO` at `priority` (1-99).
fn set_realtime_priority(priority: i32) -> Result<(), String> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: `param` is a valid sched_param for the duration of the call, and
    // pthread_self() names the calling thread.
    let rc = unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::from_raw_os_error(rc).to_string())
    }
}

/// Why a request failed.
enum Failure {
    /// The PLC answered with a Modbus exception: the connection is fine.
    Refused(String),
    /// No answer, or the connection broke.
    Transport(String),
}

struct Link {
    client: Client,
}

/// What the worker does next.
enum Action {
    Fire(Timed),
    CoilOff,
    Poll,
    Connect,
    Heartbeat(u16),
    Status(Vec<u16>),
    Exit,
}

struct Worker {
    shared: Arc<Shared>,
    config: ModbusConfig,
    on_event: EventCallback,
}

/// The worker's own state, outside the lock.
struct Local {
    link: Option<Link>,
    next_attempt: Instant,
    reconnect: Reconnect,
    next_heartbeat: Instant,
    heartbeat: u16,
    /// The heartbeat changed and is to be written.
    heartbeat_pending: bool,
    next_poll: Instant,
    samples: VecDeque<(Instant, u16)>,
    /// Smoothed round trip of a request.
    rtt: Duration,
    refused: HashSet<String>,
}

impl Worker {
    fn run(self) {
        let now = Instant::now();
        let mut local = Local {
            link: None,
            next_attempt: now,
            reconnect: Reconnect::new(self.config.initial_backoff, self.config.max_backoff),
            next_heartbeat: now + self.config.heartbeat_period,
            heartbeat: 0,
            heartbeat_pending: false,
            next_poll: now,
            samples: VecDeque::new(),
            rtt: Duration::from_micros(500),
            refused: HashSet::new(),
        };
        loop {
            match self.next_action(&mut local) {
                Action::Exit => break,
                Action::Fire(timed) => {
                    self.fire(&mut local, timed);
                    self.done();
                }
                Action::CoilOff => self.coil_off(&mut local),
                Action::Poll => {
                    self.poll(&mut local);
                    self.done();
                }
                Action::Connect => self.connect(&mut local),
                Action::Heartbeat(value) => {
                    let register = self.status_register() + HEARTBEAT;
                    self.request(&mut local, |client, timeout| {
                        client.write_single_register(register, value, timeout)
                    });
                }
                Action::Status(registers) => {
                    let first = self.status_register();
                    let written = self.request(&mut local, |client, timeout| {
                        client.write_multiple_registers(first, &registers, timeout)
                    });
                    if matches!(written, Some(Ok(()))) {
                        self.shared.lock().stats.status_writes += 1;
                    }
                }
            }
        }
        self.finish(&mut local);
    }

    /// The rejects taken out of the queues were acted on.
    fn done(&self) {
        self.shared.lock().busy = false;
        self.shared.notify_all();
    }

    fn status_register(&self) -> u16 {
        self.config.status_register.unwrap_or(0)
    }

    /// Waits for the next thing to do, under the lock.
    fn next_action(&self, local: &mut Local) -> Action {
        let mut st = self.shared.lock();
        loop {
            let now = Instant::now();
            if st.stop {
                return Action::Exit;
            }
            if st.timed.front().is_some_and(|t| t.due <= now) {
                let timed = st.timed.pop_front().expect("a front");
                st.stats.pending = st.timed.len() + st.counted.len();
                st.busy = true;
                return Action::Fire(timed);
            }
            if st.coil_off_at.is_some_and(|at| at <= now) {
                if local.link.is_some() {
                    return Action::CoilOff;
                }
                // Written off at the next connection.
                st.coil_off_at = None;
                self.shared.notify_all();
            }
            let connected = local.link.is_some();
            if connected && self.config.encoder.is_some() && local.next_poll <= now {
                st.busy = true;
                return Action::Poll;
            }
            if !connected && local.next_attempt <= now {
                return Action::Connect;
            }
            let status = self.config.status_register.is_some();
            if status && local.next_heartbeat <= now {
                local.heartbeat = local.heartbeat.wrapping_add(1);
                local.next_heartbeat += self.config.heartbeat_period;
                if local.next_heartbeat <= now {
                    local.next_heartbeat = now + self.config.heartbeat_period;
                }
                st.status.heartbeat = local.heartbeat;
                if connected {
                    local.heartbeat_pending = true;
                }
            }
            // The next pulse edge: nothing else starts within the guard time before it.
            let edge = [st.timed.front().map(|t| t.due), st.coil_off_at]
                .into_iter()
                .flatten()
                .min();
            let guard = Duration::from_millis(2) + local.rtt * 2;
            let quiet = edge.is_none_or(|edge| edge > now + guard);
            if connected && status && quiet {
                if std::mem::take(&mut local.heartbeat_pending) {
                    return Action::Heartbeat(local.heartbeat);
                }
                if st.status_dirty {
                    st.status_dirty = false;
                    let mut status = st.status.clone();
                    status.fired = st.stats.fired;
                    status.missed = st.stats.missed;
                    return Action::Status(status.registers());
                }
            }
            let mut wake = edge;
            let mut consider = |at: Instant| {
                if at > now {
                    wake = Some(wake.map_or(at, |w: Instant| w.min(at)));
                }
            };
            if status {
                consider(local.next_heartbeat);
            }
            if connected {
                if self.config.encoder.is_some() {
                    consider(local.next_poll);
                }
            } else {
                consider(local.next_attempt);
            }
            st = match wake {
                Some(at) => self
                    .shared
                    .wait_timeout(st, at.saturating_duration_since(now)),
                None => self.shared.wait(st),
            };
        }
    }

    fn emit(&self, event: Event) {
        (self.on_event)(event);
    }

    fn missed(&self, label: String, reason: String) {
        {
            let mut st = self.shared.lock();
            st.stats.missed += 1;
            st.status_dirty = true;
        }
        self.shared.notify_all();
        self.emit(Event::Missed { label, reason });
    }

    /// Runs one request with the timeout; a transport failure drops the connection.
    fn request<T>(
        &self,
        local: &mut Local,
        make: impl FnOnce(&mut Client, Duration) -> Result<T, modbus_tcp::Error>,
    ) -> Option<Result<T, Failure>> {
        let link = local.link.as_mut()?;
        let started = Instant::now();
        let result = match make(&mut link.client, self.config.timeout) {
            Ok(value) => Ok(value),
            Err(e @ modbus_tcp::Error::Exception(_)) => Err(Failure::Refused(e.to_string())),
            Err(modbus_tcp::Error::Transport(reason)) => Err(Failure::Transport(reason)),
        };
        match &result {
            Ok(_) => {
                local.rtt = (local.rtt * 7 + started.elapsed()) / 8;
            }
            Err(Failure::Refused(message)) => {
                if local.refused.insert(message.clone()) {
                    self.emit(Event::Refused(message.clone()));
                }
            }
            Err(Failure::Transport(reason)) => self.lose(local, reason.clone()),
        }
        Some(result)
    }

    fn lose(&self, local: &mut Local, reason: String) {
        if local.link.take().is_none() {
            return;
        }
        let now = Instant::now();
        // A PLC restarting accepts and drops connections: one warning per outage.
        let retry = local.reconnect.lost(now, false);
        local.next_attempt = now + retry.delay;
        self.shared.lock().stats.connected = false;
        if retry.report {
            self.emit(Event::ConnectionLost(reason));
        }
    }

    fn fire(&self, local: &mut Local, timed: Timed) {
        let late = Instant::now().saturating_duration_since(timed.due);
        if local.link.is_none() {
            return self.missed(timed.label, "not connected to the PLC".into());
        }
        if late > self.config.max_lateness {
            return self.missed(
                timed.label,
                format!(
                    "{:.1} ms past its due time (more than max-pulse-lateness-ms)",
                    late.as_secs_f64() * 1e3
                ),
            );
        }
        self.pulse_on(local, vec![timed.label], timed.due);
    }

    /// Writes the coil on for the rejects `labels`, due at `due`.
    fn pulse_on(&self, local: &mut Local, labels: Vec<String>, due: Instant) {
        let coil = self.config.reject_coil;
        if self.shared.lock().coil_stuck {
            // The coil is on and will not go off: no pulse can be told from the last one.
            for label in labels {
                self.missed(
                    label,
                    format!(
                        "the reject coil {coil} is stuck on (the PLC refuses to switch it off)"
                    ),
                );
            }
            return;
        }
        let written = Instant::now();
        match self.request(local, |client, timeout| {
            client.write_single_coil(coil, true, timeout)
        }) {
            Some(Ok(())) => {
                {
                    let mut st = self.shared.lock();
                    let off = due.max(written) + self.config.pulse;
                    st.coil_off_at = Some(st.coil_off_at.map_or(off, |at| at.max(off)));
                    st.stats.coil_on = true;
                    st.stats.fired += labels.len() as u64;
                    st.status_dirty = true;
                }
                for label in labels {
                    self.emit(Event::Fired {
                        label,
                        due,
                        written,
                    });
                }
            }
            Some(Err(Failure::Refused(message))) => {
                for label in labels {
                    self.missed(label, format!("the PLC refused the write: {message}"));
                }
            }
            Some(Err(Failure::Transport(reason))) => {
                for label in labels {
                    self.missed(label, format!("the write failed: {reason}"));
                }
            }
            None => {
                for label in labels {
                    self.missed(label, "not connected to the PLC".into());
                }
            }
        }
    }

    fn coil_off(&self, local: &mut Local) {
        let coil = self.config.reject_coil;
        let result = self.request(local, |client, timeout| {
            client.write_single_coil(coil, false, timeout)
        });
        self.written_off(result);
    }

    /// What a write of the coil off came to.
    fn written_off(&self, result: Option<Result<(), Failure>>) {
        let coil = self.config.reject_coil;
        let mut st = self.shared.lock();
        let stuck = match result {
            Some(Ok(())) => {
                st.coil_off_at = None;
                st.stats.coil_on = false;
                st.coil_stuck = false;
                None
            }
            // Refused while it may be on: stuck. Try again a pulse later rather than spinning.
            Some(Err(Failure::Refused(message))) if st.stats.coil_on => {
                st.coil_off_at = Some(Instant::now() + self.config.pulse);
                (!std::mem::replace(&mut st.coil_stuck, true))
                    .then(|| format!("the PLC refused to switch it off: {message}"))
            }
            Some(Err(Failure::Refused(_))) => {
                st.coil_off_at = None;
                None
            }
            // The connection broke: the coil is written off first at the next one.
            _ => {
                st.coil_off_at = None;
                None
            }
        };
        drop(st);
        self.shared.notify_all();
        if let Some(reason) = stuck {
            self.emit(Event::CoilStuck { coil, reason });
        }
    }

    fn connect(&self, local: &mut Local) {
        let target = format!("{}:{}", self.config.host, self.config.port);
        let result = (|| -> Result<Link, String> {
            let addr: SocketAddr = target
                .to_socket_addrs()
                .map_err(|e| e.to_string())?
                .next()
                .ok_or_else(|| "no address".to_string())?;
            let client = Client::connect(addr, self.config.unit_id, self.config.timeout)
                .map_err(|e| e.to_string())?;
            Ok(Link { client })
        })();
        let failure = match result {
            Ok(link) => {
                local.link = Some(link);
                // A pulse cut by the outage must not stay on.
                let coil = self.config.reject_coil;
                match self.request(local, |client, timeout| {
                    client.write_single_coil(coil, false, timeout)
                }) {
                    Some(Ok(())) => {
                        self.written_off(Some(Ok(())));
                        None
                    }
                    Some(Err(Failure::Refused(message))) => {
                        self.written_off(Some(Err(Failure::Refused(message))));
                        None
                    }
                    Some(Err(Failure::Transport(reason))) => Some(reason),
                    None => Some("connection closed".into()),
                }
            }
            Err(reason) => Some(reason),
        };
        match failure {
            None => {
                local.samples.clear();
                let reconnect = local.reconnect.connected(Instant::now());
                local.next_poll = Instant::now();
                {
                    let mut st = self.shared.lock();
                    st.stats.connected = true;
                    if reconnect {
                        st.stats.reconnects += 1;
                    }
                    st.status_dirty = true;
                }
                self.emit(Event::Connected { reconnect });
            }
            Some(reason) => {
                local.link = None;
                let retry = local.reconnect.attempt_failed();
                local.next_attempt = Instant::now() + retry.delay;
                if retry.report {
                    self.emit(Event::ConnectFailed(reason));
                }
            }
        }
    }

    /// Reads the encoder and fires the counted rejects it shows due.
    fn poll(&self, local: &mut Local) {
        let Some(encoder) = self.config.encoder else {
            return;
        };
        let started = Instant::now();
        local.next_poll = started + encoder.poll;
        let count = match self.request(local, |client, timeout| {
            client.read_holding_registers(encoder.register, 1, timeout)
        }) {
            Some(Ok(words)) if !words.is_empty() => words[0],
            _ => return,
        };
        // The reading is of the moment the PLC answered: about halfway through.
        let at = started + started.elapsed() / 2;
        let previous = local.samples.back().copied();
        local.samples.push_back((at, count));
        while local
            .samples
            .front()
            .is_some_and(|(t, _)| at.duration_since(*t) > ENCODER_HISTORY)
        {
            local.samples.pop_front();
        }
        // A gap in the readings (an outage) longer than this: a reject that fell due in it
        // is missed.
        let max_gap = encoder.poll * 3 + self.config.max_lateness;
        let gap = previous.is_none_or(|(t, _)| at.duration_since(t) > max_gap);
        let mut due = Vec::new();
        let mut missed = Vec::new();
        {
            let mut st = self.shared.lock();
            let mut keep = Vec::with_capacity(st.counted.len());
            for mut c in std::mem::take(&mut st.counted) {
                if c.start.is_none() {
                    c.start = start_count(&local.samples, c.seen, encoder.poll);
                    if c.start.is_none() {
                        missed.push((c.label, "no encoder reading from when it was seen".into()));
                        continue;
                    }
                }
                let moved = count.wrapping_sub(c.start.unwrap_or(count)) as i16;
                if moved >= c.counts as i16 {
                    if gap {
                        missed.push((
                            c.label,
                            "fell due while the encoder could not be read".to_string(),
                        ));
                    } else {
                        due.push(c);
                    }
                } else if moved < 0 && gap {
                    // The belt moved past the 16-bit range while unread: position unknown.
                    missed.push((c.label, "encoder position lost during an outage".into()));
                } else {
                    keep.push(c);
                }
            }
            st.counted = keep;
            st.stats.pending = st.timed.len() + st.counted.len();
        }
        for (label, reason) in missed {
            self.missed(label, reason);
        }
        if !due.is_empty() {
            // When the count was reached, interpolated between the two readings.
            let estimate = match previous {
                Some((t0, c0)) => {
                    let c = &due[0];
                    let target = c.start.unwrap_or(c0).wrapping_add(c.counts);
                    let span = count.wrapping_sub(c0).max(1) as f64;
                    let part = (target.wrapping_sub(c0) as f64 / span).clamp(0.0, 1.0);
                    t0 + at.duration_since(t0).mul_f64(part)
                }
                None => at,
            };
            self.pulse_on(local, due.into_iter().map(|c| c.label).collect(), estimate);
        }
    }

    fn finish(&self, local: &mut Local) {
        let (coil_on, left) = {
            let mut st = self.shared.lock();
            st.coil_off_at = None;
            let mut left: Vec<String> = st.timed.drain(..).map(|t| t.label).collect();
            left.extend(st.counted.drain(..).map(|c| c.label));
            (st.stats.coil_on, left)
        };
        // On every way out, the coil is left off: over the connection, or over a new one
        // when the connection was lost while it was on.
        if coil_on {
            let coil = self.config.reject_coil;
            if local.link.is_some() {
                let result = self.request(local, |client, timeout| {
                    client.write_single_coil(coil, false, timeout)
                });
                self.written_off(result);
            }
            if local.link.is_none() {
                self.connect(local);
            }
            let (still_on, reported) = {
                let st = self.shared.lock();
                (st.stats.coil_on, st.coil_stuck)
            };
            if still_on && !reported {
                self.emit(Event::CoilStuck {
                    coil,
                    reason: "the connection to the PLC was lost while it was on, and it could \
                             not be written off before the element stopped"
                        .into(),
                });
            }
        }
        for label in left {
            self.missed(label, "the element stopped before it fell due".into());
        }
        // The last counts (and the rejects just missed) reach the PLC before the connection
        // closes.
        let status = {
            let mut st = self.shared.lock();
            (self.config.status_register.is_some() && std::mem::take(&mut st.status_dirty)).then(
                || {
                    let mut status = st.status.clone();
                    status.fired = st.stats.fired;
                    status.missed = st.stats.missed;
                    status.registers()
                },
            )
        };
        if let Some(registers) = status {
            let first = self.status_register();
            self.request(local, |client, timeout| {
                client.write_multiple_registers(first, &registers, timeout)
            });
        }
        // Closing the socket ends the connection.
        local.link = None;
        let mut st = self.shared.lock();
        st.stats.connected = false;
        st.stats.pending = 0;
        st.finished = true;
        drop(st);
        self.shared.notify_all();
    }
}

/// The encoder's count when a frame was seen: the last reading before it (or the first
/// after it, when that came within two polls).
fn start_count(samples: &VecDeque<(Instant, u16)>, seen: Instant, poll: Duration) -> Option<u16> {
    let after = samples.partition_point(|(t, _)| *t <= seen);
    if after > 0 {
        return Some(samples[after - 1].1);
    }
    samples
        .front()
        .filter(|(t, _)| t.duration_since(seen) <= poll * 2)
        .map(|(_, c)| *c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_count_is_the_reading_before_the_frame() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let samples: VecDeque<_> = [(t0, 10), (t0 + ms(2), 12), (t0 + ms(4), 14)].into();
        assert_eq!(start_count(&samples, t0 + ms(3), ms(2)), Some(12));
        assert_eq!(start_count(&samples, t0 + ms(9), ms(2)), Some(14));
        assert_eq!(start_count(&samples, t0, ms(2)), Some(10));
        let later: VecDeque<_> = [(t0 + ms(3), 5)].into();
        assert_eq!(start_count(&later, t0, ms(2)), Some(5));
        let much_later: VecDeque<_> = [(t0 + ms(30), 5)].into();
        assert_eq!(start_count(&much_later, t0, ms(2)), None);
    }
}
