// SPDX-License-Identifier: MIT OR Apache-2.0
//! Joining the part verdicts of several cameras into one per part, free of GStreamer: the
//! logic of `defectpartmux`.
//!
//! Each camera reports its verdict of a part (a [`PartVerdictMeta`] as `defectdetect` sends
//! it). A part is joined when every running camera has reported it, or `timeout` after the
//! first report, whichever comes first; the caller asks [`Join::poll`] at
//! [`Join::next_deadline`] (a timer, not the next report). The joined verdict is the worst
//! of the cameras' (FAIL > UNKNOWN > REVIEW > PASS):
//!
//! - a required camera that has not reported the part by its deadline (`timeout`), or that is
//!   stopped (end of stream, pad released), makes it at least UNKNOWN: never PASS;
//! - a camera that is not required is waited for in the same way, and its verdict counts when
//!   it reported in time (its FAIL fails the part); when it has not, it is listed with its
//!   status and does not change the verdict;
//! - a report of a part that was already joined (it came after its deadline) is counted as
//!   late and dropped: the part's verdict, already sent, does not change.
//!
//! A camera that misses a part is "missing" until it reports again, a stopped one until it is
//! back: each episode gives one [`Notice`] (for a stopped camera, when a part is first joined
//! without it: a camera that stops after its last part says nothing), and its return another.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use crate::meta::{CameraStatus, CameraVerdict, PartVerdictMeta, Verdict};

/// A camera's index in the join (stable while the join lives).
pub type CameraId = usize;

/// How bad a verdict is for a joined part: FAIL > UNKNOWN > REVIEW > PASS. A part a camera
/// could not judge may carry a defect only that camera sees, so it goes to the reject
/// (`reject-unknown`) rather than to review; unlike a single camera's part, where the frames
/// the model did judge decide first.
fn rank(verdict: Verdict) -> u8 {
    match verdict {
        Verdict::Pass => 0,
        Verdict::Review => 1,
        Verdict::Unknown => 2,
        Verdict::Fail => 3,
    }
}

fn worst(a: Option<Verdict>, b: Verdict) -> Option<Verdict> {
    match a {
        Some(a) if rank(a) >= rank(b) => Some(a),
        _ => Some(b),
    }
}

/// Joined part ids remembered to recognise late reports.
const REMEMBERED: usize = 4096;

/// A camera's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CameraCounts {
    /// Parts it reported in time.
    pub reported: u64,
    /// Parts joined without its report because their deadline passed.
    pub timeouts: u64,
    /// Parts joined without its report because it was stopped.
    pub stopped: u64,
    /// Reports that came after their part was joined (dropped).
    pub late: u64,
}

#[derive(Debug, Clone)]
struct Camera {
    name: String,
    required: bool,
    /// Stopped (end of stream or released) until it is back.
    stopped: bool,
    /// Released: no pad feeds it (a new pad with its name takes it over).
    released: bool,
    /// Missed a part and has not reported since.
    missing: bool,
    /// A part was joined without it while it was stopped (said once a stop).
    stop_said: bool,
    counts: CameraCounts,
}

/// Something about a camera the element says on the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The camera missed this part (its first since it last reported): a warning.
    Missing { camera: String, part_id: String },
    /// A part was joined without the camera because it had stopped (end of stream,
    /// released): a warning, once a stop. A camera that stops after its last part says
    /// nothing.
    Stopped { camera: String },
    /// A missing or stopped camera reports again.
    Back { camera: String },
    /// A report of a part already joined, dropped.
    Late { camera: String, part_id: String },
}

struct Pending {
    deadline: Instant,
    reports: HashMap<CameraId, PartVerdictMeta>,
}

/// What a call gives back: parts joined, in the order they were first reported, and notices.
#[derive(Debug, Default, PartialEq)]
pub struct Output {
    pub parts: Vec<PartVerdictMeta>,
    pub notices: Vec<Notice>,
}

pub struct Join {
    timeout: Duration,
    cameras: Vec<Camera>,
    pending: HashMap<String, Pending>,
    /// Pending part ids in the order of their first report.
    order: VecDeque<String>,
    joined: HashSet<String>,
    joined_order: VecDeque<String>,
    parts_joined: u64,
}

impl Join {
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            cameras: Vec::new(),
            pending: HashMap::new(),
            order: VecDeque::new(),
            joined: HashSet::new(),
            joined_order: VecDeque::new(),
            parts_joined: 0,
        }
    }

    /// The timeout of parts first reported from now on.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Forgets the pending and joined parts and the counters (a new run): every camera that
    /// is not released runs.
    pub fn reset(&mut self) {
        self.pending.clear();
        self.order.clear();
        self.joined.clear();
        self.joined_order.clear();
        self.parts_joined = 0;
        for camera in &mut self.cameras {
            camera.counts = CameraCounts::default();
            camera.missing = false;
            camera.stop_said = false;
            camera.stopped = camera.released;
        }
    }

    /// A new camera, running.
    pub fn add_camera(&mut self, name: &str, required: bool) -> CameraId {
        self.cameras.push(Camera {
            name: name.to_string(),
            required,
            stopped: false,
            released: false,
            missing: false,
            stop_said: false,
            counts: CameraCounts::default(),
        });
        self.cameras.len() - 1
    }

    /// Renames a camera. When a released camera has that name, `id` (a new camera that has
    /// reported nothing) gives way to it: the released camera is back, fed by `id`'s pad, and
    /// its id is returned; otherwise `id`.
    pub fn rename(&mut self, id: CameraId, name: &str, out: &mut Output) -> CameraId {
        let heir = self
            .cameras
            .iter()
            .position(|c| c.released && c.name == name)
            .filter(|&other| other != id && self.cameras[id].counts == CameraCounts::default());
        match heir {
            Some(other) => {
                let required = self.cameras[id].required;
                // The new camera leaves; it must not hold parts up.
                self.cameras[id].released = true;
                self.cameras[id].stopped = true;
                self.cameras[id].name.clear();
                let camera = &mut self.cameras[other];
                camera.released = false;
                camera.required = required;
                self.back(other, out);
                other
            }
            None => {
                self.cameras[id].name = name.to_string();
                id
            }
        }
    }

    pub fn set_required(&mut self, id: CameraId, required: bool) {
        if let Some(c) = self.cameras.get_mut(id) {
            c.required = required;
        }
    }

    pub fn name(&self, id: CameraId) -> Option<&str> {
        self.cameras.get(id).map(|c| c.name.as_str())
    }

    pub fn counts(&self, id: CameraId) -> CameraCounts {
        self.cameras.get(id).map(|c| c.counts).unwrap_or_default()
    }

    pub fn parts_joined(&self) -> u64 {
        self.parts_joined
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Whether every camera that is not released is stopped (and there is at least one).
    pub fn all_stopped(&self) -> bool {
        let mut live = self.cameras.iter().filter(|c| !c.released).peekable();
        live.peek().is_some() && live.all(|c| c.stopped)
    }

    /// When the next pending part times out.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.deadline).min()
    }

    fn back(&mut self, id: CameraId, out: &mut Output) {
        let camera = &mut self.cameras[id];
        if camera.missing || camera.stop_said {
            out.notices.push(Notice::Back {
                camera: camera.name.clone(),
            });
        }
        camera.stopped = false;
        camera.missing = false;
        camera.stop_said = false;
    }

    /// Camera `id` reports its verdict of a part at `now`.
    pub fn report(&mut self, id: CameraId, part: PartVerdictMeta, now: Instant) -> Output {
        let mut out = Output::default();
        if id >= self.cameras.len() {
            return out;
        }
        self.back(id, &mut out);
        if self.joined.contains(&part.part_id) {
            self.cameras[id].counts.late += 1;
            out.notices.push(Notice::Late {
                camera: self.cameras[id].name.clone(),
                part_id: part.part_id,
            });
            return out;
        }
        let part_id = part.part_id.clone();
        let timeout = self.timeout;
        let pending = self.pending.entry(part_id.clone()).or_insert_with(|| {
            self.order.push_back(part_id.clone());
            Pending {
                deadline: now + timeout,
                reports: HashMap::new(),
            }
        });
        // A second report of the same part by the same camera replaces the first.
        pending.reports.insert(id, part);
        self.join_complete(&mut out);
        out
    }

    /// Camera `id` stopped (end of stream, or its pad released when `released`): parts
    /// waiting only for it are joined now, with it stopped.
    pub fn stop(&mut self, id: CameraId, released: bool) -> Output {
        let mut out = Output::default();
        let Some(camera) = self.cameras.get_mut(id) else {
            return out;
        };
        camera.released |= released;
        camera.stopped = true;
        self.join_complete(&mut out);
        out
    }

    /// Camera `id` runs again (a new stream after its end): it is waited for again.
    pub fn restart(&mut self, id: CameraId) -> Output {
        let mut out = Output::default();
        if id < self.cameras.len() && !self.cameras[id].released {
            self.back(id, &mut out);
        }
        out
    }

    /// Joins the parts whose deadline has passed at `now`.
    pub fn poll(&mut self, now: Instant) -> Output {
        let mut out = Output::default();
        let due: Vec<String> = self
            .order
            .iter()
            .filter(|id| self.pending[*id].deadline <= now)
            .cloned()
            .collect();
        for part_id in due {
            self.finish(&part_id, &mut out);
        }
        out
    }

    /// Joins every pending part now (end of stream on every camera).
    pub fn flush(&mut self) -> Output {
        let mut out = Output::default();
        for part_id in self.order.clone() {
            self.finish(&part_id, &mut out);
        }
        out
    }

    /// Joins the pending parts every running camera has reported.
    fn join_complete(&mut self, out: &mut Output) {
        let complete: Vec<String> = self
            .order
            .iter()
            .filter(|part_id| {
                let reports = &self.pending[*part_id].reports;
                self.cameras
                    .iter()
                    .enumerate()
                    .all(|(id, c)| c.stopped || reports.contains_key(&id))
            })
            .cloned()
            .collect();
        for part_id in complete {
            self.finish(&part_id, out);
        }
    }

    /// Joins a pending part: cameras without a report are stopped or timed out.
    fn finish(&mut self, part_id: &str, out: &mut Output) {
        let Some(pending) = self.pending.remove(part_id) else {
            return;
        };
        self.order.retain(|p| p != part_id);
        if self.joined_order.len() >= REMEMBERED
            && let Some(oldest) = self.joined_order.pop_front()
        {
            self.joined.remove(&oldest);
        }
        self.joined.insert(part_id.to_string());
        self.joined_order.push_back(part_id.to_string());
        self.parts_joined += 1;

        let mut joined = PartVerdictMeta {
            part_id: part_id.to_string(),
            ..PartVerdictMeta::default()
        };
        let mut verdict: Option<Verdict> = None;
        let mut models: Vec<String> = Vec::new();
        let mut first_frame = u64::MAX;
        let mut all_shadow = true;
        for (id, camera) in self.cameras.iter_mut().enumerate() {
            let entry = match pending.reports.get(&id) {
                Some(r) => {
                    camera.counts.reported += 1;
                    verdict = worst(verdict, r.verdict);
                    all_shadow &= r.shadow;
                    first_frame = first_frame.min(r.first_frame);
                    joined.last_frame = joined.last_frame.max(r.last_frame);
                    joined.frames += r.frames;
                    joined.inspected_frames += r.inspected_frames;
                    // As for a camera's part: the most any one frame had.
                    for (most, n) in joined.counts.iter_mut().zip(r.counts) {
                        *most = (*most).max(n);
                    }
                    if !models.contains(&r.model_id) {
                        models.push(r.model_id.clone());
                    }
                    CameraVerdict {
                        name: camera.name.clone(),
                        status: CameraStatus::Reported,
                        required: camera.required,
                        verdict: r.verdict,
                        first_frame: Some(r.first_frame),
                        last_frame: Some(r.last_frame),
                        frames: r.frames,
                        inspected_frames: r.inspected_frames,
                        counts: r.counts,
                        model_id: r.model_id.clone(),
                    }
                }
                // A released camera that never reported this part is not listed.
                None if camera.released && camera.name.is_empty() => continue,
                None => {
                    let status = if camera.stopped {
                        camera.counts.stopped += 1;
                        if !camera.stop_said {
                            camera.stop_said = true;
                            out.notices.push(Notice::Stopped {
                                camera: camera.name.clone(),
                            });
                        }
                        CameraStatus::Stopped
                    } else {
                        camera.counts.timeouts += 1;
                        if !camera.missing {
                            camera.missing = true;
                            out.notices.push(Notice::Missing {
                                camera: camera.name.clone(),
                                part_id: part_id.to_string(),
                            });
                        }
                        CameraStatus::Timeout
                    };
                    if camera.required {
                        verdict = worst(verdict, Verdict::Unknown);
                    }
                    CameraVerdict {
                        name: camera.name.clone(),
                        status,
                        required: camera.required,
                        verdict: Verdict::Unknown,
                        ..CameraVerdict::default()
                    }
                }
            };
            joined.cameras.push(entry);
        }
        joined.verdict = verdict.unwrap_or(Verdict::Unknown);
        joined.shadow = all_shadow;
        joined.first_frame = if first_frame == u64::MAX {
            0
        } else {
            first_frame
        };
        joined.model_id = models.join(",");
        out.parts.push(joined);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_millis(500);

    fn part(id: &str, verdict: Verdict) -> PartVerdictMeta {
        PartVerdictMeta {
            part_id: id.into(),
            verdict,
            first_frame: 10,
            last_frame: 19,
            frames: 10,
            inspected_frames: 10,
            counts: [u32::from(verdict == Verdict::Fail), 0, 0, 0],
            model_id: "m".into(),
            ..PartVerdictMeta::default()
        }
    }

    fn verdicts(out: &Output) -> Vec<(&str, Verdict)> {
        out.parts
            .iter()
            .map(|p| (p.part_id.as_str(), p.verdict))
            .collect()
    }

    fn statuses(p: &PartVerdictMeta) -> Vec<(&str, CameraStatus, Verdict)> {
        p.cameras
            .iter()
            .map(|c| (c.name.as_str(), c.status, c.verdict))
            .collect()
    }

    fn two() -> (Join, CameraId, CameraId) {
        let mut j = Join::new(TIMEOUT);
        let a = j.add_camera("top", true);
        let b = j.add_camera("side", true);
        (j, a, b)
    }

    #[test]
    fn the_worst_of_the_cameras_wins_whatever_the_order() {
        let t0 = Instant::now();
        let (mut j, a, b) = two();
        // B reports parts 1 and 2 before A reports part 1.
        assert!(j.report(b, part("1", Verdict::Fail), t0).parts.is_empty());
        assert!(j.report(b, part("2", Verdict::Pass), t0).parts.is_empty());
        let out = j.report(a, part("1", Verdict::Pass), t0);
        assert_eq!(verdicts(&out), [("1", Verdict::Fail)]);
        let p = &out.parts[0];
        assert_eq!(
            statuses(p),
            [
                ("top", CameraStatus::Reported, Verdict::Pass),
                ("side", CameraStatus::Reported, Verdict::Fail)
            ]
        );
        assert_eq!((p.frames, p.counts[0], p.model_id.as_str()), (20, 1, "m"));
        assert_eq!(
            verdicts(&j.report(a, part("2", Verdict::Review), t0)),
            [("2", Verdict::Review)]
        );
        for (x, y, worst) in [
            (Verdict::Pass, Verdict::Unknown, Verdict::Unknown),
            (Verdict::Review, Verdict::Unknown, Verdict::Unknown),
            (Verdict::Fail, Verdict::Unknown, Verdict::Fail),
            (Verdict::Pass, Verdict::Pass, Verdict::Pass),
        ] {
            let id = format!("{x}{y}");
            j.report(a, part(&id, x), t0);
            assert_eq!(j.report(b, part(&id, y), t0).parts[0].verdict, worst);
        }
        assert_eq!(j.pending(), 0);
        assert_eq!(j.counts(a).reported, 6);
    }

    #[test]
    fn a_camera_that_does_not_report_in_time_makes_the_part_unknown() {
        let t0 = Instant::now();
        let (mut j, a, b) = two();
        j.report(a, part("1", Verdict::Pass), t0);
        assert_eq!(j.next_deadline(), Some(t0 + TIMEOUT));
        assert!(
            j.poll(t0 + TIMEOUT - Duration::from_millis(1))
                .parts
                .is_empty()
        );
        let out = j.poll(t0 + TIMEOUT);
        assert_eq!(verdicts(&out), [("1", Verdict::Unknown)]);
        assert_eq!(
            statuses(&out.parts[0])[1],
            ("side", CameraStatus::Timeout, Verdict::Unknown)
        );
        assert_eq!(
            out.notices,
            [Notice::Missing {
                camera: "side".into(),
                part_id: "1".into()
            }]
        );
        assert_eq!(j.counts(b).timeouts, 1);
        // Still missing: the next part times out too, without a second notice.
        j.report(a, part("2", Verdict::Pass), t0 + TIMEOUT);
        let out = j.poll(t0 + 2 * TIMEOUT);
        assert_eq!(verdicts(&out), [("2", Verdict::Unknown)]);
        assert!(out.notices.is_empty());
        // Its late report of part 1 is dropped and counted, and it is back.
        let out = j.report(b, part("1", Verdict::Fail), t0 + 2 * TIMEOUT);
        assert!(out.parts.is_empty());
        assert_eq!(
            out.notices,
            [
                Notice::Back {
                    camera: "side".into()
                },
                Notice::Late {
                    camera: "side".into(),
                    part_id: "1".into()
                }
            ]
        );
        assert_eq!(j.counts(b).late, 1);
        // Recovered: part 3 from both is a PASS.
        j.report(b, part("3", Verdict::Pass), t0 + 3 * TIMEOUT);
        assert_eq!(
            verdicts(&j.report(a, part("3", Verdict::Pass), t0 + 3 * TIMEOUT)),
            [("3", Verdict::Pass)]
        );
        assert_eq!(j.counts(b).timeouts, 2);
    }

    #[test]
    fn a_stopped_camera_makes_its_parts_unknown_until_it_is_back() {
        let t0 = Instant::now();
        let (mut j, a, b) = two();
        j.report(a, part("1", Verdict::Pass), t0);
        // B ends: part 1, waiting only for it, is joined at once.
        let out = j.stop(b, false);
        assert_eq!(verdicts(&out), [("1", Verdict::Unknown)]);
        assert_eq!(
            out.notices,
            [Notice::Stopped {
                camera: "side".into()
            }]
        );
        assert_eq!(
            statuses(&out.parts[0])[1],
            ("side", CameraStatus::Stopped, Verdict::Unknown)
        );
        // While it is stopped A's parts are joined without waiting, UNKNOWN, no new notice.
        let out = j.report(a, part("2", Verdict::Pass), t0);
        assert_eq!(verdicts(&out), [("2", Verdict::Unknown)]);
        assert!(j.stop(b, false).notices.is_empty());
        assert!(!j.all_stopped());
        // Back: waited for again.
        assert_eq!(
            j.restart(b).notices,
            [Notice::Back {
                camera: "side".into()
            }]
        );
        assert!(j.report(a, part("3", Verdict::Pass), t0).parts.is_empty());
        assert_eq!(
            verdicts(&j.report(b, part("3", Verdict::Pass), t0)),
            [("3", Verdict::Pass)]
        );
        assert_eq!((j.counts(b).stopped, j.counts(b).reported), (2, 1));
        // Both at their end: a pending part is flushed.
        j.report(a, part("4", Verdict::Fail), t0);
        j.stop(a, false);
        let out = j.stop(b, false);
        assert_eq!(verdicts(&out), [("4", Verdict::Fail)]);
        assert!(j.all_stopped());
    }

    #[test]
    fn a_released_camera_is_back_when_a_new_pad_takes_its_name() {
        let t0 = Instant::now();
        let (mut j, a, b) = two();
        // Nothing was waiting for it: nothing to say yet.
        assert_eq!(j.stop(b, true), Output::default());
        let out = j.report(a, part("1", Verdict::Pass), t0);
        assert_eq!(verdicts(&out), [("1", Verdict::Unknown)]);
        assert_eq!(
            out.notices,
            [Notice::Stopped {
                camera: "side".into()
            }]
        );
        let c = j.add_camera("sink_2", true);
        let mut out = Output::default();
        assert_eq!(j.rename(c, "side", &mut out), b);
        assert_eq!(
            out.notices,
            [Notice::Back {
                camera: "side".into()
            }]
        );
        j.report(b, part("2", Verdict::Pass), t0);
        let out = j.report(a, part("2", Verdict::Pass), t0);
        assert_eq!(verdicts(&out), [("2", Verdict::Pass)]);
        // The camera that gave way is not listed.
        assert_eq!(out.parts[0].cameras.len(), 2);
    }

    #[test]
    fn a_camera_that_is_not_required_counts_only_when_it_reports() {
        let t0 = Instant::now();
        let mut j = Join::new(TIMEOUT);
        let a = j.add_camera("top", true);
        let b = j.add_camera("extra", false);
        // Missing: the part is A's verdict, PASS, and B is listed as timed out.
        j.report(a, part("1", Verdict::Pass), t0);
        let out = j.poll(t0 + TIMEOUT);
        assert_eq!(verdicts(&out), [("1", Verdict::Pass)]);
        assert_eq!(
            statuses(&out.parts[0])[1],
            ("extra", CameraStatus::Timeout, Verdict::Unknown)
        );
        assert!(!out.parts[0].cameras[1].required);
        // Reported: its FAIL fails the part.
        j.report(a, part("2", Verdict::Pass), t0);
        assert_eq!(
            verdicts(&j.report(b, part("2", Verdict::Fail), t0)),
            [("2", Verdict::Fail)]
        );
        // Stopped: not waited for, and it does not make parts UNKNOWN.
        j.stop(b, false);
        assert_eq!(
            verdicts(&j.report(a, part("3", Verdict::Pass), t0)),
            [("3", Verdict::Pass)]
        );
        // Only it reported, the required camera timed out: UNKNOWN.
        j.restart(b);
        j.report(b, part("4", Verdict::Pass), t0);
        assert_eq!(verdicts(&j.poll(t0 + TIMEOUT)), [("4", Verdict::Unknown)]);
        let _ = a;
    }

    #[test]
    fn parts_are_joined_in_the_order_they_were_first_reported() {
        let t0 = Instant::now();
        let (mut j, a, _) = two();
        for (n, id) in ["7", "3", "9"].iter().enumerate() {
            j.report(
                a,
                part(id, Verdict::Pass),
                t0 + Duration::from_millis(n as u64),
            );
        }
        let out = j.poll(t0 + TIMEOUT + Duration::from_millis(1));
        assert_eq!(
            verdicts(&out),
            [("7", Verdict::Unknown), ("3", Verdict::Unknown)]
        );
        assert_eq!(verdicts(&j.flush()), [("9", Verdict::Unknown)]);
        assert_eq!(j.parts_joined(), 3);
    }
}
