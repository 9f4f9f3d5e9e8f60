// SPDX-License-Identifier: MIT OR Apache-2.0
//! `cargo run --release -p defect-report --example report_speed [-- RECORDS]`: how long a
//! report of RECORDS (default 1,000,000: a day of one camera at 12 fps) takes, and its peak
//! memory, plain and gzipped. Records are written as defectmetaconvert writes them (every
//! field of the schema, 0-3 detections a frame, a part every 12 frames), then a child
//! process makes the report so that its peak memory is its own. The baseline, measured in
//! the same run: reading the same bytes and counting lines (the floor any report pays for
//! I/O and decompression). Targets: under 10 s and 200 MB for 1,000,000 records. Wall time
//! depends on what else runs; CPU time (user + system) is printed too: on a busy machine it is
//! the figure to compare (divided by the cores the report used, it bounds the idle wall time).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use defect_report::{cpu_seconds, peak_rss_bytes, read, render};

const CLASSES: [&str; 6] = [
    "crazing",
    "inclusion",
    "patches",
    "pitted_surface",
    "rolled-in_scale",
    "scratches",
];

fn record(i: u64, rng: &mut u64) -> String {
    let mut next = || {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        *rng
    };
    let ms = 1_796_515_200_000u64 + i * 83; // 12 fps from 2026-12-06 00:00 UTC
    let s = ms / 1000;
    let utc = format!(
        "2026-12-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        6 + s.saturating_sub(1_796_515_200) / 86_400,
        (s / 3600) % 24,
        (s / 60) % 60,
        s % 60,
        ms % 1000
    );
    let n = next() % 4;
    let mut detections = Vec::new();
    for _ in 0..n {
        let c = (next() % 6) as usize;
        let conf = 0.25 + (next() % 700) as f64 / 1000.0;
        let x = (next() % 1800) as f64;
        let y = (next() % 1000) as f64;
        detections.push(format!(
            r#"{{"class_id":{c},"class_name":"{}","severity":"major","decision":"fail","confidence":{conf:.4},"box":[{x:.1},{y:.1},{:.1},{:.1}],"area":{:.1},"peak_score":null,"mean_score":null,"classification":null}}"#,
            CLASSES[c],
            x + 40.0,
            y + 30.0,
            1200.0
        ));
    }
    let verdict = if n == 0 {
        "PASS"
    } else if next() % 3 == 0 {
        "REVIEW"
    } else {
        "FAIL"
    };
    let mut line = format!(
        r#"{{"schema_version":3,"type":"frame","utc":"{utc}","pts_ns":{},"frame":{i},"source_id":"line-1","part_id":"p{}","model":{{"id":"surface-defects:2.0.0:827368157b90","name":"surface-defects","version":"2.0.0","sha256":"827368157b90aa11bb22cc33dd44ee55ff66778899aabbccddeeff0011223344"}},"policy_sha256":"0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0","task":"detect","anomaly_score":null,"detections":[{}],"verdict":"{verdict}","inspected":true,"carried":false,"source_frame":null,"reasons":[],"shadow":false,"counts":{{"critical":0,"major":{n},"minor":0,"cosmetic":0}},"latency_ms":{{"inference":{:.3},"total":{:.3}}},"capture_dropped":null}}"#,
        i * 83_333_333,
        i / 12,
        detections.join(","),
        30.0 + (next() % 1000) as f64 / 100.0,
        40.0 + (next() % 2000) as f64 / 100.0,
    );
    line.push('\n');
    if i % 12 == 11 {
        line.push_str(&format!(
            r#"{{"schema_version":3,"type":"part","utc":"{utc}","source_id":"line-1","part_id":"p{}","verdict":"{verdict}","shadow":false,"first_frame":{},"last_frame":{i},"frames":12,"inspected_frames":12,"counts":{{"critical":0,"major":1,"minor":0,"cosmetic":0}},"model_id":"surface-defects:2.0.0:827368157b90"}}"#,
            i / 12,
            i - 11
        ));
        line.push('\n');
    }
    line
}

fn generate(path: &Path, frames: u64, gz: bool) -> u64 {
    let file = std::fs::File::create(path).expect("create the records file");
    let mut out: Box<dyn Write> = if gz {
        Box::new(flate2::write::GzEncoder::new(
            std::io::BufWriter::new(file),
            flate2::Compression::fast(),
        ))
    } else {
        Box::new(std::io::BufWriter::new(file))
    };
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut records = 0;
    for i in 0..frames {
        let r = record(i, &mut rng);
        records += r.matches('\n').count() as u64;
        out.write_all(r.as_bytes()).unwrap();
    }
    out.flush().unwrap();
    drop(out);
    records
}

fn cpu() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("?")
        .trim()
        .to_owned();
    let flags: Vec<&str> = info
        .lines()
        .find(|l| l.starts_with("flags"))
        .map(|l| {
            l.split_whitespace()
                .filter(|f| f.starts_with("avx") || f.contains("vnni") || f.starts_with("sse4"))
                .collect()
        })
        .unwrap_or_default();
    format!(
        "{model}; {} cores; {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        flags.join(" ")
    )
}

/// Child: one report of `path`, printing seconds and peak memory.
fn measure(path: &Path, out: &Path) {
    let t = Instant::now();
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 8);
    let stats =
        read::read_files(&[path.to_path_buf()], 0, threads, Default::default()).expect("read");
    let options = render::Options {
        title: "speed".into(),
        shifts: render::Shifts::parse("06:00,14:00,22:00").unwrap(),
        files: vec![path.display().to_string()],
        top_classes: 8,
    };
    let files = render::render(&stats, &options);
    defect_report::out::write_report(out, &files, true).expect("write");
    println!(
        "{} {} {} {}",
        t.elapsed().as_secs_f64(),
        peak_rss_bytes(),
        stats.records,
        cpu_seconds()
    );
}

/// The baseline: the same bytes read (and decompressed) and their lines counted.
fn baseline(path: &Path, gz: bool) -> (f64, f64) {
    let t = Instant::now();
    let cpu0 = cpu_seconds();
    let file = std::fs::File::open(path).unwrap();
    let reader: Box<dyn Read> = if gz {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut reader = BufReader::with_capacity(1 << 20, reader);
    let mut lines = 0u64;
    loop {
        let buf = reader.fill_buf().unwrap();
        if buf.is_empty() {
            break;
        }
        lines += buf.iter().filter(|b| **b == b'\n').count() as u64;
        let n = buf.len();
        reader.consume(n);
    }
    assert!(lines > 0);
    (t.elapsed().as_secs_f64(), cpu_seconds() - cpu0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--measure") {
        return measure(Path::new(&args[2]), Path::new(&args[3]));
    }
    let frames: u64 = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000)
        * 12
        / 13;
    let dir = std::env::temp_dir().join(format!("defect-report-speed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    println!("CPU: {}", cpu());
    for gz in [false, true] {
        let path: PathBuf = dir.join(if gz {
            "records.ndjson.gz"
        } else {
            "records.ndjson"
        });
        let records = generate(&path, frames, gz);
        let size = std::fs::metadata(&path).unwrap().len();
        let base = baseline(&path, gz);
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--measure",
                path.to_str().unwrap(),
                dir.join("out").to_str().unwrap(),
            ])
            .output()
            .expect("run the measuring child");
        let text = String::from_utf8_lossy(&child.stdout);
        let v: Vec<f64> = text
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        assert!(
            child.status.success() && v.len() == 4,
            "child failed: {}",
            String::from_utf8_lossy(&child.stderr)
        );
        assert_eq!(v[2] as u64, records, "the report counted every record");
        let (base_wall, base_cpu) = base;
        println!(
            "{}: {records} records, {:.0} MB: report {:.2} s wall, {:.2} s CPU (target < 10 s), peak memory {:.0} MB (target < 200 MB); baseline (read{} + count lines) {:.2} s wall, {:.2} s CPU: report/baseline CPU {:.1}x",
            if gz { "gzipped" } else { "plain" },
            size as f64 / 1e6,
            v[0],
            v[3],
            v[1] / 1e6,
            if gz { " + gunzip" } else { "" },
            base_wall,
            base_cpu,
            v[3] / base_cpu
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
