// SPDX-License-Identifier: MIT OR Apache-2.0
//! A camera's request pad: its `camera-name` and `required` (told to the join through the
//! element) and its read-only counters (read from the join).

use std::sync::Mutex;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use crate::element::{self, lock};
use crate::parts::CameraId;

#[derive(Debug, Default)]
pub(super) struct PadState {
    /// The camera this pad feeds, once the element has added it.
    pub camera: Option<CameraId>,
    pub camera_name: Option<String>,
    pub required: bool,
}

pub struct DefectPartMuxPad {
    /// Lock order: the element's `output`, then its `state`, then this; never the other way.
    pub(super) state: Mutex<PadState>,
}

#[glib::object_subclass]
impl ObjectSubclass for DefectPartMuxPad {
    const NAME: &'static str = "GstDefectPartMuxPad";
    type Type = super::DefectPartMuxPad;
    type ParentType = gst::Pad;

    fn new() -> Self {
        Self {
            state: Mutex::new(PadState {
                camera: None,
                camera_name: None,
                required: true,
            }),
        }
    }
}

impl DefectPartMuxPad {
    fn element(&self) -> Option<super::DefectPartMux> {
        self.obj().parent().and_downcast::<super::DefectPartMux>()
    }

    pub(super) fn camera(&self) -> Option<CameraId> {
        lock(&self.state).camera
    }

    /// The camera's name: `camera-name`, else the pad's name.
    pub(super) fn camera_name(&self) -> String {
        lock(&self.state)
            .camera_name
            .clone()
            .unwrap_or_else(|| self.obj().name().to_string())
    }

    pub(super) fn required(&self) -> bool {
        lock(&self.state).required
    }
}

impl ObjectImpl for DefectPartMuxPad {
    element::properties! {
        string("camera-name", "Camera name").mutable_playing(): "Names the camera in the joined verdicts and warnings (default: the pad's name). A pad given the name of a camera whose pad was released takes its place: that camera is back",
        boolean("required", "Required", true).mutable_playing(): "A required camera that has not reported a part within timeout-ms, or has stopped, makes the part UNKNOWN. One that is not required is waited for alike, and counts only when it reported the part in time",
        uint64("reported", "Reported", 0..=u64::MAX, 0).read_only(): "Parts this camera reported in time since start",
        uint64("timeouts", "Timeouts", 0..=u64::MAX, 0).read_only(): "Parts joined without this camera because it had not reported them within timeout-ms",
        uint64("stopped-parts", "Stopped parts", 0..=u64::MAX, 0).read_only(): "Parts joined without this camera because it had stopped (end of stream, pad released)",
        uint64("late", "Late", 0..=u64::MAX, 0).read_only(): "Reports of this camera that came after their part was joined (dropped)",
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        match pspec.name() {
            "camera-name" => {
                let name: Option<String> = value.get().expect("type checked upstream");
                lock(&self.state).camera_name = name.filter(|n| !n.is_empty());
                if let Some(element) = self.element() {
                    element.imp().camera_changed(&self.obj());
                }
            }
            "required" => {
                lock(&self.state).required = value.get().expect("type checked upstream");
                if let Some(element) = self.element() {
                    element.imp().camera_changed(&self.obj());
                }
            }
            _ => unreachable!("no other writable property"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let counts = || {
            self.camera()
                .zip(self.element())
                .map(|(id, element)| element.imp().counts(id))
                .unwrap_or_default()
        };
        match pspec.name() {
            "camera-name" => self.camera_name().to_value(),
            "required" => self.required().to_value(),
            "reported" => counts().reported.to_value(),
            "timeouts" => counts().timeouts.to_value(),
            "stopped-parts" => counts().stopped.to_value(),
            "late" => counts().late.to_value(),
            _ => unreachable!("no other property"),
        }
    }
}

impl GstObjectImpl for DefectPartMuxPad {}
impl PadImpl for DefectPartMuxPad {}
