// SPDX-License-Identifier: MIT OR Apache-2.0
//! `cargo bench --bench capture_to_reject`: how long a frame takes from its arrival to the
//! reject coil, beside the model's own inference time measured in the same run.
//!
//! `appsrc is-live=true ! defectdetect ! defectmodbussink unit=frame reject-delay-ms=0` with
//! the bundled model and `pipelines/policy.toml` (its frame-pixel figures scaled to 1080p), on
//! 1920x1080 RGB frames of `tests/data/conveyor_color.mp4` (scaled up, decoded before the
//! run), pushed at a camera's steady pace, to a Modbus TCP server on 127.0.0.1 in this process
//! (`tokio-modbus`'s, standing in for the PLC; it records when each coil-on write arrives).
//! Three times per frame: when `push_buffer` is called (the capture), when the frame's
//! verdict leaves `defectdetect` (a pad probe) and when the coil-on write for a rejected frame
//! arrives at the server. Printed, as p50 / p99 / max: capture -> verdict (every frame),
//! verdict -> coil write received and capture -> coil write received (every rejected frame),
//! and the model's inference time: ONNX Runtime session runs on the input tensor prepared
//! from one of the frames, in blocks alternating with the pipeline's blocks, so that a slow
//! spell of a shared machine falls on both. Then the ratios capture -> coil p50 and p99 over
//! the inference p50 (targets: at most 1.5 and 3).
//!
//! `BENCH_FRAMES` (default 1000 frames through the pipeline, in blocks of 25),
//! `BENCH_PERIOD_MS` (the camera's frame period; default twice the inference p50 measured
//! first, rounded up to a millisecond: a station with headroom), `BENCH_THREADS` (ONNX
//! Runtime threads, default 2), `BENCH_MODEL`, `BENCH_RT_PRIORITY` (the sink's
//! `realtime-priority`, default 0). Without `--bench` (the bench binary run directly) a smoke
//! run of 20 frames checks that the measurement works; its figures mean nothing.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstdefect::analysis::letterbox::{Letterbox, LetterboxGeometry};
use gstdefect::frame::{FrameView, PixelFormat, YuvMatrix};
use gstdefect::plc::verdict::{Verdict, frame_verdict};
use gstdefect::runtime::{Detector, DetectorOptions, Provider};

mod common;
use common::{Arrivals, cpu_ticks, env_or, load_average, quantiles, start_server, timer_flags};

const WIDTH: u32 = 1920;
const HEIGHT: u32 = 1080;
/// The recording's frames are 1280x720: 1080p is 1.5 times that.
const SCALE: f64 = 1.5;

/// `frames` frames of the recording, every `every`th, as 1920x1080 RGB buffers.
fn decode_frames(video: &Path, every: usize, frames: usize) -> Vec<gst::Buffer> {
    let pipeline = gst::parse::launch(&format!(
        "filesrc location={} ! decodebin ! videoconvert ! videoscale ! \
         video/x-raw,format=RGB,width={WIDTH},height={HEIGHT} ! appsink name=sink sync=false",
        video.display()
    ))
    .expect("decoding pipeline")
    .downcast::<gst::Pipeline>()
    .expect("pipeline");
    let sink = pipeline
        .by_name("sink")
        .expect("sink")
        .downcast::<gst_app::AppSink>()
        .expect("appsink");
    pipeline.set_state(gst::State::Playing).expect("playing");
    let mut kept = Vec::with_capacity(frames);
    let mut index = 0;
    while kept.len() < frames {
        let Ok(sample) = sink.pull_sample() else {
            break;
        };
        if index % every == 0 {
            let buffer = sample.buffer().expect("a buffer");
            // Plain memory of our own, without the decoder's metas or pool.
            let map = buffer.map_readable().expect("readable");
            kept.push(gst::Buffer::from_mut_slice(map.as_slice().to_vec()));
        }
        index += 1;
    }
    pipeline.set_state(gst::State::Null).expect("null");
    assert!(
        !kept.is_empty(),
        "no frame decoded from {}",
        video.display()
    );
    kept
}

/// Scales a policy's frame-pixel figures by `scale` (`rect`, `polygon`, `pixels-per-mm`) and
/// its areas in px² (`min-area`) by its square, wherever they are.
fn scale_policy(value: &mut toml::Value, scale: f64) {
    let times = |v: &mut toml::Value, by: f64| {
        if let Some(x) = v.as_float().or_else(|| v.as_integer().map(|i| i as f64)) {
            *v = toml::Value::Float(x * by);
        }
    };
    match value {
        toml::Value::Table(table) => {
            for (key, v) in table.iter_mut() {
                match key.as_str() {
                    "rect" | "pixels-per-mm" => match v {
                        toml::Value::Array(items) => items.iter_mut().for_each(|x| times(x, scale)),
                        other => times(other, scale),
                    },
                    "polygon" => {
                        if let toml::Value::Array(points) = v {
                            for point in points {
                                if let toml::Value::Array(xy) = point {
                                    xy.iter_mut().for_each(|x| times(x, scale));
                                }
                            }
                        }
                    }
                    "min-area" => times(v, scale * scale),
                    _ => scale_policy(v, scale),
                }
            }
        }
        toml::Value::Array(items) => items.iter_mut().for_each(|v| scale_policy(v, scale)),
        _ => {}
    }
}

/// `pipelines/policy.toml` with its frame-pixel figures scaled to 1080p, in a file of its own.
fn policy_for_1080p(root: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(format!("{root}/pipelines/policy.toml")).expect("policy");
    let mut policy: toml::Value = toml::from_str(&text).expect("policy TOML");
    scale_policy(&mut policy, SCALE);
    let path = std::env::temp_dir().join(format!(
        "capture_to_reject_policy_{}.toml",
        std::process::id()
    ));
    std::fs::write(&path, toml::to_string(&policy).expect("TOML")).expect("write the policy");
    path
}

/// What the probe saw of one frame leaving `defectdetect`.
#[derive(Clone, Copy)]
struct Judged {
    index: usize,
    at: Instant,
    verdict: Verdict,
    /// A verdict that pulses the coil (FAIL, or UNKNOWN with the sink's default).
    rejected: bool,
}

/// What the frames went through.
#[derive(Default)]
struct Measured {
    capture_to_input: Vec<Duration>,
    capture_to_verdict: Vec<Duration>,
    verdict_to_coil: Vec<Duration>,
    capture_to_coil: Vec<Duration>,
    inference: Vec<Duration>,
    frames: usize,
    rejected: usize,
    unknown: usize,
    unmatched: usize,
}

fn row(name: &str, q: [f64; 3]) {
    println!(
        "  {name:<44} {:>8.2} {:>8.2} {:>8.2}",
        q[0] / 1e3,
        q[1] / 1e3,
        q[2] / 1e3
    );
}

fn main() {
    let smoke = !std::env::args().any(|arg| arg == "--bench");
    if smoke {
        println!(
            "smoke run (no --bench): figures are meaningless; measure with \
             `cargo bench --bench capture_to_reject`"
        );
    }
    let root = env!("CARGO_MANIFEST_DIR");
    let model = std::env::var("BENCH_MODEL")
        .unwrap_or_else(|_| format!("{root}/models/surface-defects.onnx"));
    let threads: u32 = env_or("BENCH_THREADS", 2);
    let frames: usize = env_or("BENCH_FRAMES", if smoke { 20 } else { 1000 });
    let block: usize = if smoke { 10 } else { 25 };
    let rt_priority: u32 = env_or("BENCH_RT_PRIORITY", 0);
    gst::init().expect("gst init");
    gstdefect::plugin_register_static().expect("register");

    let arrivals: Arrivals = Arc::new(Mutex::new(Vec::new()));
    let (port, server_realtime) = start_server(arrivals.clone());
    println!(
        "CPU: {} ({} threads), load average {}",
        gstdefect::runtime::cpu::CpuDescription::detect().summary(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );
    println!("timer: {}", timer_flags());
    println!(
        "the Modbus server (the PLC's stand-in, 127.0.0.1:{port}) runs {}",
        if server_realtime {
            "under SCHED_FIFO 60"
        } else {
            "at normal priority (SCHED_FIFO refused)"
        }
    );

    // Frames: every 10th of the recording's 300 (30 distinct frames, 190 MB), fewer to smoke.
    let distinct = if smoke { 3 } else { 30 };
    let video = Path::new(root).join("tests/data/conveyor_color.mp4");
    let buffers = decode_frames(&video, 10, distinct);
    let policy = policy_for_1080p(root);

    // The model's own inference time: session runs on the tensor prepared from a frame.
    let options = DetectorOptions {
        model: model.clone().into(),
        provider: Provider::Cpu,
        threads: threads as usize,
        // As defectdetect's default.
        spin: Some(false),
        ..Default::default()
    };
    let (mut detector, _) = Detector::load(&options).expect("load the model");
    let (mh, mw) = (detector.info().height, detector.info().width);
    let model_id = detector.info().model_id();
    {
        let mut letterbox = Letterbox::new(
            LetterboxGeometry::new(WIDTH, HEIGHT, mw, mh),
            PixelFormat::RGB,
            YuvMatrix::bt709(),
            3,
        );
        let map = buffers[0].map_readable().expect("readable");
        let frame = FrameView {
            width: WIDTH,
            height: HEIGHT,
            planes: [map.as_slice(), &[], &[]],
            strides: [WIDTH as usize * 3, 0, 0],
        };
        letterbox.fill_padding(detector.input_mut());
        letterbox
            .run(&frame, detector.input_mut())
            .expect("letterbox");
    }
    let mut infer = |count: usize, into: &mut Vec<Duration>| {
        for _ in 0..count {
            let started = Instant::now();
            detector.run_only().expect("inference");
            into.push(started.elapsed());
        }
    };
    let mut first = Vec::new();
    infer(if smoke { 3 } else { 20 }, &mut first);
    let first_p50 = quantiles(first)[0] / 1e3;
    let period = Duration::from_millis(env_or(
        "BENCH_PERIOD_MS",
        (2.0 * first_p50).ceil().max(1.0) as u64,
    ));
    println!(
        "model {} (input {mh}x{mw}), {threads} ONNX Runtime threads; inference p50 {first_p50:.2} ms \
         at first; frames every {} ms ({:.1} fps)",
        model_id,
        period.as_millis(),
        1.0 / period.as_secs_f64()
    );

    let pipeline = gst::parse::launch(&format!(
        "appsrc name=src is-live=true format=time ! \
         defectdetect name=detect model={model} policy={} threads={threads} ! \
         defectmodbussink name=plc host=127.0.0.1 port={port} unit=frame reject-delay-ms=0 \
         pulse-ms=10 max-pulse-lateness-ms=1000 realtime-priority={rt_priority}",
        policy.display()
    ))
    .expect("pipeline")
    .downcast::<gst::Pipeline>()
    .expect("pipeline");
    let src = pipeline
        .by_name("src")
        .expect("src")
        .downcast::<gst_app::AppSrc>()
        .expect("appsrc");
    let caps = gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, WIDTH, HEIGHT)
        .fps(gst::Fraction::new(30, 1))
        .build()
        .expect("video info")
        .to_caps()
        .expect("caps");
    src.set_caps(Some(&caps));
    let detect = pipeline.by_name("detect").expect("defectdetect");
    let plc = pipeline.by_name("plc").expect("defectmodbussink");
    // The frame's index is its PTS in microseconds: no clock is involved (the sink does not
    // sync).
    let index_of = |buffer: &gst::BufferRef| buffer.pts().map(|t| t.useconds() as usize);
    let entered: Arc<Mutex<Vec<(usize, Instant)>>> = Arc::default();
    let judged: Arc<Mutex<Vec<Judged>>> = Arc::default();
    {
        let entered = entered.clone();
        detect.static_pad("sink").expect("sink pad").add_probe(
            gst::PadProbeType::BUFFER,
            move |_, info| {
                let at = Instant::now();
                if let Some(index) = info.buffer().and_then(|b| index_of(b)) {
                    entered.lock().unwrap().push((index, at));
                }
                gst::PadProbeReturn::Ok
            },
        );
        let judged = judged.clone();
        detect.static_pad("src").expect("src pad").add_probe(
            gst::PadProbeType::BUFFER,
            move |_, info| {
                let at = Instant::now();
                if let Some(buffer) = info.buffer()
                    && let Some(index) = index_of(buffer)
                {
                    let verdict = frame_verdict(buffer)
                        .expect("a verdict on every frame")
                        .expect("a readable verdict");
                    judged.lock().unwrap().push(Judged {
                        index,
                        at,
                        verdict: verdict.verdict,
                        rejected: matches!(verdict.verdict, Verdict::Fail | Verdict::Unknown),
                    });
                }
                gst::PadProbeReturn::Ok
            },
        );
    }
    pipeline.set_state(gst::State::Playing).expect("playing");
    let bus = pipeline.bus().expect("bus");
    // The sink's `defect-reject` messages: from its render of the frame (the reject's due
    // time, with reject-delay-ms=0) to the start of the coil write.
    let render_to_write: std::cell::RefCell<Vec<Duration>> = Default::default();
    let check_bus = || {
        while let Some(message) = bus.pop() {
            match message.view() {
                gst::MessageView::Error(e) => {
                    panic!("pipeline error: {} ({:?})", e.error(), e.debug())
                }
                gst::MessageView::Element(m) => {
                    if let Some(Ok(reject)) = m
                        .structure()
                        .and_then(gstdefect::meta::RejectMessage::from_structure)
                    {
                        render_to_write
                            .borrow_mut()
                            .push(Duration::from_micros(reject.late_us));
                    }
                }
                _ => {}
            }
        }
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !plc.property::<bool>("connected") {
        check_bus();
        assert!(Instant::now() < deadline, "no connection to the server");
        std::thread::sleep(Duration::from_millis(5));
    }

    // Pushes `count` frames at the camera's pace, from frame `next` on, and waits until each
    // was judged and every reject's coil write arrived (or a second passed).
    let pushed: Arc<Mutex<Vec<(usize, Instant)>>> = Arc::default();
    let mut next = 0usize;
    let mut run_block = |count: usize| {
        let start = Instant::now() + Duration::from_millis(5);
        for i in 0..count {
            let due = start + period * i as u32;
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            let mut buffer = buffers[next % buffers.len()].copy();
            buffer
                .get_mut()
                .expect("writable")
                .set_pts(gst::ClockTime::from_useconds(next as u64));
            pushed.lock().unwrap().push((next, Instant::now()));
            src.push_buffer(buffer).expect("push");
            next += 1;
        }
        let deadline = Instant::now() + Duration::from_secs(600);
        while judged.lock().unwrap().len() < next {
            check_bus();
            assert!(Instant::now() < deadline, "frames were not judged");
            std::thread::sleep(Duration::from_millis(1));
        }
        let rejected = judged.lock().unwrap().iter().filter(|j| j.rejected).count();
        let deadline = Instant::now() + Duration::from_secs(1);
        while arrivals.lock().unwrap().len() < rejected && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        check_bus();
    };

    // Warm-up: the first frames (and the first reject) are not counted.
    let warm = 5;
    run_block(warm);
    render_to_write.borrow_mut().clear();
    let ticks_before = cpu_ticks();
    let mut measured = Measured::default();
    let mut done = 0;
    while done < frames {
        let count = block.min(frames - done);
        run_block(count);
        infer(count, &mut measured.inference);
        done += count;
    }
    let ticks_after = cpu_ticks();
    std::thread::sleep(Duration::from_millis(50));
    check_bus();
    let stats = (
        plc.property::<u64>("pulses"),
        plc.property::<u64>("missed-rejects"),
    );
    pipeline.set_state(gst::State::Null).expect("null");
    let _ = std::fs::remove_file(&policy);

    // Capture, verdict and coil arrival of each frame. The rejected frames' coil writes arrive
    // in their order, each after its verdict and before the next rejected frame's verdict.
    let pushed = pushed.lock().unwrap().clone();
    let entered = entered.lock().unwrap().clone();
    let mut judged = judged.lock().unwrap().clone();
    judged.sort_by_key(|j| j.index);
    let mut arrivals = arrivals.lock().unwrap().clone();
    arrivals.sort();
    let rejected: Vec<&Judged> = judged.iter().filter(|j| j.rejected).collect();
    let mut coil = arrivals.iter().peekable();
    for (k, j) in rejected.iter().enumerate() {
        let until = rejected.get(k + 1).map(|n| n.at);
        while coil.peek().is_some_and(|a| **a < j.at) {
            coil.next();
        }
        let arrival = coil.next_if(|a| until.is_none_or(|u| **a < u)).copied();
        if j.index < warm {
            continue;
        }
        let captured = pushed[j.index].1;
        match arrival {
            Some(a) => {
                measured.verdict_to_coil.push(a - j.at);
                measured.capture_to_coil.push(a - captured);
            }
            None => measured.unmatched += 1,
        }
    }
    for j in judged.iter().filter(|j| j.index >= warm) {
        measured.capture_to_verdict.push(j.at - pushed[j.index].1);
        measured.frames += 1;
        measured.rejected += usize::from(j.rejected);
        measured.unknown += usize::from(j.verdict == Verdict::Unknown);
    }
    for (index, at) in entered.iter().filter(|(i, _)| *i >= warm) {
        measured.capture_to_input.push(*at - pushed[*index].1);
    }

    println!(
        "{} frames of 1920x1080 RGB ({} distinct), {} rejected (of which UNKNOWN {}); \
         pulses {}, missed rejects {}, rejected frames without a coil write: {}",
        measured.frames,
        distinct,
        measured.rejected,
        measured.unknown,
        stats.0,
        stats.1,
        measured.unmatched
    );
    println!(
        "  {:<44} {:>8} {:>8} {:>8}",
        "milliseconds", "p50", "p99", "max"
    );
    let inference = quantiles(measured.inference.clone());
    let to_coil = quantiles(measured.capture_to_coil.clone());
    row("model inference (session run, ready tensor)", inference);
    row(
        "capture -> defectdetect's input",
        quantiles(measured.capture_to_input),
    );
    row("capture -> verdict", quantiles(measured.capture_to_verdict));
    row(
        "verdict -> coil write received",
        quantiles(measured.verdict_to_coil),
    );
    row(
        "  of which: sink's render -> write started",
        quantiles(render_to_write.take()),
    );
    row("capture -> coil write received", to_coil);
    println!(
        "capture -> coil write: p50 / inference p50 = {:.2} (target <= 1.5), \
         p99 / inference p50 = {:.2} (target <= 3), p99 / inference p99 = {:.2}",
        to_coil[0] / inference[0],
        to_coil[1] / inference[0],
        to_coil[1] / inference[1]
    );
    let total = ticks_after.0.saturating_sub(ticks_before.0).max(1);
    let steal = ticks_after.1.saturating_sub(ticks_before.1);
    println!(
        "load average after: {}; CPU time stolen by the hypervisor during the run: {:.1}%",
        load_average(),
        100.0 * steal as f64 / total as f64
    );
    assert!(
        measured.rejected > 0 && measured.unmatched == 0 && stats.1 == 0,
        "every rejected frame's coil write arrived"
    );
}
