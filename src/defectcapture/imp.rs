// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `defectcapture` element: chooses frames on the streaming thread, writes them on a
//! worker thread through a bounded queue, using [`crate::capture`].

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;

use super::CaptureFormat;
use crate::analysis::BBox;
use crate::capture::{self, BoundedDir, ImageFormat};
use crate::element::MetaProblems;
use crate::element::{self, lock};
use crate::meta::{DetectionParams, Verdict, VerdictMeta};
use crate::video::{frame_view, pixel_format, yuv_matrix};

static CAT: LazyLock<gst::DebugCategory> =
    LazyLock::new(|| element::debug_category("defectcapture", "Captures frames for retraining"));

element::subclass!(DefectCapture, "GstDefectCapture", gst_base::BaseTransform, element::video_filter_pads() => "Defect capture", "Filter/Video", "Writes FAIL, REVIEW and sampled PASS frames with YOLO labels into a bounded directory for retraining");

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

element::settings_properties!(Settings for DefectCapture {
    "location" => location,
    "format" => format,
    "capture-fail" => capture_fail,
    "capture-review" => capture_review,
    "pass-every" => pass_every,
    "max-size-mb" => max_size_mb,
    "max-files" => max_files,
    "queue-size" => queue_size,
});

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
    verdict: Verdict,
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
    problems: MetaProblems,
}

impl ObjectImpl for DefectCapture {
    element::properties! {
        string("location", "Location", "capture").mutable_ready(): "Directory the captures are written to (created if missing)",
        enumeration("format", "Format", CaptureFormat::Png).mutable_ready(): "Image format of the captures",
        boolean("capture-fail", "Capture FAIL", true).mutable_playing(): "Capture frames whose verdict is FAIL",
        boolean("capture-review", "Capture REVIEW", true).mutable_playing(): "Capture frames whose verdict is REVIEW",
        uint("pass-every", "Sample of PASS frames", 0..=u32::MAX, 0).mutable_playing(): "Capture every Nth PASS frame as a sample of good parts (0 = none)",
        uint("max-size-mb", "Maximum size", 1..=u32::MAX, 1024).mutable_ready(): "Bound of the directory's size in MiB; the oldest captures are removed first",
        uint("max-files", "Maximum captures", 1..=u32::MAX, 10_000).mutable_ready(): "Bound of the number of captures (image plus label) kept",
        uint("queue-size", "Queue size", 1..=1024, 8).mutable_ready(): "Frames waiting for the writer; when full, frames are dropped and counted",
        uint64("captured", "captured").read_only(): "Frames written so far",
        uint64("dropped", "dropped").read_only(): "Frames not captured because the queue was full",
        uint64("write-errors", "write-errors").read_only(): "Captures that could not be written (disk full, permissions)",
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let counter = match pspec.name() {
            "captured" => &self.counters.captured,
            "dropped" => &self.counters.dropped,
            "write-errors" => &self.counters.write_errors,
            _ => return element::property(&self.settings, pspec),
        };
        counter.load(Ordering::Relaxed).to_value()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        element::set_property(&self.settings, value, pspec);
    }
}

impl BaseTransformImpl for DefectCapture {
    element::in_place_transform!();

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
        let (capture_fail, capture_review, pass_every) = {
            let s = lock(&self.settings);
            (s.capture_fail, s.capture_review, s.pass_every)
        };
        let mut state_guard = lock(&self.state);
        let state = state_guard.as_mut().ok_or(gst::FlowError::Flushing)?;
        let info = state.info.clone().ok_or(gst::FlowError::NotNegotiated)?;
        let Some(verdict_meta) = VerdictMeta::from_buffer(buffer)
            .and_then(|read| self.problems.check(&*self.obj(), *CAT, read))
        else {
            return Ok(gst::FlowSuccess::Ok);
        };
        let (verdict, frame) = (verdict_meta.verdict, verdict_meta.frame);
        let wanted = match verdict {
            Verdict::Fail => capture_fail,
            Verdict::Review => capture_review,
            // UNKNOWN (not inspected) is neither a failure nor a sample of good parts.
            Verdict::Unknown => false,
            Verdict::Pass => {
                state.passes_seen += 1;
                pass_every > 0 && state.passes_seen % pass_every as u64 == 1 % pass_every as u64
            }
        };
        if wanted && let Some(sender) = &state.sender {
            let job = Job {
                buffer: buffer.to_owned(),
                info,
                boxes: self.boxes_of(buffer),
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
        VerdictMeta::set_capture_dropped(buffer, dropped);
        Ok(gst::FlowSuccess::Ok)
    }
}

impl DefectCapture {
    /// The detections the policy counted (not those outside the region, masked or too
    /// small), boxes in pixels.
    fn boxes_of(&self, buffer: &gst::BufferRef) -> Vec<(usize, BBox)> {
        buffer
            .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
            .filter_map(|roi| {
                let params = match DetectionParams::of_roi(&roi) {
                    // Another element's ROI: no class to label it with.
                    None => return None,
                    Some(read) => self.problems.check(&*self.obj(), *CAT, read)?,
                };
                if !params.counted() {
                    return None;
                }
                let (x, y, w, h) = roi.rect();
                Some((
                    params.label_id as usize,
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
    let image = capture::frame_to_image(&view, pixel_format, yuv_matrix(&job.info))?;
    let encoded = capture::encode(&image, format)?;
    let labels = capture::yolo_labels(&job.boxes, job.info.width(), job.info.height());
    dir.write(
        job.frame,
        job.verdict.as_str(),
        &[(format.extension(), &encoded), ("txt", labels.as_bytes())],
    )
    .map(|_| ())
    .map_err(|e| e.to_string())
}
