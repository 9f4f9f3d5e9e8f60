//! Drawing boxes, filled rectangles and text straight into a frame's planes, in place, for
//! packed RGB-family formats, GRAY8, NV12 and I420: no format conversion, no GStreamer.
//!
//! Colours are RGB; on YUV frames they are converted once per call (the frame's matrix) and
//! chroma is written for every 2x2 block a shape touches. Text uses the public-domain 8x8
//! bitmap font of the `font8x8` crate, embedded in the plugin, scaled by an integer factor.

pub mod heatmap;
pub mod mask;
pub mod overlay;

use crate::frame::{Layout, Packed, PixelFormat};

/// An RGB colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    pub const BLACK: Rgb = Rgb(0, 0, 0);
    pub const WHITE: Rgb = Rgb(255, 255, 255);

    /// Luma with the given coefficients, full range.
    fn luma(self, kr: f32, kb: f32) -> f32 {
        kr * self.0 as f32 + (1.0 - kr - kb) * self.1 as f32 + kb * self.2 as f32
    }
}

/// `old` blended towards `new` with opacity `alpha` in 0..=256.
#[inline(always)]
fn mix(old: u8, new: u8, alpha: u32) -> u8 {
    ((old as u32 * (256 - alpha) + new as u32 * alpha + 128) >> 8) as u8
}

/// Height and width in pixels of a glyph at scale 1.
pub const GLYPH_SIZE: u32 = 8;

/// How RGB turns into YUV for this frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct YuvEncoding {
    pub kr: f32,
    pub kb: f32,
    pub full_range: bool,
}

impl Default for YuvEncoding {
    fn default() -> Self {
        Self {
            kr: 0.299,
            kb: 0.114,
            full_range: false,
        }
    }
}

impl YuvEncoding {
    fn encode(&self, c: Rgb) -> [u8; 3] {
        let y = c.luma(self.kr, self.kb);
        let u = (c.2 as f32 - y) / (2.0 * (1.0 - self.kb));
        let v = (c.0 as f32 - y) / (2.0 * (1.0 - self.kr));
        let (y, u, v) = if self.full_range {
            (y, u + 128.0, v + 128.0)
        } else {
            (
                16.0 + y * 219.0 / 255.0,
                128.0 + u * 224.0 / 255.0,
                128.0 + v * 224.0 / 255.0,
            )
        };
        [y, u, v].map(|c| c.round().clamp(0.0, 255.0) as u8)
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "plane {plane} holds {len} bytes, fewer than {needed} for a {width}x{height} frame at stride {stride}"
)]
pub struct CanvasError {
    pub plane: usize,
    pub len: usize,
    pub needed: usize,
    pub width: u32,
    pub height: u32,
    pub stride: usize,
}

/// A frame's planes, writable.
pub struct Canvas<'a> {
    width: u32,
    height: u32,
    format: PixelFormat,
    yuv: YuvEncoding,
    planes: [&'a mut [u8]; 3],
    strides: [usize; 3],
}

impl<'a> Canvas<'a> {
    /// Checks that every plane holds the frame, so that drawing never reads out of bounds.
    pub fn new(
        width: u32,
        height: u32,
        format: PixelFormat,
        yuv: YuvEncoding,
        planes: [&'a mut [u8]; 3],
        strides: [usize; 3],
    ) -> Result<Self, CanvasError> {
        let lengths = [planes[0].len(), planes[1].len(), planes[2].len()];
        format
            .check_planes(width, height, lengths, strides)
            .map_err(|e| CanvasError {
                plane: e.plane,
                len: e.len,
                needed: e.needed,
                width,
                height,
                stride: e.stride,
            })?;
        Ok(Self {
            width,
            height,
            format,
            yuv,
            planes,
            strides,
        })
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// Fills `[x0, x1) x [y0, y1)`, clipped to the frame.
    pub fn fill_rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, colour: Rgb) {
        let clip = |v: i64, max: u32| v.clamp(0, max as i64) as usize;
        let (x0, x1) = (clip(x0, self.width), clip(x1, self.width));
        let (y0, y1) = (clip(y0, self.height), clip(y1, self.height));
        if x0 >= x1 || y0 >= y1 {
            return;
        }
        match self.format.layout() {
            Layout::Packed(Packed {
                bytes_per_pixel: bpp,
                offsets: [red, green, blue],
            }) => {
                let stride = self.strides[0];
                for y in y0..y1 {
                    let row = &mut self.planes[0][y * stride..];
                    for px in row[x0 * bpp..x1 * bpp].chunks_exact_mut(bpp) {
                        px[red] = colour.0;
                        px[green] = colour.1;
                        px[blue] = colour.2;
                    }
                }
            }
            Layout::Grey => {
                let luma = colour.luma(0.299, 0.114).round() as u8;
                self.fill_plane(0, (x0, x1), (y0, y1), (1, 0), luma);
            }
            Layout::Yuv(chroma) => {
                let [y, u, v] = self.yuv.encode(colour);
                self.fill_plane(0, (x0, x1), (y0, y1), (1, 0), y);
                let (cx, cy) = ((x0 / 2, x1.div_ceil(2)), (y0 / 2, y1.div_ceil(2)));
                self.fill_plane(chroma.u_plane, cx, cy, (chroma.step, 0), u);
                self.fill_plane(chroma.v_plane, cx, cy, (chroma.step, chroma.v_offset), v);
            }
        }
    }

    /// Writes `value` at byte `offset` of every `step`-byte sample of columns `[x0, x1)` and
    /// rows `[y0, y1)` of `plane`.
    fn fill_plane(
        &mut self,
        plane: usize,
        (x0, x1): (usize, usize),
        (y0, y1): (usize, usize),
        (step, offset): (usize, usize),
        value: u8,
    ) {
        let stride = self.strides[plane];
        for y in y0..y1 {
            let row = &mut self.planes[plane][y * stride..];
            for px in row[x0 * step..x1 * step].chunks_exact_mut(step) {
                px[offset] = value;
            }
        }
    }

    /// The outline of `[x0, x1) x [y0, y1)`, `thickness` pixels wide, drawn inside the box.
    pub fn outline(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, thickness: i64, colour: Rgb) {
        let t = thickness.max(1);
        self.fill_rect(x0, y0, x1, y0 + t, colour);
        self.fill_rect(x0, y1 - t, x1, y1, colour);
        self.fill_rect(x0, y0, x0 + t, y1, colour);
        self.fill_rect(x1 - t, y0, x1, y1, colour);
    }

    /// A straight line from (x0, y0) to (x1, y1), `thickness` pixels wide (Bresenham, with a
    /// square pen).
    pub fn line(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, thickness: i64, colour: Rgb) {
        let t = thickness.max(1);
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut error) = (x0, y0, dx + dy);
        loop {
            self.fill_rect(x - t / 2, y - t / 2, x - t / 2 + t, y - t / 2 + t, colour);
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * error;
            if e2 >= dy {
                error += dy;
                x += sx;
            }
            if e2 <= dx {
                error += dx;
                y += sy;
            }
        }
    }

    /// Draws `text` with its top-left corner at (x, y); each glyph is 8·scale pixels square.
    /// Characters outside ASCII are drawn as '?'. Returns the width drawn.
    pub fn text(&mut self, x: i64, y: i64, text: &str, scale: u32, colour: Rgb) -> i64 {
        let s = scale.max(1) as i64;
        let mut pen = x;
        for c in text.chars() {
            let glyph = font8x8::legacy::BASIC_LEGACY[if c.is_ascii() {
                c as usize
            } else {
                '?' as usize
            }];
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits & (1 << col) != 0 {
                        let (gx, gy) = (pen + col * s, y + row as i64 * s);
                        self.fill_rect(gx, gy, gx + s, gy + s, colour);
                    }
                }
            }
            pen += GLYPH_SIZE as i64 * s;
        }
        pen - x
    }
}

/// Width of `text` at `scale`.
pub fn text_width(text: &str, scale: u32) -> i64 {
    text.chars().count() as i64 * (GLYPH_SIZE * scale.max(1)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packed_rgb(w: usize, h: usize) -> Vec<u8> {
        vec![0; w * h * 3]
    }

    /// A canvas in the default YUV encoding over `planes`.
    fn canvas<'a>(
        width: u32,
        height: u32,
        format: PixelFormat,
        planes: [&'a mut [u8]; 3],
        strides: [usize; 3],
    ) -> Canvas<'a> {
        Canvas::new(
            width,
            height,
            format,
            YuvEncoding::default(),
            planes,
            strides,
        )
        .unwrap()
    }

    /// A canvas over one plane (packed RGB and grey formats) of rows `stride` bytes.
    fn one_plane(
        width: u32,
        height: u32,
        format: PixelFormat,
        data: &mut [u8],
        stride: usize,
    ) -> Canvas<'_> {
        canvas(
            width,
            height,
            format,
            [data, &mut [], &mut []],
            [stride, 0, 0],
        )
    }

    #[test]
    fn fill_clips_to_the_frame() {
        let mut data = packed_rgb(4, 4);
        let mut c = one_plane(4, 4, PixelFormat::RGB, &mut data, 12);
        c.fill_rect(-10, 2, 100, 100, Rgb(1, 2, 3));
        assert_eq!(&data[0..3], &[0, 0, 0]);
        assert_eq!(&data[2 * 12..2 * 12 + 3], &[1, 2, 3]);
        assert_eq!(&data[3 * 12 + 9..3 * 12 + 12], &[1, 2, 3]);
    }

    #[test]
    fn bgrx_keeps_the_padding_byte() {
        let mut data = vec![7u8; 8];
        let mut c = one_plane(2, 1, PixelFormat::BGRA, &mut data, 8);
        c.fill_rect(0, 0, 2, 1, Rgb(10, 20, 30));
        assert_eq!(data, [30, 20, 10, 7, 30, 20, 10, 7]);
    }

    #[test]
    fn nv12_writes_luma_and_chroma_blocks() {
        // 4x4 NV12, stride 4: a red 2x2 square at (2, 2).
        let (mut y, mut uv) = (vec![16u8; 16], vec![128u8; 8]);
        let mut c = canvas(
            4,
            4,
            PixelFormat::Nv12,
            [&mut y, &mut uv, &mut []],
            [4, 4, 0],
        );
        c.fill_rect(2, 2, 4, 4, Rgb(255, 0, 0));
        assert_eq!(y[2 * 4 + 2], 81);
        assert_eq!(y[0], 16);
        assert_eq!(&uv[4 + 2..4 + 4], &[90, 240]);
        assert_eq!(&uv[0..2], &[128, 128]);
    }

    #[test]
    fn odd_sized_i420_chroma_stays_in_bounds() {
        let (mut y, mut u, mut v) = (vec![0u8; 9], vec![0u8; 4], vec![0u8; 4]);
        let mut c = canvas(3, 3, PixelFormat::I420, [&mut y, &mut u, &mut v], [3, 2, 2]);
        c.fill_rect(0, 0, 3, 3, Rgb::WHITE);
        assert!(y.iter().all(|&p| p == 235));
        assert!(u.iter().chain(&v).all(|&p| p == 128));
    }

    #[test]
    fn gray_gets_the_luma() {
        let mut data = vec![0u8; 4];
        let mut c = one_plane(2, 2, PixelFormat::Gray8, &mut data, 2);
        c.fill_rect(0, 0, 1, 1, Rgb(255, 0, 0));
        assert_eq!(data, [76, 0, 0, 0]);
    }

    #[test]
    fn text_draws_glyph_pixels() {
        let mut data = vec![0u8; 16 * 8];
        let mut c = one_plane(16, 8, PixelFormat::Gray8, &mut data, 16);
        assert_eq!(c.text(0, 0, "I", 1, Rgb::WHITE), 8);
        assert!(
            data.iter().filter(|&&p| p == 255).count() > 8,
            "an 'I' has more than 8 lit pixels"
        );
        assert_eq!(text_width("PASS", 3), 96);
    }

    #[test]
    fn lines_join_their_ends() {
        let mut data = vec![0u8; 10 * 10];
        let mut c = one_plane(10, 10, PixelFormat::Gray8, &mut data, 10);
        c.line(0, 0, 9, 9, 1, Rgb::WHITE);
        assert!((0..10).all(|i| data[i * 10 + i] == 255));
        assert_eq!(data.iter().filter(|&&p| p == 255).count(), 10);
    }

    #[test]
    fn short_planes_are_refused() {
        let mut data = vec![0u8; 10];
        assert!(
            Canvas::new(
                4,
                4,
                PixelFormat::Gray8,
                YuvEncoding::default(),
                [&mut data, &mut [], &mut []],
                [4, 0, 0]
            )
            .is_err()
        );
    }
}
