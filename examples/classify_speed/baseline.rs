// SPDX-License-Identifier: MIT OR Apache-2.0
//! The classify preprocessing as it was before the speed-up (commit 53af34c,
//! `src/analysis/classify.rs`), kept here as the baseline the example measures against and
//! checks bit for bit.
#![allow(dead_code)]

use gstdefect::analysis::classify::ClassifyGeometry;
use gstdefect::frame::{FrameView, PixelFormat, YuvMatrix};

/// PIL's fixed-point precision of the filter coefficients (8-bit images).
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// PIL's bilinear (triangle) filter of one axis, for the output samples `first..first + count`
/// of a resize from `in_size` to `out_size`: each output's first input and its weights.
#[derive(Debug, Clone)]
struct Coefficients {
    starts: Vec<usize>,
    /// `ksize` weights per output, 22-bit fixed point.
    weights: Vec<i64>,
    ksize: usize,
}

impl Coefficients {
    /// PIL `precompute_coeffs` and `normalize_coeffs_8bpc`.
    fn new(in_size: u32, out_size: u32, first: u32, count: u32) -> Self {
        let scale = in_size as f64 / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = filterscale;
        let ksize = support.ceil() as usize * 2 + 1;
        let mut starts = Vec::with_capacity(count as usize);
        let mut weights = vec![0i64; count as usize * ksize];
        let mut w = vec![0f64; ksize];
        for (i, xx) in (first..first + count).enumerate() {
            let center = (xx as f64 + 0.5) * scale;
            let ss = 1.0 / filterscale;
            // Truncation towards zero, as C's (int) cast.
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) - xmin;
            w.fill(0.0);
            let mut total = 0.0;
            for (x, weight) in w.iter_mut().enumerate().take(xmax.max(0) as usize) {
                let t = ((x as i64 + xmin) as f64 - center + 0.5) * ss;
                let t = t.abs();
                *weight = if t < 1.0 { 1.0 - t } else { 0.0 };
                total += *weight;
            }
            let row = &mut weights[i * ksize..(i + 1) * ksize];
            for (k, &weight) in row.iter_mut().zip(&w) {
                let weight = if total != 0.0 { weight / total } else { weight };
                let fixed = weight * (1u64 << PRECISION_BITS) as f64;
                *k = if weight < 0.0 {
                    (fixed - 0.5) as i64
                } else {
                    (fixed + 0.5) as i64
                };
            }
            starts.push(xmin as usize);
        }
        Self {
            starts,
            weights,
            ksize,
        }
    }

    /// The output sample `i`'s weights, clipped to the input.
    fn taps(&self, i: usize, in_size: usize) -> (usize, &[i64]) {
        let start = self.starts[i];
        let n = self.ksize.min(in_size - start);
        (start, &self.weights[i * self.ksize..i * self.ksize + n])
    }
}

fn clip8(acc: i64) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Why a frame could not be preprocessed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClassifyError {
    #[error("the region {0:?} (x, y, width, height) is empty or outside the {1}x{2} frame")]
    Region((u32, u32, u32, u32), u32, u32),
    #[error("the frame's plane {0} is smaller than its size and stride say")]
    ShortPlane(usize),
}

/// The classify preprocessing of one (region size, model input) combination: filter tables
/// made once, buffers reused frame after frame.
#[derive(Debug, Clone)]
pub struct ClassifyPreprocess {
    geometry: ClassifyGeometry,
    horizontal: Coefficients,
    vertical: Coefficients,
    /// Source rows the kept output rows need.
    rows: std::ops::Range<usize>,
    /// One source row as RGB bytes.
    source_row: Vec<u8>,
    /// The horizontal pass of `rows`: kept columns, RGB bytes.
    horizontal_rows: Vec<u8>,
}

impl ClassifyPreprocess {
    pub fn new(geometry: ClassifyGeometry) -> Self {
        let g = geometry;
        let horizontal = Coefficients::new(g.src_width, g.resized_width, g.crop_x, g.width);
        let vertical = Coefficients::new(g.src_height, g.resized_height, g.crop_y, g.height);
        let first = vertical.starts.iter().copied().min().unwrap_or(0);
        let last = (0..g.height as usize)
            .map(|i| {
                let (start, taps) = vertical.taps(i, g.src_height as usize);
                start + taps.len()
            })
            .max()
            .unwrap_or(0);
        Self {
            geometry,
            horizontal,
            vertical,
            rows: first..last,
            source_row: vec![0; g.src_width as usize * 3],
            horizontal_rows: vec![0; (last - first) * g.width as usize * 3],
        }
    }

    pub fn geometry(&self) -> &ClassifyGeometry {
        &self.geometry
    }

    /// Resizes and crops the region at (`x0`, `y0`) of the frame (its size is the geometry's
    /// source size) into `tensor`, `[C, H, W]` float32 in [0, 1]: RGB for 3 channels, BT.601
    /// luma of the RGB for 1.
    pub fn run(
        &mut self,
        frame: &FrameView,
        format: PixelFormat,
        yuv: YuvMatrix,
        (x0, y0): (u32, u32),
        channels: usize,
        tensor: &mut [f32],
    ) -> Result<(), ClassifyError> {
        let g = self.geometry;
        let region = (x0, y0, g.src_width, g.src_height);
        if x0 as u64 + g.src_width as u64 > frame.width as u64
            || y0 as u64 + g.src_height as u64 > frame.height as u64
        {
            return Err(ClassifyError::Region(region, frame.width, frame.height));
        }
        let (out_w, src_w) = (g.width as usize, g.src_width as usize);
        for (r, y) in self.rows.clone().enumerate() {
            rgb_row(
                frame,
                format,
                yuv,
                y0 as usize + y,
                x0 as usize,
                &mut self.source_row,
            )?;
            let out = &mut self.horizontal_rows[r * out_w * 3..(r + 1) * out_w * 3];
            for (i, px) in out.chunks_exact_mut(3).enumerate() {
                let (start, taps) = self.horizontal.taps(i, src_w);
                let mut acc = [1i64 << (PRECISION_BITS - 1); 3];
                for (k, &w) in taps.iter().enumerate() {
                    let s = &self.source_row[(start + k) * 3..(start + k) * 3 + 3];
                    acc[0] += s[0] as i64 * w;
                    acc[1] += s[1] as i64 * w;
                    acc[2] += s[2] as i64 * w;
                }
                px.copy_from_slice(&acc.map(clip8));
            }
        }
        let plane = g.width as usize * g.height as usize;
        let first_row = self.rows.start;
        for oy in 0..g.height as usize {
            let (start, taps) = self.vertical.taps(oy, g.src_height as usize);
            for ox in 0..out_w {
                let mut acc = [1i64 << (PRECISION_BITS - 1); 3];
                for (k, &w) in taps.iter().enumerate() {
                    let at = ((start + k - first_row) * out_w + ox) * 3;
                    let s = &self.horizontal_rows[at..at + 3];
                    acc[0] += s[0] as i64 * w;
                    acc[1] += s[1] as i64 * w;
                    acc[2] += s[2] as i64 * w;
                }
                let rgb = acc.map(clip8);
                let at = oy * out_w + ox;
                if channels == 1 {
                    tensor[at] =
                        (0.299 * rgb[0] as f32 + 0.587 * rgb[1] as f32 + 0.114 * rgb[2] as f32)
                            / 255.0;
                } else {
                    for (c, &v) in rgb.iter().enumerate() {
                        tensor[c * plane + at] = v as f32 / 255.0;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Row `y` of the frame from column `x0` on, as RGB bytes (`out.len() / 3` pixels).
fn rgb_row(
    frame: &FrameView,
    format: PixelFormat,
    yuv: YuvMatrix,
    y: usize,
    x0: usize,
    out: &mut [u8],
) -> Result<(), ClassifyError> {
    let n = out.len() / 3;
    let row = |plane: usize, y: usize, len: usize| -> Result<&[u8], ClassifyError> {
        let start = y * frame.strides[plane];
        frame.planes[plane]
            .get(start..start + len)
            .ok_or(ClassifyError::ShortPlane(plane))
    };
    let to_u8 = |v: f32| v.round().clamp(0.0, 255.0) as u8;
    match format {
        PixelFormat::Packed {
            bytes_per_pixel,
            red,
            green,
            blue,
        } => {
            let bpp = bytes_per_pixel as usize;
            let src = row(0, y, (x0 + n) * bpp)?;
            for (i, px) in out.chunks_exact_mut(3).enumerate() {
                let p = &src[(x0 + i) * bpp..];
                px.copy_from_slice(&[p[red as usize], p[green as usize], p[blue as usize]]);
            }
        }
        PixelFormat::Gray8 => {
            let src = row(0, y, x0 + n)?;
            for (i, px) in out.chunks_exact_mut(3).enumerate() {
                px.fill(src[x0 + i]);
            }
        }
        PixelFormat::Nv12 | PixelFormat::I420 => {
            let luma = row(0, y, x0 + n)?;
            let chroma_len = (x0 + n).div_ceil(2);
            let (u_plane, v_plane) = if format == PixelFormat::Nv12 {
                (row(1, y / 2, chroma_len * 2)?, None)
            } else {
                (row(1, y / 2, chroma_len)?, Some(row(2, y / 2, chroma_len)?))
            };
            for (i, px) in out.chunks_exact_mut(3).enumerate() {
                let x = x0 + i;
                let (u, v) = match v_plane {
                    None => (u_plane[x / 2 * 2], u_plane[x / 2 * 2 + 1]),
                    Some(v_plane) => (u_plane[x / 2], v_plane[x / 2]),
                };
                let rgb = yuv.rgb(luma[x] as f32, u as f32, v as f32);
                px.copy_from_slice(&rgb.map(to_u8));
            }
        }
    }
    Ok(())
}
