// SPDX-License-Identifier: MIT OR Apache-2.0
//! `defectdetect`'s properties: the settings they hold and their specifications.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gst::glib;
use gst::prelude::*;

use super::{ExecutionProvider, Layout, OpenvinoDevice, Precision, TaskChoice};
use crate::analysis::decode::OutputLayout;
use crate::analysis::task::Task;
use crate::inspect::flow::Options;
use crate::inspect::infer::{Region, Thresholds};
use crate::inspect::model::Request;
use crate::runtime::Precision as RuntimePrecision;
use crate::runtime::{DEFAULT_MAX_INPUT_PIXELS, DetectorOptions, OpenVinoDevice, Provider};

pub(super) const DEFAULT_CONF_THRESHOLD: f64 = 0.25;
pub(super) const DEFAULT_IOU_THRESHOLD: f64 = 0.45;
pub(super) const DEFAULT_MAX_DETECTIONS: u32 = 300;
pub(super) const DEFAULT_TILE_OVERLAP: u32 = 64;
pub(super) const DEFAULT_SPIN: bool = false;
pub(super) const DEFAULT_BATCH_TIMEOUT_MS: u32 = 5;
/// `on-rois`: regions of one frame classified at most (about 64 classifier runs).
pub(super) const DEFAULT_MAX_ROIS: u32 = 64;

/// Paths are `Arc<Path>` so that the copy the streaming thread takes of the settings for each
/// frame (properties may change while playing) allocates nothing.
#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub model: Option<Arc<Path>>,
    pub labels: Option<Arc<Path>>,
    pub ort_library: Option<Arc<Path>>,
    pub policy: Option<Arc<Path>>,
    pub conf_threshold: f64,
    pub iou_threshold: f64,
    pub max_detections: u32,
    pub layout: Layout,
    pub task: TaskChoice,
    pub top_k: u32,
    pub on_rois: bool,
    pub max_rois: u32,
    pub execution_provider: ExecutionProvider,
    pub threads: u32,
    pub spin: bool,
    pub openvino_device: OpenvinoDevice,
    pub precision: Precision,
    pub shadow_mode: bool,
    pub frames_per_part: u32,
    pub interval: u32,
    pub tile_size: u32,
    pub tile_overlap: u32,
    pub test_time_flip: bool,
    /// `crop` as set (x,y,width,height); checked at start ([`Settings::crop`]).
    pub crop: Option<Arc<str>>,
    pub async_inference: bool,
    pub max_input_pixels: u64,
    pub batch_size: u32,
    pub batch_timeout_ms: u32,
    pub drift: bool,
    pub drift_baseline: Option<Arc<Path>>,
    pub drift_baseline_out: Option<Arc<Path>>,
    pub drift_learn_frames: u32,
    pub challenger_model: Option<Arc<Path>>,
    pub challenger_policy: Option<Arc<Path>>,
    pub challenger_interval: u32,
    pub challenger_wait: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            model: None,
            labels: None,
            conf_threshold: DEFAULT_CONF_THRESHOLD,
            iou_threshold: DEFAULT_IOU_THRESHOLD,
            max_detections: DEFAULT_MAX_DETECTIONS,
            layout: Layout::Auto,
            task: TaskChoice::Auto,
            top_k: 1,
            on_rois: false,
            max_rois: DEFAULT_MAX_ROIS,
            execution_provider: ExecutionProvider::Auto,
            threads: 0,
            spin: DEFAULT_SPIN,
            openvino_device: OpenvinoDevice::Cpu,
            precision: Precision::Auto,
            ort_library: None,
            policy: None,
            shadow_mode: false,
            frames_per_part: 0,
            interval: 1,
            tile_size: 0,
            tile_overlap: DEFAULT_TILE_OVERLAP,
            test_time_flip: false,
            crop: None,
            async_inference: false,
            max_input_pixels: DEFAULT_MAX_INPUT_PIXELS,
            batch_size: 1,
            batch_timeout_ms: DEFAULT_BATCH_TIMEOUT_MS,
            drift: true,
            drift_baseline: None,
            drift_baseline_out: None,
            drift_learn_frames: 0,
            challenger_model: None,
            challenger_policy: None,
            challenger_interval: 1,
            challenger_wait: false,
        }
    }
}

impl Settings {
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            confidence: self.conf_threshold as f32,
            iou: self.iou_threshold as f32,
            max_detections: self.max_detections as usize,
            top_k: self.top_k as usize,
        }
    }

    /// What a frame's inference takes of the settings.
    pub fn options(&self) -> Options {
        Options {
            thresholds: self.thresholds(),
            tiling: (self.tile_size, self.tile_overlap),
            test_time_flip: self.test_time_flip,
            crop: self.crop_region(),
            interval: self.interval,
            frames_per_part: self.frames_per_part,
        }
    }

    /// What the model slot builds a model from.
    pub fn load_request(&self) -> Request {
        Request {
            detector: self.detector_options(),
            policy: self.policy.clone(),
            test_time_flip: self.test_time_flip,
        }
    }

    pub fn detector_options(&self) -> DetectorOptions {
        DetectorOptions {
            model: self.model.as_deref().map(PathBuf::from).unwrap_or_default(),
            labels: self.labels.as_deref().map(PathBuf::from),
            layout: match self.layout {
                Layout::Auto => None,
                Layout::Yolov8 => Some(OutputLayout::YoloV8),
                Layout::Yolov5 => Some(OutputLayout::YoloV5),
                Layout::End2end => Some(OutputLayout::EndToEnd),
            },
            task: match self.task {
                TaskChoice::Auto => None,
                TaskChoice::Detect => Some(Task::Detect),
                TaskChoice::Classify => Some(Task::Classify),
                TaskChoice::Anomaly => Some(Task::Anomaly),
                TaskChoice::Segment => Some(Task::Segment),
            },
            provider: match self.execution_provider {
                ExecutionProvider::Auto => Provider::Auto,
                ExecutionProvider::Cpu => Provider::Cpu,
                ExecutionProvider::Cuda => Provider::Cuda,
                ExecutionProvider::Tensorrt => Provider::TensorRt,
                ExecutionProvider::Openvino => Provider::OpenVino,
            },
            threads: self.threads as usize,
            spin: Some(self.spin),
            openvino_device: match self.openvino_device {
                OpenvinoDevice::Cpu => OpenVinoDevice::Cpu,
                OpenvinoDevice::Gpu => OpenVinoDevice::Gpu,
                OpenvinoDevice::Npu => OpenVinoDevice::Npu,
                OpenvinoDevice::Auto => OpenVinoDevice::Auto,
            },
            precision: match self.precision {
                Precision::Auto => RuntimePrecision::Auto,
                Precision::F32 => RuntimePrecision::F32,
                Precision::Bf16 => RuntimePrecision::Bf16,
                Precision::F16 => RuntimePrecision::F16,
            },
            ort_library: self.ort_library.as_deref().map(PathBuf::from),
            max_input_pixels: self.max_input_pixels,
            batch_size: self.batch_size as usize,
            batch_timeout: std::time::Duration::from_millis(self.batch_timeout_ms.into()),
        }
    }

    /// What the challenger's model is built from, when there is one: these settings with the
    /// challenger's model, and its policy (else production's); never batched with other
    /// elements' frames.
    pub fn challenger_request(&self) -> Option<Request> {
        let model = self.challenger_model.clone()?;
        let mut options = self.detector_options();
        options.model = PathBuf::from(&*model);
        options.batch_size = 1;
        Some(Request {
            detector: options,
            policy: self
                .challenger_policy
                .clone()
                .or_else(|| self.policy.clone()),
            test_time_flip: self.test_time_flip,
        })
    }

    /// Tiling that cannot work: an overlap as large as the tile would step by one pixel.
    pub fn tiling_error(&self) -> Option<String> {
        (self.tile_size > 0 && self.tile_overlap >= self.tile_size).then(|| {
            format!(
                "tile-overlap ({}) must be smaller than tile-size ({}): tiles would step by one pixel",
                self.tile_overlap, self.tile_size
            )
        })
    }

    /// The `crop` region: None without one, an error naming the value when it is not four
    /// numbers x,y,width,height with a width and height above 0.
    pub fn crop(&self) -> Result<Option<Region>, String> {
        self.crop.as_deref().map(parse_crop).transpose()
    }

    /// The `crop` region, None when unset or not valid (`start` refuses an invalid one).
    pub fn crop_region(&self) -> Option<Region> {
        self.crop().ok().flatten()
    }

    /// Sets a property; returns what the element must do about it.
    pub fn set(&mut self, value: &glib::Value, pspec: &glib::ParamSpec) -> Change {
        let get = || value.get().expect("type checked upstream");
        match pspec.name() {
            "model" => {
                self.model = optional_path(value);
                return Change::Reload;
            }
            "policy" => {
                self.policy = optional_path(value);
                return Change::Reload;
            }
            "labels" => self.labels = optional_path(value),
            "conf-threshold" => self.conf_threshold = get_f64(value),
            "iou-threshold" => self.iou_threshold = get_f64(value),
            "max-detections" => self.max_detections = get(),
            "layout" => self.layout = value.get().expect("type checked upstream"),
            crate::meta::fields::TASK => self.task = value.get().expect("type checked upstream"),
            "top-k" => self.top_k = get(),
            "on-rois" => self.on_rois = value.get().expect("type checked upstream"),
            "max-rois" => self.max_rois = get(),
            "execution-provider" => {
                self.execution_provider = value.get().expect("type checked upstream")
            }
            "threads" => self.threads = get(),
            "spin" => self.spin = value.get().expect("type checked upstream"),
            "openvino-device" => self.openvino_device = value.get().expect("type checked upstream"),
            "precision" => self.precision = value.get().expect("type checked upstream"),
            "ort-library" => self.ort_library = optional_path(value),
            "shadow-mode" => self.shadow_mode = value.get().expect("type checked upstream"),
            "frames-per-part" => self.frames_per_part = get(),
            "interval" => self.interval = get(),
            "tile-size" => self.tile_size = get(),
            "tile-overlap" => self.tile_overlap = get(),
            "test-time-flip" => self.test_time_flip = value.get().expect("type checked upstream"),
            "crop" => {
                self.crop = value
                    .get::<Option<String>>()
                    .ok()
                    .flatten()
                    .filter(|s| !s.trim().is_empty())
                    .map(Arc::from)
            }
            "async-inference" => self.async_inference = value.get().expect("type checked upstream"),
            "max-input-pixels" => {
                self.max_input_pixels = value.get().expect("type checked upstream")
            }
            "batch-size" => self.batch_size = get(),
            "batch-timeout-ms" => self.batch_timeout_ms = get(),
            "drift" => self.drift = value.get().expect("type checked upstream"),
            "drift-baseline" => self.drift_baseline = optional_path(value),
            "drift-baseline-out" => self.drift_baseline_out = optional_path(value),
            "drift-learn-frames" => self.drift_learn_frames = get(),
            "challenger-model" => self.challenger_model = optional_path(value),
            "challenger-policy" => self.challenger_policy = optional_path(value),
            "challenger-interval" => self.challenger_interval = get(),
            "challenger-wait" => self.challenger_wait = value.get().expect("type checked upstream"),
            _ => return Change::Unknown,
        }
        Change::None
    }

    /// The value of a property the settings hold.
    pub fn get(&self, pspec: &glib::ParamSpec) -> Option<glib::Value> {
        Some(match pspec.name() {
            "model" => path_value(&self.model),
            "labels" => path_value(&self.labels),
            "ort-library" => path_value(&self.ort_library),
            "policy" => path_value(&self.policy),
            "conf-threshold" => self.conf_threshold.to_value(),
            "iou-threshold" => self.iou_threshold.to_value(),
            "max-detections" => self.max_detections.to_value(),
            "layout" => self.layout.to_value(),
            crate::meta::fields::TASK => self.task.to_value(),
            "top-k" => self.top_k.to_value(),
            "on-rois" => self.on_rois.to_value(),
            "max-rois" => self.max_rois.to_value(),
            "execution-provider" => self.execution_provider.to_value(),
            "threads" => self.threads.to_value(),
            "spin" => self.spin.to_value(),
            "openvino-device" => self.openvino_device.to_value(),
            "precision" => self.precision.to_value(),
            "shadow-mode" => self.shadow_mode.to_value(),
            "frames-per-part" => self.frames_per_part.to_value(),
            "interval" => self.interval.to_value(),
            "tile-size" => self.tile_size.to_value(),
            "tile-overlap" => self.tile_overlap.to_value(),
            "test-time-flip" => self.test_time_flip.to_value(),
            "crop" => self.crop.as_deref().to_value(),
            "async-inference" => self.async_inference.to_value(),
            "max-input-pixels" => self.max_input_pixels.to_value(),
            "batch-size" => self.batch_size.to_value(),
            "batch-timeout-ms" => self.batch_timeout_ms.to_value(),
            "drift" => self.drift.to_value(),
            "drift-baseline" => path_value(&self.drift_baseline),
            "drift-baseline-out" => path_value(&self.drift_baseline_out),
            "drift-learn-frames" => self.drift_learn_frames.to_value(),
            "challenger-model" => path_value(&self.challenger_model),
            "challenger-policy" => path_value(&self.challenger_policy),
            "challenger-interval" => self.challenger_interval.to_value(),
            "challenger-wait" => self.challenger_wait.to_value(),
            _ => return None,
        })
    }
}

/// What a property change asks of the element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    None,
    /// `model` or `policy`: rebuild in the background when loaded.
    Reload,
    Unknown,
}

/// `x,y,width,height` in frame pixels (spaces allowed around the numbers).
pub(super) fn parse_crop(text: &str) -> Result<Region, String> {
    let numbers: Vec<Option<u32>> = text.split(',').map(|n| n.trim().parse().ok()).collect();
    match numbers[..] {
        [Some(x), Some(y), Some(w), Some(h)] if w > 0 && h > 0 => Ok((x, y, w, h)),
        _ => Err(format!(
            "crop \"{text}\" is not x,y,width,height in frame pixels (four whole numbers, width and height above 0)"
        )),
    }
}

fn get_f64(value: &glib::Value) -> f64 {
    value.get().expect("type checked upstream")
}

fn optional_path(value: &glib::Value) -> Option<Arc<Path>> {
    value
        .get::<Option<String>>()
        .ok()
        .flatten()
        .filter(|s| !s.is_empty())
        .map(|s| Arc::from(Path::new(&s)))
}

fn path_value(path: &Option<Arc<Path>>) -> glib::Value {
    path.as_ref().map(|p| p.display().to_string()).to_value()
}

// The property specifications.
crate::element::properties! {
    pub(super)
    string("model", "Model").mutable_playing(): "Path to the ONNX model: a detector (YOLOv8/YOLO11, YOLOv5 or end-to-end output), a segmentation model (Ultralytics -seg), a classifier or an anomaly model; loaded in NULL to READY. Set while running, it loads in the background and takes over at a frame boundary; a model that fails to load keeps the current one and posts a warning",
    string("labels", "Labels").mutable_ready(): "Optional file with one class name a line; overrides the model's `names` metadata",
    double("conf-threshold", "Confidence threshold", 0.0..=1.0, DEFAULT_CONF_THRESHOLD).mutable_playing(): "Detections with a confidence at or below this are dropped",
    double("iou-threshold", "IoU threshold", 0.0..=1.0, DEFAULT_IOU_THRESHOLD).mutable_playing(): "Class-wise NMS suppresses a box overlapping a better one of its class by more than this",
    uint("max-detections", "Maximum detections", 1..=100_000, DEFAULT_MAX_DETECTIONS).mutable_playing(): "At most this many detections are kept per frame, the most confident first",
    enumeration("layout", "Output layout", Layout::Auto).mutable_ready(): "Layout of the model's output tensor; auto recognises it from the shape",
    enumeration(crate::meta::fields::TASK, "Task", TaskChoice::Auto).mutable_ready(): "What the model does: detect (boxes), segment (boxes with masks), classify (whole-frame classes) or anomaly (an anomaly map). auto reads the model's `task` metadata, else recognises the outputs",
    uint("top-k", "Top k", 1..=1000, 1).mutable_playing(): "Classifiers: how many of the most probable classes are attached to the frame and judged by the policy",
    boolean("on-rois", "Classify regions", false).mutable_ready(): "Classifiers: classify the crop of every region-of-interest meta already on the buffer (from an upstream defectdetect) and add a `classification` structure (label, label_id, confidence, the policy's severity and decision) to it, as gvaclassify does, instead of the whole frame. The frame's verdict is re-decided by this policy on each region's classified label; not with async-inference",
    uint("max-rois", "Maximum regions", 1..=100_000, DEFAULT_MAX_ROIS).mutable_playing(): "With on-rois: at most this many regions of a frame are classified (regions are clipped to the frame first), the first ones on the buffer; the others are left unclassified, keeping their upstream judgement, with a warning once per stream. Bounds the time one frame can take (each region is one model run)",
    enumeration("execution-provider", "Execution provider", ExecutionProvider::Auto).mutable_ready(): "Where ONNX Runtime runs the model; an unavailable provider falls back to CPU with a warning",
    uint("threads", "Threads", 0..=1024, 0).mutable_ready(): "ONNX Runtime intra-op threads for this element's session (0 = ONNX Runtime's default)",
    boolean("spin", "Spin", DEFAULT_SPIN).mutable_ready(): "Let ONNX Runtime's intra-op threads spin (busy-wait) between pieces of work: a few per cent faster on an idle machine, much slower when decoders, encoders or other elements share the cores (they burn the time those need). Off by default; measured in docs/performance.md",
    enumeration("openvino-device", "OpenVINO device", OpenvinoDevice::Cpu).mutable_ready(): "The device OpenVINO runs the model on when execution-provider=openvino",
    enumeration("precision", "Inference precision", Precision::Auto).mutable_ready(): "OpenVINO's inference precision hint when execution-provider=openvino: auto is bf16 where the CPU computes it natively (AVX512-BF16 or AMX), else f32; bf16 and f16 trade a little accuracy for speed (see the model card)",
    string("ort-library", "ONNX Runtime library").mutable_ready(): "Path to libonnxruntime.so (1.22 or newer). Default: $ORT_DYLIB_PATH, then the copy scripts/setup.sh installs, then the system's; with execution-provider=openvino first $ORT_OPENVINO_DYLIB_PATH, then the OpenVINO-enabled copy scripts/setup.sh installs. Loaded once per process, by the first element that loads a model",
    uint64("max-input-pixels", "Maximum model input pixels", 1..=1 << 40, DEFAULT_MAX_INPUT_PIXELS).mutable_playing(): "Largest model input (height x width) accepted, checked before anything of that size is allocated, at load and when `model` is replaced while running (a larger model is an error, or a warning keeping the current model). The default, 4096 x 4096, fits 4K frames and tiles",
    string("policy", "Policy").mutable_playing(): "Inspection policy (TOML): per-class min-confidence, severity, min-area, review-band; region and ignore masks. Without one every detection fails the frame. Set while running, it is read in the background and takes over at a frame boundary; a policy with an error keeps the current one and posts a warning",
    boolean("shadow-mode", "Shadow mode", false).mutable_playing(): "Compute and report verdicts but mark them as shadow, so nothing downstream acts on them",
    uint("frames-per-part", "Frames per part", 0..=u32::MAX, 0).mutable_ready(): "Group every N frames into one part when upstream names no part (DefectPartMeta or a defect-part event); 0 = no grouping",
    uint("interval", "Inference interval", 1..=10_000, 1).mutable_playing(): "Run the model on every Nth frame; the frames between carry the last result of their part forward (marked carried, with the frame it came from); a new part is always inferred",
    uint("tile-size", "Tile size", 0..=16_384, 0).mutable_ready(): "Cut frames into overlapping tiles of this many pixels, each letterboxed to the model, so that small defects on high-resolution frames keep their size; 0 = whole frames. Must be larger than tile-overlap",
    uint("tile-overlap", "Tile overlap", 0..=8_192, DEFAULT_TILE_OVERLAP).mutable_ready(): "Pixels neighbouring tiles overlap by (smaller than tile-size); detections in the overlap are merged by NMS",
    boolean("test-time-flip", "Test-time flip", false).mutable_ready(): "Detectors: also run the model on the mirrored (left-right) frame or tile and merge both sets of detections by NMS, as Ultralytics' augmented inference does: can find defects the model misses in one orientation, at twice the inference time (measured in the model cards). Other tasks run once and say so with a warning",
    string("crop", "Crop").mutable_ready(): "Classifiers: classify only this region of each frame, x,y,width,height in frame pixels (e.g. 540,260,200,200), instead of the whole frame: the region is resized and centre-cropped to the model's input as a whole frame would be, and its classes are attached as a region-of-interest meta covering it. For a fixed inspection window inside a larger camera frame; must lie inside the frames. Empty (the default): the whole frame. Not with on-rois",
    boolean("async-inference", "Asynchronous inference", false).mutable_ready(): "Run the model on a worker thread: frames never wait for it and carry the newest result of their part (marked carried), or verdict UNKNOWN while there is none; frames arriving while it is busy are not inferred (counted in `skipped`). A part's verdict waits for the results of its frames; end of stream waits for the last. The latency query then adds nothing",
    uint("batch-size", "Batch size", 1..=64, 1).mutable_ready(): "Infer frames of all defectdetect elements with the same model file, execution provider settings and batch-size together, in batches of up to this many (one session, one run per batch). Needs a model with a dynamic batch dimension, else a warning and frames run one at a time; 1 = every frame alone",
    uint("batch-timeout-ms", "Batch timeout", 0..=10_000, DEFAULT_BATCH_TIMEOUT_MS).mutable_ready(): "With batch-size > 1: how long a frame waits for other elements' frames before its batch runs anyway (a stopping or flushing element's frame stops waiting at once)",
    boolean("drift", "Drift", true).mutable_ready(): "Compare rolling windows of frames (image statistics, detections per class, confidences, verdicts, anomaly scores) with a baseline of known-good operation: a drift episode posts a `defect-drift` message and a warning, every compared window sends a `defect-drift` event downstream. The policy's `[drift]` section sets the window and thresholds (and can switch it off)",
    string("drift-baseline", "Drift baseline").mutable_ready(): "Baseline profile (JSON, from `defect-replay --baseline-out`, or `drift-baseline-out`) to compare with; overrides the policy's `[drift] baseline`. Without one the element learns the baseline from its first drift-learn-frames frames",
    string("drift-baseline-out", "Drift baseline output").mutable_ready(): "Write the baseline the element learns to this file (JSON): once learnt, or at end of stream from the frames seen when the stream is shorter than drift-learn-frames",
    uint("drift-learn-frames", "Drift learning frames", 0..=1_000_000, 0).mutable_ready(): "Frames the baseline is learnt from when no baseline file is given; 0 = the policy's `[drift] learn-frames` (default 300)",
    string("challenger-model", "Challenger model").mutable_ready(): "A second ONNX model that judges the same frames as `model` on its own thread at the lowest priority, never delaying it: verdicts stay the production model's. Each frame offered to it sends a `defect-challenger-frame` event downstream (its detections and verdict, or skipped when it was still busy: its queue holds one frame, the newest), the agreement table (per class and per verdict: found by both, only production, only challenger) is in `challenger-stats` and in a `defect-challenger` message at end of stream. Promote it by setting `model` to the same file. Detection models; not with async-inference or on-rois. See docs/challenger.md",
    string("challenger-policy", "Challenger policy").mutable_ready(): "Inspection policy (TOML) of the challenger; default: the production `policy`",
    uint("challenger-interval", "Challenger interval", 1..=10_000, 1).mutable_ready(): "Offer the challenger every Nth frame (frame numbers that are multiples of N, among the frames the production model inferred); 1 = every frame",
    boolean("challenger-wait", "Wait for the challenger", false).mutable_ready(): "Validation runs only: the streaming thread waits until the challenger has taken the previous frame, so that it skips none (this delays production; its verdicts do not change). Never on a live line",
    structure("challenger-stats", "Challenger statistics").read_only(): "The challenger's figures so far, a structure defect-challenger: model-id (the challenger's), production-model-id, judged-frames, skipped-frames, agreement (an array of agreement structures: level class or verdict, label, found-by-both, only-production, only-challenger) (read-only; NULL without a challenger)",
    uint64("batched-frames", "Batched frames").read_only(): "Model runs of this element that shared a batch with other elements' frames (read-only)",
    uint64("skipped", "Skipped frames").read_only(): "Frames the asynchronous worker had no time for (read-only)",
    structure(crate::meta::fields::MODEL_INFO, "Model information").read_only(): "What the loaded model expects and produces, a structure model-info: model-id, input-name, channels, width, height, output-shape, output-layout, classes, provider, int8-risk (why 8-bit kernels can give wrong results on this CPU, \"\" where not) (read-only; NULL before a model is loaded)",

}
