// SPDX-License-Identifier: MIT OR Apache-2.0
//! The publisher worker: a task on the plugin's shared network runtime
//! ([`crate::net::RUNTIME`]) that owns the broker connection and publishes records handed to
//! it through a bounded queue, so that callers never block on the network.
//!
//! * **Queue.** [`Publisher::publish`] appends to a queue of at most `max_queue` records and
//!   `max_queue_bytes` bytes (topic and payload) and returns at once. When either bound is
//!   reached the oldest record *not yet sent* is dropped and counted; a record already
//!   written to the broker is never dropped for room (it may well be delivered), so when
//!   every queued record is in flight the new record is the one dropped. `dropped` thus
//!   counts only records no broker ever received.
//! * **QoS 1.** A record leaves the queue only when its PUBACK arrives. At most
//!   `max_in_flight` records are unacknowledged at a time; they are always the oldest ones,
//!   sent in queue order. After a reconnection every unacknowledged record is sent again,
//!   in order, with the DUP flag and its original packet id, before any newer record; so a
//!   subscriber sees every record in order, a record appearing twice only when its PUBACK was
//!   lost with the connection. QoS 0 records leave the queue once written to the socket.
//! * **Records a broker refuses.** A broker closes the connection of a client that sends it
//!   something it will not take (mosquitto: a packet over its `max_packet_size`), and the
//!   PUBACKs of the records before it may be lost with the connection. So when the broker
//!   closes the connection with QoS 1 records unacknowledged, those records become suspects
//!   and are sent again one at a time, each waiting for its PUBACK; a suspect sent alone on
//!   a connection the broker closes takes a strike, and after `max_rejections` strikes it
//!   is dropped, counted in `dropped` and `rejected`, and reported ([`Event::Rejected`]), so
//!   the records behind it go through. Once the suspects are acknowledged (or dropped) the
//!   full window is used again.
//! * **Reconnection.** The policy of [`crate::net::reconnect`]: attempts are spaced by an
//!   exponential backoff: `initial_backoff` (100 ms) after the first failure, doubling up to
//!   `max_backoff`. A connection that was up for a while ([`crate::net::STABLE_CONNECTION`])
//!   and is lost is retried at once, with the backoff reset; one that drops right after being
//!   set up waits the backoff, so a broker that keeps closing the connection (say another
//!   client with the same id) is not hammered.
//! * **Keep-alive.** A PINGREQ goes out after `keepalive` seconds without sending, and when
//!   records (QoS 0: nothing answers them) have gone out since the broker last said
//!   anything: at once, then at most every `keepalive / 2` seconds. When a PUBACK or
//!   PINGRESP is awaited and nothing at all comes from the broker for `keepalive` seconds,
//!   the connection is given up as dead (a broker that accepts connections and then stops
//!   reading): [`Event::ConnectionLost`] within `keepalive` of the first unanswered packet.
//!   Writes time out after `keepalive` too (at most [`WRITE_TIMEOUT`]).
//! * **Stop.** [`Publisher::stop`] lets the worker flush the queue for at most a given time,
//!   then sends DISCONNECT and closes; records never sent are counted as dropped, records
//!   sent and not acknowledged as `unconfirmed`. A worker still busy [`STOP_GRACE`] after
//!   the flush time (a write the broker does not take) is cut short there. When `stop`
//!   returns, the worker and its reader have ended.
//!
//! No thread of its own: two tasks of the shared runtime work for a connection, the worker
//! writes and a reader task reads PUBACKs and PINGRESPs. The worker waits on a
//! [`tokio::sync::Notify`], callers of [`Publisher::wait_idle`] and [`Publisher::stop`] on a
//! condition variable; nothing polls.

use std::collections::VecDeque;
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};

use super::client::{self, ConnectOptions, MqttError, PacketReader, PacketWriter};
use super::codec::{self, Connect, Incoming, PublishHeader, QoS};
use crate::net::{Guarded, RUNTIME, Reconnect};

/// At most this many bytes of PUBLISH packets are written in one go.
const MAX_BATCH_BYTES: usize = 256 * 1024;

/// Once connected, a write blocked this long fails (less when `keepalive` is shorter).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long past the flush deadline of [`Publisher::stop`] a worker still busy (blocked in a
/// write) is cut short.
const STOP_GRACE: Duration = Duration::from_millis(250);

/// The default bound of the queue in bytes: 64 MiB.
pub const DEFAULT_MAX_QUEUE_BYTES: usize = 64 << 20;

#[derive(Clone)]
pub struct PublisherConfig {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    /// Seconds; 0 turns keep-alive off.
    pub keepalive: u16,
    /// [`QoS::AtMostOnce`] or [`QoS::AtLeastOnce`]; [`QoS::ExactlyOnce`] is sent as QoS 1.
    pub qos: QoS,
    /// Records queued at most (at least 1).
    pub max_queue: usize,
    /// Bytes (topics and payloads) queued at most.
    pub max_queue_bytes: usize,
    /// Strikes after which a record the broker keeps closing the connection on is dropped.
    pub max_rejections: u32,
    /// QoS 1 records sent and not acknowledged at most (at least 1).
    pub max_in_flight: usize,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// For the TCP connection, the TLS handshake and the CONNACK.
    pub connect_timeout: Duration,
    pub username: Option<String>,
    pub password: Option<Vec<u8>>,
    /// TLS when set.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for PublisherConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublisherConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("client_id", &self.client_id)
            .field("keepalive", &self.keepalive)
            .field("qos", &self.qos)
            .field("max_queue", &self.max_queue)
            .field("max_queue_bytes", &self.max_queue_bytes)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "(set)"))
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl PublisherConfig {
    pub fn new(host: impl Into<String>, port: u16, client_id: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            port,
            client_id: client_id.into(),
            keepalive: 30,
            qos: QoS::AtLeastOnce,
            max_queue: 1000,
            max_queue_bytes: DEFAULT_MAX_QUEUE_BYTES,
            max_rejections: 3,
            max_in_flight: 32,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(5000),
            connect_timeout: Duration::from_secs(3),
            username: None,
            password: None,
            tls: None,
        }
    }
}

/// Counters since the publisher started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Records now in the queue (unacknowledged ones included).
    pub queued: usize,
    /// Bytes (topics and payloads) now in the queue.
    pub queued_bytes: usize,
    /// QoS 1 records sent on the current connection and not acknowledged yet.
    pub in_flight: usize,
    /// Records written to a broker at least once.
    pub published: u64,
    /// QoS 1 records the broker acknowledged.
    pub acknowledged: u64,
    /// Records sent again (DUP) after a reconnection.
    pub resent: u64,
    /// Records no broker received: the oldest unsent when the queue was full (or the new
    /// one, when every queued record was in flight), those never sent when the flush time
    /// ran out at stop, those that cannot be sent (invalid topic, too large) and those the
    /// broker refused ([`Stats::rejected`]).
    pub dropped: u64,
    /// Records dropped because the broker closed the connection on them `max_rejections`
    /// times in a row (counted in `dropped` too).
    pub rejected: u64,
    /// QoS 1 records written but not acknowledged when the publisher stopped: the broker
    /// may or may not have them (not counted in `dropped`).
    pub unconfirmed: u64,
    /// Connections established after the first one.
    pub reconnects: u64,
    pub connected: bool,
}

/// What the worker reports, from a thread of the shared runtime, through the callback given
/// to [`Publisher::start`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Connected (`reconnect`: not for the first time).
    Connected { reconnect: bool },
    /// The first failed attempt of an outage (later ones of the same outage are quiet).
    ConnectFailed(String),
    /// An established connection was lost.
    ConnectionLost(String),
    /// A record dropped because the broker closed the connection each time it got it.
    Rejected { topic: String, bytes: usize },
    /// A record that cannot be sent (invalid topic, larger than a packet can be): dropped.
    Invalid { topic: String, reason: String },
}

type EventCallback = Box<dyn Fn(Event) + Send + Sync + 'static>;

struct Entry {
    topic: String,
    payload: Vec<u8>,
    /// 0 until first sent with QoS 1.
    packet_id: u16,
    /// Sent before, on this connection or an earlier one.
    sent: bool,
    /// Connections the broker closed while this record was the oldest unacknowledged one.
    strikes: u32,
}

impl Entry {
    fn bytes(&self) -> usize {
        self.topic.len() + self.payload.len()
    }
}

struct State {
    /// Every record not yet done with; the first `in_flight` are sent and unacknowledged.
    queue: VecDeque<Entry>,
    in_flight: usize,
    next_packet_id: u16,
    /// Number of the current connection, so that a late reader cannot touch a newer one.
    connection: u64,
    /// Set by the reader thread when the connection broke: the reason, and whether the
    /// broker closed it (rather than a timeout or a protocol error).
    lost: Option<(String, bool)>,
    last_received: Instant,
    /// A PINGREQ not answered yet: when it went out.
    ping_sent: Option<Instant>,
    /// Since when a PUBACK or PINGRESP has been awaited with nothing received.
    awaiting: Option<Instant>,
    /// Bytes of topics and payloads in `queue`.
    queued_bytes: usize,
    /// Records at the head of the queue that were unacknowledged when the broker closed the
    /// connection: sent one at a time until acknowledged.
    suspects: usize,
    /// Flush deadline, once a stop was asked for.
    stop: Option<Instant>,
    finished: bool,
    stats: Stats,
}

impl State {
    fn should_exit(&self) -> bool {
        self.stop
            .is_some_and(|deadline| self.queue.is_empty() || Instant::now() >= deadline)
    }

    fn snapshot(&self) -> Stats {
        Stats {
            queued: self.queue.len(),
            queued_bytes: self.queued_bytes,
            in_flight: self.in_flight,
            ..self.stats
        }
    }

    fn remove(&mut self, index: usize) -> Option<Entry> {
        let entry = self.queue.remove(index)?;
        self.queued_bytes -= entry.bytes();
        Some(entry)
    }

    fn take_packet_id(&mut self) -> u16 {
        let id = self.next_packet_id;
        self.next_packet_id = self.next_packet_id.checked_add(1).unwrap_or(1);
        id
    }
}

/// What the worker, its reader and the handle share.
struct Shared {
    /// The state; callers (never the tasks) wait on its condition variable.
    state: Guarded<State>,
    /// Wakes the worker task.
    wake: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// The state changed: wakes the worker and the callers waiting.
    fn notify(&self) {
        self.state.notify_all();
        self.wake.notify_one();
    }

    /// The worker waits for a change, `timeout` at most.
    async fn changed(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.wake.notified()).await;
    }
}

/// Held by the worker task to its end, however it ends (done, cut short at stop, panicking):
/// accounts for the records left and wakes the callers waiting for the end.
struct Finish(Arc<Shared>);

impl Drop for Finish {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        let unsent = st.queue.iter().filter(|e| !e.sent).count() as u64;
        st.stats.dropped += unsent;
        st.stats.unconfirmed += st.queue.len() as u64 - unsent;
        st.queue.clear();
        st.queued_bytes = 0;
        st.in_flight = 0;
        st.finished = true;
        st.stats.connected = false;
        drop(st);
        self.0.notify();
    }
}

/// The handle on the worker. Dropping it stops the worker without flushing.
pub struct Publisher {
    shared: Arc<Shared>,
    max_queue: usize,
    max_queue_bytes: usize,
    /// Tells the worker when the flush time of a stop ends (`None` until stopped).
    stop: watch::Sender<Option<Instant>>,
    worker: tokio::task::Id,
}

impl Publisher {
    /// Starts the worker task on the shared runtime; it connects at once. `on_event` runs on
    /// a thread of that runtime and must not block for long.
    pub fn start(
        mut config: PublisherConfig,
        on_event: impl Fn(Event) + Send + Sync + 'static,
    ) -> std::io::Result<Publisher> {
        config.max_queue = config.max_queue.max(1);
        config.max_rejections = config.max_rejections.max(1);
        config.max_in_flight = config.max_in_flight.max(1);
        config.initial_backoff = config.initial_backoff.max(Duration::from_millis(1));
        config.max_backoff = config.max_backoff.max(config.initial_backoff);
        if config.qos == QoS::ExactlyOnce {
            config.qos = QoS::AtLeastOnce;
        }
        let state = Guarded::new(State {
            queue: VecDeque::new(),
            in_flight: 0,
            next_packet_id: 1,
            connection: 0,
            lost: None,
            last_received: Instant::now(),
            ping_sent: None,
            awaiting: None,
            queued_bytes: 0,
            suspects: 0,
            stop: None,
            finished: false,
            stats: Stats::default(),
        });
        let shared = Arc::new(Shared {
            state,
            wake: Notify::new(),
        });
        let (max_queue, max_queue_bytes) = (config.max_queue, config.max_queue_bytes);
        let worker = Worker {
            shared: shared.clone(),
            config,
            on_event: Box::new(on_event),
        };
        let (stop, stop_rx) = watch::channel(None);
        let finish = Finish(shared.clone());
        let task = RUNTIME.spawn(async move {
            let _finish = finish;
            worker.run(stop_rx).await;
        });
        Ok(Publisher {
            shared,
            max_queue,
            max_queue_bytes,
            stop,
            worker: task.id(),
        })
    }

    /// Queues a record for `topic`; never blocks on the network. Returns `false` when a
    /// record had to be dropped for room (the oldest unsent one, or this one when every
    /// queued record is in flight or it alone exceeds `max_queue_bytes`), or when the
    /// publisher is stopping and this record was dropped.
    pub fn publish(&self, topic: impl Into<String>, payload: impl Into<Vec<u8>>) -> bool {
        let entry = Entry {
            topic: topic.into(),
            payload: payload.into(),
            packet_id: 0,
            sent: false,
            strikes: 0,
        };
        let size = entry.bytes();
        let mut st = self.shared.lock();
        if st.stop.is_some() || st.finished || size > self.max_queue_bytes {
            st.stats.dropped += 1;
            return false;
        }
        let mut kept_all = true;
        while st.queue.len() >= self.max_queue || st.queued_bytes + size > self.max_queue_bytes {
            kept_all = false;
            st.stats.dropped += 1;
            if st.in_flight < st.queue.len() {
                // The oldest record not sent yet.
                let index = st.in_flight;
                st.remove(index);
            } else {
                // Every queued record is with the broker: this one is dropped.
                return false;
            }
        }
        st.queued_bytes += size;
        st.queue.push_back(entry);
        drop(st);
        self.shared.notify();
        kept_all
    }

    pub fn stats(&self) -> Stats {
        self.shared.lock().snapshot()
    }

    /// Waits at most `timeout` for the queue to empty (every record written, and for QoS 1
    /// acknowledged); returns whether it did.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.lock();
        loop {
            if st.queue.is_empty() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline || st.finished {
                return false;
            }
            st = self.shared.state.wait_timeout(st, deadline - now);
        }
    }

    /// Flushes for at most `flush_timeout` (and [`STOP_GRACE`] more for a worker blocked in
    /// a write), disconnects and stops the worker; returns once it has ended.
    pub fn stop(mut self, flush_timeout: Duration) -> Stats {
        self.shutdown(flush_timeout)
    }

    fn shutdown(&mut self, flush_timeout: Duration) -> Stats {
        if self.stop.borrow().is_some() {
            return self.stats();
        }
        let deadline = Instant::now() + flush_timeout;
        self.shared.lock().stop = Some(deadline);
        self.stop.send_replace(Some(deadline));
        self.shared.notify();
        // Never wait from the worker itself (the last reference dropped in a callback); it
        // ends all the same, by `deadline + STOP_GRACE`.
        if tokio::task::try_id() != Some(self.worker) {
            let mut st = self.shared.lock();
            while !st.finished {
                st = self.shared.state.wait(st);
            }
        }
        self.stats()
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.shutdown(Duration::ZERO);
    }
}

enum SessionEnd {
    /// Stopped: queue flushed or flush time over.
    Finished,
    /// The connection broke: the reason, and whether the broker closed it.
    Lost(String, bool),
}

/// Whether an error means the peer closed or reset the connection.
fn closed_by_peer(error: &MqttError) -> bool {
    match error {
        MqttError::Closed => true,
        MqttError::Io(e) => matches!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::UnexpectedEof
        ),
        _ => false,
    }
}

struct Worker {
    shared: Arc<Shared>,
    config: PublisherConfig,
    on_event: EventCallback,
}

impl Worker {
    fn options(&self, timeout: Duration) -> ConnectOptions {
        let keepalive = Duration::from_secs(self.config.keepalive.into());
        ConnectOptions {
            host: self.config.host.clone(),
            port: self.config.port,
            connect: Connect {
                username: self.config.username.clone(),
                password: self.config.password.clone(),
                ..Connect::new(self.config.client_id.clone(), true, self.config.keepalive)
            },
            timeout,
            write_timeout: if keepalive.is_zero() {
                WRITE_TIMEOUT
            } else {
                keepalive.min(WRITE_TIMEOUT)
            },
            tls: self.config.tls.clone(),
        }
    }

    /// Connects, publishes and reconnects until stopped; cut short at `STOP_GRACE` past the
    /// flush deadline that `stop` receives.
    async fn run(&self, mut stop: watch::Receiver<Option<Instant>>) {
        let cut = async {
            // An error: the handle is gone (it sends a deadline before).
            let deadline = stop.wait_for(Option::is_some).await.ok().and_then(|d| *d);
            let deadline = deadline.unwrap_or_else(Instant::now) + STOP_GRACE;
            tokio::time::sleep_until(deadline.into()).await;
        };
        tokio::select! {
            () = self.work() => {}
            () = cut => {}
        }
    }

    async fn work(&self) {
        let mut reconnect = Reconnect::new(self.config.initial_backoff, self.config.max_backoff);
        loop {
            let timeout = {
                let st = self.shared.lock();
                if st.should_exit() {
                    break;
                }
                let left = st.stop.map_or(Duration::MAX, |d| {
                    d.saturating_duration_since(Instant::now())
                });
                self.config.connect_timeout.min(left)
            };
            match client::connect(&self.options(timeout)).await {
                Ok((reader, writer, _)) => {
                    let again = reconnect.connected(Instant::now());
                    if again {
                        self.shared.lock().stats.reconnects += 1;
                    }
                    (self.on_event)(Event::Connected { reconnect: again });
                    let (end, heard, in_flight) = self.session(reader, writer).await;
                    match end {
                        SessionEnd::Finished => break,
                        SessionEnd::Lost(reason, by_broker) => {
                            if by_broker {
                                self.suspect(in_flight);
                            }
                            // One warning an outage: a short connection that never heard from
                            // the broker past its CONNACK does not end the outage.
                            let retry = reconnect.lost(Instant::now(), heard);
                            if retry.report {
                                (self.on_event)(Event::ConnectionLost(reason));
                            }
                            self.wait_backoff(retry.delay).await;
                        }
                    }
                }
                Err(e) => {
                    let retry = reconnect.attempt_failed();
                    if retry.report {
                        (self.on_event)(Event::ConnectFailed(e.to_string()));
                    }
                    self.wait_backoff(retry.delay).await;
                }
            }
        }
    }

    /// The broker closed the connection with `in_flight` records unacknowledged: they become
    /// suspects; when a suspect was sent alone, it takes a strike, and is dropped at
    /// `max_rejections`.
    fn suspect(&self, in_flight: usize) {
        if in_flight == 0 || self.config.qos == QoS::AtMostOnce {
            return;
        }
        let mut st = self.shared.lock();
        if st.suspects == 0 {
            st.suspects = in_flight;
            return;
        }
        let Some(head) = st.queue.front_mut() else {
            return;
        };
        head.strikes += 1;
        if head.strikes < self.config.max_rejections {
            return;
        }
        let Some(entry) = st.remove(0) else { return };
        st.suspects -= 1;
        st.stats.dropped += 1;
        st.stats.rejected += 1;
        drop(st);
        self.shared.notify();
        (self.on_event)(Event::Rejected {
            bytes: entry.payload.len(),
            topic: entry.topic,
        });
    }

    /// Waits `delay`, or less when a stop makes waiting pointless.
    async fn wait_backoff(&self, delay: Duration) {
        let until = Instant::now() + delay;
        loop {
            let limit = {
                let st = self.shared.lock();
                if st.should_exit() {
                    return;
                }
                st.stop.map_or(until, |d| d.min(until))
            };
            let now = Instant::now();
            if now >= limit {
                return;
            }
            self.shared.changed(limit - now).await;
        }
    }

    /// One connection, until it ends; also says whether anything came from the broker after
    /// its CONNACK, and how many records were in flight at the end.
    async fn session(
        &self,
        reader: PacketReader,
        mut writer: PacketWriter,
    ) -> (SessionEnd, bool, usize) {
        let (connection, connected_at) = {
            let mut st = self.shared.lock();
            st.connection += 1;
            st.in_flight = 0;
            st.lost = None;
            st.ping_sent = None;
            st.awaiting = None;
            st.last_received = Instant::now();
            st.stats.connected = true;
            (st.connection, st.last_received)
        };
        let reading = Reading(RUNTIME.spawn(read_loop(self.shared.clone(), connection, reader)));
        let end = self.serve(&mut writer).await;
        writer.shutdown().await;
        reading.end().await;
        let mut st = self.shared.lock();
        let in_flight = st.in_flight;
        st.in_flight = 0;
        st.ping_sent = None;
        st.awaiting = None;
        st.stats.connected = false;
        let heard = st.last_received > connected_at;
        (end, heard, in_flight)
    }

    /// Sends queued records, pings, and waits, until the connection breaks or a stop ends it.
    async fn serve(&self, writer: &mut PacketWriter) -> SessionEnd {
        let qos1 = self.config.qos != QoS::AtMostOnce;
        let mut serving = Serving {
            qos1,
            keepalive: Duration::from_secs(self.config.keepalive.into()),
            window: if qos1 {
                self.config.max_in_flight
            } else {
                usize::MAX
            },
            last_write: Instant::now(),
            last_record_write: None,
            last_ping: None,
            bytes: Vec::new(),
        };
        loop {
            match self.step(&mut serving) {
                Step::End(end) => return end,
                Step::Disconnect => {
                    let _ = writer.write_bytes(&codec::DISCONNECT).await;
                    return SessionEnd::Finished;
                }
                Step::Write => {
                    if let Err(e) = writer.write_bytes(&serving.bytes).await {
                        let by_broker = closed_by_peer(&e);
                        return SessionEnd::Lost(e.to_string(), by_broker);
                    }
                }
                Step::Wait(timeout) => self.shared.changed(timeout).await,
            }
        }
    }

    /// What to do next on the connection: decided under the lock, done without it.
    fn step(&self, s: &mut Serving) -> Step {
        let (qos1, keepalive) = (s.qos1, s.keepalive);
        let mut st = self.shared.lock();
        if let Some((reason, by_broker)) = st.lost.take() {
            return Step::End(SessionEnd::Lost(reason, by_broker));
        }
        let now = Instant::now();
        if st.should_exit() {
            return Step::Disconnect;
        }
        if !keepalive.is_zero()
            && let Some(since) = st.awaiting
            && now >= since + keepalive
        {
            return Step::End(SessionEnd::Lost(
                format!(
                    "the broker has not answered for {} s (no PUBACK or PINGRESP): it \
                     accepts the connection but does not read",
                    keepalive.as_secs()
                ),
                false,
            ));
        }
        s.bytes.clear();
        // Suspects of a refused record go one at a time.
        let window = if st.suspects > 0 { 1 } else { s.window };
        while st.in_flight < st.queue.len()
            && st.in_flight < window
            && s.bytes.len() < MAX_BATCH_BYTES
        {
            let index = st.in_flight;
            let packet_id = if qos1 && st.queue[index].packet_id == 0 {
                st.take_packet_id()
            } else {
                st.queue[index].packet_id
            };
            let entry = &mut st.queue[index];
            entry.packet_id = packet_id;
            let header = PublishHeader {
                dup: qos1 && entry.sent,
                qos: if qos1 {
                    QoS::AtLeastOnce
                } else {
                    QoS::AtMostOnce
                },
                retain: false,
                packet_id: qos1.then_some(packet_id),
            };
            let first_time = !entry.sent;
            if let Err(e) =
                codec::encode_publish(header, &entry.topic, &entry.payload, &mut s.bytes)
            {
                let entry = st.remove(index).expect("index within the queue");
                st.stats.dropped += 1;
                drop(st);
                (self.on_event)(Event::Invalid {
                    topic: entry.topic,
                    reason: e.to_string(),
                });
                st = self.shared.lock();
                continue;
            }
            entry.sent = true;
            if first_time {
                st.stats.published += 1;
            } else {
                st.stats.resent += 1;
            }
            if qos1 {
                st.in_flight += 1;
                st.awaiting.get_or_insert(now);
            } else {
                st.remove(0);
            }
        }
        if !s.bytes.is_empty() {
            drop(st);
            if !qos1 {
                // QoS 0 records are done now: wake `wait_idle`.
                self.shared.state.notify_all();
            }
            // Taken before writing: an answer may be read before the write returns.
            s.last_write = Instant::now();
            s.last_record_write = Some(s.last_write);
            return Step::Write;
        }
        // A PINGREQ: after `keepalive` without sending (the protocol's rule), and while
        // records go out with nothing coming back (QoS 0): at once, then at most every
        // `keepalive / 2`.
        let idle_ping = s.last_write + keepalive;
        let silent_ping = (st.awaiting.is_none()
            && s.last_record_write.is_some_and(|t| t > st.last_received))
        .then(|| s.last_ping.map_or(now, |t| t + keepalive / 2));
        let ping_at = silent_ping.map_or(idle_ping, |t| t.min(idle_ping));
        if !keepalive.is_zero() && st.ping_sent.is_none() && now >= ping_at {
            st.ping_sent = Some(now);
            st.awaiting.get_or_insert(now);
            s.last_write = now;
            s.last_ping = Some(now);
            s.bytes.extend_from_slice(&codec::PINGREQ);
            return Step::Write;
        }
        let mut wake = now + Duration::from_secs(3600);
        if !keepalive.is_zero() {
            if st.ping_sent.is_none() {
                wake = wake.min(ping_at);
            }
            if let Some(since) = st.awaiting {
                wake = wake.min(since + keepalive);
            }
        }
        if let Some(deadline) = st.stop {
            wake = wake.min(deadline);
        }
        Step::Wait(wake.saturating_duration_since(now))
    }
}

/// The state of [`Worker::serve`] between its steps.
struct Serving {
    qos1: bool,
    keepalive: Duration,
    /// QoS 1 records in flight at most.
    window: usize,
    last_write: Instant,
    /// When records were last written: a PINGREQ's own answer must not look overdue.
    last_record_write: Option<Instant>,
    last_ping: Option<Instant>,
    /// What [`Step::Write`] writes.
    bytes: Vec<u8>,
}

/// What [`Worker::serve`] does next.
enum Step {
    End(SessionEnd),
    /// Stopping: DISCONNECT, then the end.
    Disconnect,
    /// Write [`Serving::bytes`] (records or a PINGREQ).
    Write,
    /// Wait for a change, this long at most.
    Wait(Duration),
}

/// The reader task of a connection, aborted when dropped.
struct Reading(tokio::task::JoinHandle<()>);

impl Reading {
    /// Ends the task and waits until it has.
    async fn end(mut self) {
        self.0.abort();
        let _ = (&mut self.0).await;
    }
}

impl Drop for Reading {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The reader task of one connection: PUBACKs take records off the queue.
async fn read_loop(shared: Arc<Shared>, connection: u64, mut reader: PacketReader) {
    loop {
        let result = reader.read_packet().await;
        let mut st = shared.lock();
        if st.connection != connection {
            return;
        }
        match result {
            Ok(packet) => {
                let now = Instant::now();
                st.last_received = now;
                match packet {
                    Incoming::PubAck { packet_id } => {
                        let in_flight = st.in_flight;
                        if let Some(index) = st
                            .queue
                            .iter()
                            .take(in_flight)
                            .position(|e| e.packet_id == packet_id)
                        {
                            st.remove(index);
                            st.in_flight -= 1;
                            st.suspects = st.suspects.saturating_sub(1);
                            st.stats.acknowledged += 1;
                        }
                    }
                    Incoming::PingResp => st.ping_sent = None,
                    Incoming::ConnAck { .. } => {
                        st.lost = Some(("a second CONNACK".into(), false));
                    }
                }
                st.awaiting = (st.in_flight > 0 || st.ping_sent.is_some()).then_some(now);
            }
            Err(e) => {
                if st.lost.is_none() {
                    let by_broker = closed_by_peer(&e);
                    st.lost = Some((e.to_string(), by_broker));
                }
                drop(st);
                shared.notify();
                return;
            }
        }
        drop(st);
        shared.notify();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// Waits at most 5 s for `done`.
    fn wait_for(what: &str, done: impl Fn() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(start.elapsed() < Duration::from_secs(5), "{what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// No task outlives its publisher: connected, it has two tasks on the shared runtime (the
    /// worker and the reader), none once stopped. The only unit test of the library that
    /// spawns on the runtime, so that the count is this publisher's.
    #[test]
    fn a_stopped_publisher_leaves_no_task() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let broker = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buf = [0u8; 256];
            let _connect = stream.read(&mut buf).unwrap();
            stream.write_all(&[0x20, 2, 0, 0]).unwrap();
            while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
        });
        let tasks = || RUNTIME.metrics().num_alive_tasks();
        let before = tasks();
        let publisher =
            Publisher::start(PublisherConfig::new("127.0.0.1", port, "unit"), |_| {}).unwrap();
        wait_for("no connection", || publisher.stats().connected);
        assert_eq!(tasks(), before + 2);
        let stats = publisher.stop(Duration::from_secs(1));
        assert!(!stats.connected);
        wait_for("a task outlived the publisher", || tasks() == before);
        broker.join().unwrap();
    }
}
