// SPDX-License-Identifier: MIT OR Apache-2.0
//! YOLO segmentation models (Ultralytics `-seg` exports), free of GStreamer: their outputs, the
//! candidates with their mask coefficients, and the masks of the detections kept after NMS.
//!
//! A `-seg` model has two outputs: detections `[1, 4+nc+nm, N]` (cx, cy, w, h, nc class scores,
//! then nm mask coefficients per anchor; nm is 32) and prototypes `[1, nm, H/4, W/4]`. A mask is
//! decoded as the Ultralytics predictor does with `retina_masks` (`process_mask_native`): the
//! coefficients times the prototypes give logits at prototype resolution; the prototypes'
//! letterbox padding is cut off (`scale_masks`: its width and height truncated to whole
//! prototype pixels); the rest is resized bilinearly (half-pixel centres, as PyTorch's
//! `interpolate(align_corners=False)`) to the frame; pixels outside the detection's box (frame
//! pixels, `x1 <= x < x2`) are cleared; a pixel is set where the sigmoid of its logit is above
//! 0.5, its logit above 0.
//!
//! [`MaskDecoder`] computes logits only on the prototype cells under the box and samples only
//! the frame pixels inside it; its buffers are reused from detection to detection and frame to
//! frame, so that a mask costs its box's area and no frame-sized buffer is ever allocated.

use super::decode::DecodeStats;
use super::letterbox::LetterboxGeometry;
use super::mask::Mask;
use super::outputs::OutputSpec;
use super::{BBox, Detection};

/// What a segmentation model's two outputs hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentLayout {
    /// Index of the detections output `[1, 4+nc+nm, N]` among the model's outputs.
    pub detections: usize,
    /// Index of the prototypes output `[1, nm, h, w]`.
    pub protos: usize,
    pub classes: usize,
    /// Mask coefficients per anchor (nm).
    pub coefficients: usize,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SegmentError {
    #[error(
        "a segmentation model needs two float32 outputs, detections [1, 4+nc+nm, N] and mask prototypes [1, nm, h, w]; the model's outputs are {0}"
    )]
    Outputs(String),
    #[error("the mask prototypes have shape {0:?}; expected [1, {1}, h, w]")]
    Protos(Vec<i64>, usize),
    #[error("output holds {actual} values but its shape {shape:?} needs {expected}")]
    Size {
        shape: Vec<i64>,
        expected: usize,
        actual: usize,
    },
}

/// The detections and prototypes outputs of a segmentation model, when its outputs have that
/// layout: a float `[1, 4+nc+nm, N]` (rows fewer than anchors, when both are known) and a float
/// `[1, nm, h, w]` with nm > 1 and at least one class row left. Dynamic dimensions (negative)
/// may be anything except the row and coefficient counts.
pub fn segment_layout(outputs: &[OutputSpec]) -> Option<SegmentLayout> {
    let batch_one = |d: i64| d == 1 || d < 0;
    let protos = outputs.iter().position(|o| {
        o.is_float
            && matches!(o.shape[..], [b, nm, h, w] if batch_one(b) && nm > 1 && h != 1 && w != 1)
    })?;
    let nm = outputs[protos].shape[1] as usize;
    let detections = outputs.iter().enumerate().position(|(i, o)| {
        i != protos
            && o.is_float
            && matches!(o.shape[..], [b, rows, n] if batch_one(b) && rows as usize > 4 + nm && rows > 0 && (n < 0 || rows < n))
    })?;
    let rows = outputs[detections].shape[1] as usize;
    Some(SegmentLayout {
        detections,
        protos,
        classes: rows - 4 - nm,
        coefficients: nm,
    })
}

/// The layout of a model said to segment (its `task` metadata or the `task` property), or an
/// error naming its outputs.
pub fn require_segment_layout(outputs: &[OutputSpec]) -> Result<SegmentLayout, SegmentError> {
    segment_layout(outputs).ok_or_else(|| {
        SegmentError::Outputs(
            outputs
                .iter()
                .map(|o| format!("{} {:?}", o.name, o.shape))
                .collect::<Vec<_>>()
                .join(", "),
        )
    })
}

/// A candidate before NMS: the detection (box in model-input pixels) and the anchor whose mask
/// coefficients it keeps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub detection: Detection,
    pub anchor: u32,
}

impl super::nms::Scored for Candidate {
    fn detection(&self) -> &Detection {
        &self.detection
    }
}

/// Decodes a `[1, 4+nc+nm, N]` output into candidates above the threshold (strictly, as the
/// detection decoder), reusing its buffers.
#[derive(Debug, Default)]
pub struct CandidateDecoder {
    best_score: Vec<f32>,
    best_class: Vec<u32>,
}

impl CandidateDecoder {
    pub fn decode(
        &mut self,
        layout: &SegmentLayout,
        shape: &[i64],
        data: &[f32],
        conf: f32,
        out: &mut Vec<Candidate>,
    ) -> Result<DecodeStats, SegmentError> {
        let rows = 4 + layout.classes + layout.coefficients;
        let size_error = |expected| SegmentError::Size {
            shape: shape.to_vec(),
            expected,
            actual: data.len(),
        };
        let [1, r, n] = *shape else {
            return Err(size_error(0));
        };
        if r as usize != rows || n < 0 {
            return Err(size_error(rows * n.max(0) as usize));
        }
        let anchors = n as usize;
        if data.len() != rows * anchors {
            return Err(size_error(rows * anchors));
        }
        let mut stats = DecodeStats::default();
        self.best_score.clear();
        self.best_score
            .extend_from_slice(&data[4 * anchors..5 * anchors]);
        self.best_class.clear();
        self.best_class.resize(anchors, 0);
        for class in 1..layout.classes {
            let row = &data[(4 + class) * anchors..(5 + class) * anchors];
            for ((best, best_class), &score) in self
                .best_score
                .iter_mut()
                .zip(self.best_class.iter_mut())
                .zip(row)
            {
                if score > *best {
                    *best = score;
                    *best_class = class as u32;
                }
            }
        }
        for (anchor, (&score, &class)) in self.best_score.iter().zip(&self.best_class).enumerate() {
            // NaN scores never pass.
            if score.is_nan() || score <= conf {
                continue;
            }
            let at = |row: usize| data[row * anchors + anchor];
            let bbox = BBox::from_center(at(0), at(1), at(2), at(3));
            if !(score.is_finite() && bbox.is_finite()) {
                stats.non_finite += 1;
                continue;
            }
            if bbox.x2 < bbox.x1 || bbox.y2 < bbox.y1 {
                stats.inverted += 1;
                continue;
            }
            let mut confidence = score;
            if confidence > 1.0 {
                stats.clamped += 1;
                stats.max_score = stats.max_score.max(confidence);
                confidence = 1.0;
            }
            out.push(Candidate {
                detection: Detection {
                    class_id: class as usize,
                    confidence,
                    bbox,
                },
                anchor: anchor as u32,
            });
        }
        Ok(stats)
    }
}

/// Appends an anchor's mask coefficients (the last nm rows of its column) to `out`.
pub fn coefficients(layout: &SegmentLayout, data: &[f32], anchor: u32, out: &mut Vec<f32>) {
    let rows = 4 + layout.classes + layout.coefficients;
    let anchors = data.len() / rows;
    let first = 4 + layout.classes;
    out.extend((first..rows).map(|row| data[row * anchors + anchor as usize]));
}

/// One frame's segmentation output as NMS leaves it, in buffers reused from frame to frame:
/// the kept candidates (best first), their mask coefficients (`coefficients` values each, in
/// the same order) and the frame's prototypes (copied only when a candidate is kept).
#[derive(Debug, Default)]
pub struct SegmentBuffers {
    pub kept: Vec<Candidate>,
    pub coefficients: Vec<f32>,
    pub protos: Vec<f32>,
    pub proto_shape: Vec<i64>,
    decoder: CandidateDecoder,
}

impl SegmentBuffers {
    /// Decodes the detections output, runs class-wise NMS (as the detection path does) and
    /// keeps what the masks need.
    pub fn read(
        &mut self,
        layout: &SegmentLayout,
        (shape, data): (&[i64], &[f32]),
        (proto_shape, protos): (&[i64], &[f32]),
        conf: f32,
        iou: f32,
        max_detections: usize,
    ) -> Result<DecodeStats, SegmentError> {
        self.kept.clear();
        self.coefficients.clear();
        let stats = self
            .decoder
            .decode(layout, shape, data, conf, &mut self.kept)?;
        super::nms::nms_classwise(&mut self.kept, iou, max_detections);
        for c in &self.kept {
            coefficients(layout, data, c.anchor, &mut self.coefficients);
        }
        self.protos.clear();
        self.proto_shape.clear();
        self.proto_shape.extend_from_slice(proto_shape);
        if !self.kept.is_empty() {
            Protos::new(proto_shape, protos, layout.coefficients)?;
            self.protos.extend_from_slice(protos);
        }
        Ok(stats)
    }

    /// The prototypes kept by [`SegmentBuffers::read`] (valid when a candidate was kept).
    pub fn protos(&self, nm: usize) -> Result<Protos<'_>, SegmentError> {
        Protos::new(&self.proto_shape, &self.protos, nm)
    }
}

/// The prototypes of one frame: `channels` planes of `height` x `width`, row-major.
#[derive(Debug, Clone, Copy)]
pub struct Protos<'a> {
    pub data: &'a [f32],
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl<'a> Protos<'a> {
    /// The prototypes of an output `[1, nm, h, w]` with nm coefficients.
    pub fn new(shape: &[i64], data: &'a [f32], nm: usize) -> Result<Self, SegmentError> {
        let [1, c, h, w] = *shape else {
            return Err(SegmentError::Protos(shape.to_vec(), nm));
        };
        if c as usize != nm || h <= 0 || w <= 0 {
            return Err(SegmentError::Protos(shape.to_vec(), nm));
        }
        let (height, width) = (h as usize, w as usize);
        if data.len() != nm * height * width {
            return Err(SegmentError::Size {
                shape: shape.to_vec(),
                expected: nm * height * width,
                actual: data.len(),
            });
        }
        Ok(Self {
            data,
            channels: nm,
            height,
            width,
        })
    }
}

/// One bilinear tap along an axis: the two source cells (window-relative) and the second's
/// weight.
#[derive(Debug, Clone, Copy, Default)]
struct Tap {
    i0: usize,
    i1: usize,
    w1: f32,
}

/// The cells of the prototypes the frame maps onto: the prototypes without their letterbox
/// padding, truncated to whole cells as Ultralytics' `scale_masks` cuts them.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Window {
    left: usize,
    top: usize,
    width: usize,
    height: usize,
}

fn window(protos: &Protos, frame_width: u32, frame_height: u32) -> Window {
    let (mh, mw) = (protos.height as f64, protos.width as f64);
    let (h0, w0) = (frame_height.max(1) as f64, frame_width.max(1) as f64);
    let gain = (mh / h0).min(mw / w0);
    let (pad_w, pad_h) = ((mw - w0 * gain) / 2.0, (mh - h0 * gain) / 2.0);
    let (left, top) = (pad_w.max(0.0) as usize, pad_h.max(0.0) as usize);
    let right = ((mw - pad_w).max(0.0) as usize).min(protos.width);
    let bottom = ((mh - pad_h).max(0.0) as usize).min(protos.height);
    Window {
        left,
        top,
        width: right.saturating_sub(left),
        height: bottom.saturating_sub(top),
    }
}

/// PyTorch's bilinear source index (`align_corners=False`) of output sample `dst` when `input`
/// cells are resized to `output` samples.
fn tap(dst: usize, input: usize, output: usize) -> Tap {
    let scale = input as f32 / output as f32;
    let src = ((dst as f32 + 0.5) * scale - 0.5).max(0.0);
    let i0 = (src as usize).min(input - 1);
    let i1 = if i0 + 1 < input { i0 + 1 } else { i0 };
    Tap {
        i0,
        i1,
        w1: src - i0 as f32,
    }
}

/// Decodes masks, one detection at a time, into the detection's box; keeps its buffers.
#[derive(Debug, Default)]
pub struct MaskDecoder {
    logits: Vec<f32>,
    columns: Vec<Tap>,
    /// Each prototype row under the box resized to the box's frame columns.
    rows: Vec<f32>,
}

impl MaskDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// The mask of a detection whose box `bbox` is in frame pixels (after the letterbox is
    /// undone) on the frame `geometry` letterboxed, with the anchor's `coefficients`. The mask
    /// covers the frame pixels of the box; an empty box gives an empty mask.
    pub fn decode(
        &mut self,
        protos: &Protos,
        coefficients: &[f32],
        bbox: &BBox,
        geometry: &LetterboxGeometry,
    ) -> Mask {
        let (fw, fh) = (geometry.src_width, geometry.src_height);
        // crop_mask keeps pixel indices i with x1 <= i < x2.
        let span = |lo: f32, hi: f32, size: u32| {
            let lo = (lo.ceil().max(0.0) as u32).min(size);
            let hi = (hi.ceil().max(0.0) as u32).min(size);
            (lo, hi.max(lo))
        };
        let (x0, x1) = span(bbox.x1, bbox.x2, fw);
        let (y0, y1) = span(bbox.y1, bbox.y2, fh);
        let mut mask = Mask::empty(x0, y0, x1 - x0, y1 - y0);
        let win = window(protos, fw, fh);
        if mask.data.is_empty() || win.width == 0 || win.height == 0 {
            return mask;
        }
        // The columns' taps, and the prototype columns they need.
        self.columns.clear();
        self.columns
            .extend((x0..x1).map(|x| tap(x as usize, win.width, fw as usize)));
        let (c_lo, c_hi) = (self.columns[0].i0, self.columns[self.columns.len() - 1].i1);
        let top = tap(y0 as usize, win.height, fh as usize).i0;
        let bottom = tap(y1 as usize - 1, win.height, fh as usize).i1;
        let (ww, wh) = (c_hi - c_lo + 1, bottom - top + 1);
        // Logits of the prototype cells under the box only.
        self.logits.clear();
        self.logits.resize(ww * wh, 0.0);
        let plane = protos.height * protos.width;
        for (channel, &k) in coefficients.iter().enumerate().take(protos.channels) {
            let p = &protos.data[channel * plane..(channel + 1) * plane];
            for r in 0..wh {
                let start = (win.top + top + r) * protos.width + win.left + c_lo;
                let src = &p[start..start + ww];
                for (l, &v) in self.logits[r * ww..(r + 1) * ww].iter_mut().zip(src) {
                    *l += k * v;
                }
            }
        }
        // Horizontally once per prototype row (PyTorch's order: each row's two taps, then the
        // two rows), then each frame row is a blend of two of them: contiguous and
        // vectorised, a few operations per frame pixel.
        let w = mask.width as usize;
        self.rows.clear();
        self.rows.resize(wh * w, 0.0);
        for (logits, row) in self
            .logits
            .chunks_exact(ww)
            .zip(self.rows.chunks_exact_mut(w))
        {
            for (h, c) in row.iter_mut().zip(&self.columns) {
                *h = (1.0 - c.w1) * logits[c.i0 - c_lo] + c.w1 * logits[c.i1 - c_lo];
            }
        }
        for (y, out) in (y0..y1).zip(mask.data.chunks_exact_mut(w)) {
            let t = tap(y as usize, win.height, fh as usize);
            let (r0, r1) = (t.i0 - top, t.i1 - top);
            let (a, b) = (1.0 - t.w1, t.w1);
            let (h0, h1) = (
                &self.rows[r0 * w..(r0 + 1) * w],
                &self.rows[r1 * w..(r1 + 1) * w],
            );
            for ((o, &u), &v) in out.iter_mut().zip(h0).zip(h1) {
                *o = u8::from(a * u + b * v > 0.0);
            }
        }
        mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(name: &str, shape: &[i64]) -> OutputSpec {
        OutputSpec {
            name: name.into(),
            shape: shape.to_vec(),
            is_float: true,
        }
    }

    #[test]
    fn the_two_outputs_are_found_in_either_order() {
        let seg = [
            out("output0", &[1, 116, 8400]),
            out("output1", &[1, 32, 160, 160]),
        ];
        assert_eq!(
            segment_layout(&seg),
            Some(SegmentLayout {
                detections: 0,
                protos: 1,
                classes: 80,
                coefficients: 32
            })
        );
        let swapped = [seg[1].clone(), seg[0].clone()];
        assert_eq!(
            segment_layout(&swapped).map(|l| (l.detections, l.protos)),
            Some((1, 0))
        );
        // Dynamic anchors and prototype sizes.
        assert!(segment_layout(&[out("a", &[1, 38, -1]), out("b", &[-1, 32, -1, -1])]).is_some());
        // A detector, an anomaly model, and coefficients without classes are not.
        assert_eq!(segment_layout(&[out("output0", &[1, 84, 8400])]), None);
        assert_eq!(
            segment_layout(&[out("s", &[1, 1]), out("map", &[1, 1, 64, 64])]),
            None
        );
        assert_eq!(
            segment_layout(&[out("a", &[1, 36, 8400]), out("b", &[1, 32, 160, 160])]),
            None
        );
        let e = require_segment_layout(&[out("output0", &[1, 84, 8400])]).unwrap_err();
        assert!(e.to_string().contains("output0 [1, 84, 8400]"), "{e}");
    }

    /// Two classes, two coefficients, three anchors: anchor 2 passes, its coefficients are
    /// its column's last two rows.
    #[test]
    fn candidates_keep_their_anchor_and_coefficients() {
        let layout = SegmentLayout {
            detections: 0,
            protos: 1,
            classes: 2,
            coefficients: 2,
        };
        #[rustfmt::skip]
        let data = [
            10.0, 20.0, 30.0,   // cx
            10.0, 20.0, 30.0,   // cy
            4.0, 4.0, 8.0,      // w
            4.0, 4.0, 6.0,      // h
            0.1, 0.2, 0.3,      // class 0
            0.2, 0.1, 0.9,      // class 1
            1.0, 2.0, 3.0,      // coefficient 0
            -1.0, -2.0, -3.0,   // coefficient 1
        ];
        let mut found = Vec::new();
        CandidateDecoder::default()
            .decode(&layout, &[1, 8, 3], &data, 0.25, &mut found)
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].anchor, 2);
        assert_eq!(found[0].detection.class_id, 1);
        assert_eq!(
            found[0].detection.bbox,
            BBox {
                x1: 26.0,
                y1: 27.0,
                x2: 34.0,
                y2: 33.0
            }
        );
        let mut c = Vec::new();
        coefficients(&layout, &data, 2, &mut c);
        assert_eq!(c, [3.0, -3.0]);
        assert!(
            CandidateDecoder::default()
                .decode(&layout, &[1, 8, 2], &data, 0.25, &mut found)
                .is_err()
        );
    }

    /// One prototype that is +1 on the left half of a 640x640 input and -1 on the right; a
    /// 1280x640 frame letterboxes to 640x320 with 160 rows of padding (40 prototype rows).
    /// The mask is set on the frame's left half, inside the box only, and the box's pixels
    /// follow crop_mask's `x1 <= x < x2`.
    #[test]
    fn masks_follow_the_letterbox_and_stay_inside_the_box() {
        let (mh, mw) = (160, 160);
        let mut data = vec![0.0f32; mh * mw];
        for (i, v) in data.iter_mut().enumerate() {
            *v = if i % mw < mw / 2 { 1.0 } else { -1.0 };
        }
        let protos = Protos::new(&[1, 1, 160, 160], &data, 1).unwrap();
        let geometry = LetterboxGeometry::new(1280, 640, 640, 640);
        assert_eq!(
            window(&protos, 1280, 640),
            Window {
                left: 0,
                top: 40,
                width: 160,
                height: 80
            }
        );
        let bbox = BBox {
            x1: 600.5,
            y1: 100.0,
            x2: 700.0,
            y2: 110.2,
        };
        let mut decoder = MaskDecoder::new();
        let mask = decoder.decode(&protos, &[1.0], &bbox, &geometry);
        assert_eq!(
            (mask.x, mask.y, mask.width, mask.height),
            (601, 100, 99, 11)
        );
        for y in 100..111 {
            for x in 601..700 {
                assert_eq!(mask.get(x, y), x < 640, "({x}, {y})");
            }
        }
        assert!(!mask.get(600, 105) && !mask.get(700, 105) && !mask.get(650, 111));
        // A negative coefficient flips it; an empty box gives an empty mask.
        let flipped = decoder.decode(&protos, &[-1.0], &bbox, &geometry);
        assert_eq!(flipped.area(), 11 * 99 - mask.area());
        let empty = BBox {
            x1: 5.0,
            y1: 5.0,
            x2: 5.0,
            y2: 9.0,
        };
        assert_eq!(decoder.decode(&protos, &[1.0], &empty, &geometry).area(), 0);
    }

    /// The bilinear taps are PyTorch's: a 2-cell input resized to 8 samples.
    #[test]
    fn taps_match_pytorch_half_pixel_centres() {
        let taps: Vec<(usize, usize, f32)> = (0..8)
            .map(|d| tap(d, 2, 8))
            .map(|t| (t.i0, t.i1, t.w1))
            .collect();
        assert_eq!(
            taps,
            [
                (0, 1, 0.0),
                (0, 1, 0.0),
                (0, 1, 0.125),
                (0, 1, 0.375),
                (0, 1, 0.625),
                (0, 1, 0.875),
                (1, 1, 0.125),
                (1, 1, 0.375)
            ]
        );
    }
}
