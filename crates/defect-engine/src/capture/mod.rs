//! Capture for retraining, free of GStreamer: frames converted to RGB (or grey), encoded as
//! PNG or JPEG, YOLO label files made from the detections, and a directory whose size is
//! bounded by removing the oldest captures first ([`dir`]: only files it names itself).

pub mod dataset;
pub mod dir;

pub use dir::{BoundedDir, CaptureName, Part, new_run_id};

use crate::analysis::BBox;
use crate::frame::{FrameView, Layout, PixelFormat, YuvMatrix, rgb_row};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Png,
    Jpeg,
}

impl ImageFormat {
    pub fn extension(self) -> &'static str {
        match self {
            ImageFormat::Png => "png",
            ImageFormat::Jpeg => "jpg",
        }
    }
}

/// A decoded image: 3 (RGB) or 1 (grey) bytes a pixel, tightly packed.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub width: u32,
    pub height: u32,
    pub channels: u8,
    pub pixels: Vec<u8>,
}

/// Converts a frame to packed RGB, or keeps GRAY8 as grey (mono cameras stay mono); an error
/// naming the plane when a plane does not hold the frame.
pub fn frame_to_image(
    frame: &FrameView,
    format: PixelFormat,
    yuv: YuvMatrix,
) -> Result<Image, String> {
    let (w, h) = (frame.width as usize, frame.height as usize);
    let channels = if format == PixelFormat::Gray8 { 1 } else { 3 };
    let tables = matches!(format.layout(), Layout::Yuv(_)).then(|| yuv.tables());
    let mut pixels = vec![0; w * h * channels];
    for (y, out) in pixels.chunks_exact_mut((w * channels).max(1)).enumerate() {
        let short = |plane| format!("plane {plane} does not hold a {w}x{h} frame");
        if channels == 1 {
            let row = frame.planes[0].get(y * frame.strides[0]..).unwrap_or(&[]);
            out.copy_from_slice(row.get(..w).ok_or_else(|| short(0))?);
        } else {
            rgb_row(frame, format, tables.as_ref(), y, 0, out).map_err(short)?;
        }
    }
    Ok(Image {
        width: frame.width,
        height: frame.height,
        channels: channels as u8,
        pixels,
    })
}

/// Encodes an image as PNG or JPEG (quality 90).
pub fn encode(image: &Image, format: ImageFormat) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    match format {
        ImageFormat::Png => {
            let mut encoder = png::Encoder::new(&mut out, image.width, image.height);
            encoder.set_color(if image.channels == 1 {
                png::ColorType::Grayscale
            } else {
                png::ColorType::Rgb
            });
            encoder.set_depth(png::BitDepth::Eight);
            encoder.set_compression(png::Compression::Fast);
            let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
            writer
                .write_image_data(&image.pixels)
                .map_err(|e| e.to_string())?;
        }
        ImageFormat::Jpeg => {
            let (w, h) = (u16::try_from(image.width), u16::try_from(image.height));
            let (Ok(w), Ok(h)) = (w, h) else {
                return Err("JPEG is limited to 65535 pixels a side".into());
            };
            let colour = if image.channels == 1 {
                jpeg_encoder::ColorType::Luma
            } else {
                jpeg_encoder::ColorType::Rgb
            };
            jpeg_encoder::Encoder::new(&mut out, 90)
                .encode(&image.pixels, w, h, colour)
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(out)
}

/// An anomaly map as a heat-map image of the frame's size: the map resized over the frame
/// rectangle it covers and coloured with the jet ramp, as `defectoverlay show-heatmap=true`
/// draws it (opaque here; black outside the map's rectangle).
pub fn heatmap_image(source: &crate::draw::heatmap::HeatSource, width: u32, height: u32) -> Image {
    use crate::draw::heatmap::{jet, resize};
    let lut: Vec<[u8; 3]> = (0..=255u8)
        .map(|t| {
            let c = jet(t);
            [c.0, c.1, c.2]
        })
        .collect();
    let pixels = resize(source, width, height)
        .into_iter()
        .flat_map(|heat| heat.map_or([0; 3], |t| lut[t as usize]))
        .collect();
    Image {
        width,
        height,
        channels: 3,
        pixels,
    }
}

/// YOLO label lines (`class cx cy w h`, normalised) for boxes in a `width` x `height` frame.
pub fn yolo_labels(boxes: &[(usize, BBox)], width: u32, height: u32) -> String {
    let (w, h) = (width.max(1) as f64, height.max(1) as f64);
    boxes
        .iter()
        .map(|(class, b)| {
            let (x1, y1, x2, y2) = (b.x1 as f64, b.y1 as f64, b.x2 as f64, b.y2 as f64);
            format!(
                "{class} {:.6} {:.6} {:.6} {:.6}\n",
                (x1 + x2) / 2.0 / w,
                (y1 + y2) / 2.0 / h,
                (x2 - x1) / w,
                (y2 - y1) / h
            )
        })
        .collect()
}

/// A YOLO-seg label line (`class x1 y1 x2 y2 ...`, normalised) for a polygon of frame pixel
/// indices (a pixel's centre being its index, as OpenCV's contours and the YOLO loaders that
/// fill polygons with `cv2.fillPoly` take them) in a `width` x `height` frame. A polygon of
/// fewer than 3 points (a single pixel, a line one pixel wide) repeats its last point, so
/// that loaders, which need 3, read it; an empty one gives no line.
pub fn yolo_polygon(class: usize, points: &[(u32, u32)], width: u32, height: u32) -> String {
    let Some(&last) = points.last() else {
        return String::new();
    };
    let (w, h) = (width.max(1) as f64, height.max(1) as f64);
    let mut line = class.to_string();
    let padding = 3usize.saturating_sub(points.len());
    for &(x, y) in points.iter().chain(std::iter::repeat_n(&last, padding)) {
        let (x, y) = ((x as f64 / w).min(1.0), (y as f64 / h).min(1.0));
        line.push_str(&format!(" {x:.6} {y:.6}"));
    }
    line.push('\n');
    line
}

/// Parses YOLO label lines back into boxes in pixels (for checking a capture).
pub fn parse_yolo_labels(text: &str, width: u32, height: u32) -> Option<Vec<(usize, BBox)>> {
    let (w, h) = (width as f32, height as f32);
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let v: Vec<f32> = line
                .split_whitespace()
                .map(|f| f.parse().ok())
                .collect::<Option<_>>()?;
            let [class, cx, cy, bw, bh] = v[..] else {
                return None;
            };
            Some((
                class as usize,
                BBox::from_center(cx * w, cy * h, bw * w, bh * h),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polygon_lines_are_normalised_and_padded_to_three_points() {
        assert_eq!(
            yolo_polygon(2, &[(0, 0), (0, 4), (9, 4)], 10, 5),
            "2 0.000000 0.000000 0.000000 0.800000 0.900000 0.800000\n"
        );
        assert_eq!(
            yolo_polygon(0, &[(5, 2)], 10, 5),
            "0 0.500000 0.400000 0.500000 0.400000 0.500000 0.400000\n"
        );
        assert_eq!(yolo_polygon(0, &[], 10, 5), "");
    }

    #[test]
    fn labels_round_trip() {
        let boxes = vec![
            (
                3,
                BBox {
                    x1: 10.0,
                    y1: 20.0,
                    x2: 50.0,
                    y2: 80.0,
                },
            ),
            (
                0,
                BBox {
                    x1: 0.0,
                    y1: 0.0,
                    x2: 640.0,
                    y2: 480.0,
                },
            ),
        ];
        let text = yolo_labels(&boxes, 640, 480);
        let back = parse_yolo_labels(&text, 640, 480).unwrap();
        for ((c1, a), (c2, b)) in boxes.iter().zip(&back) {
            assert_eq!(c1, c2);
            assert!(
                (a.x1 - b.x1).abs() < 0.01 && (a.y2 - b.y2).abs() < 0.01,
                "{a:?} {b:?}"
            );
        }
        assert_eq!(parse_yolo_labels("1 2 3\n", 10, 10), None);
    }

    /// A frame of `width` x `height` pixels in `planes`, each row `strides` bytes.
    fn planes<'a>(
        width: u32,
        height: u32,
        planes: [&'a [u8]; 3],
        strides: [usize; 3],
    ) -> FrameView<'a> {
        FrameView {
            width,
            height,
            planes,
            strides,
        }
    }

    #[test]
    fn frames_convert_to_rgb_and_grey() {
        let bgr = [1u8, 2, 3, 4, 5, 6];
        let view = planes(2, 1, [&bgr, &[], &[]], [6, 0, 0]);
        assert_eq!(
            frame_to_image(&view, PixelFormat::BGR, YuvMatrix::bt601())
                .unwrap()
                .pixels,
            [3, 2, 1, 6, 5, 4]
        );
        let grey = [9u8, 8, 0, 7, 6, 0];
        let view = planes(2, 2, [&grey, &[], &[]], [3, 0, 0]);
        let image = frame_to_image(&view, PixelFormat::Gray8, YuvMatrix::bt601()).unwrap();
        assert_eq!((image.channels, image.pixels), (1, vec![9, 8, 7, 6]));
        let (luma, uv) = ([235u8; 4], [128u8, 128]);
        let view = planes(2, 2, [&luma, &uv, &[]], [2, 2, 0]);
        assert!(
            frame_to_image(&view, PixelFormat::Nv12, YuvMatrix::bt601())
                .unwrap()
                .pixels
                .iter()
                .all(|&p| p == 255)
        );
    }

    #[test]
    fn heat_maps_are_coloured_as_the_overlay_does() {
        let values = [0u8, 255];
        let source = crate::draw::heatmap::HeatSource {
            width: 2,
            height: 1,
            values: &values,
            rect: [0.0, 0.0, 4.0, 1.0],
        };
        let image = heatmap_image(&source, 6, 1);
        let jet = |t| {
            let c = crate::draw::heatmap::jet(t);
            vec![c.0, c.1, c.2]
        };
        assert_eq!(image.pixels.len(), 18);
        assert_eq!(image.pixels[..3], jet(0)[..], "cold left");
        assert_eq!(image.pixels[9..12], jet(255)[..], "hot right");
        assert_eq!(image.pixels[12..], [0; 6], "black outside the map");
    }

    #[test]
    fn png_and_jpeg_encode() {
        let image = Image {
            width: 4,
            height: 2,
            channels: 3,
            pixels: vec![128; 24],
        };
        assert!(
            encode(&image, ImageFormat::Png)
                .unwrap()
                .starts_with(b"\x89PNG")
        );
        assert!(
            encode(&image, ImageFormat::Jpeg)
                .unwrap()
                .starts_with(&[0xff, 0xd8])
        );
    }
}
