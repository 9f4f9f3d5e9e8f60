// SPDX-License-Identifier: MIT OR Apache-2.0
//! TLS for the MQTT client (rustls with the *ring* provider): the client configuration
//! made from PEM files, and a TLS stream split in a reading and a writing half that two
//! threads use at once, as the plain TCP socket is.
//!
//! The halves share the rustls connection behind a mutex, held only to move bytes in or out
//! of it, never during a socket read; the socket writes of both halves go through a second
//! mutex, taken first, so that TLS records leave in the order they were made.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {reason}")]
    File { path: String, reason: String },
    #[error("{0} holds no PEM certificate")]
    NoCertificate(String),
    #[error("no trusted CA certificate: ca-file is not set and the system store is empty")]
    NoSystemRoots,
    #[error("{0}")]
    Config(String),
    #[error("cert-file and key-file go together (one is set without the other)")]
    HalfClientIdentity,
}

fn file_error(path: &Path, reason: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    // Read first: a missing file is then named as such, not as a PEM error.
    let pem = std::fs::read(path).map_err(|e| file_error(path, e))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.display().to_string()));
    }
    Ok(certs)
}

/// The client configuration: servers verified against the CA certificates of `ca_file`
/// (PEM), or the system's store without one; a client certificate and key (PEM) when both
/// `cert_file` and `key_file` are given.
pub fn client_config(
    ca_file: Option<&Path>,
    cert_file: Option<&Path>,
    key_file: Option<&Path>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in certificates(path)? {
                roots
                    .add(cert)
                    .map_err(|e| file_error(path, format!("not a usable CA certificate: {e}")))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(TlsError::NoSystemRoots);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots);
    let config = match (cert_file, key_file) {
        (Some(cert), Some(key)) => {
            let chain = certificates(cert)?;
            let pem = std::fs::read(key).map_err(|e| file_error(key, e))?;
            let key_der = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| file_error(key, e))?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| TlsError::Config(format!("client certificate and key: {e}")))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err(TlsError::HalfClientIdentity),
    };
    Ok(Arc::new(config))
}

/// The server name a certificate must match: a DNS name or an IP address.
pub fn server_name(host: &str) -> std::io::Result<ServerName<'static>> {
    ServerName::try_from(host.to_owned()).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("'{host}' is not a valid TLS server name: {e}"),
        )
    })
}

/// Runs the TLS handshake over `tcp` (blocking, as its timeouts allow).
pub fn handshake(
    config: Arc<ClientConfig>,
    host: &str,
    mut tcp: TcpStream,
) -> std::io::Result<(TlsReader, TlsWriter)> {
    let mut conn =
        ClientConnection::new(config, server_name(host)?).map_err(std::io::Error::other)?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)?;
    }
    let tcp_for_shutdown = tcp.try_clone()?;
    let shared = Arc::new(Shared {
        conn: Mutex::new(conn),
        socket: Mutex::new(tcp.try_clone()?),
    });
    Ok((
        TlsReader {
            tcp,
            shared: shared.clone(),
            cipher: Vec::new(),
        },
        TlsWriter {
            shared,
            raw: tcp_for_shutdown,
        },
    ))
}

struct Shared {
    conn: Mutex<ClientConnection>,
    /// The socket for writing; taken before `conn` by whoever writes.
    socket: Mutex<TcpStream>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The TLS records the connection has to send (data, alerts, key updates).
fn records(conn: &mut ClientConnection) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out)?;
    }
    Ok(out)
}

/// The reading half.
pub struct TlsReader {
    tcp: TcpStream,
    shared: Arc<Shared>,
    /// Bytes read from the socket that the connection has not taken yet.
    cipher: Vec<u8>,
}

impl std::fmt::Debug for TlsReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsReader").finish_non_exhaustive()
    }
}

impl TlsReader {
    pub fn set_read_timeout(&self, timeout: Option<std::time::Duration>) -> std::io::Result<()> {
        self.tcp.set_read_timeout(timeout)
    }
}

impl Read for TlsReader {
    /// Plain bytes; `Ok(0)` at the end of the stream. Blocks in the socket read only, with
    /// no lock held.
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let mut conn = lock(&self.shared.conn);
            match conn.reader().read(out) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if !self.cipher.is_empty() {
                let taken = conn.read_tls(&mut &self.cipher[..])?;
                self.cipher.drain(..taken);
                let state = conn.process_new_packets().map_err(std::io::Error::other);
                let reply = conn.wants_write();
                drop(conn);
                if reply {
                    // In the writers' order: socket, then connection.
                    let mut socket = lock(&self.shared.socket);
                    let bytes = records(&mut lock(&self.shared.conn))?;
                    socket.write_all(&bytes)?;
                }
                state?;
                continue;
            }
            drop(conn);
            let mut chunk = [0u8; 16 * 1024];
            match self.tcp.read(&mut chunk) {
                Ok(0) => return Ok(0),
                Ok(n) => self.cipher.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// The writing half.
pub struct TlsWriter {
    shared: Arc<Shared>,
    /// The socket, for shutting it without the lock (a write may hold it).
    raw: TcpStream,
}

impl std::fmt::Debug for TlsWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsWriter").finish_non_exhaustive()
    }
}

impl TlsWriter {
    /// Encrypts and writes all of `data`.
    pub fn write_all(&self, mut data: &[u8]) -> std::io::Result<()> {
        let mut socket = lock(&self.shared.socket);
        while !data.is_empty() {
            let bytes = {
                let mut conn = lock(&self.shared.conn);
                let n = conn.writer().write(data)?;
                data = &data[n..];
                records(&mut conn)?
            };
            if bytes.is_empty() && !data.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::WriteZero,
                    "the TLS connection takes no more data",
                ));
            }
            socket.write_all(&bytes)?;
        }
        Ok(())
    }

    /// Sends close_notify (best effort: not when a write is under way) and shuts the
    /// socket, which wakes the reader.
    pub fn shutdown(&self) {
        if let Ok(mut socket) = self.shared.socket.try_lock() {
            let bytes = {
                let mut conn = lock(&self.shared.conn);
                conn.send_close_notify();
                records(&mut conn).unwrap_or_default()
            };
            let _ = socket.set_write_timeout(Some(std::time::Duration::from_millis(100)));
            let _ = socket.write_all(&bytes);
        }
        let _ = self.raw.shutdown(Shutdown::Both);
    }

    /// Another handle on the socket, for shutting it down from elsewhere.
    pub fn try_clone_stream(&self) -> std::io::Result<TcpStream> {
        self.raw.try_clone()
    }
}
