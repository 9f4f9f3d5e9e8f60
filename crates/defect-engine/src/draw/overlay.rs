//! What `defectoverlay` draws: a segmentation model's masks, boxes coloured by severity with
//! their label and confidence, and a verdict banner. Pure: it draws on a [`Canvas`].

use super::mask::MaskStyle;
use super::{Canvas, GLYPH_SIZE, Rgb, text_width};
use crate::analysis::mask::Mask;
use crate::policy::{Severity, Verdict};

/// One detection to draw, box in frame pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Annotation {
    pub rect: [f32; 4],
    pub label: String,
    pub confidence: f32,
    pub severity: Option<Severity>,
    /// False for detections the policy ignored (outside the region, masked, too small).
    pub counted: bool,
    /// A segmentation model's mask, frame coordinates.
    pub mask: Option<Mask>,
}

impl Annotation {
    /// The colour of its box and mask: its severity's, grey when ignored.
    pub fn colour(&self) -> Rgb {
        if self.counted {
            severity_colour(self.severity)
        } else {
            IGNORED_GREY
        }
    }
}

/// Which parts of the annotations are drawn: boxes (with their labels) and masks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Layers {
    pub boxes: bool,
    /// None: masks are not drawn.
    pub masks: Option<MaskStyle>,
}

/// The frame's verdict as the banner shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Banner {
    pub verdict: Verdict,
    pub shadow: bool,
    pub part_id: Option<String>,
    pub frame: u64,
}

/// Sizes; [`Style::for_height`] makes text readable from 480p to 4K.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    pub text_scale: u32,
    pub line_width: i64,
}

impl Style {
    /// Glyphs of about 2.2 % of the frame height (16 px at 720p, 48 px at 2160p), lines of
    /// about 0.3 %.
    pub fn for_height(height: u32) -> Self {
        Self {
            text_scale: (height / 360).max(1),
            line_width: (height as i64 / 360).max(2),
        }
    }
}

pub const PASS_GREEN: Rgb = Rgb(0, 170, 60);
pub const FAIL_RED: Rgb = Rgb(210, 20, 20);
pub const REVIEW_AMBER: Rgb = Rgb(255, 176, 0);
pub const IGNORED_GREY: Rgb = Rgb(128, 128, 128);
/// Not inspected: a slate blue-grey, distinct from PASS green and from ignored boxes.
pub const UNKNOWN_SLATE: Rgb = Rgb(90, 100, 130);

pub fn severity_colour(severity: Option<Severity>) -> Rgb {
    match severity {
        Some(Severity::Critical) => Rgb(230, 20, 60),
        Some(Severity::Major) => Rgb(255, 120, 0),
        Some(Severity::Minor) => Rgb(240, 220, 0),
        Some(Severity::Cosmetic) => Rgb(0, 200, 230),
        None => Rgb::WHITE,
    }
}

pub fn verdict_colour(verdict: Verdict) -> Rgb {
    match verdict {
        Verdict::Pass => PASS_GREEN,
        Verdict::Fail => FAIL_RED,
        Verdict::Review => REVIEW_AMBER,
        Verdict::Unknown => UNKNOWN_SLATE,
    }
}

/// Draws every annotation's mask, then the boxes and labels over them, then the banner on top.
pub fn render(
    canvas: &mut Canvas,
    annotations: &[Annotation],
    banner: Option<&Banner>,
    style: Style,
    layers: Layers,
) {
    if let Some(mask_style) = layers.masks {
        for a in annotations {
            if let Some(mask) = &a.mask {
                canvas.draw_mask(mask, a.colour(), mask_style);
            }
        }
    }
    if layers.boxes {
        for annotation in annotations {
            draw_annotation(canvas, annotation, style);
        }
    }
    if let Some(banner) = banner {
        draw_banner(canvas, banner, style);
    }
}

/// Text height plus padding: the height of a label strip or the banner.
pub fn strip_height(style: Style) -> i64 {
    (GLYPH_SIZE * style.text_scale) as i64 + 2 * style.text_scale as i64
}

fn draw_annotation(canvas: &mut Canvas, a: &Annotation, style: Style) {
    let colour = a.colour();
    let [x0, y0, x1, y1] = a.rect.map(|v| v.round() as i64);
    let line = if a.counted {
        style.line_width
    } else {
        (style.line_width / 2).max(1)
    };
    canvas.outline(x0, y0, x1, y1, line, colour);
    let text = format!("{} {:.2}", a.label, a.confidence);
    let height = strip_height(style);
    // The label sits above the box, or inside it when the box touches the top.
    let top = if y0 - height >= 0 { y0 - height } else { y0 };
    let pad = style.text_scale as i64;
    canvas.fill_rect(
        x0,
        top,
        x0 + text_width(&text, style.text_scale) + 2 * pad,
        top + height,
        colour,
    );
    canvas.text(x0 + pad, top + pad, &text, style.text_scale, Rgb::BLACK);
}

fn draw_banner(canvas: &mut Canvas, banner: &Banner, style: Style) {
    let colour = verdict_colour(banner.verdict);
    let height = strip_height(style);
    let width = canvas.width() as i64;
    canvas.fill_rect(0, 0, width, height, colour);
    let mut text = String::new();
    if banner.shadow {
        text.push_str("SHADOW ");
    }
    text.push_str(banner.verdict.as_str());
    if let Some(part) = &banner.part_id {
        text.push_str(&format!("  part {part}"));
    }
    text.push_str(&format!("  frame {}", banner.frame));
    if banner.shadow {
        text.push_str("  (not enforced)");
    }
    let pad = style.text_scale as i64;
    let ink = if banner.verdict == Verdict::Review {
        Rgb::BLACK
    } else {
        Rgb::WHITE
    };
    canvas.text(pad * 2, pad, &text, style.text_scale, ink);
    if banner.shadow {
        // Shadow verdicts get a striped lower edge, visible without reading the text.
        let stripe = style.line_width.max(2);
        let mut x = 0;
        while x < width {
            canvas.fill_rect(x, height, x + stripe * 4, height + stripe, colour);
            x += stripe * 8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::draw::YuvEncoding;
    use crate::frame::PixelFormat;

    #[test]
    fn styles_scale_with_height() {
        assert_eq!(
            Style::for_height(720),
            Style {
                text_scale: 2,
                line_width: 2
            }
        );
        assert_eq!(
            Style::for_height(2160),
            Style {
                text_scale: 6,
                line_width: 6
            }
        );
        assert_eq!(
            Style::for_height(100),
            Style {
                text_scale: 1,
                line_width: 2
            }
        );
    }

    #[test]
    fn banner_and_box_land_where_expected() {
        let (w, h) = (200usize, 100usize);
        let mut data = vec![0u8; w * h * 3];
        let mut canvas = Canvas::new(
            w as u32,
            h as u32,
            PixelFormat::RGB,
            YuvEncoding::default(),
            [&mut data, &mut [], &mut []],
            [w * 3, 0, 0],
        )
        .unwrap();
        let a = Annotation {
            rect: [50.0, 50.0, 90.0, 90.0],
            label: "x".into(),
            confidence: 0.5,
            severity: Some(Severity::Critical),
            counted: true,
            mask: Some(Mask {
                x: 60,
                y: 60,
                width: 20,
                height: 20,
                data: vec![1; 400],
            }),
        };
        let banner = Banner {
            verdict: Verdict::Fail,
            shadow: false,
            part_id: None,
            frame: 3,
        };
        let style = Style::for_height(h as u32);
        let layers = Layers {
            boxes: true,
            masks: Some(MaskStyle {
                opacity: 0.5,
                outline: 1,
            }),
        };
        render(
            &mut canvas,
            std::slice::from_ref(&a),
            Some(&banner),
            style,
            layers,
        );
        let px = |data: &[u8], x: usize, y: usize| {
            [
                data[(y * w + x) * 3],
                data[(y * w + x) * 3 + 1],
                data[(y * w + x) * 3 + 2],
            ]
        };
        assert_eq!(px(&data, 199, 1), [210, 20, 20], "banner");
        assert_eq!(px(&data, 50, 70), [230, 20, 60], "left edge of the box");
        assert_eq!(
            px(&data, 55, 55),
            [0, 0, 0],
            "inside the box, outside the mask"
        );
        assert_eq!(px(&data, 60, 70), [230, 20, 60], "the mask's outline");
        assert_eq!(
            px(&data, 70, 70),
            [115, 10, 30],
            "inside the mask: half the colour"
        );
        // Masks alone, or boxes alone.
        data.fill(0);
        let mut canvas = Canvas::new(
            w as u32,
            h as u32,
            PixelFormat::RGB,
            YuvEncoding::default(),
            [&mut data, &mut [], &mut []],
            [w * 3, 0, 0],
        )
        .unwrap();
        let masks_only = Layers {
            boxes: false,
            ..layers
        };
        render(
            &mut canvas,
            std::slice::from_ref(&a),
            None,
            style,
            masks_only,
        );
        assert_eq!(px(&data, 50, 70), [0, 0, 0], "no box");
        assert_eq!(px(&data, 70, 70), [115, 10, 30], "the mask");
        data.fill(0);
        let mut canvas = Canvas::new(
            w as u32,
            h as u32,
            PixelFormat::RGB,
            YuvEncoding::default(),
            [&mut data, &mut [], &mut []],
            [w * 3, 0, 0],
        )
        .unwrap();
        let boxes_only = Layers {
            boxes: true,
            masks: None,
        };
        render(&mut canvas, &[a], None, style, boxes_only);
        assert_eq!(px(&data, 50, 70), [230, 20, 60], "the box");
        assert_eq!(px(&data, 70, 70), [0, 0, 0], "no mask");
    }
}
