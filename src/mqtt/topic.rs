// SPDX-License-Identifier: MIT OR Apache-2.0
//! Topic templates: `defect/{source_id}/verdicts` and the like, filled from each record's
//! `source_id` and `type` fields.
//!
//! A topic name must be UTF-8 without U+0000, at most 65,535 bytes and without the wildcards
//! `+` and `#` (MQTT 3.1.1, 4.7); brokers also refuse control characters (U+0001 to U+001F,
//! U+007F to U+009F) and noncharacters (U+FDD0 to U+FDEF, U+xxFFFE, U+xxFFFF) and close the
//! connection of a client that sends one (mosquitto does). So a field value becomes one topic
//! level by percent-escaping the UTF-8 bytes of every such character, and of `/` (a level
//! separator) and `%` (the escape itself): `cam/1` gives `cam%2F1`, a TAB `%09`, U+FFFF
//! `%EF%BF%BF`. A value longer than [`MAX_LEVEL_BYTES`] once escaped is cut and ends with `~`
//! and 16 hex digits of its SHA-256, so that distinct values stay distinct. The template's
//! own text may hold none of these characters, and is limited so that any rendered topic
//! fits in 65,535 bytes.

use serde::Deserialize;
use sha2::Digest;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    SourceId,
    Type,
}

/// A parsed topic template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicTemplate {
    parts: Vec<Part>,
}

/// The largest topic name (the length prefix is 16 bits).
pub const MAX_TOPIC_BYTES: usize = u16::MAX as usize;

/// A field value gives at most this many bytes of topic.
pub const MAX_LEVEL_BYTES: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("the topic is empty")]
    Empty,
    #[error("unknown placeholder {{{0}}} (known: {{source_id}}, {{type}})")]
    UnknownPlaceholder(String),
    #[error("'{{' without a matching '}}'")]
    Unclosed,
    #[error("'+' and '#' are wildcards and cannot appear in a topic name")]
    Wildcard,
    #[error("the topic holds {0}, which brokers refuse (control characters and noncharacters)")]
    BadCharacter(String),
    #[error(
        "the topic can grow to {0} bytes with its placeholders filled (limit {MAX_TOPIC_BYTES}; \
         each placeholder counts {MAX_LEVEL_BYTES})"
    )]
    TooLong(usize),
}

/// Whether a topic name may hold `c`: not U+0000, not a control character, not a
/// noncharacter (what MQTT 3.1.1 section 1.5.3 allows brokers to refuse, and mosquitto does).
pub fn allowed_in_topic(c: char) -> bool {
    let code = c as u32;
    !(code <= 0x1f
        || (0x7f..=0x9f).contains(&code)
        || (0xfdd0..=0xfdef).contains(&code)
        || code & 0xfffe == 0xfffe)
}

/// The fields of a record a topic may use; every other field is skipped unparsed.
#[derive(Deserialize)]
struct Keys {
    source_id: Option<serde_json::Value>,
    #[serde(rename = "type")]
    kind: Option<serde_json::Value>,
}

/// Used for a field that is missing, empty or not a string or number.
pub const UNKNOWN: &str = "unknown";

/// A field value as one topic level: escaped, and shortened beyond [`MAX_LEVEL_BYTES`].
/// The second value says whether it had to be changed.
pub fn level(value: &str) -> (String, bool) {
    let mut out = String::with_capacity(value.len());
    let mut changed = false;
    for c in value.chars() {
        if c == '/' || c == '%' || c == '+' || c == '#' || !allowed_in_topic(c) {
            let mut utf8 = [0u8; 4];
            for byte in c.encode_utf8(&mut utf8).bytes() {
                out.push_str(&format!("%{byte:02X}"));
            }
            changed |= c != '/' && c != '%';
        } else {
            out.push(c);
        }
    }
    if out.len() > MAX_LEVEL_BYTES {
        let digest = sha2::Sha256::digest(value.as_bytes());
        let suffix: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        let mut cut = MAX_LEVEL_BYTES - 1 - suffix.len();
        // Neither inside a character nor inside an escape.
        while !out.is_char_boundary(cut) || out[..cut].ends_with('%') || {
            let tail = &out.as_bytes()[..cut];
            tail.len() >= 2 && tail[tail.len() - 2] == b'%'
        } {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('~');
        out.push_str(&suffix);
        changed = true;
    }
    (out, changed)
}

/// A rendered topic and the field values that could not be used as they were.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub topic: String,
    /// `(field, original value)` of each value that had to be escaped or shortened (other
    /// than for `/` and `%`, which are ordinary characters of an id).
    pub changed: Vec<(&'static str, String)>,
}

impl TopicTemplate {
    pub fn parse(template: &str) -> Result<Self, TopicError> {
        if template.is_empty() {
            return Err(TopicError::Empty);
        }
        let mut parts = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            let (text, tail) = rest.split_at(open);
            let close = tail.find('}').ok_or(TopicError::Unclosed)?;
            let name = &tail[1..close];
            if !text.is_empty() {
                parts.push(Part::Text(text.to_owned()));
            }
            parts.push(match name {
                "source_id" => Part::SourceId,
                "type" => Part::Type,
                other => return Err(TopicError::UnknownPlaceholder(other.to_owned())),
            });
            rest = &tail[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        let mut longest = 0;
        for part in &parts {
            match part {
                Part::Text(text) => {
                    if text.contains(['+', '#']) {
                        return Err(TopicError::Wildcard);
                    }
                    if let Some(c) = text.chars().find(|&c| !allowed_in_topic(c)) {
                        return Err(TopicError::BadCharacter(format!("U+{:04X}", c as u32)));
                    }
                    longest += text.len();
                }
                _ => longest += MAX_LEVEL_BYTES,
            }
        }
        if longest > MAX_TOPIC_BYTES {
            return Err(TopicError::TooLong(longest));
        }
        Ok(Self { parts })
    }

    /// Whether rendering needs the record's fields.
    pub fn uses_fields(&self) -> bool {
        self.parts.iter().any(|p| !matches!(p, Part::Text(_)))
    }

    /// The topic for one record (a JSON object as bytes). Fields that are missing, or a
    /// record that is not JSON, give [`UNKNOWN`]. Always a valid topic name.
    pub fn render(&self, record: &[u8]) -> Rendered {
        let keys = if self.uses_fields() {
            serde_json::from_slice::<Keys>(record).ok()
        } else {
            None
        };
        let mut rendered = Rendered {
            topic: String::new(),
            changed: Vec::new(),
        };
        for part in &self.parts {
            let (field, value) = match part {
                Part::Text(text) => {
                    rendered.topic.push_str(text);
                    continue;
                }
                Part::SourceId => (
                    "source_id",
                    keys.as_ref().and_then(|k| k.source_id.as_ref()),
                ),
                Part::Type => ("type", keys.as_ref().and_then(|k| k.kind.as_ref())),
            };
            let text = match value {
                Some(serde_json::Value::String(s)) if !s.is_empty() => s.clone(),
                Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => {
                    v.to_string()
                }
                _ => {
                    rendered.topic.push_str(UNKNOWN);
                    continue;
                }
            };
            let (escaped, changed) = level(&text);
            rendered.topic.push_str(&escaped);
            if changed {
                rendered.changed.push((field, text));
            }
        }
        rendered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_from_the_record() {
        let t = TopicTemplate::parse("defect/{source_id}/verdicts").unwrap();
        assert!(t.uses_fields());
        let record = br#"{"schema_version":1,"type":"frame","frame":3,"source_id":"line-1","detections":[{"a":1}]}"#;
        assert_eq!(t.render(record).topic, "defect/line-1/verdicts");
        let t = TopicTemplate::parse("{source_id}/{type}").unwrap();
        assert_eq!(t.render(record).topic, "line-1/frame");
        let rendered = t.render(br#"{"type":"part","source_id":"a/b+c#%"}"#);
        assert_eq!(rendered.topic, "a%2Fb%2Bc%23%25/part");
        assert_eq!(rendered.changed, [("source_id", "a/b+c#%".to_owned())]);
        let rendered = t.render(br#"{"type":"part","source_id":"cam/1"}"#);
        assert_eq!(rendered.topic, "cam%2F1/part");
        assert!(rendered.changed.is_empty(), "'/' is an ordinary character");
        assert_eq!(t.render(br#"{"source_id":7}"#).topic, "7/unknown");
        assert_eq!(t.render(b"not json").topic, "unknown/unknown");
        assert_eq!(t.render(br#"{"source_id":""}"#).topic, "unknown/unknown");
    }

    #[test]
    fn plain_templates_do_not_parse_records() {
        let t = TopicTemplate::parse("plant/verdicts").unwrap();
        assert!(!t.uses_fields());
        assert_eq!(t.render(b"\xff").topic, "plant/verdicts");
    }

    #[test]
    fn bad_templates_are_errors() {
        assert_eq!(TopicTemplate::parse(""), Err(TopicError::Empty));
        assert_eq!(
            TopicTemplate::parse("a/{camera}"),
            Err(TopicError::UnknownPlaceholder("camera".into()))
        );
        assert_eq!(TopicTemplate::parse("a/{type"), Err(TopicError::Unclosed));
        assert_eq!(TopicTemplate::parse("a/+/b"), Err(TopicError::Wildcard));
        assert_eq!(TopicTemplate::parse("a/#"), Err(TopicError::Wildcard));
        assert_eq!(
            TopicTemplate::parse("a\tb/{source_id}"),
            Err(TopicError::BadCharacter("U+0009".into()))
        );
        assert_eq!(
            TopicTemplate::parse("a/\u{ffff}"),
            Err(TopicError::BadCharacter("U+FFFF".into()))
        );
        assert!(matches!(
            TopicTemplate::parse(&format!("{}/{{source_id}}", "x".repeat(65_000))),
            Err(TopicError::TooLong(_))
        ));
    }

    /// Issue 14, item 4: control characters, noncharacters and wildcards in a value are
    /// escaped, the topic stays valid for the codec, and over-long values are shortened
    /// with a hash (distinct values stay distinct).
    #[test]
    fn values_brokers_refuse_are_escaped() {
        let t = TopicTemplate::parse("defect/{source_id}/verdicts").unwrap();
        for (id, level) in [
            ("a\tb", "a%09b"),
            ("a\u{1}b", "a%01b"),
            ("a\u{7f}b", "a%7Fb"),
            ("a\u{85}b", "a%C2%85b"),
            ("a\u{ffff}b", "a%EF%BF%BFb"),
            ("a\u{fdd0}b", "a%EF%B7%90b"),
            ("a\u{10fffe}b", "a%F4%8F%BF%BEb"),
            ("\u{0}", "%00"),
            ("caf\u{e9} \u{1f600}", "caf\u{e9} \u{1f600}"),
        ] {
            let record = serde_json::json!({ "source_id": id }).to_string();
            let rendered = t.render(record.as_bytes());
            assert_eq!(rendered.topic, format!("defect/{level}/verdicts"), "{id:?}");
            assert_eq!(rendered.changed.is_empty(), id == level, "{id:?}");
            assert!(super::super::codec::validate_topic_name(&rendered.topic).is_ok());
        }
        let long = |c: char| serde_json::json!({ "source_id": c.to_string().repeat(70_000) });
        let a = t.render(long('a').to_string().as_bytes());
        let b = t.render(long('\u{1}').to_string().as_bytes());
        let c = t.render(long('\u{e9}').to_string().as_bytes());
        for r in [&a, &b, &c] {
            assert!(r.topic.len() <= "defect//verdicts".len() + MAX_LEVEL_BYTES);
            assert!(super::super::codec::validate_topic_name(&r.topic).is_ok());
            assert_eq!(r.changed.len(), 1);
        }
        let again = t.render(
            serde_json::json!({ "source_id": format!("{}b", "a".repeat(69_999)) })
                .to_string()
                .as_bytes(),
        );
        assert_ne!(a.topic, again.topic, "the hash tells them apart");
    }
}
