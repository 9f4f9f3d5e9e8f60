// SPDX-License-Identifier: MIT OR Apache-2.0
//! `defect-replay`: replays recorded video or an image folder through the real
//! `defectdetect` element (same model, same policy) and scores it against ground truth.
//!
//! Everything is checked before the first frame is decoded: the options, the ground truth
//! (every problem at once, with the image or annotation id), the image files against the
//! truth, the model and policy (loaded by the element), the truth's classes against the
//! model's. `defect-replay --help` documents every option.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressState, ProgressStyle};

use gstdefect::policy::{Policy, parse_policy};
use gstdefect::replay::report::{Report, compare, score, sweep, sweep_max_recall, write_outputs};
use gstdefect::replay::truth::GroundTruth;
use gstdefect::replay::{ReplayOptions, Session, Source, image_size};

/// Replays recorded video or a folder of images through `defectdetect` (the same model and
/// policy as on the line) and scores detections and verdicts against ground truth.
///
/// Prints per-class precision, recall, F1 and AP, mAP, verdict escapes and false rejects per
/// frame and per part, and latency. Precision, recall and F1 use each class's policy
/// `min-confidence` (at least --conf). Verdicts are scored against the truth boxes the policy
/// inspects: a frame is defective when a truth box has its centre in the policy's region and
/// in no ignore mask.
#[derive(Debug, Parser)]
#[command(name = "defect-replay", version, about, long_about)]
#[command(group = clap::ArgGroup::new("source").required(true).args(["video", "images"]))]
struct Cli {
    /// The ONNX model (as `defectdetect model=`).
    #[arg(long, value_name = "MODEL.onnx")]
    model: PathBuf,

    /// A recorded video (any file decodebin reads); frames are matched to a COCO truth by its
    /// images' `frame_index` (else its images in id order are the frames in order), to a YOLO
    /// folder by the number at the end of each label file's name.
    #[arg(long, value_name = "FILE")]
    video: Option<PathBuf>,

    /// A folder of PNG or JPEG images (one kind), replayed in file-name order; each image is
    /// matched to the truth by file name (COCO `file_name`, or the YOLO label file's stem).
    #[arg(long, value_name = "DIR")]
    images: Option<PathBuf>,

    /// Ground truth: a COCO JSON file (its image ids, file names and category ids are kept
    /// in the exports) or a folder of YOLO .txt label files (class ids of the model).
    #[arg(long, value_name = "GT.json|LABELS_DIR")]
    truth: PathBuf,

    /// Inspection policy (TOML), as `defectdetect policy=`; without one every detection
    /// above --conf fails its frame.
    #[arg(long, value_name = "P.toml")]
    policy: Option<PathBuf>,

    /// Class names, one a line, overriding the model's `names` metadata.
    #[arg(long, value_name = "L.txt")]
    labels: Option<PathBuf>,

    /// Confidence threshold of the detector, in [0, 1] (default: the element's, 0.25).
    /// Replay with a low one (e.g. 0.01) to sweep thresholds widely.
    #[arg(long, value_name = "0..1", value_parser = parse_unit_interval)]
    conf: Option<f64>,

    /// ONNX Runtime intra-op threads (0 = ONNX Runtime's default).
    #[arg(long, value_name = "N", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=1024))]
    threads: u32,

    /// Group every N frames into one part, as `defectdetect frames-per-part` (0 = none).
    #[arg(long, value_name = "N", default_value_t = 0)]
    frames_per_part: u32,

    /// Write report.json, report.md, plots, truth.coco.json and predictions.coco.json here.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,

    /// Write DIR/swept-policy.toml (--out, else the current folder): per class, the
    /// threshold reaching this recall with the best precision (where it is out of reach, the
    /// threshold of the highest recall reached, said in the file's header). In (0, 1].
    #[arg(long, value_name = "R", value_parser = parse_recall)]
    sweep_recall: Option<f64>,

    /// A second model to replay and compare side by side (B); its outputs go to DIR/b.
    #[arg(long, value_name = "M2.onnx")]
    model_b: Option<PathBuf>,

    /// A second policy for B (with --model-b, or alone to compare two policies).
    #[arg(long, value_name = "P2.toml")]
    policy_b: Option<PathBuf>,

    /// Progress output on stderr: a bar with frames and time left on a terminal, a plain
    /// line every 10 % or 10 s otherwise (auto), or either, or none.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    progress: ProgressMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ProgressMode {
    Auto,
    Bar,
    Lines,
    None,
}

fn parse_unit_interval(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if !(0.0..=1.0).contains(&value) {
        return Err(format!("{text} is not in [0, 1]"));
    }
    Ok(value)
}

fn parse_recall(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if !(value > 0.0 && value <= 1.0) {
        return Err(format!("{text} is not in (0, 1]"));
    }
    Ok(value)
}

/// Progress on stderr: an indicatif bar, or plain periodic lines.
struct Progress {
    bar: Option<ProgressBar>,
    lines: bool,
    started: Instant,
    last_line: Instant,
    last_fraction: f64,
    done: u64,
}

impl Progress {
    fn new(mode: ProgressMode, what: &str) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let (bar, lines) = match mode {
            ProgressMode::Auto if terminal => (true, false),
            ProgressMode::Auto => (false, true),
            ProgressMode::Bar => (true, false),
            ProgressMode::Lines => (false, true),
            ProgressMode::None => (false, false),
        };
        if lines {
            eprintln!("defect-replay: replaying {what}");
        }
        let bar = bar.then(|| {
            let bar = ProgressBar::new(0).with_message(what.to_string());
            bar.set_style(spinner_style());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Self {
            bar,
            lines,
            started: Instant::now(),
            last_line: Instant::now(),
            last_fraction: 0.0,
            done: 0,
        }
    }

    fn update(&mut self, done: u64, total: u64) {
        self.done = done;
        if let Some(bar) = &self.bar {
            if total > 0 && bar.length() != Some(total) {
                if bar.length().unwrap_or(0) == 0 {
                    bar.set_style(bar_style());
                }
                bar.set_length(total);
            }
            bar.set_position(done);
        }
        if !self.lines {
            return;
        }
        let fraction = if total > 0 {
            done as f64 / total as f64
        } else {
            0.0
        };
        if fraction - self.last_fraction < 0.1 && self.last_line.elapsed() < Duration::from_secs(10)
        {
            return;
        }
        self.last_fraction = fraction;
        self.last_line = Instant::now();
        let elapsed = self.started.elapsed().as_secs_f64();
        let fps = done as f64 / elapsed.max(1e-9);
        if total > 0 {
            let left = (total.saturating_sub(done)) as f64 / fps.max(1e-9);
            eprintln!(
                "defect-replay: {done}/{total} frames ({:.0} %), {fps:.1} frames/s, about {} left",
                100.0 * fraction,
                human(left)
            );
        } else {
            eprintln!("defect-replay: {done} frames, {fps:.1} frames/s");
        }
    }

    fn finish(self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if self.lines || self.bar.is_some() {
            let elapsed = self.started.elapsed().as_secs_f64();
            eprintln!(
                "defect-replay: replayed {} frames in {} ({:.1} frames/s)",
                self.done,
                human(elapsed),
                self.done as f64 / elapsed.max(1e-9)
            );
        }
    }
}

/// Frames per second with one decimal (indicatif's `{per_sec}` prints four).
fn rate(state: &ProgressState, out: &mut dyn std::fmt::Write) {
    let _ = write!(out, "{:.1} frames/s", state.per_sec());
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{msg} [{bar:30}] {pos}/{len} frames, {rate}, {eta} left (elapsed {elapsed})",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .with_key("rate", rate)
    .progress_chars("=> ")
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {msg}: {pos} frames, {rate}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .with_key("rate", rate)
}

fn human(seconds: f64) -> String {
    let s = seconds.round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{seconds:.1} s")
    }
}

fn load_policy(path: Option<&Path>) -> Result<Option<Policy>, String> {
    let Some(path) = path else { return Ok(None) };
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_policy(&text, &path.display().to_string())
        .map(Some)
        .map_err(|e| e.to_string())
}

/// One configuration to replay (A or B), checked and opened.
struct Run {
    label: &'static str,
    options: ReplayOptions,
    policy: Option<Policy>,
    session: Session,
}

/// Checks a configuration before anything is replayed and opens its pipeline (the element
/// loads the model and policy); the truth's classes must be the model's.
fn open(
    label: &'static str,
    source: &Source,
    options: ReplayOptions,
    truth: &GroundTruth,
) -> Result<Run, String> {
    let policy = load_policy(options.policy.as_deref())?;
    let session = Session::open(source, &options).map_err(|e| e.to_string())?;
    truth
        .classes_for(session.class_names())
        .map_err(|e| e.to_string())?;
    Ok(Run {
        label,
        options,
        policy,
        session,
    })
}

/// Checks that each path given exists, all at once.
fn check_paths(cli: &Cli) -> Result<(), String> {
    let mut problems = Vec::new();
    let mut file = |flag: &str, path: Option<&PathBuf>| {
        if let Some(path) = path
            && !path.is_file()
        {
            problems.push(format!("--{flag} {}: no such file", path.display()));
        }
    };
    file("model", Some(&cli.model));
    file("video", cli.video.as_ref());
    file("policy", cli.policy.as_ref());
    file("labels", cli.labels.as_ref());
    file("model-b", cli.model_b.as_ref());
    file("policy-b", cli.policy_b.as_ref());
    if let Some(dir) = &cli.images
        && !dir.is_dir()
    {
        problems.push(format!("--images {}: no such folder", dir.display()));
    }
    if !cli.truth.exists() {
        problems.push(format!(
            "--truth {}: no such file or folder",
            cli.truth.display()
        ));
    }
    if let Some(out) = &cli.out
        && out.exists()
        && !out.is_dir()
    {
        problems.push(format!(
            "--out {}: exists and is not a folder",
            out.display()
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// For an image folder: each file's size from its header, checked against the truth.
fn check_images(dir: &Path, truth: &GroundTruth) -> Result<(), String> {
    let (files, _) = gstdefect::replay::image_files(dir).map_err(|e| e.to_string())?;
    let mut sized = Vec::new();
    let mut problems = Vec::new();
    for file in files {
        match image_size(&file) {
            Ok(size) => sized.push((file, size)),
            Err(e) => problems.push(format!("{}: {e}", file.display())),
        }
    }
    if !problems.is_empty() {
        return Err(problems.join("\n"));
    }
    truth.match_files(&sized).map_err(|e| e.to_string())
}

fn run() -> Result<(), String> {
    let cli = Cli::parse();
    // The truth first: a problem there costs no model load and no frame.
    check_paths(&cli)?;
    let truth = GroundTruth::load(&cli.truth).map_err(|e| e.to_string())?;
    let source = match (&cli.video, &cli.images) {
        (Some(video), _) => Source::Video(video.clone()),
        (None, Some(dir)) => {
            check_images(dir, &truth)?;
            Source::Images(dir.clone())
        }
        (None, None) => unreachable!("clap requires --video or --images"),
    };
    if let Some(out) = &cli.out {
        std::fs::create_dir_all(out).map_err(|e| format!("--out {}: {e}", out.display()))?;
    }
    gst::init().map_err(|e| e.to_string())?;
    gstdefect::plugin_register_static().map_err(|e| e.to_string())?;

    let options = ReplayOptions {
        model: cli.model.clone(),
        policy: cli.policy.clone(),
        labels: cli.labels.clone(),
        conf_threshold: cli.conf,
        threads: cli.threads,
        frames_per_part: cli.frames_per_part,
    };
    let mut runs = vec![open("A", &source, options.clone(), &truth)?];
    if cli.model_b.is_some() || cli.policy_b.is_some() {
        let mut options_b = options;
        if let Some(model) = &cli.model_b {
            options_b.model = model.clone();
        }
        if let Some(policy) = &cli.policy_b {
            options_b.policy = Some(policy.clone());
        }
        runs.push(open("B", &source, options_b, &truth)?);
    }

    let mut reports = Vec::new();
    for run in runs {
        let what = format!(
            "{} through {}",
            match &source {
                Source::Video(path) | Source::Images(path) => path.display().to_string(),
            },
            run.options.model.display()
        );
        let mut progress = Progress::new(cli.progress, &what);
        let replay = run
            .session
            .run(|done, total| progress.update(done, total))
            .map_err(|e| e.to_string())?;
        progress.finish();
        let conf = run.options.conf_threshold.unwrap_or(0.25) as f32;
        let thresholds: Vec<f32> = replay
            .class_names
            .iter()
            .map(|name| {
                run.policy
                    .as_ref()
                    .map_or(conf, |p| p.rule(name).min_confidence.max(conf))
            })
            .collect();
        let report =
            score(&replay, &truth, &thresholds, run.policy.as_ref()).map_err(|e| e.to_string())?;
        if run.label == "B" {
            print!("\nB:\n");
        }
        print!("{}", report.table());
        if let Some(out) = &cli.out {
            let dir = if run.label == "B" {
                out.join("b")
            } else {
                out.clone()
            };
            for path in write_outputs(&dir, &report, &replay)
                .map_err(|e| format!("{}: {e}", dir.display()))?
            {
                eprintln!("wrote {}", path.display());
            }
        }
        if run.label == "A"
            && let Some(target) = cli.sweep_recall
        {
            let out = cli.out.clone().unwrap_or_else(|| PathBuf::from("."));
            write_swept_policy(&out, &report, run.policy.clone(), target)?;
        }
        reports.push(report);
    }
    if let [a, b] = reports.as_slice() {
        print!("{}", compare(a, b, "A", "B"));
    }
    Ok(())
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

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("defect-replay: {message}");
            ExitCode::FAILURE
        }
    }
}
