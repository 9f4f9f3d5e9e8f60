// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `defectmetaconvert` element: video buffers with metas in, NDJSON records out.

use std::sync::{LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use crate::element::MetaProblems;
use crate::element::{self, lock};
use crate::meta::prelude::*;
use crate::meta::{
    ChallengerFrame, Classification, DetectionParams, DriftReport, MaskParams, PartVerdictMeta,
    SizeParams, VerdictMeta,
};
use crate::records::{
    self, CameraRecord, ChallengerRecord, ClassificationRecord, DetectionRecord, DriftRecord,
    FrameRecord, Latency, ModelRef, PartRecord, RleRecord, SCHEMA_VERSION, SeverityCounts,
};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    element::debug_category("defectmetaconvert", "Defect metas to NDJSON records")
});

#[derive(Debug, Clone)]
struct Settings {
    source_id: String,
}

element::settings_properties!(Settings for DefectMetaConvert { "source-id" => source_id });

pub struct DefectMetaConvert {
    sinkpad: gst::Pad,
    srcpad: gst::Pad,
    settings: Mutex<Settings>,
    /// Frame size of the negotiated video, for boxes in pixels.
    size: Mutex<(u32, u32)>,
    /// The input is `defectpartmux`'s joined parts: records of parts only.
    parts: std::sync::atomic::AtomicBool,
    /// The last `defect-drift` event said an episode was on: a record is written when that
    /// changes (an episode's start and end).
    drift_active: Mutex<bool>,
    problems: MetaProblems,
}

#[glib::object_subclass]
impl ObjectSubclass for DefectMetaConvert {
    const NAME: &'static str = "GstDefectMetaConvert";
    type Type = super::DefectMetaConvert;
    type ParentType = gst::Element;

    fn with_class(klass: &Self::Class) -> Self {
        let sinkpad =
            gst::Pad::builder_from_template(&klass.pad_template("sink").expect("sink template"))
                .chain_function(|pad, parent, buffer| {
                    DefectMetaConvert::catch_panic_pad_function(
                        parent,
                        || Err(gst::FlowError::Error),
                        |imp| imp.chain(pad, buffer),
                    )
                })
                .event_function(|pad, parent, event| {
                    DefectMetaConvert::catch_panic_pad_function(
                        parent,
                        || false,
                        |imp| imp.sink_event(pad, event),
                    )
                })
                .build();
        let srcpad =
            gst::Pad::builder_from_template(&klass.pad_template("src").expect("src template"))
                .build();
        Self {
            sinkpad,
            srcpad,
            settings: Mutex::default(),
            size: Mutex::new((0, 0)),
            parts: std::sync::atomic::AtomicBool::new(false),
            drift_active: Mutex::new(false),
            problems: MetaProblems::default(),
        }
    }
}

impl ObjectImpl for DefectMetaConvert {
    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.add_pad(&self.sinkpad).expect("add sink pad");
        obj.add_pad(&self.srcpad).expect("add src pad");
    }

    element::properties! {
        string("source-id", "Source id", "camera-0").mutable_playing(): "Identifies the camera or line in every record (and in MQTT topics)",
    }

    element::settings_accessors!(settings);
}

impl GstObjectImpl for DefectMetaConvert {}

impl ElementImpl for DefectMetaConvert {
    element::describe!(element::pads(&element::verdict_caps(), Some(&element::ndjson_caps())) =>
        "Defect meta converter", "Converter/Metadata",
        "Turns defect detections and verdicts into NDJSON records, one per frame and one per part");
}

impl DefectMetaConvert {
    fn sink_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::Caps(caps) => {
                let size = gst_video::VideoInfo::from_caps(caps.caps())
                    .map_or((0, 0), |i| (i.width(), i.height()));
                *lock(&self.size) = size;
                self.parts.store(
                    element::is_parts_caps(caps.caps()),
                    std::sync::atomic::Ordering::Relaxed,
                );
                self.srcpad.push_event(gst::event::Caps::new(
                    &gst::Caps::builder("application/x-ndjson").build(),
                ))
            }
            gst::EventView::CustomDownstream(custom) => {
                if let Some(read) = custom.structure().and_then(PartVerdictMeta::from_structure)
                    && let Some(part) = self.problems.check(&*self.obj(), *CAT, read)
                {
                    let line = records::to_line(&self.part_record(part));
                    if self.push_line(line, None).is_err() {
                        gst::debug!(CAT, imp = self, "part record not pushed");
                    }
                }
                if let Some(read) = custom.structure().and_then(ChallengerFrame::from_structure)
                    && let Some(frame) = self.problems.check(&*self.obj(), *CAT, read)
                {
                    let source_id = lock(&self.settings).source_id.clone();
                    let record = ChallengerRecord::new(&frame, source_id, records::utc_now());
                    if self.push_line(records::to_line(&record), None).is_err() {
                        gst::debug!(CAT, imp = self, "challenger record not pushed");
                    }
                }
                if let Some(read) = custom.structure().and_then(DriftReport::from_structure)
                    && let Some(report) = self.problems.check(&*self.obj(), *CAT, read)
                {
                    self.drift(report);
                }
                gst::Pad::event_default(pad, Some(&*self.obj()), event)
            }
            _ => gst::Pad::event_default(pad, Some(&*self.obj()), event),
        }
    }

    fn chain(
        &self,
        _pad: &gst::Pad,
        buffer: gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        if self.parts.load(std::sync::atomic::Ordering::Relaxed) {
            // A joined part's buffer: its record was written from its event.
            return Ok(gst::FlowSuccess::Ok);
        }
        let record = self.frame_record(&buffer);
        self.push_line(records::to_line(&record), Some(&buffer))
    }

    fn push_line(
        &self,
        line: String,
        timing: Option<&gst::Buffer>,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut out = gst::Buffer::from_mut_slice(line.into_bytes());
        if let (Some(from), Some(to)) = (timing, out.get_mut()) {
            to.set_pts(from.pts());
            to.set_duration(from.duration());
        }
        self.srcpad.push(out)
    }

    fn frame_record(&self, buffer: &gst::BufferRef) -> FrameRecord {
        let source_id = lock(&self.settings).source_id.clone();
        let (width, height) = *lock(&self.size);
        let v = VerdictMeta::from_buffer(buffer)
            .and_then(|read| self.problems.check(&*self.obj(), *CAT, read));
        let detections = buffer
            .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
            .filter_map(|roi| {
                let params = match DetectionParams::of_roi(&roi) {
                    None => None,
                    Some(read) => Some(self.problems.check(&*self.obj(), *CAT, read)?),
                };
                // A malformed classification is said (once) and left out of the record.
                let classification = Classification::of_roi(&roi)
                    .and_then(|read| self.problems.check(&*self.obj(), *CAT, read));
                let sizes = SizeParams::of_roi(&roi)
                    .and_then(|read| self.problems.check(&*self.obj(), *CAT, read));
                let mask = MaskParams::of_roi(&roi)
                    .and_then(|read| self.problems.check(&*self.obj(), *CAT, read))
                    .and_then(|m| m.to_mask())
                    .map(|m| RleRecord::new(&m, width, height));
                let mut record = detection_record(&roi, params, classification, width, height);
                if let Some(s) = sizes {
                    record.area_px = s.area_px;
                    record.area_mm2 = s.area_mm2;
                    record.length_px = Some(s.length_px);
                    record.length_mm = s.length_mm;
                }
                record.mask = mask;
                Some(record)
            })
            .collect();
        let mut record = FrameRecord {
            schema_version: SCHEMA_VERSION,
            kind: "frame",
            utc: records::utc_now(),
            pts_ns: buffer.pts().map(|t| t.nseconds()),
            frame: v.as_ref().map_or(0, |v| v.frame),
            source_id,
            part_id: v.as_ref().and_then(|v| v.part_id.clone()),
            model: v.as_ref().map(|v| ModelRef {
                id: v.model.id.clone(),
                name: v.model.name.clone(),
                version: v.model.version.clone(),
                sha256: v.model.sha256.clone(),
            }),
            policy_sha256: v.as_ref().and_then(|v| v.policy_sha256.clone()),
            task: v.as_ref().map(|v| v.task.clone()).filter(|t| !t.is_empty()),
            anomaly_score: v.as_ref().and_then(|v| v.anomaly_score),
            detections,
            verdict: v.as_ref().map(|v| v.verdict.as_str().to_string()),
            inspected: v.as_ref().map(|v| v.inspected),
            carried: v.as_ref().is_some_and(|v| v.carried),
            source_frame: v.as_ref().and_then(|v| v.source_frame),
            reasons: Vec::new(),
            shadow: v.as_ref().is_some_and(|v| v.shadow),
            counts: counts(v.as_ref().map_or([0; 4], |v| v.counts)),
            latency_ms: v.as_ref().map(|v| Latency {
                inference: v.inference_ms,
                total: v.total_ms,
            }),
            capture_dropped: v.as_ref().and_then(|v| v.capture_dropped),
        };
        record.derive_reasons();
        record
    }

    /// A `defect-drift` event: a record when an episode starts or ends.
    fn drift(&self, report: DriftReport) {
        let changed = {
            let mut active = lock(&self.drift_active);
            std::mem::replace(&mut *active, report.active) != report.active
        };
        if changed {
            let source_id = lock(&self.settings).source_id.clone();
            let record = DriftRecord::new(&report, source_id, records::utc_now());
            if self.push_line(records::to_line(&record), None).is_err() {
                gst::debug!(CAT, imp = self, "drift record not pushed");
            }
        }
    }

    fn part_record(&self, part: PartVerdictMeta) -> PartRecord {
        PartRecord {
            schema_version: SCHEMA_VERSION,
            kind: "part",
            utc: records::utc_now(),
            source_id: lock(&self.settings).source_id.clone(),
            part_id: part.part_id,
            verdict: part.verdict.as_str().to_string(),
            shadow: part.shadow,
            first_frame: part.first_frame,
            last_frame: part.last_frame,
            frames: part.frames,
            inspected_frames: part.inspected_frames,
            counts: counts(part.counts),
            model_id: part.model_id,
            cameras: part
                .cameras
                .into_iter()
                .map(|c| CameraRecord {
                    camera: c.name,
                    status: c.status.as_str().to_string(),
                    required: c.required,
                    verdict: c.verdict.as_str().to_string(),
                    first_frame: c.first_frame,
                    last_frame: c.last_frame,
                    frames: c.frames,
                    inspected_frames: c.inspected_frames,
                    counts: counts(c.counts),
                    model_id: c.model_id,
                })
                .collect(),
        }
    }
}

fn counts([critical, major, minor, cosmetic]: crate::policy::SeverityCounts) -> SeverityCounts {
    SeverityCounts {
        critical,
        major,
        minor,
        cosmetic,
    }
}

/// A detection from its ROI meta; the normalised DL Streamer box when present (sub-pixel),
/// else the integer rectangle.
fn detection_record(
    roi: &gst_video::VideoRegionOfInterestMeta,
    params: Option<DetectionParams>,
    classification: Option<Classification>,
    width: u32,
    height: u32,
) -> DetectionRecord {
    let (x, y, w, h) = roi.rect();
    let mut bbox = [x as f64, y as f64, (x + w) as f64, (y + h) as f64];
    if let Some(p) = &params
        && width > 0
    {
        bbox = [
            p.x_min * width as f64,
            p.y_min * height as f64,
            p.x_max * width as f64,
            p.y_max * height as f64,
        ];
    }
    DetectionRecord {
        class_id: params.as_ref().map_or(0, |p| p.label_id),
        class_name: params
            .as_ref()
            .map_or_else(|| roi.roi_type().to_string(), |p| p.label.clone()),
        severity: params
            .as_ref()
            .and_then(|p| p.severity)
            .map(|s| s.as_str().to_string()),
        decision: params
            .as_ref()
            .and_then(|p| p.decision)
            .map(|d| d.as_str().to_string()),
        confidence: params.as_ref().map_or(0.0, |p| p.confidence),
        area: (bbox[2] - bbox[0]).max(0.0) * (bbox[3] - bbox[1]).max(0.0),
        area_px: (bbox[2] - bbox[0]).max(0.0) * (bbox[3] - bbox[1]).max(0.0),
        area_mm2: None,
        length_px: None,
        length_mm: None,
        mask: None,
        bbox,
        peak_score: params.as_ref().and_then(|p| p.peak_score),
        mean_score: params.as_ref().and_then(|p| p.mean_score),
        classification: classification.map(|c| ClassificationRecord {
            class_id: c.label_id,
            class_name: c.label,
            confidence: c.confidence,
            severity: c.severity.map(|s| s.as_str().to_string()),
            decision: c.decision.map(|d| d.as_str().to_string()),
        }),
    }
}
