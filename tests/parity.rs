// SPDX-License-Identifier: MIT OR Apache-2.0
//! Parity with the Ultralytics convention: the same frames through `defectdetect` and through
//! `scripts/reference_detect.py` (plain onnxruntime + numpy + OpenCV letterbox, class-wise
//! NMS) give the same detections: boxes within 1 px, scores within 1e-3.
//!
//! Runs where the project's `.venv` has onnxruntime (scripts/setup.sh installs it);
//! elsewhere it says so and passes.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use gst_video::VideoFormat;

fn reference_python() -> Option<PathBuf> {
    let python = repo_path(".venv/bin/python");
    let ok = Command::new(&python)
        .args(["-c", "import onnxruntime, cv2, numpy"])
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(python)
}

/// A deterministic frame: noisy background, squares of random size, position and colour.
fn random_frame(seed: u64, width: usize, height: usize) -> RgbImage {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move |bound: usize| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as usize) % bound.max(1)
    };
    let mut image = RgbImage::new(width, height, [0, 0, 0]);
    for p in image.pixels.iter_mut() {
        *p = 10 + next(30) as u8;
    }
    for _ in 0..4 {
        let side = width.min(height) / 8 + next(width.min(height) / 5);
        let (x, y) = (
            next(width.saturating_sub(side)),
            next(height.saturating_sub(side)),
        );
        let colour = if next(2) == 0 {
            [250, 250, 250]
        } else {
            [245, 10, 10]
        };
        image.fill_rect(x, y, x + side, y + side, colour);
    }
    image
}

#[derive(Debug, Clone)]
struct Found {
    class_id: i64,
    confidence: f64,
    rect: [f64; 4],
}

fn reference(python: &PathBuf, model: &str, image: &RgbImage, gray: bool) -> Vec<Found> {
    let dir = std::env::temp_dir().join(format!("defect-parity-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let raw = dir.join("frame.raw");
    let bytes: Vec<u8> = if gray {
        gray_bytes(image)
    } else {
        image.pixels.clone()
    };
    std::fs::write(&raw, bytes).unwrap();
    let output = Command::new(python)
        .arg(repo_path("scripts/reference_detect.py"))
        .args(["--model", model, "--raw"])
        .arg(&raw)
        .args([
            "--width",
            &image.width.to_string(),
            "--height",
            &image.height.to_string(),
        ])
        .args(["--format", if gray { "GRAY8" } else { "RGB" }])
        .output()
        .expect("run the reference");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    json["detections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| Found {
            class_id: d["class_id"].as_i64().unwrap(),
            confidence: d["confidence"].as_f64().unwrap(),
            rect: std::array::from_fn(|i| d["box"][i].as_f64().unwrap()),
        })
        .collect()
}

/// The same luma the test frame builder writes for GRAY8.
fn gray_bytes(image: &RgbImage) -> Vec<u8> {
    image
        .pixels
        .chunks_exact(3)
        .map(|p| ((299 * p[0] as u32 + 587 * p[1] as u32 + 114 * p[2] as u32 + 500) / 1000) as u8)
        .collect()
}

fn plugin(model: &str, image: &RgbImage, format: VideoFormat) -> Vec<Found> {
    init();
    let mut h = gst_check::Harness::new_parse(&format!("defectdetect model={model}"));
    h.set_src_caps(caps(format, image.width, image.height));
    h.push(frame_buffer(image, format, 0)).unwrap();
    let out = h.pull().unwrap();
    rois(&out)
        .into_iter()
        .map(|r| Found {
            class_id: r.label_id as i64,
            confidence: r.confidence,
            rect: [
                r.normalised[0] * image.width as f64,
                r.normalised[1] * image.height as f64,
                r.normalised[2] * image.width as f64,
                r.normalised[3] * image.height as f64,
            ],
        })
        .collect()
}

/// Every reference detection has a plugin twin (same class, box within 1 px, score within
/// 1e-3) and vice versa. Detections within 2e-3 of the threshold may be on either side.
fn assert_same(reference: &[Found], ours: &[Found], context: &str) {
    let settled = |d: &&Found| (d.confidence - 0.25).abs() > 2e-3;
    for (from, to, direction) in [
        (reference, ours, "reference→plugin"),
        (ours, reference, "plugin→reference"),
    ] {
        for d in from.iter().filter(settled) {
            let twin = to.iter().find(|o| {
                o.class_id == d.class_id
                    && o.rect.iter().zip(d.rect).all(|(a, b)| (a - b).abs() <= 1.0)
            });
            let twin = twin.unwrap_or_else(|| {
                panic!(
                    "{context} {direction}: no twin for {d:?}\nref {reference:#?}\nours {ours:#?}"
                )
            });
            assert!(
                (twin.confidence - d.confidence).abs() <= 1e-3,
                "{context}: {d:?} vs {twin:?}"
            );
        }
    }
}

#[test]
fn plugin_matches_the_numpy_reference() {
    let Some(python) = reference_python() else {
        eprintln!(
            "parity test skipped: .venv with onnxruntime and OpenCV not found (run scripts/setup.sh)"
        );
        return;
    };
    let sizes = [
        (640, 480),
        (1280, 720),
        (641, 479),
        (300, 500),
        (256, 256),
        (1920, 1080),
    ];
    let mut compared = 0;
    for (i, &(w, h)) in sizes.iter().enumerate() {
        let image = random_frame(i as u64 + 1, w, h);
        for model in ["squares_v8", "squares_v5", "squares_e2e"] {
            let path = test_model(model);
            let expected = reference(&python, &path, &image, false);
            assert_same(
                &expected,
                &plugin(&path, &image, VideoFormat::Rgb),
                &format!("{model} {w}x{h}"),
            );
            compared += expected.len();
        }
        let path = test_model("squares_v8_gray");
        let expected = reference(&python, &path, &image, true);
        assert_same(
            &expected,
            &plugin(&path, &image, VideoFormat::Gray8),
            &format!("gray {w}x{h}"),
        );
        compared += expected.len();
    }
    assert!(compared > 20, "too few detections to compare: {compared}");
}
