// SPDX-License-Identifier: MIT OR Apache-2.0
//! Cross-stream batching (issue 17): `defectdetect` elements with the same model and
//! `batch-size` share one session and infer their frames together. Real pipelines
//! (`appsrc ! defectdetect ! appsink` per stream, all in one pipeline) on the squares test
//! model with a dynamic batch dimension (`models/test/squares_v8_batch.onnx`).
//!
//! Elements share batches process-wide when model, provider settings (`threads` among them)
//! and `batch-size` agree; the tests run in parallel in one process, so each gives its
//! elements a `threads` value of its own to keep its batches to itself.

mod common;

use std::time::{Duration, Instant};

use common::*;
use gst::glib;
use gst::prelude::*;
use gst_video::VideoFormat;

const SIDE: usize = 256;

/// A dark frame with a white square on window `white` and a red one on window `red`
/// (row, column of the squares model's 8-px window grid).
fn squares(white: (usize, usize), red: (usize, usize)) -> (RgbImage, Vec<Expected>) {
    let mut image = RgbImage::new(SIDE, SIDE, [12, 12, 12]);
    let mut expected = Vec::new();
    for ((row, col), colour, class, label_id) in [
        (white, [255, 255, 255], "white_square", 0),
        (red, [255, 0, 0], "red_square", 1),
    ] {
        let rect = window_box(SIDE, SIDE, row, col);
        image.fill_rect(
            rect[0] as usize,
            rect[1] as usize,
            rect[2] as usize,
            rect[3] as usize,
            colour,
        );
        expected.push(Expected {
            class,
            label_id,
            rect,
        });
    }
    (image, expected)
}

/// Frame `i` of stream `s`: squares in places no other frame of any stream has.
fn frame(s: usize, i: usize) -> (RgbImage, Vec<Expected>) {
    squares((2 + 3 * i, 1 + 6 * s), (20 - 2 * i, 24 - 5 * s))
}

struct Streams {
    pipeline: gst::Pipeline,
    sources: Vec<gst_app::AppSrc>,
    sinks: Vec<gst_app::AppSink>,
    detectors: Vec<gst::Element>,
}

/// `n` streams `appsrc ! defectdetect model=<model> <properties> ! appsink`, playing.
fn streams(n: usize, model: &str, properties: &str) -> Streams {
    init();
    let description = (0..n)
        .map(|i| {
            format!(
                "appsrc name=src{i} format=time ! defectdetect name=det{i} model={} \
                 execution-provider=cpu {properties} ! appsink name=sink{i} sync=false",
                test_model(model)
            )
        })
        .collect::<Vec<_>>()
        .join("  ");
    let pipeline = gst::parse::launch(&description)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let by_name = |name: String| pipeline.by_name(&name).unwrap();
    let sources: Vec<gst_app::AppSrc> = (0..n)
        .map(|i| by_name(format!("src{i}")).downcast().unwrap())
        .collect();
    for source in &sources {
        source.set_caps(Some(&caps(VideoFormat::Rgb, SIDE, SIDE)));
        source.set_max_bytes(0);
    }
    let sinks = (0..n)
        .map(|i| by_name(format!("sink{i}")).downcast().unwrap())
        .collect();
    let detectors = (0..n).map(|i| by_name(format!("det{i}"))).collect();
    pipeline.set_state(gst::State::Playing).unwrap();
    Streams {
        pipeline,
        sources,
        sinks,
        detectors,
    }
}

fn push(source: &gst_app::AppSrc, image: &RgbImage, i: usize) {
    let mut buffer = frame_buffer(image, VideoFormat::Rgb, 0);
    buffer
        .get_mut()
        .unwrap()
        .set_pts(gst::ClockTime::from_mseconds(40 * i as u64));
    source.push_buffer(buffer).unwrap();
}

/// Every frame's ROIs of a sink, until end of stream.
fn pull_all(sink: &gst_app::AppSink) -> Vec<Vec<Roi>> {
    std::iter::from_fn(|| sink.try_pull_sample(gst::ClockTime::from_seconds(60)))
        .map(|sample| rois(sample.buffer().unwrap()))
        .collect()
}

/// Errors posted so far.
fn errors(pipeline: &gst::Pipeline) -> Vec<String> {
    let bus = pipeline.bus().unwrap();
    std::iter::from_fn(|| bus.pop())
        .filter_map(|message| match message.view() {
            gst::MessageView::Error(e) => Some(format!("{} ({:?})", e.error(), e.debug())),
            _ => None,
        })
        .collect()
}

/// Runs `counts[s]` frames through stream `s` of `counts.len()` streams (all pushed, then end
/// of stream) and returns each stream's ROIs per frame, each element's `batched-frames`, and
/// the warnings; fails on an error message or a missing end of stream.
fn run(
    model: &str,
    properties: &str,
    counts: &[usize],
) -> (Vec<Vec<Vec<Roi>>>, Vec<u64>, Vec<String>) {
    let s = streams(counts.len(), model, properties);
    for (stream, (source, &count)) in s.sources.iter().zip(counts).enumerate() {
        for i in 0..count {
            push(source, &frame(stream, i).0, i);
        }
        source.end_of_stream().unwrap();
    }
    let results: Vec<_> = s.sinks.iter().map(pull_all).collect();
    let bus = s.pipeline.bus().unwrap();
    let mut warnings = Vec::new();
    loop {
        let message = bus
            .timed_pop(gst::ClockTime::from_seconds(60))
            .expect("end of stream within a minute");
        match message.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Warning(w) => warnings.push(w.error().to_string()),
            gst::MessageView::Error(e) => panic!("{} ({:?})", e.error(), e.debug()),
            _ => {}
        }
    }
    let batched = s
        .detectors
        .iter()
        .map(|d| d.property::<u64>("batched-frames"))
        .collect();
    s.pipeline.set_state(gst::State::Null).unwrap();
    (results, batched, warnings)
}

#[test]
fn batch_properties_are_visible_with_defaults_and_ranges() {
    init();
    let element = gst::ElementFactory::make("defectdetect").build().unwrap();
    let spec = |name: &str| element.find_property(name).unwrap();
    let size = spec("batch-size");
    let size = size.downcast_ref::<glib::ParamSpecUInt>().unwrap();
    assert_eq!(
        (size.default_value(), size.minimum(), size.maximum()),
        (1, 1, 64)
    );
    assert!(size.blurb().unwrap().contains("dynamic batch dimension"));
    let timeout = spec("batch-timeout-ms");
    let timeout = timeout.downcast_ref::<glib::ParamSpecUInt>().unwrap();
    assert_eq!(timeout.default_value(), 5);
    assert_eq!(timeout.maximum(), 10_000);
    for name in ["batch-size", "batch-timeout-ms"] {
        assert!(
            spec(name)
                .flags()
                .contains(gst::PARAM_FLAG_MUTABLE_READY | glib::ParamFlags::WRITABLE),
            "{name}"
        );
    }
    assert!(
        !spec("batched-frames")
            .flags()
            .contains(glib::ParamFlags::WRITABLE)
    );
    element.set_property("batch-size", 4u32);
    element.set_property("batch-timeout-ms", 20u32);
    assert_eq!(element.property::<u32>("batch-size"), 4);
    assert_eq!(element.property::<u32>("batch-timeout-ms"), 20);
    assert_eq!(element.property::<u64>("batched-frames"), 0);
}

/// Two streams with different frames share every batch (the long timeout means a batch runs
/// only when both frames are in) and each gets exactly its own detections: the squares where
/// its frame has them, equal to the batch-size=1 results.
#[test]
fn two_streams_share_batches_and_get_their_own_results() {
    const FRAMES: usize = 6;
    let (batched, counts, warnings) = run(
        "squares_v8_batch",
        "batch-size=2 batch-timeout-ms=10000 threads=1",
        &[FRAMES; 2],
    );
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(counts, vec![FRAMES as u64; 2], "every frame shared a batch");
    let (alone, alone_counts, _) = run("squares_v8_batch", "batch-size=1 threads=1", &[FRAMES; 2]);
    assert_eq!(alone_counts, vec![0, 0]);
    for stream in 0..2 {
        assert_eq!(batched[stream].len(), FRAMES);
        for i in 0..FRAMES {
            let context = format!("stream {stream} frame {i}");
            let got = &batched[stream][i];
            assert_rois(got, &frame(stream, i).1, SIDE, SIDE, 1.0, &context);
            let want = &alone[stream][i];
            assert_eq!(got.len(), want.len(), "{context}");
            for (g, w) in got.iter().zip(want) {
                assert_eq!((g.label_id, g.rect), (w.label_id, w.rect), "{context}");
                assert!((g.confidence - w.confidence).abs() < 1e-5, "{context}");
                for (a, b) in g.normalised.iter().zip(w.normalised) {
                    assert!((a - b).abs() < 1e-5, "{context}: {g:?} vs {w:?}");
                }
            }
        }
    }
}

/// Four streams in batches of up to four, some ending early: every frame of every stream comes
/// out with its own squares, and the pipeline reaches end of stream.
#[test]
fn four_streams_of_different_lengths_reach_end_of_stream() {
    let counts = [5, 1, 3, 0];
    let (results, batched, _) = run(
        "squares_v8_batch",
        "batch-size=4 batch-timeout-ms=20 threads=2",
        &counts,
    );
    for (stream, &count) in counts.iter().enumerate() {
        assert_eq!(results[stream].len(), count, "stream {stream}");
        for (i, got) in results[stream].iter().enumerate() {
            assert_rois(
                got,
                &frame(stream, i).1,
                SIDE,
                SIDE,
                1.0,
                &format!("stream {stream} frame {i}"),
            );
        }
    }
    assert_eq!(batched[3], 0);
}

/// One stream stops after two frames, the other goes on: its frames no longer find a partner
/// and run alone when their timeout expires; both streams end.
#[test]
fn end_of_stream_with_one_stream_stopped() {
    let (results, batched, _) = run(
        "squares_v8_batch",
        "batch-size=2 batch-timeout-ms=30 threads=3",
        &[2, 8],
    );
    assert_eq!(results[0].len(), 2);
    assert_eq!(results[1].len(), 8);
    for (stream, frames) in results.iter().enumerate() {
        for (i, got) in frames.iter().enumerate() {
            assert_rois(
                got,
                &frame(stream, i).1,
                SIDE,
                SIDE,
                1.0,
                &format!("stream {stream} frame {i}"),
            );
        }
    }
    assert!(
        batched[1] <= 2,
        "at most the first two frames had a partner: {batched:?}"
    );
}

/// A lone stream with batch-size=4: each frame runs alone when its timeout expires.
#[test]
fn a_lone_frame_is_released_by_its_timeout() {
    let (results, batched, _) = run(
        "squares_v8_batch",
        "batch-size=4 batch-timeout-ms=50 threads=4",
        &[3],
    );
    assert_eq!(results[0].len(), 3);
    for (i, got) in results[0].iter().enumerate() {
        assert_rois(got, &frame(0, i).1, SIDE, SIDE, 1.0, &format!("frame {i}"));
    }
    assert_eq!(batched, vec![0]);
}

/// A model whose batch dimension is fixed: a warning naming the problem, and frames inferred
/// one at a time, correctly.
#[test]
fn a_static_batch_model_warns_and_runs_frames_alone() {
    let (results, batched, warnings) =
        run("squares_v8", "batch-size=2 batch-timeout-ms=10000", &[3, 3]);
    assert!(
        warnings.iter().any(
            |w| w.contains("batch-size=2 needs a dynamic batch dimension")
                && w.contains("[1, 3, 256, 256]")
        ),
        "{warnings:?}"
    );
    assert_eq!(batched, vec![0, 0]);
    for (stream, frames) in results.iter().enumerate() {
        assert_eq!(frames.len(), 3);
        for (i, got) in frames.iter().enumerate() {
            assert_rois(
                got,
                &frame(stream, i).1,
                SIDE,
                SIDE,
                1.0,
                &format!("stream {stream} frame {i}"),
            );
        }
    }
}

/// Pushes one frame into a stream whose batch waits 10 s for a partner that never comes, and
/// gives the frame time to start waiting.
fn one_waiting_frame(threads: u32) -> Streams {
    let s = streams(
        1,
        "squares_v8_batch",
        &format!("batch-size=2 batch-timeout-ms=10000 threads={threads}"),
    );
    push(&s.sources[0], &frame(0, 0).0, 0);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        s.sinks[0].try_pull_sample(gst::ClockTime::ZERO).is_none(),
        "the frame is still waiting for a partner"
    );
    s
}

/// Stopping the element ends the wait at once, not after the 10 s timeout.
#[test]
fn a_waiting_frame_is_released_when_its_element_stops() {
    let s = one_waiting_frame(5);
    let started = Instant::now();
    s.pipeline.set_state(gst::State::Null).unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "stopping took {took:?}");
}

/// A flush ends the wait at once: flush-stop (which waits for the streaming thread to leave
/// the element) returns long before the 10 s timeout, and nothing is reported as an error.
#[test]
fn a_waiting_frame_is_released_on_flush() {
    let s = one_waiting_frame(6);
    let sinkpad = s.detectors[0].static_pad("sink").unwrap();
    let started = Instant::now();
    assert!(sinkpad.send_event(gst::event::FlushStart::new()));
    assert!(sinkpad.send_event(gst::event::FlushStop::new(true)));
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "the flush took {took:?}");
    let errors = errors(&s.pipeline);
    assert!(errors.is_empty(), "{errors:?}");
    s.pipeline.set_state(gst::State::Null).unwrap();
}

/// A dynamic-batch copy of the bundled model, made by scripts/make_batch_models.py (once per
/// test process) in cargo's temporary folder for tests.
fn bundled_batch_model() -> std::path::PathBuf {
    static MADE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    MADE.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
        let out = dir.join("surface-defects-batch.onnx");
        let partial = dir.join(format!("surface-defects-batch.{}.onnx", std::process::id()));
        let python = repo_path(".venv/bin/python");
        let status = std::process::Command::new(&python)
            .arg(repo_path("scripts/make_batch_models.py"))
            .arg("dynamic")
            .arg(repo_path("models/surface-defects.onnx"))
            .arg(&partial)
            .status()
            .unwrap_or_else(|e| panic!("{} (run scripts/setup.sh): {e}", python.display()));
        assert!(status.success(), "make_batch_models.py failed");
        std::fs::rename(&partial, &out).unwrap();
        out
    })
    .clone()
}

/// The first `frames` frames of the colour and the mono recording through the bundled model's
/// dynamic-batch copy, one stream each: ROIs per frame (by timestamp) per stream and
/// `batched-frames`.
type Timed = std::collections::BTreeMap<Option<gst::ClockTime>, Vec<Roi>>;

fn recordings(properties: &str, frames: usize) -> (Vec<Timed>, Vec<u64>) {
    init();
    let model = bundled_batch_model();
    let description = ["conveyor_color", "conveyor_mono"]
        .iter()
        .enumerate()
        .map(|(i, video)| {
            format!(
                "filesrc location={} ! decodebin ! videoconvert ! video/x-raw,format=RGB ! \
                 identity eos-after={frames} ! defectdetect name=det{i} model={} \
                 execution-provider=cpu {properties} ! appsink name=sink{i} sync=false",
                repo_path(&format!("tests/data/{video}.mp4")).display(),
                model.display()
            )
        })
        .collect::<Vec<_>>()
        .join("  ");
    let pipeline = gst::parse::launch(&description)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let sinks: Vec<gst_app::AppSink> = (0..2)
        .map(|i| {
            pipeline
                .by_name(&format!("sink{i}"))
                .unwrap()
                .downcast()
                .unwrap()
        })
        .collect();
    pipeline.set_state(gst::State::Playing).unwrap();
    // Pulled in turn: an appsink left unread would stall its stream and its partner with it.
    let mut results = vec![Timed::new(), Timed::new()];
    let mut open = [true, true];
    while open.iter().any(|o| *o) {
        for (i, sink) in sinks.iter().enumerate() {
            if !open[i] {
                continue;
            }
            match sink.try_pull_sample(gst::ClockTime::from_seconds(60)) {
                Some(sample) => {
                    let buffer = sample.buffer().unwrap();
                    results[i].insert(buffer.pts(), rois(buffer));
                }
                None => open[i] = false,
            }
        }
    }
    let batched = (0..2)
        .map(|i| {
            pipeline
                .by_name(&format!("det{i}"))
                .unwrap()
                .property::<u64>("batched-frames")
        })
        .collect();
    let errors = errors(&pipeline);
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    (results, batched)
}

/// The bundled model (its dynamic-batch copy) on the two recordings: batched, each stream's
/// detections equal those of the same frames inferred alone, within float tolerance.
#[test]
fn the_bundled_model_batched_gives_each_stream_its_own_detections() {
    const FRAMES: usize = 24;
    let (batched, counts) = recordings("batch-size=2 batch-timeout-ms=10000 threads=7", FRAMES);
    let (alone, _) = recordings("batch-size=1 threads=7", FRAMES);
    assert!(
        counts.iter().all(|&c| c > 0),
        "frames shared batches: {counts:?}"
    );
    let mut compared = 0;
    for stream in 0..2 {
        // The last frame before identity's end of stream varies from run to run: frames are
        // matched by timestamp.
        let common: Vec<_> = batched[stream]
            .keys()
            .filter(|pts| alone[stream].contains_key(pts))
            .collect();
        assert!(
            common.len() >= FRAMES,
            "stream {stream}: {} frames",
            common.len()
        );
        for pts in common {
            let (got, want) = (&batched[stream][pts], &alone[stream][pts]);
            let context = format!("stream {stream} frame at {pts:?}");
            assert_eq!(got.len(), want.len(), "{context}: {got:?} vs {want:?}");
            for (g, w) in got.iter().zip(want) {
                assert_eq!(g.label_id, w.label_id, "{context}");
                assert!(
                    (g.confidence - w.confidence).abs() < 1e-4,
                    "{context}: {g:?} vs {w:?}"
                );
                for (a, b) in g.normalised.iter().zip(w.normalised) {
                    assert!((a - b).abs() < 1e-4, "{context}: {g:?} vs {w:?}");
                }
                compared += 1;
            }
        }
    }
    assert!(compared >= 10, "only {compared} detections compared");
    eprintln!("{compared} detections compared; batched frames {counts:?}");
}

/// With `async-inference` the worker threads of two elements batch together too: every frame
/// carries its own stream's squares or nothing yet (verdict UNKNOWN), never the other stream's,
/// and both streams end. Frames are paced (the worker skips frames that arrive while it is
/// busy) until both streams have results.
#[test]
fn asynchronous_inference_batches_without_cross_talk() {
    let s = streams(
        2,
        "squares_v8_batch",
        "batch-size=2 batch-timeout-ms=1000 async-inference=true threads=8",
    );
    // Every frame of a stream alike: a carried result is still that stream's squares.
    let images: Vec<_> = (0..2).map(|stream| frame(stream, 0)).collect();
    let mut frames = [Vec::new(), Vec::new()];
    for i in 0..500 {
        for (source, (image, _)) in s.sources.iter().zip(&images) {
            push(source, image, i);
        }
        for (sink, out) in s.sinks.iter().zip(frames.iter_mut()) {
            let sample = sink
                .try_pull_sample(gst::ClockTime::from_seconds(60))
                .expect("async inference never holds a frame back");
            out.push(rois(sample.buffer().unwrap()));
        }
        if i >= 10 && frames.iter().all(|f| f.iter().any(|r| !r.is_empty())) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for source in &s.sources {
        source.end_of_stream().unwrap();
    }
    for (stream, sink) in s.sinks.iter().enumerate() {
        frames[stream].extend(pull_all(sink));
        let mut with_results = 0;
        for (i, got) in frames[stream].iter().enumerate() {
            if !got.is_empty() {
                let context = format!("stream {stream} frame {i}");
                assert_rois(got, &images[stream].1, SIDE, SIDE, 1.0, &context);
                with_results += 1;
            }
        }
        assert!(with_results > 0, "stream {stream}: no frame got a result");
    }
    let errors = errors(&s.pipeline);
    assert!(errors.is_empty(), "{errors:?}");
    // Both workers take their first frame at once: that batch is shared.
    for detector in &s.detectors {
        assert!(detector.property::<u64>("batched-frames") > 0);
    }
    s.pipeline.set_state(gst::State::Null).unwrap();
}

/// A `width` x `height` frame with a white and a red square of stream `s`, frame `i`, on model
/// windows of their own.
fn sized_frame(width: usize, height: usize, s: usize, i: usize) -> (RgbImage, Vec<Expected>) {
    let mut image = RgbImage::new(width, height, [12, 12, 12]);
    let mut expected = Vec::new();
    // Rows 4..=20: inside the frame's part of the model input for 4:3 frames too.
    let (white, red) = ((5 + 3 * i, 1 + 4 * s), (20 - 2 * i, 24 - 4 * s));
    for ((row, col), colour, class, label_id) in [
        (white, [255, 255, 255], "white_square", 0),
        (red, [255, 0, 0], "red_square", 1),
    ] {
        let b = window_box(width, height, row, col);
        image.fill_rect(
            b[0].round() as usize,
            b[1].round() as usize,
            b[2].round() as usize,
            b[3].round() as usize,
            colour,
        );
        expected.push(Expected {
            class,
            label_id,
            rect: b,
        });
    }
    (image, expected)
}

/// Three streams of different frame sizes share batches of three; the third sends one frame
/// and then stalls (no frame, no end of stream): the other two never wait for it longer than
/// the batch timeout, every frame of every stream gets its own squares at its own scale, and
/// the stalled stream's frame comes out too.
#[test]
fn three_streams_of_different_sizes_with_a_stalled_partner() {
    const FRAMES: usize = 5;
    let sizes = [(256, 256), (512, 384), (640, 480)];
    let s = streams(
        3,
        "squares_v8_batch",
        "batch-size=3 batch-timeout-ms=40 threads=9",
    );
    for (source, &(w, h)) in s.sources.iter().zip(&sizes) {
        source.set_caps(Some(&caps(VideoFormat::Rgb, w, h)));
    }
    let started = Instant::now();
    push(&s.sources[2], &sized_frame(640, 480, 2, 0).0, 0);
    for i in 0..FRAMES {
        for (stream, &(w, h)) in sizes[..2].iter().enumerate() {
            push(&s.sources[stream], &sized_frame(w, h, stream, i).0, i);
        }
    }
    for source in &s.sources[..2] {
        source.end_of_stream().unwrap();
    }
    for (stream, &(w, h)) in sizes[..2].iter().enumerate() {
        let got = pull_all(&s.sinks[stream]);
        assert_eq!(got.len(), FRAMES, "stream {stream}");
        for (i, rois) in got.iter().enumerate() {
            let context = format!("stream {stream} ({w}x{h}) frame {i}");
            assert_rois(rois, &sized_frame(w, h, stream, i).1, w, h, 2.5, &context);
        }
    }
    let stalled = s.sinks[2]
        .try_pull_sample(gst::ClockTime::from_seconds(10))
        .expect("the stalled stream's one frame came out");
    assert_rois(
        &rois(stalled.buffer().unwrap()),
        &sized_frame(640, 480, 2, 0).1,
        640,
        480,
        2.5,
        "stalled stream",
    );
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(30),
        "the streams waited for the stalled one: {took:?}"
    );
    let errors = errors(&s.pipeline);
    assert!(errors.is_empty(), "{errors:?}");
    assert!(
        s.detectors[0].property::<u64>("batched-frames") > 0,
        "the two running streams shared batches"
    );
    s.pipeline.set_state(gst::State::Null).unwrap();
}

/// Two elements with the same model file and batch settings but different `labels` files
/// share the model's batches, and each names its detections with its own labels: no label,
/// box or frame of one stream in the other's.
#[test]
fn two_copies_of_one_model_with_different_labels_share_batches_without_cross_talk() {
    const FRAMES: usize = 4;
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("batch-labels-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let names = [["alpha_white", "alpha_red"], ["beta_white", "beta_red"]];
    let files: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(k, n)| {
            let path = dir.join(format!("labels-{k}.txt"));
            std::fs::write(&path, format!("{}\n{}\n", n[0], n[1])).unwrap();
            path
        })
        .collect();
    let s = streams(
        2,
        "squares_v8_batch",
        "batch-size=2 batch-timeout-ms=10000 threads=10",
    );
    // Labels are read at start: set them, then restart the elements' streams.
    s.pipeline.set_state(gst::State::Null).unwrap();
    for (detector, file) in s.detectors.iter().zip(&files) {
        detector.set_property("labels", file.display().to_string());
    }
    s.pipeline.set_state(gst::State::Playing).unwrap();
    for i in 0..FRAMES {
        for (stream, source) in s.sources.iter().enumerate() {
            push(source, &frame(stream, i).0, i);
        }
    }
    for source in &s.sources {
        source.end_of_stream().unwrap();
    }
    for (stream, sink) in s.sinks.iter().enumerate() {
        let got = pull_all(sink);
        assert_eq!(got.len(), FRAMES, "stream {stream}");
        for (i, rois) in got.iter().enumerate() {
            let context = format!("stream {stream} frame {i}");
            // The stream's own squares, named with its own labels.
            let mut expected = frame(stream, i).1;
            for (e, name) in expected.iter_mut().zip(names[stream]) {
                e.class = name;
            }
            assert_rois(rois, &expected, SIDE, SIDE, 1.0, &context);
            let other = &names[1 - stream];
            assert!(
                rois.iter().all(|r| !other.contains(&r.label.as_str())),
                "{context}: the other stream's labels: {rois:?}"
            );
        }
    }
    let errors = errors(&s.pipeline);
    assert!(errors.is_empty(), "{errors:?}");
    for detector in &s.detectors {
        assert_eq!(
            detector.property::<u64>("batched-frames"),
            FRAMES as u64,
            "every frame shared a batch with the other copy"
        );
    }
    s.pipeline.set_state(gst::State::Null).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
