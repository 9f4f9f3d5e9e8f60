// SPDX-License-Identifier: MIT OR Apache-2.0
//! The contract between the elements is written once: no name of a meta, message, event or
//! field of `crates/defect-engine/src/meta/fields.rs` appears as a string literal anywhere
//! outside the meta modules (the plugin's `src/meta`, the engine's `meta`) in the sources of the
//! plugin, the engine and defect-replay. Names
//! that are ordinary words (`frame`, `label`, `width`...) count where the line reads or writes
//! a structure, a meta or a property; the others (`x_min`, `model-id`, `DefectVerdictMeta`...)
//! count everywhere.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The string literals of a line of Rust (not of its comment).
fn literals(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    let mut current: Option<String> = None;
    while let Some(c) = chars.next() {
        match (&mut current, c) {
            (None, '/') if chars.peek() == Some(&'/') => break,
            (None, '\'') => {
                // A char literal ('"') or a lifetime: skip a quoted char.
                let rest: String = chars.clone().take(3).collect();
                if rest.starts_with("\\") {
                    chars.nth(2);
                } else if rest.chars().nth(1) == Some('\'') {
                    chars.nth(1);
                }
            }
            (None, '"') => current = Some(String::new()),
            (Some(text), '\\') => {
                if let Some(next) = chars.next() {
                    text.push(next);
                }
            }
            (Some(_), '"') => out.push(current.take().unwrap()),
            (Some(text), c) => text.push(c),
            (None, _) => {}
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_meta_name_is_spelled_outside_the_meta_module() {
    let fields =
        std::fs::read_to_string(repo().join("crates/defect-engine/src/meta/fields.rs")).unwrap();
    let names: Vec<String> = fields
        .lines()
        .filter(|l| l.trim_start().starts_with("pub const"))
        .flat_map(literals)
        .collect();
    assert!(names.len() > 50, "{names:?}");
    assert!(names.iter().any(|n| n == "x_min") && names.iter().any(|n| n == "model-info"));
    let distinctive =
        |name: &str| name.contains(['-', '_']) || name.chars().any(|c| c.is_uppercase());
    const STRUCTURE_ACCESS: [&str; 12] = [
        ".get::<",
        ".get(",
        ".field(",
        "field_if_some(",
        ".param(",
        ".set(",
        "has_field(",
        ".value(",
        "builder(",
        ".name()",
        "property",
        "CustomMeta",
    ];
    let mut files = Vec::new();
    for dir in [
        "src",
        "crates/defect-engine/src",
        "crates/defect-replay/src",
    ] {
        rust_files(&repo().join(dir), &mut files);
    }
    let meta_dirs = [
        repo().join("src/meta"),
        repo().join("crates/defect-engine/src/meta"),
    ];
    let mut found = Vec::new();
    for file in files
        .iter()
        .filter(|f| !meta_dirs.iter().any(|m| f.starts_with(m)))
    {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let trimmed = line.trim_start();
            if trimmed.starts_with("//") {
                continue;
            }
            let access = STRUCTURE_ACCESS.iter().any(|a| line.contains(a));
            for literal in literals(line) {
                if names.contains(&literal) && (access || distinctive(&literal)) {
                    found.push(format!(
                        "{}:{}: {:?}: {}",
                        file.strip_prefix(repo()).unwrap().display(),
                        n + 1,
                        literal,
                        trimmed
                    ));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "meta names spelled outside the meta modules (use crate::meta's types or fields):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_literal_scanner_finds_what_it_must() {
    assert_eq!(literals(r#"s.get::<f64>("x_min") // "y_min""#), ["x_min"]);
    assert_eq!(literals(r#"let c = '"'; f("a\"b", "c")"#), ["a\"b", "c"]);
    assert_eq!(
        literals("fn f<'a>(x: &'a str) -> &'a str { \"label\" }"),
        ["label"]
    );
}
