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

use super::infer::{AnomalyOutput, FrameInput, InferError, Region};
use super::model::Identity;
use crate::analysis::Detection;
use crate::analysis::decode::{DecodeStats, MAX_CLASS_ID};
use crate::analysis::mask::Mask;
use crate::frame::{FrameView, PixelFormat, YuvMatrix};
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
    /// A frame of these caps to infer, tiled and cropped as given.
    pub fn input<'a>(
        &self,
        view: &'a FrameView<'a>,
        (tile_size, tile_overlap): (u32, u32),
        crop: Option<Region>,
    ) -> FrameInput<'a> {
        FrameInput {
            view,
            format: self.format,
            yuv: self.yuv,
            tile_size,
            tile_overlap,
            crop,
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
        }
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
mod tests {
    use super::*;

    fn caps() -> Caps {
        Caps {
            width: 64,
            height: 48,
            format: PixelFormat::RGB,
            yuv: YuvMatrix::bt601(),
        }
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
