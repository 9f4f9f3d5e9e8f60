// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `defectmqttsink` element: NDJSON records in, one MQTT message a record out, through
//! the publisher worker of [`crate::mqtt`].

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;

use crate::element::sink::{Connection, Peer, Run};
use crate::element::{self, PropertySettings, lock};
use crate::mqtt::publisher::DEFAULT_MAX_QUEUE_BYTES;
use crate::mqtt::{Event, Publisher, PublisherConfig, QoS, Stats, TopicTemplate, tls};

static CAT: LazyLock<gst::DebugCategory> =
    LazyLock::new(|| element::debug_category("defectmqttsink", "Defect records to an MQTT broker"));

/// The peer of the worker, as its connection warnings name it.
const BROKER: Peer = Peer {
    name: "MQTT broker",
    meanwhile: "Records are queued (max-queue) and the connection is retried with backoff",
};

element::subclass!(DefectMqttSink, "GstDefectMqttSink", gst_base::BaseSink, element::pads(&element::ndjson_caps(), None) => "Defect MQTT sink", "Sink/Network", "Publishes NDJSON verdict records to an MQTT broker, one message a record");

/// The first reconnection delay; doubles up to `max-backoff-ms`.
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// An unterminated line longer than this is not a record.
const MAX_PENDING_BYTES: usize = 16 << 20;
/// Distinct field values reported as needing escaping, at most, in one run.
const MAX_REPORTED_VALUES: usize = 1000;

fn default_client_id() -> String {
    format!("gst-defect-{}", std::process::id())
}

#[derive(Debug, Clone)]
struct Settings {
    host: String,
    port: u32,
    client_id: String,
    topic: String,
    qos: u32,
    keepalive: u32,
    max_queue: u32,
    max_backoff_ms: u32,
    flush_timeout_ms: u32,
    max_queue_bytes: u64,
    tls: bool,
    ca_file: Option<PathBuf>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    username: Option<String>,
    password: Option<String>,
}

impl Settings {
    /// TLS is on when asked for, or when any of its files is given.
    fn tls_on(&self) -> bool {
        self.tls || self.ca_file.is_some() || self.cert_file.is_some() || self.key_file.is_some()
    }
}

element::settings_properties!(Settings for DefectMqttSink {
    "host" => host,
    "port" => port,
    "client-id" => client_id,
    "topic" => topic,
    "qos" => qos,
    "keepalive" => keepalive,
    "max-queue" => max_queue,
    "max-backoff-ms" => max_backoff_ms,
    "flush-timeout-ms" => flush_timeout_ms,
    "max-queue-bytes" => max_queue_bytes,
    "tls" => tls,
    "ca-file" => ca_file,
    "cert-file" => cert_file,
    "key-file" => key_file,
    "username" => username,
    "password" => password,
});

/// What lives between start and stop.
struct Running {
    publisher: Publisher,
    template: TopicTemplate,
    qos: QoS,
    /// The start of a record whose '\n' has not come yet.
    pending: Vec<u8>,
    /// Field values already reported as needing escaping.
    reported: HashSet<(&'static str, String)>,
    /// Whether a full queue was reported on the bus in this run.
    warned_full: bool,
}

#[derive(Default)]
pub struct DefectMqttSink {
    settings: Mutex<Settings>,
    run: Run<Running, Counts>,
}

/// The counters the properties report.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    dropped: u64,
    published: u64,
    rejected: u64,
    unconfirmed: u64,
}

element::settings_properties!(Counts {
    "dropped" => dropped,
    "published" => published,
    "rejected" => rejected,
    "unconfirmed" => unconfirmed,
});

/// The counters as the properties report them.
fn counts(stats: &Stats, qos: QoS) -> Counts {
    Counts {
        dropped: stats.dropped,
        published: if qos == QoS::AtMostOnce {
            stats.published
        } else {
            stats.acknowledged
        },
        rejected: stats.rejected,
        unconfirmed: stats.unconfirmed,
    }
}

impl ObjectImpl for DefectMqttSink {
    element::sink::constructed!(false);

    element::properties! {
        string("host", "Host", "127.0.0.1").mutable_ready(): "Host name or address of the MQTT broker",
        uint("port", "Port", 1..=u16::MAX.into(), 1883).mutable_ready(): "TCP port of the MQTT broker",
        string("client-id", "Client id", default_client_id().as_str()).mutable_ready(): "MQTT client identifier (default gst-defect-<pid>); unique per broker",
        string("topic", "Topic", "defect/{source_id}/verdicts").mutable_ready(): "Topic template: {source_id} and {type} are replaced by the record's source_id and type fields",
        uint("qos", "QoS", 0..=1, 1).mutable_ready(): "MQTT quality of service: 0 (at most once) or 1 (at least once)",
        uint("keepalive", "Keep-alive", 0..=u16::MAX.into(), 30).mutable_ready(): "Keep-alive interval in seconds (0 = off)",
        uint("max-queue", "Maximum queue", 1..=10_000_000, 1000).mutable_ready(): "Records queued at most while the broker is slow or away; the oldest is dropped beyond",
        uint("max-backoff-ms", "Maximum backoff", 100..=3_600_000, 5000).mutable_ready(): "Longest wait between reconnection attempts in ms (the wait starts at 100 ms and doubles)",
        uint("flush-timeout-ms", "Flush timeout", 0..=600_000, 2000).mutable_ready(): "Longest wait in ms for queued records to be delivered when stopping",
        uint64("max-queue-bytes", "Maximum queue bytes", 1024..=u64::MAX, DEFAULT_MAX_QUEUE_BYTES as u64).mutable_ready(): "Bytes (topics and payloads) queued at most; the oldest unsent record is dropped beyond",
        boolean("tls", "TLS", false).mutable_ready(): "Connect over TLS (also on when ca-file, cert-file or key-file is set); the broker's certificate is checked against ca-file, or the system's CA store without one",
        string("ca-file", "CA file").mutable_ready(): "PEM file of the CA certificates the broker's certificate must chain to",
        string("cert-file", "Certificate file").mutable_ready(): "PEM file of the client certificate (chain), for brokers that ask for one",
        string("key-file", "Key file").mutable_ready(): "PEM file of the private key of cert-file",
        string("username", "User name").mutable_ready(): "User name sent in CONNECT (none by default)",
        string("password", "Password").write_only().mutable_ready(): "Password sent in CONNECT (needs username; use TLS, or it crosses the network in clear); write-only",
        uint64("dropped", "Dropped").read_only(): "Records no broker received: queue full (oldest unsent first), never sent when the flush timed out, or refused by the broker",
        uint64("published", "Published").read_only(): "Records delivered: acknowledged by the broker (QoS 1) or written (QoS 0)",
        uint64("rejected", "Rejected").read_only(): "Records dropped because the broker closed the connection each time it got them (3 times; counted in dropped too)",
        uint64("unconfirmed", "Unconfirmed").read_only(): "QoS 1 records sent but not acknowledged when the element stopped: the broker may or may not have them",
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        if pspec.name() == "password" {
            // As given, even empty (an empty password is still sent).
            lock(&self.settings).password = value.get().expect("type checked upstream");
            return;
        }
        element::set_property(&self.settings, value, pspec);
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        if pspec.name() == "tls" {
            return lock(&self.settings).tls_on().to_value();
        }
        let counter = self.counts().get(pspec);
        counter.unwrap_or_else(|| element::property(&self.settings, pspec))
    }
}

impl BaseSinkImpl for DefectMqttSink {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = lock(&self.settings).clone();
        let template = TopicTemplate::parse(&settings.topic).map_err(|e| {
            gst::error_msg!(
                gst::LibraryError::Settings,
                ["Invalid topic '{}': {}", settings.topic, e]
            )
        })?;
        let qos = if settings.qos == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        };
        let port = element::sink::port(settings.port)?;
        let tls = if settings.tls_on() {
            Some(
                tls::client_config(
                    settings.ca_file.as_deref(),
                    settings.cert_file.as_deref(),
                    settings.key_file.as_deref(),
                )
                .map_err(|e| {
                    gst::error_msg!(gst::LibraryError::Settings, ["Invalid TLS settings: {}", e])
                })?,
            )
        } else {
            None
        };
        if settings.password.is_some() && settings.username.is_none() {
            return Err(gst::error_msg!(
                gst::LibraryError::Settings,
                ["password is set without username (MQTT 3.1.1 sends no password alone)"]
            ));
        }
        if settings.password.is_some() && tls.is_none() {
            gst::warning!(
                CAT,
                imp = self,
                "the password crosses the network in clear text: set tls=true (and ca-file)"
            );
        }
        let config = PublisherConfig {
            keepalive: u16::try_from(settings.keepalive).unwrap_or(u16::MAX),
            qos,
            max_queue: settings.max_queue as usize,
            max_queue_bytes: usize::try_from(settings.max_queue_bytes).unwrap_or(usize::MAX),
            initial_backoff: INITIAL_BACKOFF,
            max_backoff: Duration::from_millis(settings.max_backoff_ms.into()),
            username: settings.username.clone(),
            password: settings.password.clone().map(String::into_bytes),
            tls,
            ..PublisherConfig::new(settings.host.clone(), port, settings.client_id.clone())
        };
        let target = format!(
            "{}:{}{}",
            settings.host,
            port,
            if config.tls.is_some() { " (TLS)" } else { "" }
        );
        let publisher = element::sink::start_worker(
            self,
            target,
            Self::on_event,
            "MQTT publisher",
            |events| Publisher::start(config, events),
        )?;
        gst::debug!(
            CAT,
            imp = self,
            "publishing to {}:{} as {} (QoS {}, topic {})",
            settings.host,
            port,
            settings.client_id,
            settings.qos,
            settings.topic
        );
        self.run.start(Running {
            publisher,
            template,
            qos,
            pending: Vec::new(),
            reported: HashSet::new(),
            warned_full: false,
        });
        // Metrics (defectmetricssink): the publisher's counters, read at each scrape.
        crate::defectmetricssink::register_sink_counters(&*self.obj(), |obj| {
            let run = obj.imp().run.lock();
            let running = run.as_ref()?;
            let stats = running.publisher.stats();
            Some(crate::defectmetricssink::SinkReading::Mqtt {
                published: counts(&stats, running.qos).published,
                dropped: stats.dropped,
                queued: stats.queued as u64,
                connected: stats.connected,
            })
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        crate::defectmetricssink::unregister_sink_counters(&*self.obj()); // Metrics.
        let flush = Duration::from_millis(lock(&self.settings).flush_timeout_ms.into());
        let Some(stats) = self.run.stop(|running| {
            let stats = running.publisher.stop(flush);
            (counts(&stats, running.qos), stats)
        }) else {
            return Ok(());
        };
        if stats.dropped > 0 || stats.unconfirmed > 0 {
            gst::warning!(
                CAT,
                imp = self,
                "{} records dropped in all, {} sent without acknowledgement ({} published)",
                stats.dropped,
                stats.unconfirmed,
                stats.published
            );
        }
        gst::info!(CAT, imp = self, "stopped: {stats:?}");
        Ok(())
    }

    fn render(&self, buffer: &gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let map = buffer.map_readable().map_err(|_| {
            gst::element_imp_error!(self, gst::ResourceError::Read, ("Cannot map the buffer"));
            gst::FlowError::Error
        })?;
        let mut guard = self.run.lock();
        let Some(running) = guard.as_mut() else {
            return Err(gst::FlowError::Flushing);
        };
        let mut data: &[u8] = &map;
        if !running.pending.is_empty() {
            // Complete the record started in an earlier buffer.
            match data.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    let mut line = std::mem::take(&mut running.pending);
                    line.extend_from_slice(&data[..end]);
                    self.publish_line(running, &line);
                    data = &data[end + 1..];
                }
                None => {
                    running.pending.extend_from_slice(data);
                    return self.check_pending(running);
                }
            }
        }
        let mut lines = data.split(|&b| b == b'\n');
        let rest = lines.next_back().unwrap_or_default();
        for line in lines {
            self.publish_line(running, line);
        }
        running.pending.extend_from_slice(rest);
        self.check_pending(running)
    }

    fn event(&self, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::Eos(_) => {
                if let Some(running) = self.run.lock().as_mut() {
                    let line = std::mem::take(&mut running.pending);
                    self.publish_line(running, &line);
                }
            }
            gst::EventView::FlushStop(_) => {
                if let Some(running) = self.run.lock().as_mut() {
                    running.pending.clear();
                }
            }
            _ => {}
        }
        self.parent_event(event)
    }
}

impl DefectMqttSink {
    /// The counters now, or of the last run.
    fn counts(&self) -> Counts {
        self.run
            .counters(|running| counts(&running.publisher.stats(), running.qos))
    }

    /// Queues one record (a line without its '\n'); blank lines are skipped.
    fn publish_line(&self, running: &mut Running, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let rendered = running.template.render(line);
        for (field, value) in rendered.changed {
            if running.reported.len() > MAX_REPORTED_VALUES {
                break;
            }
            if running.reported.len() == MAX_REPORTED_VALUES {
                running.reported.insert(("", String::new()));
                gst::element_imp_warning!(
                    self,
                    gst::StreamError::Format,
                    (
                        "{} distinct field values needed escaping for MQTT topics; \
                         further ones are not reported",
                        MAX_REPORTED_VALUES
                    )
                );
                break;
            }
            let shown = format!("{:?}", value.chars().take(200).collect::<String>());
            if running.reported.insert((field, value)) {
                gst::element_imp_warning!(
                    self,
                    gst::StreamError::Format,
                    (
                        "{} {} cannot be an MQTT topic level as it is (control characters, \
                         noncharacters, '+', '#' or over {} bytes): published under {:?}",
                        field,
                        shown,
                        crate::mqtt::topic::MAX_LEVEL_BYTES,
                        rendered.topic
                    )
                );
            }
        }
        if !running.publisher.publish(rendered.topic, line) {
            let stats = running.publisher.stats();
            // On the bus: the first drop of a run, then one every thousand.
            if !running.warned_full || stats.dropped.is_multiple_of(1000) {
                running.warned_full = true;
                gst::element_imp_warning!(
                    self,
                    gst::ResourceError::Write,
                    (
                        "MQTT queue full ({} records, {} bytes queued): {} records dropped so \
                         far, the oldest unsent first",
                        stats.queued,
                        stats.queued_bytes,
                        stats.dropped
                    ),
                    ["Bounded by max-queue and max-queue-bytes; the broker is slow or away"]
                );
            }
        }
    }

    fn check_pending(&self, running: &mut Running) -> Result<gst::FlowSuccess, gst::FlowError> {
        if running.pending.len() > MAX_PENDING_BYTES {
            running.pending.clear();
            gst::element_imp_error!(
                self,
                gst::StreamError::Format,
                (
                    "Input is not NDJSON: no newline in {} bytes",
                    MAX_PENDING_BYTES
                )
            );
            return Err(gst::FlowError::Error);
        }
        Ok(gst::FlowSuccess::Ok)
    }

    /// Called from the publisher task, on a thread of the shared network runtime.
    fn on_event(&self, target: &str, event: Event) {
        match event {
            Event::Connected { reconnect: false } => {
                gst::info!(CAT, imp = self, "connected to the MQTT broker at {target}")
            }
            Event::Connected { reconnect: true } => {
                gst::info!(
                    CAT,
                    imp = self,
                    "reconnected to the MQTT broker at {target}; re-sending unacknowledged records"
                )
            }
            Event::ConnectFailed(reason) => BROKER.warn(self, target, Connection::Failed, &reason),
            Event::Rejected { topic, bytes } => gst::element_imp_warning!(
                self,
                gst::ResourceError::Write,
                ("The MQTT broker at {target} closed the connection each time it got a \
                     record for topic {topic:?} ({bytes} bytes): record dropped"),
                [
                    "Counted in the rejected and dropped properties; check the broker's limits (max_packet_size) and access rules"
                ]
            ),
            Event::Invalid { topic, reason } => gst::element_imp_warning!(
                self,
                gst::ResourceError::Write,
                ("A record for topic {topic:?} cannot be sent: {reason}: dropped")
            ),
            Event::ConnectionLost(reason) => BROKER.warn(self, target, Connection::Lost, &reason),
        }
    }
}
