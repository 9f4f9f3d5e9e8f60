// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `defectcapture` element: chooses frames on the streaming thread, writes them on a
//! worker thread through a bounded queue, using [`crate::capture`].

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;

use super::CaptureFormat;
use crate::analysis::BBox;
use crate::capture::{self, BoundedDir, ImageFormat};
use crate::meta;
use crate::video::{FORMATS, frame_view, pixel_format, yuv_matrix};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "defectcapture",
        gst::DebugColorFlags::empty(),
        Some("Captures frames for retraining"),
    )
});

#[derive(Debug, Clone)]
struct Settings {
    location: PathBuf,
    format: CaptureFormat,
    capture_fail: bool,
    capture_review: bool,
    pass_every: u32,
    max_size_mb: u32,
    max_files: u32,
    queue_size: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            location: PathBuf::from("capture"),
            format: CaptureFormat::Png,
            capture_fail: true,
            capture_review: true,
            pass_every: 0,
            max_size_mb: 1024,
            max_files: 10_000,
            queue_size: 8,
        }
    }
}

/// Counters shared with the worker.
#[derive(Debug, Default)]
struct Counters {
    captured: AtomicU64,
    dropped: AtomicU64,
    write_errors: AtomicU64,
}

/// One frame for the worker.
struct Job {
    buffer: gst::Buffer,
    info: gst_video::VideoInfo,
    boxes: Vec<(usize, BBox)>,
    frame: u64,
    verdict: String,
}

struct State {
    info: Option<gst_video::VideoInfo>,
    sender: Option<SyncSender<Job>>,
    worker: Option<std::thread::JoinHandle<()>>,
    passes_seen: u64,
}

#[derive(Default)]
pub struct DefectCapture {
    settings: Mutex<Settings>,
    counters: Arc<Counters>,
    state: Mutex<Option<State>>,
}

#[glib::object_subclass]
impl ObjectSubclass for DefectCapture {
    const NAME: &'static str = "GstDefectCapture";
    type Type = super::DefectCapture;
    type ParentType = gst_base::BaseTransform;
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ObjectImpl for DefectCapture {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let count = |name: &'static str, blurb: &'static str| {
                glib::ParamSpecUInt64::builder(name)
                    .nick(name)
                    .blurb(blurb)
                    .read_only()
                    .build()
            };
            vec![
                glib::ParamSpecString::builder("location")
                    .nick("Location")
                    .blurb("Directory the captures are written to (created if missing)")
                    .default_value(Some("capture"))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("format", CaptureFormat::Png)
                    .nick("Format")
                    .blurb("Image format of the captures")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("capture-fail")
                    .nick("Capture FAIL")
                    .blurb("Capture frames whose verdict is FAIL")
                    .default_value(true)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("capture-review")
                    .nick("Capture REVIEW")
                    .blurb("Capture frames whose verdict is REVIEW")
                    .default_value(true)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("pass-every")
                    .nick("Sample of PASS frames")
                    .blurb("Capture every Nth PASS frame as a sample of good parts (0 = none)")
                    .default_value(0)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("max-size-mb")
                    .nick("Maximum size")
                    .blurb("Bound of the directory's size in MiB; the oldest captures are removed first")
                    .minimum(1)
                    .default_value(1024)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("max-files")
                    .nick("Maximum captures")
                    .blurb("Bound of the number of captures (image plus label) kept")
                    .minimum(1)
                    .default_value(10_000)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("queue-size")
                    .nick("Queue size")
                    .blurb("Frames waiting for the writer; when full, frames are dropped and counted")
                    .minimum(1)
                    .maximum(1024)
                    .default_value(8)
                    .mutable_ready()
                    .build(),
                count("captured", "Frames written so far"),
                count("dropped", "Frames not captured because the queue was full"),
                count("write-errors", "Captures that could not be written (disk full, permissions)"),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = lock(&self.settings);
        match pspec.name() {
            "location" => {
                s.location = value
                    .get::<Option<String>>()
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| "capture".into())
                    .into()
            }
            "format" => s.format = value.get().expect("type checked upstream"),
            "capture-fail" => s.capture_fail = value.get().expect("type checked upstream"),
            "capture-review" => s.capture_review = value.get().expect("type checked upstream"),
            "pass-every" => s.pass_every = value.get().expect("type checked upstream"),
            "max-size-mb" => s.max_size_mb = value.get().expect("type checked upstream"),
            "max-files" => s.max_files = value.get().expect("type checked upstream"),
            "queue-size" => s.queue_size = value.get().expect("type checked upstream"),
            name => gst::warning!(CAT, imp = self, "unknown property {name}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = lock(&self.settings);
        match pspec.name() {
            "location" => s.location.display().to_string().to_value(),
            "format" => s.format.to_value(),
            "capture-fail" => s.capture_fail.to_value(),
            "capture-review" => s.capture_review.to_value(),
            "pass-every" => s.pass_every.to_value(),
            "max-size-mb" => s.max_size_mb.to_value(),
            "max-files" => s.max_files.to_value(),
            "queue-size" => s.queue_size.to_value(),
            "captured" => self.counters.captured.load(Ordering::Relaxed).to_value(),
            "dropped" => self.counters.dropped.load(Ordering::Relaxed).to_value(),
            "write-errors" => self
                .counters
                .write_errors
                .load(Ordering::Relaxed)
                .to_value(),
            _ => unimplemented!(),
        }
    }
}

impl GstObjectImpl for DefectCapture {}

impl ElementImpl for DefectCapture {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static ELEMENT_METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Defect capture",
                "Filter/Video",
                "Writes FAIL, REVIEW and sampled PASS frames with YOLO labels into a bounded directory for retraining",
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
}

impl BaseTransformImpl for DefectCapture {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = lock(&self.settings).clone();
        let max_bytes = settings.max_size_mb as u64 * 1024 * 1024;
        let run = capture::new_run_id();
        let dir = BoundedDir::open(
            &settings.location,
            &run,
            max_bytes,
            settings.max_files as usize,
        )
        .map_err(|e| {
            gst::error_msg!(
                gst::ResourceError::OpenWrite,
                [
                    "cannot write captures to {}: {e}",
                    settings.location.display()
                ]
            )
        })?;
        gst::info!(
            CAT,
            imp = self,
            "run {run}: {} earlier captures adopted in {}",
            dir.captures(),
            settings.location.display()
        );
        let (sender, receiver) = std::sync::mpsc::sync_channel::<Job>(settings.queue_size as usize);
        let format = match settings.format {
            CaptureFormat::Png => ImageFormat::Png,
            CaptureFormat::Jpeg => ImageFormat::Jpeg,
        };
        let counters = self.counters.clone();
        let element = self.obj().downgrade();
        let worker = std::thread::Builder::new()
            .name("defectcapture".into())
            .spawn(move || write_captures(receiver, dir, format, counters, element))
            .map_err(|e| {
                gst::error_msg!(
                    gst::CoreError::Thread,
                    ["cannot start the capture writer: {e}"]
                )
            })?;
        *lock(&self.state) = Some(State {
            info: None,
            sender: Some(sender),
            worker: Some(worker),
            passes_seen: 0,
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        if let Some(mut state) = lock(&self.state).take() {
            // Closing the queue lets the worker finish what is queued and end.
            state.sender = None;
            if let Some(worker) = state.worker.take() {
                let _ = worker.join();
            }
        }
        Ok(())
    }

    fn set_caps(&self, incaps: &gst::Caps, _outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let info = gst_video::VideoInfo::from_caps(incaps)
            .map_err(|_| gst::loggable_error!(CAT, "cannot parse caps {incaps}"))?;
        if let Some(state) = lock(&self.state).as_mut() {
            state.info = Some(info);
        }
        Ok(())
    }

    fn transform_ip(
        &self,
        buffer: &mut gst::BufferRef,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let settings = lock(&self.settings).clone();
        let mut state_guard = lock(&self.state);
        let state = state_guard.as_mut().ok_or(gst::FlowError::Flushing)?;
        let info = state.info.clone().ok_or(gst::FlowError::NotNegotiated)?;
        let Some((verdict, frame)) = verdict_of(buffer) else {
            return Ok(gst::FlowSuccess::Ok);
        };
        let wanted = match verdict.as_str() {
            "FAIL" => settings.capture_fail,
            "REVIEW" => settings.capture_review,
            // UNKNOWN (not inspected) is neither a failure nor a sample of good parts.
            "PASS" => {
                state.passes_seen += 1;
                settings.pass_every > 0
                    && state.passes_seen % settings.pass_every as u64
                        == 1 % settings.pass_every as u64
            }
            _ => false,
        };
        if wanted && let Some(sender) = &state.sender {
            let job = Job {
                buffer: buffer.to_owned(),
                info,
                boxes: boxes_of(buffer),
                frame,
                verdict,
            };
            match sender.try_send(job) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    let dropped = self.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                    gst::debug!(
                        CAT,
                        imp = self,
                        "capture queue full: frame {frame} dropped ({dropped} so far)"
                    );
                }
                Err(TrySendError::Disconnected(_)) => return Err(gst::FlowError::Error),
            }
        }
        drop(state_guard);
        let dropped = self.counters.dropped.load(Ordering::Relaxed);
        if let Ok(mut verdict_meta) =
            gst::meta::CustomMeta::from_mut_buffer(buffer, meta::VERDICT_META)
        {
            verdict_meta.mut_structure().set("capture-dropped", dropped);
        }
        Ok(gst::FlowSuccess::Ok)
    }
}

/// The frame's verdict and number from `DefectVerdictMeta`.
fn verdict_of(buffer: &gst::BufferRef) -> Option<(String, u64)> {
    let verdict_meta = gst::meta::CustomMeta::from_buffer(buffer, meta::VERDICT_META).ok()?;
    let s = verdict_meta.structure();
    Some((
        s.get::<String>("verdict").ok()?,
        s.get::<u64>("frame").unwrap_or(0),
    ))
}

/// The detections the policy counted (not those outside the region, masked or too small),
/// boxes in pixels.
fn boxes_of(buffer: &gst::BufferRef) -> Vec<(usize, BBox)> {
    buffer
        .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
        .filter_map(|roi| {
            let p = roi.param("detection");
            let decision = p.and_then(|p| p.get::<String>("decision").ok());
            if matches!(
                decision.as_deref(),
                Some("outside-region" | "masked" | "too-small")
            ) {
                return None;
            }
            let class = p
                .and_then(|p| p.get::<i32>("label_id").ok())
                .unwrap_or(0)
                .max(0) as usize;
            let (x, y, w, h) = roi.rect();
            Some((
                class,
                BBox {
                    x1: x as f32,
                    y1: y as f32,
                    x2: (x + w) as f32,
                    y2: (y + h) as f32,
                },
            ))
        })
        .collect()
}

/// The worker: converts, encodes and writes each job; reports the first write error.
fn write_captures(
    jobs: std::sync::mpsc::Receiver<Job>,
    mut dir: BoundedDir,
    format: ImageFormat,
    counters: Arc<Counters>,
    element: glib::WeakRef<super::DefectCapture>,
) {
    for job in jobs {
        match write_one(&job, &mut dir, format) {
            Ok(()) => {
                counters.captured.fetch_add(1, Ordering::Relaxed);
            }
            Err(reason) => {
                gst::debug!(
                    CAT,
                    "cannot write the capture of frame {}: {reason}",
                    job.frame
                );
                if counters.write_errors.fetch_add(1, Ordering::Relaxed) == 0
                    && let Some(element) = element.upgrade()
                {
                    let message = format!(
                        "cannot write the capture of frame {} in {}: {reason}",
                        job.frame,
                        dir.dir().display()
                    );
                    let _ = element.post_message(
                        gst::message::Warning::builder(gst::ResourceError::Write, &message)
                            .src(&element)
                            .build(),
                    );
                }
            }
        }
    }
}

fn write_one(job: &Job, dir: &mut BoundedDir, format: ImageFormat) -> Result<(), String> {
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(job.buffer.as_ref(), &job.info)
        .map_err(|e| e.to_string())?;
    let pixel_format = pixel_format(job.info.format()).ok_or("unsupported format")?;
    let view = frame_view(&frame)?;
    let image = capture::frame_to_image(&view, pixel_format, yuv_matrix(&job.info));
    let encoded = capture::encode(&image, format)?;
    let labels = capture::yolo_labels(&job.boxes, job.info.width(), job.info.height());
    dir.write(
        job.frame,
        &job.verdict,
        &[(format.extension(), &encoded), ("txt", labels.as_bytes())],
    )
    .map(|_| ())
    .map_err(|e| e.to_string())
}
