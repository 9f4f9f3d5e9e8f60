// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `defectopcuasink` element: verdicts in, an OPC UA address space out, through the
//! server of [`crate::plc::opcua`].

use std::path::PathBuf;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;

use super::SecurityMode;
use crate::element::{self, lock};
use crate::plc::PlcUnit;
use crate::plc::opcua::{DEFAULT_MAX_CONNECTIONS, OpcUaConfig, OpcUaServer, Security, Snapshot};
use crate::plc::sink::{self, PlcSink, Verdicts};
use crate::plc::tracker::Decision;
use crate::plc::verdict::{FrameVerdict, PartVerdict};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    element::debug_category("defectopcuasink", "Defect verdicts served over OPC UA")
});

element::subclass!(DefectOpcUaSink, "GstDefectOpcUaSink", gst_base::BaseSink, element::pads(&element::verdict_caps(), None) => "Defect OPC UA server sink", "Sink/Network", "Serves verdicts, counters, defects, model version and a heartbeat to SCADA/MES as an OPC UA server");

/// Longest wait for the server thread at stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
struct Settings {
    host: String,
    port: u32,
    endpoint_path: String,
    source_id: String,
    unit: PlcUnit,
    security_mode: SecurityMode,
    pki_dir: Option<String>,
    create_certificate: bool,
    trust_client_certificates: bool,
    max_connections: u32,
}

element::settings_properties!(Settings for DefectOpcUaSink {
    "host" => host,
    "port" => port,
    "endpoint-path" => endpoint_path,
    "source-id" => source_id,
    "unit" => unit,
    "security-mode" => security_mode,
    "pki-dir" => pki_dir,
    "create-certificate" => create_certificate,
    "trust-client-certificates" => trust_client_certificates,
    "max-connections" => max_connections,
});

pub struct Running {
    server: OpcUaServer,
    verdicts: Verdicts,
    snapshot: Snapshot,
}

impl Running {
    /// Counts a decision in the snapshot and serves it.
    fn apply(&mut self, decision: Decision) {
        let counts = self.verdicts.tracker.counts();
        let snapshot = &mut self.snapshot;
        snapshot.last_verdict = decision.verdict.as_str().to_owned();
        snapshot.last_part_id = decision.part_id.unwrap_or_default();
        snapshot.last_defects = decision.defects;
        snapshot.shadow = decision.shadow;
        snapshot.pass = counts.pass;
        snapshot.fail = counts.fail;
        snapshot.review = counts.review;
        snapshot.unknown = counts.unknown;
        snapshot.frames = counts.frames;
    }
}

#[derive(Default)]
pub struct DefectOpcUaSink {
    settings: Mutex<Settings>,
    running: Mutex<Option<Running>>,
    /// Port and endpoint URL while running (0 and empty otherwise).
    bound: Mutex<(u32, String)>,
}

impl ObjectImpl for DefectOpcUaSink {
    element::sink::constructed!(true);

    element::properties! {
        string("host", "Host", "127.0.0.1").mutable_ready(): "Address to listen on (0.0.0.0: every interface; the endpoints then name this machine's host name)",
        uint("port", "Port", 0..=u16::MAX.into(), 4840).mutable_ready(): "TCP port to listen on (0 = any free port, see bound-port)",
        string("endpoint-path", "Endpoint path", "/").mutable_ready(): "Path of the endpoint URL, e.g. / or /inspection",
        string("source-id", "Source id", "camera-0").mutable_ready(): "Names the camera or line: the folder Inspection/<source-id>",
        enumeration("unit", "Unit", PlcUnit::default()).mutable_ready(): "What LastVerdict and the counters are about: finished parts, or frames",
        enumeration("security-mode", "Security mode", SecurityMode::default()).mutable_ready(): "none, or Basic256Sha256 signed (sign) or signed and encrypted (sign-and-encrypt), with the certificates of pki-dir",
        string("pki-dir", "PKI directory").mutable_ready(): "Certificate store: own/cert.der, private/private.pem, trusted/ and rejected/ client certificates (needed unless security-mode=none)",
        boolean("create-certificate", "Create certificate", true).mutable_ready(): "Make a self-signed certificate and key in pki-dir when missing",
        boolean("trust-client-certificates", "Trust client certificates", false).mutable_ready(): "Accept any client certificate, not only those in pki-dir/trusted/ (for commissioning and tests)",
        uint("max-connections", "Maximum connections", 1..=1024, DEFAULT_MAX_CONNECTIONS as u32).mutable_ready(): "TCP connections served at once; more are closed as they come, so that a flood of connections never takes the file descriptors the rest of the pipeline needs (each served connection holds three)",
        uint("bound-port", "Bound port", 0..=u16::MAX.into()).read_only(): "The port the server listens on while running (0 when stopped)",
        string("endpoint-url", "Endpoint URL").read_only(): "The endpoint URL clients connect to, while running",
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        element::set_property(&self.settings, value, pspec);
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "bound-port" => lock(&self.bound).0.to_value(),
            "endpoint-url" => {
                let bound = lock(&self.bound);
                (!bound.1.is_empty()).then(|| bound.1.clone()).to_value()
            }
            _ => element::property(&self.settings, pspec),
        }
    }
}

impl BaseSinkImpl for DefectOpcUaSink {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let s = lock(&self.settings).clone();
        let port = element::sink::port(s.port)?;
        let config = OpcUaConfig {
            host: s.host.clone(),
            port,
            path: s.endpoint_path.clone(),
            source_id: s.source_id.clone(),
            security: match s.security_mode {
                SecurityMode::None => Security::None,
                SecurityMode::Sign => Security::Sign,
                SecurityMode::SignAndEncrypt => Security::SignAndEncrypt,
            },
            pki_dir: s.pki_dir.as_ref().map(PathBuf::from),
            create_certificate: s.create_certificate,
            trust_client_certificates: s.trust_client_certificates,
            max_connections: s.max_connections as usize,
        };
        let server = OpcUaServer::start(&config).map_err(|e| {
            gst::error_msg!(
                gst::ResourceError::OpenWrite,
                ("Cannot start the OPC UA server: {}", e)
            )
        })?;
        gst::info!(
            CAT,
            imp = self,
            "serving {} at {}",
            s.source_id,
            server.endpoint()
        );
        *lock(&self.bound) = (server.port().into(), server.endpoint().to_owned());
        *lock(&self.running) = Some(Running {
            server,
            verdicts: Verdicts::new(s.unit),
            snapshot: Snapshot::default(),
        });
        // Metrics (defectmetricssink): the decisions served, read at each scrape.
        crate::defectmetricssink::register_sink_counters(&*self.obj(), |obj| {
            let running = lock(&obj.imp().running);
            let s = &running.as_ref()?.snapshot;
            Some(crate::defectmetricssink::SinkReading::OpcUa {
                decisions: [s.pass, s.fail, s.review, s.unknown],
            })
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        crate::defectmetricssink::unregister_sink_counters(&*self.obj()); // Metrics.
        let running = lock(&self.running).take();
        if let Some(running) = running {
            let refused = running.server.refused_connections();
            if refused > 0 {
                gst::info!(
                    CAT,
                    imp = self,
                    "{refused} connections refused (max-connections)"
                );
            }
            running.server.stop(STOP_TIMEOUT);
        }
        *lock(&self.bound) = (0, String::new());
        Ok(())
    }

    fn render(&self, buffer: &gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        sink::render(self, buffer)
    }

    fn event(&self, event: gst::Event) -> bool {
        sink::part_event(self, &event);
        self.parent_event(event)
    }
}

impl PlcSink for DefectOpcUaSink {
    type Running = Running;

    /// Serves the frame's verdict, and the counters of a complete decision.
    fn on_frame(&self, running: &mut Running, frame: FrameVerdict, decision: Option<Decision>) {
        let snapshot = &mut running.snapshot;
        snapshot.frame_verdict = frame.verdict.as_str().to_owned();
        snapshot.model_version = frame.model_id;
        snapshot.shadow = frame.shadow;
        match decision {
            Some(decision) => running.apply(decision),
            None => snapshot.frames = running.verdicts.tracker.counts().frames,
        }
        running.server.update(running.snapshot.clone());
    }

    fn on_part(&self, running: &mut Running, part: &PartVerdict, decision: Decision) {
        gst::debug!(CAT, imp = self, "part {}: {:?}", part.part_id, part.verdict);
        running.apply(decision);
        running.server.update(running.snapshot.clone());
    }

    fn running(&self) -> &Mutex<Option<Running>> {
        &self.running
    }

    fn verdicts(running: &mut Running) -> &mut Verdicts {
        &mut running.verdicts
    }
}
