// SPDX-License-Identifier: MIT OR Apache-2.0
//! One frame through the model: letterbox (whole frame or tiles), inference, decoding, NMS,
//! boxes back in frame pixels. [`infer`] is the one function the streaming thread and the
//! asynchronous worker call; the preprocessing plan lives with the model it was made for.

use std::time::{Duration, Instant};

use std::sync::Arc;

use super::loaded::Loaded;
use crate::analysis::anomaly::AnomalyMap;
use crate::analysis::classify::{self, ClassifyGeometry, ClassifyPreprocess};
use crate::analysis::decode::DecodeStats;
use crate::analysis::letterbox::{Letterbox, LetterboxGeometry};
use crate::analysis::task::Task;
use crate::analysis::{BBox, Detection, nms, tiles};
use crate::frame::{FrameView, PixelFormat, YuvMatrix};
use crate::runtime::{ModelInfo, RuntimeError};
use crate::video::yuv_matrix;

/// Frames are cut into at most this many tiles (a 12 MP frame in 256-px tiles overlapping by
/// 64 is 30); more is a configuration error, not a workload.
pub(super) const MAX_TILES: usize = 4096;

/// How many tiles a frame of `width` x `height` is cut into (1 without tiling).
pub(super) fn tile_count(width: u32, height: u32, tile_size: u32, tile_overlap: u32) -> usize {
    if tile_size == 0 {
        return 1;
    }
    tiles::plan(width, height, tile_size, tile_overlap).2.len()
}

/// How frames of one caps are cut and letterboxed for one model; reused frame after frame.
#[derive(Debug)]
pub(super) struct Preprocess {
    pub format: PixelFormat,
    /// For the whole frame, or for one tile when tiling.
    pub letterbox: Letterbox,
    /// Top-left corners of the tiles; one (0, 0) without tiling.
    pub tiles: Vec<(u32, u32)>,
    /// Whether the detector's input tensor already holds this geometry's grey border.
    pub border_filled: bool,
    /// Classifiers: the Ultralytics classify resize and centre crop (instead of the letterbox).
    pub classify: Option<ClassifyPreprocess>,
    pub yuv: YuvMatrix,
    /// Class probabilities, reused between frames.
    scores: Vec<f32>,
    probabilities: Vec<f32>,
    /// Reused between frames so that steady-state detection allocates little.
    candidates: Vec<Detection>,
    /// What the plan was made for: frame size, format, tile size and overlap.
    pub key: PlanKey,
}

pub(super) type PlanKey = (u32, u32, gst_video::VideoFormat, u32, u32);

/// One frame to infer: its video info, pixel format, planes, and how to tile it.
pub(super) struct FrameInput<'a> {
    pub info: &'a gst_video::VideoInfo,
    pub format: PixelFormat,
    pub view: &'a FrameView<'a>,
    pub tile_size: u32,
    pub tile_overlap: u32,
}

impl FrameInput<'_> {
    fn key(&self) -> PlanKey {
        (
            self.info.width(),
            self.info.height(),
            self.info.format(),
            self.tile_size,
            self.tile_overlap,
        )
    }
}

/// Why a frame could not be inferred.
#[derive(Debug)]
pub(super) enum InferError {
    /// The run was interrupted (the element is stopping): not a failure.
    Interrupted,
    Failed(String),
}

impl std::fmt::Display for InferError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InferError::Interrupted => f.write_str("interrupted"),
            InferError::Failed(reason) => f.write_str(reason),
        }
    }
}

impl From<RuntimeError> for InferError {
    fn from(e: RuntimeError) -> Self {
        match e {
            RuntimeError::Interrupted => InferError::Interrupted,
            e => InferError::Failed(e.to_string()),
        }
    }
}

impl Preprocess {
    pub fn plan(frame: &FrameInput, model: &ModelInfo) -> Self {
        let (info, format, tile_size, tile_overlap) = (
            frame.info,
            frame.format,
            frame.tile_size,
            frame.tile_overlap,
        );
        // Only detectors are tiled: a classifier or an anomaly model judges the whole frame.
        let (width, height, corners) = if tile_size > 0 && model.task == Task::Detect {
            tiles::plan(info.width(), info.height(), tile_size, tile_overlap)
        } else {
            (info.width(), info.height(), vec![(0, 0)])
        };
        let geometry = match model.task {
            Task::Anomaly => LetterboxGeometry::stretch(width, height, model.width, model.height),
            _ => LetterboxGeometry::new(width, height, model.width, model.height),
        };
        let classify = (model.task == Task::Classify).then(|| {
            ClassifyPreprocess::new(ClassifyGeometry::new(
                width,
                height,
                model.width,
                model.height,
            ))
        });
        Self {
            format,
            letterbox: Letterbox::new(geometry, format, yuv_matrix(info), model.channels),
            tiles: corners,
            border_filled: false,
            classify,
            yuv: yuv_matrix(info),
            scores: Vec::new(),
            probabilities: Vec::new(),
            candidates: Vec::with_capacity(1024),
            key: frame.key(),
        }
    }
}

/// What an anomaly model gave for a frame.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct AnomalyOutput {
    /// The model's image score, when it gives one.
    pub score: Option<f32>,
    pub map: AnomalyMap,
}

/// What one frame's inference gave.
#[derive(Debug)]
pub(super) struct Inference {
    /// Detections; a classifier's top-k classes (boxes: the whole frame).
    pub detections: Vec<Detection>,
    /// An anomaly model's map and score (its regions depend on the policy).
    pub anomaly: Option<Arc<AnomalyOutput>>,
    /// Model runs and decoding, all tiles together.
    pub duration: Duration,
    /// Candidates the decoder dropped or changed, by reason.
    pub stats: DecodeStats,
    /// Model runs of this frame that shared a batch with other elements' frames.
    pub batched: u64,
}

/// Detection thresholds of one frame.
#[derive(Debug, Clone, Copy)]
pub(super) struct Thresholds {
    pub confidence: f32,
    pub iou: f32,
    pub max_detections: usize,
    /// Classes a classifier reports.
    pub top_k: usize,
}

/// Runs the model on every tile of the frame and merges the detections, in frame pixels;
/// (re)plans the preprocessing when the model is new or the frames changed.
pub(super) fn infer(
    loaded: &mut Loaded,
    frame: &FrameInput,
    limits: Thresholds,
) -> Result<Inference, InferError> {
    let before = loaded.detector.batched_runs();
    let mut result = infer_frame(loaded, frame, limits)?;
    result.batched = loaded.detector.batched_runs() - before;
    Ok(result)
}

fn infer_frame(
    loaded: &mut Loaded,
    frame: &FrameInput,
    limits: Thresholds,
) -> Result<Inference, InferError> {
    let key = frame.key();
    if loaded.plan.as_ref().is_none_or(|p| p.key != key) {
        let tiles = tile_count(key.0, key.1, key.3, key.4);
        if tiles > MAX_TILES {
            return Err(InferError::Failed(format!(
                "tile-size {} with tile-overlap {} cuts a {}x{} frame into {tiles} tiles; at most {MAX_TILES}",
                key.3, key.4, key.0, key.1
            )));
        }
        loaded.plan = Some(Preprocess::plan(frame, loaded.detector.info()));
    }
    let Loaded { detector, plan, .. } = loaded;
    let pre = plan.as_mut().expect("planned above");
    let view = frame.view;
    match detector.info().task {
        Task::Classify => return classify_frame(detector, pre, view, limits.top_k),
        Task::Anomaly => return anomaly_frame(detector, pre, view),
        Task::Detect | Task::Segment => {}
    }
    if !pre.border_filled {
        pre.letterbox.fill_padding(detector.input_mut());
        pre.border_filled = true;
    }
    let geometry = *pre.letterbox.geometry();
    let mut merged = Vec::new();
    let (mut duration, mut stats) = (Duration::ZERO, DecodeStats::default());
    for &(x, y) in &pre.tiles {
        let region = if pre.tiles.len() == 1 {
            *view
        } else {
            crate::frame::crop(
                view,
                pre.format,
                x,
                y,
                geometry.src_width,
                geometry.src_height,
            )
        };
        pre.letterbox
            .run(&region, detector.input_mut())
            .map_err(|e| InferError::Failed(e.to_string()))?;
        pre.candidates.clear();
        let started = Instant::now();
        let tile_stats = detector.detect(limits.confidence, &mut pre.candidates)?;
        duration += started.elapsed();
        stats.add(&tile_stats);
        let (dx, dy) = (x as f32, y as f32);
        merged.extend(pre.candidates.iter().map(|d| {
            let b = geometry.to_source(&d.bbox);
            Detection {
                bbox: BBox {
                    x1: b.x1 + dx,
                    y1: b.y1 + dy,
                    x2: b.x2 + dx,
                    y2: b.y2 + dy,
                },
                ..*d
            }
        }));
    }
    // Tiles overlap: their detections are merged by NMS even for end-to-end models.
    if detector.info().layout.needs_nms() || pre.tiles.len() > 1 {
        nms::nms_classwise(&mut merged, limits.iou, limits.max_detections);
    } else {
        nms::sort_by_confidence(&mut merged);
        merged.truncate(limits.max_detections);
    }
    Ok(Inference {
        detections: merged,
        anomaly: None,
        duration,
        stats,
        batched: 0,
    })
}

/// A classifier on the whole frame: its top-k classes, each a detection covering the frame.
fn classify_frame(
    detector: &mut crate::runtime::Detector,
    pre: &mut Preprocess,
    view: &FrameView,
    top_k: usize,
) -> Result<Inference, InferError> {
    let channels = detector.info().channels;
    let classify = pre.classify.as_mut().expect("planned for a classifier");
    classify
        .run(
            view,
            pre.format,
            pre.yuv,
            (0, 0),
            channels,
            detector.input_mut(),
        )
        .map_err(|e| InferError::Failed(e.to_string()))?;
    let started = Instant::now();
    detector.classify(&mut pre.scores)?;
    let detections = top_classes(&pre.scores, &mut pre.probabilities, top_k, view)?;
    Ok(Inference {
        detections,
        anomaly: None,
        duration: started.elapsed(),
        stats: DecodeStats::default(),
        batched: 0,
    })
}

/// The top-k classes of a classifier's scores as detections covering the frame.
pub(super) fn top_classes(
    scores: &[f32],
    probabilities: &mut Vec<f32>,
    top_k: usize,
    view: &FrameView,
) -> Result<Vec<Detection>, InferError> {
    classify::probabilities(scores, probabilities)
        .map_err(|e| InferError::Failed(e.to_string()))?;
    let whole = BBox {
        x1: 0.0,
        y1: 0.0,
        x2: view.width as f32,
        y2: view.height as f32,
    };
    Ok(classify::top_k(probabilities, top_k)
        .into_iter()
        .map(|(class_id, confidence)| Detection {
            bbox: whole,
            confidence,
            class_id,
        })
        .collect())
}

/// An anomaly model on the whole frame (stretched to its input): its map and score.
fn anomaly_frame(
    detector: &mut crate::runtime::Detector,
    pre: &mut Preprocess,
    view: &FrameView,
) -> Result<Inference, InferError> {
    pre.letterbox
        .run(view, detector.input_mut())
        .map_err(|e| InferError::Failed(e.to_string()))?;
    let started = Instant::now();
    let (score, map) = detector.anomaly()?;
    let non_finite = map.non_finite();
    if non_finite == map.data.len() {
        return Err(InferError::Failed(format!(
            "the anomaly map holds no finite score ({non_finite} NaN or infinite values)"
        )));
    }
    let stats = DecodeStats {
        non_finite,
        ..Default::default()
    };
    Ok(Inference {
        detections: Vec::new(),
        anomaly: Some(Arc::new(AnomalyOutput { score, map })),
        duration: started.elapsed(),
        stats,
        batched: 0,
    })
}
