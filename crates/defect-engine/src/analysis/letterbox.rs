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
use crate::frame::{Chroma, FrameView, Layout, Packed, PixelFormat, YuvMatrix};

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

/// OpenCV's `INTER_RESIZE_COEF_BITS`: `INTER_LINEAR` on 8-bit images weighs pixels with
/// integers of 11 fractional bits.
const COEF_ONE: f32 = (1 << 11) as f32;

/// OpenCV's BT.601 luma weights of `cvtColor(RGB2GRAY)` on 8-bit images (14 fractional bits).
const LUMA_FIXED: [i32; 3] = [4899, 9617, 1868];

/// One output sample of OpenCV's fixed-point `INTER_LINEAR`: two source indices and their
/// integer weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FixedTap {
    i0: usize,
    i1: usize,
    w0: i32,
    w1: i32,
}

/// The taps `cv::resize(INTER_LINEAR)` uses for 8-bit images, `dst` samples over `src`.
///
/// OpenCV computes the scale as `1 / (dst / src)` in double, each position
/// `(d + 0.5) · scale − 0.5` rounded to single precision, and the weights `1 − f` and `f` in
/// single precision scaled by 2048 and rounded to the nearest integer (ties to even). Columns
/// beyond an edge take the edge pixel with weight 1 (`clamp_weights`); rows beyond an edge
/// keep their weights and only their indices are clamped.
fn fixed_taps(src: u32, dst: u32, clamp_weights: bool) -> Vec<FixedTap> {
    let scale = 1.0 / (dst as f64 / src.max(1) as f64);
    let last = src.max(1) as i64 - 1;
    (0..dst)
        .map(|d| {
            let position = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let mut s = position.floor() as i64;
            let mut f = position - s as f32;
            if clamp_weights {
                if s < 0 {
                    (s, f) = (0, 0.0);
                }
                if s >= last {
                    (s, f) = (last, 0.0);
                }
            }
            FixedTap {
                i0: s.clamp(0, last) as usize,
                i1: (s + 1).clamp(0, last) as usize,
                w0: ((1.0 - f) * COEF_ONE).round_ties_even() as i32,
                w1: (f * COEF_ONE).round_ties_even() as i32,
            }
        })
        .collect()
}

/// Preprocessing for one (frame size, pixel format, model input) combination: tap tables and
/// row buffers are made once, each frame costs one pass.
///
/// Packed RGB and grey frames follow OpenCV's `cv::resize(INTER_LINEAR)` on 8-bit images
/// exactly (what the Ultralytics predictor feeds its models), then divide by 255 as numpy
/// does: the tensor equals the reference's bit for bit. The pass is OpenCV's separable one:
/// each source row the output needs is resampled horizontally once into an integer row (with
/// 11 fractional bits), and each output row blends two of those vertically with OpenCV's
/// rounding, then normalises, in contiguous loops the compiler vectorises. A colour frame
/// feeding a 1-channel model is converted to grey first with `cvtColor(RGB2GRAY)`'s integer
/// weights, as the reference does.
///
/// YUV frames (NV12, I420) are interpolated in floating point: for each output row, the two
/// source rows are blended vertically into float row buffers, output pixels are sampled
/// horizontally from them in YUV (chroma taken from each luma tap's co-sited sample) and
/// converted to RGB once per output pixel. That cannot equal a reference that converts the
/// whole frame to 8-bit RGB first (with its own chroma upsampling and rounding) and then
/// resizes; the two differ by about one grey level.
#[derive(Debug, Clone)]
pub struct Letterbox {
    geometry: LetterboxGeometry,
    format: PixelFormat,
    yuv: YuvMatrix,
    channels: usize,
    /// Fixed-point taps of packed and grey frames: rows, and columns (source pixel indices).
    fixed_y: Vec<FixedTap>,
    fixed_x: Vec<FixedTap>,
    /// Channels of the horizontal pass: 3 for a colour frame into a colour model, else 1.
    fixed_channels: usize,
    /// Whether every column tap has weights (2048, 0): an integer horizontal scale factor.
    fixed_x_nearest: bool,
    /// Two horizontally resampled source rows, planar (`fixed_channels` planes of
    /// `resized_width` values), and the source row each holds for the current frame.
    fixed_rows: [Vec<i32>; 2],
    fixed_row_of: [Option<usize>; 2],
    /// Float taps of YUV frames.
    y_taps: Vec<Tap>,
    /// Per output column, positions in a row buffer of the luma plane.
    x_main: Vec<XTap>,
    /// Per output column, positions of U in a chroma row buffer (V: [`Chroma::v_offset`]
    /// further, in the row buffer of [`Chroma::v_plane`]).
    x_chroma: Vec<XTap>,
    /// Where a YUV frame keeps its chroma.
    chroma: Option<Chroma>,
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

/// Weights of the BT.601 luma, used when a YUV frame feeds a 1-channel model.
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
        let resized_width = geometry.resized_width as usize;
        let mut letterbox = Self {
            geometry,
            format,
            yuv,
            channels,
            fixed_y: Vec::new(),
            fixed_x: Vec::new(),
            fixed_channels: 0,
            fixed_x_nearest: false,
            fixed_rows: [Vec::new(), Vec::new()],
            fixed_row_of: [None; 2],
            y_taps: Vec::new(),
            x_main: Vec::new(),
            x_chroma: Vec::new(),
            chroma: None,
            rows: [Vec::new(), Vec::new(), Vec::new()],
            yuv_row: [Vec::new(), Vec::new(), Vec::new()],
        };
        let chroma = match format.layout() {
            Layout::Yuv(chroma) => chroma,
            layout => {
                let fixed_channels = match layout {
                    Layout::Packed(_) if channels == 3 => 3,
                    _ => 1,
                };
                letterbox.fixed_y = fixed_taps(geometry.src_height, geometry.resized_height, false);
                letterbox.fixed_x = fixed_taps(geometry.src_width, geometry.resized_width, true);
                letterbox.fixed_channels = fixed_channels;
                letterbox.fixed_x_nearest =
                    letterbox.fixed_x.iter().all(|t| (t.w0, t.w1) == (2048, 0));
                letterbox.fixed_rows = [(); 2].map(|_| vec![0; fixed_channels * resized_width]);
                return letterbox;
            }
        };
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
        letterbox.x_main = scaled(1, |i| i);
        letterbox.x_chroma = scaled(chroma.step, |i| i / 2);
        letterbox.chroma = Some(chroma);
        let extents = format.plane_extents(geometry.src_width as usize, 0);
        letterbox.rows = extents.map(|(row_bytes, _)| vec![0.0; row_bytes]);
        letterbox.yuv_row = [(); 3].map(|_| vec![0.0; resized_width]);
        letterbox.y_taps = linear_taps(geometry.src_height, geometry.resized_height);
        letterbox
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

    /// The same pass compiled for AVX2: the row loops run eight lanes wide. Rust builds for
    /// baseline x86-64 (SSE2), so without this the hot loops would not use the wider
    /// registers every x86-64 CPU of the last decade has.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn fill_avx2(&mut self, frame: &FrameView, tensor: &mut [f32]) {
        self.fill(frame, tensor);
    }

    /// The pass itself, on a frame and tensor `check` accepted. Everything it calls is
    /// `inline(always)` so that `fill_avx2` compiles all of it for AVX2.
    #[inline(always)]
    fn fill(&mut self, frame: &FrameView, tensor: &mut [f32]) {
        match self.chroma {
            Some(chroma) => self.fill_yuv(frame, tensor, chroma),
            None => self.fill_fixed(frame, tensor),
        }
    }

    /// OpenCV's fixed-point pass over a packed or grey frame.
    #[inline(always)]
    fn fill_fixed(&mut self, frame: &FrameView, tensor: &mut [f32]) {
        let g = self.geometry;
        let plane_len = g.dst_width as usize * g.dst_height as usize;
        let width = g.resized_width as usize;
        // The rows held are the previous frame's.
        self.fixed_row_of = [None; 2];
        for dy in 0..self.fixed_y.len() {
            let t = self.fixed_y[dy];
            // A weight of 0 multiplies the second row away: it is not read (integer factors).
            let second = (t.w1 != 0).then_some(t.i1);
            let keep =
                second.and_then(|row| self.fixed_row_of.iter().position(|&r| r == Some(row)));
            let s0 = self.resample_row(frame, t.i0, keep);
            let s1 = match second {
                Some(row) => self.resample_row(frame, row, Some(s0)),
                None => s0,
            };
            let start = (g.top as usize + dy) * g.dst_width as usize + g.left as usize;
            let (h0, h1) = (&self.fixed_rows[s0], &self.fixed_rows[s1]);
            for c in 0..self.fixed_channels {
                let out = &mut tensor[c * plane_len + start..][..width];
                vertical(
                    out,
                    &h0[c * width..][..width],
                    &h1[c * width..][..width],
                    t.w0,
                    t.w1,
                );
            }
            if self.channels == 3 && self.fixed_channels == 1 {
                // A grey frame into a colour model: the grey plane three times.
                tensor.copy_within(start..start + width, plane_len + start);
                tensor.copy_within(start..start + width, 2 * plane_len + start);
            }
        }
    }

    /// The slot of `fixed_rows` holding source row `row` resampled horizontally, computing it
    /// into the slot other than `keep` when no slot holds it.
    #[inline(always)]
    fn resample_row(&mut self, frame: &FrameView, row: usize, keep: Option<usize>) -> usize {
        if let Some(slot) = self.fixed_row_of.iter().position(|&r| r == Some(row)) {
            return slot;
        }
        let slot = if keep == Some(0) { 1 } else { 0 };
        let stride = frame.strides[0];
        let out = &mut self.fixed_rows[slot];
        match self.format.layout() {
            Layout::Packed(Packed {
                bytes_per_pixel: bpp,
                offsets,
            }) => {
                let src =
                    &frame.planes[0][row * stride..][..self.geometry.src_width as usize * bpp];
                if self.fixed_channels == 3 {
                    let nearest = self.fixed_x_nearest;
                    horizontal_rgb(out, src, &self.fixed_x, bpp, offsets, nearest);
                } else {
                    horizontal_luma(out, src, &self.fixed_x, bpp, offsets);
                }
            }
            _ => {
                let src = &frame.planes[0][row * stride..][..self.geometry.src_width as usize];
                horizontal_grey(out, src, &self.fixed_x, self.fixed_x_nearest);
            }
        }
        self.fixed_row_of[slot] = Some(row);
        slot
    }

    /// The floating-point pass over a YUV frame.
    #[inline(always)]
    fn fill_yuv(&mut self, frame: &FrameView, tensor: &mut [f32], chroma: Chroma) {
        let g = self.geometry;
        let plane_len = g.dst_width as usize * g.dst_height as usize;
        let width = g.resized_width as usize;
        for dy in 0..self.y_taps.len() {
            let ty = self.y_taps[dy];
            self.blend_rows(frame, &ty);
            self.sample_yuv(chroma);
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

    /// Blends the source rows `ty.i0` and `ty.i1` of each plane into the row buffers
    /// (chroma planes at half the rows).
    #[inline(always)]
    fn blend_rows(&mut self, frame: &FrameView, ty: &Tap) {
        for plane in 0..3 {
            let len = self.rows[plane].len();
            if len == 0 {
                continue;
            }
            let (r0, r1) = if plane > 0 {
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
        let [ys, us, vs] = &self.yuv_row;
        let out = r.iter_mut().zip(g.iter_mut()).zip(b.iter_mut());
        for ((((r, g), b), &y), (&u, &v)) in out.zip(ys).zip(us.iter().zip(vs)) {
            let [vr, vg, vb] = self.yuv.rgb(y, u, v);
            (*r, *g, *b) = (vr * INV_255, vg * INV_255, vb * INV_255);
        }
    }

    #[inline(always)]
    fn write_grey(&self, out: &mut [f32]) {
        let [ys, us, vs] = &self.yuv_row;
        for ((o, &y), (&u, &v)) in out.iter_mut().zip(ys).zip(us.iter().zip(vs)) {
            let [r, g, b] = self.yuv.rgb(y, u, v);
            *o = (LUMA[0] * r + LUMA[1] * g + LUMA[2] * b) * INV_255;
        }
    }

    /// Samples Y, U and V of each output column of a YUV frame from the row buffers.
    #[inline(always)]
    fn sample_yuv(&mut self, chroma: Chroma) {
        let y_row = &self.rows[0];
        let u_row = &self.rows[chroma.u_plane];
        // V of a column sits `v_offset` after its U position, in V's row buffer.
        let v_row = &self.rows[chroma.v_plane][chroma.v_offset..];
        let [ys, us, vs] = &mut self.yuv_row;
        let taps = self.x_main.iter().zip(&self.x_chroma);
        let out = ys.iter_mut().zip(us.iter_mut()).zip(vs.iter_mut());
        for (((y, u), v), (t, c)) in out.zip(taps) {
            *y = lerp(y_row[t.a], y_row[t.b], t.w);
            *u = lerp(u_row[c.a], u_row[c.b], t.w);
            *v = lerp(v_row[c.a], v_row[c.b], t.w);
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
        self.format
            .check_planes(
                frame.width,
                frame.height,
                frame.planes.map(|p| p.len()),
                frame.strides,
            )
            .map_err(|e| LetterboxError::PlaneTooSmall {
                plane: e.plane,
                len: e.len,
                needed: e.needed,
                width: frame.width,
                height: frame.height,
                stride: e.stride,
            })
    }
}

/// OpenCV's horizontal pass over one row of packed pixels: per output column and channel
/// (in RGB order, planar), the two source pixels weighed with 11 fractional bits.
/// `nearest`: every tap has weights (2048, 0) (an integer scale factor), so the second pixel
/// is not read.
#[inline(always)]
fn horizontal_rgb(
    out: &mut [i32],
    row: &[u8],
    taps: &[FixedTap],
    bpp: usize,
    offsets: [usize; 3],
    nearest: bool,
) {
    match (bpp, nearest) {
        (3, false) => horizontal_rgb_n::<3, false>(out, row, taps, offsets),
        (3, true) => horizontal_rgb_n::<3, true>(out, row, taps, offsets),
        (_, false) => horizontal_rgb_n::<4, false>(out, row, taps, offsets),
        (_, true) => horizontal_rgb_n::<4, true>(out, row, taps, offsets),
    }
}

/// `horizontal_rgb` for pixels of `BPP` bytes: with the size known at compile time, reading
/// a channel needs no bounds check.
#[inline(always)]
fn horizontal_rgb_n<const BPP: usize, const NEAREST: bool>(
    out: &mut [i32],
    row: &[u8],
    taps: &[FixedTap],
    [ro, go, bo]: [usize; 3],
) {
    let (r, rest) = out.split_at_mut(taps.len());
    let (g, b) = rest.split_at_mut(taps.len());
    let pixel = |i: usize| -> &[u8; BPP] {
        row[i * BPP..][..BPP]
            .try_into()
            .expect("a slice of BPP bytes")
    };
    for (((r, g), b), t) in r.iter_mut().zip(g).zip(b).zip(taps) {
        let p0 = pixel(t.i0);
        if NEAREST {
            let at = |o: usize| (p0[o % BPP] as i32) << 11;
            (*r, *g, *b) = (at(ro), at(go), at(bo));
        } else {
            let p1 = pixel(t.i1);
            let weigh = |o: usize| p0[o % BPP] as i32 * t.w0 + p1[o % BPP] as i32 * t.w1;
            (*r, *g, *b) = (weigh(ro), weigh(go), weigh(bo));
        }
    }
}

/// The horizontal pass over one row of packed pixels converted to grey as
/// `cvtColor(RGB2GRAY)` does on 8-bit images.
#[inline(always)]
fn horizontal_luma(
    out: &mut [i32],
    row: &[u8],
    taps: &[FixedTap],
    bpp: usize,
    [ro, go, bo]: [usize; 3],
) {
    let luma = |p: &[u8]| {
        (p[ro] as i32 * LUMA_FIXED[0]
            + p[go] as i32 * LUMA_FIXED[1]
            + p[bo] as i32 * LUMA_FIXED[2]
            + (1 << 13))
            >> 14
    };
    for (o, t) in out.iter_mut().zip(taps) {
        *o = luma(&row[t.i0 * bpp..]) * t.w0 + luma(&row[t.i1 * bpp..]) * t.w1;
    }
}

/// The horizontal pass over one row of a grey frame.
#[inline(always)]
fn horizontal_grey(out: &mut [i32], row: &[u8], taps: &[FixedTap], nearest: bool) {
    if nearest {
        for (o, t) in out.iter_mut().zip(taps) {
            *o = (row[t.i0] as i32) << 11;
        }
        return;
    }
    for (o, t) in out.iter_mut().zip(taps) {
        *o = row[t.i0] as i32 * t.w0 + row[t.i1] as i32 * t.w1;
    }
}

/// OpenCV's vertical pass (`VResizeLinear` on 8-bit images: each row shifted right by 4,
/// multiplied by its weight keeping the high 16 bits, summed, rounded off by 2 bits), then
/// the division by 255 of the reference's `astype(float32) / 255`.
#[inline(always)]
fn vertical(out: &mut [f32], h0: &[i32], h1: &[i32], w0: i32, w1: i32) {
    if w1 == 0 {
        // The second row weighs nothing (and was not resampled).
        for (o, &a) in out.iter_mut().zip(h0) {
            let v = ((((w0 * (a >> 4)) >> 16) + 2) >> 2).clamp(0, 255);
            *o = v as f32 / 255.0;
        }
        return;
    }
    for ((o, &a), &b) in out.iter_mut().zip(h0).zip(h1) {
        let v = ((((w0 * (a >> 4)) >> 16) + ((w1 * (b >> 4)) >> 16) + 2) >> 2).clamp(0, 255);
        *o = v as f32 / 255.0;
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
            PixelFormat::Nv12,
            YuvMatrix::bt601(),
            1,
        );
        assert!(lb.y_taps.iter().all(|t| t.w1 == 0.0));
        let lb = Letterbox::new(
            LetterboxGeometry::new(48, 24, 16, 16),
            PixelFormat::Gray8,
            YuvMatrix::bt601(),
            1,
        );
        assert!(lb.fixed_y.iter().all(|t| (t.w0, t.w1) == (2048, 0)));
        let (top, bottom) = ([7u8, 200, 33], [90u8, 1, 255]);
        let (mut widened, mut blended) = ([0.0; 3], [0.0; 3]);
        widen(&mut widened, &top);
        blend(&mut blended, &top, &bottom, 0.0);
        assert_eq!(widened, blended);
    }

    #[test]
    fn fixed_taps_follow_opencv() {
        // Downscale by 2: each output halfway between two inputs, weights 1024 each.
        assert_eq!(
            fixed_taps(4, 2, true),
            vec![
                FixedTap {
                    i0: 0,
                    i1: 1,
                    w0: 1024,
                    w1: 1024
                },
                FixedTap {
                    i0: 2,
                    i1: 3,
                    w0: 1024,
                    w1: 1024
                }
            ]
        );
        // Upscale by 2: columns beyond the edges take the edge pixel with weight 1...
        let columns = fixed_taps(2, 4, true);
        assert_eq!(
            columns[0],
            FixedTap {
                i0: 0,
                i1: 1,
                w0: 2048,
                w1: 0
            }
        );
        assert_eq!(
            columns[1],
            FixedTap {
                i0: 0,
                i1: 1,
                w0: 1536,
                w1: 512
            }
        );
        assert_eq!(
            columns[3],
            FixedTap {
                i0: 1,
                i1: 1,
                w0: 2048,
                w1: 0
            }
        );
        // ...rows beyond the edges keep their weights on the clamped row.
        let rows = fixed_taps(2, 4, false);
        assert_eq!(
            rows[0],
            FixedTap {
                i0: 0,
                i1: 0,
                w0: 512,
                w1: 1536
            }
        );
        assert_eq!(
            rows[3],
            FixedTap {
                i0: 1,
                i1: 1,
                w0: 1536,
                w1: 512
            }
        );
    }

    #[test]
    fn identity_and_flat_frames_keep_their_values() {
        // Every grey level through a same-size "resize" and through a flat upscale.
        for (w, h, dst) in [(16u32, 16u32, 16u32), (16, 16, 40), (40, 40, 16)] {
            for level in 0..=255u8 {
                let data = vec![level; (w * h) as usize];
                let t = run_on_size(PixelFormat::Gray8, w, h, dst, &data, w as usize, 1);
                let want = level as f32 / 255.0;
                assert!(t.iter().all(|&v| v == want), "level {level}");
            }
        }
    }

    fn run_on_size(
        format: PixelFormat,
        w: u32,
        h: u32,
        dst: u32,
        data: &[u8],
        stride: usize,
        channels: usize,
    ) -> Vec<f32> {
        let mut lb = Letterbox::new(
            LetterboxGeometry::new(w, h, dst, dst),
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
                planes: [data, &[], &[]],
                strides: [stride, 0, 0],
            },
            &mut tensor,
        )
        .unwrap();
        tensor
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
