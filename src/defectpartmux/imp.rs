// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `defectpartmux` element: a thin adapter over [`crate::parts::Join`].
//!
//! Locks, in this order only:
//! - `output`: held while a thread joins parts and pushes them (event, then buffer), so that
//!   the parts go out in the order they were joined and each event stays before its buffer;
//! - `state`: the join (with `wake`, the timer thread's condition variable); held only while
//!   the join is asked something, never while pushing or posting;
//! - a pad's own lock (`pad::DefectPartMuxPad::state`).
//!
//! `settings` is taken alone. The timer thread (started in READY→PAUSED, joined in
//! PAUSED→READY) waits on `wake` until the next part's deadline and joins the parts due.

use std::sync::{Condvar, LazyLock, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use super::DefectPartMuxPad;
use crate::element::{self, MetaProblems, lock};
use crate::meta::PartVerdictMeta;
use crate::meta::prelude::*;
use crate::parts::{CameraCounts, CameraId, Join, Notice, Output};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    element::debug_category(
        "defectpartmux",
        "Joins the part verdicts of several cameras",
    )
});

const DEFAULT_TIMEOUT_MS: u32 = 2000;

struct Settings {
    timeout_ms: u32,
}

struct State {
    join: Join,
    /// The timer thread must end.
    shutdown: bool,
}

struct OutputState {
    /// Stream start, caps and segment were pushed.
    started: bool,
    /// End of stream was pushed.
    eos: bool,
    /// The last push's result: an error is given back to the cameras' streaming threads.
    flow: Result<gst::FlowSuccess, gst::FlowError>,
}

pub struct DefectPartMux {
    srcpad: gst::Pad,
    settings: Mutex<Settings>,
    output: Mutex<OutputState>,
    state: Mutex<State>,
    wake: Condvar,
    timer: Mutex<Option<JoinHandle<()>>>,
    problems: MetaProblems,
}

#[glib::object_subclass]
impl ObjectSubclass for DefectPartMux {
    const NAME: &'static str = "GstDefectPartMux";
    type Type = super::DefectPartMux;
    type ParentType = gst::Element;
    type Interfaces = (gst::ChildProxy,);

    fn with_class(klass: &Self::Class) -> Self {
        let srcpad =
            gst::Pad::builder_from_template(&klass.pad_template("src").expect("src template"))
                .query_function(|pad, parent, query| {
                    DefectPartMux::catch_panic_pad_function(
                        parent,
                        || false,
                        |imp| imp.src_query(pad, query),
                    )
                })
                .build();
        Self {
            srcpad,
            settings: Mutex::new(Settings {
                timeout_ms: DEFAULT_TIMEOUT_MS,
            }),
            output: Mutex::new(OutputState {
                started: false,
                eos: false,
                flow: Ok(gst::FlowSuccess::Ok),
            }),
            state: Mutex::new(State {
                join: Join::new(Duration::from_millis(DEFAULT_TIMEOUT_MS.into())),
                shutdown: false,
            }),
            wake: Condvar::new(),
            timer: Mutex::new(None),
            problems: MetaProblems::default(),
        }
    }
}

impl ObjectImpl for DefectPartMux {
    fn constructed(&self) {
        self.parent_constructed();
        self.obj().add_pad(&self.srcpad).expect("add src pad");
    }

    element::properties! {
        uint("timeout-ms", "Timeout", 1..=3_600_000, DEFAULT_TIMEOUT_MS).mutable_playing(): "How long after the first camera's report of a part the others may report it; a required camera that has not by then makes the part UNKNOWN",
        uint64("parts", "Parts", 0..=u64::MAX, 0).read_only(): "Parts joined since start",
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        match pspec.name() {
            "timeout-ms" => {
                let timeout_ms: u32 = value.get().expect("type checked upstream");
                lock(&self.settings).timeout_ms = timeout_ms;
                lock(&self.state)
                    .join
                    .set_timeout(Duration::from_millis(timeout_ms.into()));
            }
            _ => unreachable!("no other writable property"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "timeout-ms" => lock(&self.settings).timeout_ms.to_value(),
            "parts" => lock(&self.state).join.parts_joined().to_value(),
            _ => unreachable!("no other property"),
        }
    }
}

impl GstObjectImpl for DefectPartMux {}

impl ElementImpl for DefectPartMux {
    element::describe!(vec![
        gst::PadTemplate::with_gtype(
            "sink_%u",
            gst::PadDirection::Sink,
            gst::PadPresence::Request,
            &element::any_video_caps(),
            DefectPartMuxPad::static_type(),
        )
        .expect("valid template"),
        gst::PadTemplate::new(
            "src",
            gst::PadDirection::Src,
            gst::PadPresence::Always,
            &element::parts_caps(),
        )
        .expect("valid template"),
    ] => "Defect part muxer", "Muxer/Metadata",
        "Joins the part verdicts of several cameras into one verdict per part, the worst of theirs");

    fn request_new_pad(
        &self,
        templ: &gst::PadTemplate,
        name: Option<&str>,
        _caps: Option<&gst::Caps>,
    ) -> Option<gst::Pad> {
        let obj = self.obj();
        let name = match name {
            Some(name) => {
                if obj.static_pad(name).is_some() {
                    gst::warning!(CAT, imp = self, "a pad named {name} exists already");
                    return None;
                }
                name.to_string()
            }
            None => (0..)
                .map(|n| format!("sink_{n}"))
                .find(|n| obj.static_pad(n).is_none())
                .expect("a free pad name"),
        };
        let pad = gst::PadBuilder::<DefectPartMuxPad>::from_template(templ)
            .name(name.as_str())
            .chain_function(|pad, parent, buffer| {
                DefectPartMux::catch_panic_pad_function(
                    parent,
                    || Err(gst::FlowError::Error),
                    |imp| imp.chain(pad, buffer),
                )
            })
            .event_function(|pad, parent, event| {
                DefectPartMux::catch_panic_pad_function(
                    parent,
                    || false,
                    |imp| imp.sink_event(pad, event),
                )
            })
            .query_function(|pad, parent, query| {
                DefectPartMux::catch_panic_pad_function(
                    parent,
                    || false,
                    |imp| imp.sink_query(pad, query),
                )
            })
            .build();
        {
            let mut state = lock(&self.state);
            let camera = state.join.add_camera(&name, true);
            lock(&pad.imp().state).camera = Some(camera);
        }
        // Added while paused or playing, the pad is activated by `add_pad`.
        obj.add_pad(&pad).ok()?;
        obj.child_added(&pad, &pad.name());
        Some(pad.upcast())
    }

    fn release_pad(&self, pad: &gst::Pad) {
        let Some(mux_pad) = pad.downcast_ref::<DefectPartMuxPad>() else {
            return;
        };
        if let Some(camera) = mux_pad.imp().camera() {
            let _ = self.emit(|join| join.stop(camera, true));
        }
        let obj = self.obj();
        let _ = pad.set_active(false);
        let _ = obj.remove_pad(pad);
        obj.child_removed(pad, &pad.name());
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        match transition {
            gst::StateChange::ReadyToPaused => {
                {
                    let mut output = lock(&self.output);
                    output.started = false;
                    output.eos = false;
                    output.flow = Ok(gst::FlowSuccess::Ok);
                }
                {
                    let mut state = lock(&self.state);
                    state.join.reset();
                    state.shutdown = false;
                }
                let obj = self.obj().clone();
                let timer = std::thread::Builder::new()
                    .name("defectpartmux-timer".into())
                    .spawn(move || obj.imp().timer_loop())
                    .map_err(|e| {
                        gst::element_imp_error!(
                            self,
                            gst::CoreError::Thread,
                            ("Could not start the timer thread: {e}")
                        );
                        gst::StateChangeError
                    })?;
                *lock(&self.timer) = Some(timer);
            }
            gst::StateChange::PausedToReady => self.stop_timer(),
            _ => {}
        }
        let result = self.parent_change_state(transition);
        if result.is_err() && transition == gst::StateChange::ReadyToPaused {
            self.stop_timer();
        }
        result
    }
}

impl gst::subclass::prelude::ChildProxyImpl for DefectPartMux {
    fn child_by_index(&self, index: u32) -> Option<glib::Object> {
        self.obj()
            .sink_pads()
            .into_iter()
            .nth(index as usize)
            .map(|p| p.upcast())
    }

    fn children_count(&self) -> u32 {
        self.obj().num_sink_pads() as u32
    }

    fn child_by_name(&self, name: &str) -> Option<glib::Object> {
        self.obj().static_pad(name).map(|p| p.upcast())
    }
}

impl DefectPartMux {
    /// The counters of a camera (a pad's read-only properties).
    pub(super) fn counts(&self, camera: CameraId) -> CameraCounts {
        lock(&self.state).join.counts(camera)
    }

    /// A pad's `camera-name` or `required` changed: the join is told, and a pad named after
    /// a released camera takes it over.
    pub(super) fn camera_changed(&self, pad: &DefectPartMuxPad) {
        let (name, required) = (pad.imp().camera_name(), pad.imp().required());
        let Some(camera) = pad.imp().camera() else {
            return;
        };
        let mut out = Output::default();
        {
            let mut state = lock(&self.state);
            let camera = state.join.rename(camera, &name, &mut out);
            state.join.set_required(camera, required);
            lock(&pad.imp().state).camera = Some(camera);
        }
        self.tell(&out.notices);
    }

    fn stop_timer(&self) {
        lock(&self.state).shutdown = true;
        self.wake.notify_all();
        if let Some(timer) = lock(&self.timer).take() {
            let _ = timer.join();
        }
    }

    /// The timer thread: joins the parts whose deadline has passed, even when no camera
    /// sends anything more.
    fn timer_loop(&self) {
        let mut state = lock(&self.state);
        loop {
            if state.shutdown {
                return;
            }
            let now = Instant::now();
            match state.join.next_deadline() {
                None => {
                    state = self
                        .wake
                        .wait(state)
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                }
                Some(deadline) if deadline > now => {
                    state = self
                        .wake
                        .wait_timeout(state, deadline - now)
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .0;
                }
                Some(_) => {
                    drop(state);
                    let _ = self.emit(|join| join.poll(Instant::now()));
                    state = lock(&self.state);
                }
            }
        }
    }

    /// Asks the join (under `output`, then `state`), pushes the parts it joined and says its
    /// notices.
    fn emit(
        &self,
        ask: impl FnOnce(&mut Join) -> Output,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut output = lock(&self.output);
        let out = {
            let mut state = lock(&self.state);
            let out = ask(&mut state.join);
            // The next deadline may have moved.
            self.wake.notify_all();
            out
        };
        self.tell(&out.notices);
        for part in &out.parts {
            self.push_part(&mut output, part);
        }
        output.flow
    }

    /// The notices on the bus: a camera missing or stopped is a warning (once an episode),
    /// its return an info message, a late report a log line.
    fn tell(&self, notices: &[Notice]) {
        let timeout_ms = lock(&self.settings).timeout_ms;
        for notice in notices {
            match notice {
                Notice::Missing { camera, part_id } => gst::element_imp_warning!(
                    self,
                    gst::StreamError::Failed,
                    ("Camera {camera} did not report part {part_id} within {timeout_ms} ms"),
                    [
                        "Its parts are joined without it until it reports again (UNKNOWN when it is required)"
                    ]
                ),
                Notice::Stopped { camera } => gst::element_imp_warning!(
                    self,
                    gst::StreamError::Failed,
                    ("Camera {camera} stopped (end of stream or pad released)"),
                    [
                        "Its parts are joined without it until it is back (UNKNOWN when it is required)"
                    ]
                ),
                Notice::Back { camera } => gst::element_imp_info!(
                    self,
                    gst::StreamError::Failed,
                    ("Camera {camera} reports parts again")
                ),
                Notice::Late { camera, part_id } => gst::debug!(
                    CAT,
                    imp = self,
                    "camera {camera} reported part {part_id} after it was joined: dropped"
                ),
            }
        }
    }

    /// Pushes one joined part (the event, then an empty buffer) and posts it on the bus.
    fn push_part(&self, output: &mut OutputState, part: &PartVerdictMeta) {
        gst::debug!(
            CAT,
            imp = self,
            "part {} joined: {}",
            part.part_id,
            part.verdict
        );
        let obj = self.obj();
        let _ = obj.post_message(
            gst::message::Element::builder(part.to_structure())
                .src(&*obj)
                .build(),
        );
        if output.eos {
            return;
        }
        self.start_output(output);
        self.srcpad.push_event(part.to_event());
        let flow = self.srcpad.push(gst::Buffer::new());
        if let Err(e) = flow {
            gst::debug!(CAT, imp = self, "part {} not pushed: {e:?}", part.part_id);
        }
        output.flow = flow;
    }

    fn start_output(&self, output: &mut OutputState) {
        if std::mem::replace(&mut output.started, true) {
            return;
        }
        let obj = self.obj();
        // Not `create_stream_id`: that is for elements with one sink pad.
        let stream_id = format!(
            "{:08x}{:08x}/{}",
            glib::random_int(),
            glib::random_int(),
            obj.name()
        );
        self.srcpad
            .push_event(gst::event::StreamStart::builder(&stream_id).build());
        self.srcpad
            .push_event(gst::event::Caps::new(&element::parts_caps()));
        self.srcpad
            .push_event(gst::event::Segment::new(&gst::FormattedSegment::<
                gst::ClockTime,
            >::new()));
    }

    fn camera_of(&self, pad: &DefectPartMuxPad) -> Option<CameraId> {
        pad.imp().camera()
    }

    fn chain(
        &self,
        _pad: &DefectPartMuxPad,
        _buffer: gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        // Frames are not joined; only their parts' verdicts are.
        match lock(&self.output).flow {
            Err(gst::FlowError::NotLinked) | Ok(_) => Ok(gst::FlowSuccess::Ok),
            Err(e) => Err(e),
        }
    }

    fn sink_event(&self, pad: &DefectPartMuxPad, event: gst::Event) -> bool {
        let Some(camera) = self.camera_of(pad) else {
            return true;
        };
        match event.view() {
            gst::EventView::CustomDownstream(custom) => {
                if let Some(read) = custom.structure().and_then(PartVerdictMeta::from_structure)
                    && let Some(part) = self.problems.check(&*self.obj(), *CAT, read)
                {
                    let now = Instant::now();
                    let _ = self.emit(|join| join.report(camera, part, now));
                }
                true
            }
            gst::EventView::Eos(_) => {
                let _ = self.emit(|join| join.stop(camera, false));
                self.eos_if_all_stopped();
                true
            }
            gst::EventView::FlushStop(_) => {
                // A flush downstream (a seek) is over: push again.
                lock(&self.output).flow = Ok(gst::FlowSuccess::Ok);
                let _ = self.emit(|join| join.restart(camera));
                true
            }
            gst::EventView::StreamStart(_) => {
                let _ = self.emit(|join| join.restart(camera));
                true
            }
            // Each camera's caps, segment, tags and flushes stay on its branch.
            _ => true,
        }
    }

    /// Every camera at its end: the pending parts are joined and the output ends.
    fn eos_if_all_stopped(&self) {
        let mut output = lock(&self.output);
        let out = {
            let mut state = lock(&self.state);
            if !state.join.all_stopped() {
                return;
            }
            state.join.flush()
        };
        self.tell(&out.notices);
        for part in &out.parts {
            self.push_part(&mut output, part);
        }
        if !std::mem::replace(&mut output.eos, true) {
            self.start_output(&mut output);
            gst::debug!(CAT, imp = self, "every camera ended: end of stream");
            self.srcpad.push_event(gst::event::Eos::new());
        }
    }

    fn sink_query(&self, pad: &DefectPartMuxPad, query: &mut gst::QueryRef) -> bool {
        match query.view_mut() {
            gst::QueryViewMut::Caps(q) => {
                let template = pad.pad_template_caps();
                let caps = match q.filter() {
                    Some(filter) => {
                        filter.intersect_with_mode(&template, gst::CapsIntersectMode::First)
                    }
                    None => template,
                };
                q.set_result(&caps);
                true
            }
            gst::QueryViewMut::AcceptCaps(q) => {
                let accepted = q.caps().can_intersect(&pad.pad_template_caps());
                q.set_result(accepted);
                true
            }
            // Frames end here: no allocation to propose.
            gst::QueryViewMut::Allocation(_) => false,
            _ => gst::Pad::query_default(pad, Some(&*self.obj()), query),
        }
    }

    fn src_query(&self, pad: &gst::Pad, query: &mut gst::QueryRef) -> bool {
        match query.view_mut() {
            gst::QueryViewMut::Caps(q) => {
                let caps = element::parts_caps();
                let caps = match q.filter() {
                    Some(filter) => {
                        filter.intersect_with_mode(&caps, gst::CapsIntersectMode::First)
                    }
                    None => caps,
                };
                q.set_result(&caps);
                true
            }
            _ => gst::Pad::query_default(pad, Some(&*self.obj()), query),
        }
    }
}
