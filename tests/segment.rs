// SPDX-License-Identifier: MIT OR Apache-2.0
//! Segmentation models through `defectdetect`: parity of boxes, scores and masks with
//! `scripts/reference_segment.py` (onnxruntime + numpy, the Ultralytics predictor's
//! post-processing with `retina_masks`), and the masks and sizes on the ROI metas.
//!
//! Model: `models/test/seg_squares.onnx` (scripts/make_task_test_models.py: the outputs of an
//! Ultralytics `-seg` export, boxes and masks following red and blue squares) on synthetic
//! frames of odd sizes, so that the letterbox pads either axis and scales down and up.
//!
//! The parity part runs where the project's `.venv` has onnxruntime, OpenCV and pycocotools;
//! elsewhere it says so and passes.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use gst::prelude::*;
use gst_video::VideoFormat;
use gstdefect::analysis::mask::{self, Mask};
use gstdefect::meta::{DetectionParams, MaskParams, SizeParams};

const SCORE_TOLERANCE: f64 = 1e-5;
const BOX_TOLERANCE: f64 = 0.01;
const MASK_IOU: f64 = 0.98;

fn reference_python() -> Option<PathBuf> {
    let python = repo_path(".venv/bin/python");
    let ok = Command::new(&python)
        .args(["-c", "import onnxruntime, cv2, numpy, pycocotools"])
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(python)
}

#[derive(Debug, Clone)]
struct Found {
    class_id: u32,
    confidence: f64,
    rect: [f64; 4],
    mask: Mask,
    sizes: Option<SizeParams>,
}

/// Dark noisy background with red, blue and white squares of seeded sizes and places.
fn frame(seed: u64, width: usize, height: usize) -> RgbImage {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move |bound: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % bound.max(1) as u64) as usize
    };
    let mut image = RgbImage::new(width, height, [0, 0, 0]);
    for p in image.pixels.iter_mut() {
        *p = 15 + next(20) as u8;
    }
    for k in 0..5 {
        let side = width.min(height) / 10 + next(width.min(height) / 4);
        let (x, y) = (
            next(width.saturating_sub(side)),
            next(height.saturating_sub(side)),
        );
        let colour = [[250, 30, 30], [30, 30, 250], [240, 240, 240]][k % 3];
        image.fill_rect(x, y, x + side, y + side, colour);
    }
    image
}

fn model() -> String {
    test_model("seg_squares")
}

/// The plugin's detections of one frame, from the ROI metas of its output buffer (float boxes
/// from the normalised `detection` parameters).
fn plugin(image: &RgbImage, policy: Option<&str>) -> Vec<Found> {
    init();
    let pipeline = gst::Pipeline::new();
    let src = gst_app::AppSrc::builder()
        .caps(&caps(VideoFormat::Rgb, image.width, image.height))
        .format(gst::Format::Time)
        .build();
    let detect = gst::ElementFactory::make("defectdetect")
        .property("model", model())
        .build()
        .unwrap();
    if let Some(policy) = policy {
        detect.set_property("policy", policy);
    }
    let sink = gst_app::AppSink::builder().sync(false).build();
    pipeline
        .add_many([src.upcast_ref(), &detect, sink.upcast_ref()])
        .unwrap();
    gst::Element::link_many([src.upcast_ref(), &detect, sink.upcast_ref()]).unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut buffer = frame_buffer(image, VideoFormat::Rgb, 0);
    buffer.get_mut().unwrap().set_pts(gst::ClockTime::ZERO);
    src.push_buffer(buffer).unwrap();
    src.end_of_stream().unwrap();
    let sample = sink
        .try_pull_sample(gst::ClockTime::from_seconds(60))
        .expect("a processed frame");
    pipeline.set_state(gst::State::Null).unwrap();
    let buffer = sample.buffer().unwrap();
    let (w, h) = (image.width as f64, image.height as f64);
    buffer
        .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
        .map(|roi| {
            let p = DetectionParams::of_roi(&roi).unwrap().unwrap();
            let m = MaskParams::of_roi(&roi).expect("a mask").unwrap();
            Found {
                class_id: p.label_id,
                confidence: p.confidence,
                rect: [p.x_min * w, p.y_min * h, p.x_max * w, p.y_max * h],
                mask: m.to_mask().expect("a well-formed mask"),
                sizes: SizeParams::of_roi(&roi).map(|s| s.unwrap()),
            }
        })
        .collect()
}

fn reference(python: &std::path::Path, images: &[RgbImage]) -> Vec<Vec<Found>> {
    let frames = images.iter().map(|image| {
        let entry = serde_json::json!({
            "model": model(), "width": image.width, "height": image.height,
        });
        (image.pixels.clone(), entry)
    });
    reference_batch(python, "scripts/reference_segment.py", frames)
        .iter()
        .zip(images)
        .map(|(result, image)| {
            result["detections"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    let counts = mask::decode_counts(d["mask"]["counts"].as_str().unwrap())
                        .expect("pycocotools' counts");
                    Found {
                        class_id: d["class_id"].as_u64().unwrap() as u32,
                        confidence: d["confidence"].as_f64().unwrap(),
                        rect: std::array::from_fn(|i| d["box"][i].as_f64().unwrap()),
                        mask: mask::decode_coco_rle(
                            &counts,
                            image.width as u32,
                            image.height as u32,
                        )
                        .unwrap(),
                        sizes: None,
                    }
                })
                .collect()
        })
        .collect()
}

fn iou(a: &Mask, b: &Mask) -> f64 {
    let (mut inter, mut union) = (0u64, 0u64);
    let x0 = a.x.min(b.x);
    let y0 = a.y.min(b.y);
    let x1 = (a.x + a.width).max(b.x + b.width);
    let y1 = (a.y + a.height).max(b.y + b.height);
    for y in y0..y1 {
        for x in x0..x1 {
            let (p, q) = (a.get(x, y), b.get(x, y));
            inter += u64::from(p && q);
            union += u64::from(p || q);
        }
    }
    if union == 0 {
        1.0
    } else {
        inter as f64 / union as f64
    }
}

#[test]
fn masks_boxes_and_scores_match_the_reference() {
    let Some(python) = reference_python() else {
        eprintln!("skipped: .venv has no onnxruntime, OpenCV or pycocotools (scripts/setup.sh)");
        return;
    };
    let sizes = [(410, 250), (333, 517), (1280, 720), (640, 640), (97, 61)];
    let images: Vec<RgbImage> = sizes
        .iter()
        .enumerate()
        .map(|(k, &(w, h))| frame(k as u64 + 1, w, h))
        .collect();
    let references = reference(&python, &images);
    let (mut worst_iou, mut detections) = (1.0f64, 0);
    for (image, reference) in images.iter().zip(&references) {
        let ours = plugin(image, None);
        let context = format!("{}x{}", image.width, image.height);
        let settled = |d: &&Found| (d.confidence - 0.25).abs() > SCORE_TOLERANCE;
        assert_eq!(
            ours.iter().filter(settled).count(),
            reference.iter().filter(settled).count(),
            "{context}: {ours:#?}\n{reference:#?}"
        );
        for r in reference.iter().filter(settled) {
            let twin = ours
                .iter()
                .find(|o| {
                    o.class_id == r.class_id
                        && o.rect
                            .iter()
                            .zip(r.rect)
                            .all(|(a, b)| (a - b).abs() <= BOX_TOLERANCE)
                })
                .unwrap_or_else(|| panic!("{context}: no twin of {r:?} in {ours:#?}"));
            assert!(
                (twin.confidence - r.confidence).abs() <= SCORE_TOLERANCE,
                "{context}: {twin:?} vs {r:?}"
            );
            let overlap = iou(&twin.mask, &r.mask);
            assert!(
                overlap >= MASK_IOU,
                "{context}: mask IoU {overlap} for {r:?} (areas {} vs {})",
                twin.mask.area(),
                r.mask.area()
            );
            worst_iou = worst_iou.min(overlap);
            detections += 1;
        }
    }
    assert!(detections >= 10, "only {detections} detections compared");
    eprintln!("{detections} detections: lowest mask IoU {worst_iou:.5}");
}

/// The masks lie inside their boxes, the sizes are the masks', and the policy's length limit
/// turns a failing detection shorter than `min-length-mm` into REVIEW.
#[test]
fn masks_stay_in_their_boxes_and_sizes_follow_the_policy() {
    // One red square of 60 px on a 320 x 320 frame (no letterbox): cells of 40 px see it.
    let mut image = RgbImage::new(320, 320, [20, 20, 20]);
    image.fill_rect(50, 50, 110, 110, [250, 30, 30]);
    let policy_dir = std::env::temp_dir().join(format!("defect-seg-policy-{}", std::process::id()));
    std::fs::create_dir_all(&policy_dir).unwrap();
    let write = |name: &str, text: &str| {
        let path = policy_dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let long = write(
        "long.toml",
        "pixels-per-mm = 10.0\n[classes.red]\nmin-confidence = 0.25\nmin-length-mm = 2.0\n",
    );
    let longer = write(
        "longer.toml",
        "pixels-per-mm = 10.0\n[classes.red]\nmin-confidence = 0.25\nmin-length-mm = 50.0\n",
    );
    let found = plugin(&image, Some(&long));
    assert!(!found.is_empty());
    for f in &found {
        let m = &f.mask;
        assert!(m.area() > 0, "{f:?}");
        assert!(
            m.x as f64 >= f.rect[0].floor()
                && m.y as f64 >= f.rect[1].floor()
                && (m.x + m.width) as f64 <= f.rect[2].ceil()
                && (m.y + m.height) as f64 <= f.rect[3].ceil(),
            "{f:?}"
        );
        // Every set pixel lies on the square (bright), give or take the prototypes' 4-px cells.
        for y in m.y..m.y + m.height {
            for x in m.x..m.x + m.width {
                if m.get(x, y) {
                    assert!(
                        (46..114).contains(&x) && (46..114).contains(&y),
                        "({x}, {y})"
                    );
                }
            }
        }
        let s = f.sizes.expect("sizes");
        assert_eq!(s.area_px, m.area() as f64);
        assert!((s.length_px - m.length() as f64).abs() < 1e-3);
        assert_eq!(s.area_mm2, Some(s.area_px / 100.0));
        assert_eq!(s.length_mm, Some(s.length_px / 10.0));
    }
    let decisions = |policy: &str| -> Vec<String> {
        init();
        let pipeline = gst::parse::launch(&format!(
            "appsrc name=src format=time caps=\"{}\" ! defectdetect model=\"{}\" policy=\"{policy}\" ! appsink name=sink sync=false",
            caps(VideoFormat::Rgb, 320, 320),
            model()
        ))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let (src, sink) = app_ends(&pipeline);
        pipeline.set_state(gst::State::Playing).unwrap();
        let mut buffer = frame_buffer(&image, VideoFormat::Rgb, 0);
        buffer.get_mut().unwrap().set_pts(gst::ClockTime::ZERO);
        src.push_buffer(buffer).unwrap();
        src.end_of_stream().unwrap();
        let sample = sink
            .try_pull_sample(gst::ClockTime::from_seconds(60))
            .unwrap();
        pipeline.set_state(gst::State::Null).unwrap();
        sample
            .buffer()
            .unwrap()
            .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
            .map(|roi| {
                let p = DetectionParams::of_roi(&roi).unwrap().unwrap();
                p.decision.unwrap().as_str().to_string()
            })
            .collect()
    };
    let short_ok = decisions(&long);
    assert!(short_ok.iter().any(|d| d == "fail"), "{short_ok:?}");
    let too_short = decisions(&longer);
    assert!(
        too_short.iter().all(|d| d != "fail") && too_short.iter().any(|d| d == "review"),
        "{too_short:?}"
    );
    let _ = std::fs::remove_dir_all(&policy_dir);
}
