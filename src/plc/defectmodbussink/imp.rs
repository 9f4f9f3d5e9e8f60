// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `defectmodbussink` element: verdicts in, reject pulses and status registers out,
//! through the worker of [`crate::plc::modbus`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;

use crate::element::{self, lock};
use crate::plc::PlcUnit;
use crate::plc::map::STATUS_REGISTERS;
use crate::plc::modbus::{Due, EncoderConfig, Event, Modbus, ModbusConfig, Reject, Stats};
use crate::plc::tracker::{Decision, Tracker};
use crate::plc::verdict::{self, Verdict};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    element::debug_category(
        "defectmodbussink",
        "Defect verdicts to a PLC over Modbus TCP",
    )
});

const DEFAULT_HOST: &str = "127.0.0.1";
const DEFAULT_PORT: u32 = 502;
const DEFAULT_UNIT_ID: u32 = 1;
const DEFAULT_REJECT_COIL: u32 = 0;
const DEFAULT_PULSE_MS: u32 = 100;
const DEFAULT_REJECT_DELAY_MS: u32 = 1000;
const DEFAULT_REJECT_REVIEW: bool = false;
const DEFAULT_REJECT_UNKNOWN: bool = true;
const DEFAULT_ENCODER_REGISTER: i32 = -1;
const DEFAULT_REJECT_DELAY_COUNTS: u32 = 1000;
const DEFAULT_ENCODER_POLL_MS: u32 = 2;
const DEFAULT_STATUS_REGISTER: i32 = 0;
const DEFAULT_MAX_LATENESS_MS: u32 = 20;
const DEFAULT_TIMEOUT_MS: u32 = 500;
const DEFAULT_MAX_BACKOFF_MS: u32 = 5000;
const DEFAULT_DRAIN_TIMEOUT_MS: u32 = 10_000;
const DEFAULT_REALTIME_PRIORITY: u32 = 0;

#[derive(Debug, Clone)]
struct Settings {
    host: String,
    port: u32,
    unit_id: u32,
    reject_coil: u32,
    pulse_ms: u32,
    reject_delay_ms: u32,
    reject_review: bool,
    reject_unknown: bool,
    unit: PlcUnit,
    encoder_register: i32,
    reject_delay_counts: u32,
    encoder_poll_ms: u32,
    status_register: i32,
    max_lateness_ms: u32,
    timeout_ms: u32,
    max_backoff_ms: u32,
    drain_timeout_ms: u32,
    realtime_priority: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            host: DEFAULT_HOST.into(),
            port: DEFAULT_PORT,
            unit_id: DEFAULT_UNIT_ID,
            reject_coil: DEFAULT_REJECT_COIL,
            pulse_ms: DEFAULT_PULSE_MS,
            reject_delay_ms: DEFAULT_REJECT_DELAY_MS,
            reject_review: DEFAULT_REJECT_REVIEW,
            reject_unknown: DEFAULT_REJECT_UNKNOWN,
            unit: PlcUnit::default(),
            encoder_register: DEFAULT_ENCODER_REGISTER,
            reject_delay_counts: DEFAULT_REJECT_DELAY_COUNTS,
            encoder_poll_ms: DEFAULT_ENCODER_POLL_MS,
            status_register: DEFAULT_STATUS_REGISTER,
            max_lateness_ms: DEFAULT_MAX_LATENESS_MS,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            max_backoff_ms: DEFAULT_MAX_BACKOFF_MS,
            drain_timeout_ms: DEFAULT_DRAIN_TIMEOUT_MS,
            realtime_priority: DEFAULT_REALTIME_PRIORITY,
        }
    }
}

/// What lives between start and stop.
struct Running {
    modbus: Arc<Modbus>,
    tracker: Tracker,
    encoder: bool,
    model_version: String,
    shadow: bool,
    warned_no_meta: bool,
}

#[derive(Default)]
pub struct DefectModbusSink {
    settings: Mutex<Settings>,
    running: Mutex<Option<Running>>,
    /// The counters of the last run, once stopped.
    last_stats: Mutex<Stats>,
    /// Set by `unlock`: an EOS drain gives up.
    flushing: AtomicBool,
}

element::subclass!(DefectModbusSink, "GstDefectModbusSink", gst_base::BaseSink);

impl ObjectImpl for DefectModbusSink {
    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.set_sync(false);
        // A sink of video frames that only reads their metas: keep no frame alive.
        obj.set_enable_last_sample(false);
    }

    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("host")
                    .nick("Host")
                    .blurb("Host name or address of the PLC (Modbus TCP server)")
                    .default_value(Some(DEFAULT_HOST))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("port")
                    .nick("Port")
                    .blurb("TCP port of the PLC")
                    .minimum(1)
                    .maximum(u16::MAX.into())
                    .default_value(DEFAULT_PORT)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("unit-id")
                    .nick("Unit id")
                    .blurb("Modbus unit identifier (slave id) of every request")
                    .maximum(255)
                    .default_value(DEFAULT_UNIT_ID)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("unit", PlcUnit::default())
                    .nick("Unit")
                    .blurb("Act on each finished part's verdict, or on each frame's")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("reject-coil")
                    .nick("Reject coil")
                    .blurb("Coil address (0-based) pulsed for each rejected part or frame")
                    .maximum(u16::MAX.into())
                    .default_value(DEFAULT_REJECT_COIL)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("pulse-ms")
                    .nick("Pulse length")
                    .blurb("How long the reject coil stays on, in ms")
                    .minimum(1)
                    .maximum(60_000)
                    .default_value(DEFAULT_PULSE_MS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("reject-delay-ms")
                    .nick("Reject delay")
                    .blurb(
                        "Time from the moment the element sees a part's last frame (or the \
                         frame) to the reject pulse: the camera-to-gate travel time \
                         (unused with encoder-register)",
                    )
                    .maximum(600_000)
                    .default_value(DEFAULT_REJECT_DELAY_MS)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("reject-review")
                    .nick("Reject REVIEW")
                    .blurb("Reject REVIEW verdicts as well as FAIL ones")
                    .default_value(DEFAULT_REJECT_REVIEW)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("reject-unknown")
                    .nick("Reject UNKNOWN")
                    .blurb(
                        "Reject UNKNOWN verdicts (a part or frame the model did not judge) as \
                         FAIL ones: a part not inspected must not pass. Off only where \
                         uninspected parts are checked elsewhere",
                    )
                    .default_value(DEFAULT_REJECT_UNKNOWN)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecInt::builder("encoder-register")
                    .nick("Encoder register")
                    .blurb(
                        "Holding register (0-based) with the belt encoder's 16-bit count: \
                         rejects then fall due after reject-delay-counts counts instead of \
                         reject-delay-ms (-1 = no encoder)",
                    )
                    .minimum(-1)
                    .maximum(u16::MAX.into())
                    .default_value(DEFAULT_ENCODER_REGISTER)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("reject-delay-counts")
                    .nick("Reject delay in counts")
                    .blurb("Encoder counts from the moment the element sees a part to its pulse")
                    .maximum(i16::MAX as u32)
                    .default_value(DEFAULT_REJECT_DELAY_COUNTS)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("encoder-poll-ms")
                    .nick("Encoder poll interval")
                    .blurb("How often the encoder register is read, in ms")
                    .minimum(1)
                    .maximum(1000)
                    .default_value(DEFAULT_ENCODER_POLL_MS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecInt::builder("status-register")
                    .nick("Status register")
                    .blurb(
                        "First holding register (0-based) of the 27-register status block: \
                         heartbeat, last verdict, counts, model version (-1 = none)",
                    )
                    .minimum(-1)
                    .maximum(i32::from(u16::MAX) - i32::from(STATUS_REGISTERS) + 1)
                    .default_value(DEFAULT_STATUS_REGISTER)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("max-pulse-lateness-ms")
                    .nick("Maximum lateness")
                    .blurb(
                        "A reject that cannot be written within this many ms of its due time \
                         is not fired at all, but counted in missed-rejects",
                    )
                    .maximum(60_000)
                    .default_value(DEFAULT_MAX_LATENESS_MS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("timeout-ms")
                    .nick("Timeout")
                    .blurb("Longest wait for the connection and for each answer of the PLC, in ms")
                    .minimum(1)
                    .maximum(60_000)
                    .default_value(DEFAULT_TIMEOUT_MS)
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
                glib::ParamSpecUInt::builder("drain-timeout-ms")
                    .nick("Drain timeout")
                    .blurb("At end of stream, longest wait in ms for queued rejects to fall due")
                    .maximum(3_600_000)
                    .default_value(DEFAULT_DRAIN_TIMEOUT_MS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("realtime-priority")
                    .nick("Real-time priority")
                    .blurb(
                        "SCHED_FIFO priority (1-99) of the thread that fires the pulses, so that \
                         they leave on time on a busy machine; 0 = normal scheduling. Needs \
                         CAP_SYS_NICE or an RLIMIT_RTPRIO; refused, it is a warning",
                    )
                    .maximum(99)
                    .default_value(DEFAULT_REALTIME_PRIORITY)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("pulses")
                    .nick("Pulses")
                    .blurb("Rejects fired (written to the PLC)")
                    .read_only()
                    .build(),
                glib::ParamSpecUInt64::builder("missed-rejects")
                    .nick("Missed rejects")
                    .blurb(
                        "Rejects not fired: due while not connected, verdict too late, \
                         write refused or failed, or still queued at stop",
                    )
                    .read_only()
                    .build(),
                glib::ParamSpecBoolean::builder("connected")
                    .nick("Connected")
                    .blurb("Whether the element is connected to the PLC now")
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = lock(&self.settings);
        let number = |default: u32| value.get::<u32>().unwrap_or(default);
        let signed = |default: i32| value.get::<i32>().unwrap_or(default);
        match pspec.name() {
            "host" => {
                s.host = value
                    .get::<Option<String>>()
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| DEFAULT_HOST.into())
            }
            "port" => s.port = number(DEFAULT_PORT),
            "unit-id" => s.unit_id = number(DEFAULT_UNIT_ID),
            "unit" => s.unit = value.get().unwrap_or_default(),
            "reject-coil" => s.reject_coil = number(DEFAULT_REJECT_COIL),
            "pulse-ms" => s.pulse_ms = number(DEFAULT_PULSE_MS),
            "reject-delay-ms" => s.reject_delay_ms = number(DEFAULT_REJECT_DELAY_MS),
            "reject-review" => s.reject_review = value.get().unwrap_or(DEFAULT_REJECT_REVIEW),
            "reject-unknown" => s.reject_unknown = value.get().unwrap_or(DEFAULT_REJECT_UNKNOWN),
            "encoder-register" => s.encoder_register = signed(DEFAULT_ENCODER_REGISTER),
            "reject-delay-counts" => s.reject_delay_counts = number(DEFAULT_REJECT_DELAY_COUNTS),
            "encoder-poll-ms" => s.encoder_poll_ms = number(DEFAULT_ENCODER_POLL_MS),
            "status-register" => s.status_register = signed(DEFAULT_STATUS_REGISTER),
            "max-pulse-lateness-ms" => s.max_lateness_ms = number(DEFAULT_MAX_LATENESS_MS),
            "timeout-ms" => s.timeout_ms = number(DEFAULT_TIMEOUT_MS),
            "max-backoff-ms" => s.max_backoff_ms = number(DEFAULT_MAX_BACKOFF_MS),
            "drain-timeout-ms" => s.drain_timeout_ms = number(DEFAULT_DRAIN_TIMEOUT_MS),
            "realtime-priority" => s.realtime_priority = number(DEFAULT_REALTIME_PRIORITY),
            other => gst::warning!(CAT, imp = self, "unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "pulses" => return self.stats().fired.to_value(),
            "missed-rejects" => return self.stats().missed.to_value(),
            "connected" => return self.stats().connected.to_value(),
            _ => {}
        }
        let s = lock(&self.settings);
        match pspec.name() {
            "host" => s.host.to_value(),
            "port" => s.port.to_value(),
            "unit-id" => s.unit_id.to_value(),
            "unit" => s.unit.to_value(),
            "reject-coil" => s.reject_coil.to_value(),
            "pulse-ms" => s.pulse_ms.to_value(),
            "reject-delay-ms" => s.reject_delay_ms.to_value(),
            "reject-review" => s.reject_review.to_value(),
            "reject-unknown" => s.reject_unknown.to_value(),
            "encoder-register" => s.encoder_register.to_value(),
            "reject-delay-counts" => s.reject_delay_counts.to_value(),
            "encoder-poll-ms" => s.encoder_poll_ms.to_value(),
            "status-register" => s.status_register.to_value(),
            "max-pulse-lateness-ms" => s.max_lateness_ms.to_value(),
            "timeout-ms" => s.timeout_ms.to_value(),
            "max-backoff-ms" => s.max_backoff_ms.to_value(),
            "drain-timeout-ms" => s.drain_timeout_ms.to_value(),
            "realtime-priority" => s.realtime_priority.to_value(),
            _ => unimplemented!(),
        }
    }
}

impl ElementImpl for DefectModbusSink {
    element::describe!(element::pads(&element::any_video_caps(), None) =>
        "Defect Modbus reject sink", "Sink/Network",
        "Pulses a reject coil over Modbus TCP for failed parts, at the delay to the reject gate, and keeps the PLC's status registers up to date");
}

impl BaseSinkImpl for DefectModbusSink {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let s = lock(&self.settings).clone();
        let port = u16::try_from(s.port).map_err(|_| {
            gst::error_msg!(gst::LibraryError::Settings, ["Invalid port {}", s.port])
        })?;
        let encoder = u16::try_from(s.encoder_register)
            .ok()
            .map(|register| EncoderConfig {
                register,
                poll: Duration::from_millis(s.encoder_poll_ms.into()),
            });
        let config = ModbusConfig {
            unit_id: s.unit_id.min(255) as u8,
            reject_coil: s.reject_coil.min(u16::MAX.into()) as u16,
            pulse: Duration::from_millis(s.pulse_ms.into()),
            max_lateness: Duration::from_millis(s.max_lateness_ms.into()),
            status_register: u16::try_from(s.status_register).ok(),
            encoder,
            timeout: Duration::from_millis(s.timeout_ms.into()),
            max_backoff: Duration::from_millis(s.max_backoff_ms.into()),
            realtime_priority: (s.realtime_priority > 0)
                .then(|| s.realtime_priority.min(99) as i32),
            ..ModbusConfig::new(s.host.clone(), port)
        };
        let target = format!("{}:{}", s.host, port);
        let weak = self.obj().downgrade();
        let modbus = Modbus::start(config, move |event| {
            if let Some(obj) = weak.upgrade() {
                obj.imp().on_event(&target, event);
            }
        })
        .map_err(|e| {
            gst::error_msg!(
                gst::ResourceError::Failed,
                ["Cannot start the Modbus worker thread: {}", e]
            )
        })?;
        gst::debug!(
            CAT,
            imp = self,
            "rejecting through coil {} of unit {} at {}:{}",
            s.reject_coil,
            s.unit_id,
            s.host,
            port
        );
        *lock(&self.last_stats) = Stats::default();
        *lock(&self.running) = Some(Running {
            modbus: Arc::new(modbus),
            tracker: Tracker::new(s.unit.into()),
            encoder: encoder.is_some(),
            model_version: String::new(),
            shadow: false,
            warned_no_meta: false,
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        let Some(running) = lock(&self.running).take() else {
            return Ok(());
        };
        // Not under the lock: the properties stay readable while the worker finishes.
        let stats = running.modbus.stop();
        *lock(&self.last_stats) = stats;
        gst::info!(CAT, imp = self, "stopped: {stats:?}");
        Ok(())
    }

    fn unlock(&self) -> Result<(), gst::ErrorMessage> {
        self.flushing.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn unlock_stop(&self) -> Result<(), gst::ErrorMessage> {
        self.flushing.store(false, Ordering::SeqCst);
        Ok(())
    }

    fn render(&self, buffer: &gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let seen = Instant::now();
        let mut guard = lock(&self.running);
        let Some(running) = guard.as_mut() else {
            return Err(gst::FlowError::Flushing);
        };
        let Some(frame) = verdict::frame_verdict_or_warn(
            self.obj().upcast_ref(),
            buffer,
            &mut running.warned_no_meta,
        ) else {
            return Ok(gst::FlowSuccess::Ok);
        };
        let version = if frame.model_version.is_empty() {
            &frame.model_id
        } else {
            &frame.model_version
        };
        if *version != running.model_version || frame.shadow != running.shadow {
            running.model_version = version.clone();
            running.shadow = frame.shadow;
            let (version, shadow) = (running.model_version.clone(), running.shadow);
            running.modbus.update_status(|status| {
                status.model_version = version;
                status.shadow = shadow;
            });
        }
        if let Some(decision) = running.tracker.frame(&frame, seen) {
            self.act(running, decision);
        }
        Ok(gst::FlowSuccess::Ok)
    }

    fn event(&self, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::CustomDownstream(custom) => {
                if let Some(part) = custom
                    .structure()
                    .and_then(|s| verdict::part_verdict_or_warn(&*self.obj(), s))
                {
                    let now = Instant::now();
                    if let Some(running) = lock(&self.running).as_mut()
                        && let Some(decision) = running.tracker.part(&part, now)
                    {
                        self.act(running, decision);
                    }
                }
            }
            gst::EventView::Eos(_) => self.drain(),
            _ => {}
        }
        self.parent_event(event)
    }
}

impl DefectModbusSink {
    fn stats(&self) -> Stats {
        match lock(&self.running).as_ref() {
            Some(running) => running.modbus.stats(),
            None => *lock(&self.last_stats),
        }
    }

    /// Updates the status block and, for a verdict to reject, queues the pulse.
    fn act(&self, running: &mut Running, decision: Decision) {
        let (reject_review, reject_unknown, delay_ms, delay_counts) = {
            let s = lock(&self.settings);
            (
                s.reject_review,
                s.reject_unknown,
                s.reject_delay_ms,
                s.reject_delay_counts,
            )
        };
        // A part (or frame) the model did not judge is never let through as a PASS.
        let rejectable = match decision.verdict {
            Verdict::Fail => true,
            Verdict::Unknown => reject_unknown,
            Verdict::Review => reject_review,
            Verdict::Pass => false,
        };
        let reject = rejectable && !decision.shadow;
        let counts = running.tracker.counts();
        running.modbus.update_status(|status| {
            status.last_verdict = Some(decision.verdict);
            status.shadow = decision.shadow;
            status.reject_asked = reject;
            status.counts = decision.counts;
            status.pass = counts.pass;
            status.fail = counts.fail;
            status.review = counts.review;
            status.unknown = counts.unknown;
        });
        let label = match &decision.part_id {
            Some(part) if running.tracker.unit() == crate::plc::tracker::Unit::Part => {
                format!("part {part}")
            }
            _ => format!("frame {}", decision.frame),
        };
        if rejectable && decision.shadow {
            gst::debug!(
                CAT,
                imp = self,
                "{label}: {:?} in shadow mode, no reject",
                decision.verdict
            );
            return;
        }
        if !reject {
            return;
        }
        let due = if running.encoder {
            Due::Counts {
                seen: decision.seen,
                counts: delay_counts.min(i16::MAX as u32) as u16,
            }
        } else {
            Due::At(decision.seen + Duration::from_millis(delay_ms.into()))
        };
        gst::debug!(
            CAT,
            imp = self,
            "{label}: {:?}, reject {due:?}",
            decision.verdict
        );
        running.modbus.schedule(Reject { due, label });
    }

    /// At EOS: lets queued rejects fall due (or be missed) first.
    fn drain(&self) {
        let timeout = Duration::from_millis(lock(&self.settings).drain_timeout_ms.into());
        // Not under the lock: the properties stay readable meanwhile.
        let Some(modbus) = lock(&self.running).as_ref().map(|r| r.modbus.clone()) else {
            return;
        };
        if modbus.stats().pending == 0 {
            return;
        }
        if !modbus.wait_idle(timeout, || !self.flushing.load(Ordering::SeqCst)) {
            gst::warning!(
                CAT,
                imp = self,
                "end of stream: rejects still queued after {} ms",
                timeout.as_millis()
            );
        }
    }

    fn post(&self, structure: gst::Structure) {
        let _ = self.obj().post_message(
            gst::message::Element::builder(structure)
                .src(&*self.obj())
                .build(),
        );
    }

    /// Called from the worker thread.
    fn on_event(&self, target: &str, event: Event) {
        match event {
            Event::Connected { reconnect: false } => {
                gst::info!(CAT, imp = self, "connected to the PLC at {target}")
            }
            Event::Connected { reconnect: true } => {
                gst::info!(CAT, imp = self, "reconnected to the PLC at {target}")
            }
            Event::ConnectFailed(reason) => gst::element_imp_warning!(
                self,
                gst::ResourceError::OpenWrite,
                ("Cannot connect to the PLC at {}: {}", target, reason),
                [
                    "Rejects falling due meanwhile are missed (missed-rejects); retrying with backoff"
                ]
            ),
            Event::ConnectionLost(reason) => gst::element_imp_warning!(
                self,
                gst::ResourceError::Write,
                ("Lost the connection to the PLC at {}: {}", target, reason),
                [
                    "Rejects falling due meanwhile are missed (missed-rejects); retrying with backoff"
                ]
            ),
            Event::PriorityRefused { priority, reason } => gst::element_imp_warning!(
                self,
                gst::ResourceError::Settings,
                (
                    "Cannot run the reject thread at real-time priority {}: {}",
                    priority,
                    reason
                ),
                ["It runs at normal priority: give the process CAP_SYS_NICE or an rtprio limit"]
            ),
            Event::Refused(message) => gst::element_imp_warning!(
                self,
                gst::ResourceError::Write,
                ("The PLC at {} refused a write: {}", target, message),
                ["Check unit-id, reject-coil, status-register and encoder-register"]
            ),
            Event::Fired {
                label,
                due,
                written,
            } => {
                let late = written.saturating_duration_since(due);
                gst::debug!(
                    CAT,
                    imp = self,
                    "{label}: reject pulse, {late:?} after its due time"
                );
                self.post(
                    crate::meta::RejectMessage {
                        label,
                        late_us: late.as_micros() as u64,
                    }
                    .to_structure(),
                );
            }
            Event::Failed(message) => gst::element_imp_error!(
                self,
                gst::ResourceError::Failed,
                ("The Modbus worker failed: {}", message),
                ["No reject can be fired any more"]
            ),
            Event::Missed { label, reason } => {
                gst::warning!(CAT, imp = self, "{label}: reject missed: {reason}");
                self.post(crate::meta::RejectMissedMessage { label, reason }.to_structure());
            }
        }
    }
}
