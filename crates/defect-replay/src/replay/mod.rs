// SPDX-License-Identifier: MIT OR Apache-2.0
//! Replaying recorded video or image folders through the real elements (`defectdetect` with
//! its model and policy, in a GStreamer pipeline) and collecting each frame's detections and
//! verdict, for `defect-replay` and the tests.
//!
//! A replay is opened first ([`Session::open`]: the pipeline is built from element factories
//! and brought to READY, which loads the model and the policy, so that their errors and the
//! model's classes are known before any frame is decoded), then run ([`Session::run`]).

pub mod image_report;
pub mod labels;
mod load;
pub mod mask_report;
pub mod mask_truth;
pub mod onnx_meta;
pub mod output;
pub mod plots;
pub mod report;
pub mod truth;

use std::path::{Path, PathBuf};

use gst::prelude::*;

use crate::analysis::BBox;
use crate::analysis::anomaly::AnomalyMap;
use crate::analysis::mask::Mask;
use crate::meta::prelude::*;
use crate::meta::{
    AnomalyMapMeta, Classification, Decision, DetectionParams, MaskParams, MetaError,
    ModelInfoMeta, SizeParams, Verdict, VerdictMeta,
};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReplayError {
    #[error("{path}: {reason}")]
    Input { path: PathBuf, reason: String },
    #[error("pipeline error: {0}")]
    Pipeline(String),
    #[error("defectdetect's metadata: {0}")]
    Meta(#[from] MetaError),
}

/// What to replay.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// Any file `decodebin` reads.
    Video(PathBuf),
    /// A folder of PNG or JPEG images, replayed in file-name order.
    Images(PathBuf),
}

#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    pub model: PathBuf,
    pub policy: Option<PathBuf>,
    pub labels: Option<PathBuf>,
    pub conf_threshold: Option<f64>,
    pub threads: u32,
    pub frames_per_part: u32,
    /// The element's `task` property (`detect`, `classify`, `anomaly`, `segment`); None:
    /// `auto`.
    pub task: Option<String>,
    /// The element's `top-k` property (classifiers); None: its default (1).
    pub top_k: Option<u32>,
    /// Write the drift baseline of the whole replay here (the element's `drift-baseline-out`,
    /// learning from every frame).
    pub drift_baseline_out: Option<PathBuf>,
    /// Further `defectdetect` properties, name and value as `gst-launch-1.0` writes them
    /// (`tile-size`, `tile-overlap`, `iou-threshold`...), set after the ones above. A property
    /// the options above set, an unknown one or a value that does not parse is refused.
    pub properties: Vec<(String, String)>,
}

/// The `defectdetect` properties defect-replay sets itself, each with the option that sets it:
/// never through `properties`.
const OWN_PROPERTIES: [(&str, &str); 11] = [
    ("model", "--model"),
    ("policy", "--policy"),
    ("labels", "--labels"),
    ("conf-threshold", "--conf"),
    ("threads", "--threads"),
    ("task", "--task"),
    ("top-k", "--top-k"),
    ("frames-per-part", "--frames-per-part"),
    ("drift", "--baseline-out"),
    ("drift-learn-frames", "--baseline-out"),
    ("drift-baseline-out", "--baseline-out"),
];

/// Sets `name` to `value` (its `gst-launch-1.0` spelling) on `element`, or says why not.
fn set_property_text(element: &gst::Element, name: &str, value: &str) -> Result<(), ReplayError> {
    let refuse = |reason: String| ReplayError::Pipeline(format!("property {name}: {reason}"));
    if let Some((_, option)) = OWN_PROPERTIES.iter().find(|(own, _)| *own == name) {
        return Err(refuse(format!(
            "is set by defect-replay's {option}: use that"
        )));
    }
    let Some(spec) = element.find_property(name) else {
        let factory = element
            .factory()
            .map(|f| f.name().to_string())
            .unwrap_or_default();
        return Err(refuse(format!(
            "{factory} has no such property (gst-inspect-1.0 {factory} lists them)"
        )));
    };
    let flags = spec.flags();
    if !flags.contains(glib::ParamFlags::WRITABLE)
        || flags.contains(glib::ParamFlags::CONSTRUCT_ONLY)
    {
        return Err(refuse("cannot be set".into()));
    }
    let parsed = glib::Value::deserialize(value, spec.value_type())
        .map_err(|_| refuse(format!("{value:?} is not a {}", spec.value_type())))?;
    if !spec.value_is_valid(&parsed) {
        return Err(refuse(format!(
            "{value} is out of its range (gst-inspect-1.0 shows it)"
        )));
    }
    element.set_property_from_value(name, &parsed);
    Ok(())
}

/// One detection of a replayed frame, box in frame pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameDetection {
    pub class_id: usize,
    pub label: String,
    pub confidence: f32,
    pub bbox: BBox,
    /// The policy's decision (None for ROIs of other elements).
    pub decision: Option<Decision>,
    /// A segmentation model's mask, frame pixels (`defect-mask`).
    pub mask: Option<Mask>,
    /// The element's area and length of the defect (`defect-size`).
    pub size: Option<SizeParams>,
}

/// One replayed frame.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameResult {
    pub index: u64,
    /// The image's file name (with its extension), for image folders.
    pub file_name: Option<String>,
    pub width: u32,
    pub height: u32,
    pub detections: Vec<FrameDetection>,
    pub verdict: Verdict,
    /// A classifier's classes (its whole-frame ROIs' `classification`): class id and
    /// confidence, most probable first.
    pub classes: Vec<(usize, f32)>,
    /// An anomaly model's image score (the verdict's `anomaly-score`).
    pub anomaly_score: Option<f64>,
    /// An anomaly model's map (`DefectAnomalyMapMeta`'s scores), when `keep_maps` was set.
    pub anomaly_map: Option<AnomalyMap>,
    pub inference_ms: f64,
    pub total_ms: f64,
}

/// A whole replay: frames, the model's class names, wall time.
#[derive(Debug, Clone)]
pub struct Replay {
    pub frames: Vec<FrameResult>,
    pub class_names: Vec<String>,
    /// The model's task as the element ran it (`detect`, `classify`, `anomaly`).
    pub task: String,
    pub model_id: String,
    pub wall_seconds: f64,
}

/// The kind of images a folder holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    Png,
    Jpeg,
}

impl ImageKind {
    fn of(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "png" => Some(Self::Png),
            "jpg" | "jpeg" => Some(Self::Jpeg),
            _ => None,
        }
    }
}

/// Images of a folder, sorted by name, all of one kind.
pub fn image_files(dir: &Path) -> Result<(Vec<PathBuf>, ImageKind), ReplayError> {
    let error = |reason: String| ReplayError::Input {
        path: dir.to_path_buf(),
        reason,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| error(e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && ImageKind::of(p).is_some())
        .collect();
    files.sort();
    let Some(kind) = files.first().and_then(|f| ImageKind::of(f)) else {
        return Err(error("no .png, .jpg or .jpeg images".into()));
    };
    if let Some(other) = files.iter().find(|f| ImageKind::of(f) != Some(kind)) {
        return Err(error(format!(
            "holds both PNG and JPEG images ({} and {}); replay one kind at a time",
            files[0].display(),
            other.display()
        )));
    }
    Ok((files, kind))
}

/// Width and height of a PNG or JPEG file, read from its header (no decoding).
pub fn image_size(path: &Path) -> Result<(u32, u32), String> {
    let data = std::fs::read(path).map_err(|e| e.to_string())?;
    if data.len() >= 24 && data.starts_with(b"\x89PNG\r\n\x1a\n") {
        let be =
            |at: usize| u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
        return Ok((be(16), be(20)));
    }
    if !data.starts_with(&[0xFF, 0xD8]) {
        return Err("not a PNG or JPEG image".into());
    }
    let mut i = 2;
    while i + 9 < data.len() {
        if data[i] != 0xFF {
            i += 1;
            continue;
        }
        let marker = data[i + 1];
        if marker == 0xFF || marker == 0x01 || (0xD0..=0xD7).contains(&marker) {
            i += if marker == 0xFF { 1 } else { 2 };
            continue;
        }
        let length = u16::from_be_bytes([data[i + 2], data[i + 3]]) as usize;
        // Start of frame markers (not DHT C4, JPG C8, DAC CC).
        if matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
            let height = u16::from_be_bytes([data[i + 5], data[i + 6]]) as u32;
            let width = u16::from_be_bytes([data[i + 7], data[i + 8]]) as u32;
            return Ok((width, height));
        }
        i += 2 + length;
    }
    Err("no JPEG frame header".into())
}

/// A replay opened: the pipeline built and at READY, the model loaded.
pub struct Session {
    pipeline: gst::Pipeline,
    sink: gst_app::AppSink,
    src: Option<gst_app::AppSrc>,
    images: Vec<PathBuf>,
    class_names: Vec<String>,
    model_id: String,
    task: String,
    keep_maps: bool,
}

fn make(factory: &str) -> Result<gst::Element, ReplayError> {
    gst::ElementFactory::make(factory).build().map_err(|_| {
        ReplayError::Pipeline(format!("no element {factory} (is its plugin installed?)"))
    })
}

/// A path as the element properties take it.
fn path_text(path: &Path) -> Result<&str, ReplayError> {
    path.to_str().ok_or_else(|| ReplayError::Input {
        path: path.to_path_buf(),
        reason: "the path is not valid UTF-8".into(),
    })
}

impl Session {
    /// Builds the pipeline for `source` with `defectdetect` set up from `options`, and brings
    /// it to READY: the model and policy load, their errors are returned here. Nothing is
    /// decoded yet. The plugin must be registered (statically or on the plugin path).
    pub fn open(source: &Source, options: &ReplayOptions) -> Result<Self, ReplayError> {
        let pipeline = gst::Pipeline::new();
        let convert = make("videoconvert")?;
        let detect = make("defectdetect")?;
        detect.set_property("model", path_text(&options.model)?);
        if let Some(policy) = &options.policy {
            detect.set_property("policy", path_text(policy)?);
        }
        if let Some(labels) = &options.labels {
            detect.set_property("labels", path_text(labels)?);
        }
        if let Some(conf) = options.conf_threshold {
            if !(0.0..=1.0).contains(&conf) {
                return Err(ReplayError::Pipeline(format!(
                    "confidence threshold {conf} is not in [0, 1]"
                )));
            }
            detect.set_property("conf-threshold", conf);
        }
        detect.set_property("threads", options.threads.min(1024));
        if let Some(task) = &options.task {
            let valid = ["auto", "detect", "classify", "anomaly", "segment"];
            if !valid.contains(&task.as_str()) {
                return Err(ReplayError::Pipeline(format!(
                    "task {task:?} is not one of {valid:?}"
                )));
            }
            detect.set_property_from_str(crate::meta::fields::TASK, task);
        }
        if let Some(k) = options.top_k {
            if !(1..=1000).contains(&k) {
                return Err(ReplayError::Pipeline(format!(
                    "top-k {k} is not in [1, 1000]"
                )));
            }
            detect.set_property("top-k", k);
        }
        detect.set_property("frames-per-part", options.frames_per_part);
        if let Some(out) = &options.drift_baseline_out {
            // Learn from every frame; the element writes the baseline at end of stream.
            detect.set_property("drift", true);
            detect.set_property("drift-learn-frames", 1_000_000u32);
            detect.set_property("drift-baseline-out", path_text(out)?);
        }
        for (name, value) in &options.properties {
            set_property_text(&detect, name, value)?;
        }
        let sink = gst_app::AppSink::builder()
            .sync(false)
            .max_buffers(8)
            .build();
        pipeline
            .add_many([&convert, &detect, sink.upcast_ref()])
            .map_err(|e| ReplayError::Pipeline(e.to_string()))?;
        gst::Element::link_many([&convert, &detect, sink.upcast_ref()])
            .map_err(|e| ReplayError::Pipeline(e.to_string()))?;
        let (src, images) = match source {
            Source::Video(path) => {
                if !path.is_file() {
                    return Err(ReplayError::Input {
                        path: path.clone(),
                        reason: "no such file".into(),
                    });
                }
                let file = make("filesrc")?;
                file.set_property("location", path_text(path)?);
                let decode = make("decodebin")?;
                pipeline
                    .add_many([&file, &decode])
                    .map_err(|e| ReplayError::Pipeline(e.to_string()))?;
                file.link(&decode)
                    .map_err(|e| ReplayError::Pipeline(e.to_string()))?;
                let convert = convert.downgrade();
                decode.connect_pad_added(move |_, pad| {
                    let is_video = pad
                        .current_caps()
                        .or_else(|| Some(pad.query_caps(None)))
                        .and_then(|caps| caps.structure(0).map(|s| s.name().starts_with("video/")))
                        .unwrap_or(false);
                    let Some(convert) = convert.upgrade() else {
                        return;
                    };
                    let Some(sink) = convert.static_pad("sink") else {
                        return;
                    };
                    if is_video && !sink.is_linked() {
                        // A failure shows as not-linked on the bus.
                        let _ = pad.link(&sink);
                    }
                });
                (None, Vec::new())
            }
            Source::Images(dir) => {
                let (files, kind) = image_files(dir)?;
                let (caps, decoder) = match kind {
                    ImageKind::Png => ("image/png", make("pngdec")?),
                    ImageKind::Jpeg => {
                        let decoder = make("jpegdec")?;
                        // libjpeg's accurate IDCT, which OpenCV and PIL use.
                        decoder.set_property_from_str("idct-method", "islow");
                        ("image/jpeg", decoder)
                    }
                };
                let src = gst_app::AppSrc::builder()
                    .caps(&gst::Caps::builder(caps).build())
                    .format(gst::Format::Time)
                    .build();
                pipeline
                    .add_many([src.upcast_ref(), &decoder])
                    .map_err(|e| ReplayError::Pipeline(e.to_string()))?;
                gst::Element::link_many([src.upcast_ref(), &decoder, &convert])
                    .map_err(|e| ReplayError::Pipeline(e.to_string()))?;
                (Some(src), files)
            }
        };
        if let Err(e) = pipeline.set_state(gst::State::Ready) {
            let message = bus_error(&pipeline).unwrap_or_else(|| e.to_string());
            let _ = pipeline.set_state(gst::State::Null);
            return Err(ReplayError::Pipeline(message));
        }
        let info = match ModelInfoMeta::of(&detect) {
            Some(Ok(info)) => info,
            Some(Err(e)) => {
                let _ = pipeline.set_state(gst::State::Null);
                return Err(e.into());
            }
            None => {
                let _ = pipeline.set_state(gst::State::Null);
                return Err(ReplayError::Pipeline("defectdetect loaded no model".into()));
            }
        };
        Ok(Self {
            model_id: info.model_id,
            task: info.task,
            keep_maps: false,
            class_names: info.classes,
            pipeline,
            sink,
            src,
            images,
        })
    }

    /// The model's class names, in class-id order.
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// The model's task as the element runs it (`detect`, `classify`, `anomaly`).
    pub fn task(&self) -> &str {
        &self.task
    }

    /// Keeps each frame's anomaly map in its result (for pixel-level scores).
    pub fn keep_anomaly_maps(&mut self, keep: bool) {
        self.keep_maps = keep;
    }

    /// The image files replayed, in order (empty for a video).
    pub fn images(&self) -> &[PathBuf] {
        &self.images
    }

    /// Replays every frame; `progress(done, total)` is called after each (total 0 while
    /// unknown: for a video it is estimated from its duration and frame rate once the first
    /// frame is out).
    pub fn run(self, mut progress: impl FnMut(u64, u64)) -> Result<Replay, ReplayError> {
        let result = self.run_pipeline(&mut progress);
        let _ = self.pipeline.set_state(gst::State::Null);
        result
    }

    fn run_pipeline(&self, progress: &mut impl FnMut(u64, u64)) -> Result<Replay, ReplayError> {
        let started = std::time::Instant::now();
        if let Err(e) = self.pipeline.set_state(gst::State::Playing) {
            return Err(ReplayError::Pipeline(
                bus_error(&self.pipeline).unwrap_or_else(|| e.to_string()),
            ));
        }
        if let Some(src) = &self.src {
            feed_images(src.clone(), self.images.clone());
        }
        let mut total = self.images.len() as u64;
        let mut frames = Vec::new();
        let mut stalled = 0;
        loop {
            match self
                .sink
                .try_pull_sample(gst::ClockTime::from_mseconds(500))
            {
                Some(sample) => {
                    stalled = 0;
                    let index = frames.len() as u64;
                    if total == 0 {
                        total = self.estimated_frames(&sample);
                    }
                    let file_name = self
                        .images
                        .get(index as usize)
                        .map(|p| truth::file_name_of(p));
                    frames.push(frame_result(&sample, index, file_name, self.keep_maps)?);
                    progress(frames.len() as u64, total.max(frames.len() as u64));
                }
                None if self.sink.is_eos() => break,
                None => {
                    // An error stops the flow: report it at once rather than after the stall limit.
                    if let Some(error) = bus_error(&self.pipeline) {
                        return Err(ReplayError::Pipeline(error));
                    }
                    stalled += 1;
                    if stalled >= 120 {
                        return Err(ReplayError::Pipeline("no frame for 60 s".into()));
                    }
                }
            }
        }
        if let Some(error) = bus_error(&self.pipeline) {
            return Err(ReplayError::Pipeline(error));
        }
        if frames.is_empty() {
            return Err(ReplayError::Pipeline("no video frame was decoded".into()));
        }
        if !self.images.is_empty() && frames.len() != self.images.len() {
            return Err(ReplayError::Pipeline(format!(
                "{} images went in but {} frames came out",
                self.images.len(),
                frames.len()
            )));
        }
        Ok(Replay {
            frames,
            class_names: self.class_names.clone(),
            model_id: self.model_id.clone(),
            task: self.task.clone(),
            wall_seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// Frames of a video: its duration times its frame rate, 0 when either is unknown.
    fn estimated_frames(&self, sample: &gst::Sample) -> u64 {
        let fps = sample
            .caps()
            .and_then(|c| gst_video::VideoInfo::from_caps(c).ok())
            .map(|i| i.fps())
            .filter(|f| f.numer() > 0 && f.denom() > 0);
        let duration = self.pipeline.query_duration::<gst::ClockTime>();
        match (fps, duration) {
            (Some(fps), Some(duration)) => {
                (duration.nseconds() as f64 * fps.numer() as f64 / fps.denom() as f64 / 1e9).round()
                    as u64
            }
            _ => 0,
        }
    }
}

/// Replays `source` through `defectdetect`: [`Session::open`] then [`Session::run`].
pub fn replay(
    source: &Source,
    options: &ReplayOptions,
    progress: impl FnMut(u64, u64),
) -> Result<Replay, ReplayError> {
    Session::open(source, options)?.run(progress)
}

/// Pushes each image file as one buffer from a thread, then end of stream. A file that
/// cannot be read is posted as an error on the bus.
fn feed_images(src: gst_app::AppSrc, files: Vec<PathBuf>) {
    std::thread::spawn(move || {
        for (i, file) in files.iter().enumerate() {
            let bytes = match std::fs::read(file) {
                Ok(bytes) => bytes,
                Err(e) => {
                    gst::element_error!(src, gst::ResourceError::Read, ("{}: {e}", file.display()));
                    return;
                }
            };
            let mut buffer = gst::Buffer::from_mut_slice(bytes);
            if let Some(b) = buffer.get_mut() {
                b.set_pts(gst::ClockTime::from_mseconds(40 * i as u64));
            }
            if src.push_buffer(buffer).is_err() {
                return;
            }
        }
        let _ = src.end_of_stream();
    });
}

fn bus_error(pipeline: &gst::Pipeline) -> Option<String> {
    let bus = pipeline.bus()?;
    while let Some(message) = bus.pop_filtered(&[gst::MessageType::Error]) {
        if let gst::MessageView::Error(e) = message.view() {
            let source = e
                .src()
                .map(|s| s.path_string().to_string())
                .unwrap_or_default();
            let debug = e.debug().map(|d| format!(" ({d})")).unwrap_or_default();
            return Some(format!("{source}: {}{debug}", e.error()));
        }
    }
    None
}

/// A frame's result, read from the metas `defectdetect` attached; malformed metas are
/// errors naming the field (the replay stops: its figures would be wrong).
fn frame_result(
    sample: &gst::Sample,
    index: u64,
    file_name: Option<String>,
    keep_map: bool,
) -> Result<FrameResult, MetaError> {
    let (width, height) = sample
        .caps()
        .and_then(|c| gst_video::VideoInfo::from_caps(c).ok())
        .map_or((0, 0), |i| (i.width(), i.height()));
    let Some(buffer) = sample.buffer() else {
        return Ok(FrameResult {
            index,
            file_name,
            width,
            height,
            detections: Vec::new(),
            verdict: Verdict::Unknown,
            classes: Vec::new(),
            anomaly_score: None,
            anomaly_map: None,
            inference_ms: 0.0,
            total_ms: 0.0,
        });
    };
    let mut detections = Vec::new();
    let mut classes = Vec::new();
    for roi in buffer.iter_meta::<gst_video::VideoRegionOfInterestMeta>() {
        if let Some(c) = Classification::of_roi(&roi) {
            let c = c?;
            classes.push((c.label_id as usize, c.confidence as f32));
        }
        let Some(params) = DetectionParams::of_roi(&roi) else {
            continue;
        };
        let p = params?;
        let mask = match MaskParams::of_roi(&roi).transpose()? {
            Some(m) => Some(m.to_mask().ok_or_else(|| MetaError {
                structure: crate::meta::fields::MASK.to_string(),
                field: crate::meta::fields::MASK_COUNTS,
                problem: format!("not a COCO RLE of its {}x{} window", m.width, m.height),
            })?),
            None => None,
        };
        let size = SizeParams::of_roi(&roi).transpose()?;
        detections.push(FrameDetection {
            class_id: p.label_id as usize,
            label: p.label,
            confidence: p.confidence as f32,
            bbox: BBox {
                x1: p.x_min as f32 * width as f32,
                y1: p.y_min as f32 * height as f32,
                x2: p.x_max as f32 * width as f32,
                y2: p.y_max as f32 * height as f32,
            },
            decision: p.decision,
            mask,
            size,
        });
    }
    // A frame without a verdict meta was not judged: never a pass.
    let verdict = VerdictMeta::from_buffer(buffer).transpose()?;
    classes.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let anomaly_map = if keep_map {
        AnomalyMapMeta::from_buffer(buffer)
            .transpose()?
            .map(|m| AnomalyMap {
                width: m.width as usize,
                height: m.height as usize,
                data: m.scores,
            })
    } else {
        None
    };
    Ok(FrameResult {
        index,
        file_name,
        width,
        height,
        detections,
        verdict: verdict.as_ref().map_or(Verdict::Unknown, |v| v.verdict),
        classes,
        anomaly_score: verdict.as_ref().and_then(|v| v.anomaly_score),
        anomaly_map,
        inference_ms: verdict.as_ref().map_or(0.0, |v| v.inference_ms),
        total_ms: verdict.as_ref().map_or(0.0, |v| v.total_ms),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_sizes_from_headers() {
        let dir = std::env::temp_dir().join(format!("replay-sizes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let png = dir.join("a.png");
        let mut bytes = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut bytes, 7, 5);
            encoder.set_color(png::ColorType::Grayscale);
            let mut writer = encoder.write_header().unwrap();
            writer.write_image_data(&[0; 35]).unwrap();
        }
        std::fs::write(&png, &bytes).unwrap();
        assert_eq!(image_size(&png), Ok((7, 5)));
        let jpg = dir.join("b.jpg");
        let mut bytes = Vec::new();
        jpeg_encoder::Encoder::new(&mut bytes, 90)
            .encode(&[128; 3 * 33 * 17], 33, 17, jpeg_encoder::ColorType::Rgb)
            .unwrap();
        std::fs::write(&jpg, &bytes).unwrap();
        assert_eq!(image_size(&jpg), Ok((33, 17)));
        std::fs::write(dir.join("c.jpg"), b"not an image").unwrap();
        assert!(image_size(&dir.join("c.jpg")).is_err());
        std::fs::remove_file(dir.join("c.jpg")).unwrap();
        let error = image_files(&dir).unwrap_err().to_string();
        assert!(error.contains("both PNG and JPEG"), "{error}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
