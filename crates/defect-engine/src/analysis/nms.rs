//! Class-wise greedy non-maximum suppression, as the Ultralytics predictor does it
//! (boxes of different classes never suppress each other).

use super::Detection;

/// At most this many candidates enter NMS, the highest-scoring first (Ultralytics' `max_nms`):
/// it bounds the quadratic cost when a model floods the output with low-quality boxes.
pub const MAX_NMS_CANDIDATES: usize = 30_000;

/// What NMS reads of a candidate: its detection (a segmentation candidate also carries its
/// anchor, to find its mask coefficients after NMS).
pub trait Scored: Copy {
    fn detection(&self) -> &Detection;
}

impl Scored for Detection {
    fn detection(&self) -> &Detection {
        self
    }
}

/// Suppresses, in place, every detection that overlaps a higher-scoring detection of the
/// same class by more than `iou_threshold`, then keeps at most `max_detections`.
/// The result is sorted by descending confidence.
pub fn nms_classwise<T: Scored>(
    detections: &mut Vec<T>,
    iou_threshold: f32,
    max_detections: usize,
) {
    sort_by_confidence(detections);
    detections.truncate(MAX_NMS_CANDIDATES);

    let mut kept = 0;
    for i in 0..detections.len() {
        let candidate = detections[i];
        let c = candidate.detection();
        let suppressed = detections[..kept].iter().any(|winner| {
            let w = winner.detection();
            w.class_id == c.class_id && w.bbox.iou(&c.bbox) > iou_threshold
        });
        if !suppressed {
            detections[kept] = candidate;
            kept += 1;
            if kept == max_detections {
                break;
            }
        }
    }
    detections.truncate(kept);
}

/// Sorts by descending confidence; the sort is stable so that equal scores keep model order.
pub fn sort_by_confidence<T: Scored>(detections: &mut [T]) {
    detections.sort_by(|a, b| {
        b.detection()
            .confidence
            .total_cmp(&a.detection().confidence)
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::BBox;

    fn det(class_id: usize, confidence: f32, x1: f32, y1: f32, x2: f32, y2: f32) -> Detection {
        Detection {
            class_id,
            confidence,
            bbox: BBox { x1, y1, x2, y2 },
        }
    }

    #[test]
    fn overlapping_boxes_of_one_class_keep_the_best() {
        let mut d = vec![
            det(0, 0.6, 0.0, 0.0, 10.0, 10.0),
            det(0, 0.9, 1.0, 1.0, 11.0, 11.0),
            det(0, 0.5, 50.0, 50.0, 60.0, 60.0),
        ];
        nms_classwise(&mut d, 0.45, 300);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].confidence, 0.9);
        assert_eq!(d[1].confidence, 0.5);
    }

    #[test]
    fn overlapping_boxes_of_different_classes_both_stay() {
        let mut d = vec![
            det(0, 0.9, 0.0, 0.0, 10.0, 10.0),
            det(1, 0.8, 0.0, 0.0, 10.0, 10.0),
        ];
        nms_classwise(&mut d, 0.45, 300);
        assert_eq!(d.len(), 2);
    }

    #[test]
    fn iou_exactly_at_threshold_is_kept() {
        // IoU of these two boxes is exactly 1/3.
        let mut d = vec![
            det(0, 0.9, 0.0, 0.0, 10.0, 10.0),
            det(0, 0.8, 5.0, 0.0, 15.0, 10.0),
        ];
        nms_classwise(&mut d, 1.0 / 3.0, 300);
        assert_eq!(d.len(), 2);
        nms_classwise(&mut d, 0.3, 300);
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn max_detections_caps_the_output() {
        let mut d: Vec<_> = (0..10)
            .map(|i| {
                det(
                    0,
                    i as f32 / 10.0,
                    i as f32 * 20.0,
                    0.0,
                    i as f32 * 20.0 + 10.0,
                    10.0,
                )
            })
            .collect();
        nms_classwise(&mut d, 0.45, 3);
        assert_eq!(d.len(), 3);
        assert_eq!(d[0].confidence, 0.9);
    }

    #[test]
    fn empty_input_stays_empty() {
        let mut d: Vec<Detection> = Vec::new();
        nms_classwise(&mut d, 0.45, 300);
        assert!(d.is_empty());
    }
}
