// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `defectoverlay` element: reads the ROI and verdict metas, draws with
//! [`crate::draw::overlay`] into the frame in place.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, Mutex};

use gst::glib;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;

use crate::analysis::mask::Mask;
use crate::draw::YuvEncoding;
use crate::draw::heatmap::{self, HeatSource};
use crate::draw::mask::MaskStyle;
use crate::draw::overlay::{self, Annotation, Banner, Layers, Style};
use crate::element::MetaProblems;
use crate::element::{self, lock};
use crate::meta::prelude::*;
use crate::meta::{
    AnomalyMapMeta, Classification, Decision, DetectionParams, MaskParams, Verdict, VerdictMeta,
};
use crate::video::{canvas, yuv_encoding};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    element::debug_category("defectoverlay", "Draws defect detections and verdicts")
});

element::subclass!(DefectOverlay, "GstDefectOverlay", gst_base::BaseTransform, element::video_filter_pads() => "Defect overlay", "Filter/Effect/Video", "Draws defect boxes coloured by severity, labels and the PASS/FAIL/REVIEW banner in place");

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
    draw_masks: bool,
    mask_opacity: f64,
}

element::settings_properties!(Settings for DefectOverlay {
    "show-boxes" => show_boxes,
    "show-labels" => show_labels,
    "show-banner" => show_banner,
    "show-ignored" => show_ignored,
    "text-scale" => text_scale,
    "line-width" => line_width,
    "show-heatmap" => show_heatmap,
    "heatmap-opacity" => heatmap_opacity,
    "draw-masks" => draw_masks,
    "mask-opacity" => mask_opacity,
});

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
    /// An anomaly model's frame came without its map (said once per stream).
    map_missing_warned: AtomicBool,
}

impl ObjectImpl for DefectOverlay {
    element::properties! {
        boolean("show-boxes", "Show boxes", true).mutable_playing(): "Draw a box around every detection, coloured by severity",
        boolean("show-labels", "Show labels", true).mutable_playing(): "Write class name and confidence above every box",
        boolean("show-banner", "Show banner", true).mutable_playing(): "Draw the frame's verdict banner (PASS green, FAIL red, REVIEW amber, UNKNOWN slate)",
        boolean("show-ignored", "Show ignored", true).mutable_playing(): "Also draw, in grey, detections the policy ignored (outside region, masked, too small)",
        uint("text-scale", "Text scale", 0..=64, 0).mutable_playing(): "Glyph size in multiples of 8 pixels; 0 = from the frame height (2 at 720p, 6 at 4K)",
        uint("line-width", "Line width", 0..=256, 0).mutable_playing(): "Box outline width in pixels; 0 = from the frame height",
        boolean("show-heatmap", "Show heat map", false).mutable_playing(): "Draw an anomaly model's map (DefectAnomalyMapMeta) over the frame as a translucent heat map, blue cold to red hot (the pixel threshold is green)",
        double("heatmap-opacity", "Heat map opacity", 0.0..=1.0, 0.4).mutable_playing(): "Opacity of the heat map: 0 invisible, 1 opaque",
        boolean("draw-masks", "Draw masks", true).mutable_playing(): "Draw a segmentation model's masks (the defect-mask of each detection), filled in the colour of its box with an outline",
        double("mask-opacity", "Mask opacity", 0.0..=1.0, 0.4).mutable_playing(): "Opacity of the masks' fill: 0 = outline only, 1 = opaque",
    }

    element::settings_accessors!(settings);
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
        self.map_missing_warned.store(false, Ordering::Relaxed);
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
        let annotations = if settings.show_boxes || settings.draw_masks {
            self.annotations(buffer, settings.show_ignored, settings.draw_masks)
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
        let layers = Layers {
            boxes: settings.show_boxes,
            // An outline of 1 to 2 pixels: the mask's edge, under the box's wider lines.
            masks: settings.draw_masks.then_some(MaskStyle {
                opacity: settings.mask_opacity as f32,
                outline: style.line_width.clamp(1, 2),
            }),
        };
        overlay::render(&mut canvas, &annotations, banner.as_ref(), style, layers);
        Ok(gst::FlowSuccess::Ok)
    }
}

impl DefectOverlay {
    /// The boxes to draw, from the ROI metas `defectdetect` attached (and other elements'
    /// ROIs, labelled with their type), with their masks when `masks`.
    fn annotations(
        &self,
        buffer: &gst::BufferRef,
        show_ignored: bool,
        masks: bool,
    ) -> Vec<Annotation> {
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
                if !(counted || show_ignored) {
                    return None;
                }
                let mask = masks.then(|| self.mask(&roi)).flatten();
                Some(match class {
                    Some(c) => Annotation {
                        rect: [x as f32, y as f32, (x + w) as f32, (y + h) as f32],
                        label: c.label,
                        confidence: c.confidence as f32,
                        severity: c.severity,
                        counted: counted && c.decision.is_none_or(Decision::counted),
                        mask,
                    },
                    None => Annotation {
                        rect: [x as f32, y as f32, (x + w) as f32, (y + h) as f32],
                        label: params
                            .as_ref()
                            .map_or_else(|| roi.roi_type().to_string(), |p| p.label.clone()),
                        confidence: params.as_ref().map_or(0.0, |p| p.confidence) as f32,
                        severity: params.as_ref().and_then(|p| p.severity),
                        counted,
                        mask,
                    },
                })
            })
            .collect()
    }

    /// The ROI's `defect-mask`, at its window; a malformed one is reported and not drawn.
    /// Where the frame was scaled since `defectdetect` (the ROI's box, which scaling elements
    /// update, differs from the mask's window by more than a pixel), the mask is resized onto
    /// the ROI's box.
    fn mask(&self, roi: &gst_video::VideoRegionOfInterestMeta) -> Option<Mask> {
        let params = self
            .problems
            .check(&*self.obj(), *CAT, MaskParams::of_roi(roi)?)?;
        let mask = self.problems.check(&*self.obj(), *CAT, params.decode())?;
        let (x, y, w, h) = roi.rect();
        let near = |a: u32, b: u32| a.abs_diff(b) <= 1;
        Some(
            if near(x, mask.x) && near(y, mask.y) && near(w, mask.width) && near(h, mask.height) {
                mask
            } else {
                mask.resized(x, y, w, h)
            },
        )
    }

    /// The heat of every pixel, from the `DefectAnomalyMapMeta` an anomaly model's
    /// `defectdetect` attached, resized to the frame over the rectangle the map covers; a
    /// malformed one is reported and not drawn.
    fn heat(
        &self,
        buffer: &gst::BufferRef,
        info: &gst_video::VideoInfo,
    ) -> Option<Vec<Option<u8>>> {
        let Some(read) = AnomalyMapMeta::from_buffer(buffer) else {
            self.check_map_missing(buffer);
            return None;
        };
        let map = self.problems.check(&*self.obj(), *CAT, read)?;
        let values = map.values();
        let source = HeatSource {
            width: map.width as usize,
            height: map.height as usize,
            values: &values,
            rect: [map.x_min, map.y_min, map.x_max, map.y_max],
        };
        Some(heatmap::resize(&source, info.width(), info.height()))
    }

    /// A frame an anomaly model judged (its verdict meta says so) carries its map: one without
    /// it lost it on the way (an element that flips, rotates or crops frames drops the map,
    /// which cannot follow), said once per stream.
    fn check_map_missing(&self, buffer: &gst::BufferRef) {
        let judged_anomaly = VerdictMeta::from_buffer(buffer)
            .and_then(Result::ok)
            .is_some_and(|v| v.task == "anomaly" && v.verdict != Verdict::Unknown);
        if judged_anomaly && !self.map_missing_warned.swap(true, Ordering::Relaxed) {
            gst::element_imp_warning!(
                self,
                gst::StreamError::Format,
                ("show-heatmap: a frame of an anomaly model came without its DefectAnomalyMapMeta; an element between defectdetect and defectoverlay dropped it (the map follows scaling, but not a flip, rotation or crop: put such elements before defectdetect or after defectoverlay); no heat map is drawn")
            );
        }
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
