// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `defectmqttsink` element: NDJSON records in, one MQTT message a record out, through
//! the publisher worker of [`crate::mqtt`].

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::Duration;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;

use crate::mqtt::publisher::DEFAULT_MAX_QUEUE_BYTES;
use crate::mqtt::{Event, Publisher, PublisherConfig, QoS, Stats, TopicTemplate, tls};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "defectmqttsink",
        gst::DebugColorFlags::empty(),
        Some("Defect records to an MQTT broker"),
    )
});

const DEFAULT_HOST: &str = "127.0.0.1";
const DEFAULT_PORT: u32 = 1883;
const DEFAULT_TOPIC: &str = "defect/{source_id}/verdicts";
const DEFAULT_QOS: u32 = 1;
const DEFAULT_KEEPALIVE: u32 = 30;
const DEFAULT_MAX_QUEUE: u32 = 1000;
const DEFAULT_MAX_BACKOFF_MS: u32 = 5000;
const DEFAULT_FLUSH_TIMEOUT_MS: u32 = 2000;
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

impl Default for Settings {
    fn default() -> Self {
        Self {
            host: DEFAULT_HOST.into(),
            port: DEFAULT_PORT,
            client_id: default_client_id(),
            topic: DEFAULT_TOPIC.into(),
            qos: DEFAULT_QOS,
            keepalive: DEFAULT_KEEPALIVE,
            max_queue: DEFAULT_MAX_QUEUE,
            max_backoff_ms: DEFAULT_MAX_BACKOFF_MS,
            flush_timeout_ms: DEFAULT_FLUSH_TIMEOUT_MS,
            max_queue_bytes: DEFAULT_MAX_QUEUE_BYTES as u64,
            tls: false,
            ca_file: None,
            cert_file: None,
            key_file: None,
            username: None,
            password: None,
        }
    }
}

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
    running: Mutex<Option<Running>>,
    /// The counters of the last run, once stopped.
    last_counts: Mutex<Counts>,
}

/// The counters the properties report.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    dropped: u64,
    published: u64,
    rejected: u64,
    unconfirmed: u64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

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

fn path_value(path: &Option<PathBuf>) -> glib::Value {
    path.as_ref().map(|p| p.display().to_string()).to_value()
}

#[glib::object_subclass]
impl ObjectSubclass for DefectMqttSink {
    const NAME: &'static str = "GstDefectMqttSink";
    type Type = super::DefectMqttSink;
    type ParentType = gst_base::BaseSink;
}

impl ObjectImpl for DefectMqttSink {
    fn constructed(&self) {
        self.parent_constructed();
        self.obj().set_sync(false);
    }

    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let client_id = default_client_id();
            vec![
                glib::ParamSpecString::builder("host")
                    .nick("Host")
                    .blurb("Host name or address of the MQTT broker")
                    .default_value(Some(DEFAULT_HOST))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("port")
                    .nick("Port")
                    .blurb("TCP port of the MQTT broker")
                    .minimum(1)
                    .maximum(u16::MAX.into())
                    .default_value(DEFAULT_PORT)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("client-id")
                    .nick("Client id")
                    .blurb("MQTT client identifier (default gst-defect-<pid>); unique per broker")
                    .default_value(Some(client_id.as_str()))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("topic")
                    .nick("Topic")
                    .blurb(
                        "Topic template: {source_id} and {type} are replaced by the record's \
                         source_id and type fields",
                    )
                    .default_value(Some(DEFAULT_TOPIC))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("qos")
                    .nick("QoS")
                    .blurb("MQTT quality of service: 0 (at most once) or 1 (at least once)")
                    .maximum(1)
                    .default_value(DEFAULT_QOS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("keepalive")
                    .nick("Keep-alive")
                    .blurb("Keep-alive interval in seconds (0 = off)")
                    .maximum(u16::MAX.into())
                    .default_value(DEFAULT_KEEPALIVE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("max-queue")
                    .nick("Maximum queue")
                    .blurb(
                        "Records queued at most while the broker is slow or away; \
                         the oldest is dropped beyond",
                    )
                    .minimum(1)
                    .maximum(10_000_000)
                    .default_value(DEFAULT_MAX_QUEUE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("max-backoff-ms")
                    .nick("Maximum backoff")
                    .blurb(
                        "Longest wait between reconnection attempts in ms \
                         (the wait starts at 100 ms and doubles)",
                    )
                    .minimum(100)
                    .maximum(3_600_000)
                    .default_value(DEFAULT_MAX_BACKOFF_MS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("flush-timeout-ms")
                    .nick("Flush timeout")
                    .blurb("Longest wait in ms for queued records to be delivered when stopping")
                    .maximum(600_000)
                    .default_value(DEFAULT_FLUSH_TIMEOUT_MS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("max-queue-bytes")
                    .nick("Maximum queue bytes")
                    .blurb(
                        "Bytes (topics and payloads) queued at most; the oldest unsent record \
                         is dropped beyond",
                    )
                    .minimum(1024)
                    .default_value(DEFAULT_MAX_QUEUE_BYTES as u64)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("tls")
                    .nick("TLS")
                    .blurb(
                        "Connect over TLS (also on when ca-file, cert-file or key-file is set); \
                         the broker's certificate is checked against ca-file, or the system's \
                         CA store without one",
                    )
                    .default_value(false)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("ca-file")
                    .nick("CA file")
                    .blurb("PEM file of the CA certificates the broker's certificate must chain to")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("cert-file")
                    .nick("Certificate file")
                    .blurb(
                        "PEM file of the client certificate (chain), for brokers that ask for one",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("key-file")
                    .nick("Key file")
                    .blurb("PEM file of the private key of cert-file")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("username")
                    .nick("User name")
                    .blurb("User name sent in CONNECT (none by default)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("password")
                    .nick("Password")
                    .blurb(
                        "Password sent in CONNECT (needs username; use TLS, or it crosses \
                         the network in clear); write-only",
                    )
                    .write_only()
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("dropped")
                    .nick("Dropped")
                    .blurb(
                        "Records no broker received: queue full (oldest unsent first), never \
                         sent when the flush timed out, or refused by the broker",
                    )
                    .read_only()
                    .build(),
                glib::ParamSpecUInt64::builder("published")
                    .nick("Published")
                    .blurb(
                        "Records delivered: acknowledged by the broker (QoS 1) or written (QoS 0)",
                    )
                    .read_only()
                    .build(),
                glib::ParamSpecUInt64::builder("rejected")
                    .nick("Rejected")
                    .blurb(
                        "Records dropped because the broker closed the connection each time it \
                         got them (3 times; counted in dropped too)",
                    )
                    .read_only()
                    .build(),
                glib::ParamSpecUInt64::builder("unconfirmed")
                    .nick("Unconfirmed")
                    .blurb(
                        "QoS 1 records sent but not acknowledged when the element stopped: the \
                         broker may or may not have them",
                    )
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut settings = lock(&self.settings);
        let text = |default: &str| {
            value
                .get::<Option<String>>()
                .ok()
                .flatten()
                .unwrap_or_else(|| default.to_owned())
        };
        let number = |default: u32| value.get::<u32>().unwrap_or(default);
        let optional = || {
            value
                .get::<Option<String>>()
                .ok()
                .flatten()
                .filter(|s| !s.is_empty())
        };
        match pspec.name() {
            "host" => settings.host = text(DEFAULT_HOST),
            "port" => settings.port = number(DEFAULT_PORT),
            "client-id" => settings.client_id = text(&default_client_id()),
            "topic" => settings.topic = text(DEFAULT_TOPIC),
            "qos" => settings.qos = number(DEFAULT_QOS),
            "keepalive" => settings.keepalive = number(DEFAULT_KEEPALIVE),
            "max-queue" => settings.max_queue = number(DEFAULT_MAX_QUEUE),
            "max-backoff-ms" => settings.max_backoff_ms = number(DEFAULT_MAX_BACKOFF_MS),
            "flush-timeout-ms" => settings.flush_timeout_ms = number(DEFAULT_FLUSH_TIMEOUT_MS),
            "max-queue-bytes" => {
                settings.max_queue_bytes =
                    value.get::<u64>().unwrap_or(DEFAULT_MAX_QUEUE_BYTES as u64)
            }
            "tls" => settings.tls = value.get::<bool>().unwrap_or(false),
            "ca-file" => settings.ca_file = optional().map(PathBuf::from),
            "cert-file" => settings.cert_file = optional().map(PathBuf::from),
            "key-file" => settings.key_file = optional().map(PathBuf::from),
            "username" => settings.username = optional(),
            "password" => settings.password = value.get::<Option<String>>().ok().flatten(),
            other => gst::warning!(CAT, imp = self, "unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let settings = lock(&self.settings);
        match pspec.name() {
            "host" => settings.host.to_value(),
            "port" => settings.port.to_value(),
            "client-id" => settings.client_id.to_value(),
            "topic" => settings.topic.to_value(),
            "qos" => settings.qos.to_value(),
            "keepalive" => settings.keepalive.to_value(),
            "max-queue" => settings.max_queue.to_value(),
            "max-backoff-ms" => settings.max_backoff_ms.to_value(),
            "flush-timeout-ms" => settings.flush_timeout_ms.to_value(),
            "max-queue-bytes" => settings.max_queue_bytes.to_value(),
            "tls" => settings.tls_on().to_value(),
            "ca-file" => path_value(&settings.ca_file),
            "cert-file" => path_value(&settings.cert_file),
            "key-file" => path_value(&settings.key_file),
            "username" => settings.username.to_value(),
            "dropped" => self.counts().dropped.to_value(),
            "published" => self.counts().published.to_value(),
            "rejected" => self.counts().rejected.to_value(),
            "unconfirmed" => self.counts().unconfirmed.to_value(),
            _ => unimplemented!(),
        }
    }
}

impl GstObjectImpl for DefectMqttSink {}

impl ElementImpl for DefectMqttSink {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static ELEMENT_METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Defect MQTT sink",
                "Sink/Network",
                "Publishes NDJSON verdict records to an MQTT broker, one message a record",
                "gst-plugin-defect developers",
            )
        });
        Some(&*ELEMENT_METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let ndjson = gst::Caps::builder("application/x-ndjson").build();
            vec![
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &ndjson,
                )
                .expect("valid template"),
            ]
        });
        PAD_TEMPLATES.as_ref()
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
        let port = u16::try_from(settings.port).map_err(|_| {
            gst::error_msg!(
                gst::LibraryError::Settings,
                ["Invalid port {}", settings.port]
            )
        })?;
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
        let weak = self.obj().downgrade();
        let publisher = Publisher::start(config, move |event| {
            if let Some(obj) = weak.upgrade() {
                obj.imp().on_event(&target, event);
            }
        })
        .map_err(|e| {
            gst::error_msg!(
                gst::ResourceError::Failed,
                ["Cannot start the MQTT publisher thread: {}", e]
            )
        })?;
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
        *lock(&self.last_counts) = Counts::default();
        *lock(&self.running) = Some(Running {
            publisher,
            template,
            qos,
            pending: Vec::new(),
            reported: HashSet::new(),
            warned_full: false,
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        let Some(running) = lock(&self.running).take() else {
            return Ok(());
        };
        let flush = Duration::from_millis(lock(&self.settings).flush_timeout_ms.into());
        // Not under the lock: the properties stay readable while the queue drains.
        let stats = running.publisher.stop(flush);
        *lock(&self.last_counts) = counts(&stats, running.qos);
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
        let mut guard = lock(&self.running);
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
                if let Some(running) = lock(&self.running).as_mut() {
                    let line = std::mem::take(&mut running.pending);
                    self.publish_line(running, &line);
                }
            }
            gst::EventView::FlushStop(_) => {
                if let Some(running) = lock(&self.running).as_mut() {
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
        match lock(&self.running).as_ref() {
            Some(running) => counts(&running.publisher.stats(), running.qos),
            None => *lock(&self.last_counts),
        }
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

    /// Called from the publisher thread.
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
            Event::ConnectFailed(reason) => gst::element_imp_warning!(
                self,
                gst::ResourceError::OpenWrite,
                (
                    "Cannot connect to the MQTT broker at {}: {}",
                    target,
                    reason
                ),
                ["Records are queued (max-queue) and the connection is retried with backoff"]
            ),
            Event::Rejected { topic, bytes } => gst::element_imp_warning!(
                self,
                gst::ResourceError::Write,
                (
                    "The MQTT broker at {} closed the connection each time it got a record \
                     for topic {:?} ({} bytes): record dropped",
                    target,
                    topic,
                    bytes
                ),
                [
                    "Counted in the rejected and dropped properties; check the broker's limits (max_packet_size) and access rules"
                ]
            ),
            Event::Invalid { topic, reason } => gst::element_imp_warning!(
                self,
                gst::ResourceError::Write,
                (
                    "A record for topic {:?} cannot be sent: {}: dropped",
                    topic,
                    reason
                )
            ),
            Event::ConnectionLost(reason) => gst::element_imp_warning!(
                self,
                gst::ResourceError::Write,
                (
                    "Lost the connection to the MQTT broker at {}: {}",
                    target,
                    reason
                ),
                ["Records are queued (max-queue) and the connection is retried with backoff"]
            ),
        }
    }
}
