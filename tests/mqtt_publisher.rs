// SPDX-License-Identifier: MIT OR Apache-2.0
//! The publisher worker of `defectmqttsink` (`gstdefect::mqtt::Publisher`) against fake
//! brokers on 127.0.0.1 that the tests script packet by packet: order, QoS 1 re-sending,
//! queueing while the broker is away, keep-alive; and issue 14, item 4: a record the broker
//! refuses is dropped instead of blocking the queue, `dropped` counts only records the
//! broker never got, a broker that stops reading is reported within `keepalive`, and the
//! queue is bounded in bytes.

#[path = "common/mqtt_wire.rs"]
mod wire;

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gstdefect::mqtt::{Event, Publisher, PublisherConfig, QoS};
use wire::{ConnectReturnCode, Packet, PacketReader, PacketWriter, Publish};

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

/// Accepts connections until `stop`, each served by `serve` on its own thread; returns the
/// listener's port. Polls `accept` every 10 ms (a test fixture, not the code under test).
fn fake_broker(
    stop: Arc<std::sync::atomic::AtomicBool>,
    serve: impl Fn(std::net::TcpStream) + Send + Sync + 'static,
) -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let serve = Arc::new(serve);
    let thread = std::thread::spawn(move || {
        let mut connections = Vec::new();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            match listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false).unwrap();
                    let serve = serve.clone();
                    connections.push(std::thread::spawn(move || serve(stream)));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        for connection in connections {
            let _ = connection.join();
        }
    });
    (port, thread)
}

fn connack(writer: &mut PacketWriter) {
    writer
        .send(&Packet::ConnAck {
            session_present: false,
            code: ConnectReturnCode::Accepted,
        })
        .unwrap();
}

/// The events a publisher reported, with when.
type EventLog = Arc<Mutex<Vec<(Instant, Event)>>>;

fn event_log() -> (EventLog, impl Fn(Event) + Send + Sync + 'static) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let log = events.clone();
    (events, move |e| {
        log.lock().unwrap().push((Instant::now(), e))
    })
}

/// Issue 14, item 4: a record the broker answers by closing the connection (as mosquitto
/// does for a malformed topic or a packet over `max_packet_size`) is dropped after three
/// strikes and reported; the records behind it are delivered. Before, QoS 1 re-sent it first
/// on every connection and nothing behind it was ever delivered.
#[test]
fn a_record_the_broker_refuses_is_dropped_and_the_rest_delivered() {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let received = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = received.clone();
    let (port, broker) = fake_broker(stop.clone(), move |stream| {
        let mut reader = PacketReader::new(stream.try_clone().unwrap());
        let mut writer = PacketWriter::new(stream);
        while let Ok(packet) = reader.read_packet() {
            match packet {
                Packet::Connect(_) => connack(&mut writer),
                Packet::Publish(p) if p.payload == b"poison" => {
                    writer.shutdown();
                    return;
                }
                Packet::Publish(p) => {
                    seen.lock()
                        .unwrap()
                        .push(String::from_utf8(p.payload).unwrap());
                    writer
                        .send(&Packet::PubAck {
                            packet_id: p.packet_id.unwrap(),
                        })
                        .unwrap();
                }
                Packet::PingReq => writer.send(&Packet::PingResp).unwrap(),
                _ => return,
            }
        }
    });
    let (events, on_event) = event_log();
    let publisher = Publisher::start(config(port, QoS::AtLeastOnce), on_event).unwrap();
    for i in 0..10 {
        let payload = if i == 3 {
            "poison".to_owned()
        } else {
            i.to_string()
        };
        publisher.publish(format!("t/{i}"), payload);
    }
    assert!(
        publisher.wait_idle(Duration::from_secs(10)),
        "the queue never drained: {:?}",
        publisher.stats()
    );
    let stats = publisher.stop(Duration::from_secs(2));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    broker.join().unwrap();
    let mut distinct = received.lock().unwrap().clone();
    distinct.dedup();
    assert_eq!(distinct, ["0", "1", "2", "4", "5", "6", "7", "8", "9"]);
    assert_eq!(
        (stats.rejected, stats.dropped, stats.acknowledged),
        (1, 1, 9)
    );
    let events = events.lock().unwrap();
    let rejected: Vec<&Event> = events
        .iter()
        .map(|(_, e)| e)
        .filter(|e| matches!(e, Event::Rejected { .. }))
        .collect();
    assert_eq!(
        rejected,
        [&Event::Rejected {
            topic: "t/3".into(),
            bytes: 6
        }]
    );
    eprintln!("refused record: {stats:?}");
}

/// Issue 14, item 4: `dropped` counts only records the broker never got. A broker that
/// stops reading for a second (frozen) and then takes everything: the records written
/// before the queue overflowed reach it and are not counted as dropped; exactly the records
/// it lacks are. Before, records already written were dropped from the queue for room and
/// counted although the broker later had them.
#[test]
fn dropped_counts_only_records_the_broker_never_got() {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let received = Arc::new(Mutex::new(std::collections::BTreeSet::<u32>::new()));
    let seen = received.clone();
    let (port, broker) = fake_broker(stop.clone(), move |stream| {
        let mut reader = PacketReader::new(stream.try_clone().unwrap());
        let mut writer = PacketWriter::new(stream);
        let Ok(Packet::Connect(_)) = reader.read_packet() else {
            return;
        };
        connack(&mut writer);
        // Frozen: reads nothing for a second.
        std::thread::sleep(Duration::from_secs(1));
        while let Ok(packet) = reader.read_packet() {
            match packet {
                Packet::Publish(p) => {
                    seen.lock()
                        .unwrap()
                        .insert(String::from_utf8(p.payload).unwrap().parse().unwrap());
                    writer
                        .send(&Packet::PubAck {
                            packet_id: p.packet_id.unwrap(),
                        })
                        .unwrap();
                }
                Packet::PingReq => writer.send(&Packet::PingResp).unwrap(),
                _ => return,
            }
        }
    });
    let (events, on_event) = event_log();
    let publisher = Publisher::start(
        PublisherConfig {
            max_queue: 20,
            max_in_flight: 8,
            ..config(port, QoS::AtLeastOnce)
        },
        on_event,
    )
    .unwrap();
    let started = Instant::now();
    while !events
        .lock()
        .unwrap()
        .iter()
        .any(|(_, e)| matches!(e, Event::Connected { .. }))
    {
        assert!(started.elapsed() < Duration::from_secs(5), "no connection");
        std::thread::sleep(Duration::from_millis(5));
    }
    // 200 records, each given time to be written, while the broker reads nothing.
    for i in 0..200u32 {
        publisher.publish("t/frozen", i.to_string());
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(publisher.wait_idle(Duration::from_secs(10)));
    let stats = publisher.stop(Duration::from_secs(2));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    broker.join().unwrap();
    let received = received.lock().unwrap().clone();
    assert!(stats.dropped > 0, "the queue never overflowed: {stats:?}");
    assert_eq!(
        stats.dropped,
        200 - received.len() as u64,
        "dropped must be exactly the records the broker lacks ({stats:?})"
    );
    assert_eq!(stats.acknowledged, received.len() as u64);
    eprintln!(
        "frozen broker: {} of 200 delivered, dropped {}",
        received.len(),
        stats.dropped
    );
}

/// A broker that takes the connection and then never reads (nor answers).
fn deaf_broker(stop: Arc<std::sync::atomic::AtomicBool>) -> (u16, std::thread::JoinHandle<()>) {
    let hold = stop.clone();
    fake_broker(stop, move |stream| {
        let mut reader = PacketReader::new(stream.try_clone().unwrap());
        let mut writer = PacketWriter::new(stream);
        if let Ok(Packet::Connect(_)) = reader.read_packet() {
            connack(&mut writer);
        }
        while !hold.load(std::sync::atomic::Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(10));
        }
    })
}

/// How long after `since` the first `ConnectionLost` came, if it did.
fn lost_after(events: &Mutex<Vec<(Instant, Event)>>, since: Instant) -> Option<Duration> {
    events
        .lock()
        .unwrap()
        .iter()
        .find(|(_, e)| matches!(e, Event::ConnectionLost(_)))
        .map(|(at, _)| at.saturating_duration_since(since))
}

/// Issue 14, item 4: a broker that accepts the connection and then never reads is reported
/// within `keepalive` (1 s here) of the first record it leaves unanswered, with QoS 1 and
/// with QoS 0 (where a PINGREQ follows the first records, as nothing answers them). Before,
/// QoS 1 took 2 x `keepalive` and QoS 0 records streamed into the socket with no warning.
#[test]
fn a_broker_that_stops_reading_is_reported_within_keepalive() {
    for qos in [QoS::AtLeastOnce, QoS::AtMostOnce] {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (port, broker) = deaf_broker(stop.clone());
        let (events, on_event) = event_log();
        let publisher = Publisher::start(
            PublisherConfig {
                keepalive: 1,
                ..config(port, qos)
            },
            on_event,
        )
        .unwrap();
        let started = Instant::now();
        while !events
            .lock()
            .unwrap()
            .iter()
            .any(|(_, e)| matches!(e, Event::Connected { .. }))
        {
            assert!(started.elapsed() < Duration::from_secs(5), "no connection");
            std::thread::sleep(Duration::from_millis(5));
        }
        let first = Instant::now();
        // Records every 50 ms for 3 s, or until the loss is reported.
        for i in 0..60 {
            publisher.publish("t/deaf", vec![b'x'; 100 + i]);
            if lost_after(&events, first).is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let lost = lost_after(&events, first);
        publisher.stop(Duration::from_millis(100));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        broker.join().unwrap();
        let limit = Duration::from_millis(1000 + 400);
        let lost = lost.unwrap_or_else(|| panic!("{qos:?}: no warning in 3 s"));
        assert!(
            lost <= limit && lost >= Duration::from_millis(400),
            "{qos:?}: reported after {lost:?}"
        );
        eprintln!("{qos:?}: a deaf broker reported after {lost:?}");
    }
}

/// Issue 14, item 4: the queue is bounded in bytes too: 5 MB records while the broker is
/// away stay under `max_queue_bytes`, the oldest dropped; a record larger than the bound is
/// dropped at once. Before, only the count bounded it (1000 records of 5 MB).
#[test]
fn the_queue_is_bounded_in_bytes() {
    let publisher = Publisher::start(
        PublisherConfig {
            max_queue_bytes: 16 << 20,
            ..config(free_port(), QoS::AtLeastOnce)
        },
        |_| {},
    )
    .unwrap();
    let record = vec![b'r'; 5_000_000];
    let mut most = 0;
    for _ in 0..20 {
        publisher.publish("t/big", record.clone());
        most = most.max(publisher.stats().queued_bytes);
    }
    let stats = publisher.stats();
    assert!(most <= 16 << 20, "{most} bytes queued");
    assert_eq!((stats.queued, stats.dropped), (3, 17));
    assert!(!publisher.publish("t/huge", vec![0u8; 17 << 20]));
    let stats = publisher.stop(Duration::ZERO);
    assert_eq!(stats.dropped, 21);
    eprintln!("5 MB records: at most {most} bytes queued");
}

/// Threads of this process named `name`.
fn threads_named(name: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim_end() == name)
        .count()
}

/// A publisher starts no thread of its own: three connected at once are tasks on the
/// plugin's shared network runtime, whose `RUNTIME_WORKERS` threads (`defect-net`) are all
/// the network threads there are. Before, each connected publisher ran two threads
/// (`mqtt-publisher`, `mqtt-reader`).
#[test]
fn publishers_share_the_network_runtime_and_start_no_threads() {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (port, broker) = fake_broker(stop.clone(), |stream| {
        let mut reader = PacketReader::new(stream.try_clone().unwrap());
        let mut writer = PacketWriter::new(stream);
        while let Ok(packet) = reader.read_packet() {
            match packet {
                Packet::Connect(_) => connack(&mut writer),
                Packet::Publish(p) => writer
                    .send(&Packet::PubAck {
                        packet_id: p.packet_id.unwrap(),
                    })
                    .unwrap(),
                Packet::PingReq => writer.send(&Packet::PingResp).unwrap(),
                _ => return,
            }
        }
    });
    let publishers: Vec<Publisher> = (0..3)
        .map(|i| {
            let config = PublisherConfig {
                client_id: format!("unit-threads-{i}"),
                ..config(port, QoS::AtLeastOnce)
            };
            Publisher::start(config, |_| {}).unwrap()
        })
        .collect();
    for publisher in &publishers {
        assert!(publisher.publish("t/threads", "x"));
    }
    for publisher in &publishers {
        assert!(publisher.wait_idle(Duration::from_secs(10)));
        assert!(publisher.stats().connected);
    }
    assert_eq!(
        threads_named("mqtt-publisher") + threads_named("mqtt-reader"),
        0
    );
    assert_eq!(threads_named("defect-net"), gstdefect::net::RUNTIME_WORKERS);
    for publisher in publishers {
        let stats = publisher.stop(Duration::from_secs(2));
        assert_eq!((stats.acknowledged, stats.connected), (1, false));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    broker.join().unwrap();
}
