// SPDX-License-Identifier: MIT OR Apache-2.0
//! `defect-replay`: replays recorded video or an image folder through the real
//! `defectdetect` element (same model, same policy) and scores it against ground truth.
//!
//! ```text
//! defect-replay --model M.onnx (--video FILE | --images DIR) --truth GT.json|LABELS_DIR
//!               [--policy P.toml] [--labels L.txt] [--conf 0.25] [--threads N]
//!               [--frames-per-part N] [--out DIR] [--sweep-recall 0.9]
//!               [--model-b M2.onnx] [--policy-b P2.toml]
//! ```
//! Precision, recall and F1 use each class's policy `min-confidence` (at least `--conf`).
//! Verdicts are scored against the truth boxes the policy inspects: a frame is defective when a
//! truth box has its centre in the policy's region and in no ignore mask.
//! `--sweep-recall R` writes `DIR/swept-policy.toml`: per class, the threshold reaching
//! recall R with the best precision (where R is out of reach, the threshold of the highest recall
//! reached, said in the file's header) (replay with `--conf` low, e.g. 0.01, to sweep widely).
//! `--model-b`/`--policy-b` replay a second configuration and print both side by side.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use gstdefect::policy::{Policy, parse_policy};
use gstdefect::replay::report::{Report, compare, score, sweep, sweep_max_recall, write_outputs};
use gstdefect::replay::truth::GroundTruth;
use gstdefect::replay::{ReplayOptions, Source, replay};

const USAGE: &str = "usage: defect-replay --model M.onnx (--video FILE | --images DIR) --truth GT.json|LABELS_DIR \
[--policy P.toml] [--labels L.txt] [--conf 0.25] [--threads N] [--frames-per-part N] [--out DIR] \
[--sweep-recall 0.9] [--model-b M2.onnx] [--policy-b P2.toml]";

struct Args {
    options: ReplayOptions,
    source: Source,
    truth: PathBuf,
    out: Option<PathBuf>,
    sweep_recall: Option<f64>,
    model_b: Option<PathBuf>,
    policy_b: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut options = ReplayOptions::default();
    let (mut source, mut truth, mut out, mut sweep_recall, mut model_b, mut policy_b) =
        (None, None, None, None, None, None);
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
            "--sweep-recall" => {
                sweep_recall = Some(
                    value()?
                        .parse()
                        .map_err(|_| "--sweep-recall needs a number")?,
                )
            }
            "--model-b" => model_b = Some(PathBuf::from(value()?)),
            "--policy-b" => policy_b = Some(PathBuf::from(value()?)),
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
        sweep_recall,
        model_b,
        policy_b,
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

fn load_policy(path: Option<&Path>) -> Result<Option<Policy>, String> {
    let Some(path) = path else { return Ok(None) };
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_policy(&text, &path.display().to_string())
        .map(Some)
        .map_err(|e| e.to_string())
}

/// Replays one configuration and scores it.
fn run_one(
    args: &Args,
    options: &ReplayOptions,
) -> Result<(Report, gstdefect::replay::Replay, Option<Policy>), String> {
    let policy = load_policy(options.policy.as_deref())?;
    let started = std::time::Instant::now();
    eprintln!("replaying {} through defectdetect", options.model.display());
    let replay = replay(&args.source, options, |done, total| {
        progress_bar(done, total, started)
    })
    .map_err(|e| e.to_string())?;
    eprintln!();
    let truth = GroundTruth::load(&args.truth, &replay.class_names).map_err(|e| e.to_string())?;
    let conf = options.conf_threshold.unwrap_or(0.25) as f32;
    let thresholds: Vec<f32> = replay
        .class_names
        .iter()
        .map(|name| {
            policy
                .as_ref()
                .map_or(conf, |p| p.rule(name).min_confidence.max(conf))
        })
        .collect();
    let report = score(&replay, &truth, &thresholds, policy.as_ref())
        .map_err(|e| format!("{}: {e}", args.truth.display()))?;
    Ok((report, replay, policy))
}

fn write_swept_policy(
    out: &Path,
    report: &Report,
    base: Option<Policy>,
    target: f64,
) -> Result<(), String> {
    let mut policy = base.unwrap_or_else(Policy::fail_on_any_detection);
    println!("threshold sweep for recall >= {target}:");
    let mut short = Vec::new();
    let fallback = sweep_max_recall(report);
    for (class, point) in sweep(report, target).into_iter().enumerate() {
        let name = &report.class_names[class];
        match (point, fallback[class]) {
            (Some(p), _) => {
                println!(
                    "  {name:<18} min-confidence {:.4}  precision {:.3}  recall {:.3}",
                    p.threshold, p.precision, p.recall
                );
                policy.set_min_confidence(name, p.threshold);
            }
            // Out of reach: the threshold of the highest recall reached, said on stdout and in
            // the policy's header (the replay's --conf bounds how low it can go).
            (None, Some(p)) => {
                println!(
                    "  {name:<18} min-confidence {:.4}  precision {:.3}  recall {:.3} \
                     (the highest reached; {target} is out of reach)",
                    p.threshold, p.precision, p.recall
                );
                policy.set_min_confidence(name, p.threshold);
                short.push(format!("{name} {:.3}", p.recall));
            }
            (None, None) => println!("  {name:<18} never found; left as it was"),
        }
    }
    let short = if short.is_empty() {
        String::new()
    } else {
        format!(
            "# Recall {target} out of reach for: {} (their thresholds give the highest recall reached)\n",
            short.join(", ")
        )
    };
    let path = out.join("swept-policy.toml");
    let text = format!(
        "# Written by defect-replay --sweep-recall {target} for model {}\n{short}{}",
        report.model_id,
        policy.to_toml()
    );
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    gst::init().map_err(|e| e.to_string())?;
    gstdefect::plugin_register_static().map_err(|e| e.to_string())?;
    let (report, replay, policy) = run_one(&args, &args.options)?;
    print!("{}", report.table());
    if let Some(out) = &args.out {
        for path in
            write_outputs(out, &report, &replay).map_err(|e| format!("{}: {e}", out.display()))?
        {
            eprintln!("wrote {}", path.display());
        }
    }
    if let Some(target) = args.sweep_recall {
        let out = args.out.clone().unwrap_or_else(|| PathBuf::from("."));
        std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
        write_swept_policy(&out, &report, policy, target)?;
    }
    if args.model_b.is_some() || args.policy_b.is_some() {
        let mut options_b = args.options.clone();
        if let Some(model) = &args.model_b {
            options_b.model = model.clone();
        }
        if let Some(policy) = &args.policy_b {
            options_b.policy = Some(policy.clone());
        }
        let (report_b, replay_b, _) = run_one(&args, &options_b)?;
        print!("\nB:\n{}\n", report_b.table());
        print!("{}", compare(&report, &report_b, "A", "B"));
        if let Some(out) = &args.out {
            write_outputs(&out.join("b"), &report_b, &replay_b).map_err(|e| e.to_string())?;
        }
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
