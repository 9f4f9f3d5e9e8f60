// SPDX-License-Identifier: MIT OR Apache-2.0
//! `cargo bench --bench drift_cost`: what drift costs per 1080p frame, against the frame time
//! of `defectdetect` measured in the same run.
//!
//! 1. the drift step alone on a 1920x1080 frame (RGB and NV12): image statistics on the
//!    subsampled grid (about 20,000 pixels) plus the monitor's update (a window compared
//!    every `step` frames), and, for scale, the same statistics on every pixel;
//! 2. `appsrc ! defectdetect ! fakesink` on 1080p RGB frames with the bundled model, `drift`
//!    off and on, in alternating blocks of frames (a slow spell of the shared machine falls on
//!    both alike): the element's frame time, and the difference drift makes.
//!
//! The drift cost is printed as a share of the element's frame time and of a 30 fps frame
//! period (target: at most 3 %). `BENCH_MODEL`, `BENCH_THREADS` (default 2), `BENCH_BLOCKS`
//! (default 6 blocks of 10 frames per setting).

use std::time::{Duration, Instant};

mod common;
use common::{env_or, time_per_call};

use gst::prelude::*;
use gstdefect::frame::{FrameView, PixelFormat, YuvMatrix};
use gstdefect::meta::Verdict;
use gstdefect::monitor::drift::{DriftMonitor, Observation, image_stats, sample_step};
use gstdefect::policy::DriftConfig;

/// A textured 1080p frame: a gradient with noise.
fn texture(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (((i % 5760) / 30) as u32 + ((i as u32).wrapping_mul(2654435761) >> 27)) as u8)
        .collect()
}

/// The drift step of one frame: statistics plus the monitor's update.
fn drift_step_cost(format: PixelFormat, seconds: f64) -> (Duration, Duration, Duration) {
    let (w, h) = (1920u32, 1080u32);
    let (data, planes, strides): (Vec<u8>, [usize; 3], [usize; 3]) = match format {
        PixelFormat::Nv12 => (
            texture((w * h * 3 / 2) as usize),
            [0, (w * h) as usize, 0],
            [w as usize, w as usize, 0],
        ),
        _ => (
            texture((w * h * 3) as usize),
            [0, 0, 0],
            [w as usize * 3, 0, 0],
        ),
    };
    let view = match format {
        PixelFormat::Nv12 => FrameView {
            width: w,
            height: h,
            planes: [&data[..planes[1]], &data[planes[1]..], &[]],
            strides,
        },
        _ => FrameView {
            width: w,
            height: h,
            planes: [&data, &[], &[]],
            strides,
        },
    };
    let classes: Vec<String> = (0..6).map(|c| format!("class{c}")).collect();
    let mut monitor = DriftMonitor::new(DriftConfig::default(), classes, None);
    let step = sample_step(w, h);
    let mut frame = 0u64;
    let yuv = YuvMatrix::bt601();
    let subsampled = time_per_call(seconds, || {
        let image = image_stats(&view, format, yuv, step).expect("stats");
        let observation = Observation {
            frame,
            image: Some(image),
            inspected: true,
            detections: vec![(frame as usize % 6, 0.7), (1, 0.5)],
            verdict: Verdict::Fail,
            anomaly_score: None,
        };
        std::hint::black_box(monitor.observe(&observation));
        frame += 1;
    });
    let stats_only = time_per_call(seconds, || {
        std::hint::black_box(image_stats(&view, format, yuv, step).expect("stats"));
    });
    let full = time_per_call(seconds, || {
        std::hint::black_box(image_stats(&view, format, yuv, 1).expect("stats"));
    });
    (subsampled, stats_only, full)
}

/// Frame time of `defectdetect` with drift off and on, in alternating blocks of `block`
/// frames.
fn element_frame_time(model: &str, threads: u32, blocks: u32, block: u32) -> (Duration, Duration) {
    let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, 1920, 1080)
        .fps(gst::Fraction::new(30, 1))
        .build()
        .expect("video info");
    let data = texture(info.size());
    let run = |drift: bool| {
        let pipeline = gst::parse::launch(&format!(
            "appsrc name=src format=time max-bytes=0 block=true ! \
             defectdetect model={model} threads={threads} drift={drift} ! fakesink name=sink sync=false"
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
        (pipeline, src, finished)
    };
    let template = gst::Buffer::from_mut_slice(data);
    let settings = [run(false), run(true)];
    let mut pts = [0u64; 2];
    let mut push_and_wait = |which: usize, count: u32| {
        let (_, src, finished) = &settings[which];
        let started = Instant::now();
        for _ in 0..count {
            let mut buffer = template.copy();
            buffer
                .get_mut()
                .expect("writable")
                .set_pts(gst::ClockTime::from_mseconds(33 * pts[which]));
            pts[which] += 1;
            src.push_buffer(buffer).expect("push");
        }
        for _ in 0..count {
            finished
                .recv_timeout(Duration::from_secs(600))
                .expect("a frame through the pipeline");
        }
        started.elapsed()
    };
    push_and_wait(0, 3);
    push_and_wait(1, 3);
    let mut totals = [Duration::ZERO; 2];
    for _ in 0..blocks {
        for (which, total) in totals.iter_mut().enumerate() {
            *total += push_and_wait(which, block);
        }
    }
    for (pipeline, _, _) in &settings {
        pipeline.set_state(gst::State::Null).expect("null");
    }
    let frames = blocks * block;
    (totals[0] / frames, totals[1] / frames)
}

fn main() {
    let root = env!("CARGO_MANIFEST_DIR");
    let model = std::env::var("BENCH_MODEL")
        .unwrap_or_else(|_| format!("{root}/models/surface-defects.onnx"));
    let threads: u32 = env_or("BENCH_THREADS", 2);
    let blocks: u32 = env_or("BENCH_BLOCKS", 6);
    gst::init().expect("gst init");
    gstdefect::plugin_register_static().expect("register");
    println!(
        "CPU: {}",
        gstdefect::runtime::cpu::CpuDescription::detect().summary()
    );
    println!(
        "1920x1080: image statistics on a grid of every {}th pixel ({} samples)",
        sample_step(1920, 1080),
        (1920u32.div_ceil(sample_step(1920, 1080))) * (1080u32.div_ceil(sample_step(1920, 1080)))
    );
    let (rgb, rgb_stats, rgb_full) = drift_step_cost(PixelFormat::RGB, 3.0);
    let (nv12, nv12_stats, nv12_full) = drift_step_cost(PixelFormat::Nv12, 3.0);
    let (off, on) = element_frame_time(&model, threads, blocks, 10);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let period = 1000.0 / 30.0;
    println!("model: {model}, {threads} ONNX Runtime threads");
    println!(
        "defectdetect frame time, 1080p RGB: {:.2} ms with drift off, {:.2} ms with drift on ({:+.2} ms)",
        ms(off),
        ms(on),
        ms(on) - ms(off)
    );
    for (name, cost, stats, full) in [
        ("RGB", rgb, rgb_stats, rgb_full),
        ("NV12", nv12, nv12_stats, nv12_full),
    ] {
        println!(
            "drift step, 1080p {name}: {:.3} ms = {:.2} % of the element's frame time, {:.2} % of a 30 fps frame period (of which image statistics {:.3} ms; on every pixel they would take {:.2} ms)",
            ms(cost),
            100.0 * ms(cost) / ms(off),
            100.0 * ms(cost) / period,
            ms(stats),
            ms(full)
        );
    }
}
