// SPDX-License-Identifier: MIT OR Apache-2.0
//! The letterbox equals OpenCV's bit for bit: frames of odd sizes (1x1, down- and up-scaled,
//! 1001x667, 4096x3000, rows with padding) go through `Letterbox` and through the reference
//! detector's `preprocess` (`cv2.resize(INTER_LINEAR)`, `cv2.copyMakeBorder`, `/ 255`; for
//! 1-channel models `cvtColor(RGB2GRAY)` first), and the float tensors are compared bit for
//! bit, for RGB, BGR, BGRA and grey frames into 3-channel models and grey frames into
//! 1-channel models.
//!
//! Colour frames into 1-channel models go through a grey conversion first. The pip OpenCV
//! converts with Intel IPP, whose rounding is not documented; `Letterbox` uses OpenCV's own
//! integer weights (its path without IPP), so there about 0.1 % of values differ by one grey
//! level, and the test holds them to that.
//!
//! Runs where the project's `.venv` has OpenCV (scripts/setup.sh installs it); elsewhere it
//! says so and passes.

use std::path::{Path, PathBuf};
use std::process::Command;

use gstdefect::analysis::letterbox::{Letterbox, LetterboxGeometry};
use gstdefect::frame::{FrameView, PixelFormat, YuvMatrix};

fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn python() -> Option<PathBuf> {
    let python = repo_path(".venv/bin/python");
    Command::new(&python)
        .args(["-c", "import cv2, numpy, onnxruntime"])
        .status()
        .is_ok_and(|s| s.success())
        .then_some(python)
}

/// Deterministic noise: the hardest input for rounding, every level next to every other.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Input {
    Rgb,
    Bgr,
    Bgra,
    Gray,
}

struct Case {
    width: usize,
    height: usize,
    input: Input,
    /// Model input (h, w) and channels.
    model: (u32, u32),
    channels: usize,
    /// Bytes of padding after each row of the frame given to `Letterbox`.
    row_padding: usize,
}

impl Case {
    fn name(&self) -> String {
        format!(
            "{}x{} {:?} (+{} B/row) into {}x{}x{}",
            self.width,
            self.height,
            self.input,
            self.row_padding,
            self.channels,
            self.model.0,
            self.model.1
        )
    }
}

/// The frame as the reference reads it (RGB or grey, packed) and as `Letterbox` gets it.
fn frames(case: &Case, seed: u64) -> (Vec<u8>, Vec<u8>, PixelFormat, usize) {
    let (w, h) = (case.width, case.height);
    let reference_channels = if case.input == Input::Gray { 1 } else { 3 };
    let reference = noise(w * h * reference_channels, seed);
    let (format, bpp) = match case.input {
        Input::Rgb => (PixelFormat::RGB, 3),
        Input::Bgr => (PixelFormat::BGR, 3),
        Input::Bgra => (PixelFormat::BGRA, 4),
        Input::Gray => (PixelFormat::Gray8, 1),
    };
    let stride = w * bpp + case.row_padding;
    let mut ours = vec![0xAB; stride * h];
    for y in 0..h {
        for x in 0..w {
            let from = &reference[(y * w + x) * reference_channels..][..reference_channels];
            let to = &mut ours[y * stride + x * bpp..][..bpp];
            match case.input {
                Input::Rgb | Input::Gray => to.copy_from_slice(from),
                Input::Bgr => to.copy_from_slice(&[from[2], from[1], from[0]]),
                Input::Bgra => to.copy_from_slice(&[from[2], from[1], from[0], 0x5A]),
            }
        }
    }
    (reference, ours, format, stride)
}

fn letterbox(case: &Case, data: &[u8], format: PixelFormat, stride: usize) -> Vec<f32> {
    let (w, h) = (case.width as u32, case.height as u32);
    let mut lb = Letterbox::new(
        LetterboxGeometry::new(w, h, case.model.1, case.model.0),
        format,
        YuvMatrix::bt601(),
        case.channels,
    );
    let mut tensor = vec![f32::NAN; lb.tensor_len()];
    lb.fill_padding(&mut tensor);
    let frame = FrameView {
        width: w,
        height: h,
        planes: [data, &[], &[]],
        strides: [stride, 0, 0],
    };
    // Twice: the second pass must not reuse rows of the first.
    lb.run(&frame, &mut tensor).unwrap();
    lb.run(&frame, &mut tensor).unwrap();
    tensor
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

#[test]
fn letterbox_equals_opencv_bit_for_bit() {
    let Some(python) = python() else {
        eprintln!(
            "letterbox test against OpenCV skipped: .venv with OpenCV not found (run scripts/setup.sh --tests)"
        );
        return;
    };
    let mut cases = Vec::new();
    let sizes = [
        (1, 1),
        (2, 3),
        (7, 5),
        (200, 200),
        (641, 479),
        (1001, 667),
        (480, 900),
        (1920, 1080),
        (4096, 3000),
        (13, 997),
        (997, 13),
        (1280, 768),
    ];
    for (i, &(width, height)) in sizes.iter().enumerate() {
        for (j, model) in [(384, 640), (256, 256), (640, 640)].into_iter().enumerate() {
            let input = [Input::Rgb, Input::Bgr, Input::Bgra, Input::Gray][(i + j) % 4];
            cases.push(Case {
                width,
                height,
                input,
                model,
                channels: 3,
                row_padding: (i + j) % 3 * 5,
            });
        }
        // 1-channel models: from grey frames, and from colour frames through RGB2GRAY.
        let colour = [Input::Rgb, Input::Bgra][i % 2];
        for input in [Input::Gray, colour] {
            cases.push(Case {
                width,
                height,
                input,
                model: (256, 256),
                channels: 1,
                row_padding: 3,
            });
        }
    }
    let dir = std::env::temp_dir().join(format!("letterbox-opencv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut manifest = Vec::new();
    let mut ours = Vec::new();
    for (k, case) in cases.iter().enumerate() {
        let (reference, data, format, stride) = frames(case, k as u64 + 1);
        let raw = dir.join(format!("{k}.raw"));
        std::fs::write(&raw, &reference).unwrap();
        manifest.push(serde_json::json!({
            "raw": raw, "width": case.width, "height": case.height,
            "format": if case.input == Input::Gray { "GRAY8" } else { "RGB" },
            "input": [case.model.0, case.model.1], "channels": case.channels,
            "out": dir.join(format!("{k}.f32")),
        }));
        ours.push(letterbox(case, &data, format, stride));
    }
    let manifest_path = dir.join("manifest.json");
    std::fs::write(&manifest_path, serde_json::to_string(&manifest).unwrap()).unwrap();
    let status = Command::new(&python)
        .arg(repo_path("scripts/letterbox_reference.py"))
        .arg(&manifest_path)
        .status()
        .expect("run scripts/letterbox_reference.py");
    assert!(status.success(), "scripts/letterbox_reference.py failed");
    let mut failures = Vec::new();
    for (k, (case, ours)) in cases.iter().zip(&ours).enumerate() {
        let reference = read_f32(&dir.join(format!("{k}.f32")));
        assert_eq!(reference.len(), ours.len(), "{}", case.name());
        let differing: Vec<usize> = (0..ours.len())
            .filter(|&i| ours[i].to_bits() != reference[i].to_bits())
            .collect();
        // Colour into a 1-channel model: within one grey level, on at most 0.5 % of values.
        let loose = case.channels == 1 && case.input != Input::Gray;
        let within_one_level = differing
            .iter()
            .all(|&i| ((ours[i] - reference[i]) * 255.0).abs() <= 1.0 + 1e-3);
        if loose && within_one_level && differing.len() * 200 <= ours.len() {
            continue;
        }
        if let Some(&first) = differing.first() {
            let plane = (case.model.0 * case.model.1) as usize;
            let max = differing
                .iter()
                .map(|&i| ((ours[i] - reference[i]) * 255.0).abs())
                .fold(0.0f32, f32::max);
            failures.push(format!(
                "{}: {} of {} values differ (largest by {max:.3} grey levels); first at channel {}, row {}, column {}: ours {} reference {}",
                case.name(),
                differing.len(),
                ours.len(),
                first / plane,
                first % plane / case.model.1 as usize,
                first % case.model.1 as usize,
                ours[first],
                reference[first]
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from OpenCV:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    eprintln!("{} cases equal OpenCV's tensors bit for bit", cases.len());
}
