// SPDX-License-Identifier: MIT OR Apache-2.0
//! The plugin's custom metas and events, shared by its elements and documented for
//! applications.
//!
//! - `DefectVerdictMeta` (a `GstCustomMeta`, added by `defectdetect` to every buffer): its
//!   structure holds `verdict` (string PASS, FAIL, REVIEW, or UNKNOWN when the model has not
//!   judged the frame), `shadow` (boolean), `part-id` (string, absent when the frame belongs to
//!   no part), `frame` (guint64), `inspected` (boolean: the model ran on this frame), `carried`
//!   (boolean) and `source-frame` (guint64, the frame whose result it carries), `critical`,
//!   `major`, `minor`, `cosmetic` (guint: detections counted by severity), `model-id`
//!   (string), `inference-ms` and `total-ms` (double: model time; whole element time) and `reasons` (array of `reason` structures: `label-id`, `label`, `severity`,
//!   `decision`, `confidence`, `x-min`, `y-min`, `x-max`, `y-max` in pixels). From C:
//!   `gst_custom_meta_get_structure (gst_buffer_get_custom_meta (buf, "DefectVerdictMeta"))`;
//!   from Python: `buf.get_custom_meta("DefectVerdictMeta").get_structure()`.
//! - `DefectPartMeta` (a `GstCustomMeta` an application adds upstream): field `part-id`
//!   (string or integer) names the part the frame shows.
//! - `defect-part` (a custom downstream serialized event an application sends upstream):
//!   field `part-id` names the part of the frames that follow, until the next such event.

use gst::glib;

pub const VERDICT_META: &str = "DefectVerdictMeta";
pub const PART_META: &str = "DefectPartMeta";
pub const PART_EVENT: &str = "defect-part";
pub const PART_ID_FIELD: &str = "part-id";

/// Registers the custom metas (idempotent).
pub fn register() {
    for name in [VERDICT_META, PART_META] {
        if !gst::meta::CustomMeta::is_registered(name) {
            gst::meta::CustomMeta::register(name, &[]);
        }
    }
}

/// The `part-id` of a structure, whether a string or an integer.
pub fn part_id_of(structure: &gst::StructureRef) -> Option<String> {
    let value = structure.value(PART_ID_FIELD).ok()?;
    if let Ok(text) = value.get::<String>() {
        return Some(text);
    }
    for read in [
        |v: &glib::SendValue| v.get::<u64>().ok().map(|n| n.to_string()),
        |v: &glib::SendValue| v.get::<i64>().ok().map(|n| n.to_string()),
        |v: &glib::SendValue| v.get::<u32>().ok().map(|n| n.to_string()),
        |v: &glib::SendValue| v.get::<i32>().ok().map(|n| n.to_string()),
    ] {
        if let Some(text) = read(value) {
            return Some(text);
        }
    }
    None
}

/// The part id an application attached to a buffer with `DefectPartMeta`.
pub fn part_id_from_buffer(buffer: &gst::BufferRef) -> Option<String> {
    let meta = gst::meta::CustomMeta::from_buffer(buffer, PART_META).ok()?;
    part_id_of(meta.structure())
}

/// A `defect-part` event for applications and tests.
pub fn part_event(part_id: &str) -> gst::Event {
    gst::event::CustomDownstream::new(
        gst::Structure::builder(PART_EVENT)
            .field(PART_ID_FIELD, part_id)
            .build(),
    )
}
