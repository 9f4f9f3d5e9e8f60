// SPDX-License-Identifier: MIT OR Apache-2.0
//! `defect-report`: a Markdown + HTML trend report from NDJSON verdict records.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

use defect_report::{out, read, render, time};

/// Trend report from defectmetaconvert's NDJSON records (frames, parts, drift episodes):
/// FAIL / REVIEW / UNKNOWN rates per hour, shift and day, per-class counts and confidence
/// trends, parts, model versions over time, drift episodes and latency, as report.md (plots
/// as SVG files in plots/) and a self-contained report.html.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// NDJSON record files, plain or gzipped (rotated files too), read in the order given
    #[arg(required = true)]
    records: Vec<PathBuf>,
    /// Folder for the report (created; must be empty unless --overwrite)
    #[arg(long, short)]
    out: PathBuf,
    /// Replace an earlier report's own files in --out (nothing else there is touched)
    #[arg(long)]
    overwrite: bool,
    /// Shift starts in local time, whole hours
    #[arg(long, default_value = "06:00,14:00,22:00")]
    shifts: String,
    /// Local time as an offset from UTC (hours, shifts and days follow it), e.g. +01:00
    #[arg(long, default_value = "Z", allow_hyphen_values = true)]
    utc_offset: String,
    /// Report title
    #[arg(long, default_value = "Inspection trend report")]
    title: String,
    /// Classes drawn in the per-class plots (the most frequent)
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=64))]
    top_classes: u32,
    /// Parsing threads (0: one a core)
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// No progress bar
    #[arg(long, short)]
    quiet: bool,
}

fn main() {
    let cli = Cli::parse();
    if let Err(message) = run(cli) {
        eprintln!("defect-report: {message}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let shifts = render::Shifts::parse(&cli.shifts).map_err(|e| format!("--shifts: {e}"))?;
    let offset_s = time::parse_offset(&cli.utc_offset).ok_or_else(|| {
        format!(
            "--utc-offset: {:?} is not Z or +hh:mm / -hh:mm",
            cli.utc_offset
        )
    })?;
    let mut total = 0u64;
    for path in &cli.records {
        let m = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if !m.is_file() {
            return Err(format!("{}: not a regular file", path.display()));
        }
        total += m.len();
    }
    let threads = match cli.threads {
        0 => std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(1, 8),
        n => n,
    };
    let started = Instant::now();
    let progress = Arc::new(AtomicU64::new(0));
    let bar = if cli.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total)
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} reading {bytes}/{total_bytes} {wide_bar} {eta}")
            .map_err(|e| e.to_string())?,
    );
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ticker = {
        let (bar, progress, done) = (bar.clone(), progress.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                bar.set_position(progress.load(Ordering::Relaxed));
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let result = read::read_files(&cli.records, offset_s, threads, progress.clone());
    done.store(true, Ordering::Relaxed);
    let _ = ticker.join();
    bar.finish_and_clear();
    let stats = result.map_err(|e| e.to_string())?;
    let options = render::Options {
        title: cli.title,
        shifts,
        files: cli
            .records
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        top_classes: cli.top_classes as usize,
    };
    let files = render::render(&stats, &options);
    let written = out::write_report(&cli.out, &files, cli.overwrite).map_err(|e| e.to_string())?;
    for p in &stats.problems {
        eprintln!(
            "defect-report: warning: {}:{}: {}",
            options.files.get(p.file).map_or("?", |s| s.as_str()),
            p.line,
            p.message
        );
    }
    if stats.malformed > stats.problems.len() as u64 {
        eprintln!(
            "defect-report: warning: {} more unreadable line(s)",
            stats.malformed - stats.problems.len() as u64
        );
    }
    let f = stats.frame_totals();
    println!(
        "defect-report: {} records ({} frames: FAIL {}, REVIEW {}, UNKNOWN {}; {} parts; {} drift episodes) in {:.2} s; wrote {}",
        stats.records,
        f.iter().sum::<u64>(),
        f[1],
        f[2],
        f[3],
        stats.part_totals().iter().sum::<u64>(),
        stats.episodes.len(),
        started.elapsed().as_secs_f64(),
        written
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
