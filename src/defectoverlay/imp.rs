// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `defectoverlay` element: reads the ROI and verdict metas, draws with
//! [`crate::draw::overlay`] into the frame in place.

use std::sync::{LazyLock, Mutex, MutexGuard};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;

use crate::draw::YuvEncoding;
use crate::draw::overlay::{self, Annotation, Banner, Style};
use crate::meta;
use crate::policy::{Severity, Verdict};
use crate::video::{FORMATS, canvas, yuv_encoding};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "defectoverlay",
        gst::DebugColorFlags::empty(),
        Some("Draws defect detections and verdicts"),
    )
});

#[derive(Debug, Clone)]
struct Settings {
    show_boxes: bool,
    show_labels: bool,
    show_banner: bool,
    show_ignored: bool,
    text_scale: u32,
    line_width: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            show_boxes: true,
            show_labels: true,
            show_banner: true,
            show_ignored: true,
            text_scale: 0,
            line_width: 0,
        }
    }
}

/// What the negotiated caps fix: the frames' layout and, for YUV, their colour encoding.
#[derive(Clone)]
struct Negotiated {
    info: gst_video::VideoInfo,
    encoding: YuvEncoding,
}

#[derive(Default)]
pub struct DefectOverlay {
    settings: Mutex<Settings>,
    negotiated: Mutex<Option<Negotiated>>,
}

#[glib::object_subclass]
impl ObjectSubclass for DefectOverlay {
    const NAME: &'static str = "GstDefectOverlay";
    type Type = super::DefectOverlay;
    type ParentType = gst_base::BaseTransform;
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ObjectImpl for DefectOverlay {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let flag = |name: &'static str, nick: &'static str, blurb: &'static str| {
                glib::ParamSpecBoolean::builder(name)
                    .nick(nick)
                    .blurb(blurb)
                    .default_value(true)
                    .mutable_playing()
                    .build()
            };
            vec![
                flag("show-boxes", "Show boxes", "Draw a box around every detection, coloured by severity"),
                flag("show-labels", "Show labels", "Write class name and confidence above every box"),
                flag("show-banner", "Show banner", "Draw the frame's verdict banner (PASS green, FAIL red, REVIEW amber, UNKNOWN slate)"),
                flag("show-ignored", "Show ignored", "Also draw, in grey, detections the policy ignored (outside region, masked, too small)"),
                glib::ParamSpecUInt::builder("text-scale")
                    .nick("Text scale")
                    .blurb("Glyph size in multiples of 8 pixels; 0 = from the frame height (2 at 720p, 6 at 4K)")
                    .maximum(64)
                    .default_value(0)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("line-width")
                    .nick("Line width")
                    .blurb("Box outline width in pixels; 0 = from the frame height")
                    .maximum(256)
                    .default_value(0)
                    .mutable_playing()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = lock(&self.settings);
        match pspec.name() {
            "show-boxes" => s.show_boxes = value.get().expect("type checked upstream"),
            "show-labels" => s.show_labels = value.get().expect("type checked upstream"),
            "show-banner" => s.show_banner = value.get().expect("type checked upstream"),
            "show-ignored" => s.show_ignored = value.get().expect("type checked upstream"),
            "text-scale" => s.text_scale = value.get().expect("type checked upstream"),
            "line-width" => s.line_width = value.get().expect("type checked upstream"),
            name => gst::warning!(CAT, imp = self, "unknown property {name}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = lock(&self.settings);
        match pspec.name() {
            "show-boxes" => s.show_boxes.to_value(),
            "show-labels" => s.show_labels.to_value(),
            "show-banner" => s.show_banner.to_value(),
            "show-ignored" => s.show_ignored.to_value(),
            "text-scale" => s.text_scale.to_value(),
            "line-width" => s.line_width.to_value(),
            _ => unimplemented!(),
        }
    }
}

impl GstObjectImpl for DefectOverlay {}

impl ElementImpl for DefectOverlay {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static ELEMENT_METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Defect overlay",
                "Filter/Effect/Video",
                "Draws defect boxes coloured by severity, labels and the PASS/FAIL/REVIEW banner in place",
                "gst-plugin-defect developers",
            )
        });
        Some(&*ELEMENT_METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst_video::VideoCapsBuilder::new()
                .format_list(FORMATS.iter().copied())
                .build();
            vec![
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &caps,
                )
                .expect("valid template"),
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &caps,
                )
                .expect("valid template"),
            ]
        });
        PAD_TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for DefectOverlay {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn set_caps(&self, incaps: &gst::Caps, _outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let info = gst_video::VideoInfo::from_caps(incaps)
            .map_err(|_| gst::loggable_error!(CAT, "cannot parse video caps {incaps}"))?;
        let encoding = yuv_encoding(&info);
        *lock(&self.negotiated) = Some(Negotiated { info, encoding });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *lock(&self.negotiated) = None;
        Ok(())
    }

    fn transform_ip(
        &self,
        buffer: &mut gst::BufferRef,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let settings = lock(&self.settings).clone();
        let Negotiated { info, encoding } = lock(&self.negotiated)
            .clone()
            .ok_or(gst::FlowError::NotNegotiated)?;
        let annotations = if settings.show_boxes {
            annotations(buffer, settings.show_ignored)
        } else {
            Vec::new()
        };
        let banner = settings.show_banner.then(|| banner(buffer)).flatten();
        if annotations.is_empty() && banner.is_none() {
            return Ok(gst::FlowSuccess::Ok);
        }
        let auto = Style::for_height(info.height());
        let style = Style {
            text_scale: if settings.text_scale > 0 {
                settings.text_scale
            } else {
                auto.text_scale
            },
            line_width: if settings.line_width > 0 {
                settings.line_width as i64
            } else {
                auto.line_width
            },
        };
        let annotations: Vec<Annotation> = if settings.show_labels {
            annotations
        } else {
            annotations
                .into_iter()
                .map(|a| Annotation {
                    label: String::new(),
                    ..a
                })
                .collect()
        };
        let mut frame =
            gst_video::VideoFrameRef::from_buffer_ref_writable(buffer, &info).map_err(|_| {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Format,
                    (
                        "cannot map a {}x{} frame for writing",
                        info.width(),
                        info.height()
                    )
                );
                gst::FlowError::Error
            })?;
        let mut canvas = canvas(&mut frame, encoding).map_err(|reason| {
            gst::element_imp_error!(self, gst::StreamError::Format, ("{reason}"));
            gst::FlowError::Error
        })?;
        overlay::render(&mut canvas, &annotations, banner.as_ref(), style);
        Ok(gst::FlowSuccess::Ok)
    }
}

/// The boxes to draw, from the ROI metas `defectdetect` attached.
fn annotations(buffer: &gst::BufferRef, show_ignored: bool) -> Vec<Annotation> {
    buffer
        .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
        .filter_map(|roi| {
            let (x, y, w, h) = roi.rect();
            let params = roi.param("detection");
            let text = |field: &str| params.and_then(|p| p.get::<String>(field).ok());
            let decision = text("decision");
            let counted = !matches!(
                decision.as_deref(),
                Some("outside-region" | "masked" | "too-small")
            );
            (counted || show_ignored).then(|| Annotation {
                rect: [x as f32, y as f32, (x + w) as f32, (y + h) as f32],
                label: text("label").unwrap_or_else(|| roi.roi_type().to_string()),
                confidence: params
                    .and_then(|p| p.get::<f64>("confidence").ok())
                    .unwrap_or(0.0) as f32,
                severity: text("severity").and_then(|s| Severity::parse(&s)),
                counted,
            })
        })
        .collect()
}

/// The banner, from the `DefectVerdictMeta` `defectdetect` attached.
fn banner(buffer: &gst::BufferRef) -> Option<Banner> {
    let verdict_meta = gst::meta::CustomMeta::from_buffer(buffer, meta::VERDICT_META).ok()?;
    let s = verdict_meta.structure();
    // A verdict this overlay does not know is never drawn as PASS.
    let verdict = Verdict::parse(s.get::<&str>("verdict").ok()?).unwrap_or(Verdict::Unknown);
    Some(Banner {
        verdict,
        shadow: s.get::<bool>("shadow").unwrap_or(false),
        part_id: s.get::<String>("part-id").ok(),
        frame: s.get::<u64>("frame").unwrap_or(0),
    })
}
