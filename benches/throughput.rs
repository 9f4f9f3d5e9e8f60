// SPDX-License-Identifier: MIT OR Apache-2.0
//! `cargo bench --bench throughput`: figures and ratios measured in one run on one machine.
//!
//! 1. the raw limit: ONNX Runtime session runs on a ready input tensor in a tight loop;
//! 2. `defectdetect` in a pipeline (`appsrc ! defectdetect ! fakesink`), beside the raw limit,
//!    on 1920x1080 RGB and NV12 frames, 4096x3000 GRAY8 frames, and 64x36 RGB frames (the
//!    per-frame cost without preprocessing), frames per second;
//! 3. the cost of each stage: letterbox and normalisation, decoding and NMS, overlay, JSON;
//! 4. the usual alternative: the same frames through plain Python onnxruntime + numpy
//!    (`scripts/bench_python.py`, OpenCV letterbox, numpy decode and NMS).
//!
//! 5. steady state: `defectdetect ! defectoverlay ! defectmetaconvert` on `BENCH_STEADY_FRAMES`
//!    (default 20,000) 1080p RGB frames with the small squares test model (so the run takes
//!    about a minute; the plugin's per-frame path is the same whatever the model): resident
//!    memory after the first 1,000 frames and at the end, and heap allocations per frame made
//!    through Rust's allocator (GLib's own allocations, e.g. of bus messages, are not counted).
//!
//! `BENCH_MODEL` picks the model (default: the bundled one, else the squares test model),
//! `BENCH_THREADS` the ONNX Runtime intra-op threads (default 2), `BENCH_DETECT_PROPS` more
//! `defectdetect` properties for the side-by-side pipelines (e.g. `drift=false`), `BENCH_SECONDS` the time
//! per measurement (default 3), `BENCH_ONLY=stages` stops after the stage costs. The machines this runs on are shared and their speed drifts
//! by 10-60% from one minute to the next, so stage costs are the fastest of five windows, and
//! each pipeline runs in blocks of 10 frames alternating with blocks of 10 raw-limit runs: a
//! slow spell then falls on both sides of the ratio alike.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The system allocator, counting the allocations made through it.
struct CountingAllocator;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static ALLOCATED_BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to `System`; only counters are added.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        ALLOCATED_BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        ALLOCATED_BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Resident memory of this process in KiB (`VmRSS`), 0 where /proc is missing.
fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

use gst::prelude::*;
use gstdefect::analysis::decode::{Decoder, OutputLayout};
use gstdefect::analysis::letterbox::{Letterbox, LetterboxGeometry};
use gstdefect::analysis::nms;
use gstdefect::draw::overlay::{self, Annotation, Banner, Layers, Style};
use gstdefect::draw::{Canvas, YuvEncoding};
use gstdefect::frame::{FrameView, PixelFormat, YuvMatrix};
use gstdefect::policy::{Severity, Verdict};
use gstdefect::records;
use gstdefect::runtime::{Detector, DetectorOptions, Provider};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `f` for about `seconds` after a warm-up and returns the time per call of the fastest
/// of five equal windows: on a shared machine, load from elsewhere only ever slows a window
/// down, so the fastest window is the closest to what the code itself costs.
fn time_per_call(seconds: f64, mut f: impl FnMut()) -> Duration {
    for _ in 0..3 {
        f();
    }
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let started = Instant::now();
        let mut calls = 0u32;
        while started.elapsed().as_secs_f64() < seconds / 5.0 || calls < 2 {
            f();
            calls += 1;
        }
        best = best.min(started.elapsed() / calls);
    }
    best
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A frame with texture (so nothing is trivially compressible) in `format`.
fn frame_bytes(
    format: PixelFormat,
    width: usize,
    height: usize,
) -> (Vec<u8>, [usize; 3], [usize; 3]) {
    let pattern = |i: usize| ((i * 2654435761) >> 13) as u8;
    match format {
        PixelFormat::Packed {
            bytes_per_pixel, ..
        } => {
            let stride = width * bytes_per_pixel as usize;
            (
                (0..stride * height).map(pattern).collect(),
                [0, 0, 0],
                [stride, 0, 0],
            )
        }
        PixelFormat::Gray8 => (
            (0..width * height).map(pattern).collect(),
            [0, 0, 0],
            [width, 0, 0],
        ),
        PixelFormat::Nv12 => {
            let luma = width * height;
            let chroma = width.div_ceil(2) * 2 * height.div_ceil(2);
            (
                (0..luma + chroma).map(pattern).collect(),
                [0, luma, 0],
                [width, width.div_ceil(2) * 2, 0],
            )
        }
        PixelFormat::I420 => unimplemented!(),
    }
}

fn view<'a>(
    data: &'a [u8],
    offsets: [usize; 3],
    strides: [usize; 3],
    w: u32,
    h: u32,
) -> FrameView<'a> {
    let plane = |i: usize| {
        if strides[i] == 0 {
            &data[..0]
        } else {
            &data[offsets[i]..]
        }
    };
    FrameView {
        width: w,
        height: h,
        planes: [plane(0), plane(1), plane(2)],
        strides,
    }
}

fn letterbox_cost(
    format: PixelFormat,
    w: u32,
    h: u32,
    model: (u32, u32),
    seconds: f64,
) -> Duration {
    let (data, offsets, strides) = frame_bytes(format, w as usize, h as usize);
    let mut lb = Letterbox::new(
        LetterboxGeometry::new(w, h, model.1, model.0),
        format,
        YuvMatrix::bt709(),
        3,
    );
    let mut tensor = vec![0.0f32; lb.tensor_len()];
    lb.fill_padding(&mut tensor);
    let frame = view(&data, offsets, strides, w, h);
    time_per_call(seconds, || lb.run(&frame, &mut tensor).expect("letterbox"))
}

/// A YOLOv8 output with N = 8400 anchors and 6 classes, a few hundred above threshold.
fn decode_cost(seconds: f64) -> Duration {
    let (classes, anchors) = (6usize, 8400usize);
    let mut data = vec![0.0f32; (4 + classes) * anchors];
    for a in 0..anchors {
        data[a] = (a % 80) as f32 * 8.0;
        data[anchors + a] = (a / 80) as f32 * 8.0;
        data[2 * anchors + a] = 24.0;
        data[3 * anchors + a] = 24.0;
        for c in 0..classes {
            data[(4 + c) * anchors + a] = if a % 29 == c {
                0.6 + (a % 7) as f32 / 20.0
            } else {
                0.01
            };
        }
    }
    let shape = [1, (4 + classes) as i64, anchors as i64];
    let mut decoder = Decoder::new();
    let mut out = Vec::with_capacity(1024);
    time_per_call(seconds, || {
        out.clear();
        decoder
            .decode(OutputLayout::YoloV8, &shape, &data, 0.25, &mut out)
            .expect("decode");
        nms::nms_classwise(&mut out, 0.45, 300);
    })
}

fn overlay_cost(seconds: f64) -> Duration {
    let (w, h) = (1920usize, 1080usize);
    let mut data = vec![0u8; w * h * 3];
    let annotations: Vec<Annotation> = (0..10)
        .map(|i| Annotation {
            rect: [
                100.0 + 150.0 * i as f32,
                300.0,
                200.0 + 150.0 * i as f32,
                420.0,
            ],
            label: "scratches".into(),
            confidence: 0.9,
            severity: Some(Severity::Major),
            counted: true,
            mask: None,
        })
        .collect();
    let banner = Banner {
        verdict: Verdict::Fail,
        shadow: false,
        part_id: Some("17".into()),
        frame: 1234,
    };
    time_per_call(seconds, || {
        let mut canvas = Canvas::new(
            w as u32,
            h as u32,
            PixelFormat::RGB,
            YuvEncoding::default(),
            [&mut data, &mut [], &mut []],
            [w * 3, 0, 0],
        )
        .expect("canvas");
        overlay::render(
            &mut canvas,
            &annotations,
            Some(&banner),
            Style::for_height(h as u32),
            Layers {
                boxes: true,
                masks: None,
            },
        );
    })
}

fn json_cost(seconds: f64) -> Duration {
    let detections: Vec<records::DetectionRecord> = (0..10)
        .map(|i| records::DetectionRecord {
            class_id: i,
            class_name: "scratches".into(),
            severity: Some("major".into()),
            decision: Some("fail".into()),
            confidence: 0.9,
            bbox: [1.0, 2.0, 3.0, 4.0],
            area: 4.0,
            area_px: 4.0,
            area_mm2: None,
            length_px: Some(2.0),
            length_mm: None,
            mask: None,
            peak_score: None,
            mean_score: None,
            classification: None,
        })
        .collect();
    let record = records::FrameRecord {
        schema_version: records::SCHEMA_VERSION,
        kind: "frame",
        utc: records::utc_now(),
        pts_ns: Some(1),
        frame: 1,
        source_id: "line-1".into(),
        part_id: Some("17".into()),
        model: None,
        policy_sha256: None,
        task: Some("detect".into()),
        anomaly_score: None,
        detections,
        verdict: Some("FAIL".into()),
        inspected: Some(true),
        carried: false,
        source_frame: None,
        reasons: vec![0],
        shadow: false,
        counts: records::SeverityCounts::default(),
        latency_ms: None,
        capture_dropped: None,
    };
    time_per_call(seconds, || {
        std::hint::black_box(records::to_line(&record));
    })
}

/// Frames per second of the plugin and of the raw limit, measured side by side.
struct SideBySide {
    plugin_fps: f64,
    raw_fps: f64,
}

/// Alternates `blocks` times between `block` frames through `appsrc ! defectdetect ! fakesink`
/// (copies of one textured frame of `info`) and `block` session runs on a ready tensor, so that
/// a slow spell of the shared machine falls on both sides of the ratio alike.
fn side_by_side(
    detector: &mut Detector,
    model: &str,
    threads: u32,
    info: &gst_video::VideoInfo,
    blocks: u32,
    block: u32,
) -> SideBySide {
    let data: Vec<u8> = (0..info.size())
        .map(|i| ((i * 2654435761) >> 13) as u8)
        .collect();
    let pipeline = gst::parse::launch(&format!(
        "appsrc name=src format=time max-bytes=0 block=true ! \
         defectdetect model={model} threads={threads} {extra} ! fakesink name=sink sync=false",
        extra = std::env::var("BENCH_DETECT_PROPS").unwrap_or_default()
    ))
    .expect("pipeline")
    .downcast::<gst::Pipeline>()
    .expect("pipeline");
    let src = pipeline
        .by_name("src")
        .expect("src")
        .downcast::<gst_app::AppSrc>()
        .expect("appsrc");
    src.set_caps(Some(&info.to_caps().expect("caps")));
    src.set_max_buffers(4);
    let (done, finished) = std::sync::mpsc::channel::<()>();
    pipeline
        .by_name("sink")
        .expect("sink")
        .static_pad("sink")
        .expect("sink pad")
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            let _ = done.send(());
            gst::PadProbeReturn::Ok
        });
    pipeline.set_state(gst::State::Playing).expect("playing");
    // A shallow copy per frame: the pixels are shared, each buffer gets its own metas.
    let template = gst::Buffer::from_mut_slice(data);
    let mut pts = 0;
    let mut push_and_wait = |count: u32| {
        for _ in 0..count {
            let mut buffer = template.copy();
            let buffer_mut = buffer.get_mut().expect("writable");
            buffer_mut.set_pts(gst::ClockTime::from_mseconds(33 * pts));
            pts += 1;
            src.push_buffer(buffer).expect("push");
        }
        for _ in 0..count {
            finished
                .recv_timeout(Duration::from_secs(600))
                .expect("a frame through the pipeline");
        }
    };
    push_and_wait(5);
    let (mut plugin, mut raw) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..blocks {
        let started = Instant::now();
        push_and_wait(block);
        plugin += started.elapsed();
        let started = Instant::now();
        for _ in 0..block {
            detector.run_only().expect("run");
        }
        raw += started.elapsed();
    }
    pipeline.set_state(gst::State::Null).expect("null");
    let frames = f64::from(blocks * block);
    SideBySide {
        plugin_fps: frames / plugin.as_secs_f64(),
        raw_fps: frames / raw.as_secs_f64(),
    }
}

fn video_info(format: &str, w: usize, h: usize) -> gst_video::VideoInfo {
    gst_video::VideoInfo::builder(format.parse().expect("format"), w as u32, h as u32)
        .fps(gst::Fraction::new(30, 1))
        .build()
        .expect("video info")
}

/// What a long run of the whole per-frame path costs in memory.
struct SteadyState {
    frames: u64,
    resident_after_warmup_kib: u64,
    resident_at_end_kib: u64,
    allocations_per_frame: f64,
    allocated_bytes_per_frame: f64,
}

/// Runs `frames` 1080p RGB frames from `videotestsrc` (pooled buffers, as a camera source
/// gives them) through detection, overlay and JSON records, sampling resident memory and the
/// allocation counters after the first 1,000 frames and at the end.
fn steady_state(model: &str, threads: u32, frames: u64) -> SteadyState {
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers={frames} pattern=ball ! video/x-raw,format=RGB,width=1920,height=1080 ! \
         defectdetect name=detect model={model} threads={threads} ! defectoverlay ! defectmetaconvert ! \
         fakesink sync=false"
    ))
    .expect("pipeline")
    .downcast::<gst::Pipeline>()
    .expect("pipeline");
    let warmup = 1000.min(frames / 2);
    let at_warmup = std::sync::Arc::new(std::sync::Mutex::new((0, 0, 0)));
    let sample = at_warmup.clone();
    let seen = AtomicU64::new(0);
    pipeline
        .by_name("detect")
        .expect("detect")
        .static_pad("src")
        .expect("src pad")
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            let seen = seen.fetch_add(1, Ordering::Relaxed) + 1;
            if seen == warmup {
                *sample.lock().expect("sample") = (
                    resident_kib(),
                    ALLOCATIONS.load(Ordering::Relaxed),
                    ALLOCATED_BYTES.load(Ordering::Relaxed),
                );
            }
            if seen.is_multiple_of(5000) {
                eprintln!("  steady state: {seen}/{frames} frames");
            }
            gst::PadProbeReturn::Ok
        });
    pipeline.set_state(gst::State::Playing).expect("playing");
    let bus = pipeline.bus().expect("bus");
    let message = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(3600),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    if let Some(gst::MessageView::Error(e)) = message.as_ref().map(|m| m.view()) {
        panic!("{}", e.error());
    }
    let at_end = (
        resident_kib(),
        ALLOCATIONS.load(Ordering::Relaxed),
        ALLOCATED_BYTES.load(Ordering::Relaxed),
    );
    pipeline.set_state(gst::State::Null).expect("null");
    let at_warmup = *at_warmup.lock().expect("sample");
    let counted = (frames - warmup) as f64;
    SteadyState {
        frames,
        resident_after_warmup_kib: at_warmup.0,
        resident_at_end_kib: at_end.0,
        allocations_per_frame: (at_end.1 - at_warmup.1) as f64 / counted,
        allocated_bytes_per_frame: (at_end.2 - at_warmup.2) as f64 / counted,
    }
}

fn python_fps(model: &str, threads: u32, frames: u32) -> Option<f64> {
    let root = env!("CARGO_MANIFEST_DIR");
    let output = std::process::Command::new(format!("{root}/.venv/bin/python"))
        .args([
            &format!("{root}/scripts/bench_python.py"),
            "--model",
            model,
            "--threads",
            &threads.to_string(),
            "--frames",
            &frames.to_string(),
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("fps "))
        .and_then(|v| v.trim().parse().ok())
}

fn main() {
    let root = env!("CARGO_MANIFEST_DIR");
    let bundled = format!("{root}/models/surface-defects.onnx");
    let model = std::env::var("BENCH_MODEL").unwrap_or_else(|_| {
        if std::path::Path::new(&bundled).exists() {
            bundled
        } else {
            format!("{root}/models/test/squares_v8.onnx")
        }
    });
    let threads: u32 = env_or("BENCH_THREADS", 2);
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without it,
    // and then a short smoke run checks that every measurement still works.
    let smoke = !std::env::args().any(|arg| arg == "--bench");
    if smoke {
        println!(
            "smoke run (no --bench): figures are meaningless; measure with `cargo bench --bench throughput`"
        );
    }
    let seconds: f64 = env_or("BENCH_SECONDS", if smoke { 0.02 } else { 3.0 });
    gst::init().expect("gst init");
    gstdefect::plugin_register_static().expect("register");

    let options = DetectorOptions {
        model: model.clone().into(),
        provider: Provider::Cpu,
        threads: threads as usize,
        // As defectdetect's default, so that the raw limit and the element share one session.
        spin: Some(false),
        ..Default::default()
    };
    let (mut detector, _) = Detector::load(&options).expect("load the model");
    let (mh, mw) = (detector.info().height, detector.info().width);
    println!(
        "CPU: {} ({} threads); model {} input {mh}x{mw}; ONNX Runtime threads {threads}",
        gstdefect::runtime::cpu::CpuDescription::detect().summary(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        detector.info().model_id()
    );

    let mut detections = Vec::new();
    let full = time_per_call(seconds, || {
        detections.clear();
        detector.detect(0.25, &mut detections).expect("detect");
    });
    println!(
        "session run + decode of the bundled model: {:.2} ms",
        ms(full)
    );

    println!("stage costs (one thread):");
    let lb_rgb = letterbox_cost(PixelFormat::RGB, 1920, 1080, (mh, mw), seconds);
    let lb_nv12 = letterbox_cost(PixelFormat::Nv12, 1920, 1080, (mh, mw), seconds);
    let lb_gray = letterbox_cost(PixelFormat::Gray8, 4096, 3000, (mh, mw), seconds);
    // 1080p into 640 wide is a factor of 3; this one resamples at a fractional factor.
    let lb_rgb_12mp = letterbox_cost(PixelFormat::RGB, 4096, 3000, (mh, mw), seconds);
    println!(
        "  letterbox + normalisation 1080p RGB   {:.3} ms (target <= 1 ms: {})",
        ms(lb_rgb),
        ms(lb_rgb) <= 1.0
    );
    println!(
        "  letterbox + normalisation 1080p NV12  {:.3} ms (target <= 1 ms: {})",
        ms(lb_nv12),
        ms(lb_nv12) <= 1.0
    );
    println!(
        "  letterbox + normalisation 12 MP GRAY8 {:.3} ms (target <= 3 ms: {})",
        ms(lb_gray),
        ms(lb_gray) <= 3.0
    );
    println!(
        "  letterbox + normalisation 12 MP RGB   {:.3} ms",
        ms(lb_rgb_12mp)
    );
    let decode = decode_cost(seconds);
    println!(
        "  decode + NMS, N = 8400, 6 classes     {:.3} ms (target <= 0.3 ms: {})",
        ms(decode),
        ms(decode) <= 0.3
    );
    println!(
        "  overlay, 10 boxes + banner, 1080p RGB {:.3} ms",
        ms(overlay_cost(seconds))
    );
    println!(
        "  JSON record, 10 detections            {:.4} ms",
        ms(json_cost(seconds))
    );
    if std::env::var("BENCH_ONLY").is_ok_and(|only| only == "stages") {
        return;
    }

    // Each pipeline is measured side by side with the raw limit, in blocks of 10 frames.
    let (blocks, block) = if smoke {
        (1, 3)
    } else {
        ((seconds * 4.0).ceil() as u32, 10)
    };
    let cases = [
        ("RGB", 1920, 1080),
        ("NV12", 1920, 1080),
        ("GRAY8", 4096, 3000),
        // Next to nothing to letterbox: what the plugin costs per frame whatever the size.
        ("RGB", 64, 36),
    ];
    println!(
        "defectdetect in a pipeline against the raw limit (session runs on a ready tensor), \
         {blocks} alternating blocks of {block} frames each:"
    );
    let mut rgb_1080 = None;
    for (format, w, h) in cases {
        let measured = side_by_side(
            &mut detector,
            &model,
            threads,
            &video_info(format, w, h),
            blocks,
            block,
        );
        println!(
            "  {:>9} {format:<5} {:6.1} fps, raw limit {:6.1} fps: {:.3} of the raw limit (target >= 0.95 at 1080p)",
            format!("{w}x{h}"),
            measured.plugin_fps,
            measured.raw_fps,
            measured.plugin_fps / measured.raw_fps
        );
        rgb_1080.get_or_insert(measured);
    }
    let rgb_1080 = rgb_1080.expect("the 1080p RGB case");
    // The Python alternative, beside raw-limit runs of the same length. The plugin and Python
    // are compared through the raw limit (plugin / raw measured side by side, times raw /
    // Python measured side by side), since the two runs are minutes apart on a drifting machine.
    let python_frames = if smoke { 3 } else { blocks * block };
    match python_fps(&model, threads, python_frames) {
        Some(py) => {
            let started = Instant::now();
            for _ in 0..python_frames {
                detector.run_only().expect("run");
            }
            let raw_fps = f64::from(python_frames) / started.elapsed().as_secs_f64();
            let plugin_to_raw = rgb_1080.plugin_fps / rgb_1080.raw_fps;
            println!(
                "python onnxruntime + numpy, 1080p RGB: {py:.1} fps, raw limit beside it {raw_fps:.1} fps: \
                 defectdetect / python = {plugin_to_raw:.3} x {:.2} = {:.2} (target >= 2; a plugin adding nothing \
                 to the raw limit would reach {:.2})",
                raw_fps / py,
                plugin_to_raw * raw_fps / py,
                raw_fps / py
            );
        }
        None => {
            println!("python alternative not measured (.venv with onnxruntime and OpenCV missing)")
        }
    }
    drop(detector);
    let steady_frames: u64 = env_or("BENCH_STEADY_FRAMES", if smoke { 200 } else { 20_000 });
    if steady_frames > 0 {
        let squares = format!("{root}/models/test/squares_v8.onnx");
        let steady = steady_state(&squares, threads, steady_frames);
        let growth_mib =
            (steady.resident_at_end_kib as f64 - steady.resident_after_warmup_kib as f64) / 1024.0;
        println!(
            "steady state over {} frames (1080p RGB, detect + overlay + JSON, squares test model):",
            steady.frames
        );
        println!(
            "  resident memory {:.1} MiB after warm-up, {:.1} MiB at the end: growth {growth_mib:+.2} MiB (target within 5 MB: {})",
            steady.resident_after_warmup_kib as f64 / 1024.0,
            steady.resident_at_end_kib as f64 / 1024.0,
            growth_mib.abs() <= 5.0
        );
        println!(
            "  Rust heap allocations per frame: {:.1} ({:.0} bytes); no pixel-sized allocation: {}",
            steady.allocations_per_frame,
            steady.allocated_bytes_per_frame,
            steady.allocated_bytes_per_frame < 64.0 * 1024.0
        );
    }
}
