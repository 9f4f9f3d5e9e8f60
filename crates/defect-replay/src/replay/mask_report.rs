// SPDX-License-Identifier: MIT OR Apache-2.0
//! Mask figures of a segmentation model's replay, free of GStreamer: COCO `segm` AP (as
//! pycocotools' `COCOeval` with `iouType="segm"` computes it, [`crate::metrics::coco`] on
//! [`Rle::iou`]) per class, and how well the element measures defects: each true instance
//! matched to the predicted mask of highest IoU (at least 0.5, any class) among the detections
//! at the operating point, and the median error of the element's area and length against the
//! truth mask's.

use serde_json::json;

use crate::analysis::rle::Rle;
use crate::metrics::coco::{self, CocoAp};

/// A true instance with its pixels, for mask figures.
#[derive(Debug, Clone, PartialEq)]
pub struct MaskTruth {
    /// The image id of the exports (the truth's, else the frame's index).
    pub image: i64,
    pub class_id: usize,
    pub crowd: bool,
    pub area: f64,
    pub rle: Rle,
}

/// A detection with its pixels, for mask figures.
#[derive(Debug, Clone, PartialEq)]
pub struct MaskDetection {
    pub image: i64,
    pub class_id: usize,
    pub confidence: f32,
    pub rle: Rle,
    /// The element's area and length (`defect-size`), else the mask's own area and no length.
    pub area_px: f64,
    pub length_px: Option<f64>,
}

/// Median errors of the element's sizes against the truth's, on matched instances.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SizeErrors {
    /// True instances (not crowd regions) and those matched.
    pub truths: usize,
    pub matched: usize,
    pub area_abs_px: Option<f64>,
    pub area_rel: Option<f64>,
    pub length_abs_px: Option<f64>,
    pub length_rel: Option<f64>,
    /// Medians of the matched truths' own area and length.
    pub truth_area_px: Option<f64>,
    pub truth_length_px: Option<f64>,
}

/// The mask figures of a replay.
#[derive(Debug, Clone, PartialEq)]
pub struct MaskFigures {
    pub ap: CocoAp,
    pub sizes: SizeErrors,
    pub crowd_regions: usize,
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

/// Mask AP of `detections` (every one) against `truths`, and the size errors of the
/// detections at `thresholds[class]` or above.
pub fn score_masks(
    truths: &[MaskTruth],
    detections: &[MaskDetection],
    num_classes: usize,
    thresholds: &[f32],
) -> MaskFigures {
    let instances: Vec<coco::Instance> = truths
        .iter()
        .map(|t| coco::Instance {
            image: t.image,
            class_id: t.class_id,
            crowd: t.crowd,
            area: t.area,
        })
        .collect();
    let dets: Vec<coco::Detection> = detections
        .iter()
        .map(|d| coco::Detection {
            image: d.image,
            class_id: d.class_id,
            score: f64::from(d.confidence),
            // Mask AP's area ranges use the mask's area (as pycocotools does for results
            // without a box).
            area: d.rle.area() as f64,
        })
        .collect();
    let ap = coco::evaluate(&instances, &dets, num_classes, &|d, t| {
        detections[d].rle.iou(&truths[t].rle, truths[t].crowd)
    });
    MaskFigures {
        ap,
        sizes: size_errors(truths, detections, thresholds),
        crowd_regions: truths.iter().filter(|t| t.crowd).count(),
    }
}

fn size_errors(
    truths: &[MaskTruth],
    detections: &[MaskDetection],
    thresholds: &[f32],
) -> SizeErrors {
    let kept: Vec<&MaskDetection> = detections
        .iter()
        .filter(|d| d.confidence >= thresholds.get(d.class_id).copied().unwrap_or(0.0))
        .collect();
    let (mut area_abs, mut area_rel, mut length_abs, mut length_rel) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut truth_area, mut truth_length) = (Vec::new(), Vec::new());
    let mut counted = 0;
    for t in truths.iter().filter(|t| !t.crowd) {
        counted += 1;
        let best = kept
            .iter()
            .filter(|d| d.image == t.image)
            .map(|d| (d, d.rle.iou(&t.rle, false)))
            .filter(|(_, iou)| *iou >= 0.5)
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let Some((d, _)) = best else { continue };
        let mask = t.rle.to_mask();
        let (area, length) = (mask.area() as f64, f64::from(mask.length()));
        truth_area.push(area);
        truth_length.push(length);
        area_abs.push((d.area_px - area).abs());
        area_rel.push((d.area_px - area).abs() / area.max(1.0));
        if let Some(l) = d.length_px {
            length_abs.push((l - length).abs());
            length_rel.push((l - length).abs() / length.max(1.0));
        }
    }
    SizeErrors {
        truths: counted,
        matched: area_abs.len(),
        area_abs_px: median(area_abs),
        area_rel: median(area_rel),
        length_abs_px: median(length_abs),
        length_rel: median(length_rel),
        truth_area_px: median(truth_area),
        truth_length_px: median(truth_length),
    }
}

impl MaskFigures {
    /// The report's mask table: per class mask AP@0.5, AP@0.75, AP@[.5:.95], then the means
    /// and the size errors.
    pub fn table(&self, class_names: &[String]) -> String {
        let mut out = format!(
            "{:<18} {:>6} {:>10} {:>10} {:>13}\n",
            "masks", "truths", "AP50", "AP75", "AP50-95"
        );
        for (class_id, c) in self.ap.classes.iter().enumerate() {
            let name = class_names.get(class_id).map_or("?", String::as_str);
            match c {
                Some(c) => {
                    out += &format!(
                        "{name:<18} {:>6} {:>10.3} {:>10.3} {:>13.3}\n",
                        c.truths,
                        c.ap50(),
                        c.ap75(),
                        c.ap50_95()
                    )
                }
                None => {
                    out += &format!("{name:<18} {:>6} {:>10} {:>10} {:>13}\n", 0, "-", "-", "-")
                }
            }
        }
        out += &format!(
            "mask mAP@0.5 {:.3}   mAP@0.75 {:.3}   mAP@0.5:0.95 {:.3}",
            self.ap.map50(),
            self.ap.map75(),
            self.ap.map50_95()
        );
        let [s, m, l] = self.ap.map_by_area();
        let ap = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
        out += &format!("   (small {}, medium {}, large {})\n", ap(s), ap(m), ap(l));
        if self.crowd_regions > 0 {
            out += &format!(
                "{} crowd regions: ignored, with the detections inside them\n",
                self.crowd_regions
            );
        }
        let s = &self.sizes;
        let px = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1} px"));
        let pc = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.1} %", 100.0 * v));
        out += &format!(
            "sizes: {} of {} instances matched (mask IoU >= 0.5); median error area {} ({}), length {} ({})\n",
            s.matched,
            s.truths,
            px(s.area_abs_px),
            pc(s.area_rel),
            px(s.length_abs_px),
            pc(s.length_rel)
        );
        out
    }

    pub fn to_json(&self, class_names: &[String]) -> serde_json::Value {
        let [small, medium, large] = self.ap.map_by_area();
        let s = &self.sizes;
        json!({
            "classes": self.ap.classes.iter().enumerate().map(|(class_id, c)| json!({
                "class_id": class_id,
                "name": class_names.get(class_id),
                "truths": c.as_ref().map_or(0, |c| c.truths),
                "ap50": c.as_ref().map(|c| c.ap50()),
                "ap75": c.as_ref().map(|c| c.ap75()),
                "ap50_95": c.as_ref().map(|c| c.ap50_95()),
                "ap50_95_small": c.as_ref().and_then(|c| c.by_area[0]),
                "ap50_95_medium": c.as_ref().and_then(|c| c.by_area[1]),
                "ap50_95_large": c.as_ref().and_then(|c| c.by_area[2]),
            })).collect::<Vec<_>>(),
            "map50": self.ap.map50(),
            "map75": self.ap.map75(),
            "map50_95": self.ap.map50_95(),
            "map50_95_small": small,
            "map50_95_medium": medium,
            "map50_95_large": large,
            "crowd_regions": self.crowd_regions,
            "sizes": {
                "truths": s.truths,
                "matched": s.matched,
                "area_median_abs_error_px": s.area_abs_px,
                "area_median_rel_error": s.area_rel,
                "length_median_abs_error_px": s.length_abs_px,
                "length_median_rel_error": s.length_rel,
                "truth_area_median_px": s.truth_area_px,
                "truth_length_median_px": s.truth_length_px,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(x: u32, y: u32, side: u32) -> Rle {
        let mut m = crate::analysis::mask::Mask::empty(x, y, side, side);
        m.data.fill(1);
        Rle::from_mask(&m, 40, 30)
    }

    #[test]
    fn mask_ap_and_sizes() {
        let truths = vec![
            MaskTruth {
                image: 1,
                class_id: 0,
                crowd: false,
                area: 100.0,
                rle: square(0, 0, 10),
            },
            MaskTruth {
                image: 1,
                class_id: 0,
                crowd: true,
                area: 100.0,
                rle: square(20, 0, 10),
            },
        ];
        let det = |x, confidence, area_px| MaskDetection {
            image: 1,
            class_id: 0,
            confidence,
            rle: square(x, 0, 10),
            area_px,
            length_px: Some(11.0),
        };
        // One hit (IoU 0.8 shifted by 1: 90/110 = 0.818), one inside the crowd region.
        let detections = vec![det(1, 0.9, 90.0), det(20, 0.8, 100.0)];
        let f = score_masks(&truths, &detections, 1, &[0.5]);
        let c = f.ap.classes[0].as_ref().unwrap();
        assert!((c.ap50() - 1.0).abs() < 1e-12);
        assert!((c.ap[6] - 1.0).abs() < 1e-12, "IoU 0.818 >= 0.8");
        assert_eq!(c.ap[7], 0.0, "IoU 0.818 < 0.85");
        assert_eq!(f.crowd_regions, 1);
        assert_eq!((f.sizes.truths, f.sizes.matched), (1, 1));
        assert_eq!(f.sizes.area_abs_px, Some(10.0));
        // The truth's length: a 10 px square's long side.
        assert_eq!(f.sizes.length_abs_px, Some(1.0));
        assert!(
            f.table(&["scratch".into()])
                .contains("1 of 1 instances matched")
        );
        // Below the operating point the hit is not measured.
        let f = score_masks(&truths, &detections, 1, &[0.95]);
        assert_eq!(f.sizes.matched, 0);
        assert_eq!(median(vec![3.0, 1.0, 2.0, 10.0]), Some(2.5));
    }
}
