// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `defectmetaconvert` element: video buffers with metas in, NDJSON records out.

use std::sync::{LazyLock, Mutex, MutexGuard};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use crate::meta;
use crate::records::{
    self, ClassificationRecord, DetectionRecord, FrameRecord, Latency, ModelRef, PartRecord,
    SCHEMA_VERSION, SeverityCounts,
};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "defectmetaconvert",
        gst::DebugColorFlags::empty(),
        Some("Defect metas to NDJSON records"),
    )
});

const DEFAULT_SOURCE_ID: &str = "camera-0";

#[derive(Debug, Clone)]
struct Settings {
    source_id: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            source_id: DEFAULT_SOURCE_ID.into(),
        }
    }
}

pub struct DefectMetaConvert {
    sinkpad: gst::Pad,
    srcpad: gst::Pad,
    settings: Mutex<Settings>,
    /// Frame size of the negotiated video, for boxes in pixels.
    size: Mutex<(u32, u32)>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
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

    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("source-id")
                    .nick("Source id")
                    .blurb("Identifies the camera or line in every record (and in MQTT topics)")
                    .default_value(Some(DEFAULT_SOURCE_ID))
                    .mutable_playing()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        if pspec.name() == "source-id" {
            lock(&self.settings).source_id = value
                .get::<Option<String>>()
                .ok()
                .flatten()
                .unwrap_or_else(|| DEFAULT_SOURCE_ID.into());
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "source-id" => lock(&self.settings).source_id.to_value(),
            _ => unimplemented!(),
        }
    }
}

impl GstObjectImpl for DefectMetaConvert {}

impl ElementImpl for DefectMetaConvert {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static ELEMENT_METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Defect meta converter",
                "Converter/Metadata",
                "Turns defect detections and verdicts into NDJSON records, one per frame and one per part",
                "gst-plugin-defect developers",
            )
        });
        Some(&*ELEMENT_METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let video = gst::Caps::builder("video/x-raw").any_features().build();
            let ndjson = gst::Caps::builder("application/x-ndjson").build();
            vec![
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &video,
                )
                .expect("valid template"),
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &ndjson,
                )
                .expect("valid template"),
            ]
        });
        PAD_TEMPLATES.as_ref()
    }
}

impl DefectMetaConvert {
    fn sink_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::Caps(caps) => {
                let size = gst_video::VideoInfo::from_caps(caps.caps())
                    .map_or((0, 0), |i| (i.width(), i.height()));
                *lock(&self.size) = size;
                self.srcpad.push_event(gst::event::Caps::new(
                    &gst::Caps::builder("application/x-ndjson").build(),
                ))
            }
            gst::EventView::CustomDownstream(custom) => {
                if let Some(part) = custom
                    .structure()
                    .filter(|s| s.name() == "defect-part-verdict")
                {
                    let line = records::to_line(&self.part_record(part));
                    if self.push_line(line, None).is_err() {
                        gst::debug!(CAT, imp = self, "part record not pushed");
                    }
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
        let verdict = gst::meta::CustomMeta::from_buffer(buffer, meta::VERDICT_META).ok();
        let v = verdict.as_ref().map(|m| m.structure());
        let text = |f: &str| v.and_then(|s| s.get::<String>(f).ok());
        let count = |f: &str| v.and_then(|s| s.get::<u32>(f).ok()).unwrap_or(0);
        let number = |f: &str| v.and_then(|s| s.get::<f64>(f).ok());
        let detections = buffer
            .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
            .map(|roi| detection_record(&roi, width, height))
            .collect();
        let mut record = FrameRecord {
            schema_version: SCHEMA_VERSION,
            kind: "frame",
            utc: records::utc_now(),
            pts_ns: buffer.pts().map(|t| t.nseconds()),
            frame: v.and_then(|s| s.get::<u64>("frame").ok()).unwrap_or(0),
            source_id,
            part_id: text("part-id"),
            model: text("model-id").map(|id| ModelRef {
                id,
                name: text("model-name").unwrap_or_default(),
                version: text("model-version").unwrap_or_default(),
                sha256: text("model-sha256").unwrap_or_default(),
            }),
            policy_sha256: text("policy-sha256"),
            task: text("task"),
            anomaly_score: number("anomaly-score"),
            detections,
            verdict: text("verdict"),
            inspected: v.and_then(|s| s.get::<bool>("inspected").ok()),
            carried: v
                .and_then(|s| s.get::<bool>("carried").ok())
                .unwrap_or(false),
            source_frame: v.and_then(|s| s.get::<u64>("source-frame").ok()),
            reasons: Vec::new(),
            shadow: v
                .and_then(|s| s.get::<bool>("shadow").ok())
                .unwrap_or(false),
            counts: SeverityCounts {
                critical: count("critical"),
                major: count("major"),
                minor: count("minor"),
                cosmetic: count("cosmetic"),
            },
            latency_ms: number("total-ms").map(|total| Latency {
                inference: number("inference-ms").unwrap_or(0.0),
                total,
            }),
            capture_dropped: v.and_then(|s| s.get::<u64>("capture-dropped").ok()),
        };
        record.derive_reasons();
        record
    }

    fn part_record(&self, s: &gst::StructureRef) -> PartRecord {
        let count = |f: &str| s.get::<u32>(f).unwrap_or(0);
        let number = |f: &str| s.get::<u64>(f).unwrap_or(0);
        PartRecord {
            schema_version: SCHEMA_VERSION,
            kind: "part",
            utc: records::utc_now(),
            source_id: lock(&self.settings).source_id.clone(),
            part_id: s.get::<String>("part-id").unwrap_or_default(),
            verdict: s.get::<String>("verdict").unwrap_or_default(),
            shadow: s.get::<bool>("shadow").unwrap_or(false),
            first_frame: number("first-frame"),
            last_frame: number("last-frame"),
            frames: number("frames"),
            inspected_frames: number("inspected-frames"),
            counts: SeverityCounts {
                critical: count("critical"),
                major: count("major"),
                minor: count("minor"),
                cosmetic: count("cosmetic"),
            },
            model_id: s.get::<String>("model-id").unwrap_or_default(),
        }
    }
}

/// A detection from its ROI meta; the normalised DL Streamer box when present (sub-pixel),
/// else the integer rectangle.
fn detection_record(
    roi: &gst_video::VideoRegionOfInterestMeta,
    width: u32,
    height: u32,
) -> DetectionRecord {
    let params = roi.param("detection");
    let (x, y, w, h) = roi.rect();
    let mut bbox = [x as f64, y as f64, (x + w) as f64, (y + h) as f64];
    if let Some(p) = params
        && width > 0
    {
        let n = |f: &str| p.get::<f64>(f).ok();
        if let (Some(x1), Some(y1), Some(x2), Some(y2)) =
            (n("x_min"), n("y_min"), n("x_max"), n("y_max"))
        {
            bbox = [
                x1 * width as f64,
                y1 * height as f64,
                x2 * width as f64,
                y2 * height as f64,
            ];
        }
    }
    let text = |f: &str| params.and_then(|p| p.get::<String>(f).ok());
    DetectionRecord {
        // defectdetect's class ids are below 100,000 (decode::MAX_CLASS_ID): they fit.
        class_id: params
            .and_then(|p| p.get::<i32>("label_id").ok())
            .unwrap_or(0)
            .max(0) as u32,
        class_name: text("label").unwrap_or_else(|| roi.roi_type().to_string()),
        severity: text("severity"),
        decision: text("decision"),
        confidence: params
            .and_then(|p| p.get::<f64>("confidence").ok())
            .unwrap_or(0.0),
        area: (bbox[2] - bbox[0]).max(0.0) * (bbox[3] - bbox[1]).max(0.0),
        bbox,
        peak_score: params.and_then(|p| p.get::<f64>("peak_score").ok()),
        mean_score: params.and_then(|p| p.get::<f64>("mean_score").ok()),
        classification: roi.param("classification").map(|c| {
            let text = |f: &str| c.get::<String>(f).ok();
            ClassificationRecord {
                class_id: c.get::<i32>("label_id").unwrap_or(0).max(0) as u32,
                class_name: text("label").unwrap_or_default(),
                confidence: c.get::<f64>("confidence").unwrap_or(0.0),
                severity: text("severity"),
                decision: text("decision"),
            }
        }),
    }
}
