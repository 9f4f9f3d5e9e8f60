// SPDX-License-Identifier: MIT OR Apache-2.0
//! `defect-replay`: replays recorded video or an image folder through the real
//! `defectdetect` element (same model, same policy) and scores it against ground truth.
//!
//! Everything is checked before the first frame is decoded: the options, the ground truth
//! (every problem at once, with the image or annotation id), the image files against the
//! truth, the model and policy (loaded by the element), the truth's classes against the
//! model's. `defect-replay --help` documents every option.
//!
//! Each task of `defectdetect` is scored: detectors against boxes (COCO or YOLO), classifiers
//! against each image's class, anomaly models against good/defective labels and optional
//! masks (CSV or COCO; see `defect_replay::replay::labels`).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressState, ProgressStyle};

use defect_replay::replay::image_report::{
    AnomalyReport, ClassifyReport, score_anomaly, score_classification, write_image_outputs,
};
use defect_replay::replay::labels::{EmptyMasks, ImageTruth, LabelKind, MaskTruth, check_masks};
use defect_replay::replay::report::{
    Report, agreement, compare, score, sweep, sweep_max_recall, write_outputs,
};
use defect_replay::replay::truth::GroundTruth;
use defect_replay::replay::{Replay, ReplayOptions, Session, Source, image_size};
use defect_replay::replay::{onnx_meta, output};
use gstdefect::policy::{Policy, parse_policy};

/// Replays recorded video or a folder of images through `defectdetect` (the same model and
/// policy as on the line) and scores its results and verdicts against ground truth.
///
/// Detectors: per-class precision, recall, F1 and AP, mAP, verdict escapes and false rejects
/// per frame and per part, and latency. Precision, recall and F1 use each class's policy
/// `min-confidence` (at least --conf). Verdicts are scored against the truth boxes the policy
/// inspects: a frame is defective when a truth box has its centre in the policy's region and
/// in no ignore mask.
///
/// Segmentation models: the detectors' figures, and against a truth with masks (COCO
/// segmentation polygons or RLE, or PNG instance masks) COCO mask AP@0.5, AP@0.75 and
/// AP@[.5:.95] per class, as pycocotools' COCOeval "segm" computes them, and the median error
/// of the element's defect area and length on the instances it found.
///
/// Classifiers (an image folder; truth: each image's class): top-1 (and top-k) accuracy,
/// per-class precision, recall and F1, the confusion matrix. Anomaly models (an image folder;
/// truth: good or defective per image, masks optional): image AUROC, the F1-optimal image
/// threshold, and with --masks pixel AUROC and the F1-optimal pixel threshold.
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

    /// Ground truth. Detectors: a COCO JSON file (its image ids, file names and category ids
    /// are kept in the exports) or a folder of YOLO .txt label files (class ids of the
    /// model). Segmentation models: a COCO JSON file whose annotations carry a `segmentation`
    /// (polygons or RLE; crowd regions allowed), or a folder of PNG instance masks
    /// (DIR/<class name>/<image stem>.png, greyscale, each non-zero value one instance).
    /// Classifiers and anomaly models: a CSV file of `file,label` lines (a class name
    /// of the model; for anomaly models `good` or `defective`) or a COCO JSON file (a
    /// classifier's images carry annotations of one category each; an anomaly model's image is
    /// defective when it has any annotation).
    #[arg(
        long,
        value_name = "GT.json|GT.csv|LABELS_DIR|MASKS_DIR",
        required_unless_present = "baseline_out"
    )]
    truth: Option<PathBuf>,

    /// The model's task, as `defectdetect task=` (default: the model's `task` metadata, else
    /// what its outputs look like).
    #[arg(long, value_enum)]
    task: Option<TaskArg>,

    /// Classifiers: how many of the most probable classes the element attaches (its `top-k`);
    /// above 1 the report adds the top-k accuracy.
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..=1000))]
    top_k: Option<u32>,

    /// Anomaly models: a folder of PNG masks named after the images' stems (non-zero pixel =
    /// defective), each of its image's size; a good image may have none, a defective one needs
    /// one. Adds pixel AUROC and the F1-optimal pixel threshold.
    #[arg(long, value_name = "DIR")]
    masks: Option<PathBuf>,

    /// Anomaly models with --masks: what a defective image whose mask marks no pixel means.
    /// `refuse`: a mistake in the truth (the default). `image-only`: the defect is not
    /// outlined; the image keeps its label for image AUROC, escapes and recall and is left out
    /// of the pixel figures (the report says how many).
    #[arg(long, value_enum, value_name = "MODE", default_value_t = EmptyMasksArg::Refuse)]
    empty_masks: EmptyMasksArg,

    /// Anomaly models with --masks: score every N-th pixel on both axes (1: every pixel).
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=64))]
    pixel_stride: u32,

    /// Anomaly models: write DIR/swept-policy.toml (--out, else the current folder) with the
    /// F1-optimal image threshold, and with --masks the F1-optimal pixel threshold, in its
    /// `[anomaly]` section (the rest of --policy kept). Classifiers and detectors use
    /// --sweep-recall.
    #[arg(long)]
    sweep: bool,

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

    /// Set a further `defectdetect` property, as gst-launch-1.0 writes it (repeatable), e.g.
    /// `--set tile-size=256 --set tile-overlap=64` for small windows in large frames.
    #[arg(long = "set", value_name = "PROPERTY=VALUE", value_parser = parse_property)]
    set: Vec<(String, String)>,

    /// Write report.json, report.md, plots, truth.coco.json and predictions.coco.json here:
    /// a new or empty folder (one that holds anything is refused, unless --overwrite).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,

    /// Replace the files defect-replay writes (report.json, report.md, truth.coco.json,
    /// predictions.coco.json, the plots, swept-policy.toml, b/) in an --out folder that
    /// already holds files, and a swept-policy.toml in the current folder; every other file is
    /// left alone, and a link or folder by one of those names is still an error.
    #[arg(long)]
    overwrite: bool,

    /// Write DIR/swept-policy.toml (--out, else the current folder): per class, the
    /// threshold reaching this recall with the best precision (where it is out of reach, the
    /// threshold of the highest recall reached, said in the file's header). In (0, 1].
    /// Detectors: over the detections; classifiers: a class's images found as the top-1
    /// class with at least that confidence.
    #[arg(long, value_name = "R", value_parser = parse_recall)]
    sweep_recall: Option<f64>,

    /// A second model to replay and compare side by side (B); its outputs go to DIR/b.
    #[arg(long, value_name = "M2.onnx")]
    model_b: Option<PathBuf>,

    /// A second policy for B (with --model-b, or alone to compare two policies).
    #[arg(long, value_name = "P2.toml")]
    policy_b: Option<PathBuf>,

    /// Write a drift baseline (JSON) of this replay: the image statistics, detection rates,
    /// confidences, verdict rates and anomaly scores of every frame, as a profile of
    /// known-good operation for `defectdetect drift-baseline=FILE`. Replay a validation
    /// recording or image folder of good operation; --truth is then optional (without it,
    /// nothing is scored).
    #[arg(long, value_name = "FILE")]
    baseline_out: Option<PathBuf>,

    /// Progress output on stderr: a bar with frames and time left on a terminal, a plain
    /// line every 10 % or 10 s otherwise (auto), or either, or none.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    progress: ProgressMode,
}

impl Cli {
    /// The ground truth (clap requires it unless only a drift baseline is written).
    fn truth(&self) -> &Path {
        self.truth.as_deref().unwrap_or(Path::new(""))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TaskArg {
    Detect,
    Classify,
    Anomaly,
    Segment,
}

impl TaskArg {
    fn as_str(self) -> &'static str {
        match self {
            Self::Detect => "detect",
            Self::Classify => "classify",
            Self::Anomaly => "anomaly",
            Self::Segment => "segment",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "detect" => Some(Self::Detect),
            "classify" => Some(Self::Classify),
            "anomaly" => Some(Self::Anomaly),
            "segment" => Some(Self::Segment),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum EmptyMasksArg {
    Refuse,
    ImageOnly,
}

impl From<EmptyMasksArg> for EmptyMasks {
    fn from(arg: EmptyMasksArg) -> Self {
        match arg {
            EmptyMasksArg::Refuse => Self::Refuse,
            EmptyMasksArg::ImageOnly => Self::ImageOnly,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ProgressMode {
    Auto,
    Bar,
    Lines,
    None,
}

fn parse_property(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_string(), value.to_string()))
        }
        _ => Err(format!("{text:?} is not PROPERTY=VALUE")),
    }
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

/// The ground truth, as the model's task reads it.
enum Truth {
    /// Boxes (detectors).
    Boxes(GroundTruth),
    /// One label per image (classifiers, anomaly models), and the anomaly masks of each
    /// replayed image file (in file order) when --masks is given.
    Labels {
        labels: ImageTruth,
        kind: LabelKind,
        masks: Option<Vec<MaskTruth>>,
    },
}

/// Reads and checks the truth for `task`, and for an image folder checks its files (and the
/// masks) against it: all before any model is loaded.
fn load_truth(cli: &Cli, task: TaskArg) -> Result<Truth, String> {
    let kind = match task {
        TaskArg::Detect | TaskArg::Segment => {
            let truth = GroundTruth::load(cli.truth()).map_err(|e| e.to_string())?;
            if let Some(dir) = &cli.images {
                check_images(dir, &truth)?;
            }
            return Ok(Truth::Boxes(truth));
        }
        TaskArg::Classify => LabelKind::Class,
        TaskArg::Anomaly => LabelKind::Anomaly,
    };
    let labels = ImageTruth::load(cli.truth(), kind).map_err(|e| e.to_string())?;
    let Some(dir) = &cli.images else {
        return Err(format!(
            "a {} model is scored on an image folder (--images), not on a video",
            task.as_str()
        ));
    };
    let files = sized_images(dir)?;
    let paths: Vec<PathBuf> = files.iter().map(|(p, _)| p.clone()).collect();
    labels.match_files(&paths).map_err(|e| e.to_string())?;
    let masks = match &cli.masks {
        Some(masks) => {
            let defective = labels.defective();
            let of_file: Vec<bool> = paths
                .iter()
                .map(|p| {
                    labels
                        .image_of_file(&defect_replay::replay::truth::file_name_of(p))
                        .is_some_and(|i| defective[i])
                })
                .collect();
            Some(
                check_masks(masks, &files, &of_file, cli.empty_masks.into())
                    .map_err(|e| e.to_string())?,
            )
        }
        None => None,
    };
    Ok(Truth::Labels {
        labels,
        kind,
        masks,
    })
}

/// The options that only some tasks take, checked against the task.
fn check_task_options(cli: &Cli, task: TaskArg) -> Result<(), String> {
    let mut problems = Vec::new();
    if task != TaskArg::Anomaly {
        if cli.masks.is_some() {
            problems.push(format!(
                "--masks: only for anomaly models (this one is {})",
                task.as_str()
            ));
        }
        if cli.empty_masks != EmptyMasksArg::Refuse {
            problems.push(format!(
                "--empty-masks: only for anomaly models with --masks (this one is {})",
                task.as_str()
            ));
        }
        if cli.sweep {
            problems.push(format!(
                "--sweep: only for anomaly models (this one is {}); use --sweep-recall R",
                task.as_str()
            ));
        }
    } else {
        if cli.sweep_recall.is_some() {
            problems.push(
                "--sweep-recall: not for anomaly models; --sweep writes their F1-optimal thresholds"
                    .into(),
            );
        }
        if cli.masks.is_none() && cli.empty_masks != EmptyMasksArg::Refuse {
            problems.push("--empty-masks: only with --masks".into());
        }
    }
    if task != TaskArg::Classify && cli.top_k.is_some() {
        problems.push(format!(
            "--top-k: only for classifiers (this one is {})",
            task.as_str()
        ));
    }
    if !matches!(task, TaskArg::Detect | TaskArg::Segment)
        && (cli.model_b.is_some() || cli.policy_b.is_some())
    {
        problems.push(format!(
            "--model-b / --policy-b: comparisons are for detectors (this model is {}); replay each configuration in turn",
            task.as_str()
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// One configuration to replay (A or B), checked and opened.
struct Run {
    label: &'static str,
    options: ReplayOptions,
    policy: Option<Policy>,
    session: Session,
}

/// Checks a configuration before anything is replayed and opens its pipeline (the element
/// loads the model and policy); a box truth's classes must be the model's.
/// `session`: one already opened with these options.
fn open(
    label: &'static str,
    source: &Source,
    options: ReplayOptions,
    truth: &Truth,
    session: Option<Session>,
) -> Result<Run, String> {
    let policy = load_policy(options.policy.as_deref())?;
    let session = match session {
        Some(session) => session,
        None => Session::open(source, &options).map_err(|e| e.to_string())?,
    };
    if let Truth::Boxes(truth) = truth {
        truth
            .classes_for(session.class_names())
            .map_err(|e| e.to_string())?;
    }
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
    for (flag, dir) in [("images", &cli.images), ("masks", &cli.masks)] {
        if let Some(dir) = dir
            && !dir.is_dir()
        {
            problems.push(format!("--{flag} {}: no such folder", dir.display()));
        }
    }
    if let Some(truth) = &cli.truth
        && !truth.exists()
    {
        problems.push(format!(
            "--truth {}: no such file or folder",
            truth.display()
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

/// An image folder's files, each with its size from its header.
/// An image file and its width and height.
type SizedFile = (PathBuf, (u32, u32));

fn sized_images(dir: &Path) -> Result<Vec<SizedFile>, String> {
    let (files, _) = defect_replay::replay::image_files(dir).map_err(|e| e.to_string())?;
    let mut sized = Vec::new();
    let mut problems = Vec::new();
    for file in files {
        match image_size(&file) {
            Ok(size) => sized.push((file, size)),
            Err(e) => problems.push(format!("{}: {e}", file.display())),
        }
    }
    if problems.is_empty() {
        Ok(sized)
    } else {
        Err(problems.join("\n"))
    }
}

/// For an image folder: each file's size from its header, checked against the truth.
fn check_images(dir: &Path, truth: &GroundTruth) -> Result<(), String> {
    truth
        .match_files(&sized_images(dir)?)
        .map_err(|e| e.to_string())
}

fn run() -> Result<(), String> {
    let cli = Cli::parse();
    // The truth first: a problem there costs no model load and no frame. The task (which
    // truth to expect) is the option's, else the model's `task` metadata, read from the file.
    check_paths(&cli)?;
    if cli.truth.is_none() {
        return baseline_only(&cli);
    }
    let metadata_task = onnx_meta::task_of(&cli.model).and_then(|t| TaskArg::parse(&t));
    let mut task = cli.task.or(metadata_task).unwrap_or(TaskArg::Detect);
    check_task_options(&cli, task)?;
    let mut truth = load_truth(&cli, task)?;
    let source = match (&cli.video, &cli.images) {
        (Some(video), _) => Source::Video(video.clone()),
        (None, Some(dir)) => Source::Images(dir.clone()),
        (None, None) => unreachable!("clap requires --video or --images"),
    };
    // Before any frame: the output folder (or the swept policy's place) is ready, and nothing
    // of the user's would be replaced.
    match &cli.out {
        Some(out) => output::prepare(out, cli.overwrite).map_err(|e| format!("--out {e}"))?,
        None if cli.sweep || cli.sweep_recall.is_some() => {
            output::make_room(Path::new("."), "swept-policy.toml", cli.overwrite)?
        }
        None => {}
    }
    gst::init().map_err(|e| e.to_string())?;
    gstdefect::plugin_register_static().map_err(|e| e.to_string())?;

    let options = replay_options(&cli);
    let started = std::time::SystemTime::now();
    let first = Session::open(&source, &options).map_err(|e| e.to_string())?;
    // A model without `task` metadata: the element told its task from the outputs.
    if let Some(actual) = TaskArg::parse(first.task())
        && actual != task
    {
        task = actual;
        check_task_options(&cli, task)?;
        truth = load_truth(&cli, task)?;
    }
    if !matches!(task, TaskArg::Detect | TaskArg::Segment) {
        run_image_task(&cli, &source, options, &truth, task, first)?;
        return check_baseline(&cli, started);
    }
    let mut runs = vec![open("A", &source, options.clone(), &truth, Some(first))?];
    if cli.model_b.is_some() || cli.policy_b.is_some() {
        let mut options_b = options;
        options_b.drift_baseline_out = None;
        if let Some(model) = &cli.model_b {
            options_b.model = model.clone();
        }
        if let Some(policy) = &cli.policy_b {
            options_b.policy = Some(policy.clone());
        }
        runs.push(open("B", &source, options_b, &truth, None)?);
    }
    let Truth::Boxes(truth) = &truth else {
        unreachable!("detectors read box truth")
    };

    let mut reports = Vec::new();
    let mut replays = Vec::new();
    for run in runs {
        let replay = replay_run(&cli, &source, run.session, &run.options)?;
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
            score(&replay, truth, &thresholds, run.policy.as_ref()).map_err(|e| e.to_string())?;
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
        replays.push(replay);
    }
    if let [a, b] = reports.as_slice() {
        print!("{}", compare(a, b, "A", "B"));
    }
    if let [a, b] = replays.as_slice() {
        // The table defectdetect keeps for a challenger (B) beside production (A).
        let table = agreement(a, b, None);
        print!("\n{}", table.table("A", "B"));
        if let Some(out) = &cli.out {
            let path = out.join("agreement.json");
            let json = serde_json::json!({
                "production": a.model_id,
                "challenger": b.model_id,
                "agreement": table,
            });
            output::write_new(
                &path,
                serde_json::to_string_pretty(&json)
                    .unwrap_or_default()
                    .as_bytes(),
            )
            .map_err(|e| format!("{}: {e}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
    }
    check_baseline(&cli, started)
}

/// --baseline-out without --truth: replays the source only to learn the drift baseline.
fn baseline_only(cli: &Cli) -> Result<(), String> {
    let source = match (&cli.video, &cli.images) {
        (Some(video), _) => Source::Video(video.clone()),
        (None, Some(dir)) => Source::Images(dir.clone()),
        (None, None) => unreachable!("clap requires --video or --images"),
    };
    gst::init().map_err(|e| e.to_string())?;
    gstdefect::plugin_register_static().map_err(|e| e.to_string())?;
    let options = replay_options(cli);
    let started = std::time::SystemTime::now();
    let session = Session::open(&source, &options).map_err(|e| e.to_string())?;
    let replay = replay_run(cli, &source, session, &options)?;
    eprintln!("replayed {} frames", replay.frames.len());
    check_baseline(cli, started)
}

/// The element wrote the drift baseline at the end of the replay (else it warned why).
fn check_baseline(cli: &Cli, started: std::time::SystemTime) -> Result<(), String> {
    let Some(path) = &cli.baseline_out else {
        return Ok(());
    };
    let written = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .is_ok_and(|modified| modified >= started);
    if !written {
        return Err(format!(
            "--baseline-out {}: the drift baseline was not written (is the folder writable?)",
            path.display()
        ));
    }
    let baseline = gstdefect::monitor::drift::Baseline::load(path)?;
    eprintln!(
        "wrote {} (drift baseline of {} frames, {} features)",
        path.display(),
        baseline.frames,
        baseline.features.len()
    );
    Ok(())
}

/// Replays one opened session with progress on stderr.
fn replay_run(
    cli: &Cli,
    source: &Source,
    session: Session,
    options: &ReplayOptions,
) -> Result<Replay, String> {
    let what = format!(
        "{} through {}",
        match source {
            Source::Video(path) | Source::Images(path) => path.display().to_string(),
        },
        options.model.display()
    );
    let mut progress = Progress::new(cli.progress, &what);
    let replay = session
        .run(|done, total| progress.update(done, total))
        .map_err(|e| e.to_string())?;
    progress.finish();
    Ok(replay)
}

/// A classifier or an anomaly model: replayed on the image folder and scored against the
/// image labels (and masks).
fn run_image_task(
    cli: &Cli,
    source: &Source,
    options: ReplayOptions,
    truth: &Truth,
    task: TaskArg,
    session: Session,
) -> Result<(), String> {
    let Truth::Labels {
        labels,
        kind,
        masks,
    } = truth
    else {
        unreachable!("image tasks read image labels")
    };
    let run = open("A", source, options, truth, Some(session))?;
    let mut session = run.session;
    let classes = match kind {
        LabelKind::Class => Some(
            labels
                .classes_for(session.class_names())
                .map_err(|e| e.to_string())?,
        ),
        LabelKind::Anomaly => None,
    };
    // Masks are per replayed file: map them to the truth's images.
    let files = session.images().to_vec();
    let masks_of_image = masks.as_ref().map(|masks| {
        let mut by_image = vec![MaskTruth::AllGood; labels.images.len()];
        for (file, mask) in files.iter().zip(masks) {
            if let Some(i) = labels.image_of_file(&defect_replay::replay::truth::file_name_of(file))
            {
                by_image[i] = mask.clone();
            }
        }
        by_image
    });
    session.keep_anomaly_maps(masks_of_image.is_some());
    let replay = replay_run(cli, source, session, &run.options)?;
    let of_file = |name: &str| labels.image_of_file(name);
    let (table, json, confusion, report) = match task {
        TaskArg::Classify => {
            let k = cli.top_k.unwrap_or(1) as usize;
            let classes = classes.unwrap_or_default();
            let report = score_classification(&replay, &classes, of_file, k, run.policy.as_ref());
            (
                report.table(),
                report.to_json(),
                Some(report.metrics.confusion.clone()),
                ImageReport::Classify(report),
            )
        }
        _ => {
            let report = score_anomaly(
                &replay,
                &labels.defective(),
                of_file,
                masks_of_image.as_deref(),
                cli.pixel_stride,
            )?;
            (
                report.table(),
                report.to_json(),
                None,
                ImageReport::Anomaly(report),
            )
        }
    };
    print!("{table}");
    if let Some(out) = &cli.out {
        let names = replay.class_names.clone();
        let confusion = confusion.as_ref().map(|c| (names.as_slice(), c.as_slice()));
        for path in write_image_outputs(out, &table, &json, confusion, &replay)
            .map_err(|e| format!("{}: {e}", out.display()))?
        {
            eprintln!("wrote {}", path.display());
        }
    }
    let out = cli.out.clone().unwrap_or_else(|| PathBuf::from("."));
    match report {
        ImageReport::Classify(report) => {
            if let Some(target) = cli.sweep_recall {
                write_swept_class_policy(&out, &report, run.policy, target)?;
            }
        }
        ImageReport::Anomaly(report) => {
            if cli.sweep {
                write_swept_anomaly_policy(&out, &report, run.policy)?;
            }
        }
    }
    Ok(())
}

enum ImageReport {
    Classify(ClassifyReport),
    Anomaly(AnomalyReport),
}

/// A classifier's swept policy: per class, the `min-confidence` of the target recall.
fn write_swept_class_policy(
    out: &Path,
    report: &ClassifyReport,
    base: Option<Policy>,
    target: f64,
) -> Result<(), String> {
    let mut policy = base.unwrap_or_else(Policy::fail_on_any_detection);
    println!("threshold sweep for recall >= {target}:");
    let mut short = Vec::new();
    for (class, point) in report.sweep(target).into_iter().enumerate() {
        let name = &report.class_names[class];
        match point {
            Some((p, reached)) => {
                println!(
                    "  {name:<18} min-confidence {:.4}  precision {:.3}  recall {:.3}{}",
                    p.threshold,
                    p.precision,
                    p.recall,
                    if reached {
                        String::new()
                    } else {
                        format!(" (the highest reached; {target} is out of reach)")
                    }
                );
                policy.set_min_confidence(name, p.threshold);
                if !reached {
                    short.push(format!("{name} {:.3}", p.recall));
                }
            }
            None => println!("  {name:<18} never found; left as it was"),
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
    write_policy(
        out,
        format!(
            "# Written by defect-replay --sweep-recall {target} for classifier {}\n{short}{}",
            report.model_id,
            policy.to_toml()
        ),
    )
}

/// An anomaly model's swept policy: the F1-optimal image (and pixel) thresholds in its
/// `[anomaly]` section.
fn write_swept_anomaly_policy(
    out: &Path,
    report: &AnomalyReport,
    base: Option<Policy>,
) -> Result<(), String> {
    let mut policy = base.unwrap_or_else(Policy::fail_on_any_detection);
    let Some(image) = report.image_best else {
        return Err(
            "--sweep: no F1-optimal image threshold (the truth has no defective image)".into(),
        );
    };
    policy.anomaly.image_threshold = Some(image.threshold);
    let mut header = format!(
        "# image-threshold {:.6}: F1 {:.3}, precision {:.3}, recall {:.3} on {} images\n",
        image.threshold,
        image.f1,
        image.precision,
        image.recall,
        report.images.len()
    );
    println!(
        "anomaly sweep: image-threshold {:.6} (F1 {:.3}, precision {:.3}, recall {:.3})",
        image.threshold, image.f1, image.precision, image.recall
    );
    match report.pixel.as_ref().and_then(|p| p.best) {
        Some(pixel) => {
            policy.anomaly.pixel_threshold = Some(pixel.threshold);
            header += &format!(
                "# pixel-threshold {:.6}: F1 {:.3}, precision {:.3}, recall {:.3} on the masks' pixels\n",
                pixel.threshold, pixel.f1, pixel.precision, pixel.recall
            );
            println!(
                "anomaly sweep: pixel-threshold {:.6} (F1 {:.3}, precision {:.3}, recall {:.3})",
                pixel.threshold, pixel.f1, pixel.precision, pixel.recall
            );
        }
        None => {
            header += "# pixel-threshold: not measured (no --masks); left as it was\n";
        }
    }
    write_policy(
        out,
        format!(
            "# Written by defect-replay --sweep for anomaly model {}\n{header}{}",
            report.model_id,
            policy.to_toml()
        ),
    )
}

fn write_policy(out: &Path, text: String) -> Result<(), String> {
    let path = out.join("swept-policy.toml");
    output::write_new(&path, text.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!("wrote {}", path.display());
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
    output::write_new(&path, text.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// What every replay of this command line runs with.
fn replay_options(cli: &Cli) -> ReplayOptions {
    ReplayOptions {
        model: cli.model.clone(),
        policy: cli.policy.clone(),
        labels: cli.labels.clone(),
        conf_threshold: cli.conf,
        threads: cli.threads,
        frames_per_part: cli.frames_per_part,
        task: cli.task.map(|t| t.as_str().to_string()),
        top_k: cli.top_k,
        drift_baseline_out: cli.baseline_out.clone(),
        properties: cli.set.clone(),
    }
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
