// SPDX-License-Identifier: MIT OR Apache-2.0
//! `defect-replay`: replays recorded video or an image folder through the real
//! `defectdetect` element (same model, same policy) and scores it against ground truth.
//!
//! ```text
//! defect-replay --model M.onnx (--video FILE | --images DIR) --truth GT.json|LABELS_DIR
//!               [--policy P.toml] [--labels L.txt] [--conf 0.25] [--threads N]
//!               [--frames-per-part N] [--out DIR]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use gstdefect::replay::report::score;
use gstdefect::replay::truth::GroundTruth;
use gstdefect::replay::{ReplayOptions, Source, replay};

const USAGE: &str = "usage: defect-replay --model M.onnx (--video FILE | --images DIR) --truth GT.json|LABELS_DIR \
[--policy P.toml] [--labels L.txt] [--conf 0.25] [--threads N] [--frames-per-part N] [--out DIR]";

struct Args {
    options: ReplayOptions,
    source: Source,
    truth: PathBuf,
    out: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut options = ReplayOptions::default();
    let (mut source, mut truth, mut out) = (None, None, None);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--model" => options.model = value()?.into(),
            "--policy" => options.policy = Some(value()?.into()),
            "--labels" => options.labels = Some(value()?.into()),
            "--conf" => {
                options.conf_threshold =
                    Some(value()?.parse().map_err(|_| "--conf needs a number")?)
            }
            "--threads" => {
                options.threads = value()?.parse().map_err(|_| "--threads needs a number")?
            }
            "--frames-per-part" => {
                options.frames_per_part = value()?
                    .parse()
                    .map_err(|_| "--frames-per-part needs a number")?
            }
            "--video" => source = Some(Source::Video(value()?.into())),
            "--images" => source = Some(Source::Images(value()?.into())),
            "--truth" => truth = Some(PathBuf::from(value()?)),
            "--out" => out = Some(PathBuf::from(value()?)),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    if options.model.as_os_str().is_empty() {
        return Err(format!("--model is required\n{USAGE}"));
    }
    Ok(Args {
        options,
        source: source.ok_or(format!("--video or --images is required\n{USAGE}"))?,
        truth: truth.ok_or(format!("--truth is required\n{USAGE}"))?,
        out,
    })
}

fn progress_bar(done: u64, total: u64, started: std::time::Instant) {
    let fps = done as f64 / started.elapsed().as_secs_f64().max(1e-9);
    if total > 0 {
        let filled = (30 * done / total.max(1)) as usize;
        eprint!(
            "\r[{}{}] {done}/{total} frames  {fps:.1} frames/s ",
            "=".repeat(filled),
            " ".repeat(30 - filled.min(30))
        );
    } else if done.is_multiple_of(10) {
        eprint!("\r{done} frames  {fps:.1} frames/s ");
    }
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    gst::init().map_err(|e| e.to_string())?;
    gstdefect::plugin_register_static().map_err(|e| e.to_string())?;
    let started = std::time::Instant::now();
    let replay = replay(&args.source, &args.options, |done, total| {
        progress_bar(done, total, started)
    })
    .map_err(|e| e.to_string())?;
    eprintln!();
    let truth = GroundTruth::load(&args.truth, &replay.class_names).map_err(|e| e.to_string())?;
    let conf = args.options.conf_threshold.unwrap_or(0.25) as f32;
    let report = score(&replay, &truth, &vec![conf; replay.class_names.len()])
        .map_err(|e| format!("{}: {e}", args.truth.display()))?;
    print!("{}", report.table());
    if let Some(out) = args.out {
        std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
        let path = out.join("report.json");
        let text = serde_json::to_string_pretty(&report.to_json()).map_err(|e| e.to_string())?;
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("defect-replay: {message}");
            ExitCode::FAILURE
        }
    }
}
