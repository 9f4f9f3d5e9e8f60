// SPDX-License-Identifier: MIT OR Apache-2.0
//! An MQTT 3.1.1 connection for publishing, over TCP or TLS (tokio-rustls), on tokio:
//! [`connect`] opens it (CONNECT / CONNACK) and hands back a reading and a writing half, so
//! that one task reads while another writes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::codec::{self, CodecError, Connect, ConnectReturnCode, Incoming};
use super::tls;

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

/// Resolves `host:port`, every address it names (an IP address is not looked up).
pub async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, MqttError> {
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
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
    /// For the name lookup, each TCP connection attempt, the TLS handshake and the CONNACK.
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

/// The reading half: buffers bytes until whole packets are there.
pub struct PacketReader {
    half: Box<dyn AsyncRead + Send + Unpin>,
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
    /// The next packet. Cancel-safe: given up while waiting (a timeout), it loses no byte.
    pub async fn read_packet(&mut self) -> Result<Incoming, MqttError> {
        loop {
            if let Some((packet, used)) = codec::decode(&self.buf, MAX_INCOMING_PACKET)? {
                self.buf.drain(..used);
                return Ok(packet);
            }
            let mut chunk = [0u8; 512];
            match self.half.read(&mut chunk).await {
                Ok(0) => return Err(MqttError::Closed),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// The writing half.
pub struct PacketWriter {
    half: Box<dyn AsyncWrite + Send + Unpin>,
    /// A write that takes longer fails.
    timeout: Duration,
}

impl std::fmt::Debug for PacketWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketWriter").finish_non_exhaustive()
    }
}

impl PacketWriter {
    /// Writes packets already encoded (several at once cost one system call). Fails when the
    /// broker takes nothing for the write timeout (a slow broker that keeps taking bytes
    /// does not).
    pub async fn write_bytes(&mut self, mut bytes: &[u8]) -> Result<(), MqttError> {
        let timed_out = || MqttError::Timeout("the broker to read");
        while !bytes.is_empty() {
            let written = tokio::time::timeout(self.timeout, self.half.write(bytes))
                .await
                .map_err(|_| timed_out())??;
            if written == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into());
            }
            bytes = &bytes[written..];
        }
        // TLS records may wait in the session otherwise.
        tokio::time::timeout(self.timeout, self.half.flush())
            .await
            .map_err(|_| timed_out())??;
        Ok(())
    }

    /// Closes the writing direction (TLS: close_notify first), waiting 100 ms at most.
    pub async fn shutdown(&mut self) {
        let _ = tokio::time::timeout(Duration::from_millis(100), self.half.shutdown()).await;
    }
}

/// A TCP connection to `host:port`: each resolved address in turn, at most `timeout` each.
async fn connect_tcp(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, MqttError> {
    let addresses = tokio::time::timeout(timeout, resolve(host, port))
        .await
        .map_err(|_| MqttError::Timeout("the name lookup"))??;
    let mut last_error = None;
    for address in addresses {
        match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => last_error = Some(e.into()),
            Err(_) => last_error = Some(MqttError::Timeout("the TCP connection")),
        }
    }
    Err(last_error.unwrap_or_else(|| MqttError::Resolve(format!("{host}:{port}"))))
}

/// Opens a TCP connection to `host:port` (each resolved address in turn, at most `timeout`
/// each), runs the TLS handshake when asked, sends CONNECT and waits at most `timeout` for
/// an accepting CONNACK. Returns the two halves (with the session-present flag); writes
/// then time out after `write_timeout`, reads wait without limit.
pub async fn connect(
    options: &ConnectOptions,
) -> Result<(PacketReader, PacketWriter, bool), MqttError> {
    let timeout = options.timeout.max(Duration::from_millis(1));
    let stream = connect_tcp(&options.host, options.port, timeout).await?;
    stream.set_nodelay(true)?;
    let (read, write): (
        Box<dyn AsyncRead + Send + Unpin>,
        Box<dyn AsyncWrite + Send + Unpin>,
    ) = match &options.tls {
        None => {
            let (read, write) = stream.into_split();
            (Box::new(read), Box::new(write))
        }
        Some(config) => {
            let name =
                tls::server_name(&options.host).map_err(|e| MqttError::Tls(e.to_string()))?;
            let handshake = tokio_rustls::TlsConnector::from(config.clone()).connect(name, stream);
            let stream = tokio::time::timeout(timeout, handshake)
                .await
                .map_err(|_| MqttError::Timeout("the TLS handshake"))?
                .map_err(|e| MqttError::Tls(e.to_string()))?;
            let (read, write) = tokio::io::split(stream);
            (Box::new(read), Box::new(write))
        }
    };
    let mut reader = PacketReader {
        half: read,
        buf: Vec::new(),
    };
    let mut writer = PacketWriter {
        half: write,
        timeout,
    };
    writer.write_bytes(&options.connect.to_bytes()?).await?;
    let packet = tokio::time::timeout(timeout, reader.read_packet())
        .await
        .map_err(|_| MqttError::Timeout("CONNACK"))??;
    let session_present = match packet {
        Incoming::ConnAck {
            code: ConnectReturnCode::Accepted,
            session_present,
        } => session_present,
        Incoming::ConnAck { code, .. } => return Err(MqttError::Refused(code)),
        other => return Err(MqttError::Unexpected(format!("{other:?} before CONNACK"))),
    };
    writer.timeout = options.write_timeout.max(Duration::from_millis(1));
    Ok((reader, writer, session_present))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::RUNTIME;
    use std::io::{Read, Write};
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
        RUNTIME.block_on(async {
            let (mut reader, mut writer, session) = connect(&options(port, Duration::from_secs(5)))
                .await
                .unwrap();
            assert!(!session);
            writer.write_bytes(&codec::PINGREQ).await.unwrap();
            assert_eq!(reader.read_packet().await.unwrap(), Incoming::PingResp);
            let nothing =
                tokio::time::timeout(Duration::from_millis(20), reader.read_packet()).await;
            assert!(nothing.is_err(), "{nothing:?}");
            writer.write_bytes(&codec::DISCONNECT).await.unwrap();
            writer.shutdown().await;
        });
        assert_eq!(
            broker.join().unwrap(),
            [codec::PINGREQ, codec::DISCONNECT].concat()
        );
    }

    #[test]
    fn refusal_is_an_error() {
        let (port, broker) = fake_broker([0x20, 2, 0, 4]);
        let result = RUNTIME.block_on(connect(&options(port, Duration::from_secs(5))));
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
        let result = RUNTIME.block_on(connect(&options(port, Duration::from_secs(1))));
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
