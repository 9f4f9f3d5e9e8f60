//! Part-level verdicts: consecutive frames with the same part id form a part, whose verdict
//! is the worst of its frames, reported once when the part ends.

use super::{SeverityCounts, Verdict};

/// The verdict of a whole part.
#[derive(Debug, Clone, PartialEq)]
pub struct PartVerdict {
    pub part_id: String,
    pub verdict: Verdict,
    pub first_frame: u64,
    pub last_frame: u64,
    pub frames: u64,
    /// Per severity, the most detections any one frame of the part had.
    pub counts: SeverityCounts,
}

/// Groups frames into parts.
#[derive(Debug, Default)]
pub struct PartTracker {
    current: Option<PartVerdict>,
}

impl PartTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a frame of `part_id`. When it starts a new part, the previous part is finished
    /// and returned.
    pub fn observe(
        &mut self,
        part_id: &str,
        frame: u64,
        verdict: Verdict,
        counts: &SeverityCounts,
    ) -> Option<PartVerdict> {
        match &mut self.current {
            Some(part) if part.part_id == part_id => {
                part.verdict = part.verdict.max(verdict);
                part.last_frame = frame;
                part.frames += 1;
                for (kept, new) in part.counts.iter_mut().zip(counts) {
                    *kept = (*kept).max(*new);
                }
                None
            }
            _ => self.current.replace(PartVerdict {
                part_id: part_id.to_string(),
                verdict,
                first_frame: frame,
                last_frame: frame,
                frames: 1,
                counts: *counts,
            }),
        }
    }

    /// Ends the current part (end of stream, or a frame without part): returns it if any.
    pub fn finish(&mut self) -> Option<PartVerdict> {
        self.current.take()
    }

    /// The id of the part in progress.
    pub fn current_part(&self) -> Option<&str> {
        self.current.as_ref().map(|p| p.part_id.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_is_the_worst_of_its_frames_and_reported_when_it_ends() {
        let mut t = PartTracker::new();
        assert_eq!(t.observe("a", 0, Verdict::Pass, &[0; 4]), None);
        assert_eq!(t.observe("a", 1, Verdict::Fail, &[0, 2, 0, 0]), None);
        assert_eq!(t.observe("a", 2, Verdict::Review, &[0, 1, 1, 0]), None);
        let a = t
            .observe("b", 3, Verdict::Pass, &[0; 4])
            .expect("part a ends");
        assert_eq!(
            a,
            PartVerdict {
                part_id: "a".into(),
                verdict: Verdict::Fail,
                first_frame: 0,
                last_frame: 2,
                frames: 3,
                counts: [0, 2, 1, 0]
            }
        );
        let b = t.finish().expect("part b ends at EOS");
        assert_eq!(
            (b.part_id.as_str(), b.verdict, b.frames),
            ("b", Verdict::Pass, 1)
        );
        assert_eq!(t.finish(), None);
    }

    #[test]
    fn review_beats_pass_and_a_returning_id_is_a_new_part() {
        let mut t = PartTracker::new();
        t.observe("x", 0, Verdict::Review, &[0; 4]);
        t.observe("x", 1, Verdict::Pass, &[0; 4]);
        assert_eq!(
            t.observe("y", 2, Verdict::Pass, &[0; 4]).unwrap().verdict,
            Verdict::Review
        );
        assert_eq!(
            t.observe("x", 3, Verdict::Pass, &[0; 4]).unwrap().part_id,
            "y"
        );
        assert_eq!(t.current_part(), Some("x"));
    }
}
