// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `defectopcuasink` element: verdicts in, an OPC UA address space out, through the
//! server of [`crate::plc::opcua`].

use std::path::PathBuf;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;

use super::SecurityMode;
use crate::element::{self, lock};
use crate::plc::PlcUnit;
use crate::plc::opcua::{OpcUaConfig, OpcUaServer, Security, Snapshot};
use crate::plc::tracker::{Decision, Tracker};
use crate::plc::verdict;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    element::debug_category("defectopcuasink", "Defect verdicts served over OPC UA")
});

const DEFAULT_HOST: &str = "127.0.0.1";
const DEFAULT_PORT: u32 = 4840;
const DEFAULT_ENDPOINT_PATH: &str = "/";
const DEFAULT_SOURCE_ID: &str = "camera-0";
const DEFAULT_CREATE_CERTIFICATE: bool = true;
const DEFAULT_TRUST_CLIENT_CERTIFICATES: bool = false;
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
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            host: DEFAULT_HOST.into(),
            port: DEFAULT_PORT,
            endpoint_path: DEFAULT_ENDPOINT_PATH.into(),
            source_id: DEFAULT_SOURCE_ID.into(),
            unit: PlcUnit::default(),
            security_mode: SecurityMode::default(),
            pki_dir: None,
            create_certificate: DEFAULT_CREATE_CERTIFICATE,
            trust_client_certificates: DEFAULT_TRUST_CLIENT_CERTIFICATES,
        }
    }
}

struct Running {
    server: OpcUaServer,
    tracker: Tracker,
    snapshot: Snapshot,
    warned_no_meta: bool,
}

#[derive(Default)]
pub struct DefectOpcUaSink {
    settings: Mutex<Settings>,
    running: Mutex<Option<Running>>,
    /// Port and endpoint URL while running (0 and empty otherwise).
    bound: Mutex<(u32, String)>,
}

element::subclass!(DefectOpcUaSink, "GstDefectOpcUaSink", gst_base::BaseSink);

impl ObjectImpl for DefectOpcUaSink {
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
                    .blurb(
                        "Address to listen on (0.0.0.0: every interface; the endpoints then \
                         name this machine's host name)",
                    )
                    .default_value(Some(DEFAULT_HOST))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("port")
                    .nick("Port")
                    .blurb("TCP port to listen on (0 = any free port, see bound-port)")
                    .maximum(u16::MAX.into())
                    .default_value(DEFAULT_PORT)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("endpoint-path")
                    .nick("Endpoint path")
                    .blurb("Path of the endpoint URL, e.g. / or /inspection")
                    .default_value(Some(DEFAULT_ENDPOINT_PATH))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("source-id")
                    .nick("Source id")
                    .blurb("Names the camera or line: the folder Inspection/<source-id>")
                    .default_value(Some(DEFAULT_SOURCE_ID))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("unit", PlcUnit::default())
                    .nick("Unit")
                    .blurb("What LastVerdict and the counters are about: finished parts, or frames")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("security-mode", SecurityMode::default())
                    .nick("Security mode")
                    .blurb(
                        "none, or Basic256Sha256 signed (sign) or signed and encrypted \
                         (sign-and-encrypt), with the certificates of pki-dir",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("pki-dir")
                    .nick("PKI directory")
                    .blurb(
                        "Certificate store: own/cert.der, private/private.pem, trusted/ and \
                         rejected/ client certificates (needed unless security-mode=none)",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("create-certificate")
                    .nick("Create certificate")
                    .blurb("Make a self-signed certificate and key in pki-dir when missing")
                    .default_value(DEFAULT_CREATE_CERTIFICATE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("trust-client-certificates")
                    .nick("Trust client certificates")
                    .blurb(
                        "Accept any client certificate, not only those in pki-dir/trusted/ \
                         (for commissioning and tests)",
                    )
                    .default_value(DEFAULT_TRUST_CLIENT_CERTIFICATES)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("bound-port")
                    .nick("Bound port")
                    .blurb("The port the server listens on while running (0 when stopped)")
                    .maximum(u16::MAX.into())
                    .read_only()
                    .build(),
                glib::ParamSpecString::builder("endpoint-url")
                    .nick("Endpoint URL")
                    .blurb("The endpoint URL clients connect to, while running")
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = lock(&self.settings);
        let text = || value.get::<Option<String>>().ok().flatten();
        match pspec.name() {
            "host" => s.host = text().unwrap_or_else(|| DEFAULT_HOST.into()),
            "port" => s.port = value.get().unwrap_or(DEFAULT_PORT),
            "endpoint-path" => {
                s.endpoint_path = text().unwrap_or_else(|| DEFAULT_ENDPOINT_PATH.into())
            }
            "source-id" => s.source_id = text().unwrap_or_else(|| DEFAULT_SOURCE_ID.into()),
            "unit" => s.unit = value.get().unwrap_or_default(),
            "security-mode" => s.security_mode = value.get().unwrap_or_default(),
            "pki-dir" => s.pki_dir = text().filter(|t| !t.is_empty()),
            "create-certificate" => {
                s.create_certificate = value.get().unwrap_or(DEFAULT_CREATE_CERTIFICATE)
            }
            "trust-client-certificates" => {
                s.trust_client_certificates =
                    value.get().unwrap_or(DEFAULT_TRUST_CLIENT_CERTIFICATES)
            }
            other => gst::warning!(CAT, imp = self, "unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "bound-port" => return lock(&self.bound).0.to_value(),
            "endpoint-url" => {
                let bound = lock(&self.bound);
                return (!bound.1.is_empty()).then(|| bound.1.clone()).to_value();
            }
            _ => {}
        }
        let s = lock(&self.settings);
        match pspec.name() {
            "host" => s.host.to_value(),
            "port" => s.port.to_value(),
            "endpoint-path" => s.endpoint_path.to_value(),
            "source-id" => s.source_id.to_value(),
            "unit" => s.unit.to_value(),
            "security-mode" => s.security_mode.to_value(),
            "pki-dir" => s.pki_dir.to_value(),
            "create-certificate" => s.create_certificate.to_value(),
            "trust-client-certificates" => s.trust_client_certificates.to_value(),
            _ => unimplemented!(),
        }
    }
}

impl ElementImpl for DefectOpcUaSink {
    element::describe!(element::pads(&element::any_video_caps(), None) =>
        "Defect OPC UA server sink", "Sink/Network",
        "Serves verdicts, counters, defects, model version and a heartbeat to SCADA/MES as an OPC UA server");
}

impl BaseSinkImpl for DefectOpcUaSink {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let s = lock(&self.settings).clone();
        let port = u16::try_from(s.port).map_err(|_| {
            gst::error_msg!(gst::LibraryError::Settings, ["Invalid port {}", s.port])
        })?;
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
            tracker: Tracker::new(s.unit.into()),
            snapshot: Snapshot::default(),
            warned_no_meta: false,
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        let running = lock(&self.running).take();
        if let Some(running) = running {
            running.server.stop(STOP_TIMEOUT);
        }
        *lock(&self.bound) = (0, String::new());
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
        let decision = running.tracker.frame(&frame, seen);
        let snapshot = &mut running.snapshot;
        snapshot.frame_verdict = frame.verdict.as_str().to_owned();
        snapshot.model_version.clone_from(&frame.model_id);
        snapshot.shadow = frame.shadow;
        if let Some(decision) = decision {
            apply(snapshot, &running.tracker, decision);
        } else {
            snapshot.frames = running.tracker.counts().frames;
        }
        running.server.update(running.snapshot.clone());
        Ok(gst::FlowSuccess::Ok)
    }

    fn event(&self, event: gst::Event) -> bool {
        if let gst::EventView::CustomDownstream(custom) = event.view()
            && let Some(part) = custom
                .structure()
                .and_then(|s| verdict::part_verdict_or_warn(&*self.obj(), s))
        {
            let now = Instant::now();
            if let Some(running) = lock(&self.running).as_mut()
                && let Some(decision) = running.tracker.part(&part, now)
            {
                gst::debug!(CAT, imp = self, "part {}: {:?}", part.part_id, part.verdict);
                apply(&mut running.snapshot, &running.tracker, decision);
                running.server.update(running.snapshot.clone());
            }
        }
        self.parent_event(event)
    }
}

fn apply(snapshot: &mut Snapshot, tracker: &Tracker, decision: Decision) {
    let counts = tracker.counts();
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
