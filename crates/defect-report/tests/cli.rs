// SPDX-License-Identifier: MIT OR Apache-2.0
//! `defect-report` as a user runs it: records in (plain and gzipped, a rotated pair), a report
//! folder out; a folder with the user's files in it refused; unreadable lines named.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("defect-report-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn frame(utc: &str, verdict: &str, class: Option<&str>, model: &str) -> String {
    let detections = class.map_or(String::new(), |c| {
        format!(r#"{{"class_id":0,"class_name":"{c}","severity":"major","decision":"fail","confidence":0.75,"box":[1,2,3,4],"area":4,"peak_score":null,"mean_score":null,"classification":null}}"#)
    });
    format!(
        r#"{{"schema_version":3,"type":"frame","utc":"{utc}","frame":1,"source_id":"cam-1","model":{{"id":"{model}","name":"m","version":"{}","sha256":"00"}},"detections":[{detections}],"verdict":"{verdict}","inspected":true,"latency_ms":{{"inference":10.0,"total":12.5}}}}"#,
        model.split(':').nth(1).unwrap_or("")
    )
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_defect-report"))
        .args(args)
        .output()
        .unwrap()
}

fn write_gz(path: &Path, text: &str) {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(text.as_bytes()).unwrap();
    std::fs::write(path, e.finish().unwrap()).unwrap();
}

#[test]
fn a_rotated_pair_makes_one_report_with_every_record() {
    let d = temp("report");
    // Older file, rotated and gzipped: model 1.0 on the night shift.
    let mut old = String::new();
    for m in 0..60 {
        let v = if m % 10 == 0 { "FAIL" } else { "PASS" };
        old.push_str(&frame(
            &format!("2026-12-05T23:{m:02}:00.000Z"),
            v,
            (v == "FAIL").then_some("scratch"),
            "m:1.0:aa",
        ));
        old.push('\n');
    }
    write_gz(&d.join("records.ndjson.1.gz"), &old);
    // Current file: model 2.0 from midnight, a part, a drift episode, a broken line.
    let mut new = String::new();
    for m in 0..30 {
        let v = ["PASS", "REVIEW", "UNKNOWN"][m % 3];
        new.push_str(&frame(
            &format!("2026-12-06T00:{m:02}:00.000Z"),
            v,
            (v == "REVIEW").then_some("dent"),
            "m:2.0:bb",
        ));
        new.push('\n');
    }
    new.push_str(r#"{"schema_version":3,"type":"part","utc":"2026-12-06T00:10:00.000Z","source_id":"cam-1","part_id":"p1","verdict":"FAIL"}"#);
    new.push_str("\n{truncated\n");
    new.push_str(r#"{"type":"drift","utc":"2026-12-06T00:05:00.000Z","source_id":"cam-1","active":true,"episode":1,"features":[{"name":"brightness","score":0.8,"moved":true}]}"#);
    new.push('\n');
    std::fs::write(d.join("records.ndjson"), &new).unwrap();

    let out = d.join("report");
    let o = run(&[
        d.join("records.ndjson.1.gz").to_str().unwrap(),
        d.join("records.ndjson").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stdout.contains(
            "92 records (90 frames: FAIL 6, REVIEW 10, UNKNOWN 10; 1 parts; 1 drift episodes)"
        ),
        "{stdout}"
    );
    assert!(
        stderr.contains("records.ndjson:32:"),
        "the broken line is named: {stderr}"
    );
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    // Days and shifts: 60 frames on 2026-12-05 (night shift 22:00-06:00), 30 on 2026-12-06.
    assert!(
        md.contains("| 2026\\-12\\-05 | 60 | 10.00 % |")
            || md.contains("| 2026-12-05 | 60 | 10.00 % |"),
        "{md}"
    );
    assert!(md.contains("22:00\\-06:00") || md.contains("22:00-06:00"));
    assert!(md.contains("m:1.0:aa") && md.contains("m:2.0:bb"));
    assert!(md.contains("brightness 0.80"));
    for plot in ["rates", "parts", "classes", "confidence", "latency"] {
        let svg = std::fs::read_to_string(out.join(format!("plots/{plot}.svg"))).unwrap();
        assert!(
            svg.contains("<svg") && svg.contains("<text"),
            "{plot}.svg has text"
        );
        assert!(
            html.contains(&svg[..64.min(svg.len())]),
            "{plot} inline in the HTML"
        );
    }

    // The folder now holds a report: refused without --overwrite, the user's file untouched.
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    let again = run(&[
        d.join("records.ndjson").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));
    let replaced = run(&[
        d.join("records.ndjson").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-q",
        "--overwrite",
    ]);
    assert!(replaced.status.success());
    assert_eq!(
        std::fs::read_to_string(out.join("notes.txt")).unwrap(),
        "mine"
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn bad_arguments_are_named() {
    let d = temp("args");
    let o = run(&[
        d.join("missing.ndjson").to_str().unwrap(),
        "--out",
        d.join("r").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("missing.ndjson"));
    std::fs::write(d.join("a.ndjson"), "").unwrap();
    let o = run(&[
        d.join("a.ndjson").to_str().unwrap(),
        "--out",
        d.join("r").to_str().unwrap(),
        "--shifts",
        "06:30",
    ]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("--shifts"));
    std::fs::remove_dir_all(&d).unwrap();
}
