//! Output decoders for the YOLO output layouts, chosen from the output tensor's shape.
//!
//! | layout | shape | rows |
//! |---|---|---|
//! | [`OutputLayout::YoloV8`] (YOLOv8, YOLO11) | `[1, 4+nc, N]` | cx, cy, w, h, then nc class scores; no objectness |
//! | [`OutputLayout::YoloV5`] | `[1, N, 5+nc]` | cx, cy, w, h, objectness, nc class scores; score = obj × class |
//! | [`OutputLayout::EndToEnd`] (YOLOv10, NMS-exported) | `[1, K, 6]` | x1, y1, x2, y2, score, class; no NMS to run |
//!
//! Boxes come out in model-input pixels; scores must already be probabilities.
//! A candidate is kept when its score is strictly greater than the threshold, as in
//! the Ultralytics predictor.

use std::fmt;

use super::{BBox, Detection};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputLayout {
    YoloV8,
    YoloV5,
    EndToEnd,
}

impl OutputLayout {
    /// Whether the decoded candidates still need NMS.
    pub fn needs_nms(self) -> bool {
        !matches!(self, OutputLayout::EndToEnd)
    }
}

impl fmt::Display for OutputLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OutputLayout::YoloV8 => "yolov8 [1, 4+nc, N]",
            OutputLayout::YoloV5 => "yolov5 [1, N, 5+nc]",
            OutputLayout::EndToEnd => "end-to-end [1, K, 6]",
        })
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error(
        "output shape {0:?} matches no known layout: expected [1, 4+nc, N] (YOLOv8/YOLO11), \
         [1, N, 5+nc] (YOLOv5) or [1, K, 6] (end-to-end)"
    )]
    UnknownLayout(Vec<i64>),
    #[error("output shape {shape:?} does not fit the {layout} layout")]
    ShapeMismatch {
        shape: Vec<i64>,
        layout: OutputLayout,
    },
    #[error("output holds {actual} values but its shape {shape:?} needs {expected}")]
    SizeMismatch {
        shape: Vec<i64>,
        expected: usize,
        actual: usize,
    },
}

/// Class ids at or above this are not believed (a model names at most this many classes; the
/// `names` metadata parser has the same bound): end-to-end rows carrying one are dropped.
pub const MAX_CLASS_ID: u32 = 100_000;

/// What the decoder saw besides detections, for diagnostics: candidates above the threshold it
/// dropped or changed, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DecodeStats {
    /// Dropped: a coordinate or score was NaN or infinite.
    pub non_finite: usize,
    /// Dropped: the box is inverted (x2 < x1 or y2 < y1; a negative width or height).
    pub inverted: usize,
    /// Dropped (end-to-end): the class is not an integer in [0, [`MAX_CLASS_ID`]).
    pub bad_class: usize,
    /// Kept with the score clamped to 1: the score was above 1 (scores must be
    /// probabilities).
    pub clamped: usize,
    /// The largest score seen above 1, for the warning.
    pub max_score: f32,
}

impl DecodeStats {
    /// Adds another frame's or tile's counts.
    pub fn add(&mut self, other: &DecodeStats) {
        self.non_finite += other.non_finite;
        self.inverted += other.inverted;
        self.bad_class += other.bad_class;
        self.clamped += other.clamped;
        self.max_score = self.max_score.max(other.max_score);
    }
}

/// Picks the layout of a concrete output shape.
///
/// `[1, a, b]` with `a < b` is YOLOv8 (few rows of many anchors). Otherwise `b == 6` is
/// end-to-end unless the model has exactly one class (then `[1, N, 6]` is YOLOv5 with
/// nc = 1), and `end2end` metadata forces end-to-end.
pub fn infer_layout(
    shape: &[i64],
    class_count: Option<usize>,
    end2end_hint: bool,
) -> Result<OutputLayout, DecodeError> {
    let unknown = || DecodeError::UnknownLayout(shape.to_vec());
    let [batch, a, b] = *shape else {
        return Err(unknown());
    };
    if batch != 1 || a <= 0 || b <= 0 {
        return Err(unknown());
    }
    // `end2end` metadata decides for [1, K, 6] even with fewer than 6 rows (K < 6 would
    // otherwise read as YOLOv8).
    let layout = if end2end_hint && b == 6 {
        OutputLayout::EndToEnd
    } else if a < b {
        OutputLayout::YoloV8
    } else if end2end_hint || (b == 6 && class_count != Some(1)) {
        OutputLayout::EndToEnd
    } else {
        OutputLayout::YoloV5
    };
    class_count_of(layout, shape)?;
    Ok(layout)
}

/// Number of classes a layout implies for a shape (None for end-to-end, which does not say),
/// or an error when the shape cannot be that layout.
pub fn class_count_of(layout: OutputLayout, shape: &[i64]) -> Result<Option<usize>, DecodeError> {
    let mismatch = || DecodeError::ShapeMismatch {
        shape: shape.to_vec(),
        layout,
    };
    let [1, a, b] = *shape else {
        return Err(mismatch());
    };
    match layout {
        OutputLayout::YoloV8 if a > 4 && b > 0 => Ok(Some((a - 4) as usize)),
        OutputLayout::YoloV5 if b > 5 && a > 0 => Ok(Some((b - 5) as usize)),
        OutputLayout::EndToEnd if b == 6 && a > 0 => Ok(None),
        _ => Err(mismatch()),
    }
}

/// What a layout's decoder hands on: a detection to check, or a row with an unusable class.
enum Candidate {
    Detection(Detection),
    BadClass,
}

/// Decodes one output tensor into candidates above `conf_threshold`, reusing its buffers
/// between frames so that steady-state decoding allocates nothing.
#[derive(Debug, Default)]
pub struct Decoder {
    best_score: Vec<f32>,
    best_class: Vec<u32>,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the candidates of `data` (of shape `shape`) to `out`; boxes in model-input pixels.
    pub fn decode(
        &mut self,
        layout: OutputLayout,
        shape: &[i64],
        data: &[f32],
        conf_threshold: f32,
        out: &mut Vec<Detection>,
    ) -> Result<DecodeStats, DecodeError> {
        class_count_of(layout, shape)?;
        let (rows, cols) = (shape[1] as usize, shape[2] as usize);
        let expected = rows * cols;
        if data.len() != expected {
            return Err(DecodeError::SizeMismatch {
                shape: shape.to_vec(),
                expected,
                actual: data.len(),
            });
        }
        let mut stats = DecodeStats::default();
        let mut push = |candidate: Candidate| {
            let mut detection = match candidate {
                Candidate::Detection(d) => d,
                Candidate::BadClass => {
                    stats.bad_class += 1;
                    return;
                }
            };
            let b = &detection.bbox;
            if !(detection.confidence.is_finite() && b.is_finite()) {
                stats.non_finite += 1;
            } else if b.x2 < b.x1 || b.y2 < b.y1 {
                stats.inverted += 1;
            } else {
                if detection.confidence > 1.0 {
                    stats.clamped += 1;
                    stats.max_score = stats.max_score.max(detection.confidence);
                    detection.confidence = 1.0;
                }
                out.push(detection);
            }
        };
        match layout {
            OutputLayout::YoloV8 => self.decode_v8(rows, cols, data, conf_threshold, &mut push),
            OutputLayout::YoloV5 => decode_v5(rows, cols, data, conf_threshold, &mut push),
            OutputLayout::EndToEnd => decode_end_to_end(rows, data, conf_threshold, &mut push),
        }
        Ok(stats)
    }

    /// `[4+nc, N]`: class rows are scanned one after the other (contiguous, vectorisable)
    /// to find each anchor's best class, then only anchors above threshold read their box.
    fn decode_v8(
        &mut self,
        rows: usize,
        anchors: usize,
        data: &[f32],
        conf: f32,
        push: &mut impl FnMut(Candidate),
    ) {
        let classes = rows - 4;
        self.best_score.clear();
        self.best_score
            .extend_from_slice(&data[4 * anchors..5 * anchors]);
        self.best_class.clear();
        self.best_class.resize(anchors, 0);
        for class in 1..classes {
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
            if score > conf {
                let at = |row: usize| data[row * anchors + anchor];
                push(Candidate::Detection(Detection {
                    class_id: class as usize,
                    confidence: score,
                    bbox: BBox::from_center(at(0), at(1), at(2), at(3)),
                }));
            }
        }
    }
}

/// `[N, 5+nc]`: objectness gates the anchor, then score = objectness × best class score.
fn decode_v5(
    anchors: usize,
    cols: usize,
    data: &[f32],
    conf: f32,
    push: &mut impl FnMut(Candidate),
) {
    for row in data.chunks_exact(cols).take(anchors) {
        let objectness = row[4];
        if objectness.is_nan() || objectness <= conf {
            continue;
        }
        let (class_id, class_score) = argmax(&row[5..]);
        let confidence = objectness * class_score;
        if confidence > conf {
            push(Candidate::Detection(Detection {
                class_id,
                confidence,
                bbox: BBox::from_center(row[0], row[1], row[2], row[3]),
            }));
        }
    }
}

/// `[K, 6]`: already final boxes; a class that is not an integer in [0, [`MAX_CLASS_ID`])
/// drops the row (a float class id of 2^31 or more would otherwise wrap where ids are 32-bit
/// signed, as in the ROI metas).
fn decode_end_to_end(rows: usize, data: &[f32], conf: f32, push: &mut impl FnMut(Candidate)) {
    for row in data.chunks_exact(6).take(rows) {
        let confidence = row[4];
        if confidence.is_nan() || confidence <= conf {
            continue;
        }
        let class = row[5].round();
        let integral = (row[5] - class).abs() < 1e-3;
        if !(integral && (0.0..MAX_CLASS_ID as f32).contains(&class)) {
            push(Candidate::BadClass);
            continue;
        }
        push(Candidate::Detection(Detection {
            class_id: class as usize,
            confidence,
            bbox: BBox {
                x1: row[0],
                y1: row[1],
                x2: row[2],
                y2: row[3],
            },
        }));
    }
}

/// Index and value of the largest element; NaNs never win. Empty slices give (0, 0).
fn argmax(values: &[f32]) -> (usize, f32) {
    let mut best = (0, values.first().copied().unwrap_or(0.0));
    for (i, &v) in values.iter().enumerate().skip(1) {
        if v > best.1 {
            best = (i, v);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_inference() {
        assert_eq!(
            infer_layout(&[1, 84, 8400], None, false),
            Ok(OutputLayout::YoloV8)
        );
        assert_eq!(
            infer_layout(&[1, 25200, 85], None, false),
            Ok(OutputLayout::YoloV5)
        );
        assert_eq!(
            infer_layout(&[1, 300, 6], None, false),
            Ok(OutputLayout::EndToEnd)
        );
        assert_eq!(
            infer_layout(&[1, 300, 6], Some(1), false),
            Ok(OutputLayout::YoloV5)
        );
        assert_eq!(
            infer_layout(&[1, 300, 6], Some(1), true),
            Ok(OutputLayout::EndToEnd)
        );
        assert_eq!(
            infer_layout(&[1, 2, 6], None, true),
            Ok(OutputLayout::EndToEnd),
            "few rows, end2end metadata"
        );
        assert!(
            infer_layout(&[1, 2, 6], None, false).is_err(),
            "without it, too few rows for YOLOv8"
        );
        assert!(matches!(
            infer_layout(&[1, 2, 3, 4], None, false),
            Err(DecodeError::UnknownLayout(_))
        ));
        assert!(infer_layout(&[2, 84, 8400], None, false).is_err());
        assert!(infer_layout(&[1, 100, 5], None, false).is_err());
        assert!(infer_layout(&[1, 4, 8400], None, false).is_err());
    }

    #[test]
    fn forced_layout_must_fit_the_shape() {
        assert!(class_count_of(OutputLayout::EndToEnd, &[1, 84, 8400]).is_err());
        assert_eq!(
            class_count_of(OutputLayout::YoloV5, &[1, 100, 7]),
            Ok(Some(2))
        );
    }

    /// Two anchors, two classes: anchor 1 is class 1 at 0.8, anchor 0 stays under threshold.
    #[test]
    fn v8_decodes_best_class_per_anchor() {
        #[rustfmt::skip]
        let data = [
            10.0, 50.0,   // cx
            10.0, 60.0,   // cy
            4.0, 20.0,    // w
            4.0, 10.0,    // h
            0.1, 0.3,     // class 0
            0.2, 0.8,     // class 1
        ];
        let mut out = Vec::new();
        let stats = Decoder::new()
            .decode(OutputLayout::YoloV8, &[1, 6, 2], &data, 0.25, &mut out)
            .unwrap();
        assert_eq!(stats.non_finite, 0);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].class_id, 1);
        assert_eq!(out[0].confidence, 0.8);
        assert_eq!(
            out[0].bbox,
            BBox {
                x1: 40.0,
                y1: 55.0,
                x2: 60.0,
                y2: 65.0
            }
        );
    }

    #[test]
    fn v8_threshold_is_strict() {
        let data = [0.0, 0.0, 1.0, 1.0, 0.25];
        let mut out = Vec::new();
        Decoder::new()
            .decode(OutputLayout::YoloV8, &[1, 5, 1], &data, 0.25, &mut out)
            .unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn v5_multiplies_objectness_and_class() {
        let data = [
            20.0, 20.0, 10.0, 10.0, 0.5, 0.2, 0.9, 0.0, 0.0, 1.0, 1.0, 0.1, 0.9, 0.9,
        ];
        let mut out = Vec::new();
        Decoder::new()
            .decode(OutputLayout::YoloV5, &[1, 2, 7], &data, 0.25, &mut out)
            .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].class_id, 1);
        assert!((out[0].confidence - 0.45).abs() < 1e-6);
        assert_eq!(
            out[0].bbox,
            BBox {
                x1: 15.0,
                y1: 15.0,
                x2: 25.0,
                y2: 25.0
            }
        );
    }

    #[test]
    fn end_to_end_reads_corners_and_class() {
        let data = [1.0, 2.0, 30.0, 40.0, 0.7, 3.0, 0.0, 0.0, 1.0, 1.0, 0.1, 0.0];
        let mut out = Vec::new();
        Decoder::new()
            .decode(OutputLayout::EndToEnd, &[1, 2, 6], &data, 0.25, &mut out)
            .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].class_id, 3);
        assert_eq!(
            out[0].bbox,
            BBox {
                x1: 1.0,
                y1: 2.0,
                x2: 30.0,
                y2: 40.0
            }
        );
    }

    #[test]
    fn non_finite_values_are_dropped_and_counted() {
        #[rustfmt::skip]
        let data = [
            f32::NAN, 10.0, 10.0,
            0.0, f32::INFINITY, 10.0,
            1.0, 1.0, 1.0,
            1.0, 1.0, 1.0,
            0.9, 0.9, f32::INFINITY,
        ];
        let mut out = Vec::new();
        let stats = Decoder::new()
            .decode(OutputLayout::YoloV8, &[1, 5, 3], &data, 0.25, &mut out)
            .unwrap();
        assert_eq!(stats.non_finite, 3);
        assert!(out.is_empty());
        let data = [0.0, 0.0, 1.0, 1.0, 0.9, -2.0];
        let stats = Decoder::new()
            .decode(OutputLayout::EndToEnd, &[1, 1, 6], &data, 0.25, &mut out)
            .unwrap();
        assert_eq!(stats.bad_class, 1);
    }

    /// Item 10 of issue 14: class ids of 2^31 and more, fractional and NaN class ids are
    /// dropped (not wrapped to 0), inverted boxes dropped, scores above 1 clamped, each counted.
    #[test]
    fn out_of_range_classes_inverted_boxes_and_scores_above_one() {
        #[rustfmt::skip]
        let data = [
            0.0, 0.0, 10.0, 10.0, 0.9, 2147483648.0,   // class 2^31
            0.0, 0.0, 10.0, 10.0, 0.9, 4.0e9,          // beyond u32
            0.0, 0.0, 10.0, 10.0, 0.9, 2.5,            // not an integer
            0.0, 0.0, 10.0, 10.0, 0.9, f32::NAN,       // NaN class
            10.0, 0.0, 0.0, 10.0, 0.9, 1.0,            // inverted x
            0.0, 10.0, 10.0, 0.0, 0.9, 1.0,            // inverted y
            0.0, 0.0, 10.0, 10.0, 1e30, 3.0,           // score 1e30: kept at 1
            0.0, 0.0, 0.0, 10.0, 0.8, 99999.0,         // zero width, largest class: kept
        ];
        let mut out = Vec::new();
        let stats = Decoder::new()
            .decode(OutputLayout::EndToEnd, &[1, 8, 6], &data, 0.25, &mut out)
            .unwrap();
        assert_eq!(
            (
                stats.bad_class,
                stats.inverted,
                stats.clamped,
                stats.non_finite
            ),
            (4, 2, 1, 0)
        );
        assert_eq!(stats.max_score, 1e30);
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].class_id, out[0].confidence), (3, 1.0));
        assert_eq!(out[1].class_id, 99_999);
        // YOLOv8: a negative width is an inverted box; a score of 7 is clamped.
        #[rustfmt::skip]
        let v8 = [
            10.0, 50.0,
            10.0, 50.0,
            -4.0, 8.0,
            4.0, 8.0,
            0.9, 7.0,
        ];
        let mut out = Vec::new();
        let stats = Decoder::new()
            .decode(OutputLayout::YoloV8, &[1, 5, 2], &v8, 0.25, &mut out)
            .unwrap();
        assert_eq!((stats.inverted, stats.clamped), (1, 1));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].confidence, 1.0);
    }

    #[test]
    fn wrong_data_length_is_an_error() {
        let mut out = Vec::new();
        let err =
            Decoder::new().decode(OutputLayout::YoloV8, &[1, 6, 2], &[0.0; 11], 0.25, &mut out);
        assert!(matches!(
            err,
            Err(DecodeError::SizeMismatch {
                expected: 12,
                actual: 11,
                ..
            })
        ));
    }
}
