//! Part-level verdicts: consecutive frames with the same part id form a part, whose verdict
//! is the worst of its frames' results, reported once when the part has ended and every
//! result of its frames is in.
//!
//! A frame contributes what the model made of it ([`Seen`]): a result known now (the model ran
//! on it in the streaming thread), a result to come (an asynchronous worker runs on it; the
//! result is given to [`PartTracker::result`] later, whenever it arrives, and counts for the
//! part of the frame it was computed on, not the part of the frame that happens to be passing
//! then), or nothing (the model did not run on it). A frame the model did not run on is
//! covered by the last earlier frame of its part the model ran on, as `interval` carries
//! results forward; a part with a frame that nothing covers (its first frames went by
//! uninspected), or with a result that never came, is at best UNKNOWN, never PASS.

use std::collections::VecDeque;

use super::{SeverityCounts, Verdict};

/// The verdict of a whole part.
#[derive(Debug, Clone, PartialEq)]
pub struct PartVerdict {
    pub part_id: String,
    pub verdict: Verdict,
    pub first_frame: u64,
    pub last_frame: u64,
    pub frames: u64,
    /// Frames of the part the model ran on.
    pub inspected: u64,
    /// Per severity, the most detections any one inspected frame of the part had.
    pub counts: SeverityCounts,
}

/// One part instance: a part id that comes back later is another part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartKey(u64);

/// What the model made of one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Seen {
    /// The model ran on the frame; this is its result.
    Judged(Verdict, SeverityCounts),
    /// The model runs on the frame; the result comes through [`PartTracker::result`] (or
    /// [`PartTracker::abandon`] when it never will).
    Pending,
    /// The model did not run on the frame.
    NotInspected,
}

#[derive(Debug)]
struct Open {
    key: PartKey,
    part: PartVerdict,
    /// Results still to come.
    pending: u64,
    /// A frame that no inspected frame of the part covers, or a result that never came.
    uncovered: bool,
}

impl Open {
    fn fold(&mut self, verdict: Verdict, counts: &SeverityCounts) {
        self.part.verdict = self.part.verdict.max(verdict);
        for (kept, new) in self.part.counts.iter_mut().zip(counts) {
            *kept = (*kept).max(*new);
        }
    }

    fn into_verdict(mut self) -> PartVerdict {
        if self.uncovered || self.part.inspected == 0 {
            self.part.verdict = self.part.verdict.max(Verdict::Unknown);
        }
        self.part
    }
}

/// Groups frames into parts.
#[derive(Debug, Default)]
pub struct PartTracker {
    current: Option<Open>,
    /// Parts that have ended, oldest first, some still waiting for results.
    ended: VecDeque<Open>,
    next_key: u64,
}

impl PartTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// The key the next frame of `part_id` will belong to (to hand to a worker before the
    /// frame is observed).
    pub fn key_for(&self, part_id: &str) -> PartKey {
        match &self.current {
            Some(open) if open.part.part_id == part_id => open.key,
            _ => PartKey(self.next_key),
        }
    }

    /// Whether a frame of `part_id` would be the first the model sees of its part (it starts
    /// a part, or none of its part's frames was inspected): without it the part cannot PASS,
    /// so a busy asynchronous worker queues it rather than skip it.
    pub fn needs_inspection(&self, part_id: &str) -> bool {
        match &self.current {
            Some(open) if open.part.part_id == part_id => open.part.inspected == 0,
            _ => true,
        }
    }

    /// Adds a frame of `part_id`; a different id than the current part's ends that part.
    pub fn observe(&mut self, part_id: &str, frame: u64, seen: Seen) -> PartKey {
        if self
            .current
            .as_ref()
            .is_none_or(|open| open.part.part_id != part_id)
        {
            self.finish();
            self.current = Some(Open {
                key: PartKey(self.next_key),
                part: PartVerdict {
                    part_id: part_id.to_string(),
                    verdict: Verdict::Pass,
                    first_frame: frame,
                    last_frame: frame,
                    frames: 0,
                    inspected: 0,
                    counts: [0; 4],
                },
                pending: 0,
                uncovered: false,
            });
            self.next_key += 1;
        }
        let open = self.current.as_mut().expect("a current part");
        open.part.last_frame = frame;
        open.part.frames += 1;
        match seen {
            Seen::Judged(verdict, counts) => {
                open.part.inspected += 1;
                open.fold(verdict, &counts);
            }
            Seen::Pending => {
                open.part.inspected += 1;
                open.pending += 1;
            }
            Seen::NotInspected => open.uncovered |= open.part.inspected == 0,
        }
        open.key
    }

    fn find(&mut self, key: PartKey) -> Option<&mut Open> {
        self.current
            .iter_mut()
            .chain(self.ended.iter_mut())
            .find(|open| open.key == key)
    }

    /// The result of a frame observed as [`Seen::Pending`] in part `key`.
    pub fn result(&mut self, key: PartKey, verdict: Verdict, counts: &SeverityCounts) {
        if let Some(open) = self.find(key) {
            open.pending = open.pending.saturating_sub(1);
            open.fold(verdict, counts);
        }
    }

    /// A result that will never come (the inference failed or was cancelled): the part can
    /// no longer PASS.
    pub fn abandon(&mut self, key: PartKey) {
        if let Some(open) = self.find(key) {
            open.pending = open.pending.saturating_sub(1);
            open.uncovered = true;
        }
    }

    /// Every result still to come will never come.
    pub fn abandon_all(&mut self) {
        for open in self.current.iter_mut().chain(self.ended.iter_mut()) {
            if open.pending > 0 {
                open.pending = 0;
                open.uncovered = true;
            }
        }
    }

    /// Forgets every part (a flush); results still to come for them are ignored.
    pub fn reset(&mut self) {
        self.current = None;
        self.ended.clear();
    }

    /// Ends the current part (end of stream, or a frame without part).
    pub fn finish(&mut self) {
        if let Some(open) = self.current.take() {
            self.ended.push_back(open);
        }
    }

    /// The parts that have ended and have all their results, oldest first; a part waiting
    /// for a result holds back the parts after it, so that parts are reported in order.
    pub fn take_ready(&mut self) -> Vec<PartVerdict> {
        let mut ready = Vec::new();
        while self.ended.front().is_some_and(|open| open.pending == 0) {
            ready.extend(self.ended.pop_front().map(Open::into_verdict));
        }
        ready
    }

    /// Whether a result is still to come for some part.
    pub fn has_pending(&self) -> bool {
        self.current
            .iter()
            .chain(self.ended.iter())
            .any(|open| open.pending > 0)
    }

    /// The id of the part in progress.
    pub fn current_part(&self) -> Option<&str> {
        self.current.as_ref().map(|p| p.part.part_id.as_str())
    }

    /// The key of the part in progress.
    pub fn current_key(&self) -> Option<PartKey> {
        self.current.as_ref().map(|p| p.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(verdict: Verdict, counts: SeverityCounts) -> Seen {
        Seen::Judged(verdict, counts)
    }

    #[test]
    fn a_part_is_the_worst_of_its_frames_and_reported_when_it_ends() {
        let mut t = PartTracker::new();
        t.observe("a", 0, judged(Verdict::Pass, [0; 4]));
        t.observe("a", 1, judged(Verdict::Fail, [0, 2, 0, 0]));
        t.observe("a", 2, judged(Verdict::Review, [0, 1, 1, 0]));
        assert!(t.take_ready().is_empty(), "part a has not ended");
        t.observe("b", 3, judged(Verdict::Pass, [0; 4]));
        assert_eq!(
            t.take_ready(),
            [PartVerdict {
                part_id: "a".into(),
                verdict: Verdict::Fail,
                first_frame: 0,
                last_frame: 2,
                frames: 3,
                inspected: 3,
                counts: [0, 2, 1, 0]
            }]
        );
        t.finish();
        let b = t.take_ready();
        assert_eq!(
            (b[0].part_id.as_str(), b[0].verdict, b[0].frames),
            ("b", Verdict::Pass, 1)
        );
        t.finish();
        assert!(t.take_ready().is_empty());
    }

    #[test]
    fn review_beats_pass_and_a_returning_id_is_a_new_part() {
        let mut t = PartTracker::new();
        t.observe("x", 0, judged(Verdict::Review, [0; 4]));
        t.observe("x", 1, judged(Verdict::Pass, [0; 4]));
        let y = t.observe("y", 2, judged(Verdict::Pass, [0; 4]));
        assert_eq!(t.take_ready()[0].verdict, Verdict::Review);
        let x_again = t.observe("x", 3, judged(Verdict::Pass, [0; 4]));
        assert_ne!(x_again, y);
        assert_eq!(t.take_ready()[0].part_id, "y");
        assert_eq!(t.current_part(), Some("x"));
    }

    /// Item 3 of issue 14: a late result counts for the part of the frame it was computed on,
    /// and the part waits for it; parts after it wait too.
    #[test]
    fn late_results_count_for_their_own_part() {
        let mut t = PartTracker::new();
        let a = t.observe("a", 0, Seen::Pending);
        t.observe("a", 1, Seen::NotInspected);
        let b = t.observe("b", 2, Seen::Pending);
        t.observe("c", 3, Seen::Pending);
        assert!(t.take_ready().is_empty(), "a waits for its result");
        t.result(b, Verdict::Pass, &[0; 4]);
        assert!(t.take_ready().is_empty(), "b waits behind a");
        t.result(a, Verdict::Fail, &[1, 0, 0, 0]);
        let ready = t.take_ready();
        assert_eq!(
            ready
                .iter()
                .map(|p| (p.part_id.as_str(), p.verdict, p.inspected))
                .collect::<Vec<_>>(),
            [("a", Verdict::Fail, 1), ("b", Verdict::Pass, 1)]
        );
        assert!(t.has_pending(), "c still waits");
    }

    /// Item 3 of issue 14: a part whose frames the model never saw, or whose first frames
    /// went by before any was inspected, is not PASS.
    #[test]
    fn uninspected_parts_are_unknown_never_pass() {
        let mut t = PartTracker::new();
        t.observe("a", 0, Seen::NotInspected);
        t.observe("a", 1, Seen::NotInspected);
        t.observe("b", 2, Seen::NotInspected);
        t.observe("b", 3, judged(Verdict::Pass, [0; 4]));
        t.observe("c", 4, judged(Verdict::Pass, [0; 4]));
        t.observe("c", 5, Seen::NotInspected);
        let d = t.observe("d", 6, Seen::NotInspected);
        t.observe("d", 7, judged(Verdict::Fail, [0, 1, 0, 0]));
        let e = t.observe("e", 8, Seen::Pending);
        t.abandon(e);
        t.finish();
        let verdicts: Vec<_> = t
            .take_ready()
            .into_iter()
            .map(|p| (p.part_id, p.verdict))
            .collect();
        assert_eq!(
            verdicts,
            [
                ("a".into(), Verdict::Unknown),
                ("b".into(), Verdict::Unknown),
                ("c".into(), Verdict::Pass),
                ("d".into(), Verdict::Fail),
                ("e".into(), Verdict::Unknown),
            ]
        );
        assert_ne!(d, e);
        assert!(t.needs_inspection("f"));
        t.observe("f", 9, Seen::NotInspected);
        assert!(t.needs_inspection("f"));
        t.observe("f", 10, Seen::Pending);
        assert!(!t.needs_inspection("f") && t.needs_inspection("g"));
    }
}
