// SPDX-License-Identifier: MIT OR Apache-2.0
//! MQTT 3.1.1 packets to and from bytes: CONNECT, CONNACK, PUBLISH (QoS 0, 1 and 2 as
//! data), PUBACK, SUBSCRIBE, SUBACK, PINGREQ, PINGRESP and DISCONNECT.
//!
//! [`decode`] takes the bytes read so far and answers with a packet and how many bytes it
//! used, `Ok(None)` when the packet is not complete yet, or an error for bytes that cannot
//! be a valid packet. It never panics, whatever the input.

/// The largest remaining length the four-byte varint can carry (256 MiB - 1).
pub const MAX_REMAINING_LENGTH: usize = 268_435_455;

/// The protocol level of MQTT 3.1.1.
pub const PROTOCOL_LEVEL: u8 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QoS {
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

impl QoS {
    pub fn from_u8(value: u8) -> Option<QoS> {
        match value {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
}

/// CONNECT. Will messages are not supported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    pub client_id: String,
    pub clean_session: bool,
    /// Seconds; 0 turns the keep-alive mechanism off.
    pub keepalive: u16,
    pub username: Option<String>,
    pub password: Option<Vec<u8>>,
}

impl Connect {
    pub fn new(client_id: impl Into<String>, clean_session: bool, keepalive: u16) -> Self {
        Self {
            client_id: client_id.into(),
            clean_session,
            keepalive,
            username: None,
            password: None,
        }
    }
}

/// The CONNACK return code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectReturnCode {
    Accepted = 0,
    UnacceptableProtocolVersion = 1,
    IdentifierRejected = 2,
    ServerUnavailable = 3,
    BadUsernameOrPassword = 4,
    NotAuthorized = 5,
}

impl ConnectReturnCode {
    pub fn from_u8(value: u8) -> Option<Self> {
        Some(match value {
            0 => Self::Accepted,
            1 => Self::UnacceptableProtocolVersion,
            2 => Self::IdentifierRejected,
            3 => Self::ServerUnavailable,
            4 => Self::BadUsernameOrPassword,
            5 => Self::NotAuthorized,
            _ => return None,
        })
    }
}

impl std::fmt::Display for ConnectReturnCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Accepted => "connection accepted",
            Self::UnacceptableProtocolVersion => "unacceptable protocol version",
            Self::IdentifierRejected => "client identifier rejected",
            Self::ServerUnavailable => "server unavailable",
            Self::BadUsernameOrPassword => "bad user name or password",
            Self::NotAuthorized => "not authorized",
        })
    }
}

/// PUBLISH. `packet_id` is `Some` exactly when `qos` is above 0.
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

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("remaining length longer than four bytes")]
    BadRemainingLength,
    #[error("packet of {0} bytes is larger than the limit of {1}")]
    TooLarge(usize, usize),
    #[error("reserved packet type {0}")]
    ReservedType(u8),
    #[error("unsupported packet type {0}")]
    Unsupported(u8),
    #[error("invalid flags {flags:#06b} for packet type {kind}")]
    BadFlags { kind: u8, flags: u8 },
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
    #[error("string is not UTF-8 or holds U+0000")]
    BadString,
    #[error("string or payload longer than 65535 bytes")]
    StringTooLong,
    #[error("invalid topic: {0}")]
    BadTopic(&'static str),
}

/// Appends the remaining-length varint of `len`.
pub fn encode_remaining_length(len: usize, out: &mut Vec<u8>) -> Result<(), CodecError> {
    if len > MAX_REMAINING_LENGTH {
        return Err(CodecError::TooLarge(len, MAX_REMAINING_LENGTH));
    }
    let mut value = len;
    loop {
        let mut byte = (value % 128) as u8;
        value /= 128;
        if value > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if value == 0 {
            return Ok(());
        }
    }
}

/// Reads a remaining-length varint: `Ok(Some((value, bytes used)))`, `Ok(None)` when more
/// bytes are needed.
pub fn decode_remaining_length(buf: &[u8]) -> Result<Option<(usize, usize)>, CodecError> {
    let mut value = 0usize;
    for (i, &byte) in buf.iter().enumerate() {
        if i == 4 {
            return Err(CodecError::BadRemainingLength);
        }
        value += ((byte & 0x7f) as usize) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    if buf.len() >= 4 {
        Err(CodecError::BadRemainingLength)
    } else {
        Ok(None)
    }
}

/// A topic name a PUBLISH may carry: non-empty, no wildcards, no U+0000, at most 65535 bytes.
pub fn validate_topic_name(topic: &str) -> Result<(), CodecError> {
    if topic.is_empty() {
        Err(CodecError::BadTopic("empty"))
    } else if topic.contains(['+', '#']) {
        Err(CodecError::BadTopic("wildcards in a topic name"))
    } else if topic.contains('\0') {
        Err(CodecError::BadString)
    } else if topic.len() > u16::MAX as usize {
        Err(CodecError::StringTooLong)
    } else {
        Ok(())
    }
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

/// The flags and packet id of a PUBLISH, for [`encode_publish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishHeader {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    pub packet_id: Option<u16>,
}

/// Appends a PUBLISH made of borrowed parts (no copy of the payload beyond `out`); on
/// error `out` is left as it was.
pub fn encode_publish(
    header: PublishHeader,
    topic: &str,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    validate_topic_name(topic)?;
    match (header.qos, header.packet_id) {
        (QoS::AtMostOnce, None) => {
            if header.dup {
                return Err(CodecError::Malformed("DUP set on a QoS 0 PUBLISH"));
            }
        }
        (QoS::AtMostOnce, Some(_)) => {
            return Err(CodecError::Malformed("packet id on a QoS 0 PUBLISH"));
        }
        (_, None | Some(0)) => {
            return Err(CodecError::Malformed("QoS > 0 PUBLISH without packet id"));
        }
        (_, Some(_)) => {}
    }
    let id_len = if header.packet_id.is_some() { 2 } else { 0 };
    let len = 2 + topic.len() + id_len + payload.len();
    let flags = (u8::from(header.dup) << 3) | ((header.qos as u8) << 1) | u8::from(header.retain);
    let mut fixed = Vec::with_capacity(5);
    fixed.push(0x30 | flags);
    encode_remaining_length(len, &mut fixed)?;
    out.reserve(fixed.len() + len);
    out.extend_from_slice(&fixed);
    put_str(out, topic)?;
    if let Some(id) = header.packet_id {
        put_u16(out, id);
    }
    out.extend_from_slice(payload);
    Ok(())
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
        other => return Err(CodecError::Unsupported(other)),
    };
    r.finish()?;
    Ok(packet)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 1 << 20;

    fn samples() -> Vec<Packet> {
        vec![
            Packet::Connect(Connect::new("gst-defect-42", true, 30)),
            Packet::Connect(Connect {
                client_id: String::new(),
                clean_session: false,
                keepalive: 0,
                username: Some("inspector".into()),
                password: Some(vec![0, 1, 2, 255]),
            }),
            Packet::ConnAck {
                session_present: false,
                code: ConnectReturnCode::Accepted,
            },
            Packet::ConnAck {
                session_present: true,
                code: ConnectReturnCode::NotAuthorized,
            },
            Packet::Publish(Publish {
                dup: false,
                qos: QoS::AtMostOnce,
                retain: false,
                topic: "defect/line-1/verdicts".into(),
                packet_id: None,
                payload: b"{\"frame\":0}".to_vec(),
            }),
            Packet::Publish(Publish {
                dup: true,
                qos: QoS::AtLeastOnce,
                retain: true,
                topic: "a/\u{e9}/b".into(),
                packet_id: Some(65535),
                payload: vec![],
            }),
            Packet::Publish(Publish {
                dup: false,
                qos: QoS::AtLeastOnce,
                retain: false,
                topic: "big".into(),
                packet_id: Some(7),
                payload: vec![b'x'; 200_000],
            }),
            Packet::PubAck { packet_id: 1 },
            Packet::Subscribe {
                packet_id: 3,
                filters: vec![
                    ("defect/+/verdicts".into(), QoS::AtLeastOnce),
                    ("#".into(), QoS::AtMostOnce),
                ],
            },
            Packet::SubAck {
                packet_id: 3,
                codes: vec![1, 0x80],
            },
            Packet::PingReq,
            Packet::PingResp,
            Packet::Disconnect,
        ]
    }

    #[test]
    fn remaining_length_round_trips_at_the_boundaries() {
        for (value, bytes) in [
            (0usize, 1usize),
            (127, 1),
            (128, 2),
            (16_383, 2),
            (16_384, 3),
            (2_097_151, 3),
            (2_097_152, 4),
            (MAX_REMAINING_LENGTH, 4),
        ] {
            let mut out = Vec::new();
            encode_remaining_length(value, &mut out).unwrap();
            assert_eq!(out.len(), bytes, "{value}");
            assert_eq!(
                decode_remaining_length(&out).unwrap(),
                Some((value, bytes)),
                "{value}"
            );
            assert_eq!(decode_remaining_length(&out[..bytes - 1]).unwrap(), None);
        }
        assert_eq!(
            encode_remaining_length(MAX_REMAINING_LENGTH + 1, &mut Vec::new()),
            Err(CodecError::TooLarge(
                MAX_REMAINING_LENGTH + 1,
                MAX_REMAINING_LENGTH
            ))
        );
        assert_eq!(
            decode_remaining_length(&[0xff, 0xff, 0xff, 0xff, 0x01]),
            Err(CodecError::BadRemainingLength)
        );
        assert_eq!(
            decode_remaining_length(&[0x80, 0x80, 0x80, 0x80]),
            Err(CodecError::BadRemainingLength)
        );
    }

    #[test]
    fn known_bytes() {
        assert_eq!(Packet::PingReq.to_bytes().unwrap(), [0xc0, 0x00]);
        assert_eq!(Packet::PingResp.to_bytes().unwrap(), [0xd0, 0x00]);
        assert_eq!(Packet::Disconnect.to_bytes().unwrap(), [0xe0, 0x00]);
        assert_eq!(
            Packet::PubAck { packet_id: 0x1234 }.to_bytes().unwrap(),
            [0x40, 0x02, 0x12, 0x34]
        );
        assert_eq!(
            Packet::Connect(Connect::new("ab", true, 30))
                .to_bytes()
                .unwrap(),
            [
                0x10, 14, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 30, 0, 2, b'a', b'b'
            ]
        );
        let publish = Packet::Publish(Publish {
            dup: true,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: "t".into(),
            packet_id: Some(5),
            payload: b"hi".to_vec(),
        });
        assert_eq!(
            publish.to_bytes().unwrap(),
            [0x3a, 7, 0, 1, b't', 0, 5, b'h', b'i']
        );
    }

    #[test]
    fn packets_round_trip() {
        for packet in samples() {
            let bytes = packet.to_bytes().unwrap();
            let (decoded, used) = decode(&bytes, MAX).unwrap().expect("complete");
            assert_eq!(decoded, packet);
            assert_eq!(used, bytes.len());
        }
    }

    #[test]
    fn packets_decode_back_to_back_and_every_prefix_is_incomplete() {
        let mut stream = Vec::new();
        let packets: Vec<Packet> = samples()
            .into_iter()
            .filter(|p| !matches!(p, Packet::Publish(p) if p.payload.len() > 1000))
            .collect();
        for packet in &packets {
            packet.encode(&mut stream).unwrap();
        }
        let mut rest = &stream[..];
        for packet in &packets {
            let (decoded, used) = decode(rest, MAX).unwrap().unwrap();
            assert_eq!(&decoded, packet);
            for cut in 0..used {
                assert_eq!(
                    decode(&rest[..cut], MAX),
                    Ok(None),
                    "{packet:?} cut at {cut}"
                );
            }
            rest = &rest[used..];
        }
        assert!(rest.is_empty());
    }

    #[test]
    fn malformed_input_is_an_error() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![0x00, 0x00], "reserved type 0"),
            (vec![0xf0, 0x00], "reserved type 15"),
            (vec![0x50, 0x02, 0, 1], "PUBREC unsupported"),
            (vec![0x41, 0x02, 0, 1], "PUBACK flags"),
            (vec![0x40, 0x02, 0, 0], "packet id 0"),
            (vec![0x40, 0x03, 0, 1, 0], "trailing bytes"),
            (vec![0x40, 0x01, 0], "short PUBACK"),
            (vec![0x20, 0x02, 0x02, 0], "CONNACK reserved flags"),
            (vec![0x20, 0x02, 0, 9], "CONNACK code"),
            (vec![0x36, 0x05, 0, 1, b't', 0, 1], "QoS 3"),
            (vec![0x38, 0x03, 0, 1, b't'], "DUP on QoS 0"),
            (vec![0x30, 0x03, 0, 1, b'+'], "wildcard topic"),
            (vec![0x30, 0x02, 0, 0], "empty topic"),
            (vec![0x30, 0x03, 0, 1, 0xff], "invalid UTF-8"),
            (vec![0x30, 0x03, 0, 1, 0x00], "U+0000"),
            (vec![0x30, 0x03, 0, 5, b't'], "string past the end"),
            (vec![0x32, 0x03, 0, 1, b't'], "QoS 1 without packet id"),
            (vec![0x80, 0x02, 0, 1], "SUBSCRIBE flags"),
            (vec![0x82, 0x02, 0, 1], "SUBSCRIBE without filters"),
            (vec![0x82, 0x06, 0, 1, 0, 1, b'a', 3], "requested QoS 3"),
            (vec![0x82, 0x07, 0, 1, 0, 2, b'a', b'#', 0], "bad filter"),
            (vec![0x90, 0x03, 0, 1, 3], "SUBACK code"),
            (vec![0xc0, 0x01, 0], "PINGREQ with a body"),
            (vec![0xe2, 0x00], "DISCONNECT flags"),
            (
                vec![0x10, 0x0a, 0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3, 0],
                "MQTT 3.1",
            ),
            (
                vec![
                    0x10, 0x0c, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x01, 0, 0, 0, 0,
                ],
                "reserved CONNECT flag",
            ),
            (
                vec![
                    0x10, 0x0c, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x04, 0, 0, 0, 0,
                ],
                "will",
            ),
            (
                vec![
                    0x10, 0x0c, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x40, 0, 0, 0, 0,
                ],
                "password without user",
            ),
            (vec![0x30, 0xff, 0xff, 0xff, 0xff, 0x7f], "five-byte length"),
        ];
        for (bytes, what) in cases {
            assert!(decode(&bytes, MAX).is_err(), "{what}: {bytes:?}");
        }
        assert_eq!(
            decode(&[0x30, 0xff, 0xff, 0x03], 1000),
            Err(CodecError::TooLarge(65_539, 1000))
        );
    }

    #[test]
    fn invalid_packets_are_not_encoded() {
        let publish = |qos, packet_id, topic: &str, dup| {
            Packet::Publish(Publish {
                dup,
                qos,
                retain: false,
                topic: topic.into(),
                packet_id,
                payload: vec![],
            })
        };
        for packet in [
            publish(QoS::AtLeastOnce, None, "t", false),
            publish(QoS::AtLeastOnce, Some(0), "t", false),
            publish(QoS::AtMostOnce, Some(1), "t", false),
            publish(QoS::AtMostOnce, None, "t", true),
            publish(QoS::AtMostOnce, None, "a/#", false),
            publish(QoS::AtMostOnce, None, "", false),
            publish(QoS::AtMostOnce, None, &"x".repeat(70_000), false),
            Packet::PubAck { packet_id: 0 },
            Packet::Subscribe {
                packet_id: 1,
                filters: vec![],
            },
            Packet::Subscribe {
                packet_id: 1,
                filters: vec![("a/b#".into(), QoS::AtMostOnce)],
            },
            Packet::SubAck {
                packet_id: 1,
                codes: vec![7],
            },
            Packet::Connect(Connect::new("nul\0", true, 1)),
        ] {
            let mut out = vec![9];
            assert!(packet.encode(&mut out).is_err(), "{packet:?}");
            assert_eq!(out, [9], "output untouched on error");
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        // A small xorshift generator; the property is only "no panic, no overrun".
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let valid: Vec<Vec<u8>> = samples()
            .iter()
            .map(|p| p.to_bytes().unwrap())
            .filter(|b| b.len() < 1000)
            .collect();
        for round in 0..20_000 {
            let mut bytes: Vec<u8> = if round % 2 == 0 {
                let len = (next() % 40) as usize;
                (0..len).map(|_| next() as u8).collect()
            } else {
                // Valid packets with a few bytes flipped.
                let mut b = valid[(next() as usize) % valid.len()].clone();
                for _ in 0..1 + next() % 3 {
                    let i = (next() as usize) % b.len();
                    b[i] ^= 1 << (next() % 8);
                }
                b
            };
            if round % 7 == 0 {
                bytes.truncate((next() as usize) % (bytes.len() + 1));
            }
            if let Ok(Some((_, used))) = decode(&bytes, 4096) {
                assert!(used <= bytes.len());
            }
        }
    }

    #[test]
    fn topic_filters() {
        for ok in ["#", "+", "a/+/c", "a/#", "+/+", "/", "a//b"] {
            assert!(validate_topic_filter(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a#", "a/#/b", "a+/b", "a/b+", "#/a"] {
            assert!(validate_topic_filter(bad).is_err(), "{bad}");
        }
    }
}
