// SPDX-License-Identifier: MIT OR Apache-2.0
//! Drift through the real element: the bundled recording through `defectdetect` with the
//! bundled model and policy, learning its baseline from the first frames; then the image
//! dimmed to 55 % (one drift episode: one `defect-drift` message, one warning naming
//! brightness, within 150 frames of the change) or left alone (no episode). The longer cases
//! (defocus, dust, another product, 3,000 clean frames) are in scripts/drift_cases.py. A seek
//! (a flush, a new segment) starts the rolling window over.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::{caps, init, repo_path};
use gst::prelude::*;
use gstdefect::meta::DriftReport;
use gstdefect::meta::prelude::*;

/// The recording is 300 frames: learn from the first loop, change from frame `ONSET` of the
/// second.
const LEARN: u64 = 300;
const ONSET: u64 = 400;
const FRAMES: u64 = 600;
/// The default window and step.
const WINDOW: u64 = 150;
const STEP: u64 = 15;

struct Run {
    messages: Vec<DriftReport>,
    warnings: Vec<String>,
    events: Vec<DriftReport>,
    frames: u64,
}

/// The recording played twice through defectdetect with the bundled policy (learning from the
/// first `LEARN` frames, the default window), dimmed to `gain` from `ONSET` on.
fn run(gain: Option<f32>) -> Run {
    init();
    let policy = repo_path("pipelines/policy.toml");
    let video = repo_path("tests/data/conveyor_color.mp4");
    let source = format!(
        "filesrc location={} ! qtdemux ! h264parse ! avdec_h264 ! c.",
        video.display()
    );
    let pipeline = gst::parse::launch(&format!(
        "concat name=c ! videoconvert ! video/x-raw,format=RGB ! identity name=change ! \
         defectdetect name=detect model={} policy={} threads=2 drift-learn-frames={LEARN} ! \
         fakesink name=sink sync=false {source} {source}",
        repo_path("models/surface-defects.onnx").display(),
        policy.display()
    ))
    .expect("pipeline")
    .downcast::<gst::Pipeline>()
    .unwrap();
    let seen = Arc::new(AtomicU64::new(0));
    let counter = seen.clone();
    pipeline
        .by_name("change")
        .unwrap()
        .static_pad("src")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            if let (Some(gain), true) = (gain, n >= ONSET)
                && let Some(gst::PadProbeData::Buffer(buffer)) = &mut info.data
            {
                let buffer = buffer.make_mut();
                let mut map = buffer.map_writable().unwrap();
                for v in map.iter_mut() {
                    *v = (*v as f32 * gain + 0.5) as u8;
                }
            }
            gst::PadProbeReturn::Ok
        });
    let events = Arc::new(Mutex::new(Vec::new()));
    let store = events.clone();
    pipeline
        .by_name("sink")
        .unwrap()
        .static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
            if let Some(gst::PadProbeData::Event(event)) = &info.data
                && let Some(report) = DriftReport::from_event(event)
            {
                store
                    .lock()
                    .unwrap()
                    .push(report.expect("a well-formed drift event"));
            }
            gst::PadProbeReturn::Ok
        });
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let (mut messages, mut warnings) = (Vec::new(), Vec::new());
    for message in bus.iter_timed(gst::ClockTime::from_seconds(900)) {
        match message.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("{} ({:?})", e.error(), e.debug()),
            gst::MessageView::Warning(w) => warnings.push(w.error().to_string()),
            gst::MessageView::Element(e) => {
                if let Some(report) = e.structure().and_then(DriftReport::from_structure) {
                    messages.push(report.expect("a well-formed drift message"));
                }
            }
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    let events = events.lock().unwrap().clone();
    Run {
        messages,
        warnings,
        events,
        frames: seen.load(Ordering::SeqCst),
    }
}

#[test]
fn the_image_dimmed_to_55_percent_starts_one_drift_episode_within_150_frames() {
    let run = run(Some(0.55));
    assert_eq!(run.frames, FRAMES);
    assert_eq!(run.messages.len(), 1, "{:?}", run.messages);
    let onset = &run.messages[0];
    assert!(onset.active && onset.episode == 1);
    assert!(
        (ONSET..ONSET + 150).contains(&onset.frame),
        "episode at frame {}, change at {ONSET}",
        onset.frame
    );
    let brightness = onset
        .features
        .iter()
        .find(|f| f.name == "brightness")
        .expect("brightness compared");
    // Part of the window is dimmed: its mean is below the baseline's, not yet at 55 %.
    assert!(
        brightness.moved && brightness.current < brightness.baseline * 0.95,
        "{brightness:?}"
    );
    let drift_warnings: Vec<_> = run
        .warnings
        .iter()
        .filter(|w| w.contains("drift"))
        .collect();
    assert_eq!(drift_warnings.len(), 1, "{:?}", run.warnings);
    assert!(
        drift_warnings[0].contains("brightness (PSI"),
        "{}",
        drift_warnings[0]
    );
    // Every window went downstream; the episode is on in each one after its start.
    assert_eq!(
        run.events.len() as u64,
        (FRAMES - LEARN - WINDOW) / STEP + 1
    );
    assert!(
        run.events
            .iter()
            .all(|e| e.active == (e.frame >= onset.frame))
    );
}

#[test]
fn the_recording_played_again_starts_no_episode() {
    let run = run(None);
    assert_eq!(run.frames, FRAMES);
    assert!(run.messages.is_empty(), "{:?}", run.messages);
    assert!(
        run.warnings.iter().all(|w| !w.contains("drift")),
        "{:?}",
        run.warnings
    );
    assert!(!run.events.is_empty() && run.events.iter().all(|e| !e.active));
}

/// A 160x120 RGB frame: a fixed texture over grey `level`.
fn textured_frame(level: u8) -> gst::Buffer {
    let (w, h) = (160usize, 120usize);
    let mut pixels = vec![0u8; w * h * 3];
    for (i, px) in pixels.chunks_mut(3).enumerate() {
        let (x, y) = (i % w, i / w);
        let v = level + ((x * 7 + y * 13) % 32) as u8;
        px.copy_from_slice(&[v, v, v]);
    }
    gst::Buffer::from_mut_slice(pixels)
}

/// The drift windows reported downstream since the last call.
fn drift_events(h: &mut gst_check::Harness) -> Vec<DriftReport> {
    std::iter::from_fn(|| h.try_pull_event())
        .filter_map(|e| DriftReport::from_event(&e))
        .map(|r| r.expect("a well-formed drift event"))
        .collect()
}

fn push_frames(h: &mut gst_check::Harness, level: u8, count: usize) {
    for _ in 0..count {
        h.push(textured_frame(level)).expect("push");
        h.pull().expect("the frame out");
    }
}

/// After a seek, frames of `level`: no window for 9 frames, one at the 10th (the window's
/// length in the test's policy).
fn window_after_seek(h: &mut gst_check::Harness, level: u8) -> DriftReport {
    push_frames(h, level, 9);
    assert_eq!(drift_events(h), vec![]);
    push_frames(h, level, 1);
    let mut reports = drift_events(h);
    assert_eq!(reports.len(), 1, "{reports:?}");
    reports.remove(0)
}

fn brightness(report: &DriftReport) -> f64 {
    let feature = report.features.iter().find(|f| f.name == "brightness");
    feature.expect("brightness compared").current
}

#[test]
fn a_seek_starts_the_drift_window_over() {
    init();
    let dir = std::env::temp_dir().join(format!("drift-seek-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let policy = dir.join("policy.toml");
    let drift = "[drift]\nlearn-frames = 20\nwindow = 10\nstep = 5\nmin-samples = 5\n";
    std::fs::write(&policy, drift).unwrap();
    let mut h = gst_check::Harness::new_parse(&format!(
        "defectdetect model={} policy={} threads=1",
        repo_path("models/surface-defects.onnx").display(),
        policy.display()
    ));
    h.set_src_caps(caps(gst_video::VideoFormat::Rgb, 160, 120));
    // 20 frames learnt, 10 watched: the first window.
    push_frames(&mut h, 100, 30);
    let first = drift_events(&mut h);
    assert_eq!(first.len(), 1, "{first:?}");
    let level_100 = brightness(&first[0]);
    push_frames(&mut h, 100, 3);
    // A flushing seek: without the restart, the window of 13 + 2 frames would be compared
    // next, 7 of them from before the seek.
    assert!(h.push_event(gst::event::FlushStart::new()));
    assert!(h.push_event(gst::event::FlushStop::new(true)));
    let segment = gst::FormattedSegment::<gst::ClockTime>::new();
    assert!(h.push_event(gst::event::Segment::new(&segment)));
    let after_flush = window_after_seek(&mut h, 160);
    assert_eq!(after_flush.window_frames, 10);
    // Only frames after the seek: 60 levels brighter than the first window.
    let level_160 = brightness(&after_flush);
    assert!(
        (level_160 - level_100 - 60.0).abs() < 1.0,
        "{level_100} -> {level_160}"
    );
    // A segment seek (a new segment, no flush) is another position too.
    push_frames(&mut h, 160, 4);
    let mut segment = gst::FormattedSegment::<gst::ClockTime>::new();
    segment.set_start(gst::ClockTime::from_seconds(10));
    assert!(h.push_event(gst::event::Segment::new(&segment)));
    let after_segment = window_after_seek(&mut h, 100);
    assert!((brightness(&after_segment) - level_100).abs() < 1e-6);
    std::fs::remove_dir_all(&dir).unwrap();
}
