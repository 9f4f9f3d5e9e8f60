//! Detection metrics as quality teams quote them, free of GStreamer: per-class precision,
//! recall and F1 at a confidence threshold, AP@0.5 and AP@0.5:0.95 computed the way
//! pycocotools does (greedy matching by score, 101-point interpolated precision), and a
//! confusion matrix with a background row and column.

pub mod coco;
pub mod image;

use crate::analysis::BBox;

/// A ground-truth box of one image (frame).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Truth {
    pub image: u64,
    pub class_id: usize,
    pub bbox: BBox,
}

/// A predicted box of one image (frame).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    pub image: u64,
    pub class_id: usize,
    pub confidence: f32,
    pub bbox: BBox,
}

/// Figures for one class.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassMetrics {
    pub class_id: usize,
    pub truths: usize,
    /// At the class's confidence threshold and IoU 0.5.
    pub true_positives: usize,
    pub false_positives: usize,
    pub false_negatives: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// None when the class has no ground truth (pycocotools' -1).
    pub ap50: Option<f64>,
    pub ap50_95: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub classes: Vec<ClassMetrics>,
    /// Means over classes that have ground truth.
    pub map50: f64,
    pub map50_95: f64,
    /// `confusion[predicted][truth]`, index `num_classes` being background.
    pub confusion: Vec<Vec<u64>>,
}

/// IoU thresholds of AP@0.5:0.95.
pub const COCO_IOUS: [f32; 10] = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95];
/// Detections per image and class that AP considers (pycocotools' maxDets).
pub const MAX_DETECTIONS_PER_IMAGE: usize = 100;

/// Evaluates `predictions` against `truths` for `num_classes` classes; `thresholds[c]` is the
/// confidence a prediction of class c needs to count for P, R, F1 and the confusion matrix
/// (AP uses every prediction).
pub fn evaluate(
    truths: &[Truth],
    predictions: &[Prediction],
    num_classes: usize,
    thresholds: &[f32],
) -> Evaluation {
    let classes: Vec<ClassMetrics> = (0..num_classes)
        .map(|c| {
            let t: Vec<&Truth> = truths.iter().filter(|t| t.class_id == c).collect();
            let p: Vec<&Prediction> = predictions.iter().filter(|p| p.class_id == c).collect();
            class_metrics(c, &t, &p, thresholds.get(c).copied().unwrap_or(0.0))
        })
        .collect();
    let with_truth: Vec<&ClassMetrics> = classes.iter().filter(|c| c.ap50.is_some()).collect();
    let mean = |f: fn(&ClassMetrics) -> f64| {
        if with_truth.is_empty() {
            0.0
        } else {
            with_truth.iter().map(|c| f(c)).sum::<f64>() / with_truth.len() as f64
        }
    };
    Evaluation {
        map50: mean(|c| c.ap50.unwrap_or(0.0)),
        map50_95: mean(|c| c.ap50_95.unwrap_or(0.0)),
        confusion: confusion_matrix(truths, predictions, num_classes, thresholds),
        classes,
    }
}

fn class_metrics(
    class_id: usize,
    truths: &[&Truth],
    predictions: &[&Prediction],
    threshold: f32,
) -> ClassMetrics {
    let kept: Vec<&Prediction> = predictions
        .iter()
        .copied()
        .filter(|p| p.confidence >= threshold)
        .collect();
    let matched = match_greedy(truths, &kept, 0.5);
    let tp = matched.iter().filter(|m| **m).count();
    let fp = kept.len() - tp;
    let fn_ = truths.len() - tp;
    let precision = ratio(tp, tp + fp);
    let recall = ratio(tp, truths.len());
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    let (ap50, ap50_95) = if truths.is_empty() {
        (None, None)
    } else {
        let aps: Vec<f64> = COCO_IOUS
            .iter()
            .map(|&iou| average_precision(truths, predictions, iou))
            .collect();
        (
            Some(aps[0]),
            Some(aps.iter().sum::<f64>() / aps.len() as f64),
        )
    };
    ClassMetrics {
        class_id,
        truths: truths.len(),
        true_positives: tp,
        false_positives: fp,
        false_negatives: fn_,
        precision,
        recall,
        f1,
        ap50,
        ap50_95,
    }
}

fn ratio(numerator: usize, denominator: usize) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        numerator as f64 / denominator as f64
    }
}

/// Orders predictions by descending confidence; ties keep their input order (pycocotools
/// uses a stable sort too).
fn by_confidence<'a>(predictions: &[&'a Prediction]) -> Vec<&'a Prediction> {
    let mut sorted = predictions.to_vec();
    sorted.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    sorted
}

/// Greedy matching per image as pycocotools does: predictions by descending confidence each
/// take the unmatched truth of highest IoU at or above `iou_threshold`. Returns, for each
/// prediction in `predictions` order, whether it matched.
fn match_greedy(truths: &[&Truth], predictions: &[&Prediction], iou_threshold: f32) -> Vec<bool> {
    let mut order: Vec<usize> = (0..predictions.len()).collect();
    order.sort_by(|&a, &b| {
        predictions[b]
            .confidence
            .total_cmp(&predictions[a].confidence)
    });
    let mut taken = vec![false; truths.len()];
    let mut matched = vec![false; predictions.len()];
    for i in order {
        let p = predictions[i];
        let mut best: Option<(usize, f32)> = None;
        for (j, t) in truths.iter().enumerate() {
            if taken[j] || t.image != p.image {
                continue;
            }
            let iou = t.bbox.iou(&p.bbox);
            if iou >= iou_threshold && best.is_none_or(|(_, b)| iou > b) {
                best = Some((j, iou));
            }
        }
        if let Some((j, _)) = best {
            taken[j] = true;
            matched[i] = true;
        }
    }
    matched
}

/// COCO average precision at one IoU threshold: top-100 predictions per image, greedy
/// matching, precision made monotone, sampled at 101 recall points.
fn average_precision(truths: &[&Truth], predictions: &[&Prediction], iou_threshold: f32) -> f64 {
    let mut per_image: std::collections::BTreeMap<u64, Vec<&Prediction>> = Default::default();
    for p in by_confidence(predictions) {
        let list = per_image.entry(p.image).or_default();
        if list.len() < MAX_DETECTIONS_PER_IMAGE {
            list.push(p);
        }
    }
    let considered: Vec<&Prediction> = per_image.into_values().flatten().collect();
    let matched = match_greedy(truths, &considered, iou_threshold);
    let mut scored: Vec<(f32, bool)> = considered
        .iter()
        .zip(&matched)
        .map(|(p, &m)| (p.confidence, m))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    precision_recall_ap(&scored, truths.len())
}

/// The area under the interpolated precision-recall curve, 101 recall points.
fn precision_recall_ap(scored: &[(f32, bool)], num_truths: usize) -> f64 {
    if num_truths == 0 {
        return 0.0;
    }
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut recall = Vec::with_capacity(scored.len());
    let mut precision = Vec::with_capacity(scored.len());
    for &(_, is_tp) in scored {
        if is_tp {
            tp += 1
        } else {
            fp += 1
        }
        recall.push(tp as f64 / num_truths as f64);
        precision.push(tp as f64 / (tp + fp) as f64);
    }
    for i in (1..precision.len()).rev() {
        precision[i - 1] = precision[i - 1].max(precision[i]);
    }
    let total: f64 = (0..=100)
        .map(|k| {
            let r = k as f64 / 100.0;
            let i = recall.partition_point(|&x| x < r);
            precision.get(i).copied().unwrap_or(0.0)
        })
        .sum();
    total / 101.0
}

/// The precision-recall curve of a class at IoU 0.5 (for plots): (recall, precision) after
/// each prediction in descending confidence, with that prediction's confidence.
pub fn pr_curve(
    truths: &[Truth],
    predictions: &[Prediction],
    class_id: usize,
) -> Vec<(f64, f64, f32)> {
    let t: Vec<&Truth> = truths.iter().filter(|t| t.class_id == class_id).collect();
    let p: Vec<&Prediction> = by_confidence(
        &predictions
            .iter()
            .filter(|p| p.class_id == class_id)
            .collect::<Vec<_>>(),
    );
    let matched = match_greedy(&t, &p, 0.5);
    let (mut tp, mut fp) = (0usize, 0usize);
    p.iter()
        .zip(matched)
        .map(|(pred, m)| {
            if m {
                tp += 1
            } else {
                fp += 1
            }
            (
                ratio(tp, t.len()),
                tp as f64 / (tp + fp) as f64,
                pred.confidence,
            )
        })
        .collect()
}

/// `confusion[predicted][truth]` at IoU 0.5, any class may match any class; index
/// `num_classes` is background (missed truths in its row, spurious predictions in its column).
fn confusion_matrix(
    truths: &[Truth],
    predictions: &[Prediction],
    num_classes: usize,
    thresholds: &[f32],
) -> Vec<Vec<u64>> {
    let background = num_classes;
    let mut matrix = vec![vec![0u64; num_classes + 1]; num_classes + 1];
    let kept: Vec<&Prediction> = predictions
        .iter()
        .filter(|p| {
            p.class_id < num_classes
                && p.confidence >= thresholds.get(p.class_id).copied().unwrap_or(0.0)
        })
        .collect();
    let sorted = by_confidence(&kept);
    let mut taken = vec![false; truths.len()];
    for p in sorted {
        let best = truths
            .iter()
            .enumerate()
            .filter(|(j, t)| !taken[*j] && t.image == p.image)
            .map(|(j, t)| (j, t.bbox.iou(&p.bbox)))
            .filter(|&(_, iou)| iou >= 0.5)
            .max_by(|a, b| a.1.total_cmp(&b.1));
        match best {
            Some((j, _)) => {
                taken[j] = true;
                matrix[p.class_id][truths[j].class_id.min(background)] += 1;
            }
            None => matrix[p.class_id][background] += 1,
        }
    }
    for (j, t) in truths.iter().enumerate() {
        if !taken[j] {
            matrix[background][t.class_id.min(background)] += 1;
        }
    }
    matrix
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(x: f32, y: f32, s: f32) -> BBox {
        BBox {
            x1: x,
            y1: y,
            x2: x + s,
            y2: y + s,
        }
    }

    fn truth(image: u64, class_id: usize, x: f32) -> Truth {
        Truth {
            image,
            class_id,
            bbox: b(x, 0.0, 10.0),
        }
    }

    fn pred(image: u64, class_id: usize, confidence: f32, x: f32) -> Prediction {
        Prediction {
            image,
            class_id,
            confidence,
            bbox: b(x, 0.0, 10.0),
        }
    }

    #[test]
    fn perfect_predictions_score_one() {
        let t = [truth(0, 0, 0.0), truth(1, 0, 20.0), truth(1, 1, 50.0)];
        let p = [
            pred(0, 0, 0.9, 0.0),
            pred(1, 0, 0.8, 20.0),
            pred(1, 1, 0.7, 50.0),
        ];
        let e = evaluate(&t, &p, 2, &[0.25, 0.25]);
        assert_eq!(e.map50, 1.0);
        assert_eq!(e.map50_95, 1.0);
        assert_eq!(
            (e.classes[0].precision, e.classes[0].recall, e.classes[0].f1),
            (1.0, 1.0, 1.0)
        );
        assert_eq!(
            e.confusion,
            vec![vec![2, 0, 0], vec![0, 1, 0], vec![0, 0, 0]]
        );
    }

    #[test]
    fn misses_false_alarms_and_thresholds() {
        // Class 0: two truths; one found at 0.9, one found only at 0.2; a false alarm at 0.6.
        let t = [truth(0, 0, 0.0), truth(1, 0, 0.0)];
        let p = [
            pred(0, 0, 0.9, 0.0),
            pred(1, 0, 0.2, 0.0),
            pred(2, 0, 0.6, 0.0),
        ];
        let e = evaluate(&t, &p, 1, &[0.5]);
        let c = &e.classes[0];
        assert_eq!(
            (c.true_positives, c.false_positives, c.false_negatives),
            (1, 1, 1)
        );
        assert_eq!((c.precision, c.recall), (0.5, 0.5));
        // PR points: (0.5, 1.0) (0.5, 0.5) (1.0, 0.667): interpolated precision 1.0 up to
        // recall 0.5 (51 points), 0.667 from 0.51 to 1.0 (50 points).
        let expected = (51.0 * 1.0 + 50.0 * (2.0 / 3.0)) / 101.0;
        assert!((c.ap50.unwrap() - expected).abs() < 1e-9, "{:?}", c.ap50);
        assert_eq!(e.confusion, vec![vec![1, 1], vec![1, 0]]);
    }

    #[test]
    fn a_class_without_truth_is_left_out_of_the_mean() {
        let t = [truth(0, 0, 0.0)];
        let p = [pred(0, 0, 0.9, 0.0), pred(0, 1, 0.9, 40.0)];
        let e = evaluate(&t, &p, 2, &[0.25, 0.25]);
        assert_eq!(e.classes[1].ap50, None);
        assert_eq!(e.map50, 1.0);
        assert_eq!(
            e.confusion[1][2], 1,
            "class-1 false alarm in the background column"
        );
    }

    #[test]
    fn localisation_matters_for_ap50_95() {
        // A box shifted by 2 px on 10: IoU 8/12 = 0.667, a hit at 0.5..0.65, a miss above.
        let t = [truth(0, 0, 0.0)];
        let p = [pred(0, 0, 0.9, 2.0)];
        let e = evaluate(&t, &p, 1, &[0.25]);
        assert_eq!(e.classes[0].ap50, Some(1.0));
        assert!((e.classes[0].ap50_95.unwrap() - 0.4).abs() < 1e-9);
    }

    #[test]
    fn class_confusion_lands_off_the_diagonal() {
        let t = [truth(0, 0, 0.0)];
        let p = [pred(0, 1, 0.9, 0.0)];
        let e = evaluate(&t, &p, 2, &[0.25, 0.25]);
        assert_eq!(e.confusion[1][0], 1);
        assert_eq!(e.classes[0].recall, 0.0);
    }

    #[test]
    fn one_prediction_matches_one_truth() {
        let t = [truth(0, 0, 0.0)];
        let p = [pred(0, 0, 0.9, 0.0), pred(0, 0, 0.8, 0.0)];
        let c = &evaluate(&t, &p, 1, &[0.25]).classes[0];
        assert_eq!((c.true_positives, c.false_positives), (1, 1));
        let curve = pr_curve(&t, &p, 0);
        assert_eq!(curve, vec![(1.0, 1.0, 0.9), (1.0, 0.5, 0.8)]);
    }
}

/// A confidence threshold chosen by [`sweep_threshold`], with what it achieves at IoU 0.5.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SweepPoint {
    pub threshold: f32,
    pub precision: f64,
    pub recall: f64,
}

/// The confidence threshold of a class that reaches `target_recall` with the best precision
/// (the highest such threshold on ties). None when no threshold reaches the target.
///
/// Greedy matching in descending confidence decides each prediction independently of the
/// ones below it, so precision and recall at threshold t are those of the curve's prefix
/// ending at the last prediction scoring t.
pub fn sweep_threshold(
    truths: &[Truth],
    predictions: &[Prediction],
    class_id: usize,
    target_recall: f64,
) -> Option<SweepPoint> {
    let curve = pr_curve(truths, predictions, class_id);
    let mut best: Option<SweepPoint> = None;
    for (i, &(recall, precision, confidence)) in curve.iter().enumerate() {
        let end_of_tie = curve.get(i + 1).is_none_or(|next| next.2 != confidence);
        if !end_of_tie || recall < target_recall {
            continue;
        }
        if best.is_none_or(|b| precision > b.precision) {
            best = Some(SweepPoint {
                threshold: confidence,
                precision,
                recall,
            });
        }
    }
    best
}

/// The threshold of a class's highest recall (its lowest-scoring true positive), with the best
/// precision among thresholds reaching that recall: what a sweep falls back to when the
/// target recall cannot be reached. None when the class has no true positive at all.
pub fn max_recall_threshold(
    truths: &[Truth],
    predictions: &[Prediction],
    class_id: usize,
) -> Option<SweepPoint> {
    let curve = pr_curve(truths, predictions, class_id);
    let top = curve.iter().map(|p| p.0).fold(0.0, f64::max);
    if top <= 0.0 {
        return None;
    }
    sweep_threshold(truths, predictions, class_id, top)
}

#[cfg(test)]
mod sweep_tests {
    use super::*;

    fn b(x: f32) -> BBox {
        BBox {
            x1: x,
            y1: 0.0,
            x2: x + 10.0,
            y2: 10.0,
        }
    }

    /// `n` truths of class 0, one an image, all at the same box.
    fn truths(n: u64) -> Vec<Truth> {
        (0..n)
            .map(|i| Truth {
                image: i,
                class_id: 0,
                bbox: b(0.0),
            })
            .collect()
    }

    /// A class-0 prediction on `image`: on the truth's box when `hit`, elsewhere otherwise.
    fn p(image: u64, confidence: f32, hit: bool) -> Prediction {
        Prediction {
            image,
            class_id: 0,
            confidence,
            bbox: b(if hit { 0.0 } else { 50.0 }),
        }
    }

    #[test]
    fn the_sweep_finds_the_cheapest_threshold_for_the_recall() {
        // Four truths. Predictions by confidence: hit .9, false .8, hit .7, hit .6, false .5, hit .4.
        let truths = truths(4);
        let predictions = [
            p(0, 0.9, true),
            p(9, 0.8, false),
            p(1, 0.7, true),
            p(2, 0.6, true),
            p(9, 0.5, false),
            p(3, 0.4, true),
        ];
        // Recall ≥ 0.5 from 0.7 down; the best precision there is at 0.6 (3 of 4).
        let half = sweep_threshold(&truths, &predictions, 0, 0.5).unwrap();
        assert_eq!(half.threshold, 0.6);
        assert_eq!((half.precision, half.recall), (0.75, 0.75));
        let all = sweep_threshold(&truths, &predictions, 0, 1.0).unwrap();
        assert_eq!((all.threshold, all.recall), (0.4, 1.0));
        assert!((all.precision - 4.0 / 6.0).abs() < 1e-9);
        assert_eq!(sweep_threshold(&truths[..1], &[], 0, 0.9), None);
    }

    #[test]
    fn an_unreachable_recall_falls_back_to_the_highest_reached() {
        // Three of five truths are ever found: hit .9, false .8, hit .3, false .2, hit .1.
        let truths = truths(5);
        let predictions = [
            p(0, 0.9, true),
            p(9, 0.8, false),
            p(1, 0.3, true),
            p(9, 0.2, false),
            p(2, 0.1, true),
        ];
        assert_eq!(sweep_threshold(&truths, &predictions, 0, 0.99), None);
        let top = max_recall_threshold(&truths, &predictions, 0).unwrap();
        assert_eq!(top.threshold, 0.1);
        assert!((top.recall - 0.6).abs() < 1e-9);
        assert!((top.precision - 0.6).abs() < 1e-9);
        assert_eq!(max_recall_threshold(&truths, &[p(9, 0.5, false)], 0), None);
    }

    #[test]
    fn tied_confidences_are_taken_together() {
        let truths = [Truth {
            image: 0,
            class_id: 0,
            bbox: b(0.0),
        }];
        let predictions = [
            Prediction {
                image: 1,
                class_id: 0,
                confidence: 0.5,
                bbox: b(0.0),
            },
            Prediction {
                image: 0,
                class_id: 0,
                confidence: 0.5,
                bbox: b(0.0),
            },
        ];
        let point = sweep_threshold(&truths, &predictions, 0, 1.0).unwrap();
        assert_eq!((point.threshold, point.precision), (0.5, 0.5));
    }
}
