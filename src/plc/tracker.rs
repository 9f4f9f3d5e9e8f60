// SPDX-License-Identifier: MIT OR Apache-2.0
//! From frame and part verdicts to the decisions the PLC elements act on, free of GStreamer
//! and of any protocol: which verdict counts (a frame's, or a finished part's), when the
//! thing it is about was seen (the reference the reject delay counts from), the defects
//! that decided it, and the running counts per verdict.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use super::verdict::{FrameVerdict, PartVerdict, SeverityCounts, Verdict};

/// What a verdict is about, for rejects and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Unit {
    /// A finished part's verdict (`defect-part-verdict`).
    #[default]
    Part,
    /// Each frame's verdict.
    Frame,
}

/// A verdict to act on.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub verdict: Verdict,
    pub shadow: bool,
    pub part_id: Option<String>,
    /// The frame (frame unit) or the part's last frame (part unit).
    pub frame: u64,
    /// When the element saw that frame: the reject delay counts from here.
    pub seen: Instant,
    pub counts: SeverityCounts,
    /// Distinct labels of the detections that decided the verdict, in order of appearance.
    pub defects: Vec<String>,
}

/// Verdicts counted since start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub pass: u64,
    pub fail: u64,
    pub review: u64,
    /// Parts or frames the model did not judge (never counted as PASS).
    pub unknown: u64,
    /// Frames with a verdict, whatever the unit.
    pub frames: u64,
}

impl Counts {
    fn add(&mut self, verdict: Verdict) {
        match verdict {
            Verdict::Pass => self.pass += 1,
            Verdict::Fail => self.fail += 1,
            Verdict::Review => self.review += 1,
            Verdict::Unknown => self.unknown += 1,
        }
    }
}

/// A part in progress: when its latest frame was seen, the labels that decided its frames.
struct PartSeen {
    seen: Instant,
    defects: Vec<String>,
}

/// Parts in progress remembered at most (a part whose verdict never comes is forgotten).
const MAX_PARTS: usize = 1024;

pub struct Tracker {
    unit: Unit,
    parts: HashMap<String, PartSeen>,
    /// Part ids in the order they were first seen, to forget the oldest.
    order: VecDeque<String>,
    counts: Counts,
}

fn merge_labels(into: &mut Vec<String>, labels: &[String]) {
    for label in labels {
        if !into.contains(label) {
            into.push(label.clone());
        }
    }
}

impl Tracker {
    pub fn new(unit: Unit) -> Self {
        Self {
            unit,
            parts: HashMap::new(),
            order: VecDeque::new(),
            counts: Counts::default(),
        }
    }

    pub fn unit(&self) -> Unit {
        self.unit
    }

    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// A frame seen at `seen`: the decision when the unit is frames.
    pub fn frame(&mut self, v: &FrameVerdict, seen: Instant) -> Option<Decision> {
        self.counts.frames += 1;
        if let Some(part_id) = &v.part_id {
            let entry = match self.parts.get_mut(part_id) {
                Some(entry) => entry,
                None => {
                    if self.order.len() >= MAX_PARTS
                        && let Some(oldest) = self.order.pop_front()
                    {
                        self.parts.remove(&oldest);
                    }
                    self.order.push_back(part_id.clone());
                    self.parts.entry(part_id.clone()).or_insert(PartSeen {
                        seen,
                        defects: Vec::new(),
                    })
                }
            };
            entry.seen = seen;
            if v.verdict != Verdict::Pass {
                merge_labels(&mut entry.defects, &v.defects);
            }
        }
        if self.unit != Unit::Frame {
            return None;
        }
        self.counts.add(v.verdict);
        let mut defects = Vec::new();
        merge_labels(&mut defects, &v.defects);
        Some(Decision {
            verdict: v.verdict,
            shadow: v.shadow,
            part_id: v.part_id.clone(),
            frame: v.frame,
            seen,
            counts: v.counts,
            defects,
        })
    }

    /// A finished part, its verdict arriving at `now`: the decision when the unit is parts.
    /// Its reference is when its last frame was seen (`now` if none of its frames was).
    pub fn part(&mut self, p: &PartVerdict, now: Instant) -> Option<Decision> {
        let seen = self.parts.remove(&p.part_id);
        if seen.is_some() {
            self.order.retain(|id| id != &p.part_id);
        }
        if self.unit != Unit::Part {
            return None;
        }
        self.counts.add(p.verdict);
        let (reference, defects) = match seen {
            // The latest of its frames seen (its last one, unless that went by unseen).
            Some(s) => (s.seen, s.defects),
            None => (now, Vec::new()),
        };
        Some(Decision {
            verdict: p.verdict,
            shadow: p.shadow,
            part_id: Some(p.part_id.clone()),
            frame: p.last_frame,
            seen: reference,
            counts: p.counts,
            defects: if p.verdict == Verdict::Pass {
                Vec::new()
            } else {
                defects
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn frame(n: u64, part: &str, verdict: Verdict, defects: &[&str]) -> FrameVerdict {
        FrameVerdict {
            verdict,
            shadow: false,
            part_id: Some(part.into()),
            frame: n,
            counts: [0, defects.len() as u32, 0, 0],
            model_id: "m".into(),
            model_version: "1".into(),
            defects: defects.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn part(id: &str, verdict: Verdict, last: u64) -> PartVerdict {
        PartVerdict {
            part_id: id.into(),
            verdict,
            shadow: false,
            first_frame: 0,
            last_frame: last,
            counts: [0, 1, 0, 0],
            model_id: "m".into(),
        }
    }

    #[test]
    fn a_part_is_referenced_to_its_last_frame_with_its_defects() {
        let t0 = Instant::now();
        let mut t = Tracker::new(Unit::Part);
        assert!(
            t.frame(&frame(0, "a", Verdict::Fail, &["scratches"]), t0)
                .is_none()
        );
        t.frame(
            &frame(1, "a", Verdict::Fail, &["inclusion", "scratches"]),
            t0 + Duration::from_millis(33),
        );
        t.frame(
            &frame(2, "a", Verdict::Pass, &[]),
            t0 + Duration::from_millis(66),
        );
        t.frame(
            &frame(3, "b", Verdict::Pass, &[]),
            t0 + Duration::from_millis(99),
        );
        let d = t
            .part(
                &part("a", Verdict::Fail, 2),
                t0 + Duration::from_millis(150),
            )
            .unwrap();
        assert_eq!(d.seen, t0 + Duration::from_millis(66));
        assert_eq!(d.defects, ["scratches", "inclusion"]);
        assert_eq!(d.frame, 2);
        let d = t
            .part(
                &part("b", Verdict::Pass, 3),
                t0 + Duration::from_millis(200),
            )
            .unwrap();
        assert!(d.defects.is_empty());
        // A part none of whose frames was seen: referenced to its verdict's arrival.
        let late = t0 + Duration::from_millis(300);
        assert_eq!(
            t.part(&part("c", Verdict::Fail, 9), late).unwrap().seen,
            late
        );
        assert_eq!(
            t.counts(),
            Counts {
                pass: 1,
                fail: 2,
                review: 0,
                unknown: 0,
                frames: 4
            }
        );
    }

    #[test]
    fn frame_unit_decides_every_frame_and_ignores_parts() {
        let t0 = Instant::now();
        let mut t = Tracker::new(Unit::Frame);
        let d = t
            .frame(&frame(5, "a", Verdict::Review, &["crazing", "crazing"]), t0)
            .unwrap();
        assert_eq!((d.verdict, d.frame, d.seen), (Verdict::Review, 5, t0));
        assert_eq!(d.defects, ["crazing"]);
        assert!(t.part(&part("a", Verdict::Review, 5), t0).is_none());
        assert_eq!(t.counts().review, 1);
    }

    #[test]
    fn unknown_verdicts_are_counted_apart_never_as_pass() {
        let t0 = Instant::now();
        let mut t = Tracker::new(Unit::Part);
        t.frame(&frame(0, "a", Verdict::Unknown, &[]), t0);
        let d = t.part(&part("a", Verdict::Unknown, 0), t0).unwrap();
        assert_eq!(d.verdict, Verdict::Unknown);
        assert_eq!((t.counts().unknown, t.counts().pass), (1, 0));
    }

    #[test]
    fn forgets_the_oldest_parts_beyond_the_limit() {
        let t0 = Instant::now();
        let mut t = Tracker::new(Unit::Part);
        for n in 0..(MAX_PARTS as u64 + 10) {
            t.frame(&frame(n, &n.to_string(), Verdict::Pass, &[]), t0);
        }
        assert_eq!(t.parts.len(), MAX_PARTS);
        assert!(!t.parts.contains_key("0") && t.parts.contains_key("1033"));
    }
}
