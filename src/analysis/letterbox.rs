//! The Ultralytics letterbox and the fused preprocessing pass.
//!
//! Geometry (what the Ultralytics predictor does, re-derived here): with
//! `r = min(dst_h / src_h, dst_w / src_w)` the frame is resized to
//! `(round(src_w·r), round(src_h·r))` (Python's round: ties to even), centred with
//! `left = round(dw − 0.1)`, `top = round(dh − 0.1)` where `dw`, `dh` are half the spare
//! width and height, and the border is filled with grey 114. Boxes map back with
//! `x = (x − round((dst_w − src_w·r)/2 − 0.1)) / r`, clipped to the frame.
//!
//! Resampling is bilinear with half-pixel centres and edge clamping, as OpenCV's
//! `INTER_LINEAR`, done in floating point straight from the frame's planes (any stride)
//! into the planar `[C, H, W]` float tensor in RGB order scaled to [0, 1]: one pass, no
//! intermediate image. YUV frames are interpolated in YUV (chroma taken from each luma
//! tap's co-sited sample) and converted once per output pixel.

use super::BBox;

/// Grey level of the letterbox border, as Ultralytics pads.
pub const PAD_VALUE: u8 = 114;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LetterboxError {
    #[error("frame is {got_w}x{got_h} but the letterbox was set up for {want_w}x{want_h}")]
    SizeMismatch {
        got_w: u32,
        got_h: u32,
        want_w: u32,
        want_h: u32,
    },
    #[error(
        "plane {plane} holds {len} bytes, fewer than its {needed} bytes of {width}x{height} pixels at stride {stride}"
    )]
    PlaneTooSmall {
        plane: usize,
        len: usize,
        needed: usize,
        width: u32,
        height: u32,
        stride: usize,
    },
    #[error("tensor holds {got} values, the model input needs {want}")]
    TensorSize { got: usize, want: usize },
}

/// Where the frame lands inside the model input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LetterboxGeometry {
    pub src_width: u32,
    pub src_height: u32,
    pub dst_width: u32,
    pub dst_height: u32,
    pub resized_width: u32,
    pub resized_height: u32,
    pub left: u32,
    pub top: u32,
    /// Scale from frame to model pixels.
    pub gain: f64,
    /// Offsets used to map boxes back (Ultralytics' `scale_boxes` recomputes them this way).
    pub unpad_x: f64,
    pub unpad_y: f64,
}

impl LetterboxGeometry {
    /// Geometry for a `src` frame into a `dst` model input; sizes must be at least 1.
    pub fn new(src_width: u32, src_height: u32, dst_width: u32, dst_height: u32) -> Self {
        let (sw, sh, dw, dh) = (
            src_width.max(1) as f64,
            src_height.max(1) as f64,
            dst_width as f64,
            dst_height as f64,
        );
        let gain = (dh / sh).min(dw / sw);
        let resized_width = ((sw * gain).round_ties_even() as u32).clamp(1, dst_width);
        let resized_height = ((sh * gain).round_ties_even() as u32).clamp(1, dst_height);
        let half_spare_w = (dst_width - resized_width) as f64 / 2.0;
        let half_spare_h = (dst_height - resized_height) as f64 / 2.0;
        Self {
            src_width,
            src_height,
            dst_width,
            dst_height,
            resized_width,
            resized_height,
            left: (half_spare_w - 0.1).round_ties_even().max(0.0) as u32,
            top: (half_spare_h - 0.1).round_ties_even().max(0.0) as u32,
            gain,
            unpad_x: ((dw - sw * gain) / 2.0 - 0.1).round_ties_even(),
            unpad_y: ((dh - sh * gain) / 2.0 - 0.1).round_ties_even(),
        }
    }

    /// Geometry that stretches the frame over the whole model input (no border, aspect ratio
    /// not kept), as anomaly models are fed (`cv2.resize` to the input size). `gain` is the
    /// horizontal scale; boxes are not mapped back through it.
    pub fn stretch(src_width: u32, src_height: u32, dst_width: u32, dst_height: u32) -> Self {
        Self {
            src_width,
            src_height,
            dst_width,
            dst_height,
            resized_width: dst_width,
            resized_height: dst_height,
            left: 0,
            top: 0,
            gain: dst_width as f64 / src_width.max(1) as f64,
            unpad_x: 0.0,
            unpad_y: 0.0,
        }
    }

    /// Maps a box from model-input pixels to frame pixels, clipped to the frame.
    pub fn to_source(&self, b: &BBox) -> BBox {
        let (px, py, g) = (self.unpad_x as f32, self.unpad_y as f32, self.gain as f32);
        BBox {
            x1: (b.x1 - px) / g,
            y1: (b.y1 - py) / g,
            x2: (b.x2 - px) / g,
            y2: (b.y2 - py) / g,
        }
        .clipped(self.src_width as f32, self.src_height as f32)
    }
}

/// How a frame's bytes hold its pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    /// One plane of `bytes_per_pixel`-byte pixels with the given byte offsets of R, G and B.
    Packed {
        bytes_per_pixel: u8,
        red: u8,
        green: u8,
        blue: u8,
    },
    Gray8,
    /// Y plane, then one plane of interleaved U, V at half resolution.
    Nv12,
    /// Y, U and V planes, chroma at half resolution.
    I420,
}

impl PixelFormat {
    pub const RGB: Self = Self::Packed {
        bytes_per_pixel: 3,
        red: 0,
        green: 1,
        blue: 2,
    };
    pub const BGR: Self = Self::Packed {
        bytes_per_pixel: 3,
        red: 2,
        green: 1,
        blue: 0,
    };
    pub const RGBA: Self = Self::Packed {
        bytes_per_pixel: 4,
        red: 0,
        green: 1,
        blue: 2,
    };
    pub const BGRA: Self = Self::Packed {
        bytes_per_pixel: 4,
        red: 2,
        green: 1,
        blue: 0,
    };

    /// Bytes each plane needs for a `width` x `height` frame: (bytes per row, rows); (0, 0)
    /// for planes the format does not have. An array, so checking a frame allocates nothing.
    fn plane_extents(self, width: usize, height: usize) -> [(usize, usize); 3] {
        let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
        match self {
            PixelFormat::Packed {
                bytes_per_pixel, ..
            } => [(width * bytes_per_pixel as usize, height), (0, 0), (0, 0)],
            PixelFormat::Gray8 => [(width, height), (0, 0), (0, 0)],
            PixelFormat::Nv12 => [(width, height), (cw * 2, ch), (0, 0)],
            PixelFormat::I420 => [(width, height), (cw, ch), (cw, ch)],
        }
    }
}

/// YUV to RGB conversion constants (a matrix and a range).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct YuvMatrix {
    y_offset: f32,
    y_scale: f32,
    c_scale: f32,
    r_from_v: f32,
    g_from_u: f32,
    g_from_v: f32,
    b_from_u: f32,
}

impl YuvMatrix {
    /// From the luma coefficients Kr, Kb (0.299/0.114 for BT.601, 0.2126/0.0722 for BT.709).
    pub fn new(kr: f32, kb: f32, full_range: bool) -> Self {
        let kg = 1.0 - kr - kb;
        let (y_offset, y_scale, c_scale) = if full_range {
            (0.0, 1.0, 1.0)
        } else {
            (16.0, 255.0 / 219.0, 255.0 / 224.0)
        };
        Self {
            y_offset,
            y_scale,
            c_scale,
            r_from_v: 2.0 * (1.0 - kr),
            g_from_u: -2.0 * kb * (1.0 - kb) / kg,
            g_from_v: -2.0 * kr * (1.0 - kr) / kg,
            b_from_u: 2.0 * (1.0 - kb),
        }
    }

    pub fn bt601() -> Self {
        Self::new(0.299, 0.114, false)
    }

    pub fn bt709() -> Self {
        Self::new(0.2126, 0.0722, false)
    }

    /// RGB in [0, 255] of one YUV sample.
    #[inline(always)]
    pub fn rgb(self, y: f32, u: f32, v: f32) -> [f32; 3] {
        let y = (y - self.y_offset) * self.y_scale;
        let (u, v) = ((u - 128.0) * self.c_scale, (v - 128.0) * self.c_scale);
        [
            (y + self.r_from_v * v).clamp(0.0, 255.0),
            (y + self.g_from_u * u + self.g_from_v * v).clamp(0.0, 255.0),
            (y + self.b_from_u * u).clamp(0.0, 255.0),
        ]
    }
}

impl Default for YuvMatrix {
    fn default() -> Self {
        Self::bt601()
    }
}

/// A frame's planes as the element mapped them: `planes[i]` starts at the plane's first
/// pixel and rows are `strides[i]` bytes apart. Unused planes are empty.
#[derive(Debug, Clone, Copy)]
pub struct FrameView<'a> {
    pub width: u32,
    pub height: u32,
    pub planes: [&'a [u8]; 3],
    pub strides: [usize; 3],
}

/// One bilinear tap pair along an axis: source indices and the weight of the second.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Tap {
    i0: usize,
    i1: usize,
    w1: f32,
}

/// OpenCV `INTER_LINEAR` source positions for `dst` samples over `src` samples.
fn linear_taps(src: u32, dst: u32) -> Vec<Tap> {
    let scale = src as f64 / dst as f64;
    let last = src.saturating_sub(1) as usize;
    (0..dst)
        .map(|d| {
            let f = (d as f64 + 0.5) * scale - 0.5;
            let mut i0 = f.floor();
            let mut w1 = f - i0;
            if i0 < 0.0 {
                i0 = 0.0;
                w1 = 0.0;
            }
            let mut i0 = i0 as usize;
            if i0 >= last {
                i0 = last;
                w1 = 0.0;
            }
            Tap {
                i0,
                i1: (i0 + 1).min(last),
                w1: w1 as f32,
            }
        })
        .collect()
}

/// Preprocessing for one (frame size, pixel format, model input) combination: tap tables and
/// row buffers are made once, each frame costs one pass. The pass is separable: for each
/// output row, the two source rows are blended vertically into a float row buffer (a
/// contiguous loop the compiler vectorises), then output pixels are read from it horizontally.
#[derive(Debug, Clone)]
pub struct Letterbox {
    geometry: LetterboxGeometry,
    format: PixelFormat,
    yuv: YuvMatrix,
    channels: usize,
    y_taps: Vec<Tap>,
    /// Per output column, positions in a row buffer of plane 0 (bytes for packed formats).
    x_main: Vec<XTap>,
    /// Per output column, positions in a chroma row buffer (of U for NV12; V follows).
    x_chroma: Vec<XTap>,
    /// Vertical blends of the current output row's two source rows, per plane.
    rows: [Vec<f32>; 3],
    /// For YUV frames, the current output row's Y, U and V samples, so that the conversion
    /// to RGB runs as one contiguous loop the compiler vectorises.
    yuv_row: [Vec<f32>; 3],
}

/// One output column's two source positions in a row buffer and the weight of the second.
#[derive(Debug, Clone, Copy, PartialEq)]
struct XTap {
    a: usize,
    b: usize,
    w: f32,
}

/// Weights of the BT.601 luma, used when a colour frame feeds a 1-channel model.
const LUMA: [f32; 3] = [0.299, 0.587, 0.114];
const INV_255: f32 = 1.0 / 255.0;

impl Letterbox {
    /// `channels` is the model's input channel count: 3 (RGB) or 1 (grey).
    pub fn new(
        geometry: LetterboxGeometry,
        format: PixelFormat,
        yuv: YuvMatrix,
        channels: usize,
    ) -> Self {
        let x_taps = linear_taps(geometry.src_width, geometry.resized_width);
        let scaled = |step: usize, map: fn(usize) -> usize| -> Vec<XTap> {
            x_taps
                .iter()
                .map(|t| XTap {
                    a: map(t.i0) * step,
                    b: map(t.i1) * step,
                    w: t.w1,
                })
                .collect()
        };
        let (x_main, x_chroma) = match format {
            PixelFormat::Packed {
                bytes_per_pixel, ..
            } => (scaled(bytes_per_pixel as usize, |i| i), Vec::new()),
            PixelFormat::Gray8 => (scaled(1, |i| i), Vec::new()),
            PixelFormat::Nv12 => (scaled(1, |i| i), scaled(2, |i| i / 2)),
            PixelFormat::I420 => (scaled(1, |i| i), scaled(1, |i| i / 2)),
        };
        let w = geometry.src_width as usize;
        let cw = w.div_ceil(2);
        let row_lengths = match format {
            PixelFormat::Packed {
                bytes_per_pixel, ..
            } => [w * bytes_per_pixel as usize, 0, 0],
            PixelFormat::Gray8 => [w, 0, 0],
            PixelFormat::Nv12 => [w, cw * 2, 0],
            PixelFormat::I420 => [w, cw, cw],
        };
        let yuv_len = if x_chroma.is_empty() {
            0
        } else {
            geometry.resized_width as usize
        };
        Self {
            y_taps: linear_taps(geometry.src_height, geometry.resized_height),
            yuv_row: [yuv_len; 3].map(|n| vec![0.0; n]),
            x_main,
            x_chroma,
            rows: row_lengths.map(|n| vec![0.0; n]),
            geometry,
            format,
            yuv,
            channels,
        }
    }

    pub fn geometry(&self) -> &LetterboxGeometry {
        &self.geometry
    }

    /// Number of floats of the `[C, H, W]` input tensor.
    pub fn tensor_len(&self) -> usize {
        self.channels * self.geometry.dst_width as usize * self.geometry.dst_height as usize
    }

    /// Fills the whole tensor with the border grey. The frame pass writes only the inside,
    /// so this is needed once per tensor and geometry, not per frame.
    pub fn fill_padding(&self, tensor: &mut [f32]) {
        tensor.fill(PAD_VALUE as f32 / 255.0);
    }

    /// Writes the frame's letterboxed, normalised pixels into the tensor's inner rectangle.
    pub fn run(&mut self, frame: &FrameView, tensor: &mut [f32]) -> Result<(), LetterboxError> {
        self.check(frame, tensor)?;
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            unsafe { self.fill_avx2(frame, tensor) };
            return Ok(());
        }
        self.fill(frame, tensor);
        Ok(())
    }

    /// The same pass compiled for AVX2: the byte-to-float row blends run eight lanes wide.
    /// Rust builds for baseline x86-64 (SSE2), so without this the hot loops would not use
    /// the wider registers every x86-64 CPU of the last decade has.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn fill_avx2(&mut self, frame: &FrameView, tensor: &mut [f32]) {
        self.fill(frame, tensor);
    }

    /// The pass itself, on a frame and tensor `check` accepted. Everything it calls is
    /// `inline(always)` so that `fill_avx2` compiles all of it for AVX2.
    #[inline(always)]
    fn fill(&mut self, frame: &FrameView, tensor: &mut [f32]) {
        let g = self.geometry;
        let plane_len = g.dst_width as usize * g.dst_height as usize;
        let width = g.resized_width as usize;
        for dy in 0..self.y_taps.len() {
            let ty = self.y_taps[dy];
            self.blend_rows(frame, &ty);
            if !self.x_chroma.is_empty() {
                self.sample_yuv();
            }
            let start = (g.top as usize + dy) * g.dst_width as usize + g.left as usize;
            if self.channels == 1 {
                self.write_grey(&mut tensor[start..start + width]);
            } else {
                let (r, rest) = tensor.split_at_mut(plane_len);
                let (gr, b) = rest.split_at_mut(plane_len);
                let range = start..start + width;
                self.write_rgb(&mut r[range.clone()], &mut gr[range.clone()], &mut b[range]);
            }
        }
    }

    /// Blends the source rows `ty.i0` and `ty.i1` of each plane into the row buffers.
    #[inline(always)]
    fn blend_rows(&mut self, frame: &FrameView, ty: &Tap) {
        let chroma_rows = matches!(self.format, PixelFormat::Nv12 | PixelFormat::I420);
        for plane in 0..3 {
            let len = self.rows[plane].len();
            if len == 0 {
                continue;
            }
            let (r0, r1) = if plane > 0 && chroma_rows {
                (ty.i0 / 2, ty.i1 / 2)
            } else {
                (ty.i0, ty.i1)
            };
            let stride = frame.strides[plane];
            let top = &frame.planes[plane][r0 * stride..r0 * stride + len];
            let bottom = &frame.planes[plane][r1 * stride..r1 * stride + len];
            if ty.w1 == 0.0 {
                // Integer scale factors (1080 rows into 360) put every tap on a source row:
                // the second row would be read for nothing.
                widen(&mut self.rows[plane], top);
            } else {
                blend(&mut self.rows[plane], top, bottom, ty.w1);
            }
        }
    }

    #[inline(always)]
    fn write_rgb(&self, r: &mut [f32], g: &mut [f32], b: &mut [f32]) {
        let out = r
            .iter_mut()
            .zip(g.iter_mut())
            .zip(b.iter_mut())
            .zip(&self.x_main);
        match self.format {
            PixelFormat::Packed {
                red, green, blue, ..
            } => {
                let (ro, go, bo) = (red as usize, green as usize, blue as usize);
                let row = &self.rows[0];
                for (((r, g), b), t) in out {
                    *r = lerp(row[t.a + ro], row[t.b + ro], t.w) * INV_255;
                    *g = lerp(row[t.a + go], row[t.b + go], t.w) * INV_255;
                    *b = lerp(row[t.a + bo], row[t.b + bo], t.w) * INV_255;
                }
            }
            PixelFormat::Gray8 => {
                let row = &self.rows[0];
                for (((r, g), b), t) in out {
                    let v = lerp(row[t.a], row[t.b], t.w) * INV_255;
                    (*r, *g, *b) = (v, v, v);
                }
            }
            PixelFormat::Nv12 | PixelFormat::I420 => {
                let [ys, us, vs] = &self.yuv_row;
                let out = r.iter_mut().zip(g.iter_mut()).zip(b.iter_mut());
                for ((((r, g), b), &y), (&u, &v)) in out.zip(ys).zip(us.iter().zip(vs)) {
                    let [vr, vg, vb] = self.yuv.rgb(y, u, v);
                    (*r, *g, *b) = (vr * INV_255, vg * INV_255, vb * INV_255);
                }
            }
        }
    }

    #[inline(always)]
    fn write_grey(&self, out: &mut [f32]) {
        match self.format {
            PixelFormat::Gray8 => {
                let row = &self.rows[0];
                for (o, t) in out.iter_mut().zip(&self.x_main) {
                    *o = lerp(row[t.a], row[t.b], t.w) * INV_255;
                }
            }
            PixelFormat::Packed {
                red, green, blue, ..
            } => {
                let row = &self.rows[0];
                for (o, t) in out.iter_mut().zip(&self.x_main) {
                    let at = |offset: u8| {
                        lerp(row[t.a + offset as usize], row[t.b + offset as usize], t.w)
                    };
                    *o = (LUMA[0] * at(red) + LUMA[1] * at(green) + LUMA[2] * at(blue)) * INV_255;
                }
            }
            PixelFormat::Nv12 | PixelFormat::I420 => {
                let [ys, us, vs] = &self.yuv_row;
                for ((o, &y), (&u, &v)) in out.iter_mut().zip(ys).zip(us.iter().zip(vs)) {
                    let [r, g, b] = self.yuv.rgb(y, u, v);
                    *o = (LUMA[0] * r + LUMA[1] * g + LUMA[2] * b) * INV_255;
                }
            }
        }
    }

    /// Samples Y, U and V of each output column of a YUV frame from the row buffers.
    #[inline(always)]
    fn sample_yuv(&mut self) {
        let [y_row, c_row, v_row] = &self.rows;
        let [ys, us, vs] = &mut self.yuv_row;
        let taps = self.x_main.iter().zip(&self.x_chroma);
        let out = ys.iter_mut().zip(us.iter_mut()).zip(vs.iter_mut());
        if self.format == PixelFormat::Nv12 {
            for (((y, u), v), (t, c)) in out.zip(taps) {
                *y = lerp(y_row[t.a], y_row[t.b], t.w);
                *u = lerp(c_row[c.a], c_row[c.b], t.w);
                *v = lerp(c_row[c.a + 1], c_row[c.b + 1], t.w);
            }
        } else {
            for (((y, u), v), (t, c)) in out.zip(taps) {
                *y = lerp(y_row[t.a], y_row[t.b], t.w);
                *u = lerp(c_row[c.a], c_row[c.b], t.w);
                *v = lerp(v_row[c.a], v_row[c.b], t.w);
            }
        }
    }

    fn check(&self, frame: &FrameView, tensor: &[f32]) -> Result<(), LetterboxError> {
        let g = &self.geometry;
        if (frame.width, frame.height) != (g.src_width, g.src_height) {
            return Err(LetterboxError::SizeMismatch {
                got_w: frame.width,
                got_h: frame.height,
                want_w: g.src_width,
                want_h: g.src_height,
            });
        }
        if tensor.len() != self.tensor_len() {
            return Err(LetterboxError::TensorSize {
                got: tensor.len(),
                want: self.tensor_len(),
            });
        }
        let extents = self
            .format
            .plane_extents(frame.width as usize, frame.height as usize);
        for (plane, &(row_bytes, rows)) in extents.iter().enumerate() {
            let (len, stride) = (frame.planes[plane].len(), frame.strides[plane]);
            let needed = if rows == 0 {
                0
            } else {
                (rows - 1) * stride + row_bytes
            };
            if len < needed || (rows > 1 && stride < row_bytes) {
                return Err(LetterboxError::PlaneTooSmall {
                    plane,
                    len,
                    needed,
                    width: frame.width,
                    height: frame.height,
                    stride,
                });
            }
        }
        Ok(())
    }
}

/// `out = row` as floats.
#[inline(always)]
fn widen(out: &mut [f32], row: &[u8]) {
    for (o, &v) in out.iter_mut().zip(row) {
        *o = v as f32;
    }
}

/// `out = top + (bottom - top) * w`, element-wise: contiguous, so it vectorises.
#[inline(always)]
fn blend(out: &mut [f32], top: &[u8], bottom: &[u8], w: f32) {
    for ((o, &t), &b) in out.iter_mut().zip(top).zip(bottom) {
        let t = t as f32;
        *o = t + (b as f32 - t) * w;
    }
}

#[inline(always)]
fn lerp(a: f32, b: f32, w: f32) -> f32 {
    a + (b - a) * w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_of_1080p_into_640() {
        let g = LetterboxGeometry::new(1920, 1080, 640, 640);
        assert_eq!((g.resized_width, g.resized_height), (640, 360));
        assert_eq!((g.left, g.top), (0, 140));
        assert_eq!((g.unpad_x, g.unpad_y), (0.0, 140.0));
    }

    #[test]
    fn odd_spare_rounds_like_python() {
        // 641x480 into 256: resized 256x192 (191.7 rounds up), 32 spare each side.
        let g = LetterboxGeometry::new(641, 480, 256, 256);
        assert_eq!((g.resized_width, g.resized_height), (256, 192));
        assert_eq!(g.top, 32);
        // 1x1 fills everything; a 1-pixel-wide extreme frame keeps one column.
        let g = LetterboxGeometry::new(1, 1, 256, 256);
        assert_eq!(
            (g.resized_width, g.resized_height, g.left, g.top),
            (256, 256, 0, 0)
        );
        let g = LetterboxGeometry::new(1, 10_000, 256, 256);
        assert_eq!((g.resized_width, g.resized_height), (1, 256));
        // Spare of 3: left = round(1.4) = 1, the rest on the right (Ultralytics' -0.1/+0.1).
        let g = LetterboxGeometry::new(253, 256, 256, 256);
        assert_eq!(g.left, 1);
    }

    #[test]
    fn boxes_map_back_to_the_frame() {
        let g = LetterboxGeometry::new(1920, 1080, 640, 640);
        let b = g.to_source(&BBox {
            x1: 64.0,
            y1: 140.0,
            x2: 128.0,
            y2: 200.0,
        });
        assert_eq!(
            b,
            BBox {
                x1: 192.0,
                y1: 0.0,
                x2: 384.0,
                y2: 180.0
            }
        );
        let clipped = g.to_source(&BBox {
            x1: -10.0,
            y1: 100.0,
            x2: 700.0,
            y2: 600.0,
        });
        assert_eq!(
            clipped,
            BBox {
                x1: 0.0,
                y1: 0.0,
                x2: 1920.0,
                y2: 1080.0
            }
        );
    }

    #[test]
    fn taps_match_opencv_inter_linear() {
        // Downscale by 2: each output sits between two inputs.
        let taps = linear_taps(4, 2);
        assert_eq!(
            taps,
            vec![
                Tap {
                    i0: 0,
                    i1: 1,
                    w1: 0.5
                },
                Tap {
                    i0: 2,
                    i1: 3,
                    w1: 0.5
                }
            ]
        );
        // Upscale by 2: edges clamp, inner samples at quarter positions.
        let taps = linear_taps(2, 4);
        assert_eq!(
            taps[0],
            Tap {
                i0: 0,
                i1: 1,
                w1: 0.0
            }
        );
        assert_eq!(
            taps[1],
            Tap {
                i0: 0,
                i1: 1,
                w1: 0.25
            }
        );
        assert_eq!(
            taps[2],
            Tap {
                i0: 0,
                i1: 1,
                w1: 0.75
            }
        );
        assert_eq!(
            taps[3],
            Tap {
                i0: 1,
                i1: 1,
                w1: 0.0
            }
        );
    }

    fn run_on(
        format: PixelFormat,
        w: u32,
        h: u32,
        planes: [&[u8]; 3],
        strides: [usize; 3],
        channels: usize,
    ) -> Vec<f32> {
        let mut lb = Letterbox::new(
            LetterboxGeometry::new(w, h, 8, 8),
            format,
            YuvMatrix::bt601(),
            channels,
        );
        let mut tensor = vec![0.0; lb.tensor_len()];
        lb.fill_padding(&mut tensor);
        lb.run(
            &FrameView {
                width: w,
                height: h,
                planes,
                strides,
            },
            &mut tensor,
        )
        .unwrap();
        tensor
    }

    #[test]
    fn packed_formats_come_out_in_rgb_order_with_grey_border() {
        // 8x4 frame of pure red into 8x8: rows 0-1 and 6-7 are border.
        let rgb: Vec<u8> = [255u8, 0, 0].repeat(32);
        let bgrx: Vec<u8> = [0u8, 0, 255, 0].repeat(32);
        for (format, data, stride) in [(PixelFormat::RGB, &rgb, 24), (PixelFormat::BGRA, &bgrx, 32)]
        {
            let t = run_on(format, 8, 4, [data, &[], &[]], [stride, 0, 0], 3);
            let pad = 114.0 / 255.0;
            assert_eq!(t[0], pad);
            assert_eq!(t[2 * 8], 1.0, "red plane inside");
            assert_eq!(t[64 + 2 * 8], 0.0, "green plane inside");
            assert_eq!(t[128 + 6 * 8], pad, "blue plane border");
        }
    }

    #[test]
    fn stride_padding_is_ignored() {
        // 2x2 gray frame with stride 5: bytes past the row must not leak in.
        let data = [10, 10, 99, 99, 99, 10, 10, 99, 99, 99];
        let t = run_on(PixelFormat::Gray8, 2, 2, [&data, &[], &[]], [5, 0, 0], 1);
        assert!(t.iter().all(|&v| (v - 10.0 / 255.0).abs() < 1e-6), "{t:?}");
    }

    #[test]
    fn gray_feeds_three_channel_models_replicated() {
        let data = [200u8; 4];
        let t = run_on(PixelFormat::Gray8, 2, 2, [&data, &[], &[]], [2, 0, 0], 3);
        assert!(t.iter().all(|&v| (v - 200.0 / 255.0).abs() < 1e-6));
    }

    #[test]
    fn yuv_limited_range_white_and_black() {
        // I420 and NV12 2x2 frames: Y=235 U=V=128 is white, Y=16 is black.
        for (y, expect) in [(235u8, 1.0f32), (16, 0.0)] {
            let luma = [y; 4];
            let t = run_on(
                PixelFormat::I420,
                2,
                2,
                [&luma, &[128], &[128]],
                [2, 1, 1],
                3,
            );
            assert!(
                t.iter().all(|&v| (v - expect).abs() < 1e-4),
                "I420 {y}: {t:?}"
            );
            let t = run_on(
                PixelFormat::Nv12,
                2,
                2,
                [&luma, &[128, 128], &[]],
                [2, 2, 0],
                3,
            );
            assert!(t.iter().all(|&v| (v - expect).abs() < 1e-4), "NV12 {y}");
        }
    }

    #[test]
    fn yuv_red_converts_to_red() {
        // BT.601 limited-range red: Y=81, U=90, V=240.
        let t = run_on(
            PixelFormat::Nv12,
            2,
            2,
            [&[81; 4], &[90, 240], &[]],
            [2, 2, 0],
            3,
        );
        assert!(
            (t[0] - 1.0).abs() < 0.02 && t[64].abs() < 0.02 && t[128].abs() < 0.02,
            "{} {} {}",
            t[0],
            t[64],
            t[128]
        );
    }

    #[test]
    fn odd_sized_yuv_frames_are_read_in_bounds() {
        // 3x3 I420: chroma planes are 2x2.
        let t = run_on(
            PixelFormat::I420,
            3,
            3,
            [&[235; 9], &[128; 4], &[128; 4]],
            [3, 2, 2],
            3,
        );
        assert!(t.iter().all(|&v| (v - 1.0).abs() < 1e-4));
    }

    /// A textured frame of `format`: its bytes, tightly packed, and its strides.
    fn textured_frame(format: PixelFormat, w: usize, h: usize) -> (Vec<u8>, [usize; 3]) {
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let (len, strides) = match format {
            PixelFormat::Packed {
                bytes_per_pixel, ..
            } => {
                let row = w * bytes_per_pixel as usize;
                (row * h, [row, 0, 0])
            }
            PixelFormat::Gray8 => (w * h, [w, 0, 0]),
            PixelFormat::Nv12 => (w * h + cw * 2 * ch, [w, cw * 2, 0]),
            PixelFormat::I420 => (w * h + 2 * cw * ch, [w, cw, cw]),
        };
        let bytes = (0..len).map(|i| ((i * 2654435761) >> 13) as u8).collect();
        (bytes, strides)
    }

    /// The planes of a tightly packed frame made by `textured_frame`.
    fn planes_of(format: PixelFormat, data: &[u8], w: usize, h: usize) -> [&[u8]; 3] {
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        match format {
            PixelFormat::Nv12 => {
                let (y, uv) = data.split_at(w * h);
                [y, uv, &[]]
            }
            PixelFormat::I420 => {
                let (y, uv) = data.split_at(w * h);
                let (u, v) = uv.split_at(cw * ch);
                [y, u, v]
            }
            _ => [data, &[], &[]],
        }
    }

    #[test]
    fn dispatched_and_portable_passes_agree_bit_for_bit() {
        // `run` takes the AVX2 build where the CPU has it; `fill` is the portable build. Both
        // sizes go into 16x16: 48x24 at an integer factor (`widen`), 37x29 at a fractional
        // one (`blend`).
        let formats = [
            PixelFormat::RGB,
            PixelFormat::BGRA,
            PixelFormat::Gray8,
            PixelFormat::Nv12,
            PixelFormat::I420,
        ];
        for ((w, h), format, channels) in [(48u32, 24u32), (37, 29)]
            .into_iter()
            .flat_map(|size| formats.map(|format| (size, format)))
            .flat_map(|(size, format)| [3, 1].map(|channels| (size, format, channels)))
        {
            let (data, strides) = textured_frame(format, w as usize, h as usize);
            let frame = FrameView {
                width: w,
                height: h,
                planes: planes_of(format, &data, w as usize, h as usize),
                strides,
            };
            let mut lb = Letterbox::new(
                LetterboxGeometry::new(w, h, 16, 16),
                format,
                YuvMatrix::bt709(),
                channels,
            );
            let mut dispatched = vec![0.0; lb.tensor_len()];
            lb.run(&frame, &mut dispatched).unwrap();
            let mut portable = vec![0.0; lb.tensor_len()];
            lb.fill(&frame, &mut portable);
            assert_eq!(
                dispatched, portable,
                "{format:?} {w}x{h} into {channels} channels"
            );
        }
    }

    #[test]
    fn integer_factors_read_one_row_and_match_blending() {
        // 48x24 into 16: a factor of 3, every vertical tap has weight 0.
        let lb = Letterbox::new(
            LetterboxGeometry::new(48, 24, 16, 16),
            PixelFormat::Gray8,
            YuvMatrix::bt601(),
            1,
        );
        assert!(lb.y_taps.iter().all(|t| t.w1 == 0.0));
        let (top, bottom) = ([7u8, 200, 33], [90u8, 1, 255]);
        let (mut widened, mut blended) = ([0.0; 3], [0.0; 3]);
        widen(&mut widened, &top);
        blend(&mut blended, &top, &bottom, 0.0);
        assert_eq!(widened, blended);
    }

    #[test]
    fn short_planes_are_errors_not_panics() {
        let mut lb = Letterbox::new(
            LetterboxGeometry::new(4, 4, 8, 8),
            PixelFormat::RGB,
            YuvMatrix::bt601(),
            3,
        );
        let mut tensor = vec![0.0; lb.tensor_len()];
        let frame = FrameView {
            width: 4,
            height: 4,
            planes: [&[0; 47], &[], &[]],
            strides: [12, 0, 0],
        };
        assert!(matches!(
            lb.run(&frame, &mut tensor),
            Err(LetterboxError::PlaneTooSmall { .. })
        ));
        let frame = FrameView {
            width: 4,
            height: 3,
            planes: [&[0; 48], &[], &[]],
            strides: [12, 0, 0],
        };
        assert!(matches!(
            lb.run(&frame, &mut tensor),
            Err(LetterboxError::SizeMismatch { .. })
        ));
        let frame = FrameView {
            width: 4,
            height: 4,
            planes: [&[0; 48], &[], &[]],
            strides: [12, 0, 0],
        };
        assert!(matches!(
            lb.run(&frame, &mut tensor[1..]),
            Err(LetterboxError::TensorSize { .. })
        ));
    }
}
