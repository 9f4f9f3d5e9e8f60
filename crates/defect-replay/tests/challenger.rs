// SPDX-License-Identifier: MIT OR Apache-2.0
//! `defectdetect challenger-model`: the bundled model as production against its INT8 copy and
//! against a perturbed copy (tests/data/surface-defects-perturbed.onnx, made by
//! scripts/make_perturbed_model.py: class logits shifted by +-0.5) as challengers, on the
//! bundled recording.
//!
//! - The live agreement table (the `defect-challenger` message at end of stream) equals the one
//!   `defect-replay --model-b` writes (agreement.json) for the same pair on the same frames:
//!   the run uses `challenger-wait=true` (a validation run: the streaming thread waits for the
//!   challenger to take each frame), so every frame is judged.
//! - The production records (frame and part records of `defectmetaconvert`) are the same bytes
//!   with and without a challenger, once the two time-dependent fields are removed: `utc` (wall
//!   clock) and `latency_ms` (measured time). The challenger's own records (`type`
//!   `challenger`) are compared with the summary.
//! - Without waiting, a challenger slower than production skips frames: every offered frame is
//!   judged or skipped, and counted.

#[path = "../../../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use gst::prelude::*;
use gstdefect::meta::ChallengerSummary;
use gstdefect::meta::prelude::*;
use serde_json::Value;

const THREADS: u32 = 2;

struct Live {
    /// Production's records with `utc` and `latency_ms` removed, one a line.
    production: Vec<String>,
    /// The challenger's records.
    challenger: Vec<Value>,
    summary: Option<ChallengerSummary>,
}

fn run_live(challenger: Option<&str>) -> Live {
    init();
    let pipeline = gst::parse::launch(&format!(
        "filesrc location={} ! decodebin ! videoconvert ! defectdetect name=detect model={} \
         policy={} threads={THREADS} ! defectmetaconvert ! appsink name=sink sync=false",
        repo_path("tests/data/conveyor_color.mp4").display(),
        repo_path("models/surface-defects.onnx").display(),
        repo_path("pipelines/policy.toml").display(),
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let detect = pipeline.by_name("detect").unwrap();
    if let Some(model) = challenger {
        detect.set_property("challenger-model", repo_path(model).display().to_string());
        detect.set_property("challenger-interval", 1u32);
        detect.set_property("challenger-wait", true);
    }
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut text = String::new();
    while let Ok(sample) = sink.pull_sample() {
        let buffer = sample.buffer().unwrap();
        text.push_str(std::str::from_utf8(&buffer.map_readable().unwrap()).unwrap());
    }
    let bus = pipeline.bus().unwrap();
    let mut summary = None;
    while let Some(message) = bus.pop() {
        match message.view() {
            gst::MessageView::Error(e) => panic!("{} {:?}", e.error(), e.debug()),
            gst::MessageView::Element(m) => {
                if let Some(read) = m.structure().and_then(ChallengerSummary::from_structure) {
                    summary = Some(read.unwrap());
                }
            }
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    let mut live = Live {
        production: Vec::new(),
        challenger: Vec::new(),
        summary,
    };
    for line in text.lines() {
        let mut record: Value = serde_json::from_str(line).unwrap();
        if record["type"] == "challenger" {
            live.challenger.push(record);
            continue;
        }
        let object = record.as_object_mut().unwrap();
        object.remove("utc");
        object.remove("latency_ms");
        live.production
            .push(serde_json::to_string(&record).unwrap());
    }
    live
}

/// `defect-replay --model-b` for the pair: its agreement.json.
fn replay_agreement(challenger: &str) -> Value {
    let out = std::env::temp_dir().join(format!(
        "challenger-replay-{}-{}",
        std::process::id(),
        PathBuf::from(challenger).file_stem().unwrap().display()
    ));
    let _ = std::fs::remove_dir_all(&out);
    let status = Command::new(env!("CARGO_BIN_EXE_defect-replay"))
        .args(["--model", "models/surface-defects.onnx"])
        .args(["--model-b", challenger])
        .args(["--video", "tests/data/conveyor_color.mp4"])
        .args(["--truth", "tests/data/conveyor_color.coco.json"])
        .args(["--policy", "pipelines/policy.toml"])
        .args(["--threads", &THREADS.to_string()])
        .args(["--progress", "none"])
        .arg("--out")
        .arg(&out)
        .current_dir(repo_path(""))
        .status()
        .unwrap();
    assert!(status.success(), "defect-replay --model-b {challenger}");
    let text = std::fs::read_to_string(out.join("agreement.json")).unwrap();
    let _ = std::fs::remove_dir_all(&out);
    serde_json::from_str(&text).unwrap()
}

/// The live summary in agreement.json's form.
fn as_replay_json(summary: &ChallengerSummary) -> Value {
    let mut classes = serde_json::Map::new();
    let mut verdicts = serde_json::Map::new();
    for row in &summary.agreement {
        let tally = serde_json::json!({
            "both": row.both,
            "only_production": row.only_production,
            "only_challenger": row.only_challenger,
        });
        match row.level.as_str() {
            "class" => classes.insert(row.label.clone(), tally),
            _ => verdicts.insert(row.label.clone(), tally),
        };
    }
    serde_json::json!({
        "frames": summary.judged_frames,
        "classes": classes,
        "verdicts": verdicts,
    })
}

#[test]
fn live_agreement_equals_replay_and_production_records_do_not_change() {
    let without = run_live(None);
    assert!(without.challenger.is_empty() && without.summary.is_none());
    let frames = without
        .production
        .iter()
        .filter(|l| l.contains(r#""type":"frame""#))
        .count();
    assert_eq!(frames, 300, "every frame of the recording has its record");
    for challenger in [
        "models/surface-defects-int8.onnx",
        "tests/data/surface-defects-perturbed.onnx",
    ] {
        let live = run_live(Some(challenger));
        assert!(
            live.production == without.production,
            "{challenger}: production records differ with a challenger"
        );
        let summary = live.summary.expect("a defect-challenger message at EOS");
        assert_eq!(
            (summary.judged_frames, summary.skipped_frames),
            (300, 0),
            "{challenger}: every frame judged while waiting for the challenger"
        );
        let stem = PathBuf::from(challenger)
            .file_stem()
            .unwrap()
            .display()
            .to_string();
        assert!(
            summary.model_id.starts_with(&format!("{stem}:")),
            "{summary:?}"
        );
        assert!(summary.production_model_id.starts_with("surface-defects:"));
        // One challenger record per frame, in frame order, each naming its frame.
        assert_eq!(live.challenger.len(), 300);
        for (i, record) in live.challenger.iter().enumerate() {
            assert_eq!(record["frame"], i as u64);
            assert_eq!(record["skipped"], false);
            assert!(record["verdict"].is_string() && record["pts_ns"].is_u64());
        }
        let replayed = replay_agreement(challenger);
        let live_table = as_replay_json(&summary);
        println!(
            "{challenger}: live {live_table}\nreplay {}",
            replayed["agreement"]
        );
        assert_eq!(
            live_table, replayed["agreement"],
            "{challenger}: live agreement equals defect-replay --model-b"
        );
        assert_eq!(replayed["challenger"], summary.model_id.as_str());
        // The pair really differs, and mostly agrees.
        let both: u64 = summary
            .agreement
            .iter()
            .filter(|r| r.level == "class")
            .map(|r| r.both)
            .sum();
        let differ: u64 = summary
            .agreement
            .iter()
            .filter(|r| r.level == "class")
            .map(|r| r.only_production + r.only_challenger)
            .sum();
        assert!(both > 0 && differ > 0, "{challenger}: {summary:?}");
    }
}

#[test]
fn a_slow_challenger_skips_frames_and_counts_them() {
    init();
    let frames = 40u64;
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers={frames} ! video/x-raw,format=RGB,width=256,height=256 ! \
         defectdetect name=detect model={} challenger-model={} ! fakesink sync=false",
        test_model("squares_v8"),
        test_model("slow_e2e"),
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let detect = pipeline.by_name("detect").unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let mut summary = None;
    for message in bus.iter_timed(gst::ClockTime::from_seconds(120)) {
        match message.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("{} {:?}", e.error(), e.debug()),
            gst::MessageView::Element(m) => {
                if let Some(read) = m.structure().and_then(ChallengerSummary::from_structure) {
                    summary = Some(read.unwrap());
                }
            }
            _ => {}
        }
    }
    let stats = detect
        .property::<Option<gst::Structure>>("challenger-stats")
        .expect("challenger-stats with a challenger");
    pipeline.set_state(gst::State::Null).unwrap();
    let summary = summary.expect("a defect-challenger message at EOS");
    assert_eq!(
        ChallengerSummary::from_structure(&stats).unwrap().unwrap(),
        summary
    );
    assert_eq!(summary.judged_frames + summary.skipped_frames, frames);
    assert!(
        summary.skipped_frames > 0 && summary.judged_frames > 0,
        "{summary:?}"
    );
}

#[test]
fn promotion_is_setting_model_to_the_challenger() {
    init();
    let frames = 150u64;
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers={frames} is-live=true ! \
         video/x-raw,format=RGB,width=256,height=256,framerate=50/1 ! \
         defectdetect name=detect model={} challenger-model={} ! fakesink sync=false",
        test_model("squares_v8"),
        test_model("squares_v5"),
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let detect = pipeline.by_name("detect").unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let (mut promoted, mut summary) = (false, None);
    for message in bus.iter_timed(gst::ClockTime::from_seconds(60)) {
        match message.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("{} {:?}", e.error(), e.debug()),
            gst::MessageView::Element(m) => {
                if !promoted {
                    // One property set: the hot swap takes the challenger's file over.
                    detect.set_property("model", test_model("squares_v5"));
                    promoted = true;
                }
                if let Some(read) = m.structure().and_then(ChallengerSummary::from_structure) {
                    summary = Some(read.unwrap());
                }
            }
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    let summary = summary.expect("a defect-challenger message at EOS");
    assert!(summary.model_id.starts_with("squares_v5:"), "{summary:?}");
    assert_eq!(
        summary.production_model_id, summary.model_id,
        "production runs the promoted model at the end"
    );
    assert_eq!(summary.judged_frames + summary.skipped_frames, frames);
}
