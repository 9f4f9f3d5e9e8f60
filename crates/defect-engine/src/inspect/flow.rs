// SPDX-License-Identifier: MIT OR Apache-2.0
//! A frame's way from its part to its verdict, free of GStreamer: what the adapter's streaming
//! thread asks of the engine at each frame, so that it only maps the frame (once), calls the
//! engine and reports.
//!
//! With the model on the streaming thread (`async-inference=false`):
//! 1. [`Stream::begin`] (under the adapter's running-state lock, with the current model
//!    locked and any pending model adopted): counts the frame in its part and decides its
//!    [`Step`]: run the model, or carry the result of an earlier frame of the part
//!    (`interval`);
//! 2. [`Engine::look`] (no running-state lock): on the frame's one mapping (made only when
//!    [`Begun::needs_view`]), runs the model when the step says so and takes drift's image
//!    statistics when drift is on;
//! 3. [`Stream::conclude_looked`] (the running-state lock again): the verdict, the result
//!    carried forward, the part, and the warnings not given yet.
//!
//! With the asynchronous worker (`async-inference=true`), all under the running-state lock:
//! [`Stream::begin_pending`] takes the worker's finished results and counts the frame; the
//! adapter hands it to the worker, [`Engine::handed`] says what the frame is to its part
//! (pending its result, or skipped and counted), and [`Stream::decide_pending`] decides it from
//! the newest result of its part. At end of stream, [`Stream::end`].

use std::sync::Arc;

use super::engine::Engine;
use super::infer::{FrameInput, InferError, Region, Thresholds};
use super::model::{Identity, Loaded};
use super::stream::{Applied, Caps, Decided, DriftImage, Finished, Frame, Notes, Output, Stream};
use crate::frame::FrameView;
use crate::monitor::drift::{image_stats, sample_step};
use crate::policy::{PartVerdict, Seen};

/// What a frame's inference takes of the settings (copied from the properties at each frame).
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub thresholds: Thresholds,
    /// `tile-size` and `tile-overlap` (0: whole frames).
    pub tiling: (u32, u32),
    /// `test-time-flip`: detectors also run on the mirrored frame.
    pub test_time_flip: bool,
    /// The part of the frame a classifier sees (`crop`).
    pub crop: Option<Region>,
    /// The model runs on every `interval`-th frame; the frames between carry its result.
    pub interval: u32,
    /// Without a part named upstream, parts of this many frames (0: none).
    pub frames_per_part: u32,
}

impl Options {
    /// A frame of `caps` to infer, tiled and cropped as these options say.
    pub fn input<'a>(&self, caps: &Caps, view: &'a FrameView<'a>) -> FrameInput<'a> {
        caps.input(view, self.tiling, self.crop, self.test_time_flip)
    }
}

/// What the streaming thread does with a counted frame.
pub enum Step {
    /// Run the model on it.
    Infer,
    /// Carry the result of frame `from` of the same part and caps (the model does not run).
    Carry { from: u64, output: Output },
}

/// A frame of the streaming thread, counted, before its pixels are looked at.
pub struct Begun {
    pub frame: Frame,
    pub caps: Caps,
    pub step: Step,
    /// Drift is on: the frame's image statistics are wanted.
    pub drift: bool,
}

impl Begun {
    /// Whether the frame must be mapped: for the model, or for drift's image statistics.
    pub fn needs_view(&self) -> bool {
        self.drift || matches!(self.step, Step::Infer)
    }
}

/// A frame looked at: the result its verdict comes from, and drift's image statistics.
pub struct Looked {
    pub frame: Frame,
    pub output: Output,
    /// The frame whose result it carries; None when the model ran on it.
    pub carried_from: Option<u64>,
    /// Taken on the same mapping as the model's input; None when drift is off.
    pub image: Option<DriftImage>,
}

/// Why a frame could not be looked at.
#[derive(Debug)]
pub enum FrameError {
    /// The model was to run and none is loaded.
    NoModel,
    /// The model was to run and the frame could not be mapped (the reason).
    Unmapped(String),
    Infer(InferError),
}

impl From<InferError> for FrameError {
    fn from(error: InferError) -> Self {
        FrameError::Infer(error)
    }
}

/// A frame's view as the adapter hands it over: None when it was not mapped (not needed), an
/// error when it could not be.
pub type View<'a, 'b> = Option<Result<&'a FrameView<'b>, String>>;

/// Drift's image statistics of a frame of `caps`, on the subsampled grid.
pub fn drift_image(view: &FrameView, caps: &Caps) -> DriftImage {
    image_stats(
        view,
        caps.format,
        caps.yuv,
        sample_step(view.width, view.height),
    )
}

/// Drift's image statistics from a frame's view as handed over.
fn drift_image_of(view: &View, caps: &Caps) -> DriftImage {
    match view {
        Some(Ok(view)) => drift_image(view, caps),
        Some(Err(reason)) => Err(reason.clone()),
        None => Err("the frame was not mapped".into()),
    }
}

impl Stream {
    /// Step 1: counts the frame of the part `part_from_buffer` names (else the part of the
    /// upstream event, else its block of `frames_per_part`) and decides whether the model runs
    /// on it. `model_changed`: a model was adopted at this frame; its predecessor's result is
    /// not carried. `drift`: drift is on.
    pub fn begin(
        &mut self,
        part_from_buffer: Option<String>,
        model_changed: bool,
        drift: bool,
        options: &Options,
    ) -> Begun {
        if model_changed {
            self.carry = None;
        }
        let frame = self.count(self.part_of(part_from_buffer, options.frames_per_part));
        let step = match self.carried_for(frame.number, frame.key, options.interval) {
            Some(carry) => Step::Carry {
                from: carry.frame,
                output: carry.output(),
            },
            None => Step::Infer,
        };
        Begun {
            frame,
            caps: self.caps,
            step,
            drift,
        }
    }

    /// Step 3: the verdict of a frame looked at ([`Stream::conclude`]), with drift's image
    /// statistics in [`Decided::image`].
    pub fn conclude_looked(&mut self, looked: Looked, interval: u32) -> (Decided, Notes) {
        let (mut decided, notes) =
            self.conclude(looked.frame, looked.output, looked.carried_from, interval);
        decided.image = looked.image;
        (decided, notes)
    }

    /// The asynchronous frame begins: the worker's `finished` results are applied first (each
    /// counts for its own frame's part); after a failed one the stream cannot go on and no
    /// frame is counted. Else the frame of the part `part_from_buffer` names (as in
    /// [`Stream::begin`]) is counted.
    pub fn begin_pending(
        &mut self,
        finished: Vec<Finished>,
        part_from_buffer: Option<String>,
        frames_per_part: u32,
    ) -> (Applied, Option<Pending>) {
        let applied = self.apply_finished(finished);
        if applied.failure.is_some() {
            return (applied, None);
        }
        let frame = self.count(self.part_of(part_from_buffer, frames_per_part));
        // Without parts the queue is kept full; with parts, a busy worker queues only the
        // frame a part needs (its first), so that every part is inspected.
        let may_queue = frame
            .part_id
            .as_deref()
            .is_none_or(|p| self.parts.needs_inspection(p));
        let pending = Pending {
            frame,
            caps: self.caps,
            caps_serial: self.caps_serial,
            may_queue,
        };
        (applied, Some(pending))
    }

    /// End of stream: the worker's last results (`finished`; `complete` false when some never
    /// came) count for their parts, the part in progress ends, and every part still to report
    /// is returned ([`Stream::finish`]), with the model that judged last: the carried result's,
    /// else the one `published` gives.
    pub fn end(
        &mut self,
        finished: Vec<Finished>,
        complete: bool,
        published: impl FnOnce() -> Option<Arc<Identity>>,
    ) -> Ended {
        let applied = self.apply_finished(finished);
        let complete = complete && applied.failure.is_none();
        let model_id = self
            .carry
            .as_ref()
            .map(|c| c.identity.model_id.clone())
            .or_else(|| published().map(|i| i.model_id.clone()))
            .unwrap_or_default();
        Ended {
            parts: self.finish(complete),
            model_id,
            applied,
        }
    }
}

/// An asynchronous frame, counted: what the worker is handed.
pub struct Pending {
    pub frame: Frame,
    pub caps: Caps,
    /// The caps the frame came with (results are carried only to frames of the same caps).
    pub caps_serial: u64,
    /// A busy worker may queue it (one frame at most): every frame without parts, a part's
    /// first frame with parts.
    pub may_queue: bool,
}

/// What became of a frame handed to the asynchronous worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submit {
    Accepted,
    /// The worker is busy and its queue full: the frame is not inferred.
    Busy,
    /// The worker has ended (after an error it reported).
    Gone,
}

/// What end of stream reports ([`Stream::end`]).
pub struct Ended {
    /// Parts whose verdicts are complete, oldest first.
    pub parts: Vec<PartVerdict>,
    /// The model the part messages name.
    pub model_id: String,
    /// What the worker's last results asked to report.
    pub applied: Applied,
}

impl<R: Send + 'static> Engine<R> {
    /// Runs `loaded` on a frame and counts its runs that shared a batch.
    pub fn infer(
        &self,
        loaded: &mut Loaded,
        input: &FrameInput,
        thresholds: Thresholds,
    ) -> Result<Output, InferError> {
        let result = loaded.infer(input, thresholds)?;
        self.count_batched(result.batched);
        Ok(Output::of(result, loaded.identity.clone()))
    }

    /// Step 2: on the frame's one mapping (`view`; None when [`Begun::needs_view`] said it was
    /// not needed), drift's image statistics when drift is on, and the model's result of the
    /// frame (`model`: the current one) or the result it carries.
    pub fn look(
        &self,
        begun: Begun,
        model: Option<&mut Loaded>,
        view: View,
        options: &Options,
    ) -> Result<Looked, FrameError> {
        let Begun {
            frame,
            caps,
            step,
            drift,
        } = begun;
        let image = drift.then(|| drift_image_of(&view, &caps));
        let (output, carried_from) = match step {
            Step::Carry { from, output } => (output, Some(from)),
            Step::Infer => {
                let loaded = model.ok_or(FrameError::NoModel)?;
                let view = match view {
                    Some(view) => view.map_err(FrameError::Unmapped)?,
                    None => return Err(FrameError::Unmapped("the frame was not mapped".into())),
                };
                let input = options.input(&caps, view);
                (self.infer(loaded, &input, options.thresholds)?, None)
            }
        };
        Ok(Looked {
            frame,
            output,
            carried_from,
            image,
        })
    }

    /// What a frame handed to the worker is to its part: pending its result, or (the worker
    /// busy) not inspected, counted as skipped. None when the worker has ended after an error
    /// it reported: no result will come.
    pub fn handed(&self, submit: Submit) -> Option<Seen> {
        match submit {
            Submit::Accepted => Some(Seen::Pending),
            Submit::Busy => {
                self.skipped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Some(Seen::NotInspected)
            }
            Submit::Gone => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use super::*;
    use crate::frame::PixelFormat;
    use crate::inspect::stream::tests::{caps, identity, result, scratch};
    use crate::policy::Verdict;

    fn options(interval: u32, frames_per_part: u32) -> Options {
        Options {
            thresholds: Thresholds {
                confidence: 0.25,
                iou: 0.45,
                max_detections: 300,
                top_k: 5,
            },
            tiling: (0, 0),
            test_time_flip: false,
            crop: None,
            interval,
            frames_per_part,
        }
    }

    /// A grey RGB frame of `caps()` (64x48).
    fn grey() -> Vec<u8> {
        vec![128u8; 64 * 48 * 3]
    }

    fn view(data: &[u8]) -> FrameView<'_> {
        FrameView {
            width: 64,
            height: 48,
            planes: [data, &[], &[]],
            strides: [64 * 3, 0, 0],
        }
    }

    #[test]
    fn a_frame_is_inferred_then_carried_for_interval_frames_and_a_new_model_drops_the_carry() {
        let engine = Engine::<()>::default();
        let options = options(3, 0);
        let mut stream = Stream::new(caps());
        let begun = stream.begin(Some("a".into()), false, false, &options);
        assert!(matches!(begun.step, Step::Infer));
        assert!(begun.needs_view(), "the model needs the pixels");
        assert_eq!(begun.frame.part_id.as_deref(), Some("a"));
        // No model loaded: an error, not a verdict.
        assert!(matches!(
            engine.look(begun, None, None, &options),
            Err(FrameError::NoModel)
        ));
        // The frame's result (as the model would give it) is concluded and carried.
        let frame = stream.count(Some("a".into()));
        let looked = Looked {
            frame,
            output: result(vec![scratch()], 0),
            carried_from: None,
            image: None,
        };
        let (decided, _) = stream.conclude_looked(looked, options.interval);
        assert!(decided.inspected);
        let begun = stream.begin(Some("a".into()), false, false, &options);
        assert!(
            !begun.needs_view(),
            "a carried frame without drift is not mapped"
        );
        let looked = engine.look(begun, None, None, &options).unwrap();
        assert_eq!(looked.carried_from, Some(1));
        assert!(looked.image.is_none());
        let (decided, notes) = stream.conclude_looked(looked, options.interval);
        assert!(!decided.inspected);
        assert_eq!(decided.carried_from, Some(1));
        assert_eq!(decided.verdict.judged.len(), 1);
        assert!(notes.warnings.is_empty());
        // A model adopted at this frame: its predecessor's result is not carried.
        let begun = stream.begin(Some("a".into()), true, false, &options);
        assert!(matches!(begun.step, Step::Infer));
        assert!(stream.carry.is_none());
        assert_eq!(engine.batched.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn drift_takes_its_image_statistics_on_the_frames_one_mapping() {
        let engine = Engine::<()>::default();
        let options = options(2, 0);
        let mut stream = Stream::new(caps());
        stream.carry = Some(crate::inspect::stream::Carry {
            frame: 0,
            part: None,
            caps_serial: 0,
            detections: Vec::new(),
            anomaly: None,
            masks: None,
            identity: identity(),
            inference: Duration::from_millis(3),
        });
        stream.frame_number = 1;
        let begun = stream.begin(None, false, true, &options);
        assert!(matches!(begun.step, Step::Carry { from: 0, .. }));
        assert!(
            begun.needs_view(),
            "drift needs the pixels of a carried frame"
        );
        let data = grey();
        let view = view(&data);
        let looked = engine.look(begun, None, Some(Ok(&view)), &options).unwrap();
        let image = looked.image.clone().unwrap().unwrap();
        assert_eq!(Ok(image), drift_image(&view, &caps()));
        let (decided, _) = stream.conclude_looked(looked, options.interval);
        assert!(decided.image.is_some_and(|i| i.is_ok()));
        // A frame that could not be mapped: drift says why, the carried verdict stands.
        let begun = stream.begin(None, false, true, &options);
        assert!(matches!(begun.step, Step::Infer), "frame 2 of interval 2");
        assert!(matches!(
            engine.look(begun, None, Some(Err("cannot map".into())), &options),
            Err(FrameError::NoModel)
        ));
        let begun = stream.begin(None, false, true, &options);
        let looked = engine
            .look(begun, None, Some(Err("cannot map".into())), &options)
            .unwrap();
        assert_eq!(looked.image, Some(Err("cannot map".into())));
        // Off: a carried frame is not mapped.
        stream.frame_number = 5;
        let begun = stream.begin(None, false, false, &options);
        assert!(matches!(begun.step, Step::Carry { from: 0, .. }));
        assert!(!begun.drift && !begun.needs_view());
    }

    #[test]
    fn an_asynchronous_frame_is_pending_or_skipped_and_a_failure_stops_the_stream() {
        let engine = Engine::<()>::default();
        let mut stream = Stream::new(caps());
        let (applied, pending) = stream.begin_pending(Vec::new(), Some("a".into()), 0);
        assert!(applied.failure.is_none());
        let pending = pending.unwrap();
        assert!(
            pending.may_queue,
            "a part's first frame may wait in the queue"
        );
        assert_eq!((pending.frame.number, pending.caps_serial), (0, 0));
        let seen = engine.handed(Submit::Accepted).unwrap();
        let decided = stream
            .decide_pending(pending.frame, seen, || Some(identity()))
            .unwrap();
        assert_eq!(decided.verdict.verdict, Verdict::Unknown);
        assert!(decided.inspected);
        // The part's next frame is not queued behind a busy worker: skipped, counted.
        let (_, pending) = stream.begin_pending(Vec::new(), Some("a".into()), 0);
        let pending = pending.unwrap();
        assert!(!pending.may_queue, "the part already has a frame inspected");
        assert_eq!(engine.handed(Submit::Busy), Some(Seen::NotInspected));
        assert_eq!(engine.skipped.load(Ordering::Relaxed), 1);
        assert_eq!(engine.handed(Submit::Gone), None);
        // Without parts every frame may be queued.
        let (_, pending) = stream.begin_pending(Vec::new(), None, 0);
        assert!(pending.unwrap().may_queue);
        // A failed result: no frame is counted.
        let number = stream.frame_number;
        let (applied, pending) = stream.begin_pending(
            vec![Finished {
                frame: 0,
                part: None,
                caps_serial: 0,
                outcome: Err(InferError::Failed("broken".into())),
            }],
            None,
            0,
        );
        assert_eq!(applied.failure.as_deref(), Some("broken"));
        assert!(pending.is_none());
        assert_eq!(stream.frame_number, number);
    }

    #[test]
    fn end_of_stream_reports_the_parts_with_the_model_that_judged_last() {
        let mut stream = Stream::new(caps());
        let frame = stream.count(Some("a".into()));
        let key = frame.key;
        stream.decide_pending(frame, Seen::Pending, || Some(identity()));
        // The worker's last result counts for part a, which ends with the stream.
        let ended = stream.end(
            vec![Finished {
                frame: 0,
                part: key,
                caps_serial: 0,
                outcome: Ok(result(vec![scratch()], 0)),
            }],
            true,
            || None,
        );
        assert_eq!(ended.model_id, "m");
        assert_eq!(ended.parts.len(), 1);
        assert_eq!(ended.parts[0].part_id, "a");
        assert_ne!(ended.parts[0].verdict, Verdict::Unknown);
        // Results missing: the part waiting for them is abandoned (never PASS).
        let mut stream = Stream::new(caps());
        let frame = stream.count(Some("b".into()));
        stream.decide_pending(frame, Seen::Pending, || Some(identity()));
        let ended = stream.end(Vec::new(), false, || Some(identity()));
        assert_eq!(ended.model_id, "m", "the published model");
        assert_eq!(ended.parts.len(), 1);
        assert_ne!(ended.parts[0].verdict, Verdict::Pass);
        let ended = Stream::new(caps()).end(Vec::new(), true, || None);
        assert!(ended.parts.is_empty() && ended.model_id.is_empty());
    }

    #[test]
    fn options_tile_and_crop_the_input() {
        let mut options = options(1, 0);
        options.tiling = (32, 8);
        options.crop = Some((1, 2, 3, 4));
        let data = grey();
        let view = view(&data);
        let input = options.input(&caps(), &view);
        assert_eq!((input.tile_size, input.tile_overlap), (32, 8));
        assert_eq!(input.crop, Some((1, 2, 3, 4)));
        assert_eq!(input.format, PixelFormat::RGB);
    }
}
