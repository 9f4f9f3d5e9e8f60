// SPDX-License-Identifier: MIT OR Apache-2.0
//! Drift through the real element: the bundled recording through `defectdetect` with the
//! bundled model and policy, learning its baseline from the first frames; then the image
//! dimmed to 55 % (one drift episode: one `defect-drift` message, one warning naming
//! brightness, within 150 frames of the change) or left alone (no episode). The longer cases
//! (defocus, dust, another product, 3,000 clean frames) are in scripts/drift_cases.py.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::{init, repo_path};
use gst::prelude::*;
use gstdefect::meta::DriftReport;

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
