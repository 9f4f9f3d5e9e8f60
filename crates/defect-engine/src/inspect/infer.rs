// SPDX-License-Identifier: MIT OR Apache-2.0
// SPDX-License-Identifier: MIT OR Apache-2.0
//! One frame through the model: planning and preprocessing (letterbox of the whole frame or
//! of tiles, the classifier's resize and crop, of the whole frame or of regions), inference,
//! decoding, NMS, boxes back in frame pixels. [`infer`] is the one function the streaming
//! thread and the asynchronous worker call, [`classify_regions`] the one for regions; the
//! preprocessing plan lives with the model it was made for ([`super::model::Loaded`]).

use std::time::{Duration, Instant};

use std::sync::Arc;

use crate::analysis::anomaly::AnomalyMap;
use crate::analysis::classify::{self, ClassifyGeometry, ClassifyPreprocess};
use crate::analysis::decode::DecodeStats;
use crate::analysis::letterbox::{Letterbox, LetterboxGeometry};
use crate::analysis::mask::Mask;
use crate::analysis::segment::{MaskDecoder, SegmentBuffers};
use crate::analysis::task::Task;
use crate::analysis::{BBox, Detection, nms, tiles};
use crate::frame::{FrameView, PixelFormat, YuvMatrix};
use crate::runtime::{Detector, ModelInfo, RuntimeError};

/// Frames are cut into at most this many tiles (a 12 MP frame in 256-px tiles overlapping by
/// 64 is 30); more is a configuration error, not a workload.
pub const MAX_TILES: usize = 4096;

/// How many tiles a frame of `width` x `height` is cut into (1 without tiling), or why it
/// cannot be: the one place the tile limit is checked (at caps, and when a plan is made).
pub fn tile_count(
    width: u32,
    height: u32,
    tile_size: u32,
    tile_overlap: u32,
) -> Result<usize, String> {
    if tile_size == 0 {
        return Ok(1);
    }
    let tiles = tiles::plan(width, height, tile_size, tile_overlap).2.len();
    if tiles > MAX_TILES {
        return Err(format!(
            "tile-size {tile_size} with tile-overlap {tile_overlap} cuts a {width}x{height} frame into {tiles} tiles; at most {MAX_TILES}"
        ));
    }
    Ok(tiles)
}

/// How frames of one caps are cut and letterboxed for one model; reused frame after frame.
#[derive(Debug)]
pub struct Preprocess {
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
    /// Segmentation models: the kept candidates and prototypes, and the mask decoder's
    /// buffers, reused between frames.
    segment: SegmentBuffers,
    masks: MaskDecoder,
    /// What the plan was made for: frame size, format, tile size and overlap.
    pub key: PlanKey,
}

/// What a plan is made for: a frame size, pixel format and YUV matrix, a tiling and a crop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlanKey {
    pub width: u32,
    pub height: u32,
    pub format: PixelFormat,
    pub yuv: YuvMatrix,
    pub tile_size: u32,
    pub tile_overlap: u32,
    pub crop: Option<Region>,
}

/// A rectangle of a frame in pixels: x, y, width, height.
pub type Region = (u32, u32, u32, u32);

/// One frame to infer: its planes (with its size), pixel format and YUV matrix, how to tile
/// it, the part a classifier sees (`crop`; None: the whole frame), and whether a detector
/// also sees it mirrored.
#[derive(Debug, Clone, Copy)]
pub struct FrameInput<'a> {
    pub view: &'a FrameView<'a>,
    pub format: PixelFormat,
    pub yuv: YuvMatrix,
    pub tile_size: u32,
    pub tile_overlap: u32,
    pub crop: Option<Region>,
    /// Detectors: also run the model on the mirrored (left-right) input and merge both
    /// results by NMS (`test-time-flip`).
    pub test_time_flip: bool,
}

/// Why a crop cannot be used on `width` x `height` frames: empty, or not inside them.
pub fn crop_error((x, y, w, h): Region, width: u32, height: u32) -> Option<String> {
    let inside = x as u64 + w as u64 <= width as u64 && y as u64 + h as u64 <= height as u64;
    (w == 0 || h == 0 || !inside).then(|| {
        format!("crop {x},{y},{w},{h} (x,y,width,height) is not inside the {width}x{height} frame")
    })
}

impl FrameInput<'_> {
    fn key(&self) -> PlanKey {
        PlanKey {
            width: self.view.width,
            height: self.view.height,
            format: self.format,
            yuv: self.yuv,
            tile_size: self.tile_size,
            tile_overlap: self.tile_overlap,
            crop: self.crop,
        }
    }
}

/// Why a frame could not be inferred.
#[derive(Debug)]
pub enum InferError {
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
    /// The plan for `frame`'s caps and `model`; an error when the tiling is over the limit.
    pub fn plan(frame: &FrameInput, model: &ModelInfo) -> Result<Self, InferError> {
        let key = frame.key();
        let (format, tile_size, tile_overlap) = (key.format, key.tile_size, key.tile_overlap);
        tile_count(key.width, key.height, tile_size, tile_overlap).map_err(InferError::Failed)?;
        // Only detectors are tiled: a classifier or an anomaly model judges the whole frame.
        let (width, height, corners) = if tile_size > 0 && model.task == Task::Detect {
            tiles::plan(key.width, key.height, tile_size, tile_overlap)
        } else {
            (key.width, key.height, vec![(0, 0)])
        };
        let geometry = match model.task {
            Task::Anomaly => LetterboxGeometry::stretch(width, height, model.width, model.height),
            _ => LetterboxGeometry::new(width, height, model.width, model.height),
        };
        if let Some(crop) = key.crop {
            if model.task != Task::Classify {
                return Err(InferError::Failed(format!(
                    "crop needs a classifier; model {} is a {} model",
                    model.model_id(),
                    model.task
                )));
            }
            if let Some(reason) = crop_error(crop, key.width, key.height) {
                return Err(InferError::Failed(reason));
            }
        }
        // A classifier sees its crop (from its corner), else the whole frame.
        let (width, height, corners) = match key.crop {
            Some((x, y, w, h)) => (w, h, vec![(x, y)]),
            None => (width, height, corners),
        };
        let classify = (model.task == Task::Classify).then(|| {
            ClassifyPreprocess::new(ClassifyGeometry::new(
                width,
                height,
                model.width,
                model.height,
            ))
        });
        Ok(Self {
            format,
            letterbox: Letterbox::new(geometry, format, key.yuv, model.channels),
            tiles: corners,
            border_filled: false,
            classify,
            yuv: key.yuv,
            scores: Vec::new(),
            probabilities: Vec::new(),
            candidates: Vec::with_capacity(1024),
            segment: SegmentBuffers::default(),
            masks: MaskDecoder::new(),
            key,
        })
    }
}

/// What an anomaly model gave for a frame.
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyOutput {
    /// The model's image score, when it gives one.
    pub score: Option<f32>,
    pub map: AnomalyMap,
}

/// What one frame's inference gave.
#[derive(Debug)]
pub struct Inference {
    /// Detections; a classifier's top-k classes (boxes: the whole frame).
    pub detections: Vec<Detection>,
    /// An anomaly model's map and score (its regions depend on the policy).
    pub anomaly: Option<Arc<AnomalyOutput>>,
    /// A segmentation model's masks, one per detection, in frame pixels.
    pub masks: Option<Arc<Vec<Mask>>>,
    /// Model runs and decoding, all tiles together.
    pub duration: Duration,
    /// Candidates the decoder dropped or changed, by reason.
    pub stats: DecodeStats,
    /// Model runs of this frame that shared a batch with other elements' frames.
    pub batched: u64,
}

/// Detection thresholds of one frame.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    pub confidence: f32,
    pub iou: f32,
    pub max_detections: usize,
    /// Classes a classifier reports.
    pub top_k: usize,
}

/// Runs the model on every tile of the frame and merges the detections, in frame pixels;
/// (re)plans the preprocessing (`plan`, kept with the detector) when the model is new or the
/// frames changed.
pub fn infer(
    detector: &mut Detector,
    plan: &mut Option<Preprocess>,
    frame: &FrameInput,
    limits: Thresholds,
) -> Result<Inference, InferError> {
    let before = detector.batched_runs();
    let mut result = infer_frame(detector, plan, frame, limits)?;
    result.batched = detector.batched_runs() - before;
    Ok(result)
}

/// The plan for `frame`: the one kept when it was made for the same caps, else a new one.
fn planned<'p>(
    detector: &Detector,
    plan: &'p mut Option<Preprocess>,
    frame: &FrameInput,
) -> Result<&'p mut Preprocess, InferError> {
    let key = frame.key();
    if plan.as_ref().is_none_or(|p| p.key != key) {
        *plan = Some(Preprocess::plan(frame, detector.info())?);
    }
    Ok(plan.as_mut().expect("planned above"))
}

fn infer_frame(
    detector: &mut Detector,
    plan: &mut Option<Preprocess>,
    frame: &FrameInput,
    limits: Thresholds,
) -> Result<Inference, InferError> {
    let pre = planned(detector, plan, frame)?;
    let view = frame.view;
    match detector.info().task {
        Task::Classify => return classify_frame(detector, pre, view, limits.top_k),
        Task::Anomaly => return anomaly_frame(detector, pre, view),
        Task::Segment => return segment_frame(detector, pre, view, limits),
        Task::Detect => {}
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
        let (dx, dy) = (x as f32, y as f32);
        let model_width = detector.info().width as f32;
        let views: &[bool] = if frame.test_time_flip {
            &[false, true]
        } else {
            &[false]
        };
        for &mirrored in views {
            if mirrored {
                mirror_rows(detector.input_mut(), model_width as usize);
            }
            pre.candidates.clear();
            let started = Instant::now();
            let run = detector.detect(limits.confidence, &mut pre.candidates);
            duration += started.elapsed();
            if mirrored {
                // Back as letterboxed, so that the next tile's content lands beside its border.
                mirror_rows(detector.input_mut(), model_width as usize);
            }
            stats.add(&run?);
            merged.extend(pre.candidates.iter().map(|d| {
                let bbox = if mirrored {
                    mirror_box(&d.bbox, model_width)
                } else {
                    d.bbox
                };
                let b = geometry.to_source(&bbox);
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
    }
    // Tiles overlap, and a mirrored run finds the same defects again: their detections are
    // merged by NMS even for end-to-end models.
    if detector.info().layout.needs_nms() || pre.tiles.len() > 1 || frame.test_time_flip {
        nms::nms_classwise(&mut merged, limits.iou, limits.max_detections);
    } else {
        nms::sort_by_confidence(&mut merged);
        merged.truncate(limits.max_detections);
    }
    Ok(Inference {
        detections: merged,
        anomaly: None,
        masks: None,
        duration,
        stats,
        batched: 0,
    })
}

/// A segmentation model on the whole frame (never tiled): its detections after NMS, boxes in
/// frame pixels, each with its mask decoded inside its box (see [`crate::analysis::segment`]).
fn segment_frame(
    detector: &mut Detector,
    pre: &mut Preprocess,
    view: &FrameView,
    limits: Thresholds,
) -> Result<Inference, InferError> {
    if !pre.border_filled {
        pre.letterbox.fill_padding(detector.input_mut());
        pre.border_filled = true;
    }
    pre.letterbox
        .run(view, detector.input_mut())
        .map_err(|e| InferError::Failed(e.to_string()))?;
    let started = Instant::now();
    let stats = detector.segment(
        limits.confidence,
        limits.iou,
        limits.max_detections,
        &mut pre.segment,
    )?;
    let geometry = *pre.letterbox.geometry();
    let Some(nm) = detector
        .info()
        .segment
        .map(|l| l.coefficients)
        .filter(|&n| n > 0)
    else {
        return Err(InferError::Failed("not a segmentation model".into()));
    };
    let kept = &pre.segment.kept;
    let mut detections = Vec::with_capacity(kept.len());
    let mut masks = Vec::with_capacity(kept.len());
    if !kept.is_empty() {
        let protos = pre
            .segment
            .protos(nm)
            .map_err(|e| InferError::Failed(e.to_string()))?;
        for (candidate, coefficients) in kept.iter().zip(pre.segment.coefficients.chunks_exact(nm))
        {
            let detection = Detection {
                bbox: geometry.to_source(&candidate.detection.bbox),
                ..candidate.detection
            };
            masks.push(
                pre.masks
                    .decode(&protos, coefficients, &detection.bbox, &geometry),
            );
            detections.push(detection);
        }
    }
    Ok(Inference {
        detections,
        anomaly: None,
        masks: Some(Arc::new(masks)),
        duration: started.elapsed(),
        stats,
        batched: 0,
    })
}

/// A classifier on the whole frame or its crop: its top-k classes, each a detection covering
/// what it saw.
fn classify_frame(
    detector: &mut Detector,
    pre: &mut Preprocess,
    view: &FrameView,
    top_k: usize,
) -> Result<Inference, InferError> {
    let classify = pre.classify.as_mut().expect("planned for a classifier");
    let origin = pre.tiles[0];
    let (width, height) = {
        let g = classify.geometry();
        (g.src_width, g.src_height)
    };
    let started = classify_region(
        detector,
        classify,
        (view, pre.format, pre.yuv),
        origin,
        &mut pre.scores,
    )?;
    let region = (origin.0, origin.1, width, height);
    let detections = top_classes(&pre.scores, &mut pre.probabilities, top_k, region)?;
    Ok(Inference {
        detections,
        anomaly: None,
        masks: None,
        duration: started.elapsed(),
        stats: DecodeStats::default(),
        batched: 0,
    })
}

/// One region of a frame through a classifier: its resize and crop from `origin` (the
/// region's size is the one `classify` was made for) into the model input, then the model's
/// scores. The one path of whole frames and of regions. Returns when inference started.
fn classify_region(
    detector: &mut Detector,
    classify: &mut ClassifyPreprocess,
    (view, format, yuv): (&FrameView, PixelFormat, YuvMatrix),
    origin: (u32, u32),
    scores: &mut Vec<f32>,
) -> Result<Instant, InferError> {
    let channels = detector.info().channels;
    classify
        .run(view, format, yuv, origin, channels, detector.input_mut())
        .map_err(|e| InferError::Failed(e.to_string()))?;
    let started = Instant::now();
    detector.classify(scores)?;
    Ok(started)
}

/// A region to classify clipped to a `width` x `height` frame: the corner moved inside the
/// frame and the size cut at its edges, whatever the region says (no overflow: `x + w` is at
/// most `width`). An empty result (zero width or height) has nothing of the frame.
pub fn clip_region(
    (x, y, w, h): (u32, u32, u32, u32),
    width: u32,
    height: u32,
) -> (u32, u32, u32, u32) {
    let (x, y) = (x.min(width), y.min(height));
    (x, y, w.min(width - x), h.min(height - y))
}

/// What [`classify_regions`] gave: per region (in order), its top class as a detection over
/// the region clipped to the frame, or None (empty after clipping, or beyond `max_regions`).
#[derive(Debug, Default)]
pub struct RegionClasses {
    pub classes: Vec<Option<Detection>>,
    /// The regions clipped to the frame ([`clip_region`]): what verdicts record.
    pub clipped: Vec<(u32, u32, u32, u32)>,
    /// Regions beyond `max_regions`, left unclassified.
    pub over_limit: usize,
}

/// A classifier on regions of a frame (`on-rois`): each region, clipped to the frame, through
/// the same resize-and-crop and inference as a whole frame ([`classify_region`]). At most
/// `max_regions` regions are classified, the first ones; the rest are counted, not classified.
pub fn classify_regions(
    detector: &mut Detector,
    frame: &FrameInput,
    regions: &[(u32, u32, u32, u32)],
    max_regions: usize,
) -> Result<RegionClasses, InferError> {
    let view = frame.view;
    let (model_w, model_h) = (detector.info().width, detector.info().height);
    let clipped: Vec<_> = regions
        .iter()
        .map(|&r| clip_region(r, view.width, view.height))
        .collect();
    let mut out = RegionClasses {
        classes: Vec::with_capacity(regions.len()),
        over_limit: regions.len().saturating_sub(max_regions),
        clipped: clipped.clone(),
    };
    let (mut scores, mut probabilities) = (Vec::new(), Vec::new());
    for (i, region) in clipped.into_iter().enumerate() {
        let (x, y, w, h) = region;
        if w == 0 || h == 0 || i >= max_regions {
            out.classes.push(None);
            continue;
        }
        let mut classify = ClassifyPreprocess::new(ClassifyGeometry::new(w, h, model_w, model_h));
        let source = (view, frame.format, frame.yuv);
        classify_region(detector, &mut classify, source, (x, y), &mut scores)?;
        classify::probabilities(&scores, &mut probabilities)
            .map_err(|e| InferError::Failed(e.to_string()))?;
        let (class_id, confidence) = classify::top_k(&probabilities, 1)[0];
        out.classes.push(Some(Detection {
            bbox: BBox {
                x1: x as f32,
                y1: y as f32,
                x2: (x + w) as f32,
                y2: (y + h) as f32,
            },
            confidence,
            class_id,
        }));
    }
    Ok(out)
}

/// The top-k classes of a classifier's scores as detections covering the region it saw (the
/// frame, or its crop).
pub fn top_classes(
    scores: &[f32],
    probabilities: &mut Vec<f32>,
    top_k: usize,
    (x, y, w, h): Region,
) -> Result<Vec<Detection>, InferError> {
    classify::probabilities(scores, probabilities)
        .map_err(|e| InferError::Failed(e.to_string()))?;
    let whole = BBox {
        x1: x as f32,
        y1: y as f32,
        x2: (x + w) as f32,
        y2: (y + h) as f32,
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
    detector: &mut Detector,
    pre: &mut Preprocess,
    view: &FrameView,
) -> Result<Inference, InferError> {
    pre.letterbox
        .run(view, detector.input_mut())
        .map_err(|e| InferError::Failed(e.to_string()))?;
    let started = Instant::now();
    let (score, map) = detector.anomaly()?;
    // NaN or infinite scores, even a whole map of them, are judged by the policy (the frame is
    // UNKNOWN unless its finite cells fail it), not an error that stops the stream.
    Ok(Inference {
        detections: Vec::new(),
        anomaly: Some(Arc::new(AnomalyOutput { score, map })),
        masks: None,
        duration: started.elapsed(),
        stats: DecodeStats::default(),
        batched: 0,
    })
}

/// Mirrors an NCHW input tensor left-right in place: every row of every plane reversed.
fn mirror_rows(input: &mut [f32], width: usize) {
    for row in input.chunks_exact_mut(width.max(1)) {
        row.reverse();
    }
}

/// A box found on the mirrored input of a model `width` pixels wide, where it is on the
/// input as it was.
fn mirror_box(b: &BBox, width: f32) -> BBox {
    BBox {
        x1: width - b.x2,
        y1: b.y1,
        x2: width - b.x1,
        y2: b.y2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirroring_twice_is_the_identity_and_boxes_follow_the_pixels() {
        // Two planes of 2 rows of 4: each row reversed, planes and rows kept in place.
        let original: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let mut input = original.clone();
        mirror_rows(&mut input, 4);
        assert_eq!(&input[..8], &[3., 2., 1., 0., 7., 6., 5., 4.]);
        assert_eq!(&input[8..], &[11., 10., 9., 8., 15., 14., 13., 12.]);
        mirror_rows(&mut input, 4);
        assert_eq!(input, original);
        // Columns 0..1 of a 4-wide input are columns 3..4 of its mirror image.
        let found = BBox {
            x1: 3.0,
            y1: 1.0,
            x2: 4.0,
            y2: 2.0,
        };
        assert_eq!(
            mirror_box(&found, 4.0),
            BBox {
                x1: 0.0,
                y1: 1.0,
                x2: 1.0,
                y2: 2.0
            }
        );
    }

    #[test]
    fn regions_are_clipped_to_the_frame() {
        assert_eq!(clip_region((10, 20, 30, 40), 640, 480), (10, 20, 30, 40));
        // A size that would overflow past the frame's edge is cut there.
        assert_eq!(
            clip_region((10, 20, u32::MAX, u32::MAX), 640, 480),
            (10, 20, 630, 460)
        );
        // Nothing inside: empty, at the frame's edge.
        assert_eq!(clip_region((700, 10, 20, 20), 640, 480), (640, 10, 0, 20));
        assert_eq!(
            clip_region((u32::MAX, u32::MAX, 5, 5), 640, 480),
            (640, 480, 0, 0)
        );
    }

    #[test]
    fn the_tile_limit_is_one_check() {
        assert_eq!(tile_count(1920, 1080, 0, 0), Ok(1));
        assert_eq!(tile_count(1920, 1080, 640, 64), Ok(8));
        let error = tile_count(16_384, 16_384, 64, 32).unwrap_err();
        assert!(error.contains("at most 4096"), "{error}");
    }
}
