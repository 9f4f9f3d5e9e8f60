// SPDX-License-Identifier: MIT OR Apache-2.0
//! The bundled model on the bundled recorded videos, through the real element: per-class
//! precision and recall against the ground truth within the bounds the model card states
//! (`tests/data/bounds.json`, per video), defective parts FAIL and clean parts PASS at the card's rates,
//! and every frame's NDJSON record agrees with its bus message.

#[path = "../../../tests/common/mod.rs"]
mod common;

use common::*;
use defect_replay::replay::report::score;
use defect_replay::replay::truth::GroundTruth;
use defect_replay::replay::{ReplayOptions, Source, replay};
use gst::prelude::*;

const VIDEOS: [&str; 2] = ["conveyor_color", "conveyor_mono"];

fn bounds() -> serde_json::Value {
    let text = std::fs::read_to_string(repo_path("tests/data/bounds.json"))
        .expect("tests/data/bounds.json");
    serde_json::from_str(&text).expect("bounds.json is JSON")
}

fn replay_video(name: &str, policy: bool) -> defect_replay::replay::report::Report {
    init();
    let options = ReplayOptions {
        model: repo_path("models/surface-defects.onnx"),
        policy: policy.then(|| repo_path("pipelines/policy.toml")),
        threads: 2,
        ..Default::default()
    };
    let source = Source::Video(repo_path(&format!("tests/data/{name}.mp4")));
    let result = replay(&source, &options, |_, _| {}).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(result.frames.len(), 300, "{name}: every frame replayed");
    let truth = GroundTruth::load(&repo_path(&format!("tests/data/{name}.coco.json"))).unwrap();
    let thresholds = vec![0.25; result.class_names.len()];
    let policy = options.policy.as_deref().map(|path| {
        let text = std::fs::read_to_string(path).unwrap();
        gstdefect::policy::parse_policy(&text, &path.display().to_string()).unwrap()
    });
    score(&result, &truth, &thresholds, policy.as_ref()).unwrap()
}

#[test]
fn per_class_precision_and_recall_within_the_model_card_bounds() {
    let bounds = bounds();
    for name in VIDEOS {
        let report = replay_video(name, false);
        print!("{name}\n{}", report.table());
        for class in &report.evaluation.classes {
            if class.truths == 0 {
                continue;
            }
            let label = &report.class_names[class.class_id];
            let min_recall = bounds[name]["detections"]["recall"][label]
                .as_f64()
                .unwrap_or(0.0);
            let min_precision = bounds[name]["detections"]["precision"][label]
                .as_f64()
                .unwrap_or(0.0);
            assert!(
                class.recall >= min_recall,
                "{name} {label}: recall {:.3} < {min_recall}",
                class.recall
            );
            assert!(
                class.precision >= min_precision,
                "{name} {label}: precision {:.3} < {min_precision}",
                class.precision
            );
        }
        let min_map = bounds[name]["detections"]["map50"].as_f64().unwrap_or(0.0);
        assert!(
            report.evaluation.map50 >= min_map,
            "{name}: mAP@0.5 {:.3} < {min_map}",
            report.evaluation.map50
        );
    }
}

#[test]
fn defective_parts_fail_and_clean_parts_pass() {
    let bounds = bounds();
    for name in VIDEOS {
        let report = replay_video(name, true);
        let parts = &report.parts;
        assert!(parts.total > 0, "{name}: the ground truth names parts");
        let clean = parts.total - parts.defective;
        let caught = parts.defective - parts.escapes;
        let fail_rate = caught as f64 / parts.defective.max(1) as f64;
        let pass_rate = (clean - parts.false_rejects) as f64 / clean.max(1) as f64;
        println!(
            "{name}: {} parts, {} defective, escapes {}, false rejects {}",
            parts.total, parts.defective, parts.escapes, parts.false_rejects
        );
        assert!(
            fail_rate >= bounds[name]["parts"]["defective_caught"].as_f64().unwrap(),
            "{name}: defective parts caught {fail_rate:.3}"
        );
        assert!(
            pass_rate >= bounds[name]["parts"]["clean_passed"].as_f64().unwrap(),
            "{name}: clean parts passed {pass_rate:.3}"
        );
    }
}

#[test]
fn one_record_per_frame_matching_the_bus_messages() {
    init();
    let pipeline = gst::parse::launch(&format!(
        "filesrc location={} ! decodebin ! videoconvert ! defectdetect model={} policy={} threads=2 ! \
         defectmetaconvert source-id=line-1 ! appsink name=sink sync=false",
        repo_path("tests/data/conveyor_color.mp4").display(),
        repo_path("models/surface-defects.onnx").display(),
        repo_path("pipelines/policy.toml").display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut records: Vec<serde_json::Value> = Vec::new();
    while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(60)) {
        let map = sample.buffer().unwrap().map_readable().unwrap();
        records.extend(
            std::str::from_utf8(&map)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap()),
        );
    }
    let bus = pipeline.bus().unwrap();
    let mut messages = Vec::new();
    while let Some(message) = bus.pop() {
        if let Some(s) = message.structure().filter(|s| s.name() == "defect-verdict") {
            messages.push((
                s.get::<u64>("frame").unwrap(),
                s.get::<String>("verdict").unwrap(),
            ));
        }
        if let gst::MessageView::Error(e) = message.view() {
            panic!("{}", e.error());
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    let frames: Vec<(u64, String)> = records
        .iter()
        .filter(|r| r["type"] == "frame")
        .map(|r| {
            (
                r["frame"].as_u64().unwrap(),
                r["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(frames.len(), 300);
    assert_eq!(frames, messages);
}
