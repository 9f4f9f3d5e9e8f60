//! Parsing of the metadata Ultralytics-style exports carry, and of label files.
//!
//! - `names`: a Python dict literal such as `{0: 'scratch', 1: "dent"}` (what Ultralytics
//!   writes), a Python/JSON list `['scratch', 'dent']`, or a JSON object `{"0": "scratch"}`;
//! - `imgsz`: `[h, w]`, `(h, w)` or a single `640`;
//! - label files: one class name a line, blank lines and `#` comments ignored.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    #[error("cannot parse class names {text:?}: {reason}")]
    Names { text: String, reason: String },
    #[error("cannot parse image size {0:?}: expected [h, w] or a single number")]
    ImageSize(String),
}

/// Parses a `names` metadata value into a dense list indexed by class id. Ids missing from
/// a dict become `class<N>`.
pub fn parse_names(text: &str) -> Result<Vec<String>, MetaError> {
    let error = |reason: &str| MetaError::Names {
        text: text.to_string(),
        reason: reason.to_string(),
    };
    let mut lexer = Lexer { rest: text.trim() };
    let entries = match lexer.next_char() {
        Some('{') => parse_dict(&mut lexer).map_err(|r| error(&r))?,
        Some('[') | Some('(') => parse_list(&mut lexer).map_err(|r| error(&r))?,
        _ => return Err(error("expected a dict or a list")),
    };
    if !lexer.rest.trim().is_empty() {
        return Err(error("trailing characters after the closing bracket"));
    }
    let count = entries.iter().map(|(id, _)| id + 1).max().unwrap_or(0);
    if count > 100_000 {
        return Err(error("class id larger than 100000"));
    }
    let mut names: Vec<String> = (0..count).map(default_class_name).collect();
    for (id, name) in entries {
        names[id] = name;
    }
    Ok(names)
}

/// The name of a class the model does not name.
pub fn default_class_name(id: usize) -> String {
    format!("class{id}")
}

/// Parses an `imgsz` metadata value into (height, width).
pub fn parse_image_size(text: &str) -> Result<(u32, u32), MetaError> {
    let error = || MetaError::ImageSize(text.to_string());
    let inner = text
        .trim()
        .trim_start_matches(['[', '('])
        .trim_end_matches([']', ')']);
    let numbers: Vec<u32> = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u32>().map_err(|_| error()))
        .collect::<Result<_, _>>()?;
    match numbers[..] {
        [size] if size > 0 => Ok((size, size)),
        [h, w] if h > 0 && w > 0 => Ok((h, w)),
        _ => Err(error()),
    }
}

/// Parses a labels file: one class name a line (a UTF-8 byte-order mark is not part of the
/// first name).
pub fn parse_labels(text: &str) -> Vec<String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// Replaces class names that cannot be used (empty, or holding control characters such as
/// NUL, which C strings, topics and file names cut or reject) by `class<N>`; returns one
/// warning per replaced name.
pub fn sanitize_names(names: &mut [String]) -> Vec<String> {
    let mut warnings = Vec::new();
    for (id, name) in names.iter_mut().enumerate() {
        if name.trim().is_empty() || name.chars().any(char::is_control) {
            let replacement = default_class_name(id);
            warnings.push(format!(
                "class {id} has an unusable name {name:?} (empty or holding control characters); it is named {replacement}"
            ));
            *name = replacement;
        }
    }
    warnings
}

/// The class id of a default name `class<N>`.
pub fn default_class_id(name: &str) -> Option<usize> {
    let digits = name.strip_prefix("class")?;
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    digits.parse().ok()
}

/// Whether an `end2end` metadata value says the model already ran NMS.
pub fn parse_bool(text: &str) -> bool {
    matches!(
        text.trim().to_ascii_lowercase().as_str(),
        "true" | "1" | "yes"
    )
}

struct Lexer<'a> {
    rest: &'a str,
}

impl Lexer<'_> {
    fn skip_space(&mut self) {
        self.rest = self.rest.trim_start();
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_space();
        self.rest.chars().next()
    }

    fn next_char(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.rest = &self.rest[c.len_utf8()..];
        Some(c)
    }

    fn expect(&mut self, wanted: char) -> Result<(), String> {
        match self.next_char() {
            Some(c) if c == wanted => Ok(()),
            Some(c) => Err(format!("expected '{wanted}', found '{c}'")),
            None => Err(format!("expected '{wanted}', found the end")),
        }
    }

    fn integer(&mut self) -> Result<usize, String> {
        self.skip_space();
        let quoted = self.rest.starts_with(['\'', '"']);
        let text = if quoted {
            self.string()?
        } else {
            self.take_while(|c| c.is_ascii_digit()).to_string()
        };
        text.parse::<usize>()
            .map_err(|_| format!("class id {text:?} is not a non-negative integer"))
    }

    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> &str {
        let end = self.rest.find(|c| !keep(c)).unwrap_or(self.rest.len());
        let (taken, rest) = self.rest.split_at(end);
        self.rest = rest;
        taken
    }

    /// A single- or double-quoted string with backslash escapes.
    fn string(&mut self) -> Result<String, String> {
        let quote = match self.next_char() {
            Some(q @ ('\'' | '"')) => q,
            _ => return Err("expected a quoted class name".into()),
        };
        let mut value = String::new();
        let mut chars = self.rest.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, 't')) => value.push('\t'),
                    Some((_, escaped)) => value.push(escaped),
                    None => break,
                },
                c if c == quote => {
                    self.rest = &self.rest[i + 1..];
                    return Ok(value);
                }
                c => value.push(c),
            }
        }
        Err("unterminated string".into())
    }
}

fn parse_dict(lexer: &mut Lexer) -> Result<Vec<(usize, String)>, String> {
    let mut entries = Vec::new();
    loop {
        if lexer.peek() == Some('}') {
            lexer.next_char();
            return Ok(entries);
        }
        let id = lexer.integer()?;
        lexer.expect(':')?;
        entries.push((id, lexer.string()?));
        match lexer.next_char() {
            Some(',') => continue,
            Some('}') => return Ok(entries),
            _ => return Err("expected ',' or '}'".into()),
        }
    }
}

fn parse_list(lexer: &mut Lexer) -> Result<Vec<(usize, String)>, String> {
    let mut entries = Vec::new();
    loop {
        if matches!(lexer.peek(), Some(']' | ')')) {
            lexer.next_char();
            return Ok(entries);
        }
        entries.push((entries.len(), lexer.string()?));
        match lexer.next_char() {
            Some(',') => continue,
            Some(']' | ')') => return Ok(entries),
            _ => return Err("expected ',' or ']'".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ultralytics_dict() {
        let names = parse_names("{0: 'scratch', 1: 'dent', 2: \"rolled-in_scale\"}").unwrap();
        assert_eq!(names, ["scratch", "dent", "rolled-in_scale"]);
    }

    #[test]
    fn json_object_and_list() {
        assert_eq!(parse_names(r#"{"0": "a", "1": "b"}"#).unwrap(), ["a", "b"]);
        assert_eq!(parse_names("['a', 'b',]").unwrap(), ["a", "b"]);
    }

    #[test]
    fn gaps_get_default_names() {
        assert_eq!(
            parse_names("{0: 'a', 2: 'c'}").unwrap(),
            ["a", "class1", "c"]
        );
    }

    #[test]
    fn escapes_and_unicode() {
        assert_eq!(
            parse_names(r"{0: 'it\'s', 1: 'rayure é'}").unwrap(),
            ["it's", "rayure é"]
        );
    }

    #[test]
    fn malformed_names_are_errors() {
        for bad in [
            "",
            "scratch",
            "{0: scratch}",
            "{0: 'a'",
            "{-1: 'a'}",
            "{0: 'a'} x",
            "{0 'a'}",
            "{99999999: 'a'}",
        ] {
            assert!(parse_names(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn image_sizes() {
        assert_eq!(parse_image_size("[384, 640]").unwrap(), (384, 640));
        assert_eq!(parse_image_size("(320,320)").unwrap(), (320, 320));
        assert_eq!(parse_image_size("640").unwrap(), (640, 640));
        for bad in ["", "[0, 640]", "[1, 2, 3]", "abc", "[-3, 4]"] {
            assert!(parse_image_size(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn label_files() {
        assert_eq!(
            parse_labels("# classes\nscratch\n\n dent \r\n"),
            ["scratch", "dent"]
        );
    }

    /// Item 12 of issue 14: a UTF-8 byte-order mark is not part of the first label; names
    /// with NUL or other control characters are replaced and said; `class<N>` names parse.
    #[test]
    fn bom_control_characters_and_default_names() {
        assert_eq!(parse_labels("\u{feff}scratch\ndent\n"), ["scratch", "dent"]);
        let mut names = vec![
            "ok".to_string(),
            "a\0b".into(),
            " ".into(),
            "tab\there".into(),
        ];
        let warnings = sanitize_names(&mut names);
        assert_eq!(names, ["ok", "class1", "class2", "class3"]);
        assert_eq!(warnings.len(), 3);
        assert!(
            warnings[0].contains("class 1 has an unusable name \"a\\0b\""),
            "{warnings:?}"
        );
        assert_eq!(default_class_id("class0"), Some(0));
        assert_eq!(default_class_id("class17"), Some(17));
        for bad in ["class", "class01", "classx", "klass1", "class-1"] {
            assert_eq!(default_class_id(bad), None, "{bad}");
        }
    }
}
