// SPDX-License-Identifier: MIT OR Apache-2.0
//! A stream's state between its first caps and stop, free of GStreamer: the frames' caps,
//! frame counting, the parts and their verdicts, the result carried forward to later frames
//! (`interval`, asynchronous inference), the asynchronous worker's results, the regions'
//! re-decided frames (`on-rois`) and which decoder warnings were given.
//!
//! Everything here is touched by one thread at a time: the adapter keeps a [`Stream`] behind
//! its one running-state lock and holds that lock only to read or update it, never across an
//! inference.

use std::sync::Arc;
use std::time::Duration;

use super::infer::{AnomalyOutput, FrameInput, InferError, Inference, Region};
use super::model::Identity;
use crate::analysis::Detection;
use crate::analysis::decode::{DecodeStats, MAX_CLASS_ID};
use crate::analysis::mask::Mask;
use crate::frame::{FrameView, PixelFormat, YuvMatrix};
use crate::monitor::drift::ImageStats;
use crate::policy::stages::StagedParts;
use crate::policy::{FrameVerdict, PartKey, PartTracker, PartVerdict, Seen};

/// The frames of one caps, as the engine needs them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Caps {
    pub width: u32,
    pub height: u32,
    pub format: PixelFormat,
    pub yuv: YuvMatrix,
}

impl Caps {
    /// A frame of these caps to infer, tiled, cropped and mirrored as given.
    pub fn input<'a>(
        &self,
        view: &'a FrameView<'a>,
        (tile_size, tile_overlap): (u32, u32),
        crop: Option<Region>,
        test_time_flip: bool,
    ) -> FrameInput<'a> {
        FrameInput {
            view,
            format: self.format,
            yuv: self.yuv,
            tile_size,
            tile_overlap,
            crop,
            test_time_flip,
        }
    }
}

/// A result carried forward to later frames (`interval`, `async-inference`).
pub struct Carry {
    pub frame: u64,
    pub part: Option<PartKey>,
    pub caps_serial: u64,
    pub detections: Vec<Detection>,
    pub anomaly: Option<Arc<AnomalyOutput>>,
    /// A segmentation model's masks, one per detection.
    pub masks: Option<Arc<Vec<Mask>>>,
    pub identity: Arc<Identity>,
    pub inference: Duration,
}

/// What the model gave for a frame on the asynchronous worker.
pub struct Output {
    pub detections: Vec<Detection>,
    pub anomaly: Option<Arc<AnomalyOutput>>,
    pub masks: Option<Arc<Vec<Mask>>>,
    pub duration: Duration,
    pub stats: DecodeStats,
    /// The model and policy that made it.
    pub identity: Arc<Identity>,
}

impl Output {
    /// A model's result of a frame (`identity`: the model and policy that made it).
    pub fn of(result: Inference, identity: Arc<Identity>) -> Self {
        Self {
            detections: result.detections,
            anomaly: result.anomaly,
            masks: result.masks,
            duration: result.duration,
            stats: result.stats,
            identity,
        }
    }
}

impl Carry {
    /// The carried result, as a frame that carries it reports it (no decoder figures: they
    /// were reported with the frame the model ran on).
    pub fn output(&self) -> Output {
        Output {
            detections: self.detections.clone(),
            anomaly: self.anomaly.clone(),
            masks: self.masks.clone(),
            duration: self.inference,
            stats: DecodeStats::default(),
            identity: self.identity.clone(),
        }
    }
}

/// A frame counted by [`Stream::next_frame`]: its number and part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub number: u64,
    pub key: Option<PartKey>,
    pub part_id: Option<String>,
}

/// What a frame decided on the streaming thread asks the adapter to say: an anomaly map with
/// NaN or infinite scores ([`Warned::non_finite_map`]), then the decoder's new warnings.
#[derive(Debug, Default)]
pub struct Notes {
    pub non_finite: Option<(String, bool)>,
    pub warnings: Vec<String>,
}

/// The result of one frame handed to the asynchronous worker.
pub struct Finished {
    pub frame: u64,
    pub part: Option<PartKey>,
    pub caps_serial: u64,
    pub outcome: Result<Output, InferError>,
}

/// Which decoder warnings were given (each once per stream).
#[derive(Debug, Default)]
pub struct Warned {
    non_finite: bool,
    inverted: bool,
    bad_class: bool,
    clamped: bool,
    regions_over_limit: bool,
    /// An anomaly map (or image score) with NaN or infinite values.
    non_finite_map: bool,
}

impl Warned {
    /// The warnings about what the decoder dropped or changed in `stats` that this stream has
    /// not given yet.
    pub fn new_warnings(&mut self, stats: &DecodeStats) -> Vec<String> {
        let mut warnings = Vec::new();
        let mut once = |flag: &mut bool, count: usize, message: &dyn Fn() -> String| {
            if count > 0 && !*flag {
                *flag = true;
                warnings.push(message());
            }
        };
        once(&mut self.non_finite, stats.non_finite, &|| {
            format!(
                "the model output {} candidates with NaN or infinite values; they were dropped",
                stats.non_finite
            )
        });
        once(&mut self.inverted, stats.inverted, &|| {
            format!(
                "the model output {} inverted boxes (x2 < x1 or y2 < y1); they were dropped",
                stats.inverted
            )
        });
        once(&mut self.bad_class, stats.bad_class, &|| {
            format!(
                "the model output {} detections whose class is not an integer in [0, {MAX_CLASS_ID}); they were dropped",
                stats.bad_class
            )
        });
        once(&mut self.clamped, stats.clamped, &|| {
            format!(
                "the model output {} scores above 1 (up to {:e}); they were clamped to 1: scores must be probabilities in [0, 1]",
                stats.clamped, stats.max_score
            )
        });
        warnings
    }

    /// An anomaly verdict made with NaN or infinite scores: its text, and whether it is the
    /// first of this stream (a warning; later ones go to the debug log).
    pub fn non_finite_map(&mut self, frame: u64, verdict: &FrameVerdict) -> Option<(String, bool)> {
        let non_finite = verdict.non_finite.as_ref()?;
        let text = format!(
            "frame {frame}: {non_finite}; the frame is {} (NaN or infinite scores are never passed)",
            verdict.verdict.as_str()
        );
        let first = !std::mem::replace(&mut self.non_finite_map, true);
        Some((text, first))
    }

    /// `on-rois`: the warning, once per stream, for a frame with more regions than
    /// `max_regions` (the rest were left unclassified).
    pub fn regions_over_limit(&mut self, regions: usize, max_regions: usize) -> Option<String> {
        if regions <= max_regions || self.regions_over_limit {
            return None;
        }
        self.regions_over_limit = true;
        Some(format!(
            "a frame has {regions} regions of interest, more than max-rois ({max_regions}): the first {max_regions} were classified and the other {} left unclassified (their upstream judgement stands); warned once per stream",
            regions - max_regions
        ))
    }
}

/// Drift's image statistics of a frame, or why there are none.
pub type DriftImage = Result<ImageStats, String>;

/// A frame's verdict and where it came from, ready to be reported.
pub struct Decided {
    pub identity: Arc<Identity>,
    pub frame_number: u64,
    pub verdict: FrameVerdict,
    pub inference: Duration,
    pub carried_from: Option<u64>,
    pub inspected: bool,
    pub part_id: Option<String>,
    /// Parts whose verdicts are complete, oldest first.
    pub parts: Vec<PartVerdict>,
    pub width: f32,
    pub height: f32,
    /// An anomaly model's map and score, for the anomaly map meta.
    pub anomaly: Option<Arc<AnomalyOutput>>,
    /// Drift's image statistics of the frame, taken on the frame's one mapping; None when
    /// drift is off.
    pub image: Option<DriftImage>,
}

/// What the asynchronous worker's results did to the stream.
#[derive(Debug, Default)]
pub struct Applied {
    /// Decoder warnings not given yet in this stream.
    pub warnings: Vec<String>,
    /// An inference that failed (its part is abandoned); the stream cannot go on.
    pub failure: Option<String>,
    /// Anomaly verdicts made with NaN or infinite scores ([`Warned::non_finite_map`]).
    pub non_finite: Vec<(String, bool)>,
}

/// What lives between the first caps and stop.
pub struct Stream {
    pub caps: Caps,
    /// Counts caps: results are carried only to frames of the caps they were made for.
    pub caps_serial: u64,
    pub frame_number: u64,
    pub parts: PartTracker,
    /// The part named by the last upstream part event.
    pub upstream_part: Option<String>,
    pub carry: Option<Carry>,
    pub warned: Warned,
    /// `on-rois`: the re-decided frames of the parts in progress.
    pub staged_parts: StagedParts,
}

impl Stream {
    pub fn new(caps: Caps) -> Self {
        Self {
            caps,
            caps_serial: 0,
            frame_number: 0,
            parts: PartTracker::new(),
            upstream_part: None,
            carry: None,
            warned: Warned::default(),
            staged_parts: StagedParts::default(),
        }
    }

    /// New caps: the frame count and the part in progress go on; results are no longer
    /// carried to the new caps' frames.
    pub fn set_caps(&mut self, caps: Caps) {
        self.caps = caps;
        self.caps_serial += 1;
    }

    /// A flush: parts in progress, the carried result and the re-decided frames are dropped.
    pub fn flush(&mut self) {
        self.parts.reset();
        self.carry = None;
        self.staged_parts.clear();
    }

    /// The frames' width and height, for boxes and anomaly regions.
    pub fn size(&self) -> (f32, f32) {
        (self.caps.width as f32, self.caps.height as f32)
    }

    /// Counts a frame of part `part_id`: its number and its part's key.
    pub fn next_frame(&mut self, part_id: Option<&str>) -> (u64, Option<PartKey>) {
        let frame = self.frame_number;
        self.frame_number += 1;
        (frame, part_id.map(|p| self.parts.key_for(p)))
    }

    /// The part of the next frame: the one its buffer names (`from_buffer`), else the one the
    /// last upstream part event named, else (`frames_per_part` > 0) its block of frames.
    pub fn part_of(&self, from_buffer: Option<String>, frames_per_part: u32) -> Option<String> {
        from_buffer
            .or_else(|| self.upstream_part.clone())
            .or_else(|| {
                (frames_per_part > 0)
                    .then(|| (self.frame_number / frames_per_part as u64).to_string())
            })
    }

    /// Counts the next frame of part `part_id` ([`Stream::next_frame`]).
    pub fn count(&mut self, part_id: Option<String>) -> Frame {
        let (number, key) = self.next_frame(part_id.as_deref());
        Frame {
            number,
            key,
            part_id,
        }
    }

    /// The result carried to frames of part `key` under the current caps.
    pub fn carry_of(&self, key: Option<PartKey>) -> Option<&Carry> {
        self.carry
            .as_ref()
            .filter(|c| c.part == key && c.caps_serial == self.caps_serial)
    }

    /// With the model run every `interval` frames: the result frame `frame` of part `key`
    /// reuses instead of running the model (a new part, new caps or a new model are always
    /// inferred).
    pub fn carried_for(&self, frame: u64, key: Option<PartKey>, interval: u32) -> Option<&Carry> {
        if interval <= 1 || frame.is_multiple_of(interval as u64) {
            return None;
        }
        self.carry_of(key)
    }

    /// Adds the frame to its part and gathers what the report needs.
    #[allow(clippy::too_many_arguments)]
    pub fn decide(
        &mut self,
        identity: Arc<Identity>,
        frame_number: u64,
        part_id: Option<String>,
        seen: Seen,
        verdict: FrameVerdict,
        inference: Duration,
        carried_from: Option<u64>,
    ) -> Decided {
        match &part_id {
            Some(id) => {
                self.parts.observe(id, frame_number, seen);
            }
            None => self.parts.finish(),
        }
        let (width, height) = self.size();
        Decided {
            identity,
            frame_number,
            verdict,
            inference,
            carried_from,
            inspected: matches!(seen, Seen::Judged(..)),
            part_id,
            parts: self.parts.take_ready(),
            width,
            height,
            anomaly: None,
            image: None,
        }
    }

    /// The streaming thread's frame: decides it from `output`, the model's result of this
    /// frame, or (`carried_from`) the result of an earlier one. A result of this frame is
    /// kept to carry to the next `interval - 1` frames, and its decoder figures and anomaly
    /// scores are checked for the warnings not given yet. A carried result is not PASS by
    /// itself: the frame counts as not inspected for its part.
    pub fn conclude(
        &mut self,
        frame: Frame,
        output: Output,
        carried_from: Option<u64>,
        interval: u32,
    ) -> (Decided, Notes) {
        let inspected = carried_from.is_none();
        let mut notes = Notes::default();
        if inspected {
            notes.warnings = self.warned.new_warnings(&output.stats);
            if interval > 1 {
                self.carry = Some(Carry {
                    frame: frame.number,
                    part: frame.key,
                    caps_serial: self.caps_serial,
                    detections: output.detections.clone(),
                    anomaly: output.anomaly.clone(),
                    masks: output.masks.clone(),
                    identity: output.identity.clone(),
                    inference: output.duration,
                });
            }
        }
        let verdict = output.identity.evaluate(
            &output.detections,
            output.anomaly.as_deref(),
            output.masks.as_ref(),
            self.size(),
        );
        let seen = if inspected {
            notes.non_finite = self.warned.non_finite_map(frame.number, &verdict);
            Seen::Judged(verdict.verdict, verdict.counts)
        } else {
            Seen::NotInspected
        };
        // A frame carrying a result took no inference of its own.
        let inference = if inspected {
            output.duration
        } else {
            Duration::ZERO
        };
        let mut decided = self.decide(
            output.identity,
            frame.number,
            frame.part_id,
            seen,
            verdict,
            inference,
            carried_from,
        );
        decided.anomaly = output.anomaly;
        (decided, notes)
    }

    /// The asynchronous frame, handed to the worker (`seen` [`Seen::Pending`]) or not: it
    /// carries the newest result of its part, else it is UNKNOWN, decided by the model
    /// `published` gives (None when none is loaded).
    pub fn decide_pending(
        &mut self,
        frame: Frame,
        seen: Seen,
        published: impl FnOnce() -> Option<Arc<Identity>>,
    ) -> Option<Decided> {
        let size = self.size();
        let (identity, verdict, inference, carried_from, anomaly) = match self.carry_of(frame.key) {
            Some(c) => (
                c.identity.clone(),
                c.identity
                    .evaluate(&c.detections, c.anomaly.as_deref(), c.masks.as_ref(), size),
                c.inference,
                Some(c.frame),
                c.anomaly.clone(),
            ),
            // No result of this part yet: not PASS, UNKNOWN.
            None => (
                published()?,
                FrameVerdict::unknown(),
                Duration::ZERO,
                None,
                None,
            ),
        };
        let mut decided = self.decide(
            identity,
            frame.number,
            frame.part_id,
            seen,
            verdict,
            inference,
            carried_from,
        );
        decided.inspected = matches!(seen, Seen::Pending);
        decided.anomaly = anomaly;
        Some(decided)
    }

    /// Takes the worker's results: each counts for its own frame's part, and the newest is
    /// carried forward. Stops at a failed inference (its part abandoned).
    pub fn apply_finished(&mut self, finished: Vec<Finished>) -> Applied {
        let mut applied = Applied::default();
        let size = self.size();
        for result in finished {
            match result.outcome {
                Ok(output) => {
                    applied
                        .warnings
                        .extend(self.warned.new_warnings(&output.stats));
                    let verdict = output.identity.evaluate(
                        &output.detections,
                        output.anomaly.as_deref(),
                        output.masks.as_ref(),
                        size,
                    );
                    if let Some(note) = self.warned.non_finite_map(result.frame, &verdict) {
                        applied.non_finite.push(note);
                    }
                    if let Some(key) = result.part {
                        self.parts.result(key, verdict.verdict, &verdict.counts);
                    }
                    if self.carry.as_ref().is_none_or(|c| c.frame < result.frame) {
                        self.carry = Some(Carry {
                            frame: result.frame,
                            part: result.part,
                            caps_serial: result.caps_serial,
                            detections: output.detections,
                            anomaly: output.anomaly,
                            masks: output.masks,
                            identity: output.identity,
                            inference: output.duration,
                        });
                    }
                }
                Err(InferError::Interrupted) => {
                    if let Some(key) = result.part {
                        self.parts.abandon(key);
                    }
                }
                Err(InferError::Failed(reason)) => {
                    if let Some(key) = result.part {
                        self.parts.abandon(key);
                    }
                    applied.failure = Some(reason);
                    return applied;
                }
            }
        }
        applied
    }

    /// End of stream: ends the part in progress and returns every part still to report; with
    /// results missing (`complete` false, or parts still waiting) the waiting parts are
    /// abandoned (never PASS).
    pub fn finish(&mut self, complete: bool) -> Vec<PartVerdict> {
        self.parts.finish();
        if !complete || self.parts.has_pending() {
            self.parts.abandon_all();
        }
        self.parts.take_ready()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn caps() -> Caps {
        Caps {
            width: 64,
            height: 48,
            format: PixelFormat::RGB,
            yuv: YuvMatrix::bt601(),
        }
    }

    pub(crate) fn identity() -> Arc<Identity> {
        use crate::analysis::decode::OutputLayout;
        use crate::analysis::task::Task;
        use crate::runtime::ModelInfo;
        Arc::new(Identity {
            model: ModelInfo {
                path: "m.onnx".into(),
                input_name: "images".into(),
                channels: 3,
                width: 64,
                height: 64,
                output_shape: vec![1, 6, 84],
                task: Task::Detect,
                outputs: Vec::new(),
                anomaly: None,
                segment: None,
                anomaly_thresholds: (None, None),
                layout: OutputLayout::YoloV8,
                names: vec!["scratch".into(), "dent".into()],
                class_count: Some(2),
                metadata: Default::default(),
                provider: "CPU",
                sha256: String::new(),
                warm_run: Duration::ZERO,
                int8_risk: None,
            },
            policy: crate::policy::parse_policy("", "p.toml").unwrap(),
            model_id: "m".into(),
            policy_sha256: None,
            anomaly_thresholds: None,
        })
    }

    pub(crate) fn result(detections: Vec<Detection>, bad_class: usize) -> Output {
        Output {
            detections,
            anomaly: None,
            masks: None,
            duration: Duration::from_millis(7),
            stats: DecodeStats {
                bad_class,
                ..Default::default()
            },
            identity: identity(),
        }
    }

    pub(crate) fn scratch() -> Detection {
        Detection {
            class_id: 0,
            confidence: 0.9,
            bbox: crate::analysis::BBox {
                x1: 1.0,
                y1: 1.0,
                x2: 20.0,
                y2: 20.0,
            },
        }
    }

    #[test]
    fn a_frame_names_its_part_from_the_buffer_the_event_or_its_block() {
        let mut stream = Stream::new(caps());
        assert_eq!(stream.part_of(None, 0), None);
        assert_eq!(stream.part_of(None, 2).as_deref(), Some("0"));
        stream.frame_number = 5;
        assert_eq!(stream.part_of(None, 2).as_deref(), Some("2"));
        stream.upstream_part = Some("event".into());
        assert_eq!(stream.part_of(None, 2).as_deref(), Some("event"));
        assert_eq!(
            stream.part_of(Some("meta".into()), 2).as_deref(),
            Some("meta")
        );
        let frame = stream.count(Some("meta".into()));
        assert_eq!((frame.number, frame.part_id.as_deref()), (5, Some("meta")));
        assert!(frame.key.is_some());
        assert_eq!(stream.frame_number, 6);
    }

    #[test]
    fn an_inferred_frame_is_judged_and_carried_a_carrying_one_is_not_inspected() {
        let mut stream = Stream::new(caps());
        let frame = stream.count(None);
        let (decided, notes) = stream.conclude(frame, result(vec![scratch()], 2), None, 3);
        assert!(decided.inspected);
        assert_eq!(decided.carried_from, None);
        assert_eq!(decided.inference, Duration::from_millis(7));
        assert_eq!(decided.verdict.judged.len(), 1);
        assert_eq!(notes.warnings.len(), 1, "{:?}", notes.warnings);
        assert!(notes.non_finite.is_none());
        let carry = stream
            .carry
            .as_ref()
            .expect("interval 3 carries the result");
        assert_eq!((carry.frame, carry.detections.len()), (0, 1));
        // The next frame reuses it: same detections, no inference, not inspected, no
        // warnings again.
        let frame = stream.count(None);
        let carried = stream.carried_for(frame.number, frame.key, 3).unwrap();
        let (from, output) = (carried.frame, carried.output());
        let (decided, notes) = stream.conclude(frame, output, Some(from), 3);
        assert!(!decided.inspected);
        assert_eq!(decided.carried_from, Some(0));
        assert_eq!(decided.inference, Duration::ZERO);
        assert_eq!(decided.verdict.judged.len(), 1);
        assert!(notes.warnings.is_empty() && notes.non_finite.is_none());
        // Interval 1 carries nothing.
        let mut every = Stream::new(caps());
        let frame = every.count(None);
        every.conclude(frame, result(Vec::new(), 0), None, 1);
        assert!(every.carry.is_none());
    }

    #[test]
    fn a_pending_frame_without_a_result_of_its_part_is_unknown() {
        let mut stream = Stream::new(caps());
        let frame = stream.count(Some("a".into()));
        assert!(
            stream
                .decide_pending(frame.clone(), Seen::Pending, || None)
                .is_none(),
            "no model, no verdict"
        );
        let decided = stream
            .decide_pending(frame, Seen::Pending, || Some(identity()))
            .unwrap();
        assert_eq!(decided.verdict.verdict, crate::policy::Verdict::Unknown);
        assert!(decided.inspected && decided.carried_from.is_none());
        // The worker's result of frame 0 is carried to the part's next frame, not inspected.
        let key = stream.parts.key_for("a");
        let applied = stream.apply_finished(vec![Finished {
            frame: 0,
            part: Some(key),
            caps_serial: 0,
            outcome: Ok(result(vec![scratch()], 0)),
        }]);
        assert!(applied.failure.is_none());
        let frame = stream.count(Some("a".into()));
        let decided = stream
            .decide_pending(frame, Seen::NotInspected, || None)
            .unwrap();
        assert_eq!(decided.carried_from, Some(0));
        assert!(!decided.inspected);
        assert_eq!(decided.inference, Duration::from_millis(7));
        assert_eq!(decided.verdict.judged.len(), 1);
    }

    #[test]
    fn decoder_warnings_are_given_once_per_stream() {
        let mut warned = Warned::default();
        let stats = DecodeStats {
            non_finite: 3,
            ..Default::default()
        };
        let first = warned.new_warnings(&stats);
        assert_eq!(first.len(), 1);
        assert!(first[0].contains("3 candidates with NaN"), "{first:?}");
        assert!(warned.new_warnings(&stats).is_empty());
        let inverted = DecodeStats {
            inverted: 1,
            ..Default::default()
        };
        assert_eq!(warned.new_warnings(&inverted).len(), 1);
    }

    #[test]
    fn too_many_regions_are_warned_about_once() {
        let mut warned = Warned::default();
        assert_eq!(warned.regions_over_limit(64, 64), None);
        let warning = warned.regions_over_limit(70, 64).unwrap();
        assert!(
            warning.contains("70 regions") && warning.contains("other 6"),
            "{warning}"
        );
        assert_eq!(warned.regions_over_limit(5000, 64), None);
    }

    #[test]
    fn frames_and_parts_are_counted() {
        let mut stream = Stream::new(caps());
        let (first, key) = stream.next_frame(Some("a"));
        let (second, same) = stream.next_frame(Some("a"));
        assert_eq!((first, second), (0, 1));
        assert!(key.is_some() && key == same);
        assert_eq!(stream.next_frame(None), (2, None));
        assert_eq!(stream.size(), (64.0, 48.0));
    }

    #[test]
    fn nothing_is_carried_across_caps_or_on_inferred_frames() {
        let mut stream = Stream::new(caps());
        // Without a result nothing is carried, whatever the interval.
        assert!(stream.carried_for(1, None, 5).is_none());
        assert!(stream.carry_of(None).is_none());
        // Every frame inferred (interval 1), and every interval-th frame.
        assert!(stream.carried_for(3, None, 1).is_none());
        assert!(stream.carried_for(10, None, 5).is_none());
        stream.set_caps(caps());
        assert_eq!(stream.caps_serial, 1);
        // A worker failure is reported and stops the results.
        let applied = stream.apply_finished(vec![
            Finished {
                frame: 0,
                part: None,
                caps_serial: 1,
                outcome: Err(InferError::Interrupted),
            },
            Finished {
                frame: 1,
                part: None,
                caps_serial: 1,
                outcome: Err(InferError::Failed("broken".into())),
            },
        ]);
        assert_eq!(applied.failure.as_deref(), Some("broken"));
        assert!(stream.carry.is_none());
    }
}
