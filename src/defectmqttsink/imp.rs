// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `defectmqttsink` element: NDJSON records in, one MQTT message a record out, through
//! the publisher worker of [`crate::mqtt`].

use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::Duration;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;

use crate::mqtt::{Event, Publisher, PublisherConfig, QoS, Stats, TopicTemplate};

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
}

#[derive(Default)]
pub struct DefectMqttSink {
    settings: Mutex<Settings>,
    running: Mutex<Option<Running>>,
    /// The counters of the last run, once stopped: (dropped, published).
    last_counts: Mutex<(u64, u64)>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// (dropped, published) as the properties report them.
fn counts(stats: &Stats, qos: QoS) -> (u64, u64) {
    let published = if qos == QoS::AtMostOnce {
        stats.published
    } else {
        stats.acknowledged
    };
    (stats.dropped, published)
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
                glib::ParamSpecUInt64::builder("dropped")
                    .nick("Dropped")
                    .blurb("Records dropped: queue full, or still queued when the flush timed out")
                    .read_only()
                    .build(),
                glib::ParamSpecUInt64::builder("published")
                    .nick("Published")
                    .blurb(
                        "Records delivered: acknowledged by the broker (QoS 1) or written (QoS 0)",
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
            "dropped" => self.counts().0.to_value(),
            "published" => self.counts().1.to_value(),
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
        let config = PublisherConfig {
            keepalive: u16::try_from(settings.keepalive).unwrap_or(u16::MAX),
            qos,
            max_queue: settings.max_queue as usize,
            initial_backoff: INITIAL_BACKOFF,
            max_backoff: Duration::from_millis(settings.max_backoff_ms.into()),
            ..PublisherConfig::new(settings.host.clone(), port, settings.client_id.clone())
        };
        let target = format!("{}:{}", settings.host, port);
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
        *lock(&self.last_counts) = (0, 0);
        *lock(&self.running) = Some(Running {
            publisher,
            template,
            qos,
            pending: Vec::new(),
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
        if stats.dropped > 0 {
            gst::warning!(
                CAT,
                imp = self,
                "{} records dropped in all ({} published)",
                stats.dropped,
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
    /// (dropped, published) now, or of the last run.
    fn counts(&self) -> (u64, u64) {
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
        let topic = running.template.render(line);
        if !running.publisher.publish(topic, line) {
            let dropped = running.publisher.stats().dropped;
            // The first drop of a run, then one line every thousand.
            if dropped == 1 || dropped.is_multiple_of(1000) {
                gst::warning!(
                    CAT,
                    imp = self,
                    "MQTT queue full: {dropped} oldest records dropped so far"
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
