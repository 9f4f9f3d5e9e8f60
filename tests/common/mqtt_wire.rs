// SPDX-License-Identifier: MIT OR Apache-2.0
//! The MQTT 3.1.1 wire code only the tests need: every packet a broker or a subscriber
//! sends or receives (the plugin's `gstdefect::mqtt::codec` holds only what a publisher
//! needs), and a small blocking client for subscribers and fake brokers.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

pub use gstdefect::mqtt::codec::{
    CodecError, Connect, ConnectReturnCode, PublishHeader, QoS, decode_remaining_length,
    encode_publish, encode_remaining_length, validate_topic_name,
};

/// Incoming packets larger than this are a protocol error.
pub const MAX_INCOMING_PACKET: usize = 64 << 20;

/// The protocol level of MQTT 3.1.1.
const PROTOCOL_LEVEL: u8 = 4;

/// A PUBLISH as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    pub topic: String,
    pub packet_id: Option<u16>,
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    Connect(Connect),
    ConnAck {
        session_present: bool,
        code: ConnectReturnCode,
    },
    Publish(Publish),
    PubAck {
        packet_id: u16,
    },
    Subscribe {
        packet_id: u16,
        /// Topic filters with their requested QoS.
        filters: Vec<(String, QoS)>,
    },
    SubAck {
        packet_id: u16,
        /// One per filter: the granted QoS (0, 1, 2) or 0x80 for a failure.
        codes: Vec<u8>,
    },
    PingReq,
    PingResp,
    Disconnect,
}

/// A topic filter a SUBSCRIBE may carry: `#` only as the last level, `+` only as a whole level.
pub fn validate_topic_filter(filter: &str) -> Result<(), CodecError> {
    if filter.is_empty() {
        return Err(CodecError::BadTopic("empty filter"));
    }
    if filter.contains('\0') {
        return Err(CodecError::BadString);
    }
    if filter.len() > u16::MAX as usize {
        return Err(CodecError::StringTooLong);
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
            return Err(CodecError::BadTopic("'#' not alone in the last level"));
        }
        if level.contains('+') && *level != "+" {
            return Err(CodecError::BadTopic("'+' not alone in its level"));
        }
    }
    Ok(())
}

fn put_u16(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(&value.to_be_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), CodecError> {
    let len = u16::try_from(bytes.len()).map_err(|_| CodecError::StringTooLong)?;
    put_u16(out, len);
    out.extend_from_slice(bytes);
    Ok(())
}

fn put_str(out: &mut Vec<u8>, s: &str) -> Result<(), CodecError> {
    if s.contains('\0') {
        return Err(CodecError::BadString);
    }
    put_bytes(out, s.as_bytes())
}

impl Packet {
    /// The packet type in the fixed header's high nibble.
    pub fn kind(&self) -> u8 {
        match self {
            Packet::Connect(_) => 1,
            Packet::ConnAck { .. } => 2,
            Packet::Publish(_) => 3,
            Packet::PubAck { .. } => 4,
            Packet::Subscribe { .. } => 8,
            Packet::SubAck { .. } => 9,
            Packet::PingReq => 12,
            Packet::PingResp => 13,
            Packet::Disconnect => 14,
        }
    }

    /// Appends the packet's bytes to `out`; on error `out` is left as it was.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let mut body = Vec::new();
        let mut flags = 0u8;
        match self {
            Packet::Connect(c) => {
                put_str(&mut body, "MQTT")?;
                body.push(PROTOCOL_LEVEL);
                if c.password.is_some() && c.username.is_none() {
                    return Err(CodecError::Malformed("password without user name"));
                }
                let connect_flags = (u8::from(c.username.is_some()) << 7)
                    | (u8::from(c.password.is_some()) << 6)
                    | (u8::from(c.clean_session) << 1);
                body.push(connect_flags);
                put_u16(&mut body, c.keepalive);
                put_str(&mut body, &c.client_id)?;
                if let Some(user) = &c.username {
                    put_str(&mut body, user)?;
                }
                if let Some(password) = &c.password {
                    put_bytes(&mut body, password)?;
                }
            }
            Packet::ConnAck {
                session_present,
                code,
            } => {
                body.push(u8::from(*session_present));
                body.push(*code as u8);
            }
            Packet::Publish(p) => {
                return encode_publish(
                    PublishHeader {
                        dup: p.dup,
                        qos: p.qos,
                        retain: p.retain,
                        packet_id: p.packet_id,
                    },
                    &p.topic,
                    &p.payload,
                    out,
                );
            }
            Packet::PubAck { packet_id } => {
                if *packet_id == 0 {
                    return Err(CodecError::Malformed("packet id 0"));
                }
                put_u16(&mut body, *packet_id);
            }
            Packet::Subscribe { packet_id, filters } => {
                if *packet_id == 0 {
                    return Err(CodecError::Malformed("packet id 0"));
                }
                if filters.is_empty() {
                    return Err(CodecError::Malformed("SUBSCRIBE without topic filters"));
                }
                flags = 0b0010;
                put_u16(&mut body, *packet_id);
                for (filter, qos) in filters {
                    validate_topic_filter(filter)?;
                    put_str(&mut body, filter)?;
                    body.push(*qos as u8);
                }
            }
            Packet::SubAck { packet_id, codes } => {
                if *packet_id == 0 {
                    return Err(CodecError::Malformed("packet id 0"));
                }
                if codes.iter().any(|&c| !matches!(c, 0 | 1 | 2 | 0x80)) {
                    return Err(CodecError::Malformed("invalid SUBACK return code"));
                }
                put_u16(&mut body, *packet_id);
                body.extend_from_slice(codes);
            }
            Packet::PingReq | Packet::PingResp | Packet::Disconnect => {}
        }
        let mut header = vec![(self.kind() << 4) | flags];
        encode_remaining_length(body.len(), &mut header)?;
        out.extend_from_slice(&header);
        out.extend_from_slice(&body);
        Ok(())
    }

    /// The packet's bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::new();
        self.encode(&mut out)?;
        Ok(out)
    }
}

/// A cursor over a packet's variable header and payload.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Result<u8, CodecError> {
        let (&first, rest) = self
            .buf
            .split_first()
            .ok_or(CodecError::Malformed("packet ends early"))?;
        self.buf = rest;
        Ok(first)
    }

    fn u16(&mut self) -> Result<u16, CodecError> {
        let bytes = self.take(2)?;
        Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.buf.len() < n {
            return Err(CodecError::Malformed("packet ends early"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn bytes(&mut self) -> Result<&'a [u8], CodecError> {
        let len = self.u16()? as usize;
        self.take(len)
    }

    fn string(&mut self) -> Result<String, CodecError> {
        let bytes = self.bytes()?;
        let s = std::str::from_utf8(bytes).map_err(|_| CodecError::BadString)?;
        if s.contains('\0') {
            return Err(CodecError::BadString);
        }
        Ok(s.to_owned())
    }

    fn packet_id(&mut self) -> Result<u16, CodecError> {
        match self.u16()? {
            0 => Err(CodecError::Malformed("packet id 0")),
            id => Ok(id),
        }
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    fn finish(&self) -> Result<(), CodecError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(CodecError::Malformed("trailing bytes"))
        }
    }
}

/// Decodes one packet from the start of `buf`. `Ok(Some((packet, used)))` when a whole
/// packet is there, `Ok(None)` when more bytes are needed, an error when the bytes cannot be
/// a packet or announce one larger than `max_packet` bytes (fixed header included).
pub fn decode(buf: &[u8], max_packet: usize) -> Result<Option<(Packet, usize)>, CodecError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let (kind, flags) = (first >> 4, first & 0x0f);
    if kind == 0 || kind == 15 {
        return Err(CodecError::ReservedType(kind));
    }
    let Some((len, varint)) = decode_remaining_length(&buf[1..])? else {
        return Ok(None);
    };
    let total = 1 + varint + len;
    if total > max_packet {
        return Err(CodecError::TooLarge(total, max_packet));
    }
    if buf.len() < total {
        return Ok(None);
    }
    let body = &buf[1 + varint..total];
    decode_body(kind, flags, body).map(|packet| Some((packet, total)))
}

fn decode_body(kind: u8, flags: u8, body: &[u8]) -> Result<Packet, CodecError> {
    let expect_flags = |wanted: u8| {
        if flags == wanted {
            Ok(())
        } else {
            Err(CodecError::BadFlags { kind, flags })
        }
    };
    let mut r = Reader { buf: body };
    let packet = match kind {
        1 => {
            expect_flags(0)?;
            if r.string()? != "MQTT" {
                return Err(CodecError::Malformed("protocol name is not MQTT"));
            }
            if r.u8()? != PROTOCOL_LEVEL {
                return Err(CodecError::Malformed("protocol level is not 4 (3.1.1)"));
            }
            let connect_flags = r.u8()?;
            if connect_flags & 0x01 != 0 {
                return Err(CodecError::Malformed("reserved CONNECT flag set"));
            }
            if connect_flags & 0x3c != 0 {
                return Err(CodecError::Malformed("will messages are not supported"));
            }
            let (has_user, has_password) = (connect_flags & 0x80 != 0, connect_flags & 0x40 != 0);
            if has_password && !has_user {
                return Err(CodecError::Malformed("password without user name"));
            }
            let keepalive = r.u16()?;
            let client_id = r.string()?;
            let username = if has_user { Some(r.string()?) } else { None };
            let password = if has_password {
                Some(r.bytes()?.to_vec())
            } else {
                None
            };
            Packet::Connect(Connect {
                client_id,
                clean_session: connect_flags & 0x02 != 0,
                keepalive,
                username,
                password,
            })
        }
        2 => {
            expect_flags(0)?;
            let ack_flags = r.u8()?;
            if ack_flags & 0xfe != 0 {
                return Err(CodecError::Malformed("reserved CONNACK flags set"));
            }
            let code = ConnectReturnCode::from_u8(r.u8()?)
                .ok_or(CodecError::Malformed("unknown CONNACK return code"))?;
            Packet::ConnAck {
                session_present: ack_flags & 0x01 != 0,
                code,
            }
        }
        3 => {
            let qos =
                QoS::from_u8((flags >> 1) & 0x03).ok_or(CodecError::BadFlags { kind, flags })?;
            let dup = flags & 0x08 != 0;
            if dup && qos == QoS::AtMostOnce {
                return Err(CodecError::BadFlags { kind, flags });
            }
            let topic = r.string()?;
            validate_topic_name(&topic)?;
            let packet_id = if qos == QoS::AtMostOnce {
                None
            } else {
                Some(r.packet_id()?)
            };
            Packet::Publish(Publish {
                dup,
                qos,
                retain: flags & 0x01 != 0,
                topic,
                packet_id,
                payload: r.rest().to_vec(),
            })
        }
        4 => {
            expect_flags(0)?;
            Packet::PubAck {
                packet_id: r.packet_id()?,
            }
        }
        8 => {
            expect_flags(0b0010)?;
            let packet_id = r.packet_id()?;
            let mut filters = Vec::new();
            while !r.buf.is_empty() {
                let filter = r.string()?;
                validate_topic_filter(&filter)?;
                let qos =
                    QoS::from_u8(r.u8()?).ok_or(CodecError::Malformed("invalid requested QoS"))?;
                filters.push((filter, qos));
            }
            if filters.is_empty() {
                return Err(CodecError::Malformed("SUBSCRIBE without topic filters"));
            }
            Packet::Subscribe { packet_id, filters }
        }
        9 => {
            expect_flags(0)?;
            let packet_id = r.packet_id()?;
            let codes = r.rest().to_vec();
            if codes.iter().any(|&c| !matches!(c, 0 | 1 | 2 | 0x80)) {
                return Err(CodecError::Malformed("invalid SUBACK return code"));
            }
            Packet::SubAck { packet_id, codes }
        }
        12 => {
            expect_flags(0)?;
            Packet::PingReq
        }
        13 => {
            expect_flags(0)?;
            Packet::PingResp
        }
        14 => {
            expect_flags(0)?;
            Packet::Disconnect
        }
        other => return Err(CodecError::Unexpected(other)),
    };
    r.finish()?;
    Ok(packet)
}

#[derive(Debug)]
pub enum MqttError {
    Io(std::io::Error),
    Codec(CodecError),
    Refused(ConnectReturnCode),
    Closed,
    Timeout(&'static str),
    Unexpected(String),
}

impl std::fmt::Display for MqttError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl From<std::io::Error> for MqttError {
    fn from(e: std::io::Error) -> Self {
        MqttError::Io(e)
    }
}

impl From<CodecError> for MqttError {
    fn from(e: CodecError) -> Self {
        MqttError::Codec(e)
    }
}

impl MqttError {
    pub fn is_timeout(&self) -> bool {
        matches!(self, MqttError::Io(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut))
    }
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
            if let Some((packet, used)) = decode(&self.buf, MAX_INCOMING_PACKET)? {
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
    /// Once connected, writes time out after 10 s and reads block without limit.
    pub fn connect(
        host: &str,
        port: u16,
        connect: &Connect,
        timeout: Duration,
    ) -> Result<Client, MqttError> {
        let timeout = timeout.max(Duration::from_millis(1));
        let mut last_error = None;
        let mut stream = None;
        let addresses: Vec<std::net::SocketAddr> =
            std::net::ToSocketAddrs::to_socket_addrs(&(host, port))?.collect();
        for address in addresses {
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
                return Err(MqttError::Unexpected(format!(
                    "cannot resolve {host}:{port}"
                )));
            }
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
            .set_write_timeout(Some(Duration::from_secs(10)))?;
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
        mut on_publish: impl FnMut(Publish),
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
