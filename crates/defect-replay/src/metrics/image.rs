// SPDX-License-Identifier: MIT OR Apache-2.0
//! Image-level metrics, free of GStreamer: classification (accuracy, top-k accuracy,
//! per-class precision, recall and F1, confusion matrix, a per-class confidence sweep) and
//! anomaly scores (AUROC, the F1-optimal threshold), for images and for pixels.

/// Scores of positive (defective, anomalous) and negative samples, for [`Scores::auroc`] and
/// [`Scores::best_f1`]. "Positive" is predicted when the score is at or above a threshold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scores {
    pub positive: Vec<f32>,
    pub negative: Vec<f32>,
    sorted: bool,
}

/// A threshold and what it achieves (predicted positive when score >= threshold).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThresholdPoint {
    pub threshold: f32,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub tp: u64,
    pub fp: u64,
    pub fn_: u64,
    pub tn: u64,
}

impl Scores {
    pub fn push(&mut self, score: f32, positive: bool) {
        if positive {
            self.positive.push(score);
        } else {
            self.negative.push(score);
        }
        self.sorted = false;
    }

    fn sort(&mut self) {
        if !self.sorted {
            self.positive.sort_unstable_by(f32::total_cmp);
            self.negative.sort_unstable_by(f32::total_cmp);
            self.sorted = true;
        }
    }

    /// The area under the ROC curve: the chance that a positive scores above a negative,
    /// ties counting half. None when either kind is missing or a score is NaN.
    pub fn auroc(&mut self) -> Option<f64> {
        if self.positive.is_empty()
            || self.negative.is_empty()
            || self
                .positive
                .iter()
                .chain(&self.negative)
                .any(|v| v.is_nan())
        {
            return None;
        }
        self.sort();
        // For each positive, the negatives below it and those equal to it (two pointers over
        // the sorted lists).
        let (mut below, mut upto) = (0usize, 0usize);
        let mut sum = 0f64;
        for &p in &self.positive {
            while below < self.negative.len() && self.negative[below] < p {
                below += 1;
            }
            upto = upto.max(below);
            while upto < self.negative.len() && self.negative[upto] <= p {
                upto += 1;
            }
            sum += below as f64 + 0.5 * (upto - below) as f64;
        }
        Some(sum / (self.positive.len() as f64 * self.negative.len() as f64))
    }

    /// The threshold with the best F1 (the highest such threshold on ties), put halfway
    /// between the lowest score it takes and the next lower score (the score itself when none
    /// is lower). None without positives or with a NaN score.
    pub fn best_f1(&mut self) -> Option<ThresholdPoint> {
        if self.positive.is_empty()
            || self
                .positive
                .iter()
                .chain(&self.negative)
                .any(|v| v.is_nan())
        {
            return None;
        }
        self.sort();
        let (pos, neg) = (&self.positive, &self.negative);
        let (npos, nneg) = (pos.len(), neg.len());
        // Walk distinct scores downwards: at each, everything at or above it is predicted
        // positive.
        let (mut i, mut j) = (npos, nneg); // pos[i..], neg[j..] are predicted positive
        let mut best: Option<(f64, f32, usize, usize)> = None; // f1, score, tp, fp
        loop {
            let next = match (
                i.checked_sub(1).map(|k| pos[k]),
                j.checked_sub(1).map(|k| neg[k]),
            ) {
                (None, None) => break,
                (Some(a), None) => a,
                (None, Some(b)) => b,
                (Some(a), Some(b)) => a.max(b),
            };
            while i > 0 && pos[i - 1] >= next {
                i -= 1;
            }
            while j > 0 && neg[j - 1] >= next {
                j -= 1;
            }
            let (tp, fp) = (npos - i, nneg - j);
            let f1 = 2.0 * tp as f64 / (2 * tp + fp + (npos - tp)) as f64;
            if best.is_none_or(|b| f1 > b.0) {
                best = Some((f1, next, tp, fp));
            }
        }
        let (f1, score, tp, fp) = best?;
        let lower = pos
            .partition_point(|v| *v < score)
            .checked_sub(1)
            .map(|k| pos[k])
            .into_iter()
            .chain(
                neg.partition_point(|v| *v < score)
                    .checked_sub(1)
                    .map(|k| neg[k]),
            )
            .fold(None, |m: Option<f32>, v| Some(m.map_or(v, |m| m.max(v))));
        let threshold = lower.map_or(score, |l| {
            let mid = l + (score - l) / 2.0;
            // Halfway may round onto the lower score: then the score itself.
            if mid > l { mid } else { score }
        });
        Some(ThresholdPoint {
            threshold,
            precision: tp as f64 / (tp + fp).max(1) as f64,
            recall: tp as f64 / npos as f64,
            f1,
            tp: tp as u64,
            fp: fp as u64,
            fn_: (npos - tp) as u64,
            tn: (nneg - fp) as u64,
        })
    }

    /// What a given threshold achieves.
    pub fn at(&mut self, threshold: f32) -> ThresholdPoint {
        self.sort();
        let tp = self.positive.len() - self.positive.partition_point(|v| *v < threshold);
        let fp = self.negative.len() - self.negative.partition_point(|v| *v < threshold);
        let npos = self.positive.len();
        ThresholdPoint {
            threshold,
            precision: tp as f64 / (tp + fp).max(1) as f64,
            recall: tp as f64 / npos.max(1) as f64,
            f1: 2.0 * tp as f64 / (tp + fp + npos).max(1) as f64,
            tp: tp as u64,
            fp: fp as u64,
            fn_: (npos - tp) as u64,
            tn: (self.negative.len() - fp) as u64,
        }
    }
}

/// Precision, recall and F1 of one class of a classifier.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ClassScore {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Images of this class in the truth.
    pub support: u64,
    /// Images predicted as this class (top-1).
    pub predicted: u64,
}

/// A classifier's figures over a set of images.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    pub images: u64,
    /// Top-1 accuracy.
    pub accuracy: f64,
    /// k and the share of images whose class is among the k first (k > 1 only).
    pub top_k: Option<(usize, f64)>,
    pub per_class: Vec<ClassScore>,
    /// `confusion[predicted][truth]` counts (top-1), as the detection report's rows and
    /// columns.
    pub confusion: Vec<Vec<u64>>,
}

/// Scores a classifier: `truth[i]` is image i's class, `ranked[i]` its predicted classes
/// best first (empty: the model gave none, a miss); classes are `0..classes`.
pub fn classification(
    truth: &[usize],
    ranked: &[Vec<usize>],
    classes: usize,
    k: usize,
) -> Classification {
    let mut confusion = vec![vec![0u64; classes]; classes];
    let (mut top1, mut topk) = (0u64, 0u64);
    let mut per_class = vec![ClassScore::default(); classes];
    for (&t, r) in truth.iter().zip(ranked) {
        if t < classes {
            per_class[t].support += 1;
        }
        if let Some(&p) = r.first() {
            if p < classes {
                per_class[p].predicted += 1;
                if t < classes {
                    confusion[p][t] += 1;
                }
            }
            if p == t {
                top1 += 1;
            }
        }
        if r.iter().take(k.max(1)).any(|&p| p == t) {
            topk += 1;
        }
    }
    for (c, s) in per_class.iter_mut().enumerate() {
        let tp = confusion[c][c];
        s.precision = ratio(tp, s.predicted);
        s.recall = ratio(tp, s.support);
        s.f1 = if s.precision + s.recall > 0.0 {
            2.0 * s.precision * s.recall / (s.precision + s.recall)
        } else {
            0.0
        };
    }
    let n = truth.len().min(ranked.len()) as u64;
    Classification {
        images: n,
        accuracy: ratio(top1, n),
        top_k: (k > 1).then(|| (k, ratio(topk, n))),
        per_class,
        confusion,
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// A class's `min-confidence` from a target recall: `top1[i]` is image i's top-1 class and
/// its confidence, `truth[i]` its class. The class's images count as found when the top-1
/// is the class with a confidence at or above the threshold. Returns the highest threshold
/// reaching `target_recall` with the best precision (the highest on ties), else (`reached` false) the
/// threshold of the highest recall reached; None when no image of the class is found at all.
pub fn class_confidence_sweep(
    truth: &[usize],
    top1: &[(usize, f32)],
    class: usize,
    target_recall: f64,
) -> Option<(super::SweepPoint, bool)> {
    let support = truth.iter().filter(|&&t| t == class).count();
    let mut scored: Vec<(f32, bool)> = truth
        .iter()
        .zip(top1)
        .filter(|(_, (p, _))| *p == class)
        .map(|(&t, &(_, c))| (c, t == class))
        .collect();
    if support == 0 || !scored.iter().any(|s| s.1) {
        return None;
    }
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut last_reaching = None;
    let mut highest: Option<super::SweepPoint> = None;
    for (i, &(confidence, correct)) in scored.iter().enumerate() {
        if correct {
            tp += 1;
        } else {
            fp += 1;
        }
        if scored.get(i + 1).is_some_and(|n| n.0 == confidence) {
            continue;
        }
        let point = super::SweepPoint {
            threshold: confidence,
            precision: tp as f64 / (tp + fp) as f64,
            recall: tp as f64 / support as f64,
        };
        // The best precision among thresholds reaching the target (the highest on ties), as
        // the detections' sweep chooses.
        if point.recall >= target_recall
            && last_reaching.is_none_or(|b: super::SweepPoint| point.precision > b.precision)
        {
            last_reaching = Some(point);
        }
        if highest.is_none_or(|h| point.recall > h.recall) {
            highest = Some(point);
        }
    }
    match last_reaching {
        Some(p) => Some((p, true)),
        None => highest.map(|p| (p, false)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores(pos: &[f32], neg: &[f32]) -> Scores {
        let mut s = Scores::default();
        for &p in pos {
            s.push(p, true);
        }
        for &n in neg {
            s.push(n, false);
        }
        s
    }

    #[test]
    fn auroc_by_hand() {
        // Pairs (pos, neg): 0.8 beats 0.1, 0.4, ties 0.8 (half), loses to 0.9 -> 2.5;
        // 0.4 beats 0.1, ties 0.4 (half), loses to 0.8, 0.9 -> 1.5; 0.95 beats all -> 4.
        // (2.5 + 1.5 + 4) / (3 * 4) = 8 / 12.
        let mut s = scores(&[0.8, 0.4, 0.95], &[0.1, 0.4, 0.8, 0.9]);
        assert!((s.auroc().unwrap() - 8.0 / 12.0).abs() < 1e-12);
        assert_eq!(scores(&[1.0], &[0.0]).auroc(), Some(1.0));
        assert_eq!(scores(&[0.0], &[1.0]).auroc(), Some(0.0));
        assert_eq!(scores(&[0.5, 0.5], &[0.5]).auroc(), Some(0.5));
        assert_eq!(scores(&[0.5], &[]).auroc(), None);
        assert_eq!(scores(&[f32::NAN], &[0.1]).auroc(), None);
    }

    #[test]
    fn f1_optimal_threshold_by_hand() {
        // Descending: 0.9+ 0.8- 0.7+ 0.6+ 0.5- 0.2+ 0.1-  (4 positives)
        // >=0.9: tp1 fp0 F1 2/5=.4; >=0.8: 1,1 -> 2/6; >=0.7: 2,1 -> 4/7=.571;
        // >=0.6: 3,1 -> 6/8=.75; >=0.5: 3,2 -> 6/9; >=0.2: 4,2 -> 8/10=.8; >=0.1: 4,3 -> 8/11.
        let mut s = scores(&[0.9, 0.7, 0.6, 0.2], &[0.8, 0.5, 0.1]);
        let best = s.best_f1().unwrap();
        assert!((best.f1 - 0.8).abs() < 1e-12);
        assert!((best.threshold - 0.15).abs() < 1e-6, "{best:?}");
        assert_eq!((best.tp, best.fp, best.fn_, best.tn), (4, 2, 0, 1));
        assert!((best.precision - 4.0 / 6.0).abs() < 1e-12);
        assert_eq!(best.recall, 1.0);
        let at = s.at(0.65);
        assert_eq!((at.tp, at.fp, at.fn_, at.tn), (2, 1, 2, 2));
        // Ties: the highest threshold of the best F1; the lowest score is the threshold itself.
        let mut s = scores(&[0.3, 0.3], &[0.3]);
        let best = s.best_f1().unwrap();
        assert_eq!(best.threshold, 0.3);
        assert!((best.f1 - 0.8).abs() < 1e-12);
        assert_eq!(scores(&[], &[0.3]).best_f1(), None);
    }

    #[test]
    fn confusion_matrix_accuracy_and_per_class() {
        // truth:  0 0 1 1 1 2
        // top-1:  0 1 1 1 0 (none)
        let truth = [0, 0, 1, 1, 1, 2];
        let ranked = vec![
            vec![0, 1],
            vec![1, 0],
            vec![1, 2],
            vec![1, 0],
            vec![0, 1],
            vec![],
        ];
        let c = classification(&truth, &ranked, 3, 2);
        assert_eq!(
            c.confusion,
            vec![vec![1, 1, 0], vec![1, 2, 0], vec![0, 0, 0]]
        );
        assert_eq!(c.images, 6);
        assert!((c.accuracy - 3.0 / 6.0).abs() < 1e-12);
        assert_eq!(c.top_k, Some((2, 5.0 / 6.0)));
        let p0 = c.per_class[0];
        assert_eq!((p0.support, p0.predicted), (2, 2));
        assert!((p0.precision - 0.5).abs() < 1e-12 && (p0.recall - 0.5).abs() < 1e-12);
        let p1 = c.per_class[1];
        assert!((p1.precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((p1.recall - 2.0 / 3.0).abs() < 1e-12);
        assert!((p1.f1 - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(c.per_class[2].f1, 0.0);
        assert_eq!(classification(&truth, &ranked, 3, 1).top_k, None);
    }

    #[test]
    fn class_confidence_sweep_by_hand() {
        // Class 1: images predicted 1 with confidence 0.9 (truth 1), 0.8 (truth 0),
        // 0.6 (truth 1); one image of class 1 predicted 0. Support 3.
        let truth = [1, 0, 1, 1];
        let top1 = [(1, 0.9), (1, 0.8), (1, 0.6), (0, 0.7)];
        let (p, reached) = class_confidence_sweep(&truth, &top1, 1, 0.3).unwrap();
        assert!(reached);
        assert_eq!(p.threshold, 0.9);
        assert_eq!(p.precision, 1.0);
        let (p, reached) = class_confidence_sweep(&truth, &top1, 1, 0.6).unwrap();
        assert!(reached);
        assert_eq!(p.threshold, 0.6);
        assert!((p.precision - 2.0 / 3.0).abs() < 1e-12);
        // 1.0 is out of reach: the highest recall reached (2/3) at 0.6.
        let (p, reached) = class_confidence_sweep(&truth, &top1, 1, 1.0).unwrap();
        assert!(!reached);
        assert_eq!(p.threshold, 0.6);
        assert!(class_confidence_sweep(&truth, &top1, 2, 0.5).is_none());
    }
}
