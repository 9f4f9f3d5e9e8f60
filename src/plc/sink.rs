// SPDX-License-Identifier: MIT OR Apache-2.0
//! What both PLC sinks do with the verdicts they read, before each acts on them in its own
//! way: each frame's verdict and each finished part's go through the sink's [`Tracker`],
//! which says when a decision (a part's, or a frame's with `unit=frame`) is complete.

use std::sync::Mutex;
use std::time::Instant;

use gst::prelude::*;
use gst::subclass::prelude::*;

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

/// A PLC sink: what it does with each frame's verdict and each finished part's (for
/// [`render`] and [`part_event`]), and its state between start and stop.
pub trait PlcSink: ObjectSubclass<Type: IsA<gst::Element>> {
    type Running;

    /// A frame's verdict, and the decision it completes if any.
    fn on_frame(
        &self,
        running: &mut Self::Running,
        frame: FrameVerdict,
        decision: Option<Decision>,
    );
    /// A finished part's verdict and the decision it completes.
    fn on_part(&self, running: &mut Self::Running, part: &PartVerdict, decision: Decision);
    fn running(&self) -> &Mutex<Option<Self::Running>>;
    fn verdicts(running: &mut Self::Running) -> &mut Verdicts;
}

/// A PLC sink's `render`: the frame's verdict, and the decision it completes if any, go to
/// [`PlcSink::on_frame`]. A frame without a readable verdict is skipped (a warning the
/// first time; it is never read as PASS); a stopped sink is flushing.
pub fn render<S: PlcSink>(
    sink: &S,
    buffer: &gst::BufferRef,
) -> Result<gst::FlowSuccess, gst::FlowError> {
    let seen = Instant::now();
    let element = sink.obj();
    // `defectpartmux`'s buffers only follow the part verdict events: nothing to read.
    if buffer.size() == 0
        && element
            .static_pad("sink")
            .and_then(|pad| pad.current_caps())
            .is_some_and(|caps| crate::element::is_parts_caps(&caps))
    {
        return Ok(gst::FlowSuccess::Ok);
    }
    let mut guard = lock(sink.running());
    let running = guard.as_mut().ok_or(gst::FlowError::Flushing)?;
    let verdicts = S::verdicts(running);
    if let Some(frame) =
        verdict::frame_verdict_or_warn(element.upcast_ref(), buffer, &mut verdicts.warned_no_meta)
    {
        let decision = verdicts.tracker.frame(&frame, seen);
        sink.on_frame(running, frame, decision);
    }
    Ok(gst::FlowSuccess::Ok)
}

/// A PLC sink's `event`: a finished part's verdict (a `defect-part-verdict` event; a
/// malformed one is a warning) and the decision it completes go to [`PlcSink::on_part`].
/// Other events, and every event while stopped, do nothing here.
pub fn part_event<S: PlcSink>(sink: &S, event: &gst::Event) {
    let gst::EventView::CustomDownstream(custom) = event.view() else {
        return;
    };
    let element = sink.obj();
    let Some(part) = custom
        .structure()
        .and_then(|s| verdict::part_verdict_or_warn(element.upcast_ref::<gst::Element>(), s))
    else {
        return;
    };
    let now = Instant::now();
    if let Some(running) = lock(sink.running()).as_mut()
        && let Some(decision) = S::verdicts(running).tracker.part(&part, now)
    {
        sink.on_part(running, &part, decision);
    }
}
