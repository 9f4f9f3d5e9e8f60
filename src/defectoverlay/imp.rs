// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `defectoverlay` element: reads the ROI and verdict metas, draws with
//! [`crate::draw::overlay`] into the frame in place.

use std::sync::{LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;

use crate::draw::YuvEncoding;
use crate::draw::heatmap::{self, HeatSource};
use crate::draw::overlay::{self, Annotation, Banner, Style};
use crate::element::MetaProblems;
use crate::element::{self, lock};
use crate::meta::{AnomalyMapMeta, Classification, Decision, DetectionParams, VerdictMeta};
use crate::video::{canvas, yuv_encoding};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    element::debug_category("defectoverlay", "Draws defect detections and verdicts")
});

#[derive(Debug, Clone)]
struct Settings {
    show_boxes: bool,
    show_labels: bool,
    show_banner: bool,
    show_ignored: bool,
    text_scale: u32,
    line_width: u32,
    show_heatmap: bool,
    heatmap_opacity: f64,
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
            show_heatmap: false,
            heatmap_opacity: 0.4,
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
    problems: MetaProblems,
}

element::subclass!(DefectOverlay, "GstDefectOverlay", gst_base::BaseTransform);

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
                glib::ParamSpecBoolean::builder("show-heatmap").nick("Show heat map")
                    .blurb("Draw an anomaly model's map (DefectAnomalyMapMeta) over the frame as a translucent heat map, blue cold to red hot (the pixel threshold is green)")
                    .default_value(false).mutable_playing().build(),
                glib::ParamSpecDouble::builder("heatmap-opacity").nick("Heat map opacity")
                    .blurb("Opacity of the heat map: 0 invisible, 1 opaque")
                    .minimum(0.0).maximum(1.0).default_value(0.4).mutable_playing().build(),
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
            "show-heatmap" => s.show_heatmap = value.get().expect("type checked upstream"),
            "heatmap-opacity" => s.heatmap_opacity = value.get().expect("type checked upstream"),
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
            "show-heatmap" => s.show_heatmap.to_value(),
            "heatmap-opacity" => s.heatmap_opacity.to_value(),
            _ => unimplemented!(),
        }
    }
}

impl ElementImpl for DefectOverlay {
    element::describe!(element::video_filter_pads() =>
        "Defect overlay", "Filter/Effect/Video",
        "Draws defect boxes coloured by severity, labels and the PASS/FAIL/REVIEW banner in place");
}

impl BaseTransformImpl for DefectOverlay {
    element::in_place_transform!();

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
            self.annotations(buffer, settings.show_ignored)
        } else {
            Vec::new()
        };
        let banner = settings.show_banner.then(|| self.banner(buffer)).flatten();
        let heat = settings
            .show_heatmap
            .then(|| self.heat(buffer, &info))
            .flatten();
        if annotations.is_empty() && banner.is_none() && heat.is_none() {
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
        if let Some(heat) = heat {
            canvas.blend_heat(&heat, settings.heatmap_opacity as f32);
        }
        overlay::render(&mut canvas, &annotations, banner.as_ref(), style);
        Ok(gst::FlowSuccess::Ok)
    }
}

impl DefectOverlay {
    /// The boxes to draw, from the ROI metas `defectdetect` attached (and other elements'
    /// ROIs, labelled with their type).
    fn annotations(&self, buffer: &gst::BufferRef, show_ignored: bool) -> Vec<Annotation> {
        buffer
            .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
            .filter_map(|roi| {
                let (x, y, w, h) = roi.rect();
                let params = match DetectionParams::of_roi(&roi) {
                    None => None,
                    Some(read) => Some(self.problems.check(&*self.obj(), *CAT, read)?),
                };
                let counted = params.as_ref().is_none_or(DetectionParams::counted);
                // A second stage's classification names the region and judges it.
                let class = Classification::of_roi(&roi)
                    .and_then(|read| self.problems.check(&*self.obj(), *CAT, read))
                    .filter(|c| c.decision.is_some());
                (counted || show_ignored).then(|| match class {
                    Some(c) => Annotation {
                        rect: [x as f32, y as f32, (x + w) as f32, (y + h) as f32],
                        label: c.label,
                        confidence: c.confidence as f32,
                        severity: c.severity,
                        counted: counted && c.decision.is_none_or(Decision::counted),
                    },
                    None => Annotation {
                        rect: [x as f32, y as f32, (x + w) as f32, (y + h) as f32],
                        label: params
                            .as_ref()
                            .map_or_else(|| roi.roi_type().to_string(), |p| p.label.clone()),
                        confidence: params.as_ref().map_or(0.0, |p| p.confidence) as f32,
                        severity: params.as_ref().and_then(|p| p.severity),
                        counted,
                    },
                })
            })
            .collect()
    }

    /// The heat of every pixel, from the `DefectAnomalyMapMeta` an anomaly model's
    /// `defectdetect` attached, resized to the frame over the rectangle the map covers; a
    /// malformed one is reported and not drawn.
    fn heat(
        &self,
        buffer: &gst::BufferRef,
        info: &gst_video::VideoInfo,
    ) -> Option<Vec<Option<u8>>> {
        let map = self
            .problems
            .check(&*self.obj(), *CAT, AnomalyMapMeta::from_buffer(buffer)?)?;
        let source = HeatSource {
            width: map.width as usize,
            height: map.height as usize,
            values: &map.values,
            rect: [map.x_min, map.y_min, map.x_max, map.y_max],
        };
        Some(heatmap::resize(&source, info.width(), info.height()))
    }

    /// The banner, from the `DefectVerdictMeta` `defectdetect` attached; a malformed one is
    /// reported and not drawn (never drawn as PASS).
    fn banner(&self, buffer: &gst::BufferRef) -> Option<Banner> {
        let meta = self
            .problems
            .check(&*self.obj(), *CAT, VerdictMeta::from_buffer(buffer)?)?;
        Some(Banner {
            verdict: meta.verdict,
            shadow: meta.shadow,
            part_id: meta.part_id,
            frame: meta.frame,
        })
    }
}
