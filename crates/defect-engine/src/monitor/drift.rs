// SPDX-License-Identifier: MIT OR Apache-2.0
//! Drift: a rolling window of frames compared with a baseline profile of known-good
//! operation, free of GStreamer.
//!
//! Every frame gives per-frame values: image statistics computed on a subsampled view of the
//! frame ([`image_stats`]: mean brightness, contrast as the standard deviation of the luma,
//! focus as the variance of the Laplacian, colour balance as the red / green and blue / green
//! ratios of the mean colour), the number of detections of each class, an indicator per
//! verdict and the anomaly score; and the confidence of each detection.
//!
//! A [`Baseline`] holds, for every feature, a histogram of its values over known-good frames,
//! binned at the baseline's deciles plus two empty outer bins (below its minimum, above its
//! maximum). A window is binned the same way and compared with the **population stability
//! index** `PSI = Σ (q − p) · ln(q / p)` over the bins (both sides smoothed by half a count
//! per bin). PSI rather than a two-sample test: consecutive frames are strongly correlated,
//! so a test's p-value (which assumes independent samples) would call every window of a
//! moving conveyor significant; PSI is an effect size, the same for counts, rates and
//! continuous values, computed from a compact stored profile, with a threshold that is
//! calibrated once on clean data and does not shrink with the window's length.
//!
//! An [`Episode`] starts when a feature moved in `onset-windows` consecutive windows, and
//! ends when none did in `recovery-windows` consecutive windows (while an episode is on, a
//! feature counts as moved down to `threshold · recovery-fraction`): one message at the
//! start, one at the end, not one per window.

use std::collections::VecDeque;
use std::path::Path;

use serde::{Deserialize, Serialize};

// The frame view of the pure preprocessing: the one place drift names its module.
use crate::frame::{FrameView, PixelFormat, YuvMatrix};
use crate::meta::{DriftFeature, DriftReport, Verdict};
use crate::policy::DriftConfig;

/// Samples the image statistics aim at (about 20,000: 175 x 98 on a 1080p frame).
pub const TARGET_SAMPLES: u64 = 20_000;

/// The baseline file format's version.
pub const BASELINE_VERSION: u32 = 1;

/// Deciles: the inner bin edges of a feature's histogram.
const QUANTILES: usize = 10;

/// Half a count per bin on both sides of the PSI, so that an empty bin is finite.
const SMOOTHING: f64 = 0.5;

// ---------------------------------------------------------------------------------------------
// Image statistics

/// Statistics of one frame's luma (and colour), on a subsampled grid.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ImageStats {
    /// Mean luma, 0 to 255.
    pub brightness: f32,
    /// Standard deviation of the luma.
    pub contrast: f32,
    /// Variance of the 4-neighbour Laplacian of the luma (taken at full resolution around
    /// each sampled pixel): falls when the image blurs.
    pub focus: f32,
    /// Mean red / mean green and mean blue / mean green; None for grey frames.
    pub colour: Option<[f32; 2]>,
    /// Pixels sampled.
    pub samples: u32,
}

/// The grid step that samples about [`TARGET_SAMPLES`] pixels of a frame.
pub fn sample_step(width: u32, height: u32) -> u32 {
    let pixels = width as f64 * height as f64;
    ((pixels / TARGET_SAMPLES as f64).sqrt().ceil() as u32).max(1)
}

fn plane_needed(stride: usize, row_bytes: usize, rows: usize) -> usize {
    if rows == 0 {
        0
    } else {
        stride * (rows - 1) + row_bytes
    }
}

/// Checks that the planes hold the frame (so that sampling never reads past them).
fn check_planes(frame: &FrameView, format: PixelFormat) -> Result<(), String> {
    let (w, h) = (frame.width as usize, frame.height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let needs: [(usize, usize); 3] = match format {
        PixelFormat::Packed {
            bytes_per_pixel, ..
        } => [(w * bytes_per_pixel as usize, h), (0, 0), (0, 0)],
        PixelFormat::Gray8 => [(w, h), (0, 0), (0, 0)],
        PixelFormat::Nv12 => [(w, h), (cw * 2, ch), (0, 0)],
        PixelFormat::I420 => [(w, h), (cw, ch), (cw, ch)],
    };
    for (plane, &(row_bytes, rows)) in needs.iter().enumerate() {
        if rows == 0 {
            continue;
        }
        let stride = frame.strides[plane];
        let needed = plane_needed(stride, row_bytes, rows);
        if stride < row_bytes || frame.planes[plane].len() < needed {
            return Err(format!(
                "plane {plane} holds {} bytes at stride {stride}, fewer than the {needed} of a {w}x{h} frame",
                frame.planes[plane].len()
            ));
        }
    }
    if let PixelFormat::Packed {
        bytes_per_pixel,
        red,
        green,
        blue,
    } = format
        && (red.max(green).max(blue) >= bytes_per_pixel)
    {
        return Err(format!(
            "a colour byte offset lies outside the {bytes_per_pixel}-byte pixel"
        ));
    }
    Ok(())
}

/// Sums over the sampled grid: luma and its Laplacian.
#[derive(Default)]
struct Sums {
    n: u64,
    luma: i64,
    luma2: i64,
    lap: i64,
    lap2: i64,
}

/// Positions `offset, offset + step, ...` below `len`.
fn grid(len: usize, step: usize) -> impl Iterator<Item = usize> + Clone {
    ((step / 2).min(len.saturating_sub(1))..len).step_by(step)
}

/// Luma sums over the grid; `luma(row, x)` reads pixel `x` of a plane row (a slice starting at
/// the row), so that each row's offset is computed once.
#[inline(always)]
fn sample_luma<'a>(
    w: usize,
    h: usize,
    step: usize,
    row: impl Fn(usize) -> &'a [u8],
    luma: impl Fn(&[u8], usize) -> i32,
) -> Sums {
    let mut s = Sums::default();
    for y in grid(h, step) {
        let (up, cur, down) = (row(y.saturating_sub(1)), row(y), row((y + 1).min(h - 1)));
        for x in grid(w, step) {
            let (left, right) = (x.saturating_sub(1), (x + 1).min(w - 1));
            let c = luma(cur, x);
            let lap = 4 * c - luma(cur, left) - luma(cur, right) - luma(up, x) - luma(down, x);
            s.n += 1;
            s.luma += c as i64;
            s.luma2 += (c * c) as i64;
            s.lap += lap as i64;
            s.lap2 += (lap * lap) as i64;
        }
    }
    s
}

/// Means of three byte channels over the sampled grid.
fn sample_means(
    w: usize,
    h: usize,
    step: usize,
    channels: impl Fn(usize, usize) -> [u8; 3],
) -> [f32; 3] {
    let mut sums = [0u64; 3];
    let mut n = 0u64;
    for y in grid(h, step) {
        for x in grid(w, step) {
            let c = channels(x, y);
            for (sum, v) in sums.iter_mut().zip(c) {
                *sum += v as u64;
            }
            n += 1;
        }
    }
    sums.map(|s| (s as f64 / n.max(1) as f64) as f32)
}

fn balance([r, g, b]: [f32; 3]) -> [f32; 2] {
    // +1: a black frame has no colour, and no division by zero.
    [(r + 1.0) / (g + 1.0), (b + 1.0) / (g + 1.0)]
}

/// The frame's statistics on the grid of every `step`-th pixel in both directions ([`sample_step`]
/// for about [`TARGET_SAMPLES`] samples). `yuv` converts the mean colour of YUV frames.
pub fn image_stats(
    frame: &FrameView,
    format: PixelFormat,
    yuv: YuvMatrix,
    step: u32,
) -> Result<ImageStats, String> {
    let (w, h) = (frame.width as usize, frame.height as usize);
    if w == 0 || h == 0 {
        return Err(format!("the frame is {w}x{h}"));
    }
    check_planes(frame, format)?;
    let step = step.max(1) as usize;
    let p0 = frame.planes[0];
    let s0 = frame.strides[0];
    let (sums, colour) = match format {
        PixelFormat::Packed {
            bytes_per_pixel,
            red,
            green,
            blue,
        } => {
            let (bpp, r, g, b) = (
                bytes_per_pixel as usize,
                red as usize,
                green as usize,
                blue as usize,
            );
            let rgb = |x: usize, y: usize| {
                let i = y * s0 + x * bpp;
                [p0[i + r], p0[i + g], p0[i + b]]
            };
            // BT.601 luma in fixed point (77 + 150 + 29 = 256).
            let sums = sample_luma(
                w,
                h,
                step,
                |y| &p0[y * s0..],
                |row, x| {
                    let px = &row[x * bpp..x * bpp + bpp];
                    (77 * px[r] as i32 + 150 * px[g] as i32 + 29 * px[b] as i32 + 128) >> 8
                },
            );
            (sums, Some(balance(sample_means(w, h, step, rgb))))
        }
        PixelFormat::Gray8 | PixelFormat::Nv12 | PixelFormat::I420 => {
            let sums = sample_luma(w, h, step, |y| &p0[y * s0..], |row, x| row[x] as i32);
            let colour = match format {
                PixelFormat::Nv12 => {
                    let (p1, s1) = (frame.planes[1], frame.strides[1]);
                    let yuv_means = sample_means(w, h, step, |x, y| {
                        let i = (y / 2) * s1 + (x / 2) * 2;
                        [p0[y * s0 + x], p1[i], p1[i + 1]]
                    });
                    Some(yuv_means)
                }
                PixelFormat::I420 => {
                    let (p1, s1, p2, s2) = (
                        frame.planes[1],
                        frame.strides[1],
                        frame.planes[2],
                        frame.strides[2],
                    );
                    Some(sample_means(w, h, step, |x, y| {
                        [
                            p0[y * s0 + x],
                            p1[(y / 2) * s1 + x / 2],
                            p2[(y / 2) * s2 + x / 2],
                        ]
                    }))
                }
                _ => None,
            };
            // The mean colour is the conversion of the mean Y, U, V (the matrix is linear).
            (sums, colour.map(|[y, u, v]| balance(yuv.rgb(y, u, v))))
        }
    };
    let n = sums.n.max(1) as f64;
    let mean = sums.luma as f64 / n;
    let variance = (sums.luma2 as f64 / n - mean * mean).max(0.0);
    let lap_mean = sums.lap as f64 / n;
    let focus = (sums.lap2 as f64 / n - lap_mean * lap_mean).max(0.0);
    Ok(ImageStats {
        brightness: mean as f32,
        contrast: variance.sqrt() as f32,
        focus: focus as f32,
        colour,
        samples: sums.n as u32,
    })
}

// ---------------------------------------------------------------------------------------------
// Features

/// One frame, as drift sees it.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// The frame's `VerdictMeta::frame`.
    pub frame: u64,
    pub image: Option<ImageStats>,
    /// The model ran on this frame: only then do its detections count.
    pub inspected: bool,
    /// Class index (into the monitor's classes) and confidence of every detection the
    /// policy did not ignore (outside the region, masked, too small).
    pub detections: Vec<(usize, f32)>,
    pub verdict: Verdict,
    pub anomaly_score: Option<f32>,
}

const BRIGHTNESS: usize = 0;
const CONTRAST: usize = 1;
const FOCUS: usize = 2;
const RED: usize = 3;
const BLUE: usize = 4;
const ANOMALY: usize = 5;
const VERDICTS: usize = 6;
const DETECTIONS: usize = VERDICTS + Verdict::ALL.len();

/// The per-frame features of a list of classes, by index: image statistics, anomaly score,
/// verdicts, then detections per class; the confidences per class follow them.
#[derive(Debug, Clone, PartialEq)]
struct Layout {
    classes: Vec<String>,
}

impl Layout {
    fn per_frame(&self) -> usize {
        DETECTIONS + self.classes.len()
    }

    fn len(&self) -> usize {
        self.per_frame() + self.classes.len()
    }

    fn name(&self, index: usize) -> String {
        match index {
            BRIGHTNESS => "brightness".into(),
            CONTRAST => "contrast".into(),
            FOCUS => "focus".into(),
            RED => "colour-balance:red".into(),
            BLUE => "colour-balance:blue".into(),
            ANOMALY => crate::meta::fields::ANOMALY_SCORE.into(),
            i if i < DETECTIONS => format!("verdict:{}", Verdict::ALL[i - VERDICTS]),
            i if i < self.per_frame() => format!("detections:{}", self.classes[i - DETECTIONS]),
            i => format!("confidence:{}", self.classes[i - self.per_frame()]),
        }
    }

    fn index(&self, name: &str) -> Option<usize> {
        (0..self.len()).find(|&i| self.name(i) == name)
    }

    /// A frame's values (NaN where the frame has none) and its confidences.
    fn record(&self, obs: &Observation) -> Record {
        let mut values = vec![f32::NAN; self.per_frame()];
        if let Some(image) = &obs.image {
            values[BRIGHTNESS] = image.brightness;
            values[CONTRAST] = image.contrast;
            values[FOCUS] = image.focus;
            if let Some([red, blue]) = image.colour {
                values[RED] = red;
                values[BLUE] = blue;
            }
        }
        if let Some(score) = obs.anomaly_score.filter(|s| s.is_finite()) {
            values[ANOMALY] = score;
        }
        for (i, v) in Verdict::ALL.iter().enumerate() {
            values[VERDICTS + i] = (obs.verdict == *v) as u8 as f32;
        }
        let mut confidences = Vec::new();
        if obs.inspected {
            for count in &mut values[DETECTIONS..] {
                *count = 0.0;
            }
            for &(class, confidence) in &obs.detections {
                if class < self.classes.len() {
                    values[DETECTIONS + class] += 1.0;
                    if confidence.is_finite() {
                        confidences.push((class as u32, confidence));
                    }
                }
            }
        }
        Record {
            values,
            confidences,
        }
    }
}

/// A frame's feature values.
#[derive(Debug, Clone)]
struct Record {
    values: Vec<f32>,
    confidences: Vec<(u32, f32)>,
}

/// The values of feature `index` in some frames.
fn values_of<'a>(
    layout: &'a Layout,
    records: impl Iterator<Item = &'a Record> + 'a,
    index: usize,
) -> Box<dyn Iterator<Item = f64> + 'a> {
    let per_frame = layout.per_frame();
    if index < per_frame {
        Box::new(
            records
                .map(move |r| r.values[index])
                .filter(|v| !v.is_nan())
                .map(f64::from),
        )
    } else {
        let class = (index - per_frame) as u32;
        Box::new(records.flat_map(move |r| {
            r.confidences
                .iter()
                .filter(move |(c, _)| *c == class)
                .map(|&(_, v)| v as f64)
        }))
    }
}

// ---------------------------------------------------------------------------------------------
// Baseline

/// One feature's histogram over the baseline's frames.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureProfile {
    /// `brightness`, `detections:scratches`, `verdict:FAIL` ...
    pub name: String,
    /// Upper bin edges, increasing: bin `i` holds the values in `(edges[i-1], edges[i]]`, and
    /// one more bin the values above the last edge.
    pub edges: Vec<f64>,
    /// Baseline values per bin (`edges.len() + 1` bins).
    pub counts: Vec<u64>,
    /// Values in all: frames, or detections for a confidence.
    pub samples: u64,
    pub mean: f64,
}

impl FeatureProfile {
    /// The histogram of `values`: edges just below the minimum, at the deciles and at the
    /// maximum, so that values outside the baseline's range land in empty bins.
    fn learn(name: String, values: &[f64]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_unstable_by(f64::total_cmp);
        let (min, max) = (sorted[0], sorted[sorted.len() - 1]);
        let mut edges = vec![min - 1e-6 * min.abs().max(1.0)];
        for k in 1..QUANTILES {
            edges.push(sorted[(k * sorted.len() / QUANTILES).min(sorted.len() - 1)]);
        }
        edges.push(max);
        edges.dedup_by(|a, b| *a <= *b);
        let mut profile = Self {
            name,
            counts: vec![0; edges.len() + 1],
            edges,
            samples: values.len() as u64,
            mean: values.iter().sum::<f64>() / values.len() as f64,
        };
        for &v in values {
            let bin = profile.bin(v);
            profile.counts[bin] += 1;
        }
        Some(profile)
    }

    fn bin(&self, value: f64) -> usize {
        self.edges.partition_point(|&e| e < value)
    }

    fn check(&self) -> Result<(), String> {
        if self.counts.len() != self.edges.len() + 1 {
            return Err(format!(
                "feature {}: {} counts for {} edges (one more count than edges expected)",
                self.name,
                self.counts.len(),
                self.edges.len()
            ));
        }
        if self.edges.iter().any(|e| !e.is_finite()) || self.edges.windows(2).any(|w| w[0] >= w[1])
        {
            return Err(format!(
                "feature {}: the edges must be finite and increasing",
                self.name
            ));
        }
        if self.counts.iter().sum::<u64>() != self.samples || !self.mean.is_finite() {
            return Err(format!(
                "feature {}: the counts do not add up to its {} samples, or its mean is not finite",
                self.name, self.samples
            ));
        }
        Ok(())
    }
}

/// The population stability index between two histograms over the same bins, each smoothed
/// by half a count per bin.
pub fn psi(baseline: &[u64], window: &[u64]) -> f64 {
    let bins = baseline.len().min(window.len()) as f64;
    let total = |h: &[u64]| h.iter().sum::<u64>() as f64 + SMOOTHING * bins;
    let (nb, nw) = (total(baseline), total(window));
    baseline
        .iter()
        .zip(window)
        .map(|(&b, &w)| {
            let p = (b as f64 + SMOOTHING) / nb;
            let q = (w as f64 + SMOOTHING) / nw;
            (q - p) * (q / p).ln()
        })
        .sum()
}

/// A profile of known-good operation: every feature's histogram.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    pub version: u32,
    /// Frames it was learnt from, and how many of them the model inspected.
    pub frames: u64,
    pub inspected_frames: u64,
    /// The model's classes.
    pub classes: Vec<String>,
    pub features: Vec<FeatureProfile>,
}

impl Baseline {
    fn learn(layout: &Layout, records: &[Record]) -> Self {
        let features = (0..layout.len())
            .filter_map(|i| {
                let values: Vec<f64> = values_of(layout, records.iter(), i).collect();
                FeatureProfile::learn(layout.name(i), &values)
            })
            .collect();
        Self {
            version: BASELINE_VERSION,
            frames: records.len() as u64,
            inspected_frames: records
                .iter()
                .filter(|r| !r.values[DETECTIONS..].iter().any(|v| v.is_nan()))
                .count() as u64,
            classes: layout.classes.clone(),
            features,
        }
    }

    pub fn feature(&self, name: &str) -> Option<&FeatureProfile> {
        self.features.iter().find(|f| f.name == name)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a baseline serialises")
    }

    pub fn from_json(text: &str) -> Result<Self, String> {
        let baseline: Self = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if baseline.version != BASELINE_VERSION {
            return Err(format!(
                "baseline version {} is not the supported {BASELINE_VERSION}",
                baseline.version
            ));
        }
        for feature in &baseline.features {
            feature.check()?;
        }
        Ok(baseline)
    }

    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the drift baseline {}: {e}", path.display()))?;
        Self::from_json(&text).map_err(|e| format!("drift baseline {}: {e}", path.display()))
    }

    /// Writes the baseline (through a temporary file, renamed: never a half-written one).
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let tmp = path.with_extension("json.part");
        std::fs::write(&tmp, self.to_json() + "\n")
            .and_then(|_| std::fs::rename(&tmp, path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                format!("cannot write the drift baseline {}: {e}", path.display())
            })
    }
}

// ---------------------------------------------------------------------------------------------
// Episodes

/// The hysteresis of drift episodes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Episode {
    pub active: bool,
    /// The current (or last) episode's number; 0 before the first.
    pub number: u64,
    /// The frame the current (or last) episode started at.
    pub started: Option<u64>,
    moved_streak: u32,
    quiet_streak: u32,
}

/// What a window did to the episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Onset,
    Recovery,
}

impl Episode {
    /// One window's outcome: whether a feature moved.
    pub fn update(&mut self, moved: bool, frame: u64, config: &DriftConfig) -> Option<Change> {
        if moved {
            self.moved_streak += 1;
            self.quiet_streak = 0;
        } else {
            self.quiet_streak += 1;
            self.moved_streak = 0;
        }
        if !self.active && self.moved_streak >= config.onset_windows {
            self.active = true;
            self.number += 1;
            self.started = Some(frame);
            return Some(Change::Onset);
        }
        if self.active && self.quiet_streak >= config.recovery_windows {
            self.active = false;
            return Some(Change::Recovery);
        }
        None
    }
}

// ---------------------------------------------------------------------------------------------
// The monitor

/// A baseline feature compared in each window.
#[derive(Debug, Clone)]
struct Compared {
    index: usize,
    profile: FeatureProfile,
    threshold: f64,
}

enum Mode {
    Learning(Vec<Record>),
    Watching {
        features: Vec<Compared>,
        window: VecDeque<Record>,
    },
}

/// What one frame did.
#[derive(Debug, Clone, Default)]
pub struct Step {
    /// The baseline was learnt at this frame.
    pub learnt: bool,
    /// A window was compared at this frame: the report (the downstream event).
    pub report: Option<DriftReport>,
    /// An episode started or ended at this window (the element message).
    pub change: Option<Change>,
}

/// Rolling windows compared with a baseline (learnt from the first frames when none is given).
pub struct DriftMonitor {
    config: DriftConfig,
    layout: Layout,
    mode: Mode,
    baseline: Option<Baseline>,
    episode: Episode,
    /// Frames since the baseline was in force.
    watched: u64,
    /// Baseline features not compared (a class the model does not have, a disabled family).
    pub ignored: Vec<String>,
}

impl DriftMonitor {
    /// A monitor for a model with `classes`, comparing with `baseline`, else learning one from
    /// the first `config.learn_frames` frames.
    pub fn new(config: DriftConfig, classes: Vec<String>, baseline: Option<Baseline>) -> Self {
        let mut monitor = Self {
            config,
            layout: Layout { classes },
            mode: Mode::Learning(Vec::new()),
            baseline: None,
            episode: Episode::default(),
            watched: 0,
            ignored: Vec::new(),
        };
        if let Some(baseline) = baseline {
            monitor.watch(baseline);
        }
        monitor
    }

    pub fn config(&self) -> &DriftConfig {
        &self.config
    }

    pub fn baseline(&self) -> Option<&Baseline> {
        self.baseline.as_ref()
    }

    pub fn learning(&self) -> bool {
        matches!(self.mode, Mode::Learning(_))
    }

    pub fn episode(&self) -> &Episode {
        &self.episode
    }

    fn watch(&mut self, baseline: Baseline) {
        let mut features = Vec::new();
        self.ignored.clear();
        for profile in &baseline.features {
            match self.layout.index(&profile.name) {
                Some(index) if self.config.feature_enabled(&profile.name) => {
                    features.push(Compared {
                        index,
                        threshold: self.config.threshold_of(&profile.name),
                        profile: profile.clone(),
                    })
                }
                _ => self.ignored.push(profile.name.clone()),
            }
        }
        self.mode = Mode::Watching {
            features,
            window: VecDeque::with_capacity(self.config.window as usize + 1),
        };
        self.baseline = Some(baseline);
    }

    /// The baseline learnt from the frames seen so far (at the end of a stream shorter than
    /// `learn-frames`); None when not learning or no frame was seen.
    pub fn learnt_so_far(&self) -> Option<Baseline> {
        match &self.mode {
            Mode::Learning(records) if !records.is_empty() => {
                Some(Baseline::learn(&self.layout, records))
            }
            _ => None,
        }
    }

    /// Starts the rolling window over (a seek: the frames after it are another position of the
    /// stream, not to be mixed with those before it); the next window is compared once
    /// `window` new frames are in. The baseline being learnt and the episode are kept.
    pub fn restart_window(&mut self) {
        if let Mode::Watching { window, .. } = &mut self.mode {
            window.clear();
            self.watched = 0;
        }
    }

    /// Adds a frame; compares a window every `step` frames once `window` frames are in.
    pub fn observe(&mut self, obs: &Observation) -> Step {
        let record = self.layout.record(obs);
        let mut step = Step::default();
        match &mut self.mode {
            Mode::Learning(records) => {
                records.push(record);
                if records.len() >= self.config.learn_frames as usize {
                    let baseline = Baseline::learn(&self.layout, records);
                    self.watch(baseline);
                    step.learnt = true;
                }
            }
            Mode::Watching { features, window } => {
                window.push_back(record);
                if window.len() > self.config.window as usize {
                    window.pop_front();
                }
                self.watched += 1;
                let full = window.len() == self.config.window as usize;
                let due = full
                    && (self.watched - self.config.window as u64)
                        .is_multiple_of(self.config.step as u64);
                if due {
                    let threshold_scale = if self.episode.active {
                        self.config.recovery_fraction
                    } else {
                        1.0
                    };
                    let compared = compare(
                        &self.layout,
                        features,
                        window,
                        threshold_scale,
                        self.config.min_samples as u64,
                    );
                    let moved = compared.iter().any(|f| f.moved);
                    step.change = self.episode.update(moved, obs.frame, &self.config);
                    step.report = Some(DriftReport {
                        active: self.episode.active,
                        episode: self.episode.number,
                        frame: obs.frame,
                        window_frames: window.len() as u64,
                        features: compared,
                    });
                }
            }
        }
        step
    }
}

/// Every feature with enough values in the window, compared with its baseline.
fn compare(
    layout: &Layout,
    features: &[Compared],
    window: &VecDeque<Record>,
    threshold_scale: f64,
    min_samples: u64,
) -> Vec<DriftFeature> {
    let mut out = Vec::with_capacity(features.len());
    let mut counts = Vec::new();
    for feature in features {
        let profile = &feature.profile;
        counts.clear();
        counts.resize(profile.counts.len(), 0u64);
        let (mut n, mut sum) = (0u64, 0.0);
        for v in values_of(layout, window.iter(), feature.index) {
            counts[profile.bin(v)] += 1;
            n += 1;
            sum += v;
        }
        if n < min_samples || profile.samples < min_samples {
            continue;
        }
        let score = psi(&profile.counts, &counts);
        let threshold = feature.threshold * threshold_scale;
        out.push(DriftFeature {
            name: profile.name.clone(),
            score,
            threshold,
            moved: score >= threshold,
            baseline: profile.mean,
            current: sum / n as f64,
        });
    }
    out
}

/// The features that moved, worst first, for a warning: `brightness (PSI 6.20 >= 1.00: 121.5
/// -> 66.8, -45 %)`.
pub fn describe_moved(report: &DriftReport) -> String {
    let mut moved: Vec<&DriftFeature> = report.moved().collect();
    moved.sort_by(|a, b| (b.score / b.threshold).total_cmp(&(a.score / a.threshold)));
    moved
        .iter()
        .map(|f| {
            let change = if f.baseline.abs() > 1e-9 {
                format!(", {:+.0} %", (f.current / f.baseline - 1.0) * 100.0)
            } else {
                String::new()
            };
            format!(
                "{} (PSI {:.2} >= {:.2}: {} -> {}{change})",
                f.name,
                f.score,
                f.threshold,
                short(f.baseline),
                short(f.current)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn short(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A grey frame: a horizontal ramp (plus a pattern when `sharp`) times `gain`.
    fn gray_frame(w: u32, h: u32, gain: f32, sharp: bool) -> Vec<u8> {
        (0..h)
            .flat_map(|y| {
                (0..w).map(move |x| {
                    let base = 60.0 + 120.0 * x as f32 / w as f32;
                    let texture = if sharp && (x / 2 + y / 2) % 2 == 0 {
                        40.0
                    } else {
                        0.0
                    };
                    ((base + texture) * gain).clamp(0.0, 255.0) as u8
                })
            })
            .collect()
    }

    fn stats_gray(data: &[u8], w: u32, h: u32, step: u32) -> ImageStats {
        let view = FrameView {
            width: w,
            height: h,
            planes: [data, &[], &[]],
            strides: [w as usize, 0, 0],
        };
        image_stats(&view, PixelFormat::Gray8, YuvMatrix::bt601(), step).unwrap()
    }

    #[test]
    fn image_statistics_follow_brightness_and_focus() {
        let (w, h) = (320, 240);
        let sharp = gray_frame(w, h, 1.0, true);
        let dim = gray_frame(w, h, 0.55, true);
        let blurred = gray_frame(w, h, 1.0, false);
        let s = stats_gray(&sharp, w, h, 3);
        let d = stats_gray(&dim, w, h, 3);
        let b = stats_gray(&blurred, w, h, 3);
        assert!(
            (d.brightness / s.brightness - 0.55).abs() < 0.02,
            "{s:?} {d:?}"
        );
        assert!(d.contrast < s.contrast * 0.6);
        assert!(b.focus < s.focus * 0.01, "{s:?} {b:?}");
        assert_eq!(s.colour, None);
        // A full-resolution reference: the mean of every pixel.
        let mean = sharp.iter().map(|&v| v as f64).sum::<f64>() / sharp.len() as f64;
        assert!(
            (s.brightness as f64 - mean).abs() < 2.0,
            "{} {mean}",
            s.brightness
        );
    }

    #[test]
    fn colour_balance_is_the_same_for_rgb_and_i420() {
        let (w, h) = (64u32, 48u32);
        // An orange frame: R 200, G 120, B 40.
        let rgb: Vec<u8> = (0..w * h).flat_map(|_| [200u8, 120, 40]).collect();
        let view = FrameView {
            width: w,
            height: h,
            planes: [&rgb, &[], &[]],
            strides: [w as usize * 3, 0, 0],
        };
        let s = image_stats(&view, PixelFormat::RGB, YuvMatrix::bt601(), 2).unwrap();
        let [r, b] = s.colour.unwrap();
        assert!((r - 201.0 / 121.0).abs() < 1e-3 && (b - 41.0 / 121.0).abs() < 1e-3);
        // The same colour in full-range BT.601 YUV.
        let (y, u, v): (f32, f32, f32) = (
            0.299 * 200.0 + 0.587 * 120.0 + 0.114 * 40.0,
            128.0 + (40.0 - (0.299 * 200.0 + 0.587 * 120.0 + 0.114 * 40.0)) * 0.564,
            128.0 + (200.0 - (0.299 * 200.0 + 0.587 * 120.0 + 0.114 * 40.0)) * 0.713,
        );
        let (cw, ch) = (w as usize / 2, h as usize / 2);
        let luma = vec![y.round() as u8; (w * h) as usize];
        let us = vec![u.round() as u8; cw * ch];
        let vs = vec![v.round() as u8; cw * ch];
        let view = FrameView {
            width: w,
            height: h,
            planes: [&luma, &us, &vs],
            strides: [w as usize, cw, cw],
        };
        let full = YuvMatrix::new(0.299, 0.114, true);
        let t = image_stats(&view, PixelFormat::I420, full, 2).unwrap();
        let [r2, b2] = t.colour.unwrap();
        assert!(
            (r - r2).abs() < 0.03 && (b - b2).abs() < 0.03,
            "{r} {r2} {b} {b2}"
        );
        assert!((t.brightness - s.brightness).abs() < 1.0);
    }

    #[test]
    fn a_short_plane_is_an_error_not_a_panic() {
        let data = vec![0u8; 100];
        let view = FrameView {
            width: 64,
            height: 48,
            planes: [&data, &[], &[]],
            strides: [64, 0, 0],
        };
        let error = image_stats(&view, PixelFormat::Gray8, YuvMatrix::bt601(), 4).unwrap_err();
        assert!(error.contains("plane 0"), "{error}");
        let one = [7u8];
        let view = FrameView {
            width: 1,
            height: 1,
            planes: [&one, &[], &[]],
            strides: [1, 0, 0],
        };
        let s = image_stats(&view, PixelFormat::Gray8, YuvMatrix::bt601(), 4).unwrap();
        assert_eq!((s.brightness, s.focus, s.samples), (7.0, 0.0, 1));
    }

    #[test]
    fn sampling_about_twenty_thousand_pixels() {
        assert_eq!(sample_step(1920, 1080), 11);
        assert_eq!(sample_step(100, 100), 1);
    }

    #[test]
    fn psi_is_zero_for_the_same_shape_and_large_for_a_shift() {
        assert!(psi(&[10, 20, 30], &[1, 2, 3]) < 0.05);
        assert!(psi(&[0, 50, 50, 0], &[40, 0, 0, 0]) > 3.0);
    }

    #[test]
    fn profiles_have_empty_outer_bins() {
        let values: Vec<f64> = (0..100).map(|v| v as f64).collect();
        let p = FeatureProfile::learn("x".into(), &values).unwrap();
        assert_eq!(p.counts[0], 0);
        assert_eq!(*p.counts.last().unwrap(), 0);
        assert_eq!(p.counts.iter().sum::<u64>(), 100);
        assert_eq!(p.bin(-5.0), 0);
        assert_eq!(p.bin(500.0), p.counts.len() - 1);
        // A constant feature still has bins on both sides.
        let p = FeatureProfile::learn("zero".into(), &[0.0; 50]).unwrap();
        assert_eq!(p.counts, vec![0, 50, 0]);
        p.check().unwrap();
    }

    fn obs(frame: u64, brightness: f32, detections: Vec<(usize, f32)>) -> Observation {
        let verdict = if detections.is_empty() {
            Verdict::Pass
        } else {
            Verdict::Fail
        };
        Observation {
            frame,
            image: Some(ImageStats {
                brightness,
                contrast: 30.0 + (frame % 7) as f32,
                focus: 500.0 + (frame % 13) as f32 * 10.0,
                colour: Some([1.1, 0.9]),
                samples: 100,
            }),
            inspected: true,
            detections,
            verdict,
            anomaly_score: None,
        }
    }

    /// Normal operation: brightness swings with a 40-frame period, a detection every fifth
    /// frame.
    fn normal(frame: u64) -> Observation {
        let b = 120.0 + 20.0 * ((frame as f32) * std::f32::consts::TAU / 40.0).sin();
        let detections = if frame.is_multiple_of(5) {
            vec![(0, 0.6 + (frame % 3) as f32 * 0.1)]
        } else {
            vec![]
        };
        obs(frame, b, detections)
    }

    fn config() -> DriftConfig {
        DriftConfig {
            learn_frames: 200,
            window: 60,
            step: 20,
            ..Default::default()
        }
    }

    #[test]
    fn a_dimmed_stream_starts_one_episode_and_recovers_with_one_more_message() {
        let mut m = DriftMonitor::new(config(), vec!["scratch".into(), "dent".into()], None);
        let mut changes = Vec::new();
        let mut reports = 0;
        for frame in 0..1200u64 {
            let mut o = normal(frame);
            if (600..800).contains(&frame)
                && let Some(image) = &mut o.image
            {
                image.brightness *= 0.55;
            }
            let step = m.observe(&o);
            if frame == 199 {
                assert!(step.learnt);
            }
            reports += step.report.is_some() as u32;
            if let Some(change) = step.change {
                changes.push((frame, change, step.report.unwrap()));
            }
        }
        assert_eq!(reports, (1000 - 60) / 20 + 1);
        assert_eq!(changes.len(), 2, "{changes:?}");
        let (onset, change, report) = &changes[0];
        assert_eq!(*change, Change::Onset);
        assert!((600..600 + 150).contains(onset), "onset at {onset}");
        assert!(report.active && report.episode == 1);
        let moved: Vec<_> = report.moved().map(|f| f.name.as_str()).collect();
        assert_eq!(moved, ["brightness"]);
        assert!(describe_moved(report).starts_with("brightness (PSI"));
        let (recovery, change, report) = &changes[1];
        assert_eq!(*change, Change::Recovery);
        assert!(*recovery > 800 && !report.active && report.episode == 1);
    }

    #[test]
    fn a_restarted_window_holds_only_the_frames_after_the_restart() {
        let mut m = DriftMonitor::new(config(), vec!["scratch".into()], None);
        for frame in 0..250u64 {
            m.observe(&normal(frame));
        }
        // 50 frames watched: 10 more fill the window.
        m.restart_window();
        let mut reports = Vec::new();
        for frame in 250..330u64 {
            let mut o = normal(frame);
            if let Some(image) = &mut o.image {
                image.brightness = 50.0;
            }
            if let Some(report) = m.observe(&o).report {
                reports.push(report);
            }
        }
        // Without the restart, windows at frames 259, 279, ...; with it, at 309 and 329, and
        // the first holds only dim frames.
        assert_eq!(
            reports.iter().map(|r| r.frame).collect::<Vec<_>>(),
            [309, 329]
        );
        let brightness = reports[0]
            .features
            .iter()
            .find(|f| f.name == "brightness")
            .unwrap();
        assert_eq!(brightness.current, 50.0);
        assert_eq!(reports[0].window_frames, 60);
    }

    #[test]
    fn a_clean_stream_has_no_episode() {
        let mut m = DriftMonitor::new(config(), vec!["scratch".into()], None);
        for frame in 0..5000u64 {
            let step = m.observe(&normal(frame));
            if let Some(report) = step.report {
                assert!(!report.active, "{report:?}");
                let worst = report.features.iter().map(|f| f.score).fold(0.0, f64::max);
                assert!(worst < 0.5, "{report:?}");
            }
        }
    }

    #[test]
    fn a_burst_of_detections_of_a_new_class_moves_its_rate() {
        let mut m = DriftMonitor::new(config(), vec!["scratch".into(), "dent".into()], None);
        let mut onset = None;
        for frame in 0..800u64 {
            let mut o = normal(frame);
            if frame >= 500 {
                o.detections.extend([(1, 0.9), (1, 0.8), (1, 0.7)]);
                o.verdict = Verdict::Fail;
            }
            let step = m.observe(&o);
            if step.change == Some(Change::Onset) {
                let report = step.report.unwrap();
                let moved: Vec<_> = report.moved().map(|f| f.name.clone()).collect();
                assert!(moved.contains(&"detections:dent".to_string()), "{moved:?}");
                assert!(moved.contains(&"verdict:FAIL".to_string()), "{moved:?}");
                onset = Some(frame);
            }
        }
        let onset = onset.expect("an episode");
        assert!(onset - 500 <= 150, "onset at {onset}");
    }

    #[test]
    fn a_baseline_round_trips_through_json_and_a_bad_one_is_an_error() {
        let mut m = DriftMonitor::new(config(), vec!["scratch".into()], None);
        for frame in 0..200 {
            m.observe(&normal(frame));
        }
        let baseline = m.baseline().unwrap().clone();
        assert_eq!(baseline.frames, 200);
        assert!(baseline.feature("brightness").is_some());
        assert!(baseline.feature("confidence:scratch").is_some());
        assert!(
            baseline
                .feature(crate::meta::fields::ANOMALY_SCORE)
                .is_none()
        );
        let back = Baseline::from_json(&baseline.to_json()).unwrap();
        // Counts exactly; values to the last digit or so (JSON's shortest decimal forms).
        for (a, b) in back.features.iter().zip(&baseline.features) {
            assert_eq!(
                (&a.name, &a.counts, a.samples),
                (&b.name, &b.counts, b.samples)
            );
            for (x, y) in a.edges.iter().zip(&b.edges).chain([(&a.mean, &b.mean)]) {
                assert!((x - y).abs() <= 1e-12 * y.abs().max(1.0), "{x} {y}");
            }
        }
        assert_eq!(back.features.len(), baseline.features.len());
        let mut bad = baseline.clone();
        bad.features[0].counts.pop();
        let error = Baseline::from_json(&bad.to_json()).unwrap_err();
        assert!(error.contains("brightness"), "{error}");
        assert!(Baseline::from_json("{").is_err());
        // A given baseline is compared from the first window on.
        let mut m = DriftMonitor::new(config(), vec!["scratch".into()], Some(back));
        assert!(!m.learning());
        let reports = (0..100).filter(|&f| m.observe(&normal(f)).report.is_some());
        assert_eq!(reports.count(), 3);
    }

    #[test]
    fn disabled_families_and_thresholds_per_feature() {
        let mut config = config();
        config.features.retain(|f| f != "brightness");
        config.thresholds.insert("focus".into(), 3.0);
        config.thresholds.insert("detections:scratch".into(), 2.0);
        assert_eq!(config.threshold_of("focus"), 3.0);
        assert_eq!(config.threshold_of("detections:scratch"), 2.0);
        assert_eq!(config.threshold_of("detections:dent"), 2.0);
        let mut m = DriftMonitor::new(config, vec!["scratch".into()], None);
        for frame in 0..700u64 {
            let mut o = normal(frame);
            if frame >= 300
                && let Some(image) = &mut o.image
            {
                image.brightness *= 0.55;
            }
            let step = m.observe(&o);
            assert!(step.change.is_none());
            if let Some(report) = step.report {
                assert!(report.features.iter().all(|f| f.name != "brightness"));
            }
        }
        assert!(m.ignored.contains(&"brightness".to_string()));
    }

    #[test]
    fn episodes_need_consecutive_windows() {
        let config = DriftConfig::default();
        let mut e = Episode::default();
        assert_eq!(e.update(true, 1, &config), None);
        assert_eq!(e.update(false, 2, &config), None);
        assert_eq!(e.update(true, 3, &config), None);
        assert_eq!(e.update(true, 4, &config), Some(Change::Onset));
        assert_eq!(e.update(true, 5, &config), None);
        assert_eq!(e.update(false, 6, &config), None);
        assert_eq!(e.update(false, 7, &config), None);
        assert_eq!(e.update(true, 8, &config), None);
        for f in 9..12 {
            assert_eq!(e.update(false, f, &config), None);
        }
        assert_eq!(e.update(false, 12, &config), Some(Change::Recovery));
        assert_eq!((e.number, e.started), (1, Some(4)));
    }
}
