// SPDX-License-Identifier: MIT OR Apache-2.0
//! The publisher worker: a background thread that owns the broker connection and publishes
//! records handed to it through a bounded queue, so that callers never block on the network.
//!
//! * **Queue.** [`Publisher::publish`] appends to a queue of at most `max_queue` records and
//!   returns at once. When the queue is full the oldest record is dropped and counted.
//! * **QoS 1.** A record leaves the queue only when its PUBACK arrives. At most
//!   `max_in_flight` records are unacknowledged at a time; they are always the oldest ones,
//!   sent in queue order. After a reconnection every unacknowledged record is sent again,
//!   in order, with the DUP flag and its original packet id, before any newer record; so a
//!   subscriber sees every record in order, a record appearing twice only when its PUBACK was
//!   lost with the connection. QoS 0 records leave the queue once written to the socket.
//! * **Reconnection.** Attempts are spaced by an exponential backoff: `initial_backoff`
//!   (100 ms) after the first failure, doubling up to `max_backoff`. A connection that was
//!   up for a while ([`STABLE_CONNECTION`]) and is lost is retried at once, with the backoff
//!   reset; one that drops right after being set up waits the backoff, so a broker that keeps
//!   closing the connection (say another client with the same id) is not hammered.
//! * **Keep-alive.** A PINGREQ goes out after `keepalive` seconds without sending; no packet
//!   from the broker within another `keepalive` means the connection is dead.
//! * **Stop.** [`Publisher::stop`] lets the worker flush the queue for at most a given time,
//!   then sends DISCONNECT and closes; records still queued are counted as dropped.
//!
//! Two threads work for a connection: the worker writes, a reader thread reads PUBACKs and
//! PINGRESPs. Both wait on one condition variable; nothing polls.

use std::collections::VecDeque;
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::client::{Client, PacketReader, PacketWriter};
use super::codec::{self, Connect, Packet, PublishHeader, QoS};

/// A connection that lasted this long is "stable": losing it resets the backoff.
pub const STABLE_CONNECTION: Duration = Duration::from_secs(1);

/// At most this many bytes of PUBLISH packets are written in one go.
const MAX_BATCH_BYTES: usize = 256 * 1024;

/// How long [`Publisher::stop`] waits past the flush deadline before it shuts the socket to
/// wake a worker blocked in a write.
const STOP_GRACE: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// QoS 1 records sent and not acknowledged at most (at least 1).
    pub max_in_flight: usize,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// For the TCP connection and the CONNACK, and for writes.
    pub connect_timeout: Duration,
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
            max_in_flight: 32,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(5000),
            connect_timeout: Duration::from_secs(3),
        }
    }
}

/// Counters since the publisher started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Records now in the queue (unacknowledged ones included).
    pub queued: usize,
    /// QoS 1 records sent on the current connection and not acknowledged yet.
    pub in_flight: usize,
    /// Records written to a broker at least once.
    pub published: u64,
    /// QoS 1 records the broker acknowledged.
    pub acknowledged: u64,
    /// Records sent again (DUP) after a reconnection.
    pub resent: u64,
    /// Records dropped: the oldest when the queue was full, those still queued when the
    /// flush time ran out at stop, any whose topic is not a valid topic name.
    pub dropped: u64,
    /// Connections established after the first one.
    pub reconnects: u64,
    pub connected: bool,
}

/// What the worker reports, from its own thread, through the callback given to
/// [`Publisher::start`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Connected (`reconnect`: not for the first time).
    Connected { reconnect: bool },
    /// The first failed attempt of an outage (later ones of the same outage are quiet).
    ConnectFailed(String),
    /// An established connection was lost.
    ConnectionLost(String),
}

type EventCallback = Box<dyn Fn(Event) + Send + Sync + 'static>;

struct Entry {
    topic: String,
    payload: Vec<u8>,
    /// 0 until first sent with QoS 1.
    packet_id: u16,
    /// Sent before, on this connection or an earlier one.
    sent: bool,
}

struct State {
    /// Every record not yet done with; the first `in_flight` are sent and unacknowledged.
    queue: VecDeque<Entry>,
    in_flight: usize,
    next_packet_id: u16,
    /// Number of the current connection, so that a late reader cannot touch a newer one.
    connection: u64,
    /// Set by the reader thread when the connection broke.
    lost: Option<String>,
    last_received: Instant,
    /// Flush deadline, once a stop was asked for.
    stop: Option<Instant>,
    finished: bool,
    /// A handle on the connected socket, for [`Publisher::stop`] to shut it.
    socket: Option<TcpStream>,
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
            in_flight: self.in_flight,
            ..self.stats
        }
    }

    fn take_packet_id(&mut self) -> u16 {
        let id = self.next_packet_id;
        self.next_packet_id = self.next_packet_id.checked_add(1).unwrap_or(1);
        id
    }
}

struct Shared {
    state: Mutex<State>,
    cond: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn wait_timeout<'a>(
        &self,
        guard: MutexGuard<'a, State>,
        timeout: Duration,
    ) -> MutexGuard<'a, State> {
        match self.cond.wait_timeout(guard, timeout) {
            Ok((guard, _)) => guard,
            Err(poisoned) => poisoned.into_inner().0,
        }
    }
}

/// The handle on the worker. Dropping it stops the worker without flushing.
pub struct Publisher {
    shared: Arc<Shared>,
    max_queue: usize,
    thread: Option<JoinHandle<()>>,
}

impl Publisher {
    /// Starts the worker thread, which connects at once. `on_event` runs on the worker
    /// thread and must not block for long.
    pub fn start(
        mut config: PublisherConfig,
        on_event: impl Fn(Event) + Send + Sync + 'static,
    ) -> std::io::Result<Publisher> {
        config.max_queue = config.max_queue.max(1);
        config.max_in_flight = config.max_in_flight.max(1);
        config.initial_backoff = config.initial_backoff.max(Duration::from_millis(1));
        config.max_backoff = config.max_backoff.max(config.initial_backoff);
        if config.qos == QoS::ExactlyOnce {
            config.qos = QoS::AtLeastOnce;
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                in_flight: 0,
                next_packet_id: 1,
                connection: 0,
                lost: None,
                last_received: Instant::now(),
                stop: None,
                finished: false,
                socket: None,
                stats: Stats::default(),
            }),
            cond: Condvar::new(),
        });
        let max_queue = config.max_queue;
        let worker = Worker {
            shared: shared.clone(),
            config,
            on_event: Box::new(on_event),
        };
        let thread = std::thread::Builder::new()
            .name("mqtt-publisher".into())
            .spawn(move || worker.run())?;
        Ok(Publisher {
            shared,
            max_queue,
            thread: Some(thread),
        })
    }

    /// Queues a record for `topic`; never blocks on the network. Returns `false` when the
    /// queue was full and the oldest record had to be dropped (or the publisher is
    /// stopping, and this record was dropped).
    pub fn publish(&self, topic: impl Into<String>, payload: impl Into<Vec<u8>>) -> bool {
        let mut st = self.shared.lock();
        if st.stop.is_some() || st.finished {
            st.stats.dropped += 1;
            return false;
        }
        let mut kept_all = true;
        while st.queue.len() >= self.max_queue {
            st.queue.pop_front();
            st.in_flight = st.in_flight.saturating_sub(1);
            st.stats.dropped += 1;
            kept_all = false;
        }
        st.queue.push_back(Entry {
            topic: topic.into(),
            payload: payload.into(),
            packet_id: 0,
            sent: false,
        });
        drop(st);
        self.shared.cond.notify_all();
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
            st = self.shared.wait_timeout(st, deadline - now);
        }
    }

    /// Flushes for at most `flush_timeout` (plus, when the worker is in the middle of a
    /// connection attempt, that attempt's timeout), disconnects and stops the worker.
    pub fn stop(mut self, flush_timeout: Duration) -> Stats {
        self.shutdown(flush_timeout)
    }

    fn shutdown(&mut self, flush_timeout: Duration) -> Stats {
        let Some(thread) = self.thread.take() else {
            return self.stats();
        };
        let deadline = Instant::now() + flush_timeout;
        {
            let mut st = self.shared.lock();
            st.stop = Some(st.stop.map_or(deadline, |d| d.min(deadline)));
            self.shared.cond.notify_all();
            let hard = deadline + STOP_GRACE;
            while !st.finished {
                let now = Instant::now();
                if now >= hard {
                    // The worker is stuck in a write (or a connection attempt): wake it.
                    if let Some(socket) = &st.socket {
                        let _ = socket.shutdown(Shutdown::Both);
                    }
                    break;
                }
                st = self.shared.wait_timeout(st, hard - now);
            }
        }
        // Never join from the worker itself (the last reference dropped in a callback).
        if thread.thread().id() != std::thread::current().id() {
            let _ = thread.join();
        }
        self.stats()
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.shutdown(Duration::ZERO);
    }
}

/// Spacing of connection attempts.
struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            next: initial,
        }
    }

    fn reset(&mut self) {
        self.next = self.initial;
    }

    /// The wait before the next attempt; doubles the following one, up to the maximum.
    fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }
}

enum SessionEnd {
    /// Stopped: queue flushed or flush time over.
    Finished,
    /// The connection broke; the reason.
    Lost(String),
}

struct Worker {
    shared: Arc<Shared>,
    config: PublisherConfig,
    on_event: EventCallback,
}

impl Worker {
    fn run(self) {
        let mut backoff = Backoff::new(self.config.initial_backoff, self.config.max_backoff);
        let mut connected_before = false;
        let mut outage_reported = false;
        let connect = Connect::new(self.config.client_id.clone(), true, self.config.keepalive);
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
            match Client::connect(&self.config.host, self.config.port, &connect, timeout) {
                Ok(client) => {
                    if connected_before {
                        self.shared.lock().stats.reconnects += 1;
                    }
                    (self.on_event)(Event::Connected {
                        reconnect: connected_before,
                    });
                    connected_before = true;
                    let started = Instant::now();
                    match self.session(client) {
                        SessionEnd::Finished => break,
                        SessionEnd::Lost(reason) => {
                            // One warning an outage: this one, not the failed attempts after.
                            (self.on_event)(Event::ConnectionLost(reason));
                            outage_reported = true;
                            if started.elapsed() >= STABLE_CONNECTION {
                                backoff.reset();
                            } else {
                                self.wait_backoff(backoff.next_delay());
                            }
                        }
                    }
                }
                Err(e) => {
                    if !outage_reported {
                        (self.on_event)(Event::ConnectFailed(e.to_string()));
                        outage_reported = true;
                    }
                    self.wait_backoff(backoff.next_delay());
                }
            }
        }
        let mut st = self.shared.lock();
        st.stats.dropped += st.queue.len() as u64;
        st.queue.clear();
        st.in_flight = 0;
        st.finished = true;
        st.stats.connected = false;
        drop(st);
        self.shared.cond.notify_all();
    }

    /// Waits `delay`, or less when a stop makes waiting pointless.
    fn wait_backoff(&self, delay: Duration) {
        let until = Instant::now() + delay;
        let mut st = self.shared.lock();
        loop {
            if st.should_exit() {
                return;
            }
            let limit = st.stop.map_or(until, |d| d.min(until));
            let now = Instant::now();
            if now >= limit {
                return;
            }
            st = self.shared.wait_timeout(st, limit - now);
        }
    }

    fn session(&self, client: Client) -> SessionEnd {
        let (reader, mut writer) = client.split();
        let connection = {
            let mut st = self.shared.lock();
            st.connection += 1;
            st.in_flight = 0;
            st.lost = None;
            st.socket = writer.try_clone_stream().ok();
            st.last_received = Instant::now();
            st.stats.connected = true;
            st.connection
        };
        let shared = self.shared.clone();
        let reader_thread = std::thread::Builder::new()
            .name("mqtt-reader".into())
            .spawn(move || read_loop(&shared, connection, reader));
        let end = match &reader_thread {
            Ok(_) => self.serve(&mut writer),
            Err(e) => SessionEnd::Lost(format!("cannot start the reader thread: {e}")),
        };
        writer.shutdown();
        if let Ok(thread) = reader_thread {
            let _ = thread.join();
        }
        let mut st = self.shared.lock();
        st.socket = None;
        st.in_flight = 0;
        st.stats.connected = false;
        end
    }

    /// Sends queued records, pings, and waits, until the connection breaks or a stop ends it.
    fn serve(&self, writer: &mut PacketWriter) -> SessionEnd {
        let qos1 = self.config.qos != QoS::AtMostOnce;
        let keepalive = Duration::from_secs(self.config.keepalive.into());
        let window = if qos1 {
            self.config.max_in_flight
        } else {
            usize::MAX
        };
        let mut last_write = Instant::now();
        let mut ping_sent: Option<Instant> = None;
        let mut bytes = Vec::new();
        loop {
            let mut st = self.shared.lock();
            if let Some(reason) = st.lost.take() {
                return SessionEnd::Lost(reason);
            }
            let now = Instant::now();
            if st.should_exit() {
                drop(st);
                let _ = writer.send(&Packet::Disconnect);
                return SessionEnd::Finished;
            }
            if let Some(sent) = ping_sent {
                if st.last_received >= sent {
                    ping_sent = None;
                } else if now >= sent + keepalive {
                    return SessionEnd::Lost(format!(
                        "no answer to PINGREQ within {} s",
                        keepalive.as_secs()
                    ));
                }
            }
            bytes.clear();
            while st.in_flight < st.queue.len()
                && st.in_flight < window
                && bytes.len() < MAX_BATCH_BYTES
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
                if codec::encode_publish(header, &entry.topic, &entry.payload, &mut bytes).is_err()
                {
                    st.queue.remove(index);
                    st.stats.dropped += 1;
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
                } else {
                    st.queue.pop_front();
                }
            }
            if !bytes.is_empty() {
                drop(st);
                if !qos1 {
                    // QoS 0 records are done now: wake `wait_idle`.
                    self.shared.cond.notify_all();
                }
                if let Err(e) = writer.write_bytes(&bytes) {
                    return SessionEnd::Lost(e.to_string());
                }
                last_write = Instant::now();
                continue;
            }
            if !keepalive.is_zero() && ping_sent.is_none() && now >= last_write + keepalive {
                drop(st);
                // Taken before writing: the PINGRESP may be read before `send` returns.
                last_write = Instant::now();
                ping_sent = Some(last_write);
                if let Err(e) = writer.send(&Packet::PingReq) {
                    return SessionEnd::Lost(e.to_string());
                }
                continue;
            }
            let mut wake = now + Duration::from_secs(3600);
            if !keepalive.is_zero() {
                wake = wake.min(ping_sent.unwrap_or(last_write) + keepalive);
            }
            if let Some(deadline) = st.stop {
                wake = wake.min(deadline);
            }
            let _unused = self
                .shared
                .wait_timeout(st, wake.saturating_duration_since(now));
        }
    }
}

/// The reader thread of one connection: PUBACKs take records off the queue.
fn read_loop(shared: &Shared, connection: u64, mut reader: PacketReader) {
    loop {
        let result = reader.read_packet();
        let mut st = shared.lock();
        if st.connection != connection {
            return;
        }
        match result {
            Ok(packet) => {
                st.last_received = Instant::now();
                if let Packet::PubAck { packet_id } = packet {
                    let in_flight = st.in_flight;
                    if let Some(index) = st
                        .queue
                        .iter()
                        .take(in_flight)
                        .position(|e| e.packet_id == packet_id)
                    {
                        st.queue.remove(index);
                        st.in_flight -= 1;
                        st.stats.acknowledged += 1;
                    }
                }
            }
            Err(e) => {
                if st.lost.is_none() {
                    st.lost = Some(e.to_string());
                }
                drop(st);
                shared.cond.notify_all();
                return;
            }
        }
        drop(st);
        shared.cond.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::codec::{ConnectReturnCode, Publish};
    use std::net::TcpListener;

    fn config(port: u16, qos: QoS) -> PublisherConfig {
        PublisherConfig {
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(40),
            qos,
            ..PublisherConfig::new("127.0.0.1", port, "unit-publisher")
        }
    }

    /// Serves one connection: CONNACK, then reads PUBLISHes (acknowledging QoS 1 ones when
    /// `ack`), until DISCONNECT, end of stream or `limit` PUBLISHes (then closes abruptly).
    fn serve_once(listener: &TcpListener, ack: bool, limit: Option<usize>) -> Vec<Publish> {
        let (stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut reader = PacketReader::new(stream.try_clone().unwrap());
        let mut writer = PacketWriter::new(stream);
        let mut seen = Vec::new();
        while let Ok(packet) = reader.read_packet() {
            match packet {
                Packet::Connect(_) => writer
                    .send(&Packet::ConnAck {
                        session_present: false,
                        code: ConnectReturnCode::Accepted,
                    })
                    .unwrap(),
                Packet::Publish(p) => {
                    if let (true, Some(packet_id)) = (ack, p.packet_id) {
                        writer.send(&Packet::PubAck { packet_id }).unwrap();
                    }
                    seen.push(p);
                    if Some(seen.len()) == limit {
                        writer.shutdown();
                        break;
                    }
                }
                Packet::PingReq => writer.send(&Packet::PingResp).unwrap(),
                _ => break,
            }
        }
        seen
    }

    fn payloads(seen: &[Publish]) -> Vec<String> {
        seen.iter()
            .map(|p| String::from_utf8_lossy(&p.payload).into_owned())
            .collect()
    }

    fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
        let delays: Vec<u128> = (0..5).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 500, 500]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }

    #[test]
    fn qos1_records_are_acknowledged_in_order() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let broker = std::thread::spawn(move || serve_once(&listener, true, None));
        let publisher = Publisher::start(config(port, QoS::AtLeastOnce), |_| {}).unwrap();
        for i in 0..100 {
            assert!(publisher.publish("t/a", format!("{i}")));
        }
        assert!(publisher.wait_idle(Duration::from_secs(10)));
        let stats = publisher.stop(Duration::from_secs(2));
        let seen = broker.join().unwrap();
        let expected: Vec<String> = (0..100).map(|i| i.to_string()).collect();
        assert_eq!(payloads(&seen), expected);
        assert!(seen.iter().all(|p| !p.dup && p.qos == QoS::AtLeastOnce));
        assert_eq!(
            (
                stats.published,
                stats.acknowledged,
                stats.dropped,
                stats.queued
            ),
            (100, 100, 0, 0)
        );
    }

    #[test]
    fn unacknowledged_records_are_resent_in_order_with_dup() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let events = Arc::new(Mutex::new(Vec::new()));
        let broker = std::thread::spawn(move || {
            // First connection: reads three records, acknowledges none, breaks.
            let first = serve_once(&listener, false, Some(3));
            let second = serve_once(&listener, true, None);
            (first, second)
        });
        let log = events.clone();
        let publisher = Publisher::start(config(port, QoS::AtLeastOnce), move |e| {
            log.lock().unwrap().push(e)
        })
        .unwrap();
        for i in 0..5 {
            publisher.publish("t/b", format!("{i}"));
        }
        assert!(publisher.wait_idle(Duration::from_secs(10)));
        let stats = publisher.stop(Duration::from_secs(2));
        let (first, second) = broker.join().unwrap();
        assert_eq!(payloads(&first), ["0", "1", "2"]);
        assert_eq!(payloads(&second), ["0", "1", "2", "3", "4"]);
        for (a, b) in first.iter().zip(&second) {
            assert!(b.dup, "{b:?}");
            assert_eq!(a.packet_id, b.packet_id);
        }
        assert_eq!(stats.acknowledged, 5);
        assert_eq!(stats.published, 5);
        assert!(stats.resent >= 3);
        assert_eq!(stats.reconnects, 1);
        let events = events.lock().unwrap();
        assert!(matches!(events[0], Event::Connected { reconnect: false }));
        assert!(events.iter().any(|e| matches!(e, Event::ConnectionLost(_))));
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::Connected { reconnect: true }))
        );
    }

    #[test]
    fn records_queue_while_the_broker_is_away_and_the_oldest_are_dropped() {
        let port = free_port();
        let events = Arc::new(Mutex::new(Vec::new()));
        let log = events.clone();
        let publisher = Publisher::start(
            PublisherConfig {
                max_queue: 3,
                ..config(port, QoS::AtLeastOnce)
            },
            move |e| log.lock().unwrap().push(e),
        )
        .unwrap();
        let kept: Vec<bool> = (0..5)
            .map(|i| publisher.publish("t/c", format!("{i}")))
            .collect();
        assert_eq!(kept, [true, true, true, false, false]);
        let stats = publisher.stats();
        assert_eq!((stats.queued, stats.dropped), (3, 2));
        std::thread::sleep(Duration::from_millis(100));
        assert!(matches!(
            events.lock().unwrap().first(),
            Some(Event::ConnectFailed(_))
        ));
        // The broker comes up; the queue is delivered.
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let broker = std::thread::spawn(move || serve_once(&listener, true, None));
        assert!(publisher.wait_idle(Duration::from_secs(10)));
        let stats = publisher.stop(Duration::from_secs(2));
        assert_eq!(payloads(&broker.join().unwrap()), ["2", "3", "4"]);
        assert_eq!((stats.acknowledged, stats.dropped), (3, 2));
        let failures = events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| matches!(e, Event::ConnectFailed(_)))
            .count();
        assert_eq!(failures, 1, "one report an outage");
    }

    #[test]
    fn qos0_records_leave_the_queue_when_written() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let broker = std::thread::spawn(move || serve_once(&listener, false, None));
        let publisher = Publisher::start(config(port, QoS::AtMostOnce), |_| {}).unwrap();
        for i in 0..50 {
            publisher.publish("t/d", format!("{i}"));
        }
        assert!(publisher.wait_idle(Duration::from_secs(10)));
        let stats = publisher.stop(Duration::from_secs(2));
        let seen = broker.join().unwrap();
        assert_eq!(seen.len(), 50);
        assert!(
            seen.iter()
                .all(|p| p.qos == QoS::AtMostOnce && p.packet_id.is_none())
        );
        assert_eq!((stats.published, stats.acknowledged), (50, 0));
    }

    #[test]
    fn stop_with_the_broker_down_is_bounded_and_counts_the_rest_as_dropped() {
        let publisher = Publisher::start(config(free_port(), QoS::AtLeastOnce), |_| {}).unwrap();
        for i in 0..10 {
            publisher.publish("t/e", format!("{i}"));
        }
        let started = Instant::now();
        let stats = publisher.stop(Duration::from_millis(300));
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(250), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
        assert_eq!((stats.dropped, stats.queued), (10, 0));
        // An empty queue stops at once.
        let publisher = Publisher::start(config(free_port(), QoS::AtLeastOnce), |_| {}).unwrap();
        let started = Instant::now();
        publisher.stop(Duration::from_secs(5));
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn keepalive_pings_an_idle_broker() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let broker = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut reader = PacketReader::new(stream.try_clone().unwrap());
            let mut writer = PacketWriter::new(stream);
            let mut kinds = Vec::new();
            while let Ok(packet) = reader.read_packet() {
                kinds.push(packet.kind());
                match packet {
                    Packet::Connect(_) => writer
                        .send(&Packet::ConnAck {
                            session_present: false,
                            code: ConnectReturnCode::Accepted,
                        })
                        .unwrap(),
                    Packet::PingReq => writer.send(&Packet::PingResp).unwrap(),
                    _ => break,
                }
            }
            kinds
        });
        let publisher = Publisher::start(
            PublisherConfig {
                keepalive: 1,
                ..config(port, QoS::AtLeastOnce)
            },
            |_| {},
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(2500));
        let stats = publisher.stop(Duration::from_secs(1));
        assert_eq!(stats.reconnects, 0);
        let kinds = broker.join().unwrap();
        // CONNECT, two PINGREQs (at about 1 s and 2 s), DISCONNECT.
        assert_eq!(kinds, [1, 12, 12, 14]);
    }
}
