// SPDX-License-Identifier: MIT OR Apache-2.0
//! A blocking MQTT 3.1.1 connection for publishing, over TCP or TLS: [`connect`] opens it
//! (CONNECT / CONNACK) and hands back a reading and a writing half, so that one thread reads
//! while another writes.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use super::codec::{self, CodecError, Connect, ConnectReturnCode, Incoming};
use super::tls::{self, TlsReader, TlsWriter};

/// Incoming packets larger than this are a protocol error (a broker sends a publisher
/// packets of at most 4 bytes).
pub const MAX_INCOMING_PACKET: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("protocol error: {0}")]
    Codec(#[from] CodecError),
    #[error("cannot resolve {0}")]
    Resolve(String),
    #[error("broker refused the connection: {0}")]
    Refused(ConnectReturnCode),
    #[error("broker closed the connection")]
    Closed,
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    #[error("unexpected packet: {0}")]
    Unexpected(String),
    #[error("TLS: {0}")]
    Tls(String),
}

impl MqttError {
    /// A read that timed out (`set_read_timeout`), not a broken connection.
    pub fn is_timeout(&self) -> bool {
        matches!(self, MqttError::Io(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut))
    }
}

/// Resolves `host:port`, every address it names.
pub fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, MqttError> {
    let addresses: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| MqttError::Resolve(format!("{host}:{port} ({e})")))?
        .collect();
    if addresses.is_empty() {
        return Err(MqttError::Resolve(format!("{host}:{port}")));
    }
    Ok(addresses)
}

/// Where and how to connect.
#[derive(Clone)]
pub struct ConnectOptions {
    pub host: String,
    pub port: u16,
    pub connect: Connect,
    /// For each TCP connection attempt, the TLS handshake and the CONNACK.
    pub timeout: Duration,
    /// Once connected, a write blocked this long fails.
    pub write_timeout: Duration,
    /// TLS when set.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("client_id", &self.connect.client_id)
            .field("username", &self.connect.username)
            .field("timeout", &self.timeout)
            .field("write_timeout", &self.write_timeout)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

enum ReadHalf {
    Plain(TcpStream),
    Tls(TlsReader),
}

/// The reading half: buffers bytes until whole packets are there.
pub struct PacketReader {
    half: ReadHalf,
    buf: Vec<u8>,
}

impl std::fmt::Debug for PacketReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketReader")
            .field("buffered", &self.buf.len())
            .finish_non_exhaustive()
    }
}

impl PacketReader {
    /// The next packet; blocks as the socket's read timeout allows (a timeout is an
    /// [`MqttError::Io`] for which [`MqttError::is_timeout`] holds, and loses no data).
    pub fn read_packet(&mut self) -> Result<Incoming, MqttError> {
        loop {
            if let Some((packet, used)) = codec::decode(&self.buf, MAX_INCOMING_PACKET)? {
                self.buf.drain(..used);
                return Ok(packet);
            }
            let mut chunk = [0u8; 512];
            let read = match &mut self.half {
                ReadHalf::Plain(stream) => stream.read(&mut chunk),
                ReadHalf::Tls(stream) => stream.read(&mut chunk),
            };
            match read {
                Ok(0) => return Err(MqttError::Closed),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    pub fn set_timeout(&self, timeout: Option<Duration>) -> Result<(), MqttError> {
        match &self.half {
            ReadHalf::Plain(stream) => stream.set_read_timeout(timeout)?,
            ReadHalf::Tls(stream) => stream.set_read_timeout(timeout)?,
        }
        Ok(())
    }
}

enum WriteHalf {
    Plain(TcpStream),
    Tls(TlsWriter),
}

/// The writing half.
pub struct PacketWriter {
    half: WriteHalf,
}

impl std::fmt::Debug for PacketWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketWriter").finish_non_exhaustive()
    }
}

impl PacketWriter {
    /// Writes packets already encoded (several at once cost one system call).
    pub fn write_bytes(&mut self, bytes: &[u8]) -> Result<(), MqttError> {
        match &mut self.half {
            WriteHalf::Plain(stream) => stream.write_all(bytes)?,
            WriteHalf::Tls(stream) => stream.write_all(bytes)?,
        }
        Ok(())
    }

    /// Closes both directions, which wakes a reader blocked on the same socket.
    pub fn shutdown(&self) {
        match &self.half {
            WriteHalf::Plain(stream) => {
                let _ = stream.shutdown(Shutdown::Both);
            }
            WriteHalf::Tls(stream) => stream.shutdown(),
        }
    }

    /// Another handle on the socket, for shutting it down from elsewhere.
    pub fn try_clone_stream(&self) -> Result<TcpStream, MqttError> {
        Ok(match &self.half {
            WriteHalf::Plain(stream) => stream.try_clone()?,
            WriteHalf::Tls(stream) => stream.try_clone_stream()?,
        })
    }
}

/// Opens a TCP connection to `host:port` (each resolved address in turn, at most `timeout`
/// each), runs the TLS handshake when asked, sends CONNECT and waits at most `timeout` for
/// an accepting CONNACK. Returns the two halves (with the session-present flag); writes
/// then time out after `write_timeout`, reads block without limit.
pub fn connect(options: &ConnectOptions) -> Result<(PacketReader, PacketWriter, bool), MqttError> {
    let timeout = options.timeout.max(Duration::from_millis(1));
    let mut last_error = None;
    let mut stream = None;
    for address in resolve(&options.host, options.port)? {
        match TcpStream::connect_timeout(&address, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last_error = Some(e),
        }
    }
    let stream = match (stream, last_error) {
        (Some(s), _) => s,
        (None, Some(e)) => return Err(e.into()),
        (None, None) => {
            return Err(MqttError::Resolve(format!(
                "{}:{}",
                options.host, options.port
            )));
        }
    };
    stream.set_nodelay(true)?;
    stream.set_write_timeout(Some(timeout))?;
    stream.set_read_timeout(Some(timeout))?;
    let (half_r, half_w) = match &options.tls {
        None => (
            ReadHalf::Plain(stream.try_clone()?),
            WriteHalf::Plain(stream.try_clone()?),
        ),
        Some(config) => {
            let (r, w) = tls::handshake(config.clone(), &options.host, stream.try_clone()?)
                .map_err(|e| {
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) {
                        MqttError::Timeout("the TLS handshake")
                    } else {
                        MqttError::Tls(e.to_string())
                    }
                })?;
            (ReadHalf::Tls(r), WriteHalf::Tls(w))
        }
    };
    let mut reader = PacketReader {
        half: half_r,
        buf: Vec::new(),
    };
    let mut writer = PacketWriter { half: half_w };
    writer.write_bytes(&options.connect.to_bytes()?)?;
    let packet = reader.read_packet().map_err(|e| {
        if e.is_timeout() {
            MqttError::Timeout("CONNACK")
        } else {
            e
        }
    })?;
    let session_present = match packet {
        Incoming::ConnAck {
            code: ConnectReturnCode::Accepted,
            session_present,
        } => session_present,
        Incoming::ConnAck { code, .. } => return Err(MqttError::Refused(code)),
        other => return Err(MqttError::Unexpected(format!("{other:?} before CONNACK"))),
    };
    reader.set_timeout(None)?;
    stream.set_write_timeout(Some(options.write_timeout.max(Duration::from_millis(1))))?;
    Ok((reader, writer, session_present))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn options(port: u16, timeout: Duration) -> ConnectOptions {
        ConnectOptions {
            host: "127.0.0.1".into(),
            port,
            connect: Connect::new("unit", true, 5),
            timeout,
            write_timeout: timeout,
            tls: None,
        }
    }

    /// A one-shot fake broker speaking raw bytes: reads the CONNECT, answers `connack`,
    /// then answers each PINGREQ with PINGRESP until the end of the stream. Returns the
    /// bytes it read after the CONNECT.
    fn fake_broker(connack: [u8; 4]) -> (u16, std::thread::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut header = [0u8; 2];
            stream.read_exact(&mut header).unwrap();
            assert_eq!(header[0], 0x10, "CONNECT first");
            let mut body = vec![0; header[1] as usize];
            stream.read_exact(&mut body).unwrap();
            stream.write_all(&connack).unwrap();
            let mut seen = Vec::new();
            let mut byte = [0u8; 2];
            while stream.read_exact(&mut byte).is_ok() {
                seen.extend_from_slice(&byte);
                if byte == codec::PINGREQ {
                    stream.write_all(&[0xd0, 0]).unwrap();
                }
            }
            seen
        });
        (port, handle)
    }

    #[test]
    fn connects_pings_and_disconnects() {
        let (port, broker) = fake_broker([0x20, 2, 0, 0]);
        let (mut reader, mut writer, session) =
            connect(&options(port, Duration::from_secs(5))).unwrap();
        assert!(!session);
        writer.write_bytes(&codec::PINGREQ).unwrap();
        assert_eq!(reader.read_packet().unwrap(), Incoming::PingResp);
        reader.set_timeout(Some(Duration::from_millis(20))).unwrap();
        assert!(reader.read_packet().unwrap_err().is_timeout());
        writer.write_bytes(&codec::DISCONNECT).unwrap();
        writer.shutdown();
        assert_eq!(
            broker.join().unwrap(),
            [codec::PINGREQ, codec::DISCONNECT].concat()
        );
    }

    #[test]
    fn refusal_is_an_error() {
        let (port, broker) = fake_broker([0x20, 2, 0, 4]);
        let result = connect(&options(port, Duration::from_secs(5)));
        assert!(
            matches!(
                result,
                Err(MqttError::Refused(ConnectReturnCode::BadUsernameOrPassword))
            ),
            "{result:?}"
        );
        drop(result);
        broker.join().unwrap();
    }

    #[test]
    fn nothing_listening_is_an_io_error() {
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let result = connect(&options(port, Duration::from_secs(1)));
        assert!(matches!(result, Err(MqttError::Io(_))), "{result:?}");
    }

    #[test]
    fn a_ca_file_without_certificates_is_named() {
        let roots = std::env::temp_dir().join(format!("unit-ca-{}.pem", std::process::id()));
        std::fs::write(&roots, "not a certificate").unwrap();
        let error = tls::client_config(Some(&roots), None, None).unwrap_err();
        assert!(
            error.to_string().contains(&*roots.to_string_lossy()),
            "{error}"
        );
        let _ = std::fs::remove_file(&roots);
        let missing = std::path::Path::new("/nonexistent/ca.pem");
        let error = tls::client_config(Some(missing), None, None).unwrap_err();
        assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
    }
}
