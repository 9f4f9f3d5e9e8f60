// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `defectcapture` element: chooses frames on the streaming thread, writes them on a
//! worker thread through a bounded queue, using [`crate::capture`].

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;

use super::{Annotations, CaptureFormat};
use crate::analysis::BBox;
use crate::capture::dataset::{self, CocoRun, Created, Labelled};
use crate::capture::{self, BoundedDir, ImageFormat, Part};
use crate::draw::heatmap::HeatSource;
use crate::element::MetaProblems;
use crate::element::{self, lock};
use crate::meta::prelude::*;
use crate::meta::{
    AnomalyMapMeta, DetectionParams, MaskParams, ModelInfoMeta, Verdict, VerdictMeta, fields,
};
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
    annotations: Annotations,
    coco_every: u32,
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
    "annotations" => annotations,
    "coco-every" => coco_every,
});

/// Counters shared with the worker.
#[derive(Debug, Default)]
struct Counters {
    captured: AtomicU64,
    dropped: AtomicU64,
    write_errors: AtomicU64,
}

/// One frame for the worker.
struct Capture {
    buffer: gst::Buffer,
    info: gst_video::VideoInfo,
    boxes: Vec<Labelled>,
    frame: u64,
    verdict: Verdict,
    /// An anomaly model's map.
    map: Option<AnomalyMapMeta>,
}

/// What the worker is asked to do, in stream order.
enum Job {
    Capture(Box<Capture>),
    /// The model's id and class names (the `model-info` event of `defectdetect`).
    Model {
        model_id: String,
        classes: Vec<String>,
    },
    /// Write the COCO file and the dataset files now, then answer (EOS waits for it).
    Sync(SyncSender<()>),
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
        enumeration("annotations", "Annotations", Annotations::YoloCoco).mutable_ready(): "Pre-annotations written beside the images: YOLO labels (labels/, data.yaml, classes.txt), a COCO file per run (annotations/<run>.json), both, or none; anomaly heat maps (heatmaps/) with either",
        uint("coco-every", "COCO rewrite interval", 1..=100_000, 10).mutable_ready(): "Rewrite the run's COCO file (atomically) after this many captures, and always before EOS goes on",
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
        let coco = if settings.annotations.coco() {
            Some(CocoRun::new(&settings.location, &run).map_err(|e| {
                gst::error_msg!(
                    gst::ResourceError::OpenWrite,
                    [
                        "cannot write COCO annotations in {}: {e}",
                        settings.location.display()
                    ]
                )
            })?)
        } else {
            None
        };
        let writer = Writer {
            dir,
            format,
            annotations: settings.annotations,
            coco,
            coco_every: settings.coco_every,
            names: None,
            dataset_files: None,
            coco_warned: false,
            counters: self.counters.clone(),
            element: self.obj().downgrade(),
        };
        let worker = std::thread::Builder::new()
            .name("defectcapture".into())
            .spawn(move || writer.run(receiver))
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

    fn sink_event(&self, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::CustomDownstreamSticky(custom) => {
                if let Some(s) = custom.structure()
                    && s.name() == fields::MODEL_INFO
                {
                    match ModelInfoMeta::from_structure(s) {
                        Ok(info) => {
                            self.send(Job::Model {
                                model_id: info.model_id,
                                classes: info.classes,
                            });
                        }
                        Err(e) => gst::warning!(CAT, imp = self, "unreadable model-info: {e}"),
                    }
                }
            }
            gst::EventView::Eos(_) => {
                // The files are complete when EOS reaches the application.
                let (done, wait) = std::sync::mpsc::sync_channel(1);
                if self.send(Job::Sync(done)) {
                    let _ = wait.recv();
                }
            }
            _ => {}
        }
        self.parent_sink_event(event)
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
            let map = AnomalyMapMeta::from_buffer(buffer)
                .and_then(|read| self.problems.check(&*self.obj(), *CAT, read));
            let job = Job::Capture(Box::new(Capture {
                boxes: self.boxes_of(buffer, &info),
                buffer: buffer.to_owned(),
                info,
                frame,
                verdict,
                map,
            }));
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
    /// Sends a job to the worker, waiting for room in the queue; false when there is no
    /// worker (stopped).
    fn send(&self, job: Job) -> bool {
        let sender = lock(&self.state)
            .as_ref()
            .and_then(|state| state.sender.clone());
        sender.is_some_and(|sender| sender.send(job).is_ok())
    }

    /// The detections the policy counted (not those outside the region, masked or too
    /// small), boxes in frame pixels (from the detection's normalised box, clipped to the
    /// frame), with a segmentation model's masks; a box with no area is left out.
    fn boxes_of(&self, buffer: &gst::BufferRef, info: &gst_video::VideoInfo) -> Vec<Labelled> {
        let (w, h) = (info.width() as f64, info.height() as f64);
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
                let bbox = BBox {
                    x1: (params.x_min.clamp(0.0, 1.0) * w) as f32,
                    y1: (params.y_min.clamp(0.0, 1.0) * h) as f32,
                    x2: (params.x_max.clamp(0.0, 1.0) * w) as f32,
                    y2: (params.y_max.clamp(0.0, 1.0) * h) as f32,
                };
                if bbox.width() <= 0.0 || bbox.height() <= 0.0 {
                    gst::debug!(
                        CAT,
                        imp = self,
                        "a {} box with no area is not labelled",
                        params.label
                    );
                    return None;
                }
                // A segmentation model's mask; a malformed one is reported, and the
                // detection labelled with its box.
                let mask = MaskParams::of_roi(&roi)
                    .and_then(|read| self.problems.check(&*self.obj(), *CAT, read))
                    .and_then(|m| self.problems.check(&*self.obj(), *CAT, m.decode()));
                Some(Labelled {
                    class: params.label_id as usize,
                    label: params.label,
                    bbox,
                    confidence: params.confidence,
                    mask,
                })
            })
            .collect()
    }
}

/// The worker's side: the directory, the COCO file of the run, the dataset files.
struct Writer {
    dir: BoundedDir,
    format: ImageFormat,
    annotations: Annotations,
    coco: Option<CocoRun>,
    coco_every: u32,
    /// The model's class names, once its `model-info` came.
    names: Option<Vec<String>>,
    /// The class names `data.yaml` and `classes.txt` were written (or checked) for.
    dataset_files: Option<Vec<String>>,
    coco_warned: bool,
    counters: Arc<Counters>,
    element: glib::WeakRef<super::DefectCapture>,
}

impl Writer {
    /// Converts, encodes and writes each capture; keeps the COCO file and the dataset files;
    /// writes them a last time when the queue closes (stop).
    fn run(mut self, jobs: Receiver<Job>) {
        for job in jobs {
            match job {
                Job::Capture(capture) => self.capture(&capture),
                Job::Model { model_id, classes } => {
                    if let Some(coco) = &mut self.coco {
                        coco.set_model(&model_id, &classes);
                    }
                    self.names = Some(classes);
                    self.dataset_files();
                }
                Job::Sync(done) => {
                    self.sync();
                    let _ = done.send(());
                }
            }
        }
        self.sync();
    }

    fn capture(&mut self, capture: &Capture) {
        match self.write_one(capture) {
            Ok(()) => {
                self.counters.captured.fetch_add(1, Ordering::Relaxed);
            }
            Err(reason) => {
                gst::debug!(
                    CAT,
                    "cannot write the capture of frame {}: {reason}",
                    capture.frame
                );
                if self.counters.write_errors.fetch_add(1, Ordering::Relaxed) == 0 {
                    self.warn(&format!(
                        "cannot write the capture of frame {} in {}: {reason}",
                        capture.frame,
                        self.dir.dir().display()
                    ));
                }
            }
        }
        self.forget_removed();
        if self
            .coco
            .as_ref()
            .is_some_and(|c| c.pending() >= self.coco_every)
        {
            self.write_coco();
        }
    }

    fn write_one(&mut self, job: &Capture) -> Result<(), String> {
        let frame =
            gst_video::VideoFrameRef::from_buffer_ref_readable(job.buffer.as_ref(), &job.info)
                .map_err(|e| e.to_string())?;
        let pixel_format = pixel_format(job.info.format()).ok_or("unsupported format")?;
        let view = frame_view(&frame)?;
        let image = capture::frame_to_image(&view, pixel_format, yuv_matrix(&job.info))?;
        let encoded = capture::encode(&image, self.format)?;
        let (width, height) = (job.info.width(), job.info.height());
        let labels = self
            .annotations
            .yolo()
            .then(|| dataset::yolo_lines(&job.boxes, width, height));
        let heatmap = match (&job.map, self.annotations) {
            (Some(map), annotations) if annotations != Annotations::None => {
                let values = map.values();
                let source = HeatSource {
                    width: map.width as usize,
                    height: map.height as usize,
                    values: &values,
                    rect: [map.x_min, map.y_min, map.x_max, map.y_max],
                };
                let image = capture::heatmap_image(&source, width, height);
                Some(capture::encode(&image, ImageFormat::Png)?)
            }
            _ => None,
        };
        let extension = self.format.extension();
        let mut files: Vec<(Part, &[u8])> = vec![(Part::Image(extension), &encoded)];
        if let Some(labels) = &labels {
            files.push((Part::Labels, labels.as_bytes()));
        }
        if let Some(heatmap) = &heatmap {
            files.push((Part::Heatmap, heatmap));
        }
        let stem = self
            .dir
            .write(job.frame, job.verdict.as_str(), &files)
            .map_err(|e| e.to_string())?;
        if let Some(coco) = &mut self.coco {
            coco.add(
                &stem,
                &format!("{stem}.{extension}"),
                width,
                height,
                job.frame,
                job.verdict.as_str(),
                &job.boxes,
            );
        }
        Ok(())
    }

    /// Captures the bounds removed: out of this run's COCO file, and out of the COCO files of
    /// the earlier runs they belong to.
    fn forget_removed(&mut self) {
        let removed = self.dir.take_removed();
        if removed.is_empty() {
            return;
        }
        let own = self.coco.as_mut().is_some_and(|coco| coco.remove(&removed));
        let mut others: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
        for stem in &removed {
            let run = stem.split('_').next().unwrap_or_default();
            if run != self.dir.run() {
                others.entry(run).or_default().push(stem.clone());
            }
        }
        for (run, stems) in others {
            let file = format!("{run}.json");
            if let Err(e) = dataset::prune_other_run(self.dir.dir(), &file, &stems, self.dir.run())
            {
                gst::debug!(
                    CAT,
                    "cannot remove the captures of run {run} from its COCO file: {e}"
                );
            }
        }
        if own {
            gst::trace!(CAT, "captures of this run removed from its COCO file");
        }
    }

    /// The COCO file and the dataset files, now.
    fn sync(&mut self) {
        self.dataset_files();
        if self.coco.as_ref().is_some_and(|c| c.pending() > 0) {
            self.write_coco();
        }
    }

    fn write_coco(&mut self) {
        let Some(coco) = &mut self.coco else {
            return;
        };
        if let Err(e) = coco.write() {
            let message = format!(
                "cannot write the COCO annotations {} in {}: {e} (the last complete file stays)",
                coco.file_name(),
                self.dir.dir().join(dataset::ANNOTATIONS).display()
            );
            gst::debug!(CAT, "{message}");
            if !std::mem::replace(&mut self.coco_warned, true) {
                self.warn(&message);
            }
        }
    }

    /// `data.yaml` and `classes.txt` (YOLO), written where missing once the class names are
    /// known: the model's, else (at EOS or stop) those the captured boxes carried. Existing
    /// ones that name other classes are left alone, with a warning.
    fn dataset_files(&mut self) {
        if !self.annotations.yolo() {
            return;
        }
        let names = match (&self.names, &self.coco) {
            (Some(names), _) => names.clone(),
            (None, Some(coco)) if coco.images() > 0 => coco.names(),
            _ => return,
        };
        if self.dataset_files.as_ref() == Some(&names) {
            return;
        }
        let dir = self.dir.dir().to_path_buf();
        let absolute = std::fs::canonicalize(&dir).unwrap_or(dir.clone());
        for (name, content) in [
            (dataset::DATA_YAML, dataset::data_yaml(&absolute, &names)),
            (dataset::CLASSES_TXT, dataset::classes_txt(&names)),
        ] {
            match dataset::create_once(&dir, name, &content, self.dir.run()) {
                Ok(Created::Written | Created::Same) => {}
                Ok(Created::Different) => self.warn(&format!(
                    "{} already exists and is not the one for the classes {names:?}: it is left as it is (remove it to have it written)",
                    dir.join(name).display()
                )),
                Err(e) => self.warn(&format!(
                    "cannot write {}: {e}",
                    dir.join(name).display()
                )),
            }
        }
        self.dataset_files = Some(names);
    }

    fn warn(&self, message: &str) {
        if let Some(element) = self.element.upgrade() {
            let _ = element.post_message(
                gst::message::Warning::builder(gst::ResourceError::Write, message)
                    .src(&element)
                    .build(),
            );
        }
    }
}
