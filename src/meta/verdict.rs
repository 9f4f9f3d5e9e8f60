// SPDX-License-Identifier: MIT OR Apache-2.0
//! The verdict of a frame (`DefectVerdictMeta` and the `defect-verdict` message) and of a part
//! (`defect-part-verdict` message and event).

use gst::glib;

use super::detection::Reason;
use super::fields as f;
use super::structure::{MetaError, Reader};
use super::values::Verdict;
use crate::policy::SeverityCounts;

/// The model a verdict came from.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ModelRef {
    pub id: String,
    pub name: String,
    pub version: String,
    pub sha256: String,
}

/// A frame's verdict, as `DefectVerdictMeta` and the `defect-verdict` message carry it.
#[derive(Debug, Clone, PartialEq)]
pub struct VerdictMeta {
    pub verdict: Verdict,
    /// The model's task (`detect`, `classify`, `anomaly`); empty when the sender said none.
    pub task: String,
    /// An anomaly model's image score.
    pub anomaly_score: Option<f64>,
    pub shadow: bool,
    pub part_id: Option<String>,
    pub frame: u64,
    /// The model ran on this frame.
    pub inspected: bool,
    /// The detections are those of another frame (`source_frame`).
    pub carried: bool,
    pub skipped_frames: u64,
    pub source_frame: Option<u64>,
    /// Detections counted by severity, worst first.
    pub counts: SeverityCounts,
    pub model: ModelRef,
    pub policy_sha256: Option<String>,
    pub inference_ms: f64,
    pub total_ms: f64,
    /// The detections that decided a FAIL or a REVIEW.
    pub reasons: Vec<Reason>,
    /// Set by `defectcapture`: captures it dropped so far.
    pub capture_dropped: Option<u64>,
}

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

impl VerdictMeta {
    fn fields(&self, builder: gst::structure::Builder) -> gst::structure::Builder {
        let builder = builder
            .field(f::VERDICT, self.verdict.as_str())
            .field(f::TASK, &self.task)
            .field_if_some(f::ANOMALY_SCORE, self.anomaly_score)
            .field(f::SHADOW, self.shadow)
            .field_if_some(f::PART_ID, self.part_id.as_deref())
            .field(f::FRAME, self.frame)
            .field(f::INSPECTED, self.inspected)
            .field(f::CARRIED, self.carried)
            .field(f::SKIPPED_FRAMES, self.skipped_frames)
            .field_if_some(f::SOURCE_FRAME, self.source_frame);
        write_counts(builder, &self.counts)
            .field(f::MODEL_ID, &self.model.id)
            .field(f::MODEL_NAME, &self.model.name)
            .field(f::MODEL_VERSION, &self.model.version)
            .field(f::MODEL_SHA256, &self.model.sha256)
            .field_if_some(f::POLICY_SHA256, self.policy_sha256.as_deref())
            .field(f::INFERENCE_MS, self.inference_ms)
            .field(f::TOTAL_MS, self.total_ms)
            .field(
                f::REASONS,
                gst::Array::new(self.reasons.iter().map(|r| r.to_structure(f::REASON))),
            )
            .field_if_some(f::CAPTURE_DROPPED, self.capture_dropped)
    }

    /// The meta's structure.
    pub fn to_structure(&self) -> gst::Structure {
        self.fields(gst::Structure::builder(f::VERDICT_META))
            .build()
    }

    /// The `defect-verdict` element message.
    pub fn to_message(
        &self,
        pts: Option<gst::ClockTime>,
        running_time: Option<gst::ClockTime>,
    ) -> gst::Structure {
        self.fields(gst::Structure::builder(f::VERDICT_MESSAGE))
            .field(f::PTS, pts)
            .field(f::RUNNING_TIME, running_time)
            .build()
    }

    /// Reads the meta's structure or the message's.
    pub fn from_structure(s: &gst::StructureRef) -> Result<Self, MetaError> {
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

    /// Adds the meta to a buffer.
    pub fn attach(&self, buffer: &mut gst::BufferRef) {
        let fields = self.to_structure();
        if let Ok(mut custom) = gst::meta::CustomMeta::add(buffer, f::VERDICT_META) {
            let structure = custom.mut_structure();
            for (name, value) in fields.iter() {
                structure.set_value(name, value.clone());
            }
        }
    }

    /// Replaces the buffer's (first) verdict meta with this one, or adds it when it has none
    /// (a second stage re-deciding the frame).
    pub fn replace_on(&self, buffer: &mut gst::BufferRef) {
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

    /// The buffer's verdict meta: None when it has none, an error naming the field when it
    /// is malformed.
    pub fn from_buffer(buffer: &gst::BufferRef) -> Option<Result<Self, MetaError>> {
        let meta = gst::meta::CustomMeta::from_buffer(buffer, f::VERDICT_META).ok()?;
        Some(Self::from_structure(meta.structure()))
    }

    /// Records on the buffer's verdict meta, if it has one, the captures dropped so far.
    pub fn set_capture_dropped(buffer: &mut gst::BufferRef, dropped: u64) {
        if let Ok(mut meta) = gst::meta::CustomMeta::from_mut_buffer(buffer, f::VERDICT_META) {
            meta.mut_structure().set(f::CAPTURE_DROPPED, dropped);
        }
    }
}

/// What became of one camera's report of a joined part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CameraStatus {
    /// The camera reported the part in time: its verdict counts.
    #[default]
    Reported,
    /// The camera had not reported the part `timeout-ms` after the first camera did.
    Timeout,
    /// The camera was stopped (end of stream, pad released) when the part was joined.
    Stopped,
}

impl CameraStatus {
    pub const ALL: [CameraStatus; 3] = [
        CameraStatus::Reported,
        CameraStatus::Timeout,
        CameraStatus::Stopped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CameraStatus::Reported => "reported",
            CameraStatus::Timeout => "timeout",
            CameraStatus::Stopped => "stopped",
        }
    }

    /// The status a string names (`reported`, `timeout`, `stopped`).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// One camera's part in a joined part verdict (`defectpartmux`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CameraVerdict {
    /// The pad's `camera-name`.
    pub name: String,
    pub status: CameraStatus,
    /// Whether the camera's absence makes the part UNKNOWN.
    pub required: bool,
    /// The camera's own verdict of the part; UNKNOWN when it did not report it.
    pub verdict: Verdict,
    /// The camera's frames of the part (its own frame numbers); None when it did not report.
    pub first_frame: Option<u64>,
    pub last_frame: Option<u64>,
    pub frames: u64,
    pub inspected_frames: u64,
    pub counts: SeverityCounts,
    /// The camera's model; empty when it did not report.
    pub model_id: String,
}

impl CameraVerdict {
    pub fn to_structure(&self) -> gst::Structure {
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

    pub fn from_structure(s: &gst::StructureRef) -> Result<Self, MetaError> {
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

/// A finished part's verdict: the `defect-part-verdict` message and downstream event.
///
/// `defectdetect` sends one per part and camera (`cameras` empty); `defectpartmux` joins
/// them into one per part, the worst of its cameras', with an entry per camera.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PartVerdictMeta {
    pub part_id: String,
    pub verdict: Verdict,
    pub shadow: bool,
    pub first_frame: u64,
    pub last_frame: u64,
    pub frames: u64,
    pub inspected_frames: u64,
    pub counts: SeverityCounts,
    pub model_id: String,
    /// A joined part's cameras, in pad order; empty for a single camera's part.
    pub cameras: Vec<CameraVerdict>,
}

impl PartVerdictMeta {
    pub fn to_structure(&self) -> gst::Structure {
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
                    gst::Array::new(self.cameras.iter().map(CameraVerdict::to_structure)),
                )
                .build()
        }
    }

    /// The part verdict a structure holds; None when it is another structure.
    pub fn from_structure(s: &gst::StructureRef) -> Option<Result<Self, MetaError>> {
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
                    r.structures(f::CAMERAS, CameraVerdict::from_structure)?
                } else {
                    Vec::new()
                },
            })
        })
    }

    /// The downstream event that carries it.
    pub fn to_event(&self) -> gst::Event {
        gst::event::CustomDownstream::new(self.to_structure())
    }
}
