// SPDX-License-Identifier: MIT OR Apache-2.0
//! Topic templates: `defect/{source_id}/verdicts` and the like, filled from each record's
//! `source_id` and `type` fields.

use serde::Deserialize;

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

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("the topic is empty")]
    Empty,
    #[error("unknown placeholder {{{0}}} (known: {{source_id}}, {{type}})")]
    UnknownPlaceholder(String),
    #[error("'{{' without a matching '}}'")]
    Unclosed,
    #[error("'+', '#' and U+0000 cannot appear in a topic name")]
    Wildcard,
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

/// A field value made safe as one topic level: `/`, `+`, `#` and U+0000 become `_`.
fn level(value: Option<&serde_json::Value>) -> String {
    let text = match value {
        Some(serde_json::Value::String(s)) if !s.is_empty() => s.clone(),
        Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => v.to_string(),
        _ => return UNKNOWN.to_owned(),
    };
    text.replace(['/', '+', '#', '\0'], "_")
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
        for part in &parts {
            if let Part::Text(text) = part
                && text.contains(['+', '#', '\0'])
            {
                return Err(TopicError::Wildcard);
            }
        }
        Ok(Self { parts })
    }

    /// Whether rendering needs the record's fields.
    pub fn uses_fields(&self) -> bool {
        self.parts.iter().any(|p| !matches!(p, Part::Text(_)))
    }

    /// The topic for one record (a JSON object as bytes). Fields that are missing, or a
    /// record that is not JSON, give [`UNKNOWN`].
    pub fn render(&self, record: &[u8]) -> String {
        let keys = if self.uses_fields() {
            serde_json::from_slice::<Keys>(record).ok()
        } else {
            None
        };
        let mut topic = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => topic.push_str(text),
                Part::SourceId => {
                    topic.push_str(&level(keys.as_ref().and_then(|k| k.source_id.as_ref())))
                }
                Part::Type => topic.push_str(&level(keys.as_ref().and_then(|k| k.kind.as_ref()))),
            }
        }
        topic
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
        assert_eq!(t.render(record), "defect/line-1/verdicts");
        let t = TopicTemplate::parse("{source_id}/{type}").unwrap();
        assert_eq!(t.render(record), "line-1/frame");
        assert_eq!(
            t.render(br#"{"type":"part","source_id":"a/b+c#"}"#),
            "a_b_c_/part"
        );
        assert_eq!(t.render(br#"{"source_id":7}"#), "7/unknown");
        assert_eq!(t.render(b"not json"), "unknown/unknown");
        assert_eq!(t.render(br#"{"source_id":""}"#), "unknown/unknown");
    }

    #[test]
    fn plain_templates_do_not_parse_records() {
        let t = TopicTemplate::parse("plant/verdicts").unwrap();
        assert!(!t.uses_fields());
        assert_eq!(t.render(b"\xff"), "plant/verdicts");
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
    }
}
