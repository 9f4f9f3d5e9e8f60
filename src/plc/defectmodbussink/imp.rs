// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `defectmodbussink` element: verdicts in, reject pulses and status registers out,
//! through the worker of [`crate::plc::modbus`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;

use crate::element::sink::{Connection, Peer, Run};
use crate::element::{self, PropertySettings, lock};
use crate::plc::PlcUnit;
use crate::plc::map::STATUS_REGISTERS;
use crate::plc::modbus::{Due, EncoderConfig, Event, Modbus, ModbusConfig, Reject, Stats};
use crate::plc::sink::{self, PlcSink, Verdicts};
use crate::plc::tracker::Decision;
use crate::plc::verdict::{FrameVerdict, PartVerdict, Verdict};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    element::debug_category(
        "defectmodbussink",
        "Defect verdicts to a PLC over Modbus TCP",
    )
});

/// The peer of the worker, as its connection warnings name it.
const PLC: Peer = Peer {
    name: "PLC",
    meanwhile: "Rejects falling due meanwhile are missed (missed-rejects); retrying with backoff",
};

element::subclass!(DefectModbusSink, "GstDefectModbusSink", gst_base::BaseSink, element::pads(&element::verdict_caps(), None) => "Defect Modbus reject sink", "Sink/Network", "Pulses a reject coil over Modbus TCP for failed parts, at the delay to the reject gate, and keeps the PLC's status registers up to date");

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

element::settings_properties!(Settings for DefectModbusSink {
    "host" => host,
    "port" => port,
    "unit-id" => unit_id,
    "unit" => unit,
    "reject-coil" => reject_coil,
    "pulse-ms" => pulse_ms,
    "reject-delay-ms" => reject_delay_ms,
    "reject-review" => reject_review,
    "reject-unknown" => reject_unknown,
    "encoder-register" => encoder_register,
    "reject-delay-counts" => reject_delay_counts,
    "encoder-poll-ms" => encoder_poll_ms,
    "status-register" => status_register,
    "max-pulse-lateness-ms" => max_lateness_ms,
    "timeout-ms" => timeout_ms,
    "max-backoff-ms" => max_backoff_ms,
    "drain-timeout-ms" => drain_timeout_ms,
    "realtime-priority" => realtime_priority,
});

element::settings_properties!(Stats {
    "pulses" => fired,
    "missed-rejects" => missed,
    "connected" => connected,
});

/// What lives between start and stop.
pub struct Running {
    modbus: Arc<Modbus>,
    verdicts: Verdicts,
    encoder: bool,
    model_version: String,
    shadow: bool,
}

#[derive(Default)]
pub struct DefectModbusSink {
    settings: Mutex<Settings>,
    run: Run<Running, Stats>,
    /// Set by `unlock`: an EOS drain gives up.
    flushing: AtomicBool,
    /// The error that the reject coil may be stuck on was posted (this run).
    coil_error: AtomicBool,
}

impl ObjectImpl for DefectModbusSink {
    element::sink::constructed!(true);

    element::properties! {
        string("host", "Host", "127.0.0.1").mutable_ready(): "Host name or address of the PLC (Modbus TCP server)",
        uint("port", "Port", 1..=u16::MAX.into(), 502).mutable_ready(): "TCP port of the PLC",
        uint("unit-id", "Unit id", 0..=255, 1).mutable_ready(): "Modbus unit identifier (slave id) of every request",
        enumeration("unit", "Unit", PlcUnit::default()).mutable_ready(): "Act on each finished part's verdict, or on each frame's",
        uint("reject-coil", "Reject coil", 0..=u16::MAX.into(), 0).mutable_ready(): "Coil address (0-based) pulsed for each rejected part or frame",
        uint("pulse-ms", "Pulse length", 1..=60_000, 100).mutable_ready(): "How long the reject coil stays on, in ms",
        uint("reject-delay-ms", "Reject delay", 0..=600_000, 1000).mutable_playing(): "Time from the moment the element sees a part's last frame (or the frame) to the reject pulse: the camera-to-gate travel time (unused with encoder-register)",
        boolean("reject-review", "Reject REVIEW", false).mutable_playing(): "Reject REVIEW verdicts as well as FAIL ones",
        boolean("reject-unknown", "Reject UNKNOWN", true).mutable_playing(): "Reject UNKNOWN verdicts (a part or frame the model did not judge) as FAIL ones: a part not inspected must not pass. Off only where uninspected parts are checked elsewhere",
        int("encoder-register", "Encoder register", -1..=u16::MAX.into(), -1).mutable_ready(): "Holding register (0-based) with the belt encoder's 16-bit count: rejects then fall due after reject-delay-counts counts instead of reject-delay-ms (-1 = no encoder)",
        uint("reject-delay-counts", "Reject delay in counts", 0..=i16::MAX as u32, 1000).mutable_playing(): "Encoder counts from the moment the element sees a part to its pulse",
        uint("encoder-poll-ms", "Encoder poll interval", 1..=1000, 2).mutable_ready(): "How often the encoder register is read, in ms",
        int("status-register", "Status register", -1..=i32::from(u16::MAX) - i32::from(STATUS_REGISTERS) + 1, 0).mutable_ready(): "First holding register (0-based) of the 27-register status block: heartbeat, last verdict, counts, model version (-1 = none)",
        uint("max-pulse-lateness-ms", "Maximum lateness", 0..=60_000, 20).mutable_ready(): "A reject that cannot be written within this many ms of its due time is not fired at all, but counted in missed-rejects",
        uint("timeout-ms", "Timeout", 1..=60_000, 500).mutable_ready(): "Longest wait for the connection and for each answer of the PLC, in ms",
        uint("max-backoff-ms", "Maximum backoff", 100..=3_600_000, 5000).mutable_ready(): "Longest wait between reconnection attempts in ms (the wait starts at 100 ms and doubles)",
        uint("drain-timeout-ms", "Drain timeout", 0..=3_600_000, 10_000).mutable_ready(): "At end of stream, longest wait in ms for queued rejects to fall due",
        uint("realtime-priority", "Real-time priority", 0..=99, 0).mutable_ready(): "SCHED_FIFO priority (1-99) of the thread that fires the pulses, so that they leave on time on a busy machine; 0 = normal scheduling. Needs CAP_SYS_NICE or an RLIMIT_RTPRIO; refused, it is a warning",
        uint64("pulses", "Pulses").read_only(): "Rejects fired (written to the PLC)",
        uint64("missed-rejects", "Missed rejects").read_only(): "Rejects not fired: due while not connected, verdict too late, write refused or failed, or still queued at stop",
        boolean("connected", "Connected").read_only(): "Whether the element is connected to the PLC now",
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        element::set_property(&self.settings, value, pspec);
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        self.stats()
            .get(pspec)
            .unwrap_or_else(|| element::property(&self.settings, pspec))
    }
}

impl BaseSinkImpl for DefectModbusSink {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let s = lock(&self.settings).clone();
        let port = element::sink::port(s.port)?;
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
        let modbus =
            element::sink::start_worker(self, target, Self::on_event, "Modbus worker", |events| {
                Modbus::start(config, events)
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
        self.coil_error.store(false, Ordering::SeqCst);
        self.run.start(Running {
            modbus: Arc::new(modbus),
            verdicts: Verdicts::new(s.unit),
            encoder: encoder.is_some(),
            model_version: String::new(),
            shadow: false,
        });
        // Metrics (defectmetricssink): the worker's counters, read at each scrape.
        crate::defectmetricssink::register_sink_counters(&*self.obj(), |obj| {
            let stats = obj.imp().run.lock().as_ref()?.modbus.stats();
            Some(crate::defectmetricssink::SinkReading::Modbus {
                pulses: stats.fired,
                missed: stats.missed,
                queued: stats.pending as u64,
                connected: stats.connected,
            })
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        crate::defectmetricssink::unregister_sink_counters(&*self.obj()); // Metrics.
        if let Some(stats) = self.run.stop(|running| {
            let stats = running.modbus.stop();
            (stats, stats)
        }) {
            gst::info!(CAT, imp = self, "stopped: {stats:?}");
        }
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
        sink::render(self, buffer)
    }

    fn event(&self, event: gst::Event) -> bool {
        sink::part_event(self, &event);
        if let gst::EventView::Eos(_) = event.view() {
            self.drain();
        }
        self.parent_event(event)
    }
}

impl PlcSink for DefectModbusSink {
    type Running = Running;

    /// Keeps the model version in the status block, and acts on a complete decision.
    fn on_frame(&self, running: &mut Running, frame: FrameVerdict, decision: Option<Decision>) {
        let version = if frame.model_version.is_empty() {
            frame.model_id
        } else {
            frame.model_version
        };
        if version != running.model_version || frame.shadow != running.shadow {
            running.model_version = version;
            running.shadow = frame.shadow;
            let (version, shadow) = (running.model_version.clone(), running.shadow);
            running.modbus.update_status(|status| {
                status.model_version = version;
                status.shadow = shadow;
            });
        }
        if let Some(decision) = decision {
            self.act(running, decision);
        }
    }

    fn on_part(&self, running: &mut Running, _part: &PartVerdict, decision: Decision) {
        self.act(running, decision);
    }

    fn running(&self) -> &Mutex<Option<Running>> {
        self.run.state()
    }

    fn verdicts(running: &mut Running) -> &mut Verdicts {
        &mut running.verdicts
    }
}

impl DefectModbusSink {
    fn stats(&self) -> Stats {
        self.run.counters(|running| running.modbus.stats())
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
        let label = match &decision.part_id {
            Some(part) if running.verdicts.tracker.unit() == crate::plc::tracker::Unit::Part => {
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
        }
        // The reject is queued before the status block changes. Waking the worker for the
        // status first let it take the core (at once under realtime-priority) while this
        // thread had yet to queue the reject: a reject due at once waited for this thread to
        // run again, up to a scheduler time slice on a loaded machine.
        if reject {
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
        let counts = running.verdicts.tracker.counts();
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
    }

    /// At EOS: lets queued rejects fall due (or be missed) and the coil go off first. A coil
    /// left on with the PLC out of reach after `drain-timeout-ms` is an error, before the
    /// EOS goes on.
    fn drain(&self) {
        let (timeout, coil) = {
            let s = lock(&self.settings);
            (
                Duration::from_millis(s.drain_timeout_ms.into()),
                s.reject_coil,
            )
        };
        // Not under the lock: the properties stay readable meanwhile.
        let Some(modbus) = self.run.lock().as_ref().map(|r| r.modbus.clone()) else {
            return;
        };
        if modbus.wait_idle(timeout, || !self.flushing.load(Ordering::SeqCst)) {
            return;
        }
        let stats = modbus.stats();
        if stats.pending > 0 {
            gst::warning!(
                CAT,
                imp = self,
                "end of stream: rejects still queued after {} ms",
                timeout.as_millis()
            );
        }
        if stats.coil_on && !stats.connected {
            let target = {
                let s = lock(&self.settings);
                format!("{}:{}", s.host, s.port)
            };
            self.coil_stuck(
                &target,
                coil.min(u16::MAX.into()) as u16,
                &format!(
                    "the connection to the PLC was lost while it was on, and it is still lost \
                     after drain-timeout-ms ({} ms)",
                    timeout.as_millis()
                ),
            );
        }
    }

    /// The error that the reject coil may be left on (once a run).
    fn coil_stuck(&self, target: &str, coil: u16, reason: &str) {
        if self.coil_error.swap(true, Ordering::SeqCst) {
            return;
        }
        gst::element_imp_error!(
            self,
            gst::ResourceError::Write,
            ("The reject coil {coil} of the PLC at {target} may still be on: {reason}"),
            ["Check the reject output at the PLC; rejects meanwhile are counted in missed-rejects"]
        );
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
            Event::ConnectFailed(reason) => PLC.warn(self, target, Connection::Failed, &reason),
            Event::ConnectionLost(reason) => PLC.warn(self, target, Connection::Lost, &reason),
            Event::PriorityRefused { priority, reason } => gst::element_imp_warning!(
                self,
                gst::ResourceError::Settings,
                ("Cannot run the reject thread at real-time priority {priority}: {reason}"),
                ["It runs at normal priority: give the process CAP_SYS_NICE or an rtprio limit"]
            ),
            Event::Refused(message) => gst::element_imp_warning!(
                self,
                gst::ResourceError::Write,
                ("The PLC at {target} refused a write: {message}"),
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
            Event::CoilStuck { coil, reason } => self.coil_stuck(target, coil, &reason),
            Event::Failed(message) => gst::element_imp_error!(
                self,
                gst::ResourceError::Failed,
                ("The Modbus worker failed: {message}"),
                ["No reject can be fired any more"]
            ),
            Event::Missed { label, reason } => {
                gst::warning!(CAT, imp = self, "{label}: reject missed: {reason}");
                self.post(crate::meta::RejectMissedMessage { label, reason }.to_structure());
            }
        }
    }
}
