// SPDX-License-Identifier: MIT OR Apache-2.0
//! Replaying recorded video or image folders through the real elements (`defectdetect` with
//! its model and policy, in a GStreamer pipeline) and collecting each frame's detections and
//! verdict, for `defect-replay` and the tests.

pub mod plots;
pub mod report;
pub mod truth;

use std::path::{Path, PathBuf};

use gst::prelude::*;

use crate::analysis::BBox;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReplayError {
    #[error("{path}: {reason}")]
    Input { path: PathBuf, reason: String },
    #[error("pipeline error: {0}")]
    Pipeline(String),
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
}

/// One detection of a replayed frame, box in frame pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameDetection {
    pub class_id: usize,
    pub label: String,
    pub confidence: f32,
    pub bbox: BBox,
    pub decision: String,
}

/// One replayed frame.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameResult {
    pub index: u64,
    /// File stem, for image folders.
    pub stem: Option<String>,
    pub width: u32,
    pub height: u32,
    pub detections: Vec<FrameDetection>,
    pub verdict: String,
    pub inference_ms: f64,
    pub total_ms: f64,
}

/// A whole replay: frames, the model's class names, wall time.
#[derive(Debug, Clone)]
pub struct Replay {
    pub frames: Vec<FrameResult>,
    pub class_names: Vec<String>,
    pub model_id: String,
    pub wall_seconds: f64,
}

/// Images of a folder, sorted by name.
pub fn image_files(dir: &Path) -> Result<Vec<PathBuf>, ReplayError> {
    let error = |reason: String| ReplayError::Input {
        path: dir.to_path_buf(),
        reason,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| error(e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| matches!(x.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(error("no .png or .jpg images".into()));
    }
    Ok(files)
}

fn detect_properties(options: &ReplayOptions) -> String {
    let mut properties = format!("model=\"{}\"", options.model.display());
    if let Some(p) = &options.policy {
        properties += &format!(" policy=\"{}\"", p.display());
    }
    if let Some(l) = &options.labels {
        properties += &format!(" labels=\"{}\"", l.display());
    }
    if let Some(c) = options.conf_threshold {
        properties += &format!(" conf-threshold={c}");
    }
    properties
        + &format!(
            " threads={} frames-per-part={}",
            options.threads, options.frames_per_part
        )
}

/// Replays `source` through `defectdetect`; `progress(done, total)` is called after each frame
/// (total 0 when unknown). The plugin must be registered (statically or on the plugin path).
pub fn replay(
    source: &Source,
    options: &ReplayOptions,
    mut progress: impl FnMut(u64, u64),
) -> Result<Replay, ReplayError> {
    let detect = format!("defectdetect name=detect {}", detect_properties(options));
    let tail = format!("videoconvert ! {detect} ! appsink name=sink sync=false max-buffers=8");
    let (description, images) = match source {
        Source::Video(path) => {
            if !path.is_file() {
                return Err(ReplayError::Input {
                    path: path.clone(),
                    reason: "no such file".into(),
                });
            }
            (
                format!(
                    "filesrc location=\"{}\" ! decodebin ! {tail}",
                    path.display()
                ),
                Vec::new(),
            )
        }
        Source::Images(dir) => {
            let files = image_files(dir)?;
            let png = files[0]
                .extension()
                .is_some_and(|x| x.eq_ignore_ascii_case("png"));
            let (caps, decoder) = if png {
                ("image/png", "pngdec")
            } else {
                ("image/jpeg", "jpegdec")
            };
            (
                format!("appsrc name=src caps={caps} format=time ! {decoder} ! {tail}"),
                files,
            )
        }
    };
    let pipeline = gst::parse::launch(&description)
        .map_err(|e| ReplayError::Pipeline(e.to_string()))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| ReplayError::Pipeline("not a pipeline".into()))?;
    let result = run_pipeline(&pipeline, &images, &mut progress);
    let _ = pipeline.set_state(gst::State::Null);
    result
}

fn run_pipeline(
    pipeline: &gst::Pipeline,
    images: &[PathBuf],
    progress: &mut impl FnMut(u64, u64),
) -> Result<Replay, ReplayError> {
    let sink = pipeline
        .by_name("sink")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or_else(|| ReplayError::Pipeline("no appsink".into()))?;
    let started = std::time::Instant::now();
    if let Err(e) = pipeline.set_state(gst::State::Playing) {
        return Err(ReplayError::Pipeline(
            bus_error(pipeline).unwrap_or_else(|| e.to_string()),
        ));
    }
    if let Some(src) = pipeline
        .by_name("src")
        .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
    {
        feed_images(src, images.to_vec());
    }
    let detect = pipeline
        .by_name("detect")
        .ok_or_else(|| ReplayError::Pipeline("no defectdetect".into()))?;
    let info: String = detect
        .property::<Option<String>>("model-info")
        .unwrap_or_default();
    let model_id = info.split(':').take(3).collect::<Vec<_>>().join(":");
    let class_names = class_names_of(&info);
    let total = images.len() as u64;
    let mut frames = Vec::new();
    let mut stalled = 0;
    loop {
        match sink.try_pull_sample(gst::ClockTime::from_mseconds(500)) {
            Some(sample) => {
                stalled = 0;
                let index = frames.len() as u64;
                let stem = images
                    .get(index as usize)
                    .and_then(|p| p.file_stem())
                    .map(|s| s.to_string_lossy().into_owned());
                frames.push(frame_result(&sample, index, stem));
                progress(frames.len() as u64, total);
            }
            None if sink.is_eos() => break,
            None => {
                // An error stops the flow: report it at once rather than after the stall limit.
                if let Some(error) = bus_error(pipeline) {
                    return Err(ReplayError::Pipeline(error));
                }
                stalled += 1;
                if stalled >= 120 {
                    return Err(ReplayError::Pipeline("no frame for 60 s".into()));
                }
            }
        }
    }
    if let Some(error) = bus_error(pipeline) {
        return Err(ReplayError::Pipeline(error));
    }
    Ok(Replay {
        frames,
        class_names,
        model_id,
        wall_seconds: started.elapsed().as_secs_f64(),
    })
}

/// The class list `model-info` prints (`classes ["a", "b"]`).
fn class_names_of(info: &str) -> Vec<String> {
    let Some(start) = info.find("classes [") else {
        return Vec::new();
    };
    let rest = &info[start + "classes [".len()..];
    let end = rest.find("], provider").unwrap_or(rest.len());
    rest[..end]
        .split("\", \"")
        .map(|s| s.trim_matches('"').to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Pushes each image file as one buffer from a thread, then end of stream.
fn feed_images(src: gst_app::AppSrc, files: Vec<PathBuf>) {
    std::thread::spawn(move || {
        for (i, file) in files.iter().enumerate() {
            let Ok(bytes) = std::fs::read(file) else {
                break;
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
            return Some(format!("{source}: {}", e.error()));
        }
    }
    None
}

fn frame_result(sample: &gst::Sample, index: u64, stem: Option<String>) -> FrameResult {
    let (width, height) = sample
        .caps()
        .and_then(|c| gst_video::VideoInfo::from_caps(c).ok())
        .map_or((0, 0), |i| (i.width(), i.height()));
    let buffer = sample.buffer();
    let detections = buffer
        .map(|b| {
            b.iter_meta::<gst_video::VideoRegionOfInterestMeta>()
                .filter_map(|roi| {
                    let p = roi.param("detection")?;
                    let n = |f: &str| p.get::<f64>(f).unwrap_or(0.0) as f32;
                    Some(FrameDetection {
                        class_id: p.get::<i32>("label_id").unwrap_or(0).max(0) as usize,
                        label: p.get::<String>("label").unwrap_or_default(),
                        confidence: n("confidence"),
                        bbox: BBox {
                            x1: n("x_min") * width as f32,
                            y1: n("y_min") * height as f32,
                            x2: n("x_max") * width as f32,
                            y2: n("y_max") * height as f32,
                        },
                        decision: p.get::<String>("decision").unwrap_or_default(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let verdict_meta =
        buffer.and_then(|b| gst::meta::CustomMeta::from_buffer(b, crate::meta::VERDICT_META).ok());
    let field = |name: &str| {
        verdict_meta
            .as_ref()
            .and_then(|m| m.structure().get::<f64>(name).ok())
            .unwrap_or(0.0)
    };
    FrameResult {
        index,
        stem,
        width,
        height,
        detections,
        verdict: verdict_meta
            .as_ref()
            .and_then(|m| m.structure().get::<String>("verdict").ok())
            .unwrap_or_default(),
        inference_ms: field("inference-ms"),
        total_ms: field("total-ms"),
    }
}
