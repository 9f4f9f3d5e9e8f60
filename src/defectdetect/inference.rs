// SPDX-License-Identifier: MIT OR Apache-2.0
//! One frame through the model: letterbox (whole frame or tiles), inference, decoding, NMS,
//! boxes back in frame pixels. Shared by the synchronous path (the streaming thread) and the
//! asynchronous worker, each with its own [`Preprocess`].

use std::time::{Duration, Instant};

use crate::analysis::letterbox::{FrameView, Letterbox, LetterboxGeometry, PixelFormat};
use crate::analysis::{BBox, Detection, nms, tiles};
use crate::runtime::{Detector, ModelInfo};
use crate::video::yuv_matrix;

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
    /// Reused between frames so that steady-state detection allocates little.
    candidates: Vec<Detection>,
    /// What the plan was made for: frame size, format, model.
    pub key: (u32, u32, gst_video::VideoFormat, String),
}

impl Preprocess {
    pub fn plan(
        info: &gst_video::VideoInfo,
        format: PixelFormat,
        model: &ModelInfo,
        tile_size: u32,
        tile_overlap: u32,
    ) -> Self {
        let (width, height, corners) = if tile_size > 0 {
            tiles::plan(info.width(), info.height(), tile_size, tile_overlap)
        } else {
            (info.width(), info.height(), vec![(0, 0)])
        };
        let geometry = LetterboxGeometry::new(width, height, model.width, model.height);
        Self {
            format,
            letterbox: Letterbox::new(geometry, format, yuv_matrix(info), model.channels),
            tiles: corners,
            border_filled: false,
            candidates: Vec::with_capacity(1024),
            key: (info.width(), info.height(), info.format(), model.model_id()),
        }
    }
}

/// What one frame's inference gave.
#[derive(Debug)]
pub(super) struct Inference {
    pub detections: Vec<Detection>,
    /// Model runs and decoding, all tiles together.
    pub duration: Duration,
    /// Candidates dropped for NaN or infinite values.
    pub non_finite: usize,
}

/// Detection thresholds of one frame.
#[derive(Debug, Clone, Copy)]
pub(super) struct Thresholds {
    pub confidence: f32,
    pub iou: f32,
    pub max_detections: usize,
}

/// Runs the model on every tile of `view` and merges the detections, in frame pixels.
pub(super) fn infer(
    detector: &mut Detector,
    pre: &mut Preprocess,
    view: &FrameView,
    limits: Thresholds,
) -> Result<Inference, String> {
    if !pre.border_filled {
        pre.letterbox.fill_padding(detector.input_mut());
        pre.border_filled = true;
    }
    let geometry = *pre.letterbox.geometry();
    let mut merged = Vec::new();
    let (mut duration, mut non_finite) = (Duration::ZERO, 0);
    for &(x, y) in &pre.tiles {
        let region = if pre.tiles.len() == 1 {
            *view
        } else {
            tiles::crop(
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
            .map_err(|e| e.to_string())?;
        pre.candidates.clear();
        let started = Instant::now();
        let stats = detector
            .detect(limits.confidence, &mut pre.candidates)
            .map_err(|e| e.to_string())?;
        duration += started.elapsed();
        non_finite += stats.non_finite;
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
        duration,
        non_finite,
    })
}
