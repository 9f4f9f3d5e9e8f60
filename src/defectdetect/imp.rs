// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `defectdetect` element: an in-place `BaseTransform` adapting
//! [`crate::analysis`] and [`crate::runtime`] to GStreamer buffers, metas and messages.

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;

use super::inference::{self, Preprocess, Thresholds};
use super::{ExecutionProvider, Layout};
use crate::analysis::Detection;
use crate::analysis::decode::OutputLayout;
use crate::analysis::letterbox::PixelFormat;
use crate::meta;
use crate::policy::{FrameVerdict, Judged, PartTracker, PartVerdict, Policy, parse_policy};
use crate::runtime::{Detector, DetectorOptions, Provider, RuntimeError};
use crate::video::{FORMATS, frame_view, pixel_format};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "defectdetect",
        gst::DebugColorFlags::empty(),
        Some("Defect detection with ONNX models"),
    )
});

const DEFAULT_CONF_THRESHOLD: f64 = 0.25;
const DEFAULT_IOU_THRESHOLD: f64 = 0.45;
const DEFAULT_MAX_DETECTIONS: u32 = 300;

/// Paths are `Arc<Path>` so that the copy the streaming thread takes of the settings for each
/// frame (properties may change while playing) allocates nothing.
#[derive(Debug, Clone)]
struct Settings {
    model: Option<Arc<Path>>,
    labels: Option<Arc<Path>>,
    conf_threshold: f64,
    iou_threshold: f64,
    max_detections: u32,
    layout: Layout,
    execution_provider: ExecutionProvider,
    threads: u32,
    ort_library: Option<Arc<Path>>,
    policy: Option<Arc<Path>>,
    shadow_mode: bool,
    frames_per_part: u32,
    interval: u32,
    tile_size: u32,
    tile_overlap: u32,
    async_inference: bool,
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
            execution_provider: ExecutionProvider::Auto,
            threads: 0,
            ort_library: None,
            policy: None,
            shadow_mode: false,
            frames_per_part: 0,
            interval: 1,
            tile_size: 0,
            tile_overlap: 64,
            async_inference: false,
        }
    }
}

impl Settings {
    fn thresholds(&self) -> Thresholds {
        Thresholds {
            confidence: self.conf_threshold as f32,
            iou: self.iou_threshold as f32,
            max_detections: self.max_detections as usize,
        }
    }

    fn detector_options(&self) -> DetectorOptions {
        DetectorOptions {
            model: self.model.as_deref().map(PathBuf::from).unwrap_or_default(),
            labels: self.labels.as_deref().map(PathBuf::from),
            layout: match self.layout {
                Layout::Auto => None,
                Layout::Yolov8 => Some(OutputLayout::YoloV8),
                Layout::Yolov5 => Some(OutputLayout::YoloV5),
                Layout::End2end => Some(OutputLayout::EndToEnd),
            },
            provider: match self.execution_provider {
                ExecutionProvider::Auto => Provider::Auto,
                ExecutionProvider::Cpu => Provider::Cpu,
                ExecutionProvider::Cuda => Provider::Cuda,
                ExecutionProvider::Tensorrt => Provider::TensorRt,
            },
            threads: self.threads as usize,
            ort_library: self.ort_library.as_deref().map(PathBuf::from),
        }
    }
}

/// What lives between caps and stop: the negotiated frames and how to preprocess them.
struct State {
    info: gst_video::VideoInfo,
    format: PixelFormat,
    /// The synchronous path's plan (the asynchronous worker keeps its own).
    pre: Preprocess,
    /// The last inferred frame and its detections, carried forward by `interval`.
    last: Option<(u64, Vec<Detection>)>,
    frame_number: u64,
    non_finite_warned: bool,
    parts: PartTracker,
    /// The part named by the last `defect-part` event.
    upstream_part: Option<String>,
}

/// What the verdicts need of the loaded model and policy: cheap to share with the
/// streaming thread while the asynchronous worker holds the detector.
#[derive(Debug)]
struct Identity {
    model: crate::runtime::ModelInfo,
    policy: Policy,
    model_id: String,
    /// SHA-256 of the policy file, when there is one.
    policy_sha256: Option<String>,
}

/// What NULL to READY loads and READY to NULL drops.
struct Loaded {
    detector: Detector,
    identity: Arc<Identity>,
}

/// The newest result of the asynchronous worker.
#[derive(Debug, Clone)]
struct Latest {
    frame: u64,
    size: (u32, u32),
    detections: Vec<Detection>,
    duration: std::time::Duration,
}

/// One frame handed to the asynchronous worker.
struct Job {
    buffer: gst::Buffer,
    frame: u64,
    info: gst_video::VideoInfo,
    format: PixelFormat,
    settings: Settings,
}

/// The asynchronous worker: a queue of one frame and its thread.
struct Worker {
    sender: std::sync::mpsc::SyncSender<Job>,
    thread: std::thread::JoinHandle<()>,
}

#[derive(Default)]
pub struct DefectDetect {
    settings: Mutex<Settings>,
    loaded: Mutex<Option<Loaded>>,
    /// The loaded model's identity, readable without waiting for the detector.
    identity: Mutex<Option<Arc<Identity>>>,
    latest: Mutex<Option<Latest>>,
    worker: Mutex<Option<Worker>>,
    /// Frames the asynchronous worker had no time for (they carry an earlier result).
    skipped: std::sync::atomic::AtomicU64,
    /// A model loaded in the background while playing, adopted at the next frame.
    pending: Mutex<Option<Loaded>>,
    reload_generation: std::sync::atomic::AtomicU64,
    /// The processing latency answered to latency queries, in nanoseconds: the warm run at
    /// load, raised when frames take longer (then a latency message asks to recompute).
    latency_ns: std::sync::atomic::AtomicU64,
    /// Parts and the upstream part id outlive caps changes, so they sit beside `State`.
    state: Mutex<Option<State>>,
}

#[glib::object_subclass]
impl ObjectSubclass for DefectDetect {
    const NAME: &'static str = "GstDefectDetect";
    type Type = super::DefectDetect;
    type ParentType = gst_base::BaseTransform;
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not turn every later call into another panic.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
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

impl ObjectImpl for DefectDetect {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("model")
                    .nick("Model")
                    .blurb(
                        "Path to the ONNX detector (YOLOv8/YOLO11, YOLOv5 or end-to-end output); loaded in NULL to READY. \
                         Set while running, it loads in the background and takes over at a frame boundary; a model that \
                         fails to load keeps the current one and posts a warning",
                    )
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("labels")
                    .nick("Labels")
                    .blurb("Optional file with one class name a line; overrides the model's `names` metadata")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecDouble::builder("conf-threshold")
                    .nick("Confidence threshold")
                    .blurb("Detections with a confidence at or below this are dropped")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(DEFAULT_CONF_THRESHOLD)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecDouble::builder("iou-threshold")
                    .nick("IoU threshold")
                    .blurb("Class-wise NMS suppresses a box overlapping a better one of its class by more than this")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(DEFAULT_IOU_THRESHOLD)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("max-detections")
                    .nick("Maximum detections")
                    .blurb("At most this many detections are kept per frame, the most confident first")
                    .minimum(1)
                    .maximum(100_000)
                    .default_value(DEFAULT_MAX_DETECTIONS)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("layout", Layout::Auto)
                    .nick("Output layout")
                    .blurb("Layout of the model's output tensor; auto recognises it from the shape")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("execution-provider", ExecutionProvider::Auto)
                    .nick("Execution provider")
                    .blurb("Where ONNX Runtime runs the model; an unavailable GPU provider falls back to CPU with a warning")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("threads")
                    .nick("Threads")
                    .blurb("ONNX Runtime intra-op threads for this element's session (0 = ONNX Runtime's default)")
                    .maximum(1024)
                    .default_value(0)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("ort-library")
                    .nick("ONNX Runtime library")
                    .blurb(
                        "Path to libonnxruntime.so (1.22 or newer). Default: $ORT_DYLIB_PATH, then the copy \
                         scripts/setup.sh installs, then the system's. Loaded once per process",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("policy")
                    .nick("Policy")
                    .blurb(
                        "Inspection policy (TOML): per-class min-confidence, severity, min-area, review-band; \
                         region and ignore masks. Without one every detection fails the frame",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("shadow-mode")
                    .nick("Shadow mode")
                    .blurb("Compute and report verdicts but mark them as shadow, so nothing downstream acts on them")
                    .default_value(false)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("frames-per-part")
                    .nick("Frames per part")
                    .blurb(
                        "Group every N frames into one part when upstream names no part (DefectPartMeta or a \
                         defect-part event); 0 = no grouping",
                    )
                    .default_value(0)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("interval")
                    .nick("Inference interval")
                    .blurb(
                        "Run the model on every Nth frame; the frames between carry the last result forward \
                         (marked carried, with the frame it came from)",
                    )
                    .minimum(1)
                    .maximum(10_000)
                    .default_value(1)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("tile-size")
                    .nick("Tile size")
                    .blurb(
                        "Cut frames into overlapping tiles of this many pixels, each letterboxed to the model, so that \
                         small defects on high-resolution frames keep their size; 0 = whole frames",
                    )
                    .maximum(16_384)
                    .default_value(0)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("tile-overlap")
                    .nick("Tile overlap")
                    .blurb("Pixels neighbouring tiles overlap by; detections in the overlap are merged by NMS")
                    .maximum(8_192)
                    .default_value(64)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("async-inference")
                    .nick("Asynchronous inference")
                    .blurb(
                        "Run the model on a worker thread: frames never wait for it and carry the newest result \
                         (marked carried); frames arriving while it is busy are not inferred and are counted \
                         (`skipped`). The latency query then adds nothing",
                    )
                    .default_value(false)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("skipped")
                    .nick("Skipped frames")
                    .blurb("Frames the asynchronous worker had no time for (read-only)")
                    .read_only()
                    .build(),
                glib::ParamSpecString::builder("model-info")
                    .nick("Model information")
                    .blurb("What the loaded model expects and produces: input size, layout, classes, provider (read-only)")
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        if pspec.name() == "model" {
            lock(&self.settings).model = optional_path(value);
            if lock(&self.loaded).is_some() {
                self.reload_in_background();
            }
            return;
        }
        let mut settings = lock(&self.settings);
        match pspec.name() {
            "labels" => settings.labels = optional_path(value),
            "conf-threshold" => {
                settings.conf_threshold = value.get().expect("type checked upstream")
            }
            "iou-threshold" => settings.iou_threshold = value.get().expect("type checked upstream"),
            "max-detections" => {
                settings.max_detections = value.get().expect("type checked upstream")
            }
            "layout" => settings.layout = value.get().expect("type checked upstream"),
            "execution-provider" => {
                settings.execution_provider = value.get().expect("type checked upstream")
            }
            "threads" => settings.threads = value.get().expect("type checked upstream"),
            "ort-library" => settings.ort_library = optional_path(value),
            "policy" => settings.policy = optional_path(value),
            "shadow-mode" => settings.shadow_mode = value.get().expect("type checked upstream"),
            "frames-per-part" => {
                settings.frames_per_part = value.get().expect("type checked upstream")
            }
            "interval" => settings.interval = value.get().expect("type checked upstream"),
            "tile-size" => settings.tile_size = value.get().expect("type checked upstream"),
            "tile-overlap" => settings.tile_overlap = value.get().expect("type checked upstream"),
            "async-inference" => {
                settings.async_inference = value.get().expect("type checked upstream")
            }
            name => gst::warning!(CAT, imp = self, "unknown property {name}"),
        }
        gst::debug!(CAT, imp = self, "set {} to {:?}", pspec.name(), value);
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let settings = lock(&self.settings);
        match pspec.name() {
            "model" => path_value(&settings.model),
            "labels" => path_value(&settings.labels),
            "conf-threshold" => settings.conf_threshold.to_value(),
            "iou-threshold" => settings.iou_threshold.to_value(),
            "max-detections" => settings.max_detections.to_value(),
            "layout" => settings.layout.to_value(),
            "execution-provider" => settings.execution_provider.to_value(),
            "threads" => settings.threads.to_value(),
            "ort-library" => path_value(&settings.ort_library),
            "policy" => path_value(&settings.policy),
            "shadow-mode" => settings.shadow_mode.to_value(),
            "frames-per-part" => settings.frames_per_part.to_value(),
            "interval" => settings.interval.to_value(),
            "tile-size" => settings.tile_size.to_value(),
            "tile-overlap" => settings.tile_overlap.to_value(),
            "async-inference" => settings.async_inference.to_value(),
            "skipped" => self
                .skipped
                .load(std::sync::atomic::Ordering::Relaxed)
                .to_value(),
            "model-info" => self.model_info().to_value(),
            _ => unimplemented!(),
        }
    }
}

impl GstObjectImpl for DefectDetect {}

impl ElementImpl for DefectDetect {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static ELEMENT_METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Defect detector",
                "Filter/Analyzer/Video",
                "Detects defects with a YOLO-style ONNX model; attaches region-of-interest metas and posts detections",
                "gst-plugin-defect developers",
            )
        });
        Some(&*ELEMENT_METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst_video::VideoCapsBuilder::new()
                .format_list(FORMATS.iter().copied())
                .build();
            vec![
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &caps,
                )
                .expect("valid template"),
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &caps,
                )
                .expect("valid template"),
            ]
        });
        PAD_TEMPLATES.as_ref()
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        if transition == gst::StateChange::NullToReady {
            self.load()?;
        }
        let success = self.parent_change_state(transition)?;
        if transition == gst::StateChange::ReadyToNull {
            *lock(&self.loaded) = None;
            *lock(&self.identity) = None;
        }
        Ok(success)
    }
}

impl BaseTransformImpl for DefectDetect {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        self.skipped.store(0, std::sync::atomic::Ordering::Relaxed);
        *lock(&self.latest) = None;
        if lock(&self.settings).async_inference {
            let (sender, receiver) = std::sync::mpsc::sync_channel::<Job>(1);
            let element = self.obj().downgrade();
            let thread = std::thread::Builder::new()
                .name("defectdetect-infer".into())
                .spawn(move || run_worker(receiver, element))
                .map_err(|e| {
                    gst::error_msg!(
                        gst::CoreError::Thread,
                        ["cannot start the inference worker: {e}"]
                    )
                })?;
            *lock(&self.worker) = Some(Worker { sender, thread });
        }
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        if let Some(worker) = lock(&self.worker).take() {
            // Closing the queue ends the worker after the frame in hand.
            drop(worker.sender);
            let _ = worker.thread.join();
        }
        *lock(&self.state) = None;
        Ok(())
    }

    fn set_caps(&self, incaps: &gst::Caps, _outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let info = gst_video::VideoInfo::from_caps(incaps)
            .map_err(|_| gst::loggable_error!(CAT, "cannot parse video caps {incaps}"))?;
        let format = pixel_format(info.format())
            .ok_or_else(|| gst::loggable_error!(CAT, "unsupported format {:?}", info.format()))?;
        let settings = lock(&self.settings).clone();
        let identity = lock(&self.identity)
            .clone()
            .ok_or_else(|| gst::loggable_error!(CAT, "no model loaded"))?;
        let pre = Preprocess::plan(
            &info,
            format,
            &identity.model,
            settings.tile_size,
            settings.tile_overlap,
        );
        gst::info!(
            CAT,
            imp = self,
            "{}x{} {:?} frames in {} tile(s) letterboxed as {:?}",
            info.width(),
            info.height(),
            info.format(),
            pre.tiles.len(),
            pre.letterbox.geometry()
        );
        let mut state = lock(&self.state);
        match state.as_mut() {
            // A caps change keeps the frame count and the part in progress.
            Some(state) => {
                state.info = info;
                state.format = format;
                state.pre = pre;
                state.last = None;
            }
            None => {
                *state = Some(State {
                    info,
                    format,
                    pre,
                    last: None,
                    frame_number: 0,
                    non_finite_warned: false,
                    parts: PartTracker::new(),
                    upstream_part: None,
                })
            }
        }
        Ok(())
    }

    fn query(&self, direction: gst::PadDirection, query: &mut gst::QueryRef) -> bool {
        if direction == gst::PadDirection::Src
            && let gst::QueryViewMut::Latency(latency) = query.view_mut()
        {
            let upstream = self.obj().sink_pad().peer_query(latency.query_mut());
            if upstream {
                let (live, min, max) = latency.result();
                let ours = if lock(&self.settings).async_inference {
                    gst::ClockTime::ZERO
                } else {
                    gst::ClockTime::from_nseconds(
                        self.latency_ns.load(std::sync::atomic::Ordering::Relaxed),
                    )
                };
                gst::debug!(CAT, imp = self, "adding {ours} of processing latency");
                latency.set(live, min + ours, max.map(|m| m + ours));
            }
            return upstream;
        }
        BaseTransformImplExt::parent_query(self, direction, query)
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::CustomDownstream(custom) => {
                if let Some(s) = custom.structure().filter(|s| s.name() == meta::PART_EVENT) {
                    let part = meta::part_id_of(s);
                    gst::debug!(CAT, imp = self, "upstream part is now {part:?}");
                    if let Some(state) = lock(&self.state).as_mut() {
                        state.upstream_part = part;
                    }
                }
            }
            gst::EventView::Eos(_) => self.finish_part(),
            gst::EventView::FlushStop(_) => {
                if let Some(state) = lock(&self.state).as_mut() {
                    state.parts = PartTracker::new();
                }
            }
            _ => {}
        }
        self.parent_sink_event(event)
    }

    fn transform_ip(
        &self,
        buffer: &mut gst::BufferRef,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let settings = lock(&self.settings).clone();
        let started = std::time::Instant::now();
        let inferred = if settings.async_inference {
            self.infer_async(buffer, &settings)?
        } else {
            self.infer_sync(buffer, &settings)?
        };
        self.decide_and_report(buffer, &settings, inferred, started)
    }
}

/// A frame's detections and where they came from.
struct Inferred {
    identity: Arc<Identity>,
    frame_number: u64,
    detections: Vec<Detection>,
    inference: std::time::Duration,
    /// The inferred frame whose detections this frame carries (`interval`, `async-inference`).
    carried_from: Option<u64>,
}

impl DefectDetect {
    /// The streaming thread runs the model (every `interval` frames).
    fn infer_sync(
        &self,
        buffer: &gst::BufferRef,
        settings: &Settings,
    ) -> Result<Inferred, gst::FlowError> {
        // Lock order everywhere: loaded, then state.
        let mut loaded_guard = lock(&self.loaded);
        let loaded = loaded_guard.as_mut().ok_or(gst::FlowError::NotNegotiated)?;
        let mut state_guard = lock(&self.state);
        let state = state_guard.as_mut().ok_or_else(|| {
            gst::element_imp_error!(
                self,
                gst::CoreError::Negotiation,
                ("frames arrived before caps")
            );
            gst::FlowError::NotNegotiated
        })?;
        self.adopt_pending(loaded, state, settings);
        let frame_number = state.frame_number;
        state.frame_number += 1;
        let carry = settings.interval > 1 && frame_number % settings.interval as u64 != 0;
        let (detections, inference, carried_from) = match (&state.last, carry) {
            (Some((from, detections)), true) => {
                (detections.clone(), std::time::Duration::ZERO, Some(*from))
            }
            _ => {
                let (detections, inference) =
                    self.detect(state, settings, &mut loaded.detector, buffer)?;
                if settings.interval > 1 {
                    state.last = Some((frame_number, detections.clone()));
                }
                (detections, inference, None)
            }
        };
        Ok(Inferred {
            identity: loaded.identity.clone(),
            frame_number,
            detections,
            inference,
            carried_from,
        })
    }

    /// The streaming thread hands the frame to the worker if it is free, and takes the newest
    /// result it has; it never waits for the model.
    fn infer_async(
        &self,
        buffer: &gst::BufferRef,
        settings: &Settings,
    ) -> Result<Inferred, gst::FlowError> {
        let identity = lock(&self.identity)
            .clone()
            .ok_or(gst::FlowError::NotNegotiated)?;
        let (frame_number, info, format) = {
            let mut state_guard = lock(&self.state);
            let state = state_guard.as_mut().ok_or(gst::FlowError::NotNegotiated)?;
            state.frame_number += 1;
            (state.frame_number - 1, state.info.clone(), state.format)
        };
        let size = (info.width(), info.height());
        if let Some(worker) = lock(&self.worker).as_ref() {
            let job = Job {
                buffer: buffer.to_owned(),
                frame: frame_number,
                info,
                format,
                settings: settings.clone(),
            };
            match worker.sender.try_send(job) {
                Ok(()) => {}
                Err(std::sync::mpsc::TrySendError::Full(_)) => {
                    self.skipped
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                Err(std::sync::mpsc::TrySendError::Disconnected(_)) => {
                    return Err(gst::FlowError::Error);
                }
            }
        }
        // Results for another frame size (before a caps change) do not apply.
        let latest = lock(&self.latest).clone().filter(|l| l.size == size);
        Ok(match latest {
            Some(l) => Inferred {
                identity,
                frame_number,
                detections: l.detections,
                inference: l.duration,
                carried_from: Some(l.frame),
            },
            None => Inferred {
                identity,
                frame_number,
                detections: Vec::new(),
                inference: std::time::Duration::ZERO,
                carried_from: None,
            },
        })
    }

    /// Applies the policy, groups parts, attaches the metas and posts the messages.
    fn decide_and_report(
        &self,
        buffer: &mut gst::BufferRef,
        settings: &Settings,
        inferred: Inferred,
        started: std::time::Instant,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let Inferred {
            identity,
            frame_number,
            detections,
            inference,
            carried_from,
        } = inferred;
        let info = &identity.model;
        let verdict = identity
            .policy
            .evaluate(&detections, |id| info.class_name(id));
        let (part_id, finished_part, width, height) = {
            let mut state_guard = lock(&self.state);
            let state = state_guard.as_mut().ok_or(gst::FlowError::NotNegotiated)?;
            let part_id = meta::part_id_from_buffer(buffer)
                .or_else(|| state.upstream_part.clone())
                .or_else(|| {
                    (settings.frames_per_part > 0)
                        .then(|| (frame_number / settings.frames_per_part as u64).to_string())
                });
            let finished_part = match &part_id {
                Some(id) => state
                    .parts
                    .observe(id, frame_number, verdict.verdict, &verdict.counts),
                None => state.parts.finish(),
            };
            (
                part_id,
                finished_part,
                state.info.width() as f32,
                state.info.height() as f32,
            )
        };
        let total = started.elapsed();
        let report = Report {
            inference_ms: inference.as_secs_f64() * 1e3,
            total_ms: total.as_secs_f64() * 1e3,
            frame_number,
            carried_from,
            skipped: self.skipped.load(std::sync::atomic::Ordering::Relaxed),
            part_id: part_id.as_deref(),
            shadow: settings.shadow_mode,
            model_id: &identity.model_id,
            model: info,
            policy_sha256: identity.policy_sha256.as_deref(),
            verdict: &verdict,
            class_name: &|id| info.class_name(id),
        };
        attach_roi_metas(buffer, &verdict.judged, width, height, report.class_name);
        attach_verdict_meta(buffer, &report);
        let running_time = self.running_time(buffer);
        let messages = [
            report.detections_message(buffer, running_time),
            report.verdict_message(buffer, running_time),
        ];
        let part =
            finished_part.map(|part| part_message(&part, settings.shadow_mode, &identity.model_id));
        if !settings.async_inference {
            self.track_latency(total);
        }
        for message in messages {
            self.post(message);
        }
        if let Some(part) = part {
            self.report_part(part);
        }
        Ok(gst::FlowSuccess::Ok)
    }

    /// NULL to READY: loads model and policy, or fails the state change naming the reason.
    fn load(&self) -> Result<(), gst::StateChangeError> {
        let settings = lock(&self.settings).clone();
        match build_loaded(&settings) {
            Ok((loaded, warnings)) => {
                for warning in warnings {
                    gst::element_imp_warning!(self, gst::LibraryError::Settings, ("{warning}"));
                }
                gst::info!(CAT, imp = self, "loaded {:?}", loaded.detector.info());
                *lock(&self.identity) = Some(loaded.identity.clone());
                let warm = loaded.detector.info().warm_run.as_nanos() as u64;
                self.latency_ns
                    .store(warm + warm / 4, std::sync::atomic::Ordering::Relaxed);
                *lock(&self.loaded) = Some(loaded);
                Ok(())
            }
            Err(LoadError::Runtime(error)) => {
                let kind = match &error {
                    RuntimeError::ModelMissing(_) => gst::ResourceError::NotFound,
                    RuntimeError::Library { .. } | RuntimeError::Environment(_) => {
                        gst::ResourceError::OpenRead
                    }
                    _ => gst::ResourceError::Read,
                };
                gst::element_imp_error!(self, kind, ("{error}"));
                Err(gst::StateChangeError)
            }
            Err(LoadError::Policy(message)) => {
                gst::element_imp_error!(self, gst::ResourceError::Settings, ("{message}"));
                Err(gst::StateChangeError)
            }
        }
    }

    /// A new `model` while READY or beyond: load it on a thread so that frames keep flowing;
    /// the next frame after it is ready switches to it. A model that fails to load leaves the
    /// current one in place, with a warning.
    fn reload_in_background(&self) {
        let settings = lock(&self.settings).clone();
        let generation = self
            .reload_generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        let element = self.obj().downgrade();
        let spawned = std::thread::Builder::new()
            .name("defectdetect-reload".into())
            .spawn(move || {
                let result = build_loaded(&settings);
                let Some(element) = element.upgrade() else {
                    return;
                };
                let imp = element.imp();
                // A later reload supersedes this one.
                if imp
                    .reload_generation
                    .load(std::sync::atomic::Ordering::SeqCst)
                    != generation
                {
                    return;
                }
                match result {
                    Ok((loaded, warnings)) => {
                        for warning in warnings {
                            gst::element_imp_warning!(
                                imp,
                                gst::LibraryError::Settings,
                                ("{warning}")
                            );
                        }
                        gst::info!(
                            CAT,
                            imp = imp,
                            "new model ready: {}",
                            loaded.identity.model_id
                        );
                        *lock(&imp.pending) = Some(loaded);
                    }
                    Err(error) => {
                        let reason = match error {
                            LoadError::Runtime(e) => e.to_string(),
                            LoadError::Policy(message) => message,
                        };
                        gst::element_imp_warning!(
                            imp,
                            gst::ResourceError::Read,
                            ("keeping the current model: {reason}")
                        );
                    }
                }
            });
        if let Err(e) = spawned {
            gst::element_imp_warning!(
                self,
                gst::CoreError::Thread,
                ("cannot load the new model: {e}")
            );
        }
    }

    /// Takes a model loaded in the background, at a frame boundary, and re-plans the
    /// letterbox for its input size.
    fn adopt_pending(&self, loaded: &mut Loaded, state: &mut State, settings: &Settings) {
        let Some(new) = lock(&self.pending).take() else {
            return;
        };
        *loaded = new;
        *lock(&self.identity) = Some(loaded.identity.clone());
        state.pre = Preprocess::plan(
            &state.info,
            state.format,
            loaded.detector.info(),
            settings.tile_size,
            settings.tile_overlap,
        );
        state.last = None;
        gst::info!(
            CAT,
            imp = self,
            "switched to {} at frame {}",
            loaded.identity.model_id,
            state.frame_number
        );
    }

    fn model_info(&self) -> Option<String> {
        let identity = lock(&self.identity).clone()?;
        let info = &identity.model;
        Some(format!(
            "{}: input {}x{}x{} ({}), output {:?} decoded as {}, classes {:?}, provider {}",
            identity.model_id,
            info.channels,
            info.height,
            info.width,
            info.input_name,
            info.output_shape,
            info.layout,
            info.names,
            info.provider
        ))
    }

    /// Raises the reported latency when a frame took longer than it says (with a margin), and
    /// asks the pipeline to recompute its latency.
    fn track_latency(&self, took: std::time::Duration) {
        let took = took.as_nanos() as u64;
        let reported = self.latency_ns.load(std::sync::atomic::Ordering::Relaxed);
        if took > reported {
            self.latency_ns
                .store(took + took / 4, std::sync::atomic::Ordering::Relaxed);
            let _ = self
                .obj()
                .post_message(gst::message::Latency::builder().src(&*self.obj()).build());
        }
    }

    fn running_time(&self, buffer: &gst::BufferRef) -> Option<gst::ClockTime> {
        self.obj()
            .segment()
            .downcast_ref::<gst::ClockTime>()
            .and_then(|segment| segment.to_running_time(buffer.pts()))
    }

    fn post(&self, structure: gst::Structure) {
        let _ = self.obj().post_message(
            gst::message::Element::builder(structure)
                .src(&*self.obj())
                .build(),
        );
    }

    /// Reports the part in progress, if any: at end of stream.
    fn finish_part(&self) {
        let part = lock(&self.state).as_mut().and_then(|s| s.parts.finish());
        let shadow = lock(&self.settings).shadow_mode;
        let model_id = lock(&self.identity)
            .as_ref()
            .map(|l| l.model_id.clone())
            .unwrap_or_default();
        if let Some(part) = part {
            self.report_part(part_message(&part, shadow, &model_id));
        }
    }

    /// A finished part goes downstream in-band, as a custom event ahead of the next frame (or
    /// of EOS), and onto the bus.
    fn report_part(&self, part: gst::Structure) {
        let _ = self
            .obj()
            .src_pad()
            .push_event(gst::event::CustomDownstream::new(part.clone()));
        self.post(part);
    }

    /// Preprocesses the frame, runs the model and post-processes: detections in frame pixels.
    fn detect(
        &self,
        state: &mut State,
        settings: &Settings,
        detector: &mut Detector,
        buffer: &gst::BufferRef,
    ) -> Result<(Vec<Detection>, std::time::Duration), gst::FlowError> {
        let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &state.info)
            .map_err(|_| {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Format,
                    (
                        "cannot map a {}x{} frame",
                        state.info.width(),
                        state.info.height()
                    )
                );
                gst::FlowError::Error
            })?;
        let view = frame_view(&frame).map_err(|reason| {
            gst::element_imp_error!(self, gst::StreamError::Format, ("{reason}"));
            gst::FlowError::Error
        })?;
        let result = inference::infer(detector, &mut state.pre, &view, settings.thresholds())
            .map_err(|e| {
                gst::element_imp_error!(self, gst::StreamError::Failed, ("{e}"));
                gst::FlowError::Error
            })?;
        if result.non_finite > 0 && !state.non_finite_warned {
            state.non_finite_warned = true;
            self.warn_non_finite(result.non_finite);
        }
        Ok((result.detections, result.duration))
    }

    fn warn_non_finite(&self, count: usize) {
        gst::element_imp_warning!(
            self,
            gst::StreamError::Decode,
            (
                "the model output {} candidates with NaN or infinite values; they were dropped",
                count
            )
        );
    }
}

/// The asynchronous worker: infers the frames it is handed, one at a time, keeping the
/// newest result; adopts a model loaded in the background between frames.
fn run_worker(jobs: std::sync::mpsc::Receiver<Job>, element: glib::WeakRef<super::DefectDetect>) {
    let mut pre: Option<Preprocess> = None;
    let mut warned = false;
    for job in jobs {
        let Some(element) = element.upgrade() else {
            return;
        };
        let imp = element.imp();
        let mut loaded_guard = lock(&imp.loaded);
        let Some(loaded) = loaded_guard.as_mut() else {
            return;
        };
        if let Some(new) = lock(&imp.pending).take() {
            *loaded = new;
            *lock(&imp.identity) = Some(loaded.identity.clone());
        }
        let model = loaded.detector.info();
        let key = (
            job.info.width(),
            job.info.height(),
            job.info.format(),
            model.model_id(),
        );
        if pre.as_ref().is_none_or(|p| p.key != key) {
            pre = Some(Preprocess::plan(
                &job.info,
                job.format,
                model,
                job.settings.tile_size,
                job.settings.tile_overlap,
            ));
        }
        let Some(plan) = pre.as_mut() else { return };
        let result =
            gst_video::VideoFrameRef::from_buffer_ref_readable(job.buffer.as_ref(), &job.info)
                .map_err(|e| e.to_string())
                .and_then(|frame| {
                    let view = frame_view(&frame)?;
                    inference::infer(&mut loaded.detector, plan, &view, job.settings.thresholds())
                });
        drop(loaded_guard);
        match result {
            Ok(result) => {
                if result.non_finite > 0 && !warned {
                    warned = true;
                    imp.warn_non_finite(result.non_finite);
                }
                *lock(&imp.latest) = Some(Latest {
                    frame: job.frame,
                    size: (job.info.width(), job.info.height()),
                    detections: result.detections,
                    duration: result.duration,
                });
            }
            Err(reason) => {
                gst::element_imp_error!(
                    imp,
                    gst::StreamError::Failed,
                    ("inference failed: {reason}")
                );
                return;
            }
        }
    }
}

enum LoadError {
    Runtime(RuntimeError),
    Policy(String),
}

/// Loads the model and the policy the settings name; returns the warnings to post.
fn build_loaded(settings: &Settings) -> Result<(Loaded, Vec<String>), LoadError> {
    let (detector, warnings) =
        Detector::load(&settings.detector_options()).map_err(LoadError::Runtime)?;
    let (policy, policy_sha256) = load_policy(settings.policy.as_deref(), &detector.info().names)
        .map_err(LoadError::Policy)?;
    let model = detector.info().clone();
    let identity = Arc::new(Identity {
        model_id: model.model_id(),
        model,
        policy,
        policy_sha256,
    });
    Ok((Loaded { detector, identity }, warnings))
}

/// Reads and validates the policy against the model's classes; no file: fail on any detection.
fn load_policy(
    path: Option<&std::path::Path>,
    classes: &[String],
) -> Result<(Policy, Option<String>), String> {
    let Some(path) = path else {
        return Ok((Policy::fail_on_any_detection(), None));
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("policy file {}: {e}", path.display()))?;
    let policy =
        parse_policy(&text, &path.display().to_string()).map_err(|e| format!("policy {e}"))?;
    if let Some((name, line)) = policy.unknown_classes(classes).next() {
        return Err(format!(
            "policy {}:{line}: unknown class {name:?}; the model's classes are {classes:?}",
            path.display()
        ));
    }
    Ok((policy, Some(crate::runtime::sha256_hex(text.as_bytes()))))
}

/// One frame's results, as the metas and messages carry them.
struct Report<'a> {
    /// Model run and decoding.
    inference_ms: f64,
    /// Preprocessing, inference, NMS and the policy.
    total_ms: f64,
    frame_number: u64,
    /// The inferred frame whose detections this frame carries (`interval`).
    carried_from: Option<u64>,
    /// Frames the asynchronous worker skipped so far.
    skipped: u64,
    part_id: Option<&'a str>,
    shadow: bool,
    model_id: &'a str,
    model: &'a crate::runtime::ModelInfo,
    policy_sha256: Option<&'a str>,
    verdict: &'a FrameVerdict,
    class_name: &'a dyn Fn(usize) -> String,
}

impl Report<'_> {
    fn detections_message(
        &self,
        buffer: &gst::BufferRef,
        running_time: Option<gst::ClockTime>,
    ) -> gst::Structure {
        let list = gst::Array::new(self.verdict.judged.iter().map(|j| {
            let d = &j.detection;
            gst::Structure::builder("detection")
                .field("label-id", d.class_id as u32)
                .field("label", (self.class_name)(d.class_id))
                .field("confidence", d.confidence as f64)
                .field("x-min", d.bbox.x1 as f64)
                .field("y-min", d.bbox.y1 as f64)
                .field("x-max", d.bbox.x2 as f64)
                .field("y-max", d.bbox.y2 as f64)
                .field("severity", j.severity.as_str())
                .field("decision", j.decision.as_str())
                .build()
        }));
        gst::Structure::builder("defect-detections")
            .field("frame", self.frame_number)
            .field("pts", buffer.pts())
            .field("running-time", running_time)
            .field("detections", list)
            .build()
    }

    /// The verdict fields shared by the meta and the message.
    fn verdict_fields(&self, builder: gst::structure::Builder) -> gst::structure::Builder {
        let [critical, major, minor, cosmetic] = self.verdict.counts;
        let reasons = gst::Array::new(
            self.verdict
                .reasons()
                .map(|j| reason_structure(j, self.class_name)),
        );
        builder
            .field("verdict", self.verdict.verdict.as_str())
            .field("shadow", self.shadow)
            .field_if_some("part-id", self.part_id)
            .field("frame", self.frame_number)
            .field("carried", self.carried_from.is_some())
            .field("skipped-frames", self.skipped)
            .field_if_some("source-frame", self.carried_from)
            .field("critical", critical)
            .field("major", major)
            .field("minor", minor)
            .field("cosmetic", cosmetic)
            .field("model-id", self.model_id)
            .field("model-name", self.model.name().as_ref())
            .field(
                "model-version",
                self.model
                    .metadata
                    .get("version")
                    .map_or("", String::as_str),
            )
            .field("model-sha256", &self.model.sha256)
            .field_if_some("policy-sha256", self.policy_sha256)
            .field("inference-ms", self.inference_ms)
            .field("total-ms", self.total_ms)
            .field("reasons", reasons)
    }

    fn verdict_message(
        &self,
        buffer: &gst::BufferRef,
        running_time: Option<gst::ClockTime>,
    ) -> gst::Structure {
        self.verdict_fields(gst::Structure::builder("defect-verdict"))
            .field("pts", buffer.pts())
            .field("running-time", running_time)
            .build()
    }
}

fn reason_structure(j: &Judged, class_name: &dyn Fn(usize) -> String) -> gst::Structure {
    let d = &j.detection;
    gst::Structure::builder("reason")
        .field("label-id", d.class_id as u32)
        .field("label", class_name(d.class_id))
        .field("severity", j.severity.as_str())
        .field("decision", j.decision.as_str())
        .field("confidence", d.confidence as f64)
        .field("x-min", d.bbox.x1 as f64)
        .field("y-min", d.bbox.y1 as f64)
        .field("x-max", d.bbox.x2 as f64)
        .field("y-max", d.bbox.y2 as f64)
        .build()
}

fn attach_verdict_meta(buffer: &mut gst::BufferRef, report: &Report) {
    let fields = report
        .verdict_fields(gst::Structure::builder(meta::VERDICT_META))
        .build();
    if let Ok(mut custom) = gst::meta::CustomMeta::add(buffer, meta::VERDICT_META) {
        let structure = custom.mut_structure();
        for (name, value) in fields.iter() {
            structure.set_value(name, value.clone());
        }
    }
}

fn part_message(part: &PartVerdict, shadow: bool, model_id: &str) -> gst::Structure {
    let [critical, major, minor, cosmetic] = part.counts;
    gst::Structure::builder("defect-part-verdict")
        .field("part-id", &part.part_id)
        .field("verdict", part.verdict.as_str())
        .field("shadow", shadow)
        .field("first-frame", part.first_frame)
        .field("last-frame", part.last_frame)
        .field("frames", part.frames)
        .field("critical", critical)
        .field("major", major)
        .field("minor", minor)
        .field("cosmetic", cosmetic)
        .field("model-id", model_id)
        .build()
}

/// One `GstVideoRegionOfInterestMeta` a detection, with the DL Streamer `detection`
/// parameters plus the policy's `severity` and `decision`.
fn attach_roi_metas(
    buffer: &mut gst::BufferRef,
    judged: &[Judged],
    width: f32,
    height: f32,
    class_name: &dyn Fn(usize) -> String,
) {
    for (id, j) in judged.iter().enumerate() {
        let (d, b) = (&j.detection, j.detection.bbox);
        let rect = (
            b.x1.round() as u32,
            b.y1.round() as u32,
            b.width().round() as u32,
            b.height().round() as u32,
        );
        let label = class_name(d.class_id);
        let mut roi = gst_video::VideoRegionOfInterestMeta::add(buffer, &label, rect);
        // Ids 0..n-1 let bindings without meta iteration fetch every ROI by id.
        roi.set_id(id as i32);
        roi.add_param(
            gst::Structure::builder("detection")
                .field("label_id", d.class_id as i32)
                .field("label", label)
                .field("confidence", d.confidence as f64)
                .field("x_min", (b.x1 / width) as f64)
                .field("y_min", (b.y1 / height) as f64)
                .field("x_max", (b.x2 / width) as f64)
                .field("y_max", (b.y2 / height) as f64)
                .field("severity", j.severity.as_str())
                .field("decision", j.decision.as_str())
                .build(),
        );
    }
}
