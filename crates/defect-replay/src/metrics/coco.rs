// SPDX-License-Identifier: MIT OR Apache-2.0
//! COCO average precision as pycocotools' `COCOeval` computes it (`evaluateImg` and
//! `accumulate`), for any IoU (mask AP uses [`crate::analysis::rle::Rle::iou`]):
//!
//! - per image and class, detections by descending score (ties in input order), at most 100;
//!   truths that are crowd regions, or outside the area range, are ignored, and sorted last;
//! - at each IoU threshold (0.5, 0.55, ... 0.95) each detection takes the best truth at or
//!   above it not yet taken (a crowd region may be taken again), preferring a truth that is
//!   not ignored; a detection matched to an ignored truth, or unmatched and outside the area
//!   range, counts neither way;
//! - per class, the images' detections by descending score (images in id order, ties kept),
//!   precision made monotone and read at the 101 recall points 0, 0.01, ... 1 (numpy's
//!   `linspace` values, so that a recall on a point is the point).
//!
//! One difference on purpose: pycocotools marks a matched detection with its truth's
//! annotation id, so a truth of id 0 matches nothing there; here it matches.

use std::collections::BTreeMap;

/// The area ranges of COCO's summary: all, small (< 32²), medium (32² to 96²), large.
pub const AREA_RANGES: [(&str, f64, f64); 4] = [
    ("all", 0.0, 1e10),
    ("small", 0.0, 1024.0),
    ("medium", 1024.0, 9216.0),
    ("large", 9216.0, 1e10),
];

/// Detections per image and class that AP considers (pycocotools' last `maxDets`).
pub const MAX_DETECTIONS: usize = 100;

/// pycocotools' IoU thresholds: `np.linspace(.5, .95, 10)`.
pub fn iou_thresholds() -> [f64; 10] {
    linspace(0.5, 0.95)
}

/// pycocotools' recall points: `np.linspace(0, 1, 101)`.
pub fn recall_thresholds() -> [f64; 101] {
    linspace(0.0, 1.0)
}

/// numpy's `linspace(start, stop, N)`: start + k * step, the last exactly `stop`.
fn linspace<const N: usize>(start: f64, stop: f64) -> [f64; N] {
    let step = (stop - start) / (N - 1) as f64;
    let mut out = [0.0; N];
    for (k, v) in out.iter_mut().enumerate() {
        *v = k as f64 * step + start;
    }
    out[N - 1] = stop;
    out
}

/// A truth instance (an annotation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Instance {
    pub image: i64,
    pub class_id: usize,
    /// A crowd region (COCO `iscrowd`): ignored; detections inside it count neither way.
    pub crowd: bool,
    /// COCO `area`, what the area ranges use.
    pub area: f64,
}

/// A detection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    pub image: i64,
    pub class_id: usize,
    pub score: f64,
    /// What the area ranges use (mask AP: the mask's pixels).
    pub area: f64,
}

/// AP of one class.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassAp {
    pub class_id: usize,
    /// Truths that are not crowd regions.
    pub truths: usize,
    /// AP at each of [`iou_thresholds`], area range all.
    pub ap: [f64; 10],
    /// AP@[.5:.95] of the small, medium and large ranges; None where the class has no truth
    /// in the range (pycocotools' -1).
    pub by_area: [Option<f64>; 3],
}

impl ClassAp {
    pub fn ap50(&self) -> f64 {
        self.ap[0]
    }
    pub fn ap75(&self) -> f64 {
        self.ap[5]
    }
    pub fn ap50_95(&self) -> f64 {
        self.ap.iter().sum::<f64>() / self.ap.len() as f64
    }
}

/// COCO AP of every class.
#[derive(Debug, Clone, PartialEq)]
pub struct CocoAp {
    /// Per class, None for a class without truth (other than crowd regions).
    pub classes: Vec<Option<ClassAp>>,
}

impl CocoAp {
    fn mean(&self, f: impl Fn(&ClassAp) -> Option<f64>) -> Option<f64> {
        let values: Vec<f64> = self.classes.iter().flatten().filter_map(f).collect();
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    }
    /// Means over the classes with truth (pycocotools' `stats[1]`, `[2]`, `[0]`); 0 without.
    pub fn map50(&self) -> f64 {
        self.mean(|c| Some(c.ap50())).unwrap_or(0.0)
    }
    pub fn map75(&self) -> f64 {
        self.mean(|c| Some(c.ap75())).unwrap_or(0.0)
    }
    pub fn map50_95(&self) -> f64 {
        self.mean(|c| Some(c.ap50_95())).unwrap_or(0.0)
    }
    /// AP@[.5:.95] of the small, medium and large ranges (`stats[3..6]`; None: no truth).
    pub fn map_by_area(&self) -> [Option<f64>; 3] {
        [0, 1, 2].map(|a| self.mean(|c| c.by_area[a]))
    }
}

/// One image's matches at every IoU threshold (pycocotools' `evaluateImg` result).
struct ImageEval {
    scores: Vec<f64>,
    /// [threshold][detection]: matched a truth.
    matched: Vec<Vec<bool>>,
    /// [threshold][detection]: counts neither way.
    ignored: Vec<Vec<bool>>,
    /// Truths that count.
    counted_truths: usize,
}

/// One image of a class: its truth indices, its detection indices (sorted, cut) and their IoUs
/// (`[detection][truth]`).
type Prepared = (Vec<usize>, Vec<usize>, Vec<Vec<f64>>);

/// Evaluates `detections` against `truths`; `iou(d, t)` is the IoU of detection index `d` and
/// truth index `t` (for a crowd truth, over the detection's area), called only for pairs of
/// one image and class.
pub fn evaluate(
    truths: &[Instance],
    detections: &[Detection],
    num_classes: usize,
    iou: &dyn Fn(usize, usize) -> f64,
) -> CocoAp {
    let thresholds = iou_thresholds();
    let mut classes = Vec::with_capacity(num_classes);
    for class_id in 0..num_classes {
        // Per image (in id order): truth and detection indices in input order.
        let mut images: BTreeMap<i64, (Vec<usize>, Vec<usize>)> = BTreeMap::new();
        for (t, truth) in truths.iter().enumerate() {
            if truth.class_id == class_id {
                images.entry(truth.image).or_default().0.push(t);
            }
        }
        for (d, detection) in detections.iter().enumerate() {
            if detection.class_id == class_id {
                images.entry(detection.image).or_default().1.push(d);
            }
        }
        // Per image: detections sorted and cut, and their IoU with each truth (input order).
        let prepared: Vec<Prepared> = images
            .into_values()
            .map(|(ts, mut ds)| {
                ds.sort_by(|&a, &b| detections[b].score.total_cmp(&detections[a].score));
                ds.truncate(MAX_DETECTIONS);
                let ious = ds
                    .iter()
                    .map(|&d| ts.iter().map(|&t| iou(d, t)).collect())
                    .collect();
                (ts, ds, ious)
            })
            .collect();
        let mut by_range = [None; 4];
        for (a, &(_, lo, hi)) in AREA_RANGES.iter().enumerate() {
            let evals: Vec<ImageEval> = prepared
                .iter()
                .map(|(ts, ds, ious)| {
                    evaluate_image(truths, detections, ts, ds, ious, (lo, hi), &thresholds)
                })
                .collect();
            by_range[a] = accumulate(&evals);
        }
        let truths_counted = truths
            .iter()
            .filter(|t| t.class_id == class_id && !t.crowd)
            .count();
        classes.push(by_range[0].map(|ap| ClassAp {
            class_id,
            truths: truths_counted,
            ap,
            by_area: [1, 2, 3].map(|a| by_range[a].map(|ap| ap.iter().sum::<f64>() / 10.0)),
        }));
    }
    CocoAp { classes }
}

fn evaluate_image(
    truths: &[Instance],
    detections: &[Detection],
    ts: &[usize],
    ds: &[usize],
    ious: &[Vec<f64>],
    (lo, hi): (f64, f64),
    thresholds: &[f64],
) -> ImageEval {
    let ignored_truth: Vec<bool> = ts
        .iter()
        .map(|&t| truths[t].crowd || truths[t].area < lo || truths[t].area > hi)
        .collect();
    // Truths that count first, each group in input order (a stable sort).
    let mut order: Vec<usize> = (0..ts.len()).collect();
    order.sort_by_key(|&g| ignored_truth[g]);
    let mut matched = vec![vec![false; ds.len()]; thresholds.len()];
    let mut ignored = vec![vec![false; ds.len()]; thresholds.len()];
    for (k, &threshold) in thresholds.iter().enumerate() {
        let mut taken = vec![false; ts.len()];
        for d in 0..ds.len() {
            let mut best_iou = threshold.min(1.0 - 1e-10);
            let mut best: Option<usize> = None;
            for &g in &order {
                let crowd = truths[ts[g]].crowd;
                if taken[g] && !crowd {
                    continue;
                }
                if best.is_some_and(|m| !ignored_truth[m]) && ignored_truth[g] {
                    break;
                }
                if ious[d][g] < best_iou {
                    continue;
                }
                best_iou = ious[d][g];
                best = Some(g);
            }
            if let Some(g) = best {
                ignored[k][d] = ignored_truth[g];
                matched[k][d] = true;
                taken[g] = true;
            }
        }
        for (d, &det) in ds.iter().enumerate() {
            let area = detections[det].area;
            if !matched[k][d] && (area < lo || area > hi) {
                ignored[k][d] = true;
            }
        }
    }
    ImageEval {
        scores: ds.iter().map(|&d| detections[d].score).collect(),
        matched,
        ignored,
        counted_truths: ignored_truth.iter().filter(|i| !**i).count(),
    }
}

/// AP at each threshold over the images (pycocotools' `accumulate`); None without a truth
/// that counts.
fn accumulate(evals: &[ImageEval]) -> Option<[f64; 10]> {
    let counted: usize = evals.iter().map(|e| e.counted_truths).sum();
    if counted == 0 {
        return None;
    }
    // (score, image, detection), by descending score, ties in image then detection order.
    let mut all: Vec<(f64, usize, usize)> = evals
        .iter()
        .enumerate()
        .flat_map(|(i, e)| e.scores.iter().enumerate().map(move |(d, &s)| (s, i, d)))
        .collect();
    all.sort_by(|a, b| b.0.total_cmp(&a.0));
    let recalls = recall_thresholds();
    let mut out = [0.0; 10];
    for (k, ap) in out.iter_mut().enumerate() {
        let (mut tp, mut fp) = (0.0f64, 0.0f64);
        let mut recall = Vec::with_capacity(all.len());
        let mut precision = Vec::with_capacity(all.len());
        for &(_, i, d) in &all {
            if evals[i].ignored[k][d] {
                // Neither: the cumulative sums stay, but the point is still on the curve.
            } else if evals[i].matched[k][d] {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            recall.push(tp / counted as f64);
            precision.push(tp / (fp + tp + f64::EPSILON));
        }
        for i in (1..precision.len()).rev() {
            if precision[i] > precision[i - 1] {
                precision[i - 1] = precision[i];
            }
        }
        let sum: f64 = recalls
            .iter()
            .map(|&r| {
                let i = recall.partition_point(|&x| x < r);
                precision.get(i).copied().unwrap_or(0.0)
            })
            .sum();
        *ap = sum / recalls.len() as f64;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn truth(image: i64, class_id: usize, crowd: bool) -> Instance {
        Instance {
            image,
            class_id,
            crowd,
            area: 100.0,
        }
    }

    fn det(image: i64, class_id: usize, score: f64) -> Detection {
        Detection {
            image,
            class_id,
            score,
            area: 100.0,
        }
    }

    #[test]
    fn thresholds_are_numpys() {
        let r = recall_thresholds();
        assert_eq!(r[35], 35.0 * 0.01);
        assert_ne!(r[35], 0.35, "numpy's 0.35 is 35 * 0.01");
        assert_eq!(r[100], 1.0);
        let t = iou_thresholds();
        assert_eq!((t[0], t[5], t[9]), (0.5, 0.75, 0.95));
    }

    /// Two truths; hits at 0.9 and 0.5, a false alarm at 0.7; IoUs given by a table.
    #[test]
    fn greedy_matching_and_interpolated_precision() {
        let truths = [truth(1, 0, false), truth(2, 0, false)];
        let dets = [det(1, 0, 0.9), det(2, 0, 0.7), det(2, 0, 0.5)];
        let table = [[0.8, 0.0], [0.0, 0.3], [0.0, 0.6]];
        let ap = evaluate(&truths, &dets, 1, &|d, t| table[d][t]);
        let c = ap.classes[0].as_ref().unwrap();
        // Points: (0.5, 1), (0.5, 0.5), (1, 0.667): 51 points at 1, 50 at 2/3.
        let expected = (51.0 + 50.0 * (2.0 / (3.0 + f64::EPSILON))) / 101.0;
        assert!((c.ap50() - expected).abs() < 1e-12, "{}", c.ap50());
        // At 0.65 the third no longer matches: recall 0.5 at precision 1.
        assert!((c.ap[3] - 51.0 / 101.0).abs() < 1e-12);
        assert_eq!(c.ap[9], 0.0);
    }

    /// A detection inside a crowd region counts neither way; one crowd region takes several.
    #[test]
    fn crowd_regions_are_ignored() {
        let truths = [truth(1, 0, false), truth(1, 0, true)];
        let dets = [det(1, 0, 0.9), det(1, 0, 0.8), det(1, 0, 0.7)];
        let table = [[0.9, 0.0], [0.0, 0.9], [0.0, 0.9]];
        let c = evaluate(&truths, &dets, 1, &|d, t| table[d][t]).classes[0]
            .clone()
            .unwrap();
        // pycocotools' precision is tp / (tp + fp + eps).
        assert!((c.ap50() - 1.0).abs() < 1e-12, "{}", c.ap50());
        assert_eq!(c.truths, 1);
        // Only a crowd region: no truth that counts, no AP.
        let only = evaluate(&truths[1..], &dets, 1, &|_, _| 0.9);
        assert_eq!(only.classes[0], None);
        assert_eq!(only.map50(), 0.0);
    }

    /// A truth outside the range is ignored; so is an unmatched detection outside it.
    #[test]
    fn area_ranges() {
        let mut small = truth(1, 0, false);
        small.area = 500.0;
        let mut large = truth(1, 0, false);
        large.area = 20_000.0;
        let mut stray = det(1, 0, 0.95);
        stray.area = 30_000.0;
        let dets = [stray, det(1, 0, 0.9)];
        let table = [[0.0, 0.0], [0.97, 0.0]];
        let c = evaluate(&[small, large], &dets, 1, &|d, t| table[d][t]).classes[0]
            .clone()
            .unwrap();
        let [s, m, l] = c.by_area;
        assert!(
            (s.unwrap() - 1.0).abs() < 1e-12,
            "the stray large detection is ignored for small: {s:?}"
        );
        assert_eq!(m, None);
        // For large: the hit is on an ignored truth (neither way), the stray one is false.
        assert_eq!(l, Some(0.0));
    }

    #[test]
    fn at_most_100_detections_per_image_and_class() {
        let truths = [truth(1, 0, false)];
        let mut dets: Vec<Detection> = (0..100).map(|k| det(1, 0, 0.9 - k as f64 * 1e-3)).collect();
        dets.push(det(1, 0, 0.01));
        let hit = dets.len() - 1;
        let ap = evaluate(&truths, &dets, 1, &|d, _| if d == hit { 0.9 } else { 0.0 });
        assert_eq!(ap.classes[0].as_ref().unwrap().ap50(), 0.0);
    }
}
