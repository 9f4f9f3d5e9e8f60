// SPDX-License-Identifier: MIT OR Apache-2.0
//! The MQTT 3.1.1 packets a publishing client needs, and only those: it encodes CONNECT,
//! PUBLISH, PINGREQ and DISCONNECT, and decodes what a broker answers a publisher with:
//! CONNACK, PUBACK and PINGRESP. Anything else from a broker is an error (a broker sends
//! nothing else to a client that never subscribes).
//!
//! [`decode`] takes the bytes read so far and answers with a packet and how many bytes it
//! used, `Ok(None)` when the packet is not complete yet, or an error for bytes that cannot
//! be a valid packet. It never panics, whatever the input (`fuzz/fuzz_targets/mqtt.rs`).

use super::topic::allowed_in_topic;

/// The largest remaining length the four-byte varint can carry (256 MiB - 1).
pub const MAX_REMAINING_LENGTH: usize = 268_435_455;

/// The protocol level of MQTT 3.1.1.
pub const PROTOCOL_LEVEL: u8 = 4;

/// PINGREQ, whole.
pub const PINGREQ: [u8; 2] = [0xc0, 0x00];

/// DISCONNECT, whole.
pub const DISCONNECT: [u8; 2] = [0xe0, 0x00];

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

    /// The packet's bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, CodecError> {
        if self.password.is_some() && self.username.is_none() {
            return Err(CodecError::Malformed("password without user name"));
        }
        let mut body = Vec::new();
        put_str(&mut body, "MQTT")?;
        body.push(PROTOCOL_LEVEL);
        let connect_flags = (u8::from(self.username.is_some()) << 7)
            | (u8::from(self.password.is_some()) << 6)
            | (u8::from(self.clean_session) << 1);
        body.push(connect_flags);
        body.extend_from_slice(&self.keepalive.to_be_bytes());
        put_str(&mut body, &self.client_id)?;
        if let Some(user) = &self.username {
            put_str(&mut body, user)?;
        }
        if let Some(password) = &self.password {
            put_bytes(&mut body, password)?;
        }
        let mut out = vec![0x10];
        encode_remaining_length(body.len(), &mut out)?;
        out.extend_from_slice(&body);
        Ok(out)
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

/// What a broker sends a publisher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming {
    ConnAck {
        session_present: bool,
        code: ConnectReturnCode,
    },
    PubAck {
        packet_id: u16,
    },
    PingResp,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("remaining length longer than four bytes")]
    BadRemainingLength,
    #[error("packet of {0} bytes is larger than the limit of {1}")]
    TooLarge(usize, usize),
    #[error("reserved packet type {0}")]
    ReservedType(u8),
    #[error("packet type {0}, which a broker does not send to a publisher")]
    Unexpected(u8),
    #[error("invalid flags {flags:#06b} for packet type {kind}")]
    BadFlags { kind: u8, flags: u8 },
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
    #[error("string holds U+0000")]
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

/// A topic name a PUBLISH may carry and brokers accept: non-empty, at most 65535 bytes, no
/// wildcards, no U+0000, control characters or noncharacters.
pub fn validate_topic_name(topic: &str) -> Result<(), CodecError> {
    if topic.is_empty() {
        Err(CodecError::BadTopic("empty"))
    } else if topic.contains(['+', '#']) {
        Err(CodecError::BadTopic("wildcards in a topic name"))
    } else if topic.contains('\0') {
        Err(CodecError::BadString)
    } else if !topic.chars().all(allowed_in_topic) {
        Err(CodecError::BadTopic(
            "control characters or noncharacters in a topic name",
        ))
    } else if topic.len() > u16::MAX as usize {
        Err(CodecError::StringTooLong)
    } else {
        Ok(())
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), CodecError> {
    let len = u16::try_from(bytes.len()).map_err(|_| CodecError::StringTooLong)?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

fn put_str(out: &mut Vec<u8>, s: &str) -> Result<(), CodecError> {
    if s.contains('\0') {
        return Err(CodecError::BadString);
    }
    put_bytes(out, s.as_bytes())
}

/// The flags and packet id of a PUBLISH, for [`encode_publish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishHeader {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    pub packet_id: Option<u16>,
}

/// The size of the PUBLISH [`encode_publish`] would write, fixed header included.
pub fn publish_len(header: PublishHeader, topic: &str, payload: &[u8]) -> usize {
    let len = 2 + topic.len() + if header.packet_id.is_some() { 2 } else { 0 } + payload.len();
    let varint = match len {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    };
    1 + varint + len
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
        out.extend_from_slice(&id.to_be_bytes());
    }
    out.extend_from_slice(payload);
    Ok(())
}

/// Decodes one packet from the start of `buf`. `Ok(Some((packet, used)))` when a whole
/// packet is there, `Ok(None)` when more bytes are needed, an error when the bytes cannot be
/// a packet a broker sends a publisher, or announce one larger than `max_packet` bytes
/// (fixed header included).
pub fn decode(buf: &[u8], max_packet: usize) -> Result<Option<(Incoming, usize)>, CodecError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let (kind, flags) = (first >> 4, first & 0x0f);
    match kind {
        0 | 15 => return Err(CodecError::ReservedType(kind)),
        2 | 4 | 13 => {}
        other => return Err(CodecError::Unexpected(other)),
    }
    if flags != 0 {
        return Err(CodecError::BadFlags { kind, flags });
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
    let packet = match (kind, body) {
        (2, &[ack_flags, code]) => {
            if ack_flags & 0xfe != 0 {
                return Err(CodecError::Malformed("reserved CONNACK flags set"));
            }
            Incoming::ConnAck {
                session_present: ack_flags & 0x01 != 0,
                code: ConnectReturnCode::from_u8(code)
                    .ok_or(CodecError::Malformed("unknown CONNACK return code"))?,
            }
        }
        (4, &[high, low]) => match u16::from_be_bytes([high, low]) {
            0 => return Err(CodecError::Malformed("packet id 0")),
            packet_id => Incoming::PubAck { packet_id },
        },
        (13, []) => Incoming::PingResp,
        (2, _) => return Err(CodecError::Malformed("CONNACK is not 2 bytes long")),
        (4, _) => return Err(CodecError::Malformed("PUBACK is not 2 bytes long")),
        _ => return Err(CodecError::Malformed("PINGRESP with a body")),
    };
    Ok(Some((packet, total)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 1 << 20;

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
        assert_eq!(
            Connect::new("ab", true, 30).to_bytes().unwrap(),
            [
                0x10, 14, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 30, 0, 2, b'a', b'b'
            ]
        );
        let with_password = Connect {
            username: Some("u".into()),
            password: Some(vec![1, 2]),
            ..Connect::new("c", false, 5)
        };
        assert_eq!(
            with_password.to_bytes().unwrap(),
            [
                0x10, 20, 0, 4, b'M', b'Q', b'T', b'T', 4, 0xc0, 0, 5, 0, 1, b'c', 0, 1, b'u', 0,
                2, 1, 2
            ]
        );
        let header = PublishHeader {
            dup: true,
            qos: QoS::AtLeastOnce,
            retain: false,
            packet_id: Some(5),
        };
        let mut out = Vec::new();
        encode_publish(header, "t", b"hi", &mut out).unwrap();
        assert_eq!(out, [0x3a, 7, 0, 1, b't', 0, 5, b'h', b'i']);
        assert_eq!(publish_len(header, "t", b"hi"), out.len());
        let big = vec![0; 200_000];
        out.clear();
        encode_publish(header, "t", &big, &mut out).unwrap();
        assert_eq!(publish_len(header, "t", &big), out.len());
        assert_eq!(
            decode(&[0x20, 2, 1, 0], MAX),
            Ok(Some((
                Incoming::ConnAck {
                    session_present: true,
                    code: ConnectReturnCode::Accepted
                },
                4
            )))
        );
        assert_eq!(
            decode(&[0x40, 2, 0x12, 0x34, 0xd0], MAX),
            Ok(Some((Incoming::PubAck { packet_id: 0x1234 }, 4)))
        );
        assert_eq!(decode(&[0xd0, 0], MAX), Ok(Some((Incoming::PingResp, 2))));
        for cut in 0..4 {
            assert_eq!(decode(&[0x40, 2, 0x12, 0x34][..cut], MAX), Ok(None));
        }
    }

    #[test]
    fn malformed_or_unexpected_input_is_an_error() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![0x00, 0x00], "reserved type 0"),
            (vec![0xf0, 0x00], "reserved type 15"),
            (vec![0x50, 0x02, 0, 1], "PUBREC"),
            (vec![0x30, 0x03, 0, 1, b't'], "PUBLISH"),
            (vec![0x90, 0x03, 0, 1, 0], "SUBACK"),
            (vec![0xe0, 0x00], "DISCONNECT from a broker"),
            (vec![0x10, 0x00], "CONNECT"),
            (vec![0x41, 0x02, 0, 1], "PUBACK flags"),
            (vec![0x40, 0x02, 0, 0], "packet id 0"),
            (vec![0x40, 0x03, 0, 1, 0], "long PUBACK"),
            (vec![0x40, 0x01, 0], "short PUBACK"),
            (vec![0x20, 0x02, 0x02, 0], "CONNACK reserved flags"),
            (vec![0x20, 0x02, 0, 9], "CONNACK code"),
            (vec![0x20, 0x03, 0, 0, 0], "long CONNACK"),
            (vec![0xd0, 0x01, 0], "PINGRESP with a body"),
            (vec![0x40, 0xff, 0xff, 0xff, 0xff, 0x7f], "five-byte length"),
        ];
        for (bytes, what) in cases {
            assert!(decode(&bytes, MAX).is_err(), "{what}: {bytes:?}");
        }
        assert_eq!(
            decode(&[0x40, 0xff, 0xff, 0x03], 1000),
            Err(CodecError::TooLarge(65_539, 1000))
        );
    }

    #[test]
    fn invalid_packets_are_not_encoded() {
        let header = |qos, packet_id, dup| PublishHeader {
            dup,
            qos,
            retain: false,
            packet_id,
        };
        for (h, topic) in [
            (header(QoS::AtLeastOnce, None, false), "t"),
            (header(QoS::AtLeastOnce, Some(0), false), "t"),
            (header(QoS::AtMostOnce, Some(1), false), "t"),
            (header(QoS::AtMostOnce, None, true), "t"),
            (header(QoS::AtMostOnce, None, false), "a/#"),
            (header(QoS::AtMostOnce, None, false), "a/+"),
            (header(QoS::AtMostOnce, None, false), ""),
            (header(QoS::AtMostOnce, None, false), "a\tb"),
            (header(QoS::AtMostOnce, None, false), "a\u{85}b"),
            (header(QoS::AtMostOnce, None, false), "a\u{ffff}"),
            (header(QoS::AtMostOnce, None, false), "a\0"),
            (header(QoS::AtMostOnce, None, false), &"x".repeat(70_000)),
        ] {
            let mut out = vec![9];
            assert!(
                encode_publish(h, topic, b"", &mut out).is_err(),
                "{h:?} {topic:?}"
            );
            assert_eq!(out, [9], "output untouched on error");
        }
        assert!(Connect::new("nul\0", true, 1).to_bytes().is_err());
        let password_only = Connect {
            password: Some(vec![1]),
            ..Connect::new("c", true, 1)
        };
        assert!(password_only.to_bytes().is_err());
    }

    #[test]
    fn random_bytes_never_panic() {
        // A small xorshift generator; the property is only "no panic, no overrun" (the
        // cargo-fuzz target `mqtt` explores far more).
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let len = (next() % 12) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if let Some(first) = bytes.first_mut() {
                *first = [0x20, 0x40, 0xd0, *first][(next() % 4) as usize];
            }
            if let Ok(Some((_, used))) = decode(&bytes, 4096) {
                assert!(used <= bytes.len());
            }
        }
    }
}
