// SPDX-License-Identifier: MIT OR Apache-2.0
//! The verdict of a frame (`DefectVerdictMeta` and the `defect-verdict` message) and of a part
//! (`defect-part-verdict` message and event).

use gst::glib;

use super::fields as f;
use super::structure::{MetaError, Reader};
use super::{
    CameraStatus, CameraVerdict, ModelRef, PartVerdictMeta, Reason, ReasonExt, Verdict, VerdictMeta,
};
use crate::policy::SeverityCounts;

const COUNTS: [&str; 4] = [f::CRITICAL, f::MAJOR, f::MINOR, f::COSMETIC];

fn write_counts(
    mut builder: gst::structure::Builder,
    counts: &SeverityCounts,
) -> gst::structure::Builder {
    for (name, count) in COUNTS.iter().zip(counts) {
        builder = builder.field(*name, *count);
    }
    builder
}

fn read_counts(r: &Reader) -> Result<SeverityCounts, MetaError> {
    let mut counts = SeverityCounts::default();
    for (name, count) in COUNTS.iter().zip(&mut counts) {
        *count = r.required(name)?;
    }
    Ok(counts)
}

/// A [`VerdictMeta`] as `DefectVerdictMeta` on a buffer and the `defect-verdict` message.
pub trait VerdictMetaExt: Sized {
    /// The meta's structure.
    fn to_structure(&self) -> gst::Structure;
    /// The `defect-verdict` element message.
    fn to_message(
        &self,
        pts: Option<gst::ClockTime>,
        running_time: Option<gst::ClockTime>,
    ) -> gst::Structure;
    /// Reads the meta's structure or the message's.
    fn from_structure(s: &gst::StructureRef) -> Result<Self, MetaError>;
    /// Adds the meta to a buffer.
    fn attach(&self, buffer: &mut gst::BufferRef);
    /// Replaces the buffer's (first) verdict meta with this one, or adds it when it has none
    /// (a second stage re-deciding the frame).
    fn replace_on(&self, buffer: &mut gst::BufferRef);
    /// The buffer's verdict meta: None when it has none, an error naming the field when it
    /// is malformed.
    fn from_buffer(buffer: &gst::BufferRef) -> Option<Result<Self, MetaError>>;
    /// Records on the buffer's verdict meta, if it has one, the captures dropped so far.
    fn set_capture_dropped(buffer: &mut gst::BufferRef, dropped: u64);
}

/// The fields of the meta and of the message.
fn verdict_fields(v: &VerdictMeta, builder: gst::structure::Builder) -> gst::structure::Builder {
    let builder = builder
        .field(f::VERDICT, v.verdict.as_str())
        .field(f::TASK, &v.task)
        .field_if_some(f::ANOMALY_SCORE, v.anomaly_score)
        .field(f::SHADOW, v.shadow)
        .field_if_some(f::PART_ID, v.part_id.as_deref())
        .field(f::FRAME, v.frame)
        .field(f::INSPECTED, v.inspected)
        .field(f::CARRIED, v.carried)
        .field(f::SKIPPED_FRAMES, v.skipped_frames)
        .field_if_some(f::SOURCE_FRAME, v.source_frame);
    write_counts(builder, &v.counts)
        .field(f::MODEL_ID, &v.model.id)
        .field(f::MODEL_NAME, &v.model.name)
        .field(f::MODEL_VERSION, &v.model.version)
        .field(f::MODEL_SHA256, &v.model.sha256)
        .field_if_some(f::POLICY_SHA256, v.policy_sha256.as_deref())
        .field(f::INFERENCE_MS, v.inference_ms)
        .field(f::TOTAL_MS, v.total_ms)
        .field(
            f::REASONS,
            gst::Array::new(v.reasons.iter().map(|r| r.to_structure(f::REASON))),
        )
        .field_if_some(f::CAPTURE_DROPPED, v.capture_dropped)
}

impl VerdictMetaExt for VerdictMeta {
    fn to_structure(&self) -> gst::Structure {
        verdict_fields(self, gst::Structure::builder(f::VERDICT_META)).build()
    }

    fn to_message(
        &self,
        pts: Option<gst::ClockTime>,
        running_time: Option<gst::ClockTime>,
    ) -> gst::Structure {
        verdict_fields(self, gst::Structure::builder(f::VERDICT_MESSAGE))
            .field(f::PTS, pts)
            .field(f::RUNNING_TIME, running_time)
            .build()
    }

    fn from_structure(s: &gst::StructureRef) -> Result<Self, MetaError> {
        let r = Reader::new(s);
        let meta = Self {
            verdict: r.named(f::VERDICT, Verdict::parse)?,
            task: r.optional(f::TASK)?.unwrap_or_default(),
            anomaly_score: r.optional(f::ANOMALY_SCORE)?,
            shadow: r.required(f::SHADOW)?,
            part_id: r.optional(f::PART_ID)?,
            frame: r.required(f::FRAME)?,
            inspected: r.required(f::INSPECTED)?,
            carried: r.required(f::CARRIED)?,
            skipped_frames: r.required(f::SKIPPED_FRAMES)?,
            source_frame: r.optional(f::SOURCE_FRAME)?,
            counts: read_counts(&r)?,
            model: ModelRef {
                id: r.required(f::MODEL_ID)?,
                name: r.required(f::MODEL_NAME)?,
                version: r.required(f::MODEL_VERSION)?,
                sha256: r.required(f::MODEL_SHA256)?,
            },
            policy_sha256: r.optional(f::POLICY_SHA256)?,
            inference_ms: r.required(f::INFERENCE_MS)?,
            total_ms: r.required(f::TOTAL_MS)?,
            reasons: r.structures(f::REASONS, Reason::from_structure)?,
            capture_dropped: r.optional(f::CAPTURE_DROPPED)?,
        };
        if meta.carried != meta.source_frame.is_some() {
            return Err(r.error(
                f::CARRIED,
                format!(
                    "is {} but `{}` is {}",
                    meta.carried,
                    f::SOURCE_FRAME,
                    if meta.carried { "missing" } else { "present" }
                ),
            ));
        }
        Ok(meta)
    }

    fn attach(&self, buffer: &mut gst::BufferRef) {
        super::register();
        let fields = self.to_structure();
        if let Ok(mut custom) = gst::meta::CustomMeta::add(buffer, f::VERDICT_META) {
            let structure = custom.mut_structure();
            for (name, value) in fields.iter() {
                structure.set_value(name, value.clone());
            }
        }
    }

    fn replace_on(&self, buffer: &mut gst::BufferRef) {
        let Ok(mut meta) = gst::meta::CustomMeta::from_mut_buffer(buffer, f::VERDICT_META) else {
            return self.attach(buffer);
        };
        let structure = meta.mut_structure();
        let old: Vec<glib::GString> = structure.fields().map(Into::into).collect();
        for name in old {
            structure.remove_field(name.as_str());
        }
        for (name, value) in self.to_structure().iter() {
            structure.set_value(name, value.clone());
        }
    }

    fn from_buffer(buffer: &gst::BufferRef) -> Option<Result<Self, MetaError>> {
        let meta = gst::meta::CustomMeta::from_buffer(buffer, f::VERDICT_META).ok()?;
        Some(Self::from_structure(meta.structure()))
    }

    fn set_capture_dropped(buffer: &mut gst::BufferRef, dropped: u64) {
        if let Ok(mut meta) = gst::meta::CustomMeta::from_mut_buffer(buffer, f::VERDICT_META) {
            meta.mut_structure().set(f::CAPTURE_DROPPED, dropped);
        }
    }
}

/// A [`CameraVerdict`] as a structure of a joined part verdict's `cameras`.
pub trait CameraVerdictExt: Sized {
    fn to_structure(&self) -> gst::Structure;
    fn from_structure(s: &gst::StructureRef) -> Result<Self, MetaError>;
}

impl CameraVerdictExt for CameraVerdict {
    fn to_structure(&self) -> gst::Structure {
        let builder = gst::Structure::builder(f::CAMERA)
            .field(f::LABEL, &self.name)
            .field(f::STATUS, self.status.as_str())
            .field(f::REQUIRED, self.required)
            .field(f::VERDICT, self.verdict.as_str())
            .field_if_some(f::FIRST_FRAME, self.first_frame)
            .field_if_some(f::LAST_FRAME, self.last_frame)
            .field(f::FRAMES, self.frames)
            .field(f::INSPECTED_FRAMES, self.inspected_frames);
        write_counts(builder, &self.counts)
            .field(f::MODEL_ID, &self.model_id)
            .build()
    }

    fn from_structure(s: &gst::StructureRef) -> Result<Self, MetaError> {
        let r = Reader::new(s);
        Ok(Self {
            name: r.required(f::LABEL)?,
            status: r.named(f::STATUS, CameraStatus::parse)?,
            required: r.required(f::REQUIRED)?,
            verdict: r.named(f::VERDICT, Verdict::parse)?,
            first_frame: r.optional(f::FIRST_FRAME)?,
            last_frame: r.optional(f::LAST_FRAME)?,
            frames: r.required(f::FRAMES)?,
            inspected_frames: r.required(f::INSPECTED_FRAMES)?,
            counts: read_counts(&r)?,
            model_id: r.required(f::MODEL_ID)?,
        })
    }
}

/// A [`PartVerdictMeta`] as the `defect-part-verdict` message's structure and event.
pub trait PartVerdictMetaExt: Sized {
    fn to_structure(&self) -> gst::Structure;
    /// The part verdict a structure holds; None when it is another structure.
    fn from_structure(s: &gst::StructureRef) -> Option<Result<Self, MetaError>>;
    /// The downstream event that carries it.
    fn to_event(&self) -> gst::Event;
}

impl PartVerdictMetaExt for PartVerdictMeta {
    fn to_structure(&self) -> gst::Structure {
        let builder = gst::Structure::builder(f::PART_VERDICT)
            .field(f::PART_ID, &self.part_id)
            .field(f::VERDICT, self.verdict.as_str())
            .field(f::SHADOW, self.shadow)
            .field(f::FIRST_FRAME, self.first_frame)
            .field(f::LAST_FRAME, self.last_frame)
            .field(f::FRAMES, self.frames)
            .field(f::INSPECTED_FRAMES, self.inspected_frames);
        let builder = write_counts(builder, &self.counts).field(f::MODEL_ID, &self.model_id);
        if self.cameras.is_empty() {
            builder.build()
        } else {
            builder
                .field(
                    f::CAMERAS,
                    gst::Array::new(
                        self.cameras
                            .iter()
                            .map(<CameraVerdict as CameraVerdictExt>::to_structure),
                    ),
                )
                .build()
        }
    }

    fn from_structure(s: &gst::StructureRef) -> Option<Result<Self, MetaError>> {
        (s.name() == f::PART_VERDICT).then(|| {
            let r = Reader::new(s);
            Ok(Self {
                part_id: r.required(f::PART_ID)?,
                verdict: r.named(f::VERDICT, Verdict::parse)?,
                shadow: r.required(f::SHADOW)?,
                first_frame: r.required(f::FIRST_FRAME)?,
                last_frame: r.required(f::LAST_FRAME)?,
                frames: r.required(f::FRAMES)?,
                inspected_frames: r.required(f::INSPECTED_FRAMES)?,
                counts: read_counts(&r)?,
                model_id: r.required(f::MODEL_ID)?,
                cameras: if s.has_field(f::CAMERAS) {
                    r.structures(
                        f::CAMERAS,
                        <CameraVerdict as CameraVerdictExt>::from_structure,
                    )?
                } else {
                    Vec::new()
                },
            })
        })
    }

    fn to_event(&self) -> gst::Event {
        gst::event::CustomDownstream::new(self.to_structure())
    }
}
