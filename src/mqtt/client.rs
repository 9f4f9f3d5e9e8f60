// SPDX-License-Identifier: MIT OR Apache-2.0
//! A small blocking MQTT 3.1.1 client over [`TcpStream`]: connect (CONNECT / CONNACK),
//! send packets, read packets, subscribe. The socket can be split into a reading and a
//! writing half ([`Client::split`]) so that one thread reads while another writes.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::codec::{self, CodecError, Connect, ConnectReturnCode, Packet, QoS};

/// Incoming packets larger than this are a protocol error (records are a few KiB).
pub const MAX_INCOMING_PACKET: usize = 16 << 20;

/// Once connected, a write blocked this long (a broker that stopped reading) fails.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

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

/// The reading half: buffers bytes until whole packets are there.
#[derive(Debug)]
pub struct PacketReader {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl PacketReader {
    pub fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            buf: Vec::with_capacity(4096),
        }
    }

    /// The next packet; blocks as the socket's read timeout allows (a timeout is an
    /// [`MqttError::Io`] for which [`MqttError::is_timeout`] holds, and loses no data).
    pub fn read_packet(&mut self) -> Result<Packet, MqttError> {
        loop {
            if let Some((packet, used)) = codec::decode(&self.buf, MAX_INCOMING_PACKET)? {
                self.buf.drain(..used);
                return Ok(packet);
            }
            let mut chunk = [0u8; 8192];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(MqttError::Closed),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    pub fn set_timeout(&self, timeout: Option<Duration>) -> Result<(), MqttError> {
        Ok(self.stream.set_read_timeout(timeout)?)
    }
}

/// The writing half.
#[derive(Debug)]
pub struct PacketWriter {
    stream: TcpStream,
}

impl PacketWriter {
    pub fn new(stream: TcpStream) -> Self {
        Self { stream }
    }

    pub fn send(&mut self, packet: &Packet) -> Result<(), MqttError> {
        let bytes = packet.to_bytes()?;
        self.write_bytes(&bytes)
    }

    /// Writes packets already encoded (several at once cost one system call).
    pub fn write_bytes(&mut self, bytes: &[u8]) -> Result<(), MqttError> {
        self.stream.write_all(bytes)?;
        Ok(())
    }

    /// Closes both directions, which wakes a reader blocked on the same socket.
    pub fn shutdown(&self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// Another handle on the socket, for shutting it down from elsewhere.
    pub fn try_clone_stream(&self) -> Result<TcpStream, MqttError> {
        Ok(self.stream.try_clone()?)
    }
}

/// A connected client.
#[derive(Debug)]
pub struct Client {
    reader: PacketReader,
    writer: PacketWriter,
    session_present: bool,
}

impl Client {
    /// Opens a TCP connection to `host:port` (each resolved address in turn, at most
    /// `timeout` each), sends CONNECT and waits at most `timeout` for an accepting CONNACK.
    /// Once connected, writes time out after [`WRITE_TIMEOUT`] and reads block without limit.
    pub fn connect(
        host: &str,
        port: u16,
        connect: &Connect,
        timeout: Duration,
    ) -> Result<Client, MqttError> {
        let timeout = timeout.max(Duration::from_millis(1));
        let mut last_error = None;
        let mut stream = None;
        for address in resolve(host, port)? {
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
            (None, None) => return Err(MqttError::Resolve(format!("{host}:{port}"))),
        };
        Self::handshake(stream, connect, timeout)
    }

    /// CONNECT / CONNACK over an open stream.
    pub fn handshake(
        stream: TcpStream,
        connect: &Connect,
        timeout: Duration,
    ) -> Result<Client, MqttError> {
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_read_timeout(Some(timeout))?;
        let mut client = Client {
            reader: PacketReader::new(stream.try_clone()?),
            writer: PacketWriter::new(stream),
            session_present: false,
        };
        client.send(&Packet::Connect(connect.clone()))?;
        let packet = client.reader.read_packet().map_err(|e| {
            if e.is_timeout() {
                MqttError::Timeout("CONNACK")
            } else {
                e
            }
        })?;
        match packet {
            Packet::ConnAck {
                code: ConnectReturnCode::Accepted,
                session_present,
            } => client.session_present = session_present,
            Packet::ConnAck { code, .. } => return Err(MqttError::Refused(code)),
            other => return Err(MqttError::Unexpected(format!("{other:?} before CONNACK"))),
        }
        client.reader.set_timeout(None)?;
        client
            .writer
            .stream
            .set_write_timeout(Some(WRITE_TIMEOUT))?;
        Ok(client)
    }

    /// Whether the broker kept a session for this client id (clean session off).
    pub fn session_present(&self) -> bool {
        self.session_present
    }

    pub fn send(&mut self, packet: &Packet) -> Result<(), MqttError> {
        self.writer.send(packet)
    }

    /// The next packet, waiting as the read timeout allows.
    pub fn read_packet(&mut self) -> Result<Packet, MqttError> {
        self.reader.read_packet()
    }

    /// The next packet within `timeout`, `Ok(None)` when none came.
    pub fn read_packet_timeout(&mut self, timeout: Duration) -> Result<Option<Packet>, MqttError> {
        self.reader
            .set_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        match self.reader.read_packet() {
            Ok(packet) => Ok(Some(packet)),
            Err(e) if e.is_timeout() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Subscribes and waits at most `timeout` for the SUBACK; returns its codes. PUBLISH
    /// packets that arrive first are handed to `on_publish`.
    pub fn subscribe(
        &mut self,
        packet_id: u16,
        filters: &[(&str, QoS)],
        timeout: Duration,
        mut on_publish: impl FnMut(codec::Publish),
    ) -> Result<Vec<u8>, MqttError> {
        self.send(&Packet::Subscribe {
            packet_id,
            filters: filters.iter().map(|(f, q)| ((*f).to_owned(), *q)).collect(),
        })?;
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(MqttError::Timeout("SUBACK"));
            }
            match self.read_packet_timeout(left)? {
                Some(Packet::SubAck {
                    packet_id: id,
                    codes,
                }) if id == packet_id => return Ok(codes),
                Some(Packet::Publish(p)) => on_publish(p),
                Some(_) | None => {}
            }
        }
    }

    /// Sends DISCONNECT (errors ignored) and closes the socket.
    pub fn disconnect(mut self) {
        let _ = self.send(&Packet::Disconnect);
        self.writer.shutdown();
    }

    /// The two halves, for a reader thread and a writer thread.
    pub fn split(self) -> (PacketReader, PacketWriter) {
        (self.reader, self.writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A one-shot fake broker: answers CONNECT with `code`, then echoes PINGREQ.
    fn fake_broker(code: ConnectReturnCode) -> (u16, std::thread::JoinHandle<Vec<Packet>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = PacketReader::new(stream.try_clone().unwrap());
            let mut writer = PacketWriter::new(stream);
            let mut seen = Vec::new();
            while let Ok(packet) = reader.read_packet() {
                seen.push(packet.clone());
                let reply = match packet {
                    Packet::Connect(_) => Packet::ConnAck {
                        session_present: false,
                        code,
                    },
                    Packet::PingReq => Packet::PingResp,
                    Packet::Disconnect => break,
                    _ => continue,
                };
                if writer.send(&reply).is_err() {
                    break;
                }
            }
            seen
        });
        (port, handle)
    }

    #[test]
    fn connects_pings_and_disconnects() {
        let (port, broker) = fake_broker(ConnectReturnCode::Accepted);
        let connect = Connect::new("unit", true, 5);
        let mut client =
            Client::connect("127.0.0.1", port, &connect, Duration::from_secs(5)).unwrap();
        client.send(&Packet::PingReq).unwrap();
        assert_eq!(
            client.read_packet_timeout(Duration::from_secs(5)).unwrap(),
            Some(Packet::PingResp)
        );
        assert_eq!(
            client
                .read_packet_timeout(Duration::from_millis(20))
                .unwrap(),
            None
        );
        client.disconnect();
        let seen = broker.join().unwrap();
        assert_eq!(
            seen,
            [
                Packet::Connect(connect),
                Packet::PingReq,
                Packet::Disconnect
            ]
        );
    }

    #[test]
    fn refusal_is_an_error() {
        let (port, broker) = fake_broker(ConnectReturnCode::IdentifierRejected);
        let result = Client::connect(
            "127.0.0.1",
            port,
            &Connect::new("unit", true, 5),
            Duration::from_secs(5),
        );
        assert!(
            matches!(
                result,
                Err(MqttError::Refused(ConnectReturnCode::IdentifierRejected))
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
        let result = Client::connect(
            "127.0.0.1",
            port,
            &Connect::new("unit", true, 5),
            Duration::from_secs(1),
        );
        assert!(matches!(result, Err(MqttError::Io(_))), "{result:?}");
    }
}
