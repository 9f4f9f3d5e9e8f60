// SPDX-License-Identifier: MIT OR Apache-2.0
//! The protocol peers of the PLC tests, started by the tests on 127.0.0.1: a Modbus TCP
//! server (`tests/peers/modbus_server.py`, pymodbus) that records every coil and register
//! write with its time, and an OPC UA client (`async-opcua`'s own).

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use super::common::repo_path;

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Now on CLOCK_MONOTONIC in microseconds: the clock of the Modbus peer's records.
pub fn now_us() -> i64 {
    gst::glib::monotonic_time()
}

/// The Python with pymodbus: `$DEFECT_TEST_PYTHON`, else the project's `.venv`.
fn python() -> PathBuf {
    std::env::var_os("DEFECT_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_path(".venv/bin/python"))
}

/// One write the Modbus peer handled.
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    pub t_us: i64,
    pub fc: u8,
    pub address: u16,
    pub values: Vec<serde_json::Value>,
}

/// A pulse of a coil: when it went on, when off (if it did).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pulse {
    pub on_us: i64,
    pub off_us: Option<i64>,
    /// Rejects the pulse carries: more than one when rejects fell due closer together than
    /// the pulse length and the sink merged them (it writes the coil on again, extending it).
    pub rejects: u32,
}

/// A pymodbus server child process; killed on drop.
pub struct ModbusPeer {
    pub port: u16,
    args: Vec<String>,
    child: Option<Child>,
    writes: Arc<Mutex<Vec<Write>>>,
    log: PathBuf,
}

impl ModbusPeer {
    pub fn start(extra: &[&str]) -> ModbusPeer {
        let port = free_port();
        let mut peer = ModbusPeer {
            port,
            args: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
            writes: Arc::new(Mutex::new(Vec::new())),
            log: std::env::temp_dir()
                .join(format!("defect-modbus-{}-{port}.log", std::process::id())),
        };
        peer.launch();
        peer
    }

    /// Starts the server (again) on the same port; returns once it accepts connections.
    pub fn launch(&mut self) {
        assert!(self.child.is_none());
        let log = std::fs::File::create(&self.log).unwrap();
        let mut child = Command::new(python())
            .arg(repo_path("tests/peers/modbus_server.py"))
            .args(["--port", &self.port.to_string()])
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {} (scripts/setup.sh makes .venv with pymodbus; or set \
                     DEFECT_TEST_PYTHON): {e}",
                    python().display()
                )
            });
        let stdout = child.stdout.take().unwrap();
        let writes = self.writes.clone();
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                if v.get("ready").is_some() {
                    let _ = ready_tx.send(());
                    continue;
                }
                writes.lock().unwrap().push(Write {
                    t_us: v["t_us"].as_i64().unwrap(),
                    fc: v["fc"].as_u64().unwrap() as u8,
                    address: v["address"].as_u64().unwrap() as u16,
                    values: v["values"].as_array().cloned().unwrap_or_default(),
                });
            }
        });
        self.child = Some(child);
        if ready_rx.recv_timeout(Duration::from_secs(30)).is_err() {
            self.kill();
            panic!(
                "the Modbus peer did not start on port {} (is pymodbus installed in {}? \
                 scripts/setup.sh installs it): {}",
                self.port,
                python().display(),
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn writes(&self) -> Vec<Write> {
        self.writes.lock().unwrap().clone()
    }

    /// The pulses of a coil, in time order.
    pub fn pulses(&self, coil: u16) -> Vec<Pulse> {
        let mut pulses: Vec<Pulse> = Vec::new();
        for w in self.writes() {
            if w.fc != 5 || w.address != coil {
                continue;
            }
            let on = w.values.first().and_then(|v| v.as_bool()).unwrap_or(false);
            match (on, pulses.last_mut()) {
                (true, Some(last)) if last.off_us.is_none() => last.rejects += 1,
                (true, _) => pulses.push(Pulse {
                    on_us: w.t_us,
                    off_us: None,
                    rejects: 1,
                }),
                (false, Some(last)) if last.off_us.is_none() => last.off_us = Some(w.t_us),
                (false, _) => {}
            }
        }
        pulses
    }

    /// The pulses of a coil once the last one has ended (its writes reach the test through
    /// the peer's output a little after the element saw them answered), waiting at most 3 s.
    pub fn ended_pulses(&self, coil: u16) -> Vec<Pulse> {
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        loop {
            let pulses = self.pulses(coil);
            if pulses.last().is_none_or(|p| p.off_us.is_some())
                || std::time::Instant::now() > deadline
            {
                return pulses;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The last status block written at `first` (function 16), as numbers.
    pub fn last_block(&self, first: u16) -> Option<Vec<u16>> {
        self.writes()
            .into_iter()
            .rev()
            .find(|w| w.fc == 16 && w.address == first)
            .map(|w| {
                w.values
                    .iter()
                    .map(|v| v.as_u64().unwrap() as u16)
                    .collect()
            })
    }
}

impl Drop for ModbusPeer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// An OPC UA client session on a runtime of its own.
pub struct OpcUaClient {
    pub runtime: tokio::runtime::Runtime,
    pub session: Arc<opcua::client::Session>,
    ns: u16,
    source_id: String,
    pki: PathBuf,
    /// Every data change received: (variable name, value).
    pub changes: Arc<Mutex<Vec<(String, opcua::types::Variant)>>>,
}

impl OpcUaClient {
    /// Connects to `url` with `policy` and `mode`; the client's own certificate (made on the
    /// fly) lives in a scratch directory, and the server's is trusted.
    pub fn connect(
        url: &str,
        source_id: &str,
        policy: opcua::crypto::SecurityPolicy,
        mode: opcua::types::MessageSecurityMode,
    ) -> Result<OpcUaClient, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let pki = std::env::temp_dir().join(format!(
            "defect-opcua-client-{}-{}",
            std::process::id(),
            free_port()
        ));
        let mut client = opcua::client::ClientBuilder::new()
            .application_name("gst-plugin-defect test client")
            .application_uri("urn:gst-plugin-defect:test-client")
            .product_uri("urn:gst-plugin-defect:test-client")
            .pki_dir(&pki)
            .create_sample_keypair(true)
            .trust_server_certs(true)
            .session_retry_limit(3)
            .client()
            .map_err(|e| e.join(", "))?;
        let session = runtime.block_on(async {
            let (session, event_loop) = client
                .connect_to_matching_endpoint(
                    (url, policy.to_str(), mode),
                    opcua::client::IdentityToken::Anonymous,
                )
                .await
                .map_err(|e| e.to_string())?;
            event_loop.spawn();
            tokio::time::timeout(Duration::from_secs(20), session.wait_for_connection())
                .await
                .map_err(|_| "no session within 20 s".to_string())?;
            Ok::<_, String>(session)
        })?;
        let ns = runtime
            .block_on(session.get_namespace_index(gstdefect::plc::opcua::NAMESPACE_URI))
            .map_err(|e| e.to_string())?;
        Ok(OpcUaClient {
            runtime,
            session,
            ns,
            source_id: source_id.to_owned(),
            pki,
            changes: Arc::new(Mutex::new(Vec::new())),
        })
    }

    /// The folder of the source's variables.
    pub fn folder(&self) -> opcua::types::NodeId {
        opcua::types::NodeId::new(self.ns, format!("Inspection/{}", self.source_id))
    }

    pub fn node(&self, name: &str) -> opcua::types::NodeId {
        opcua::types::NodeId::new(
            self.ns,
            gstdefect::plc::opcua::node_name(&self.source_id, name),
        )
    }

    /// Reads variables by name.
    pub fn read(&self, names: &[&str]) -> Vec<opcua::types::Variant> {
        let ids: Vec<_> = names
            .iter()
            .map(|n| opcua::types::ReadValueId {
                node_id: self.node(n),
                attribute_id: opcua::types::AttributeId::Value as u32,
                ..Default::default()
            })
            .collect();
        let values = self
            .runtime
            .block_on(
                self.session
                    .read(&ids, opcua::types::TimestampsToReturn::Neither, 0.0),
            )
            .expect("OPC UA read");
        values
            .into_iter()
            .zip(names)
            .map(|(v, n)| {
                assert!(
                    v.status.is_none_or(|s| s.is_good()),
                    "{n}: status {:?}",
                    v.status
                );
                v.value.unwrap_or_default()
            })
            .collect()
    }

    /// Subscribes to the changes of every variable of the address space.
    pub fn subscribe_all(&self) {
        let changes = self.changes.clone();
        let names: Vec<(opcua::types::NodeId, String)> = gstdefect::plc::opcua::VARIABLES
            .iter()
            .map(|n| (self.node(n), n.to_string()))
            .collect();
        let lookup = names.clone();
        let callback = opcua::client::DataChangeCallback::new(move |value, item| {
            let id = &item.item_to_monitor().node_id;
            if let Some((_, name)) = lookup.iter().find(|(n, _)| n == id) {
                changes
                    .lock()
                    .unwrap()
                    .push((name.clone(), value.value.unwrap_or_default()));
            }
        });
        self.runtime.block_on(async {
            let id = self
                .session
                .create_subscription(Duration::from_millis(100), 100, 20, 1000, 0, true, callback)
                .await
                .expect("create subscription");
            let items = names
                .into_iter()
                .map(|(node_id, _)| opcua::types::MonitoredItemCreateRequest {
                    item_to_monitor: opcua::types::ReadValueId {
                        node_id,
                        attribute_id: opcua::types::AttributeId::Value as u32,
                        ..Default::default()
                    },
                    monitoring_mode: opcua::types::MonitoringMode::Reporting,
                    requested_parameters: opcua::types::MonitoringParameters {
                        sampling_interval: 0.0,
                        queue_size: 100,
                        discard_oldest: true,
                        ..Default::default()
                    },
                })
                .collect();
            let created = self
                .session
                .create_monitored_items(id, opcua::types::TimestampsToReturn::Both, items)
                .await
                .expect("monitored items");
            for item in created {
                assert!(item.result.status_code.is_good(), "{:?}", item.result);
            }
        });
    }

    /// The values received for a variable, in order.
    pub fn changes_of(&self, name: &str) -> Vec<opcua::types::Variant> {
        self.changes
            .lock()
            .unwrap()
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub fn disconnect(self) {
        let _ = self.runtime.block_on(self.session.disconnect());
    }
}

impl Drop for OpcUaClient {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.pki);
    }
}

/// How a [`ScriptedPlc`] misbehaves.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlcScript {
    /// Answer every write of a coil off with Modbus exception 6 (server device busy).
    pub refuse_coil_off: bool,
    /// After answering the first write of a coil on: close the connection and accept none
    /// for this long (`Some(None)`: never again).
    pub drop_after_coil_on: Option<Option<Duration>>,
}

/// One coil write a [`ScriptedPlc`] answered: when, the coil, on or off, and whether it was
/// acknowledged (not refused with an exception).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CoilWrite {
    pub t_us: i64,
    pub coil: u16,
    pub on: bool,
    pub acknowledged: bool,
}

/// A Modbus TCP server written for the tests, for behaviours pymodbus cannot script: it
/// refuses writes with exceptions, or drops the connection right after a coil went on.
/// It answers function codes 3 (zeros), 5, 6 and 16; it stops when dropped.
pub struct ScriptedPlc {
    pub port: u16,
    coils: Arc<Mutex<Vec<CoilWrite>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ScriptedPlc {
    pub fn start(script: PlcScript) -> ScriptedPlc {
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let coils = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_coils, thread_stop) = (coils.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut listener = Some(listener);
            let mut dropped = false;
            while !thread_stop.load(Ordering::SeqCst) {
                let Some(l) = &listener else {
                    // Down: after the pause, the same port again (or never).
                    match script.drop_after_coil_on {
                        Some(Some(pause)) => {
                            std::thread::sleep(pause);
                            listener = Some(TcpListener::bind(("127.0.0.1", port)).unwrap());
                        }
                        _ => std::thread::sleep(Duration::from_millis(10)),
                    }
                    continue;
                };
                l.set_nonblocking(true).unwrap();
                let stream = match l.accept() {
                    Ok((stream, _)) => stream,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(2));
                        continue;
                    }
                };
                stream.set_nonblocking(false).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_millis(50)))
                    .unwrap();
                let drop_now = serve(stream, &script, !dropped, &thread_coils, &thread_stop);
                if drop_now {
                    dropped = true;
                    listener = None;
                }
            }
        });
        ScriptedPlc {
            port,
            coils,
            stop,
            thread: Some(thread),
        }
    }

    pub fn coil_writes(&self) -> Vec<CoilWrite> {
        self.coils.lock().unwrap().clone()
    }
}

impl Drop for ScriptedPlc {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Serves one connection; returns true when it was dropped by the script after a coil on.
fn serve(
    mut stream: std::net::TcpStream,
    script: &PlcScript,
    may_drop: bool,
    coils: &Mutex<Vec<CoilWrite>>,
    stop: &std::sync::atomic::AtomicBool,
) -> bool {
    use std::io::{Read, Write};
    let mut buf = Vec::new();
    let mut chunk = [0u8; 512];
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        match stream.read(&mut chunk) {
            Ok(0) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(_) => return false,
        }
        // Whole frames: MBAP header (7 bytes, length at 4..6 counting the unit id) and PDU.
        while buf.len() >= 7 {
            let len = u16::from_be_bytes([buf[4], buf[5]]) as usize;
            if buf.len() < 6 + len {
                break;
            }
            let frame: Vec<u8> = buf.drain(..6 + len).collect();
            let (header, pdu) = (&frame[..7], &frame[7..]);
            let word = |at: usize| u16::from_be_bytes([pdu[at], pdu[at + 1]]);
            let mut coil_on = false;
            let answer: Vec<u8> = match pdu[0] {
                5 => {
                    let (coil, on) = (word(1), word(3) == 0xFF00);
                    let refuse = !on && script.refuse_coil_off;
                    coils.lock().unwrap().push(CoilWrite {
                        t_us: now_us(),
                        coil,
                        on,
                        acknowledged: !refuse,
                    });
                    coil_on = on;
                    if refuse {
                        vec![0x85, 6]
                    } else {
                        pdu[..5].to_vec()
                    }
                }
                6 => pdu[..5].to_vec(),
                16 => pdu[..5].to_vec(),
                3 => {
                    let count = word(3) as usize;
                    let mut a = vec![3, (count * 2) as u8];
                    a.resize(2 + count * 2, 0);
                    a
                }
                fc => vec![fc | 0x80, 1],
            };
            let mut reply = header[..4].to_vec();
            reply.extend_from_slice(&((answer.len() + 1) as u16).to_be_bytes());
            reply.push(header[6]);
            reply.extend_from_slice(&answer);
            if stream.write_all(&reply).is_err() {
                return false;
            }
            if coil_on && may_drop && script.drop_after_coil_on.is_some() {
                let _ = stream.shutdown(std::net::Shutdown::Both);
                return true;
            }
        }
    }
    false
}
