// SPDX-License-Identifier: MIT OR Apache-2.0
//! What both PLC sinks do with the verdicts they read, before each acts on them in its own
//! way: each frame's verdict and each finished part's go through the sink's [`Tracker`],
//! which says when a decision (a part's, or a frame's with `unit=frame`) is complete.

use std::sync::Mutex;
use std::time::Instant;

use super::PlcUnit;
use super::tracker::{Decision, Tracker};
use super::verdict::{self, FrameVerdict, PartVerdict};
use crate::element::lock;

/// What a PLC sink keeps of the verdicts between start and stop.
pub struct Verdicts {
    pub tracker: Tracker,
    /// Whether a frame without a readable verdict was reported on the bus.
    warned_no_meta: bool,
}

impl Verdicts {
    pub fn new(unit: PlcUnit) -> Self {
        Self {
            tracker: Tracker::new(unit.into()),
            warned_no_meta: false,
        }
    }
}

/// A PLC sink's state between start and stop.
pub trait Running {
    fn verdicts(&mut self) -> &mut Verdicts;
}

/// A PLC sink's `render`: hands the frame's verdict, and the decision it completes if any,
/// to `act`. A frame without a readable verdict is skipped (a warning the first time; it is
/// never read as PASS); a stopped sink is flushing.
pub fn render<R: Running>(
    element: &gst::Element,
    running: &Mutex<Option<R>>,
    buffer: &gst::BufferRef,
    act: impl FnOnce(&mut R, FrameVerdict, Option<Decision>),
) -> Result<gst::FlowSuccess, gst::FlowError> {
    let seen = Instant::now();
    let mut guard = lock(running);
    let running = guard.as_mut().ok_or(gst::FlowError::Flushing)?;
    let verdicts = running.verdicts();
    if let Some(frame) =
        verdict::frame_verdict_or_warn(element, buffer, &mut verdicts.warned_no_meta)
    {
        let decision = verdicts.tracker.frame(&frame, seen);
        act(running, frame, decision);
    }
    Ok(gst::FlowSuccess::Ok)
}

/// A PLC sink's `event`: hands a finished part's verdict (a `defect-part-verdict` event; a
/// malformed one is a warning) and the decision it completes to `act`. Other events, and
/// every event while stopped, do nothing here.
pub fn part_event<R: Running>(
    element: &gst::Element,
    running: &Mutex<Option<R>>,
    event: &gst::Event,
    act: impl FnOnce(&mut R, &PartVerdict, Decision),
) {
    let gst::EventView::CustomDownstream(custom) = event.view() else {
        return;
    };
    let Some(part) = custom
        .structure()
        .and_then(|s| verdict::part_verdict_or_warn(element, s))
    else {
        return;
    };
    let now = Instant::now();
    if let Some(running) = lock(running).as_mut()
        && let Some(decision) = running.verdicts().tracker.part(&part, now)
    {
        act(running, &part, decision);
    }
}
