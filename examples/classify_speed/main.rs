// SPDX-License-Identifier: MIT OR Apache-2.0
//! `cargo run --release --example classify_speed`: the classify preprocessing (Ultralytics'
//! shortest-side resize and centre crop, PIL's fixed-point bilinear filter) before and after
//! the speed-up, measured in one run on the same frames, with the tensors checked equal bit for
//! bit. Prints, per case, the fastest of `CLS_ROUNDS` (default 7) alternating rounds of each
//! and the ratio old / new; then, per instruction set the CPU runs, the new pass on 1080p RGB.
//!
//! Then the classifier itself (`CLS_MODEL`, default `models/neu-classifier.onnx`; ONNX
//! Runtime on `CLS_THREADS` intra-op threads, default 1) on whole 1080p RGB, NV12 and GRAY8
//! frames: the raw model (session runs on a prepared input tensor) beside the element's whole
//! path (`inspect::infer::infer`, what `defectdetect` calls: preprocessing, inference, top-k),
//! the new preprocessing on one thread plus inference, and the old preprocessing plus
//! inference, in alternating blocks of 10 runs for `CLS_MODEL_ROUNDS` rounds (default 20).
//! Per round the medians give the ratios raw / path; printed are the median ratio over the
//! rounds and its range, and the median times. Figures from the dev profile are what the
//! debug build costs: use `--release`.

mod baseline;

use std::time::{Duration, Instant};

use gstdefect::analysis::classify::{ClassifyGeometry, ClassifyPreprocess, Isa};
use gstdefect::frame::{FrameView, PixelFormat, YuvMatrix};
use gstdefect::inspect::infer::{self, FrameInput, Preprocess, Thresholds};
use gstdefect::runtime::cpu::CpuDescription;
use gstdefect::runtime::{Detector, DetectorOptions, Provider};

/// A textured frame: every byte from a cheap hash of its position.
fn bytes(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| {
            let x = i.wrapping_mul(2_654_435_761).wrapping_add(seed) ^ (i >> 7);
            (x >> 13) as u8
        })
        .collect()
}

struct Case {
    name: &'static str,
    format: PixelFormat,
    width: u32,
    height: u32,
    /// The region classified: the whole frame, or an ROI (`on-rois`).
    region: (u32, u32, u32, u32),
}

/// A textured frame's planes.
struct Planes {
    width: u32,
    height: u32,
    planes: Vec<Vec<u8>>,
    strides: [usize; 3],
}

impl Planes {
    fn new(format: PixelFormat, width: u32, height: u32) -> Self {
        let (w, h) = (width as usize, height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let (planes, strides) = match format {
            PixelFormat::Packed {
                bytes_per_pixel, ..
            } => {
                let stride = w * bytes_per_pixel as usize + 8;
                (vec![bytes(stride * h, 1)], [stride, 0, 0])
            }
            PixelFormat::Gray8 => (vec![bytes(w * h, 1)], [w, 0, 0]),
            PixelFormat::Nv12 => (vec![bytes(w * h, 1), bytes(cw * 2 * ch, 2)], [w, cw * 2, 0]),
            PixelFormat::I420 => (
                vec![bytes(w * h, 1), bytes(cw * ch, 2), bytes(cw * ch, 3)],
                [w, cw, cw],
            ),
        };
        Self {
            width,
            height,
            planes,
            strides,
        }
    }

    fn view(&self) -> FrameView<'_> {
        let plane = |i: usize| self.planes.get(i).map_or(&[][..], |p| &p[..]);
        FrameView {
            width: self.width,
            height: self.height,
            planes: [plane(0), plane(1), plane(2)],
            strides: self.strides,
        }
    }
}

fn time(mut f: impl FnMut()) -> Duration {
    let started = Instant::now();
    f();
    started.elapsed()
}

fn main() {
    let rounds: usize = std::env::var("CLS_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let cases = [
        Case {
            name: "1080p RGB, whole frame",
            format: PixelFormat::RGB,
            width: 1920,
            height: 1080,
            region: (0, 0, 1920, 1080),
        },
        Case {
            name: "1080p NV12, whole frame",
            format: PixelFormat::Nv12,
            width: 1920,
            height: 1080,
            region: (0, 0, 1920, 1080),
        },
        Case {
            name: "1080p I420, whole frame",
            format: PixelFormat::I420,
            width: 1920,
            height: 1080,
            region: (0, 0, 1920, 1080),
        },
        Case {
            name: "1080p BGRx, 300x180 ROI",
            format: PixelFormat::BGRA,
            width: 1920,
            height: 1080,
            region: (811, 403, 300, 180),
        },
        Case {
            name: "1080p RGB, 120x90 ROI (enlarged)",
            format: PixelFormat::RGB,
            width: 1920,
            height: 1080,
            region: (1500, 20, 120, 90),
        },
    ];
    let yuv = YuvMatrix::bt709();
    for case in &cases {
        let planes = Planes::new(case.format, case.width, case.height);
        let view = planes.view();
        let (x, y, rw, rh) = case.region;
        let geometry = ClassifyGeometry::new(rw, rh, 224, 224);
        let mut old = baseline::ClassifyPreprocess::new(geometry);
        let mut new = ClassifyPreprocess::new(geometry);
        let mut one = ClassifyPreprocess::new(geometry);
        one.set_threads(1);
        let (mut old_tensor, mut new_tensor, mut one_tensor) = (
            vec![0f32; 3 * 224 * 224],
            vec![1f32; 3 * 224 * 224],
            vec![2f32; 3 * 224 * 224],
        );
        let (mut best_old, mut best_new, mut best_one) =
            (Duration::MAX, Duration::MAX, Duration::MAX);
        for _ in 0..rounds {
            best_old = best_old.min(time(|| {
                old.run(&view, case.format, yuv, (x, y), 3, &mut old_tensor)
                    .expect("baseline")
            }));
            best_new = best_new.min(time(|| {
                new.run(&view, case.format, yuv, (x, y), 3, &mut new_tensor)
                    .expect("new")
            }));
            best_one = best_one.min(time(|| {
                one.run(&view, case.format, yuv, (x, y), 3, &mut one_tensor)
                    .expect("new, one thread")
            }));
        }
        let bits = |t: &[f32]| t.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        let same = bits(&old_tensor) == bits(&new_tensor) && bits(&old_tensor) == bits(&one_tensor);
        assert!(same, "{}: the tensors differ", case.name);
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "{:34} old {:8.2} ms  new {:7.3} ms ({} thread(s); one thread {:7.3} ms)  old/new {:5.1}x  (bit-exact: {same})",
            case.name,
            ms(best_old),
            ms(best_new),
            new.threads(),
            ms(best_one),
            best_old.as_secs_f64() / best_new.as_secs_f64()
        );
    }
    isa_speeds(rounds);
    model_ratio();
}

/// The new pass on 1080p RGB into 192 x 192, compiled for each instruction set this CPU runs
/// (the same bytes from each).
fn isa_speeds(rounds: usize) {
    let planes = Planes::new(PixelFormat::RGB, 1920, 1080);
    let view = planes.view();
    let geometry = ClassifyGeometry::new(1920, 1080, 192, 192);
    let mut first: Option<Vec<f32>> = None;
    println!("1080p RGB to 192 x 192 by instruction set, one thread (fastest of {rounds}):");
    for isa in [Isa::Baseline, Isa::Avx2, Isa::Avx512] {
        if !isa.available() {
            println!("  {isa:?}: not run by this CPU");
            continue;
        }
        let mut pre = ClassifyPreprocess::with_isa(geometry, isa);
        pre.set_threads(1);
        let mut tensor = vec![0f32; 3 * 192 * 192];
        let best = (0..rounds)
            .map(|_| {
                time(|| {
                    pre.run(
                        &view,
                        PixelFormat::RGB,
                        YuvMatrix::bt709(),
                        (0, 0),
                        3,
                        &mut tensor,
                    )
                    .expect("run")
                })
            })
            .min()
            .unwrap_or_default();
        let same = first.get_or_insert_with(|| tensor.clone()) == &tensor;
        assert!(same, "{isa:?} differs");
        println!("  {isa:?}: {:.3} ms", best.as_secs_f64() * 1e3);
    }
}

fn median<T: PartialOrd + Copy>(mut v: Vec<T>) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

/// Per-round ratios raw / x: their median, least and greatest.
fn ratios(raw: &[Duration], x: &[Duration]) -> (f64, f64, f64) {
    let r: Vec<f64> = raw
        .iter()
        .zip(x)
        .map(|(a, b)| a.as_secs_f64() / b.as_secs_f64())
        .collect();
    let (lo, hi) = r
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    (median(r), lo, hi)
}

/// The raw model beside the element's whole path on whole 1080p frames.
fn model_ratio() {
    let model = std::env::var("CLS_MODEL")
        .unwrap_or_else(|_| format!("{}/models/neu-classifier.onnx", env!("CARGO_MANIFEST_DIR")));
    let threads: usize = std::env::var("CLS_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let rounds: usize = std::env::var("CLS_MODEL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let options = DetectorOptions {
        model: model.clone().into(),
        provider: Provider::Cpu,
        threads,
        spin: Some(false),
        ..Default::default()
    };
    let (mut detector, _) = match Detector::load(&options) {
        Ok(loaded) => loaded,
        Err(e) => {
            println!("model {model}: not measured ({e})");
            return;
        }
    };
    let (mw, mh) = (detector.info().width, detector.info().height);
    println!(
        "model {} ({mw}x{mh} input), ONNX Runtime {threads} thread(s); CPU: {}",
        detector.info().model_id(),
        CpuDescription::detect().summary()
    );
    let limits = Thresholds {
        confidence: 0.25,
        iou: 0.45,
        max_detections: 100,
        top_k: 1,
    };
    let yuv = YuvMatrix::bt709();
    for (name, format) in [
        ("RGB", PixelFormat::RGB),
        ("NV12", PixelFormat::Nv12),
        ("GRAY8", PixelFormat::Gray8),
    ] {
        let planes = Planes::new(format, 1920, 1080);
        let view = planes.view();
        let frame = FrameInput {
            view: &view,
            format,
            yuv,
            tile_size: 0,
            tile_overlap: 0,
            crop: None,
            test_time_flip: false,
        };
        let mut plan: Option<Preprocess> = None;
        let geometry = ClassifyGeometry::new(1920, 1080, mw, mh);
        let mut old = baseline::ClassifyPreprocess::new(geometry);
        let mut one = ClassifyPreprocess::new(geometry);
        one.set_threads(1);
        let mut scores = Vec::new();
        // Per round: the median of each block of 10.
        let (mut raw, mut path, mut one_path, mut old_path) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let block = |f: &mut dyn FnMut()| median((0..10).map(|_| time(&mut *f)).collect());
        // Warm-up; the path's tensor is then the prepared input of the raw runs.
        infer::infer(&mut detector, &mut plan, &frame, limits).expect("infer");
        let threads = plan
            .as_ref()
            .and_then(|p| p.classify.as_ref())
            .map_or(1, |c| c.threads());
        for _ in 0..rounds {
            raw.push(block(&mut || {
                detector.classify(&mut scores).expect("classify")
            }));
            path.push(block(&mut || {
                infer::infer(&mut detector, &mut plan, &frame, limits).expect("infer");
            }));
            one_path.push(block(&mut || {
                one.run(&view, format, yuv, (0, 0), 3, detector.input_mut())
                    .expect("one thread");
                detector.classify(&mut scores).expect("classify");
            }));
            old_path.push(block(&mut || {
                old.run(&view, format, yuv, (0, 0), 3, detector.input_mut())
                    .expect("baseline");
                detector.classify(&mut scores).expect("classify");
            }));
        }
        let ms = |d: &[Duration]| median(d.to_vec()).as_secs_f64() * 1e3;
        let (r, lo, hi) = ratios(&raw, &path);
        let (r1, lo1, hi1) = ratios(&raw, &one_path);
        let (ro, _, _) = ratios(&raw, &old_path);
        println!(
            "  1080p {name:5} raw {:5.2} ms | element path ({threads} thread(s)) {:5.2} ms, raw/path {r:.2} ({lo:.2}-{hi:.2}) | one thread {:5.2} ms, raw/path {r1:.2} ({lo1:.2}-{hi1:.2}) | old preprocessing {:5.2} ms, raw/old {ro:.2}",
            ms(&raw),
            ms(&path),
            ms(&one_path),
            ms(&old_path),
        );
    }
}
