// SPDX-License-Identifier: MIT OR Apache-2.0
//! The OPC UA server of `defectopcuasink`: an `async-opcua` server on the plugin's shared
//! network runtime ([`crate::net::RUNTIME`]) with a small address space,
//!
//! ```text
//! Objects/Inspection/<source-id>/
//!     LastVerdict (String)  LastPartId (String)  LastDefects (String[])
//!     PassCount, FailCount, ReviewCount, UnknownCount, FrameCount (UInt64)
//!     FrameVerdict (String)  ModelVersion (String)  Heartbeat (UInt32)  ShadowMode (Boolean)
//! ```
//!
//! every node id a string, `ns=<index of NAMESPACE_URI>;s=Inspection/<source-id>/<Name>`.
//! Callers hand new values to [`OpcUaServer::update`], which only stores them and wakes the
//! server's update task (no network, no address-space lock on the caller's side); that task
//! writes them into the address space, which notifies the subscriptions, and increments the
//! heartbeat every second.
//!
//! **Connections are capped.** `async-opcua` accepts every connection it is offered (and
//! retries a failed `accept` at once), so the port clients see is ours: a gate accepts on
//! it, closes at once any connection beyond `max_connections`, and relays the others to the
//! server, which listens on a loopback port of its own. A flood of connections thus costs at
//! most three descriptors per admitted connection (the client's socket and both ends of the
//! loopback hop) and nothing per refused one; a failed `accept` (out of descriptors) is
//! retried after [`ACCEPT_RETRY`], never in a busy loop.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::task::{JoinHandle, JoinSet};

use opcua::crypto::SecurityPolicy;
use opcua::server::address_space::{AccessLevel, VariableBuilder};
use opcua::server::diagnostics::NamespaceMetadata;
use opcua::server::node_manager::memory::{SimpleNodeManager, simple_node_manager};
use opcua::server::{ANONYMOUS_USER_TOKEN_ID, ServerBuilder, ServerEndpoint, ServerHandle};
use opcua::types::{
    DataTypeId, DataValue, MessageSecurityMode, NodeId, ObjectId, UAString, Variant,
};

/// The namespace of the inspection nodes.
pub const NAMESPACE_URI: &str = "urn:gst-plugin-defect:inspection";

/// Connections served at once by default (the `max-connections` property).
pub const DEFAULT_MAX_CONNECTIONS: usize = 32;

/// Wait after a failed `accept` (say, the process is out of file descriptors).
pub const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// How clients must secure the channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Security {
    /// No signing, no encryption (for tests and closed networks).
    #[default]
    None,
    /// Basic256Sha256, signed.
    Sign,
    /// Basic256Sha256, signed and encrypted.
    SignAndEncrypt,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpcUaConfig {
    /// Address to listen on; `0.0.0.0` listens on every interface.
    pub host: String,
    /// 0 picks a free port.
    pub port: u16,
    /// Endpoint path, e.g. `/` or `/inspection`.
    pub path: String,
    pub source_id: String,
    pub security: Security,
    /// Certificate store (own/, private/, trusted/, rejected/); required unless
    /// `security` is `None`.
    pub pki_dir: Option<PathBuf>,
    /// Create a self-signed certificate and key in `pki_dir` when missing.
    pub create_certificate: bool,
    /// Accept any client certificate (else only those in `pki_dir/trusted/`).
    pub trust_client_certificates: bool,
    /// TCP connections served at once (at least 1); more are closed as they come.
    pub max_connections: usize,
}

/// The values of the address space.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Snapshot {
    pub last_verdict: String,
    pub last_part_id: String,
    pub last_defects: Vec<String>,
    pub pass: u64,
    pub fail: u64,
    pub review: u64,
    pub unknown: u64,
    pub frames: u64,
    pub frame_verdict: String,
    pub model_version: String,
    pub shadow: bool,
}

/// The variables, in this order: see [`variables`].
pub const VARIABLES: [&str; 12] = [
    "LastVerdict",
    "LastPartId",
    "LastDefects",
    "PassCount",
    "FailCount",
    "ReviewCount",
    "UnknownCount",
    "FrameCount",
    "FrameVerdict",
    "ModelVersion",
    "Heartbeat",
    "ShadowMode",
];

/// The string identifier of a variable's node.
pub fn node_name(source_id: &str, variable: &str) -> String {
    format!("Inspection/{source_id}/{variable}")
}

impl Snapshot {
    /// The values of every variable but the heartbeat, by name.
    fn values(&self) -> Vec<(&'static str, Variant)> {
        vec![
            ("LastVerdict", Variant::from(self.last_verdict.as_str())),
            ("LastPartId", Variant::from(self.last_part_id.as_str())),
            ("LastDefects", defects_variant(&self.last_defects)),
            ("PassCount", Variant::from(self.pass)),
            ("FailCount", Variant::from(self.fail)),
            ("ReviewCount", Variant::from(self.review)),
            ("UnknownCount", Variant::from(self.unknown)),
            ("FrameCount", Variant::from(self.frames)),
            ("FrameVerdict", Variant::from(self.frame_verdict.as_str())),
            ("ModelVersion", Variant::from(self.model_version.as_str())),
            ("ShadowMode", Variant::from(self.shadow)),
        ]
    }
}

fn defects_variant(defects: &[String]) -> Variant {
    Variant::from(
        defects
            .iter()
            .map(|d| UAString::from(d.as_str()))
            .collect::<Vec<_>>(),
    )
}

/// What is waiting for the update task.
#[derive(Default)]
struct Pending {
    snapshot: Option<Snapshot>,
}

struct Shared {
    pending: Mutex<Pending>,
    wake: tokio::sync::Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A running server; dropping it stops the server.
pub struct OpcUaServer {
    shared: Arc<Shared>,
    handle: ServerHandle,
    port: u16,
    endpoint: String,
    /// The server, its update task and the gate, on the shared runtime.
    tasks: Option<Tasks>,
    refused: Arc<AtomicU64>,
    /// The certificate store the server made for itself (security `None`), removed at stop.
    scratch_pki: Option<PathBuf>,
}

fn scratch_pki_dir() -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    std::env::temp_dir().join(format!(
        "gst-defect-opcua-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

fn has_certificate(pki: &Path) -> bool {
    pki.join("own/cert.der").is_file() && pki.join("private/private.pem").is_file()
}

impl OpcUaServer {
    /// Binds the port, builds the address space and starts the server on the shared runtime.
    pub fn start(config: &OpcUaConfig) -> Result<OpcUaServer, String> {
        let listener = TcpListener::bind((config.host.as_str(), config.port))
            .map_err(|e| format!("cannot listen on {}:{}: {e}", config.host, config.port))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        // The server's own port, reached only through the gate.
        let inner = TcpListener::bind(("127.0.0.1", 0))
            .map_err(|e| format!("cannot listen on a loopback port: {e}"))?;
        let inner_addr = inner.local_addr().map_err(|e| e.to_string())?;
        inner.set_nonblocking(true).map_err(|e| e.to_string())?;
        // The name clients are told to connect to.
        let advertised = if config.host == "0.0.0.0" || config.host == "::" {
            opcua::crypto::X509Data::computer_hostnames()
                .into_iter()
                .next()
                .unwrap_or_else(|| "localhost".into())
        } else {
            config.host.clone()
        };
        let path = if config.path.starts_with('/') {
            config.path.clone()
        } else {
            format!("/{}", config.path)
        };
        let endpoint = format!("opc.tcp://{advertised}:{port}{path}");

        let (scratch_pki, pki_dir) = match (&config.pki_dir, config.security) {
            (Some(dir), _) => (None, dir.clone()),
            (None, Security::None) => {
                let dir = scratch_pki_dir();
                (Some(dir.clone()), dir)
            }
            (None, _) => {
                return Err("a secure endpoint needs a certificate store (pki-dir)".into());
            }
        };
        let (policy, mode, id) = match config.security {
            Security::None => (SecurityPolicy::None, MessageSecurityMode::None, "none"),
            Security::Sign => (
                SecurityPolicy::Basic256Sha256,
                MessageSecurityMode::Sign,
                "basic256sha256_sign",
            ),
            Security::SignAndEncrypt => (
                SecurityPolicy::Basic256Sha256,
                MessageSecurityMode::SignAndEncrypt,
                "basic256sha256_sign_encrypt",
            ),
        };
        let namespace = NamespaceMetadata {
            namespace_uri: NAMESPACE_URI.to_owned(),
            ..Default::default()
        };
        // The server spawns its background tasks on the runtime it is built in.
        let enter = crate::net::RUNTIME.enter();
        let builder = ServerBuilder::new()
            .application_name("gst-plugin-defect inspection")
            .application_uri(format!("urn:gst-plugin-defect:{advertised}:{port}"))
            .product_uri("urn:gst-plugin-defect")
            .host(advertised.clone())
            .port(port)
            .pki_dir(&pki_dir)
            .create_sample_keypair(config.security != Security::None && config.create_certificate)
            .trust_client_certs(config.trust_client_certificates)
            .discovery_urls(vec![endpoint.clone()])
            .add_endpoint(
                id,
                ServerEndpoint::new(
                    path.as_str(),
                    policy,
                    mode,
                    &[ANONYMOUS_USER_TOKEN_ID.to_string()],
                ),
            )
            .default_endpoint(id)
            .diagnostics_enabled(false)
            .with_node_manager(simple_node_manager(namespace, "inspection"));
        let (server, handle) = builder.build()?;
        if config.security != Security::None && !has_certificate(&pki_dir) {
            handle.cancel();
            return Err(format!(
                "no certificate and private key in {} (own/cert.der, private/private.pem); \
                 put them there or set create-certificate",
                pki_dir.display()
            ));
        }
        let manager = handle
            .node_managers()
            .get_of_type::<SimpleNodeManager>()
            .ok_or("the inspection node manager is missing")?;
        let ns = handle
            .get_namespace_index(NAMESPACE_URI)
            .ok_or("the inspection namespace is missing")?;
        let ids = build_address_space(&manager, ns, &config.source_id);

        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            wake: tokio::sync::Notify::new(),
        });
        let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| e.to_string())?;
        let inner = tokio::net::TcpListener::from_std(inner).map_err(|e| e.to_string())?;
        drop(enter);
        let runtime = &crate::net::RUNTIME;
        let info = handle.info().clone();
        let server = runtime.spawn(async move {
            let _ = server.run_with(inner).await;
        });
        let updates = runtime.spawn(apply_updates(shared.clone(), handle.clone(), manager, ids));
        let refused = Arc::new(AtomicU64::new(0));
        let max = config.max_connections.max(1);
        let gate_refused = refused.clone();
        let gate = runtime.spawn(async move {
            // The server takes the port of the listener it is given for the endpoints it
            // describes: they must name the port clients connect to.
            for _ in 0..5000 {
                if info.port.swap(port, Ordering::SeqCst) == inner_addr.port() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            gate(listener, inner_addr, max, gate_refused).await
        });
        Ok(OpcUaServer {
            shared,
            handle,
            port,
            endpoint,
            tasks: Some(Tasks {
                server,
                updates,
                gate,
            }),
            refused,
            scratch_pki,
        })
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The endpoint URL clients connect to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// New values for the address space; returns at once.
    pub fn update(&self, snapshot: Snapshot) {
        self.shared.lock().snapshot = Some(snapshot);
        self.shared.wake.notify_one();
    }

    /// Connections closed at once because `max_connections` were open.
    pub fn refused_connections(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Closes the sessions and stops the server (waiting at most `timeout`).
    pub fn stop(mut self, timeout: Duration) {
        self.shutdown(timeout);
    }

    fn shutdown(&mut self, timeout: Duration) {
        let Some(tasks) = self.tasks.take() else {
            return;
        };
        // No new connection; the server closes its sessions, then the relays end.
        tasks.gate.abort();
        tasks.updates.abort();
        self.handle.cancel();
        let deadline = std::time::Instant::now() + timeout;
        while !tasks.server.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        tasks.server.abort();
        if let Some(dir) = self.scratch_pki.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Drop for OpcUaServer {
    fn drop(&mut self) {
        self.shutdown(Duration::from_secs(2));
    }
}

struct Tasks {
    server: JoinHandle<()>,
    updates: JoinHandle<()>,
    gate: JoinHandle<()>,
}

/// Accepts the clients' connections and relays at most `max` at a time to the server at
/// `inner`; the others are closed as they come (counted in `refused`). Aborting it closes
/// every connection it relays.
async fn gate(
    listener: tokio::net::TcpListener,
    inner: SocketAddr,
    max: usize,
    refused: Arc<AtomicU64>,
) {
    let mut relays = JoinSet::new();
    loop {
        tokio::select! {
            Some(_) = relays.join_next(), if !relays.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((client, _)) if relays.len() >= max => {
                    refused.fetch_add(1, Ordering::Relaxed);
                    drop(client);
                }
                Ok((client, _)) => {
                    relays.spawn(relay(client, inner));
                }
                // Out of descriptors, or the like: no busy loop.
                Err(_) => tokio::time::sleep(ACCEPT_RETRY).await,
            },
        }
    }
}

/// Relays one client connection to the server until either side closes it.
async fn relay(mut client: tokio::net::TcpStream, inner: SocketAddr) {
    let Ok(mut server) = tokio::net::TcpStream::connect(inner).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}

/// The node ids of the variables, in [`VARIABLES`] order.
struct Ids {
    variables: Vec<(&'static str, NodeId)>,
}

impl Ids {
    fn get(&self, name: &str) -> Option<&NodeId> {
        self.variables
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, id)| id)
    }
}

fn build_address_space(manager: &SimpleNodeManager, ns: u16, source_id: &str) -> Ids {
    let mut space = manager.address_space().write();
    let inspection = NodeId::new(ns, "Inspection");
    space.add_folder(
        &inspection,
        "Inspection",
        "Inspection",
        &ObjectId::ObjectsFolder.into(),
    );
    let source = NodeId::new(ns, format!("Inspection/{source_id}"));
    space.add_folder(&source, source_id, source_id, &inspection);
    let defaults = Snapshot::default();
    let mut initial: Vec<(&'static str, Variant)> = defaults.values();
    initial.push(("Heartbeat", Variant::from(0u32)));
    let mut variables = Vec::new();
    let mut built = Vec::new();
    for name in VARIABLES {
        let id = NodeId::new(ns, node_name(source_id, name));
        let value = initial
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let data_type = match name {
            "LastVerdict" | "LastPartId" | "LastDefects" | "FrameVerdict" | "ModelVersion" => {
                DataTypeId::String
            }
            "Heartbeat" => DataTypeId::UInt32,
            "ShadowMode" => DataTypeId::Boolean,
            _ => DataTypeId::UInt64,
        };
        let mut builder = VariableBuilder::new(&id, name, name)
            .data_type(data_type)
            .value(value)
            .access_level(AccessLevel::CURRENT_READ)
            .user_access_level(AccessLevel::CURRENT_READ);
        if name == "LastDefects" {
            builder = builder.value_rank(1).array_dimensions(&[0]);
        }
        built.push(builder.build());
        variables.push((name, id));
    }
    space.add_variables(built, &source);
    Ids { variables }
}

/// Writes each new snapshot into the address space, and the heartbeat every second.
async fn apply_updates(
    shared: Arc<Shared>,
    handle: ServerHandle,
    manager: Arc<SimpleNodeManager>,
    ids: Ids,
) {
    let mut heartbeat: u32 = 0;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut last: Option<Snapshot> = None;
    loop {
        tokio::select! {
            _ = shared.wake.notified() => {
                let Some(snapshot) = shared.lock().snapshot.take() else {
                    continue;
                };
                let old = last.as_ref().map(Snapshot::values);
                let values: Vec<(NodeId, DataValue)> = snapshot
                    .values()
                    .into_iter()
                    .filter(|(name, value)| {
                        old.as_ref()
                            .is_none_or(|old| !old.iter().any(|(n, v)| n == name && v == value))
                    })
                    .filter_map(|(name, value)| {
                        ids.get(name).map(|id| (id.clone(), DataValue::new_now(value)))
                    })
                    .collect();
                let _ = manager.set_values(
                    handle.subscriptions(),
                    values.iter().map(|(id, value)| (id, None, value.clone())),
                );
                last = Some(snapshot);
            }
            _ = tick.tick() => {
                heartbeat = heartbeat.wrapping_add(1);
                if let Some(id) = ids.get("Heartbeat") {
                    let _ = manager.set_value(
                        handle.subscriptions(),
                        id,
                        None,
                        DataValue::new_now(heartbeat),
                    );
                }
            }
        }
    }
}
