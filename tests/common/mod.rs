// SPDX-License-Identifier: MIT OR Apache-2.0
//! Shared helpers for the integration tests: plugin registration, synthetic frames with
//! known squares in every supported pixel format, and ROI-meta readers.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Once;

use gst_video::VideoFormat;

/// The `appsrc name=src` and `appsink name=sink` of a test pipeline.
pub fn app_ends(pipeline: &gst::Pipeline) -> (gst_app::AppSrc, gst_app::AppSink) {
    use gst::prelude::*;
    let named = |name: &str| {
        pipeline
            .by_name(name)
            .unwrap_or_else(|| panic!("the pipeline has no element named {name}"))
    };
    (
        named("src").downcast().expect("src is an appsrc"),
        named("sink").downcast().expect("sink is an appsink"),
    )
}

pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().expect("gst init");
        gstdefect::plugin_register_static().expect("register the defect plugin");
    });
}

/// A path in the repository (the workspace root, also for the tests of `crates/*`, which
/// include this module).
pub fn repo_path(relative: &str) -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = manifest
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").is_file())
        .unwrap_or(&manifest);
    root.join(relative)
}

pub fn test_model(name: &str) -> String {
    repo_path(&format!("models/test/{name}.onnx"))
        .display()
        .to_string()
}

/// An RGB image in memory, tightly packed.
#[derive(Clone)]
pub struct RgbImage {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

impl RgbImage {
    pub fn new(width: usize, height: usize, background: [u8; 3]) -> Self {
        Self {
            width,
            height,
            pixels: background.repeat(width * height),
        }
    }

    pub fn fill_rect(&mut self, x0: usize, y0: usize, x1: usize, y1: usize, colour: [u8; 3]) {
        for y in y0..y1.min(self.height) {
            for x in x0..x1.min(self.width) {
                let i = (y * self.width + x) * 3;
                self.pixels[i..i + 3].copy_from_slice(&colour);
            }
        }
    }

    pub fn rgb(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.width + x) * 3;
        [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]]
    }
}

/// A detection expected in a frame: class, box in frame pixels.
#[derive(Debug, Clone, Copy)]
pub struct Expected {
    pub class: &'static str,
    pub label_id: i32,
    pub rect: [f64; 4],
}

/// Where a square must sit in a `width` x `height` frame so that the squares test model
/// (256x256 input, 32-px windows every 8 px) sees it exactly on window (row, col).
pub fn window_box(width: usize, height: usize, row: usize, col: usize) -> [f64; 4] {
    let gain = (256.0 / height as f64).min(256.0 / width as f64);
    let pad_x = ((256.0 - width as f64 * gain) / 2.0 - 0.1).round_ties_even();
    let pad_y = ((256.0 - height as f64 * gain) / 2.0 - 0.1).round_ties_even();
    let x0 = (8.0 * col as f64 - pad_x) / gain;
    let y0 = (8.0 * row as f64 - pad_y) / gain;
    let side = 32.0 / gain;
    [x0, y0, x0 + side, y0 + side]
}

/// A dark 640x480 frame with a white square on window (8, 5) and a red one on window (14, 20).
pub fn two_squares_640x480() -> (RgbImage, Vec<Expected>) {
    two_squares(640, 480)
}

/// A dark `width` x `height` frame with a white square on window (8, 5) and a red one on
/// window (14, 20) of the squares test model.
pub fn two_squares(width: usize, height: usize) -> (RgbImage, Vec<Expected>) {
    let mut image = RgbImage::new(width, height, [12, 12, 12]);
    let white = window_box(width, height, 8, 5);
    let red = window_box(width, height, 14, 20);
    for (b, colour) in [(white, [255, 255, 255]), (red, [255, 0, 0])] {
        image.fill_rect(
            b[0] as usize,
            b[1] as usize,
            b[2] as usize,
            b[3] as usize,
            colour,
        );
    }
    let expected = vec![
        Expected {
            class: "white_square",
            label_id: 0,
            rect: white,
        },
        Expected {
            class: "red_square",
            label_id: 1,
            rect: red,
        },
    ];
    (image, expected)
}

/// BT.601 limited-range YUV of an RGB pixel.
fn yuv(p: [u8; 3]) -> [u8; 3] {
    let [r, g, b] = p.map(|c| c as f64);
    let y = 16.0 + 65.481 * r / 255.0 + 128.553 * g / 255.0 + 24.966 * b / 255.0;
    let u = 128.0 - 37.797 * r / 255.0 - 74.203 * g / 255.0 + 112.0 * b / 255.0;
    let v = 128.0 + 112.0 * r / 255.0 - 93.786 * g / 255.0 - 18.214 * b / 255.0;
    [y, u, v].map(|c| c.round().clamp(0.0, 255.0) as u8)
}

/// A buffer holding `image` in `format`, every row padded by `row_padding` bytes, with a
/// `GstVideoMeta` describing the strides and offsets.
pub fn frame_buffer(image: &RgbImage, format: VideoFormat, row_padding: usize) -> gst::Buffer {
    init();
    let (w, h) = (image.width, image.height);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let mut planes: Vec<(Vec<u8>, usize)> = Vec::new();
    let packed = |bpp: usize, order: [Option<usize>; 4]| {
        let stride = w * bpp + row_padding;
        let mut data = vec![0u8; stride * h];
        for y in 0..h {
            for x in 0..w {
                let p = image.rgb(x, y);
                for (k, source) in order.iter().enumerate().take(bpp) {
                    data[y * stride + x * bpp + k] = source.map_or(255, |c| p[c]);
                }
            }
        }
        (data, stride)
    };
    match format {
        VideoFormat::Rgb => planes.push(packed(3, [Some(0), Some(1), Some(2), None])),
        VideoFormat::Bgr => planes.push(packed(3, [Some(2), Some(1), Some(0), None])),
        VideoFormat::Rgba | VideoFormat::Rgbx => {
            planes.push(packed(4, [Some(0), Some(1), Some(2), None]))
        }
        VideoFormat::Bgra | VideoFormat::Bgrx => {
            planes.push(packed(4, [Some(2), Some(1), Some(0), None]))
        }
        VideoFormat::Argb | VideoFormat::Xrgb => {
            planes.push(packed(4, [None, Some(0), Some(1), Some(2)]))
        }
        VideoFormat::Abgr | VideoFormat::Xbgr => {
            planes.push(packed(4, [None, Some(2), Some(1), Some(0)]))
        }
        VideoFormat::Gray8 => {
            let stride = w + row_padding;
            let mut data = vec![0u8; stride * h];
            for y in 0..h {
                for x in 0..w {
                    let [r, g, b] = image.rgb(x, y).map(|c| c as u32);
                    data[y * stride + x] = ((299 * r + 587 * g + 114 * b + 500) / 1000) as u8;
                }
            }
            planes.push((data, stride));
        }
        VideoFormat::Nv12 | VideoFormat::I420 => {
            let ys = w + row_padding;
            let mut luma = vec![0u8; ys * h];
            for y in 0..h {
                for x in 0..w {
                    luma[y * ys + x] = yuv(image.rgb(x, y))[0];
                }
            }
            planes.push((luma, ys));
            // Chroma of the top-left pixel of each 2x2 block (the squares are even-aligned).
            let chroma =
                |cx: usize, cy: usize| yuv(image.rgb((2 * cx).min(w - 1), (2 * cy).min(h - 1)));
            if format == VideoFormat::Nv12 {
                let cs = cw * 2 + row_padding;
                let mut uv = vec![0u8; cs * ch];
                for cy in 0..ch {
                    for cx in 0..cw {
                        let [_, u, v] = chroma(cx, cy);
                        uv[cy * cs + 2 * cx] = u;
                        uv[cy * cs + 2 * cx + 1] = v;
                    }
                }
                planes.push((uv, cs));
            } else {
                let cs = cw + row_padding;
                let (mut u, mut v) = (vec![0u8; cs * ch], vec![0u8; cs * ch]);
                for cy in 0..ch {
                    for cx in 0..cw {
                        let c = chroma(cx, cy);
                        u[cy * cs + cx] = c[1];
                        v[cy * cs + cx] = c[2];
                    }
                }
                planes.push((u, cs));
                planes.push((v, cs));
            }
        }
        other => panic!("no test frames for {other:?}"),
    }
    let mut bytes = Vec::new();
    let mut offsets = Vec::new();
    let mut strides = Vec::new();
    for (data, stride) in planes {
        offsets.push(bytes.len());
        strides.push(stride as i32);
        bytes.extend_from_slice(&data);
    }
    let mut buffer = gst::Buffer::from_mut_slice(bytes);
    {
        let buffer = buffer.get_mut().unwrap();
        gst_video::VideoMeta::add_full(
            buffer,
            gst_video::VideoFrameFlags::empty(),
            format,
            w as u32,
            h as u32,
            &offsets,
            &strides,
        )
        .expect("video meta");
    }
    buffer
}

pub fn caps(format: VideoFormat, width: usize, height: usize) -> gst::Caps {
    init();
    gst_video::VideoInfo::builder(format, width as u32, height as u32)
        .fps(gst::Fraction::new(30, 1))
        .build()
        .unwrap()
        .to_caps()
        .unwrap()
}

/// A detection read back from a buffer's ROI meta.
#[derive(Debug, Clone)]
pub struct Roi {
    pub roi_type: String,
    pub rect: (u32, u32, u32, u32),
    pub label_id: i32,
    pub label: String,
    pub confidence: f64,
    /// x_min, y_min, x_max, y_max normalised.
    pub normalised: [f64; 4],
}

pub fn rois(buffer: &gst::BufferRef) -> Vec<Roi> {
    buffer
        .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
        .map(|meta| {
            let p = meta.param("detection").expect("detection parameters");
            Roi {
                roi_type: meta.roi_type().to_string(),
                rect: meta.rect(),
                label_id: p.get("label_id").unwrap(),
                label: p.get("label").unwrap(),
                confidence: p.get("confidence").unwrap(),
                normalised: ["x_min", "y_min", "x_max", "y_max"].map(|f| p.get::<f64>(f).unwrap()),
            }
        })
        .collect()
}

/// Asserts the ROIs are exactly the expected squares: class, box within `tolerance` px
/// (normalised box and integer rectangle both), confidence near the model's 0.99753.
pub fn assert_rois(
    rois: &[Roi],
    expected: &[Expected],
    width: usize,
    height: usize,
    tolerance: f64,
    context: &str,
) {
    assert_eq!(rois.len(), expected.len(), "{context}: {rois:#?}");
    for e in expected {
        let roi = rois
            .iter()
            .find(|r| r.label == e.class)
            .unwrap_or_else(|| panic!("{context}: no {} in {rois:#?}", e.class));
        assert_eq!(roi.roi_type, e.class, "{context}");
        assert_eq!(roi.label_id, e.label_id, "{context}");
        let pixels = [
            roi.normalised[0] * width as f64,
            roi.normalised[1] * height as f64,
            roi.normalised[2] * width as f64,
            roi.normalised[3] * height as f64,
        ];
        for (got, want) in pixels.iter().zip(e.rect) {
            assert!(
                (got - want).abs() <= tolerance,
                "{context}: {} box {pixels:?} vs {:?}",
                e.class,
                e.rect
            );
        }
        let (x, y, w, h) = roi.rect;
        let rect = [x as f64, y as f64, (x + w) as f64, (y + h) as f64];
        for (got, want) in rect.iter().zip(e.rect) {
            assert!(
                (got - want).abs() <= tolerance + 1.0,
                "{context}: rect {rect:?} vs {:?}",
                e.rect
            );
        }
        assert!(
            (roi.confidence - 0.99753).abs() < 0.01,
            "{context}: confidence {}",
            roi.confidence
        );
    }
}

/// Runs a reference script (`script --batch MANIFEST`, one Python process for every frame) on
/// frames written as raw files: each frame is its bytes and its manifest entry (the entry gains
/// `raw`, the file's path). Returns the script's JSON output, an entry per frame.
pub fn reference_batch(
    python: &std::path::Path,
    script: &str,
    frames: impl IntoIterator<Item = (Vec<u8>, serde_json::Value)>,
) -> Vec<serde_json::Value> {
    let dir = std::env::temp_dir().join(format!(
        "defect-reference-{}-{}",
        std::process::id(),
        script.replace(['/', '.'], "-")
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let mut manifest = Vec::new();
    for (k, (bytes, mut entry)) in frames.into_iter().enumerate() {
        let raw = dir.join(format!("{k}.raw"));
        std::fs::write(&raw, bytes).unwrap();
        entry["raw"] = serde_json::json!(raw);
        manifest.push(entry);
    }
    let manifest_path = dir.join("manifest.json");
    std::fs::write(&manifest_path, serde_json::to_string(&manifest).unwrap()).unwrap();
    let output = std::process::Command::new(python)
        .arg(repo_path(script))
        .arg("--batch")
        .arg(&manifest_path)
        .output()
        .expect("run the reference");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    json.as_array().expect("a list, an entry per frame").clone()
}

/// A verdict meta as `defectdetect` writes it for an inspected frame of a detector: one
/// PASS-counted detection, no part, no reasons; tests change the fields they need.
pub fn verdict_meta(verdict: gstdefect::meta::Verdict, frame: u64) -> gstdefect::meta::VerdictMeta {
    gstdefect::meta::VerdictMeta {
        task: String::new(),
        anomaly_score: None,
        verdict,
        shadow: false,
        part_id: None,
        frame,
        inspected: true,
        carried: false,
        skipped_frames: 0,
        source_frame: None,
        counts: [1, 0, 0, 0],
        model: gstdefect::meta::ModelRef::default(),
        policy_sha256: None,
        inference_ms: 1.0,
        total_ms: 2.0,
        reasons: Vec::new(),
        capture_dropped: None,
    }
}
