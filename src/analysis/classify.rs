//! Image classification, free of GStreamer: the Ultralytics classify preprocessing and the
//! decoding of a `[1, nc]` output into the top-k classes.
//!
//! Ultralytics 8.x `ClassificationPredictor` feeds its model `classify_transforms(size)`: the
//! torchvision `Resize(size)` of a PIL image (shortest side to `size`, the long side
//! `int(size * long / short)`; PIL's bilinear filter, antialiased when shrinking), then
//! `CenterCrop(size)` (offsets `round((dim - size) / 2)`, ties to even), RGB, scaled to [0, 1].
//! A model with a non-square input gets the frame stretched to it (what `Resize((h, w))`
//! does). [`ClassifyPreprocess`] reproduces PIL's fixed-point filter bit for bit (the reference
//! is `training/cls_preprocess.py`) and computes only the output pixels the crop keeps, from
//! only the source rows and columns they need (32-bit sums as PIL's; YUV through tables).

use crate::frame::{FrameView, PixelFormat, YuvMatrix, YuvTables, round_u8};

/// PIL's fixed-point precision of the filter coefficients (8-bit images).
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// How a region of `src_width` x `src_height` becomes the model's `width` x `height` input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassifyGeometry {
    pub src_width: u32,
    pub src_height: u32,
    /// The size the region is resized to before the crop.
    pub resized_width: u32,
    pub resized_height: u32,
    /// Top-left corner of the crop in the resized image.
    pub crop_x: u32,
    pub crop_y: u32,
    pub width: u32,
    pub height: u32,
}

impl ClassifyGeometry {
    pub fn new(src_width: u32, src_height: u32, width: u32, height: u32) -> Self {
        let (src_width, src_height) = (src_width.max(1), src_height.max(1));
        let (resized_width, resized_height) = if width == height {
            // torchvision `_compute_resized_output_size` for an int size.
            let size = width as u64;
            let (w, h) = (src_width as u64, src_height as u64);
            if w <= h {
                (size, (size * h / w).max(size))
            } else {
                ((size * w / h).max(size), size)
            }
        } else {
            (width as u64, height as u64)
        };
        let (resized_width, resized_height) = (resized_width as u32, resized_height as u32);
        let centre = |dim: u32, size: u32| ((dim - size) as f64 / 2.0).round_ties_even() as u32;
        Self {
            src_width,
            src_height,
            resized_width,
            resized_height,
            crop_x: centre(resized_width, width),
            crop_y: centre(resized_height, height),
            width,
            height,
        }
    }
}

/// PIL's bilinear (triangle) filter of one axis, for the output samples `first..first + count`
/// of a resize from `in_size` to `out_size`: each output's first input and its weights.
#[derive(Debug, Clone)]
struct Coefficients {
    starts: Vec<usize>,
    /// Each output's number of weights (its `ksize` clipped to the input).
    lens: Vec<usize>,
    /// `ksize` weights per output, 22-bit fixed point. PIL sums them in 32-bit integers: 255
    /// times their sum (about 2^22) plus the rounding half stays below 2^31.
    weights: Vec<i32>,
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
        let mut lens = Vec::with_capacity(count as usize);
        let mut weights = vec![0i32; count as usize * ksize];
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
                    (fixed - 0.5) as i32
                } else {
                    (fixed + 0.5) as i32
                };
            }
            starts.push(xmin as usize);
            lens.push(ksize.min(in_size as usize - xmin as usize));
        }
        Self {
            starts,
            lens,
            weights,
            ksize,
        }
    }

    /// The output sample `i`'s weights, clipped to the input.
    fn taps(&self, i: usize) -> (usize, &[i32]) {
        let at = i * self.ksize;
        (self.starts[i], &self.weights[at..at + self.lens[i]])
    }

    /// The inputs the outputs need: `first..end`.
    fn span(&self) -> std::ops::Range<usize> {
        let first = self.starts.iter().copied().min().unwrap_or(0);
        let end = (0..self.starts.len())
            .map(|i| self.starts[i] + self.lens[i])
            .max()
            .unwrap_or(0);
        first..end.max(first)
    }
}

/// The rounding half PIL starts each sum with.
const HALF: i32 = 1 << (PRECISION_BITS - 1);

fn clip8(acc: i32) -> u8 {
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
/// made once, buffers reused frame after frame. Only the source rows and columns the kept
/// (cropped) output pixels need are read and converted.
#[derive(Debug, Clone)]
pub struct ClassifyPreprocess {
    geometry: ClassifyGeometry,
    horizontal: Coefficients,
    vertical: Coefficients,
    /// Source rows and columns (of the region) the kept output pixels need.
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
    /// The needed columns of one source row as RGB bytes.
    source_row: Vec<u8>,
    /// The horizontal pass of `rows`: kept columns, RGB bytes.
    horizontal_rows: Vec<u8>,
    /// One output row of the vertical pass being summed.
    sums: Vec<i32>,
    /// YUV frames: the conversion's tables, for the matrix they were made for.
    tables: Option<(YuvMatrix, Box<YuvTables>)>,
}

impl ClassifyPreprocess {
    pub fn new(geometry: ClassifyGeometry) -> Self {
        let g = geometry;
        let horizontal = Coefficients::new(g.src_width, g.resized_width, g.crop_x, g.width);
        let vertical = Coefficients::new(g.src_height, g.resized_height, g.crop_y, g.height);
        let (rows, cols) = (vertical.span(), horizontal.span());
        Self {
            geometry,
            horizontal,
            vertical,
            source_row: vec![0; cols.len() * 3],
            horizontal_rows: vec![0; rows.len() * g.width as usize * 3],
            sums: vec![0; g.width as usize * 3],
            rows,
            cols,
            tables: None,
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
        if matches!(format, PixelFormat::Nv12 | PixelFormat::I420)
            && self.tables.as_ref().is_none_or(|(m, _)| *m != yuv)
        {
            self.tables = Some((yuv, Box::new(yuv.tables())));
        }
        let tables = self.tables.as_ref().map(|(_, t)| &**t);
        let out_w = g.width as usize;
        let first_col = self.cols.start;
        for (r, y) in self.rows.clone().enumerate() {
            rgb_row(
                frame,
                format,
                tables,
                y0 as usize + y,
                x0 as usize + first_col,
                &mut self.source_row,
            )?;
            let out = &mut self.horizontal_rows[r * out_w * 3..(r + 1) * out_w * 3];
            for (i, px) in out.chunks_exact_mut(3).enumerate() {
                let (start, taps) = self.horizontal.taps(i);
                let at = (start - first_col) * 3;
                let source = &self.source_row[at..at + taps.len() * 3];
                let (mut r, mut g, mut b) = (HALF, HALF, HALF);
                for (s, &w) in source.chunks_exact(3).zip(taps) {
                    r += s[0] as i32 * w;
                    g += s[1] as i32 * w;
                    b += s[2] as i32 * w;
                }
                px[0] = clip8(r);
                px[1] = clip8(g);
                px[2] = clip8(b);
            }
        }
        let plane = g.width as usize * g.height as usize;
        let first_row = self.rows.start;
        let row_bytes = out_w * 3;
        for oy in 0..g.height as usize {
            let (start, taps) = self.vertical.taps(oy);
            self.sums.fill(HALF);
            for (k, &w) in taps.iter().enumerate() {
                let at = (start + k - first_row) * row_bytes;
                let source = &self.horizontal_rows[at..at + row_bytes];
                for (sum, &s) in self.sums.iter_mut().zip(source) {
                    *sum += s as i32 * w;
                }
            }
            let out = oy * out_w;
            if channels == 1 {
                for (ox, rgb) in self.sums.chunks_exact(3).enumerate() {
                    let [r, g, b] = [rgb[0], rgb[1], rgb[2]].map(clip8);
                    tensor[out + ox] =
                        (0.299 * r as f32 + 0.587 * g as f32 + 0.114 * b as f32) / 255.0;
                }
            } else {
                for (c, channel) in tensor.chunks_exact_mut(plane).take(3).enumerate() {
                    let row = &mut channel[out..out + out_w];
                    for (t, rgb) in row.iter_mut().zip(self.sums.chunks_exact(3)) {
                        *t = clip8(rgb[c]) as f32 / 255.0;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Row `y` of the frame from column `x0` on, as RGB bytes (`out.len() / 3` pixels); YUV
/// frames through `tables`.
fn rgb_row(
    frame: &FrameView,
    format: PixelFormat,
    tables: Option<&YuvTables>,
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
    match format {
        PixelFormat::Packed {
            bytes_per_pixel,
            red,
            green,
            blue,
        } => {
            let bpp = bytes_per_pixel as usize;
            let src = &row(0, y, (x0 + n) * bpp)?[x0 * bpp..];
            let (r, g, b) = (red as usize, green as usize, blue as usize);
            for (px, p) in out.chunks_exact_mut(3).zip(src.chunks_exact(bpp)) {
                px[0] = p[r];
                px[1] = p[g];
                px[2] = p[b];
            }
        }
        PixelFormat::Gray8 => {
            let src = &row(0, y, x0 + n)?[x0..];
            for (px, &v) in out.chunks_exact_mut(3).zip(src) {
                px.fill(v);
            }
        }
        PixelFormat::Nv12 | PixelFormat::I420 => {
            let tables = tables.expect("tables are made for YUV frames");
            let luma = &row(0, y, x0 + n)?[x0..];
            let chroma_len = (x0 + n).div_ceil(2);
            let put = |px: &mut [u8], l: u8, u: u8, v: u8| {
                let rgb = tables.rgb(l, u, v);
                px[0] = round_u8(rgb[0]);
                px[1] = round_u8(rgb[1]);
                px[2] = round_u8(rgb[2]);
            };
            let pixels = out.chunks_exact_mut(3).zip(luma).enumerate();
            if format == PixelFormat::Nv12 {
                let uv = row(1, y / 2, chroma_len * 2)?;
                for (i, (px, &l)) in pixels {
                    let c = (x0 + i) / 2 * 2;
                    put(px, l, uv[c], uv[c + 1]);
                }
            } else {
                let (u, v) = (row(1, y / 2, chroma_len)?, row(2, y / 2, chroma_len)?);
                for (i, (px, &l)) in pixels {
                    let c = (x0 + i) / 2;
                    put(px, l, u[c], v[c]);
                }
            }
        }
    }
    Ok(())
}

/// Why a classifier's output cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScoresError {
    #[error("the classifier output no scores")]
    Empty,
    #[error("the classifier output {0} NaN or infinite scores")]
    NonFinite(usize),
}

/// Whether scores already form a probability distribution: each in [0, 1], summing to 1.
pub fn is_distribution(scores: &[f32]) -> bool {
    const TOLERANCE: f64 = 1e-3;
    let sum: f64 = scores.iter().map(|&s| s as f64).sum();
    scores.iter().all(|&s| (-1e-6..=1.0 + 1e-6).contains(&s)) && (sum - 1.0).abs() <= TOLERANCE
}

/// The class probabilities of a classifier's output: the values themselves when they are a
/// distribution (an Ultralytics export ends with a softmax), else their softmax (logits).
/// Returns whether the softmax was applied.
pub fn probabilities(scores: &[f32], out: &mut Vec<f32>) -> Result<bool, ScoresError> {
    if scores.is_empty() {
        return Err(ScoresError::Empty);
    }
    let non_finite = scores.iter().filter(|s| !s.is_finite()).count();
    if non_finite > 0 {
        return Err(ScoresError::NonFinite(non_finite));
    }
    out.clear();
    if is_distribution(scores) {
        out.extend(scores.iter().map(|s| s.clamp(0.0, 1.0)));
        return Ok(false);
    }
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    out.extend(scores.iter().map(|&s| ((s - max) as f64).exp() as f32));
    let sum: f64 = out.iter().map(|&p| p as f64).sum();
    for p in out.iter_mut() {
        *p = (*p as f64 / sum) as f32;
    }
    Ok(true)
}

/// The `k` most probable classes, most probable first (ties: the lower class id first).
pub fn top_k(probabilities: &[f32], k: usize) -> Vec<(usize, f32)> {
    if k == 0 {
        return Vec::new();
    }
    let mut ranked: Vec<(usize, f32)> = probabilities.iter().copied().enumerate().collect();
    let k = k.min(ranked.len());
    let order = |a: &(usize, f32), b: &(usize, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if k < ranked.len() {
        ranked.select_nth_unstable_by(k - 1, order);
        ranked.truncate(k);
    }
    ranked.sort_by(order);
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torchvision_resize_and_centre_crop_geometry() {
        // 1920x1080 to 224: short side 224, long int(224 * 1920 / 1080) = 398; crop (87, 0).
        let g = ClassifyGeometry::new(1920, 1080, 224, 224);
        assert_eq!((g.resized_width, g.resized_height), (398, 224));
        assert_eq!((g.crop_x, g.crop_y), (87, 0));
        // Portrait; (225 - 224) / 2 = 0.5 rounds to even: 0.
        let g = ClassifyGeometry::new(200, 201, 200, 200);
        assert_eq!((g.resized_width, g.resized_height), (200, 201));
        assert_eq!((g.crop_x, g.crop_y), (0, 0));
        let g = ClassifyGeometry::new(200, 203, 200, 200);
        assert_eq!(g.crop_y, 2); // 1.5 -> 2
        // Non-square inputs are stretched.
        let g = ClassifyGeometry::new(640, 480, 320, 160);
        assert_eq!(
            (g.resized_width, g.resized_height, g.crop_x, g.crop_y),
            (320, 160, 0, 0)
        );
    }

    fn rgb_view(data: &[u8], width: u32, height: u32) -> FrameView<'_> {
        FrameView {
            width,
            height,
            planes: [data, &[], &[]],
            strides: [width as usize * 3, 0, 0],
        }
    }

    fn run(data: &[u8], w: u32, h: u32, size: u32) -> Vec<f32> {
        let mut pre = ClassifyPreprocess::new(ClassifyGeometry::new(w, h, size, size));
        let mut tensor = vec![0.0; 3 * (size * size) as usize];
        pre.run(
            &rgb_view(data, w, h),
            PixelFormat::RGB,
            YuvMatrix::default(),
            (0, 0),
            3,
            &mut tensor,
        )
        .unwrap();
        tensor
    }

    /// Known answers of `training/cls_preprocess.py` (bit-exact with PIL): a 6x4 ramp
    /// `v = 10 * x + 40 * y` in every channel, to 2x2 (resized 3x2, crop x 0) and an 8x3 ramp
    /// `v = 30 * x + 7 * y` (R), 255 - v (G), 100 (B) enlarged to 4x4 (resized 10x4, crop x 3).
    #[test]
    fn matches_the_pil_reference() {
        let mut a = Vec::new();
        for y in 0..4u32 {
            for x in 0..6u32 {
                a.extend([(10 * x + 40 * y) as u8; 3]);
            }
        }
        let t = run(&a, 6, 4, 2);
        let got: Vec<u8> = t[..4].iter().map(|v| (v * 255.0).round() as u8).collect();
        assert_eq!(got, [36, 54, 98, 116]);
        let mut b = Vec::new();
        for y in 0..3u32 {
            for x in 0..8u32 {
                let v = (30 * x + 7 * y).min(255) as u8;
                b.extend([v, 255 - v, 100]);
            }
        }
        let t = run(&b, 8, 3, 4);
        let got: Vec<u8> = t.iter().map(|v| (v * 255.0).round() as u8).collect();
        assert_eq!(
            got,
            [
                // R
                69, 93, 117, 141, 73, 97, 121, 145, 79, 103, 127, 151, 83, 107, 131, 155,
                // G
                186, 162, 138, 114, 182, 158, 134, 110, 176, 152, 128, 104, 172, 148, 124, 100,
                // B
                100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100,
            ]
        );
    }

    #[test]
    fn a_region_outside_the_frame_is_an_error() {
        let data = vec![0u8; 4 * 4 * 3];
        let mut pre = ClassifyPreprocess::new(ClassifyGeometry::new(3, 3, 2, 2));
        let mut tensor = vec![0.0; 12];
        let e = pre.run(
            &rgb_view(&data, 4, 4),
            PixelFormat::RGB,
            YuvMatrix::default(),
            (2, 2),
            3,
            &mut tensor,
        );
        assert!(matches!(e, Err(ClassifyError::Region(..))), "{e:?}");
    }

    #[test]
    fn probabilities_pass_through_and_logits_get_a_softmax() {
        let mut out = Vec::new();
        assert!(!probabilities(&[0.1, 0.7, 0.2], &mut out).unwrap());
        assert_eq!(out, [0.1, 0.7, 0.2]);
        assert!(probabilities(&[1.0, 3.0, 2.0], &mut out).unwrap());
        let e: f32 = out.iter().sum();
        assert!((e - 1.0).abs() < 1e-6);
        assert!((out[1] - 0.665_240_9).abs() < 1e-6, "{out:?}");
        // In [0, 1] but not summing to 1 (sigmoids): softmax.
        assert!(probabilities(&[0.9, 0.9], &mut out).unwrap());
        assert_eq!(out, [0.5, 0.5]);
        // Large logits do not overflow.
        assert!(probabilities(&[1000.0, -3000.0], &mut out).unwrap());
        assert_eq!(out, [1.0, 0.0]);
        assert_eq!(
            probabilities(&[f32::NAN, 1.0], &mut out),
            Err(ScoresError::NonFinite(1))
        );
        assert_eq!(probabilities(&[], &mut out), Err(ScoresError::Empty));
    }

    #[test]
    fn top_k_orders_by_probability_then_id() {
        let p = [0.1, 0.4, 0.1, 0.4, 0.0];
        assert_eq!(top_k(&p, 1), [(1, 0.4)]);
        assert_eq!(top_k(&p, 3), [(1, 0.4), (3, 0.4), (0, 0.1)]);
        assert_eq!(top_k(&p, 10).len(), 5);
        assert!(top_k(&p, 0).is_empty());
    }
}
