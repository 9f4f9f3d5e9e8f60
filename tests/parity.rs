// SPDX-License-Identifier: MIT OR Apache-2.0
//! Parity with the Ultralytics predictor: the same RGB frames through `defectdetect` and
//! through `scripts/reference_detect.py` (onnxruntime + OpenCV letterbox + numpy decoding
//! and class-wise NMS, as the predictor does) give the same detections: scores within 1e-5,
//! boxes within 0.01 px (the float coordinates of the `defect-detections` bus message, not
//! the ROI meta's integers).
//!
//! Models: the bundled surface-defect model on frames of the bundled recording (whole, and
//! cropped to odd sizes so that the letterbox down- and upscales), and every test model that
//! detects something (`squares_v8`, `squares_v5`, `squares_e2e`, `squares_v8_dynamic`, and
//! `squares_v8_gray` fed grey frames) on synthetic frames of odd sizes.
//!
//! Runs where the project's `.venv` has onnxruntime and OpenCV (scripts/setup.sh installs
//! them); elsewhere it says so and passes.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use gst::prelude::*;
use gst_video::VideoFormat;

const SCORE_TOLERANCE: f64 = 1e-5;
const BOX_TOLERANCE: f64 = 0.01;

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

/// `width` x `height` pixels of `image` from (`x`, `y`).
fn crop(image: &RgbImage, x: usize, y: usize, width: usize, height: usize) -> RgbImage {
    let mut out = RgbImage::new(width, height, [0, 0, 0]);
    for row in 0..height {
        let from = ((y + row) * image.width + x) * 3;
        out.pixels[row * width * 3..(row + 1) * width * 3]
            .copy_from_slice(&image.pixels[from..from + width * 3]);
    }
    out
}

/// Frames `indices` of the bundled colour recording, decoded to RGB.
fn recording_frames(indices: &[usize]) -> Vec<RgbImage> {
    init();
    let path = repo_path("tests/data/conveyor_color.mp4");
    let pipeline = gst::parse::launch(&format!(
        "filesrc location={} ! decodebin ! videoconvert ! video/x-raw,format=RGB ! appsink name=sink sync=false",
        path.display()
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
    let mut frames = Vec::new();
    let last = *indices.iter().max().unwrap();
    for index in 0..=last {
        let sample = sink
            .try_pull_sample(gst::ClockTime::from_seconds(30))
            .expect("a frame of the recording");
        if !indices.contains(&index) {
            continue;
        }
        let info = gst_video::VideoInfo::from_caps(sample.caps().unwrap()).unwrap();
        let (w, h) = (info.width() as usize, info.height() as usize);
        let map = sample.buffer().unwrap().map_readable().unwrap();
        let stride = info.stride()[0] as usize;
        let mut image = RgbImage::new(w, h, [0, 0, 0]);
        for row in 0..h {
            image.pixels[row * w * 3..(row + 1) * w * 3]
                .copy_from_slice(&map[row * stride..row * stride + w * 3]);
        }
        frames.push(image);
    }
    pipeline.set_state(gst::State::Null).unwrap();
    frames
}

#[derive(Debug, Clone)]
struct Found {
    class_id: i64,
    confidence: f64,
    rect: [f64; 4],
}

/// One comparison: a model and a frame, RGB or grey.
struct Case {
    name: String,
    model: String,
    image: RgbImage,
    gray: bool,
}

impl Case {
    fn bytes(&self) -> Vec<u8> {
        if self.gray {
            gray_bytes(&self.image)
        } else {
            self.image.pixels.clone()
        }
    }
}

/// The reference's detections of every case, from one Python process.
fn reference(python: &Path, cases: &[Case]) -> Vec<Vec<Found>> {
    let frames = cases.iter().map(|case| {
        let entry = serde_json::json!({
            "model": case.model, "width": case.image.width,
            "height": case.image.height, "format": if case.gray { "GRAY8" } else { "RGB" },
        });
        (case.bytes(), entry)
    });
    reference_batch(python, "scripts/reference_detect.py", frames)
        .iter()
        .map(|result| {
            result["detections"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| Found {
                    class_id: d["class_id"].as_i64().unwrap(),
                    confidence: d["confidence"].as_f64().unwrap(),
                    rect: std::array::from_fn(|i| d["box"][i].as_f64().unwrap()),
                })
                .collect()
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

/// `defectdetect`'s detections of the case's frame, from its `defect-detections` message.
fn plugin(case: &Case) -> Vec<Found> {
    init();
    let format = if case.gray {
        VideoFormat::Gray8
    } else {
        VideoFormat::Rgb
    };
    let pipeline = gst::Pipeline::new();
    let src = gst_app::AppSrc::builder()
        .caps(&caps(format, case.image.width, case.image.height))
        .format(gst::Format::Time)
        .build();
    let detect = gst::ElementFactory::make("defectdetect")
        .property("model", &case.model)
        .build()
        .unwrap();
    let sink = gst::ElementFactory::make("fakesink").build().unwrap();
    pipeline
        .add_many([src.upcast_ref(), &detect, &sink])
        .unwrap();
    gst::Element::link_many([src.upcast_ref(), &detect, &sink]).unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut buffer = frame_buffer(&case.image, format, 0);
    buffer.get_mut().unwrap().set_pts(gst::ClockTime::ZERO);
    src.push_buffer(buffer).unwrap();
    src.end_of_stream().unwrap();
    let mut found = None;
    for message in pipeline
        .bus()
        .unwrap()
        .iter_timed(gst::ClockTime::from_seconds(60))
    {
        match message.view() {
            gst::MessageView::Element(e) => {
                let Some(s) = e.structure().filter(|s| s.name() == "defect-detections") else {
                    continue;
                };
                let list = s.get::<gst::Array>("detections").unwrap();
                found = Some(
                    list.iter()
                        .map(|d| {
                            let d = d.get::<gst::Structure>().unwrap();
                            let f = |name: &str| d.get::<f64>(name).unwrap();
                            Found {
                                class_id: d.get::<u32>("label-id").unwrap() as i64,
                                confidence: f("confidence"),
                                rect: [f("x-min"), f("y-min"), f("x-max"), f("y-max")],
                            }
                        })
                        .collect(),
                );
            }
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("{}: {}", case.name, e.error()),
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    found.unwrap_or_else(|| panic!("{}: no defect-detections message", case.name))
}

/// Every reference detection has a plugin twin (same class, box within 0.01 px, score within
/// 1e-5) and vice versa; returns the largest differences. Detections within 1e-5 of the
/// threshold may be on either side.
fn assert_same(reference: &[Found], ours: &[Found], context: &str) -> (f64, f64) {
    let settled = |d: &&Found| (d.confidence - 0.25).abs() > SCORE_TOLERANCE;
    let (mut score, mut rect) = (0.0f64, 0.0f64);
    for (from, to, direction) in [
        (reference, ours, "reference→plugin"),
        (ours, reference, "plugin→reference"),
    ] {
        for d in from.iter().filter(settled) {
            let twin = to.iter().find(|o| {
                o.class_id == d.class_id
                    && o.rect
                        .iter()
                        .zip(d.rect)
                        .all(|(a, b)| (a - b).abs() <= BOX_TOLERANCE)
            });
            let twin = twin.unwrap_or_else(|| {
                panic!(
                    "{context} {direction}: no twin within {BOX_TOLERANCE} px for {d:?}\nref {reference:#?}\nours {ours:#?}"
                )
            });
            assert!(
                (twin.confidence - d.confidence).abs() <= SCORE_TOLERANCE,
                "{context}: scores differ by more than {SCORE_TOLERANCE}: {d:?} vs {twin:?}"
            );
            score = score.max((twin.confidence - d.confidence).abs());
            for (a, b) in twin.rect.iter().zip(d.rect) {
                rect = rect.max((a - b).abs());
            }
        }
    }
    (score, rect)
}

#[test]
fn plugin_matches_the_ultralytics_reference() {
    let Some(python) = reference_python() else {
        eprintln!(
            "parity test skipped: .venv with onnxruntime and OpenCV not found (run scripts/setup.sh)"
        );
        return;
    };
    let mut cases = Vec::new();
    // The bundled model on frames of the bundled recording with defects in view: whole
    // (1280x720 into 640x384, a factor of 2) and cropped to odd sizes (down- and upscaled).
    let bundled = repo_path("models/surface-defects.onnx")
        .display()
        .to_string();
    for (i, frame) in recording_frames(&[40, 95, 150, 205, 262])
        .into_iter()
        .enumerate()
    {
        let crops = [
            (0, 0, 1280, 720),
            (140, 27, 1001, 667),
            (400, 100, 481, 599),
            (500, 300, 333, 203),
        ];
        for (x, y, w, h) in crops {
            cases.push(Case {
                name: format!("surface-defects frame {i} {w}x{h}"),
                model: bundled.clone(),
                image: crop(&frame, x, y, w, h),
                gray: false,
            });
        }
    }
    let sizes = [
        (640, 480),
        (1280, 720),
        (641, 479),
        (300, 500),
        (256, 256),
        (1920, 1080),
        (1001, 667),
        (197, 131),
    ];
    for (i, &(w, h)) in sizes.iter().enumerate() {
        let image = random_frame(i as u64 + 1, w, h);
        for model in [
            "squares_v8",
            "squares_v5",
            "squares_e2e",
            "squares_v8_dynamic",
        ] {
            cases.push(Case {
                name: format!("{model} {w}x{h}"),
                model: test_model(model),
                image: image.clone(),
                gray: false,
            });
        }
        cases.push(Case {
            name: format!("squares_v8_gray {w}x{h} GRAY8"),
            model: test_model("squares_v8_gray"),
            image,
            gray: true,
        });
    }
    let expected = reference(&python, &cases);
    let mut compared = std::collections::BTreeMap::<String, usize>::new();
    let (mut score, mut rect) = (0.0f64, 0.0f64);
    for (case, expected) in cases.iter().zip(&expected) {
        let (s, r) = assert_same(expected, &plugin(case), &case.name);
        (score, rect) = (score.max(s), rect.max(r));
        let model = Path::new(&case.model)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        *compared.entry(model).or_default() += expected.len();
    }
    eprintln!(
        "detections compared per model: {compared:?}; largest differences: score {score:.2e}, box {rect:.2e} px"
    );
    for (model, count) in &compared {
        assert!(
            *count >= 5,
            "too few detections of {model} to compare: {count}"
        );
    }
}
