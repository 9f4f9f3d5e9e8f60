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
//! only the source rows and columns they need (32-bit sums as PIL's; YUV converted with the
//! f32 operations of [`YuvMatrix::rgb`], array by array).

use crate::frame::{Chroma, FrameView, Layout, Packed, PixelFormat, YuvMatrix};

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
/// of a resize from `in_size` to `out_size`: each output's first input and its weights, the
/// zero weights at either end left out (they add nothing to PIL's sums).
#[derive(Debug, Clone)]
struct Coefficients {
    starts: Vec<usize>,
    /// Each output's weights: `weights[offsets[i]..offsets[i] + lens[i]]`.
    offsets: Vec<usize>,
    lens: Vec<usize>,
    /// 22-bit fixed point. PIL sums them in 32-bit integers: 255 times their sum (about 2^22)
    /// plus the rounding half stays below 2^31, so the order of the sum does not matter.
    weights: Vec<i32>,
}

impl Coefficients {
    /// PIL `precompute_coeffs` and `normalize_coeffs_8bpc`.
    fn new(in_size: u32, out_size: u32, first: u32, count: u32) -> Self {
        let scale = in_size as f64 / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = filterscale;
        let ksize = support.ceil() as usize * 2 + 1;
        let mut out = Self {
            starts: Vec::with_capacity(count as usize),
            offsets: Vec::with_capacity(count as usize),
            lens: Vec::with_capacity(count as usize),
            weights: Vec::with_capacity(count as usize * ksize),
        };
        let mut w = vec![0f64; ksize];
        let mut fixed = vec![0i32; ksize];
        for xx in first..first + count {
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
            for (k, &weight) in fixed.iter_mut().zip(&w) {
                let weight = if total != 0.0 { weight / total } else { weight };
                let f = weight * (1u64 << PRECISION_BITS) as f64;
                *k = if weight < 0.0 {
                    (f - 0.5) as i32
                } else {
                    (f + 0.5) as i32
                };
            }
            let taps = &fixed[..ksize.min(in_size as usize - xmin as usize)];
            let lead = taps.iter().take_while(|&&k| k == 0).count();
            let used = taps.len() - taps.iter().rev().take_while(|&&k| k == 0).count();
            let taps = &taps[lead.min(used)..used];
            out.starts.push(xmin as usize + lead.min(used));
            out.offsets.push(out.weights.len());
            out.lens.push(taps.len());
            out.weights.extend_from_slice(taps);
        }
        out
    }

    /// The output sample `i`'s first input and weights.
    #[inline(always)]
    fn taps(&self, i: usize) -> (usize, &[i32]) {
        let at = self.offsets[i];
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

#[inline(always)]
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Source rows the horizontal pass filters at once: its sums run across rows, one row a
/// lane, so that the same weight multiplies every lane (the rows are transposed first, 16
/// by 16 bytes).
const LANES: usize = 16;

/// Why a frame could not be preprocessed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClassifyError {
    #[error("the region {0:?} (x, y, width, height) is empty or outside the {1}x{2} frame")]
    Region((u32, u32, u32, u32), u32, u32),
    #[error("the frame's plane {0} is smaller than its size and stride say")]
    ShortPlane(usize),
}

/// The instruction sets the pass is compiled for; picked at run time, the same result from
/// each (integer arithmetic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// Baseline code (SSE2 on x86-64).
    Baseline,
    /// x86-64 with AVX2.
    Avx2,
    /// x86-64 with AVX-512 F and BW.
    Avx512,
}

impl Isa {
    /// The widest this CPU runs.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
            {
                return Isa::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                return Isa::Avx2;
            }
        }
        Isa::Baseline
    }

    /// Whether this CPU runs it.
    pub fn available(self) -> bool {
        match self {
            Isa::Baseline => true,
            Isa::Avx2 => matches!(Isa::detect(), Isa::Avx2 | Isa::Avx512),
            Isa::Avx512 => Isa::detect() == Isa::Avx512,
        }
    }
}

/// Source pixels (rows times columns) from which the horizontal pass runs on two threads when
/// the thread count is automatic: a 1080p frame into 224 x 224 reads about 1.2 million.
const THREADED_FROM: usize = 1 << 19;

/// The classify preprocessing of one (region size, model input) combination: filter tables
/// made once, buffers reused frame after frame. Only the source rows and columns the kept
/// (cropped) output pixels need are read and converted; packed RGB and grey frames are read
/// in place, YUV frames converted row by row (to planar R, G, B). On a CPU with two or more
/// cores, a large region's horizontal pass runs on two threads (the calling one and one
/// spawned for the frame), taking blocks of rows from one queue.
#[derive(Debug, Clone)]
pub struct ClassifyPreprocess {
    geometry: ClassifyGeometry,
    filters: Filters,
    vertical: Coefficients,
    /// Each thread's buffers.
    scratch: Vec<Scratch>,
    /// The horizontal pass of the needed rows: kept columns, planar R, G, B rows (rows
    /// rounded up to `LANES`).
    horizontal_rows: Vec<u8>,
    /// One output row of the vertical pass, planar R, G, B bytes.
    row: Vec<u8>,
    /// Threads of the horizontal pass.
    threads: usize,
    isa: Isa,
}

/// What every thread of the horizontal pass reads.
#[derive(Debug, Clone)]
struct Filters {
    horizontal: Coefficients,
    /// Source rows and columns (of the region) the kept output pixels need.
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
    /// YUV frames: the matrix's constants ([`YuvMatrix::constants`]).
    yuv: [f32; 7],
    /// Bytes of a row of the horizontal pass (3 x output width).
    row_bytes: usize,
}

/// One thread's buffers of the horizontal pass.
#[derive(Debug, Clone, Default)]
struct Scratch {
    /// YUV frames: `LANES` source rows (their needed columns) as planar R, G, B bytes.
    rgb_rows: Vec<u8>,
    /// YUV frames: the conversion's scratch.
    yuv: YuvScratch,
    /// `LANES` rows' bytes transposed: byte `j` of row `r` at `j * LANES + r`.
    transposed: Vec<u8>,
    /// The horizontal pass of `LANES` rows, transposed (see [`horizontal`]).
    filtered: Vec<u8>,
}

/// The blocks of `LANES` rows of the horizontal pass not yet taken, with where each goes.
type Blocks<'a> = std::sync::Mutex<std::iter::Enumerate<std::slice::ChunksMut<'a, u8>>>;

impl ClassifyPreprocess {
    pub fn new(geometry: ClassifyGeometry) -> Self {
        Self::with_isa(geometry, Isa::detect())
    }

    /// As [`ClassifyPreprocess::new`], compiled for `isa` (which the CPU must run; else the
    /// widest it runs): for tests and benchmarks of each.
    pub fn with_isa(geometry: ClassifyGeometry, isa: Isa) -> Self {
        let g = geometry;
        let horizontal = Coefficients::new(g.src_width, g.resized_width, g.crop_x, g.width);
        let vertical = Coefficients::new(g.src_height, g.resized_height, g.crop_y, g.height);
        let (rows, cols) = (vertical.span(), horizontal.span());
        let row_bytes = g.width as usize * 3;
        // Asked once per process: regions (`on-rois`) make a preprocessing each.
        static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        let cores =
            *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let threads = if cores >= 2 && rows.len() * cols.len() >= THREADED_FROM {
            2
        } else {
            1
        };
        let mut pre = Self {
            geometry,
            vertical,
            scratch: Vec::new(),
            horizontal_rows: vec![0; rows.len().div_ceil(LANES) * LANES * row_bytes],
            row: vec![0; row_bytes],
            filters: Filters {
                horizontal,
                rows,
                cols,
                yuv: YuvMatrix::default().constants(),
                row_bytes,
            },
            threads: 1,
            isa: if isa.available() { isa } else { Isa::detect() },
        };
        pre.set_threads(threads);
        pre
    }

    /// Runs the horizontal pass on `threads` threads (at least 1, at most 8) whatever the
    /// region's size: for tests and benchmarks (the default depends on the CPU and the size).
    pub fn set_threads(&mut self, threads: usize) {
        self.threads = threads.clamp(1, 8);
        let row_bytes = self.filters.row_bytes;
        self.scratch.resize_with(self.threads, || Scratch {
            filtered: vec![0; row_bytes * LANES],
            ..Default::default()
        });
    }

    /// The threads of the horizontal pass.
    pub fn threads(&self) -> usize {
        self.threads
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
        self.filters.yuv = yuv.constants();
        let origin = (x0 as usize, y0 as usize);
        let (isa, filters) = (self.isa, &self.filters);
        let blocks: Blocks = std::sync::Mutex::new(
            self.horizontal_rows
                .chunks_mut(LANES * filters.row_bytes.max(1))
                .enumerate(),
        );
        let work = |scratch: &mut Scratch| {
            run_blocks(isa, filters, scratch, frame, format, origin, &blocks)
        };
        match &mut self.scratch[..] {
            [mine, others @ ..] if !others.is_empty() => std::thread::scope(|scope| {
                // A helper the system cannot start leaves its blocks to the others.
                let helpers: Vec<_> = others
                    .iter_mut()
                    .filter_map(|scratch| {
                        std::thread::Builder::new()
                            .spawn_scoped(scope, move || work(scratch))
                            .ok()
                    })
                    .collect();
                let mut result = work(mine);
                for helper in helpers {
                    let theirs = helper
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                    result = result.and(theirs);
                }
                result
            })?,
            [mine, ..] => work(mine)?,
            [] => unreachable!("set_threads keeps at least one"),
        }
        match self.isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `with_isa` keeps an ISA only when the CPU runs it.
            Isa::Avx512 => unsafe { self.vertical_avx512(channels, tensor) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Isa::Avx2 => unsafe { self.vertical_avx2(channels, tensor) },
            _ => self.vertical_pass(channels, tensor),
        }
        Ok(())
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn vertical_avx2(&mut self, channels: usize, tensor: &mut [f32]) {
        self.vertical_pass(channels, tensor)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx2")]
    fn vertical_avx512(&mut self, channels: usize, tensor: &mut [f32]) {
        self.vertical_pass(channels, tensor)
    }

    /// The vertical pass into the tensor. Everything it calls is `inline(always)`, so that
    /// `vertical_avx2` and `vertical_avx512` compile all of it for their instruction sets.
    #[inline(always)]
    fn vertical_pass(&mut self, channels: usize, tensor: &mut [f32]) {
        let g = self.geometry;
        let out_w = g.width as usize;
        let row_bytes = self.filters.row_bytes;
        let plane = out_w * g.height as usize;
        let first_row = self.filters.rows.start;
        for oy in 0..g.height as usize {
            let (start, taps) = self.vertical.taps(oy);
            let at = (start - first_row) * row_bytes;
            let source = &self.horizontal_rows[at..at + taps.len() * row_bytes];
            vertical_row(source, taps, &mut self.row);
            let out = oy * out_w;
            let (r, rest) = self.row.split_at(out_w);
            let (g, b) = rest.split_at(out_w);
            if channels == 1 {
                let row = &mut tensor[out..out + out_w];
                for (((t, &r), &g), &b) in row.iter_mut().zip(r).zip(g).zip(b) {
                    *t = (0.299 * r as f32 + 0.587 * g as f32 + 0.114 * b as f32) / 255.0;
                }
            } else {
                for (channel, bytes) in tensor.chunks_exact_mut(plane).zip([r, g, b]) {
                    let row = &mut channel[out..out + out_w];
                    for (t, &v) in row.iter_mut().zip(bytes) {
                        *t = v as f32 / 255.0;
                    }
                }
            }
        }
    }
}

/// One thread's share of the horizontal pass: blocks taken from `blocks` until none is left,
/// compiled for `isa`.
fn run_blocks(
    isa: Isa,
    filters: &Filters,
    scratch: &mut Scratch,
    frame: &FrameView,
    format: PixelFormat,
    origin: (usize, usize),
    blocks: &Blocks,
) -> Result<(), ClassifyError> {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `with_isa` keeps an ISA only when the CPU runs it.
        Isa::Avx512 => unsafe { blocks_avx512(filters, scratch, frame, format, origin, blocks) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 => unsafe { blocks_avx2(filters, scratch, frame, format, origin, blocks) },
        _ => take_blocks(filters, scratch, frame, format, origin, blocks),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn blocks_avx2(
    filters: &Filters,
    scratch: &mut Scratch,
    frame: &FrameView,
    format: PixelFormat,
    origin: (usize, usize),
    blocks: &Blocks,
) -> Result<(), ClassifyError> {
    take_blocks(filters, scratch, frame, format, origin, blocks)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx2")]
fn blocks_avx512(
    filters: &Filters,
    scratch: &mut Scratch,
    frame: &FrameView,
    format: PixelFormat,
    origin: (usize, usize),
    blocks: &Blocks,
) -> Result<(), ClassifyError> {
    take_blocks(filters, scratch, frame, format, origin, blocks)
}

/// [`run_blocks`] itself. Everything it calls is `inline(always)`, so that `blocks_avx2` and
/// `blocks_avx512` compile all of it for their instruction sets.
#[inline(always)]
fn take_blocks(
    filters: &Filters,
    scratch: &mut Scratch,
    frame: &FrameView,
    format: PixelFormat,
    origin: (usize, usize),
    blocks: &Blocks,
) -> Result<(), ClassifyError> {
    loop {
        let next = blocks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .next();
        let Some((block, out)) = next else {
            return Ok(());
        };
        horizontal_block(filters, scratch, frame, format, origin, block * LANES, out)?;
    }
}

/// The horizontal pass of the needed rows `block..block + LANES` (fewer at the end) into
/// `rows_out` (`LANES` planar rows).
#[inline(always)]
fn horizontal_block(
    filters: &Filters,
    scratch: &mut Scratch,
    frame: &FrameView,
    format: PixelFormat,
    (x0, y0): (usize, usize),
    block: usize,
    rows_out: &mut [u8],
) -> Result<(), ClassifyError> {
    let (first_col, n_cols) = (filters.cols.start, filters.cols.len());
    let lanes = LANES.min(filters.rows.len() - block);
    let first_row = y0 + filters.rows.start + block;
    // Where the pass reads: (bytes, offset of each lane's first byte, bytes per pixel, byte
    // offsets of R, G and B from a pixel's first byte (one channel for grey), bytes a lane).
    let (bytes, starts, bpp, offsets, nch, span): (
        &[u8],
        [usize; LANES],
        usize,
        [usize; 3],
        usize,
        usize,
    ) = match format.layout() {
        Layout::Packed(Packed {
            bytes_per_pixel,
            offsets,
        }) => {
            let plane = frame.planes[0];
            let (from, len) = ((x0 + first_col) * bytes_per_pixel, n_cols * bytes_per_pixel);
            let starts = lane_starts(plane, frame.strides[0], first_row, lanes, from, len)
                .ok_or(ClassifyError::ShortPlane(0))?;
            (plane, starts, bytes_per_pixel, offsets, 3, len)
        }
        Layout::Grey => {
            let plane = frame.planes[0];
            let from = x0 + first_col;
            let starts = lane_starts(plane, frame.strides[0], first_row, lanes, from, n_cols)
                .ok_or(ClassifyError::ShortPlane(0))?;
            (plane, starts, 1, [0; 3], 1, n_cols)
        }
        Layout::Yuv(chroma) => {
            let rgb_bytes = n_cols * 3;
            scratch.rgb_rows.resize(rgb_bytes * LANES, 0);
            for (lane, out) in scratch
                .rgb_rows
                .chunks_exact_mut(rgb_bytes)
                .take(lanes)
                .enumerate()
            {
                let at = (first_row + lane, x0 + first_col);
                yuv_row_planar(frame, chroma, &filters.yuv, at, &mut scratch.yuv, out)
                    .map_err(ClassifyError::ShortPlane)?;
            }
            let starts = std::array::from_fn(|lane| lane.min(lanes - 1) * rgb_bytes);
            let planar = [0, n_cols, 2 * n_cols];
            (&scratch.rgb_rows[..], starts, 1, planar, 3, rgb_bytes)
        }
    };
    scratch.transposed.resize(span * LANES, 0);
    transpose_rows(bytes, &starts, span, &mut scratch.transposed);
    horizontal(
        &scratch.transposed,
        &filters.horizontal,
        first_col,
        bpp,
        &offsets[..nch],
        &mut scratch.filtered,
    );
    untranspose(&scratch.filtered, filters.row_bytes, rows_out);
    Ok(())
}

/// Bytes of the vertical pass summed at once (in registers).
const CHUNK: usize = 64;

/// PIL's vertical pass of one output row: `out[e]` from byte `e` of the rows
/// `source[k * out.len()..]`, weighted by `taps[k]`.
#[inline(always)]
fn vertical_row(source: &[u8], taps: &[i32], out: &mut [u8]) {
    let row_bytes = out.len();
    let mut chunks = out.chunks_exact_mut(CHUNK);
    for (n, chunk) in chunks.by_ref().enumerate() {
        let mut acc = [HALF; CHUNK];
        for (k, &w) in taps.iter().enumerate() {
            let s: &[u8; CHUNK] = source[k * row_bytes + n * CHUNK..][..CHUNK]
                .try_into()
                .expect("CHUNK bytes");
            for (a, &s) in acc.iter_mut().zip(s) {
                *a += s as i32 * w;
            }
        }
        for (o, &a) in chunk.iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
    let tail = chunks.into_remainder();
    let from = row_bytes - tail.len();
    for (e, o) in tail.iter_mut().enumerate() {
        let mut acc = HALF;
        for (k, &w) in taps.iter().enumerate() {
            acc += source[k * row_bytes + from + e] as i32 * w;
        }
        *o = clip8(acc);
    }
}

/// YUV frames: the row conversion's chroma terms, per chroma sample and then per pixel.
#[derive(Debug, Clone, Default)]
struct YuvScratch {
    /// R from V, G from U, G from V and B from U of the row's chroma samples.
    chroma: [Vec<f32>; 4],
    /// The same repeated for each pixel.
    pixels: [Vec<f32>; 4],
}

/// The row `y` of a YUV frame, the `out.len() / 3` pixels from column `x` on, as planar R,
/// G and B bytes (`out`: every R, then every G, then every B): the bytes of
/// [`crate::frame::rgb_row`], by the f32 operations of [`YuvMatrix::rgb`] (`k`: its
/// constants) in the same order, array by array (meant to vectorise; the main loop still
/// compiles to scalar instructions). Err: the plane too short.
#[inline(always)]
fn yuv_row_planar(
    frame: &FrameView,
    chroma: Chroma,
    k: &[f32; 7],
    (y, x): (usize, usize),
    scratch: &mut YuvScratch,
    out: &mut [u8],
) -> Result<(), usize> {
    let [
        y_offset,
        y_scale,
        c_scale,
        r_from_v,
        g_from_u,
        g_from_v,
        b_from_u,
    ] = *k;
    let n = out.len() / 3;
    if n == 0 {
        return Ok(());
    }
    let row = |plane: usize, y: usize, len: usize| -> Result<&[u8], usize> {
        let start = y * frame.strides[plane];
        frame.planes[plane].get(start..start + len).ok_or(plane)
    };
    let luma = &row(0, y, x + n)?[x..];
    // The chroma samples of columns x..x + n.
    let (c0, c1) = (x / 2, (x + n).div_ceil(2));
    let m = c1 - c0;
    let u = row(chroma.u_plane, y / 2, c1 * chroma.step)?;
    let v = row(chroma.v_plane, y / 2, c1 * chroma.step)?;
    for t in scratch.chroma.iter_mut().chain(scratch.pixels.iter_mut()) {
        t.resize(n.max(m), 0.0);
    }
    let [rv, gu, gv, bu] = &mut scratch.chroma;
    let (rv, gu, gv, bu) = (&mut rv[..m], &mut gu[..m], &mut gv[..m], &mut bu[..m]);
    let terms = |i: usize, u: u8, v: u8| {
        let (u, v) = ((u as f32 - 128.0) * c_scale, (v as f32 - 128.0) * c_scale);
        (i, r_from_v * v, g_from_u * u, g_from_v * v, b_from_u * u)
    };
    let mut store = |(i, r, g1, g2, b): (usize, f32, f32, f32, f32)| {
        (rv[i], gu[i], gv[i], bu[i]) = (r, g1, g2, b);
    };
    match (chroma.step, chroma.u_at(0), chroma.v_at(0)) {
        // NV12: U and V interleaved.
        (2, 0, 1) => {
            let uv = &u[c0 * 2..c1 * 2];
            for (i, pair) in uv.chunks_exact(2).enumerate() {
                store(terms(i, pair[0], pair[1]));
            }
        }
        // I420: a plane each.
        (1, 0, 0) => {
            let (u, v) = (&u[c0..c1], &v[c0..c1]);
            for i in 0..m {
                store(terms(i, u[i], v[i]));
            }
        }
        _ => {
            for i in 0..m {
                store(terms(i, u[chroma.u_at(c0 + i)], v[chroma.v_at(c0 + i)]));
            }
        }
    }
    // Pixel i has chroma sample (i + x % 2) / 2.
    let odd = x % 2;
    for (per_pixel, per_sample) in scratch.pixels.iter_mut().zip(&scratch.chroma) {
        let per_pixel = &mut per_pixel[..n];
        if odd == 1 {
            per_pixel[0] = per_sample[0];
        }
        let pairs = per_pixel[odd..].chunks_exact_mut(2);
        for (pair, &t) in pairs.zip(&per_sample[odd..]) {
            pair[0] = t;
            pair[1] = t;
        }
        if (n - odd) % 2 == 1 {
            per_pixel[n - 1] = per_sample[m - 1];
        }
    }
    let [rv, gu, gv, bu] = &scratch.pixels;
    let (rv, gu, gv, bu, luma) = (&rv[..n], &gu[..n], &gv[..n], &bu[..n], &luma[..n]);
    let (r_out, rest) = out.split_at_mut(n);
    let (g_out, b_out) = rest.split_at_mut(n);
    let (g_out, b_out) = (&mut g_out[..n], &mut b_out[..n]);
    for i in 0..n {
        let y = (luma[i] as f32 - y_offset) * y_scale;
        r_out[i] = round_clamped((y + rv[i]).clamp(0.0, 255.0));
        g_out[i] = round_clamped((y + gu[i] + gv[i]).clamp(0.0, 255.0));
        b_out[i] = round_clamped((y + bu[i]).clamp(0.0, 255.0));
    }
    Ok(())
}

/// [`crate::frame::round_u8`] of a finite value in [0, 255], without the saturating
/// float-to-integer conversion (the conversion loop still compiles to scalar instructions).
#[inline(always)]
fn round_clamped(v: f32) -> u8 {
    debug_assert!((0.0..=255.0).contains(&v), "{v}");
    // SAFETY: v is finite and in [0, 255] (luma and chroma terms are finite, then clamped),
    // so its integer part fits an i32.
    let whole = unsafe { v.to_int_unchecked::<i32>() };
    (whole + ((v - whole as f32) >= 0.5) as i32) as u8
}

/// The offsets in `plane` of `len` bytes from byte `from` of rows `first_row..first_row +
/// lanes`, the last row repeated for the lanes past them; None when the plane is too short.
#[inline(always)]
fn lane_starts(
    plane: &[u8],
    stride: usize,
    first_row: usize,
    lanes: usize,
    from: usize,
    len: usize,
) -> Option<[usize; LANES]> {
    let last = (first_row + lanes - 1) * stride + from;
    (plane.len() >= last + len)
        .then(|| std::array::from_fn(|lane| (first_row + lane.min(lanes - 1)) * stride + from))
}

/// `out[j * LANES + lane] = bytes[starts[lane] + j]` for `j < len` (each lane's `len` bytes are
/// in `bytes`): 16 x 16 tiles through SSE2 on x86-64.
#[inline(always)]
fn transpose_rows(bytes: &[u8], starts: &[usize; LANES], len: usize, out: &mut [u8]) {
    let out = &mut out[..len * LANES];
    let mut j = 0;
    #[cfg(target_arch = "x86_64")]
    if len >= 16 {
        while j < len {
            // The last tile overlaps the one before rather than reading past the rows.
            let at = j.min(len - 16);
            tile16(
                |lane| &bytes[starts[lane] + at..][..16],
                &mut out[at * LANES..][..256],
                |col| col * LANES,
            );
            j += 16;
        }
        return;
    }
    for (j, column) in out.chunks_exact_mut(LANES).enumerate().skip(j) {
        for (lane, b) in column.iter_mut().enumerate() {
            *b = bytes[starts[lane] + j];
        }
    }
}

/// The inverse for the filtered rows: `rows[lane * row_bytes + e] = filtered[e * LANES + lane]`.
#[inline(always)]
fn untranspose(filtered: &[u8], row_bytes: usize, rows: &mut [u8]) {
    let mut e = 0;
    #[cfg(target_arch = "x86_64")]
    if row_bytes >= 16 {
        let rows = &mut rows[..LANES * row_bytes];
        while e < row_bytes {
            let at = e.min(row_bytes - 16);
            let src = &filtered[at * LANES..][..256];
            // Tile "rows" are 16 output bytes' lanes; its columns are the lanes.
            let mut tile = [0u8; 256];
            tile16(|k| &src[k * LANES..][..16], &mut tile, |lane| lane * 16);
            for (lane, chunk) in tile.chunks_exact(16).enumerate() {
                rows[lane * row_bytes + at..][..16].copy_from_slice(chunk);
            }
            e += 16;
        }
        return;
    }
    for lane in 0..LANES {
        for e in e..row_bytes {
            rows[lane * row_bytes + e] = filtered[e * LANES + lane];
        }
    }
}

/// A 16 x 16 byte transpose: byte `c` of `src(r)` to `dst[at(c) + r]`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn tile16<'a>(src: impl Fn(usize) -> &'a [u8], dst: &mut [u8], at: impl Fn(usize) -> usize) {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is part of x86-64; every load reads a 16-byte slice, every store writes
    // 16 bytes of `dst` checked just before it.
    unsafe {
        let mut r = [_mm_setzero_si128(); 16];
        for (i, v) in r.iter_mut().enumerate() {
            let s = src(i);
            assert!(s.len() >= 16);
            *v = _mm_loadu_si128(s.as_ptr().cast());
        }
        // Bytes, then 16-, 32- and 64-bit pairs. Rows 2g and 2g + 1, columns 8h..8h + 8:
        let mut a = [[_mm_setzero_si128(); 2]; 8];
        for (g, a) in a.iter_mut().enumerate() {
            *a = [
                _mm_unpacklo_epi8(r[2 * g], r[2 * g + 1]),
                _mm_unpackhi_epi8(r[2 * g], r[2 * g + 1]),
            ];
        }
        // rows 4q..4q + 4, columns 4m..4m + 4:
        let mut b = [[_mm_setzero_si128(); 4]; 4];
        for (q, b) in b.iter_mut().enumerate() {
            for h in 0..2 {
                let (x, y) = (a[2 * q][h], a[2 * q + 1][h]);
                b[2 * h] = _mm_unpacklo_epi16(x, y);
                b[2 * h + 1] = _mm_unpackhi_epi16(x, y);
            }
        }
        // rows 8o..8o + 8, columns 2n, 2n + 1:
        let mut c = [[_mm_setzero_si128(); 8]; 2];
        for (o, c) in c.iter_mut().enumerate() {
            for m in 0..4 {
                let (x, y) = (b[2 * o][m], b[2 * o + 1][m]);
                c[2 * m] = _mm_unpacklo_epi32(x, y);
                c[2 * m + 1] = _mm_unpackhi_epi32(x, y);
            }
        }
        for n in 0..8 {
            for (half, column) in [
                _mm_unpacklo_epi64(c[0][n], c[1][n]),
                _mm_unpackhi_epi64(c[0][n], c[1][n]),
            ]
            .into_iter()
            .enumerate()
            {
                let d = &mut dst[at(2 * n + half)..][..16];
                _mm_storeu_si128(d.as_mut_ptr().cast(), column);
            }
        }
    }
}

/// PIL's horizontal pass of `LANES` transposed rows (`transposed`, from source column
/// `first_col` on, `bpp` bytes a pixel, the channels at `offsets`) into `filtered` (output
/// pixel `i`'s channel `c` of lane `r` at `(c * width + i) * LANES + r`: planar rows). One
/// channel (grey) is written to all three.
#[inline(always)]
fn horizontal(
    transposed: &[u8],
    coefficients: &Coefficients,
    first_col: usize,
    bpp: usize,
    offsets: &[usize],
    filtered: &mut [u8],
) {
    match *offsets {
        [grey] => horizontal_channels(transposed, coefficients, first_col, bpp, [grey], filtered),
        [r, g, b] => horizontal_channels(
            transposed,
            coefficients,
            first_col,
            bpp,
            [r, g, b],
            filtered,
        ),
        _ => unreachable!("one or three channels"),
    }
}

/// [`horizontal`] for `N` channels, summed side by side (one pass over each pixel's taps).
#[inline(always)]
fn horizontal_channels<const N: usize>(
    transposed: &[u8],
    coefficients: &Coefficients,
    first_col: usize,
    bpp: usize,
    offsets: [usize; N],
    filtered: &mut [u8],
) {
    let pixel_bytes = bpp * LANES;
    let width = coefficients.starts.len();
    let plane = width * LANES;
    for i in 0..width {
        let (start, taps) = coefficients.taps(i);
        let from = (start - first_col) * pixel_bytes;
        for c in 0..N {
            let out = &mut filtered[c * plane + i * LANES..][..LANES];
            let mut acc = [HALF; LANES];
            let source = &transposed[from + offsets[c] * LANES..];
            for (column, &w) in source.chunks(pixel_bytes).zip(taps) {
                let lanes: &[u8; LANES] = column[..LANES].try_into().expect("LANES bytes");
                for (a, &s) in acc.iter_mut().zip(lanes) {
                    *a += s as i32 * w;
                }
            }
            for (o, &a) in out.iter_mut().zip(&acc) {
                *o = clip8(a);
            }
        }
    }
    if N == 1 {
        filtered.copy_within(..plane, plane);
        filtered.copy_within(..plane, 2 * plane);
    }
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
    use crate::frame::rgb_row;

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

    /// PIL's resize and the centre crop written plainly (every resized pixel, horizontal
    /// pass then vertical, one sample at a time), from the region converted by `rgb_row`.
    fn reference(
        frame: &FrameView,
        format: PixelFormat,
        yuv: YuvMatrix,
        (x0, y0, w, h): (u32, u32, u32, u32),
        size: (u32, u32),
    ) -> Vec<u8> {
        let g = ClassifyGeometry::new(w, h, size.0, size.1);
        let tables = yuv.tables();
        let mut rgb = vec![0u8; (w * h * 3) as usize];
        for (y, row) in rgb.chunks_exact_mut(w as usize * 3).enumerate() {
            rgb_row(
                frame,
                format,
                Some(&tables),
                y0 as usize + y,
                x0 as usize,
                row,
            )
            .unwrap();
        }
        let taps = |in_size: u32, out_size: u32| {
            let c = Coefficients::new(in_size, out_size, 0, out_size);
            (0..out_size as usize)
                .map(|i| {
                    let (s, t) = c.taps(i);
                    (s, t.to_vec())
                })
                .collect::<Vec<_>>()
        };
        let (tx, ty) = (taps(w, g.resized_width), taps(h, g.resized_height));
        let rw = g.resized_width as usize;
        let mut horizontal = vec![0u8; rw * h as usize * 3];
        for y in 0..h as usize {
            for (x, (s, t)) in tx.iter().enumerate() {
                for c in 0..3 {
                    let mut acc = HALF;
                    for (k, &wk) in t.iter().enumerate() {
                        acc += rgb[(y * w as usize + s + k) * 3 + c] as i32 * wk;
                    }
                    horizontal[(y * rw + x) * 3 + c] = clip8(acc);
                }
            }
        }
        let mut out = Vec::new();
        for c in 0..3 {
            for y in 0..g.height as usize {
                let (s, t) = &ty[y + g.crop_y as usize];
                for x in 0..g.width as usize {
                    let mut acc = HALF;
                    for (k, &wk) in t.iter().enumerate() {
                        acc +=
                            horizontal[((s + k) * rw + x + g.crop_x as usize) * 3 + c] as i32 * wk;
                    }
                    out.push(clip8(acc));
                }
            }
        }
        out
    }

    /// Every instruction set this CPU runs gives the plain reference's bytes, for every
    /// format, regions at odd corners, regions narrower than a 16-byte tile, shrinks with
    /// more than 16 taps and enlargements.
    #[test]
    fn every_instruction_set_matches_the_plain_reference() {
        let (fw, fh) = (611u32, 433u32);
        let bytes = |len: usize, seed: u32| -> Vec<u8> {
            (0..len as u32)
                .map(|i| {
                    ((i.wrapping_mul(2_654_435_761).wrapping_add(seed) ^ (i >> 5)) >> 11) as u8
                })
                .collect()
        };
        let (cw, ch) = (fw.div_ceil(2) as usize, fh.div_ceil(2) as usize);
        let (w, h) = (fw as usize, fh as usize);
        let formats: Vec<(PixelFormat, Vec<Vec<u8>>, [usize; 3])> = vec![
            (
                PixelFormat::RGB,
                vec![bytes((w * 3 + 5) * h, 1)],
                [w * 3 + 5, 0, 0],
            ),
            (PixelFormat::BGRA, vec![bytes(w * 4 * h, 2)], [w * 4, 0, 0]),
            (PixelFormat::Gray8, vec![bytes(w * h, 3)], [w, 0, 0]),
            (
                PixelFormat::Nv12,
                vec![bytes(w * h, 4), bytes(cw * 2 * ch, 5)],
                [w, cw * 2, 0],
            ),
            (
                PixelFormat::I420,
                vec![bytes(w * h, 6), bytes(cw * ch, 7), bytes(cw * ch, 8)],
                [w, cw, cw],
            ),
        ];
        let regions = [
            (0, 0, fw, fh),
            (3, 5, 301, 200),
            (600, 420, 11, 13),
            (17, 1, 40, 400),
        ];
        let isas = [Isa::Baseline, Isa::Avx2, Isa::Avx512];
        let yuv = YuvMatrix::bt709();
        for (format, planes, strides) in &formats {
            let view = FrameView {
                width: fw,
                height: fh,
                planes: [
                    &planes[0],
                    planes.get(1).map_or(&[][..], |p| &p[..]),
                    planes.get(2).map_or(&[][..], |p| &p[..]),
                ],
                strides: *strides,
            };
            for &region in &regions {
                for size in [(24, 24), (48, 48), (64, 32)] {
                    let want = reference(&view, *format, yuv, region, size);
                    let g = ClassifyGeometry::new(region.2, region.3, size.0, size.1);
                    for isa in isas.into_iter().filter(|isa| isa.available()) {
                        let mut pre = ClassifyPreprocess::with_isa(g, isa);
                        assert_eq!(pre.isa, isa);
                        for threads in [1, 2, 3] {
                            pre.set_threads(threads);
                            let mut tensor = vec![0.0; want.len()];
                            pre.run(&view, *format, yuv, (region.0, region.1), 3, &mut tensor)
                                .unwrap();
                            let got: Vec<u8> =
                                tensor.iter().map(|v| (v * 255.0).round() as u8).collect();
                            assert!(
                                got == want,
                                "{format:?} {region:?} {size:?} {isa:?} {threads} threads: differs from the reference"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn round_clamped_is_round_u8() {
        let mut v = 0.0f32;
        while v <= 255.0 {
            for x in [
                v,
                v.next_down().max(0.0),
                v.next_up().min(255.0),
                v + 0.5,
                (v + 0.5).next_down(),
                (v + 0.5).next_up(),
            ] {
                let x = x.min(255.0);
                assert_eq!(round_clamped(x), crate::frame::round_u8(x), "{x}");
            }
            v += 1.0 / 64.0;
        }
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
