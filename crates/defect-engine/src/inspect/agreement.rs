// SPDX-License-Identifier: MIT OR Apache-2.0
//! Agreement between two models on the same frames, free of GStreamer: the production model
//! and a challenger (`defectdetect challenger-model`), or A and B of `defect-replay --model-b`.
//! Both use this module, so the live figures and the replayed ones are computed by the same
//! rule.
//!
//! What is compared, per frame: the detections each model's policy counted (decision `fail`,
//! `review` or `accept`: inside the region, not masked, large enough), and the two verdicts.
//!
//! The matching rule: a production detection and a challenger detection are the same finding
//! when they have the same class and an IoU of at least [`MATCH_IOU`]. Production detections
//! are taken by descending confidence (ties: in their order); each takes the unmatched
//! challenger detection of its class with the highest IoU (ties: the more confident, then the
//! first). Per class, a matched pair counts as `both`, an unmatched production detection as
//! `only_production`, an unmatched challenger detection as `only_challenger`. Per verdict: a
//! frame both models gave verdict V counts `both` for V; otherwise it counts
//! `only_production` for the production's verdict and `only_challenger` for the challenger's.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::analysis::BBox;
use crate::policy::Verdict;

/// The IoU at or above which two detections of one class are one finding.
pub const MATCH_IOU: f32 = 0.5;

/// A detection a model's policy counted: its class name, confidence and box (frame pixels).
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub class: String,
    pub confidence: f32,
    pub bbox: BBox,
}

/// What one model made of one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub verdict: Verdict,
    pub found: Vec<Found>,
}

/// Counts of findings (or frames): found by both, by production only, by the challenger only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub both: u64,
    pub only_production: u64,
    pub only_challenger: u64,
}

impl Tally {
    pub fn add(&mut self, other: &Tally) {
        self.both += other.both;
        self.only_production += other.only_production;
        self.only_challenger += other.only_challenger;
    }

    pub fn total(&self) -> u64 {
        self.both + self.only_production + self.only_challenger
    }
}

/// The outcomes in the order of the metrics' `outcome` label.
pub const OUTCOMES: [&str; 3] = ["both", "only_production", "only_challenger"];

impl Tally {
    /// The counts in the order of [`OUTCOMES`].
    pub fn counts(&self) -> [u64; 3] {
        [self.both, self.only_production, self.only_challenger]
    }
}

/// The pairs (production index, challenger index) the matching rule makes of one frame's
/// detections.
pub fn match_found(production: &[Found], challenger: &[Found]) -> Vec<(usize, usize)> {
    let mut order: Vec<usize> = (0..production.len()).collect();
    order.sort_by(|&a, &b| {
        production[b]
            .confidence
            .total_cmp(&production[a].confidence)
            .then(a.cmp(&b))
    });
    let mut taken = vec![false; challenger.len()];
    let mut pairs = Vec::new();
    for p in order {
        let mine = &production[p];
        let mut best: Option<(usize, f32)> = None;
        for (c, theirs) in challenger.iter().enumerate() {
            if taken[c] || theirs.class != mine.class {
                continue;
            }
            let iou = mine.bbox.iou(&theirs.bbox);
            if iou < MATCH_IOU {
                continue;
            }
            let better = match best {
                None => true,
                Some((b, best_iou)) => {
                    iou > best_iou
                        || (iou == best_iou && theirs.confidence > challenger[b].confidence)
                }
            };
            if better {
                best = Some((c, iou));
            }
        }
        if let Some((c, _)) = best {
            taken[c] = true;
            pairs.push((p, c));
        }
    }
    pairs
}

/// One frame's agreement.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameAgreement {
    /// Per class name (only classes either model found on the frame).
    pub classes: BTreeMap<String, Tally>,
    pub production: Verdict,
    pub challenger: Verdict,
}

/// Compares what the two models made of one frame.
pub fn compare(production: &Judgement, challenger: &Judgement) -> FrameAgreement {
    let pairs = match_found(&production.found, &challenger.found);
    let mut classes: BTreeMap<String, Tally> = BTreeMap::new();
    let mut matched_p = vec![false; production.found.len()];
    let mut matched_c = vec![false; challenger.found.len()];
    for &(p, c) in &pairs {
        matched_p[p] = true;
        matched_c[c] = true;
        classes
            .entry(production.found[p].class.clone())
            .or_default()
            .both += 1;
    }
    for (found, matched) in production.found.iter().zip(&matched_p) {
        if !matched {
            classes
                .entry(found.class.clone())
                .or_default()
                .only_production += 1;
        }
    }
    for (found, matched) in challenger.found.iter().zip(&matched_c) {
        if !matched {
            classes
                .entry(found.class.clone())
                .or_default()
                .only_challenger += 1;
        }
    }
    FrameAgreement {
        classes,
        production: production.verdict,
        challenger: challenger.verdict,
    }
}

/// The agreement table of many frames: per class and per verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Agreement {
    /// Frames compared.
    pub frames: u64,
    /// Per class name: findings.
    pub classes: BTreeMap<String, Tally>,
    /// Per verdict (PASS, FAIL, REVIEW, UNKNOWN): frames.
    pub verdicts: BTreeMap<String, Tally>,
}

impl Agreement {
    /// Adds one compared frame.
    pub fn add(&mut self, frame: &FrameAgreement) {
        self.frames += 1;
        for (class, tally) in &frame.classes {
            self.classes.entry(class.clone()).or_default().add(tally);
        }
        if frame.production == frame.challenger {
            self.verdict(frame.production).both += 1;
        } else {
            self.verdict(frame.production).only_production += 1;
            self.verdict(frame.challenger).only_challenger += 1;
        }
    }

    fn verdict(&mut self, verdict: Verdict) -> &mut Tally {
        self.verdicts
            .entry(verdict.as_str().to_string())
            .or_default()
    }

    /// Frames both models gave the same verdict.
    pub fn same_verdict(&self) -> u64 {
        self.verdicts.values().map(|t| t.both).sum()
    }

    /// The table as text: one line per class, then one per verdict.
    pub fn table(&self, production: &str, challenger: &str) -> String {
        let mut out = format!(
            "agreement over {} frames ({production} = production, {challenger} = challenger; same class and IoU >= {MATCH_IOU})\n",
            self.frames
        );
        let _ = writeln!(
            out,
            "{:<24} {:>8} {:>8} {:>8}",
            "",
            "both",
            format!("only {production}"),
            format!("only {challenger}")
        );
        let row = |out: &mut String, name: String, t: &Tally| {
            let _ = writeln!(
                out,
                "{:<24} {:>8} {:>8} {:>8}",
                name, t.both, t.only_production, t.only_challenger
            );
        };
        for (class, t) in &self.classes {
            row(&mut out, format!("class {class}"), t);
        }
        for (verdict, t) in &self.verdicts {
            row(&mut out, format!("verdict {verdict}"), t);
        }
        let _ = writeln!(
            out,
            "same verdict on {} of {} frames",
            self.same_verdict(),
            self.frames
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(class: &str, confidence: f32, x: f32) -> Found {
        Found {
            class: class.into(),
            confidence,
            bbox: BBox {
                x1: x,
                y1: 0.0,
                x2: x + 10.0,
                y2: 10.0,
            },
        }
    }

    fn judged(verdict: Verdict, found: Vec<Found>) -> Judgement {
        Judgement { verdict, found }
    }

    #[test]
    fn the_same_class_overlapping_enough_is_one_finding() {
        // IoU of boxes shifted by 3 of 10: 70/130 = 0.54; by 4: 60/140 = 0.43.
        let p = [found("scratch", 0.9, 0.0), found("dent", 0.8, 50.0)];
        let c = [
            found("scratch", 0.7, 3.0),
            found("scratch", 0.6, 50.0),
            found("dent", 0.5, 54.0),
        ];
        assert_eq!(match_found(&p, &c), [(0, 0)]);
        let frame = compare(
            &judged(Verdict::Fail, p.to_vec()),
            &judged(Verdict::Fail, c.to_vec()),
        );
        assert_eq!(
            frame.classes["scratch"],
            Tally {
                both: 1,
                only_production: 0,
                only_challenger: 1
            }
        );
        assert_eq!(
            frame.classes["dent"],
            Tally {
                both: 0,
                only_production: 1,
                only_challenger: 1
            }
        );
    }

    #[test]
    fn the_most_confident_production_detection_chooses_first_and_takes_the_best_overlap() {
        let p = [found("scratch", 0.3, 2.0), found("scratch", 0.9, 0.0)];
        // Challenger 1 overlaps both production boxes; the 0.9 one takes it (IoU 1), the
        // 0.3 one is left with challenger 0 (IoU of a shift by 2 = 80/120).
        let c = [found("scratch", 0.5, 4.0), found("scratch", 0.4, 0.0)];
        assert_eq!(match_found(&p, &c), [(1, 1), (0, 0)]);
        // Equal IoU: the more confident challenger detection.
        let c = [found("scratch", 0.4, 1.0), found("scratch", 0.8, -1.0)];
        assert_eq!(match_found(&p[1..], &c), [(0, 1)]);
    }

    #[test]
    fn verdicts_are_tallied_per_verdict() {
        let mut agreement = Agreement::default();
        let pass = judged(Verdict::Pass, vec![]);
        let fail = judged(Verdict::Fail, vec![found("dent", 0.9, 0.0)]);
        agreement.add(&compare(&pass, &pass));
        agreement.add(&compare(&fail, &pass));
        agreement.add(&compare(&fail, &fail));
        assert_eq!(agreement.frames, 3);
        assert_eq!(
            agreement.verdicts["PASS"],
            Tally {
                both: 1,
                only_production: 0,
                only_challenger: 1
            }
        );
        assert_eq!(
            agreement.verdicts["FAIL"],
            Tally {
                both: 1,
                only_production: 1,
                only_challenger: 0
            }
        );
        assert_eq!(
            agreement.classes["dent"],
            Tally {
                both: 1,
                only_production: 1,
                only_challenger: 0
            }
        );
        assert_eq!(agreement.same_verdict(), 2);
        let table = agreement.table("A", "B");
        assert!(table.contains("class dent"), "{table}");
        assert!(table.contains("same verdict on 2 of 3 frames"), "{table}");
    }
}
