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
