// SPDX-License-Identifier: MIT OR Apache-2.0
//! Two stages: a detector finds regions, a classifier (`on-rois`) names each one, and the
//! frame's verdict follows the classifier's policy applied to each region's classified label
//! (a detector's `defect` that the classifier calls `scratches` is judged by the `scratches`
//! rule; one it calls a good class such as `ok` is cleared).

use std::collections::{BTreeSet, VecDeque};

use super::{Decision, FrameVerdict, Severity, SeverityCounts, Verdict};

/// One region of a frame as the two stages saw it.
#[derive(Debug, Clone, PartialEq)]
pub enum StagedRegion {
    /// The detector's policy ignored it (outside the region, masked, too small): it stays
    /// ignored, whatever the classifier says.
    Ignored,
    /// Not classified (its crop is empty): the detector's judgement stands; it is counted
    /// when it failed.
    Detector {
        severity: Severity,
        decision: Decision,
    },
    /// The second stage's policy on the classified label: a one-region [`FrameVerdict`].
    Classified(FrameVerdict),
}

/// The frame's verdict after the second stage.
#[derive(Debug, Clone, PartialEq)]
pub struct StagedVerdict {
    pub verdict: Verdict,
    pub counts: SeverityCounts,
    /// The regions (indices) that decided it: the failing ones for FAIL, those in a review
    /// band for REVIEW.
    pub reasons: Vec<usize>,
}

fn verdict_of(decision: Decision) -> Verdict {
    match decision {
        Decision::Fail => Verdict::Fail,
        Decision::Review => Verdict::Review,
        _ => Verdict::Pass,
    }
}

/// The frame's verdict from its regions. `frame` is what the first stage decided beyond its
/// regions (an anomaly model's FAIL on the image score alone, with no region; else PASS with
/// no counts): the verdict is never better than it.
pub fn two_stage(frame: (Verdict, SeverityCounts), regions: &[StagedRegion]) -> StagedVerdict {
    let (mut verdict, mut counts) = frame;
    let mut decisions = Vec::with_capacity(regions.len());
    for region in regions {
        let decision = match region {
            StagedRegion::Ignored => None,
            StagedRegion::Detector { severity, decision } => {
                if *decision == Decision::Fail {
                    counts[severity.index()] += 1;
                }
                Some(*decision)
            }
            StagedRegion::Classified(judged) => {
                for (count, add) in counts.iter_mut().zip(judged.counts) {
                    *count += add;
                }
                judged.judged.first().map(|j| j.decision)
            }
        };
        if let Some(decision) = decision {
            verdict = verdict.max(verdict_of(decision));
        }
        decisions.push(decision);
    }
    let wanted = match verdict {
        Verdict::Fail => Some(Decision::Fail),
        Verdict::Review => Some(Decision::Review),
        Verdict::Pass | Verdict::Unknown => None,
    };
    let reasons = decisions
        .iter()
        .enumerate()
        .filter(|(_, d)| wanted.is_some() && **d == wanted)
        .map(|(i, _)| i)
        .collect();
    StagedVerdict {
        verdict,
        counts,
        reasons,
    }
}

/// The re-decided frames of the parts in progress, for re-deciding the parts' verdicts.
#[derive(Debug, Default)]
pub struct StagedParts {
    /// Oldest first; at most [`StagedParts::MAX_OPEN`].
    open: VecDeque<StagedPart>,
}

#[derive(Debug)]
struct StagedPart {
    part_id: String,
    verdict: Verdict,
    /// Per severity, the most any one result had (as part verdicts count).
    counts: SeverityCounts,
    /// The frames whose results were re-decided.
    results: BTreeSet<u64>,
}

impl StagedParts {
    /// Parts whose verdict never came are forgotten beyond this many.
    pub const MAX_OPEN: usize = 64;

    /// A re-decided frame of part `part_id` carrying the result of frame `result_frame`.
    pub fn observe(
        &mut self,
        part_id: &str,
        result_frame: u64,
        verdict: Verdict,
        counts: &SeverityCounts,
    ) {
        let part = match self.open.iter().position(|p| p.part_id == part_id) {
            Some(i) => &mut self.open[i],
            None => {
                if self.open.len() == Self::MAX_OPEN {
                    self.open.pop_front();
                }
                self.open.push_back(StagedPart {
                    part_id: part_id.to_string(),
                    verdict: Verdict::Pass,
                    counts: [0; 4],
                    results: BTreeSet::new(),
                });
                self.open.back_mut().expect("just pushed")
            }
        };
        part.verdict = part.verdict.max(verdict);
        for (kept, new) in part.counts.iter_mut().zip(counts) {
            *kept = (*kept).max(*new);
        }
        part.results.insert(result_frame);
    }

    /// The verdict and counts of a finished part from its re-decided frames, given the first
    /// stage's verdict of it and how many of its frames the model ran on; the part is
    /// forgotten. None (keep the first stage's) when the re-decided frames do not hold every
    /// result of the part (a result that came after the part ended, with asynchronous
    /// inference). An UNKNOWN first-stage part (frames not covered) is at best UNKNOWN.
    pub fn finish(
        &mut self,
        part_id: &str,
        upstream: Verdict,
        inspected_frames: u64,
    ) -> Option<(Verdict, SeverityCounts)> {
        let i = self.open.iter().position(|p| p.part_id == part_id)?;
        let part = self.open.remove(i)?;
        if (part.results.len() as u64) < inspected_frames {
            return None;
        }
        let verdict = if upstream == Verdict::Unknown {
            part.verdict.max(Verdict::Unknown)
        } else {
            part.verdict
        };
        Some((verdict, part.counts))
    }

    pub fn clear(&mut self) {
        self.open.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{BBox, Detection};
    use crate::policy::parse_policy;

    const POLICY: &str = r#"
[classes.scratches]
min-confidence = 0.8
severity = "critical"

[classes.inclusion]
min-confidence = 0.5
severity = "minor"
review-band = [0.3, 0.5]

[classes.ok]
good = true
"#;

    fn classified(label: &str, confidence: f32) -> StagedRegion {
        let policy = parse_policy(POLICY, "two.toml").unwrap();
        let names = ["scratches", "inclusion", "ok"];
        let class_id = names.iter().position(|n| *n == label).unwrap();
        let detection = Detection {
            bbox: BBox {
                x1: 10.0,
                y1: 10.0,
                x2: 50.0,
                y2: 50.0,
            },
            confidence,
            class_id,
        };
        StagedRegion::Classified(policy.evaluate(&[detection], |id| names[id].to_string()))
    }

    #[test]
    fn the_classified_label_decides() {
        // The detector's `defect` called scratches at 0.9: the critical scratches rule fails it.
        let v = two_stage((Verdict::Pass, [0; 4]), &[classified("scratches", 0.9)]);
        assert_eq!(
            (v.verdict, v.counts, v.reasons),
            (Verdict::Fail, [1, 0, 0, 0], vec![0])
        );
        // Below the scratches threshold: passes; a good class clears its region.
        let v = two_stage(
            (Verdict::Pass, [0; 4]),
            &[classified("scratches", 0.7), classified("ok", 0.99)],
        );
        assert_eq!(v.verdict, Verdict::Pass);
        assert!(v.reasons.is_empty());
        // Review band of the classified class; ignored regions never count.
        let v = two_stage(
            (Verdict::Pass, [0; 4]),
            &[StagedRegion::Ignored, classified("inclusion", 0.4)],
        );
        assert_eq!((v.verdict, v.reasons), (Verdict::Review, vec![1]));
    }

    #[test]
    fn unclassified_regions_and_the_frames_own_cause_stay() {
        let kept = StagedRegion::Detector {
            severity: Severity::Major,
            decision: Decision::Fail,
        };
        let v = two_stage((Verdict::Pass, [0; 4]), &[classified("ok", 0.9), kept]);
        assert_eq!(
            (v.verdict, v.counts, v.reasons),
            (Verdict::Fail, [0, 1, 0, 0], vec![1])
        );
        // An anomaly model's FAIL on its image score alone is not cleared by the classifier.
        let v = two_stage((Verdict::Fail, [0, 1, 0, 0]), &[classified("ok", 0.9)]);
        assert_eq!((v.verdict, v.counts), (Verdict::Fail, [0, 1, 0, 0]));
        assert!(v.reasons.is_empty());
    }

    #[test]
    fn parts_follow_their_re_decided_frames_when_every_result_is_there() {
        let mut parts = StagedParts::default();
        parts.observe("a", 0, Verdict::Pass, &[0; 4]);
        parts.observe("a", 1, Verdict::Review, &[0, 0, 1, 0]);
        // A carried frame repeats frame 1's result.
        parts.observe("a", 1, Verdict::Review, &[0, 0, 1, 0]);
        parts.observe("b", 2, Verdict::Pass, &[0; 4]);
        assert_eq!(
            parts.finish("a", Verdict::Fail, 2),
            Some((Verdict::Review, [0, 0, 1, 0]))
        );
        assert_eq!(parts.finish("a", Verdict::Fail, 2), None, "forgotten");
        // A result the second stage never saw: the first stage's verdict stands.
        assert_eq!(parts.finish("b", Verdict::Fail, 2), None);
        // Uncovered frames: at best UNKNOWN.
        parts.observe("c", 5, Verdict::Pass, &[0; 4]);
        assert_eq!(
            parts.finish("c", Verdict::Unknown, 1),
            Some((Verdict::Unknown, [0; 4]))
        );
        for i in 0..100 {
            parts.observe(&i.to_string(), i, Verdict::Pass, &[0; 4]);
        }
        assert_eq!(parts.open.len(), StagedParts::MAX_OPEN);
    }
}
