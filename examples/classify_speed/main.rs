// SPDX-License-Identifier: MIT OR Apache-2.0
//! `cargo run --example classify_speed`: the classify preprocessing (Ultralytics'
//! shortest-side resize and centre crop, PIL's fixed-point bilinear filter) before and after
//! the speed-up, measured in one run on the same frames, with the tensors checked equal bit for
//! bit. Prints, per case, the fastest of `CLS_ROUNDS` (default 7) alternating rounds of each
//! and the ratio old / new. Figures from the dev profile are what the debug build costs; add
//! `--release` for the release build.

mod baseline;

use std::time::{Duration, Instant};

use gstdefect::analysis::classify::{ClassifyGeometry, ClassifyPreprocess};
use gstdefect::frame::{FrameView, PixelFormat, YuvMatrix};

/// A textured frame: every byte from a cheap hash of its position.
fn bytes(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| {
            let x = i.wrapping_mul(2_654_435_761).wrapping_add(seed) ^ (i >> 7);
            (x >> 13) as u8
        })
        .collect()
}

struct Case {
    name: &'static str,
    format: PixelFormat,
    width: u32,
    height: u32,
    /// The region classified: the whole frame, or an ROI (`on-rois`).
    region: (u32, u32, u32, u32),
}

fn time(mut f: impl FnMut()) -> Duration {
    let started = Instant::now();
    f();
    started.elapsed()
}

fn main() {
    let rounds: usize = std::env::var("CLS_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let cases = [
        Case {
            name: "1080p RGB, whole frame",
            format: PixelFormat::RGB,
            width: 1920,
            height: 1080,
            region: (0, 0, 1920, 1080),
        },
        Case {
            name: "1080p NV12, whole frame",
            format: PixelFormat::Nv12,
            width: 1920,
            height: 1080,
            region: (0, 0, 1920, 1080),
        },
        Case {
            name: "1080p I420, whole frame",
            format: PixelFormat::I420,
            width: 1920,
            height: 1080,
            region: (0, 0, 1920, 1080),
        },
        Case {
            name: "1080p BGRx, 300x180 ROI",
            format: PixelFormat::BGRA,
            width: 1920,
            height: 1080,
            region: (811, 403, 300, 180),
        },
        Case {
            name: "1080p RGB, 120x90 ROI (enlarged)",
            format: PixelFormat::RGB,
            width: 1920,
            height: 1080,
            region: (1500, 20, 120, 90),
        },
    ];
    let yuv = YuvMatrix::bt709();
    for case in &cases {
        let (w, h) = (case.width as usize, case.height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let (planes, strides): (Vec<Vec<u8>>, [usize; 3]) = match case.format {
            PixelFormat::Packed {
                bytes_per_pixel, ..
            } => {
                let stride = w * bytes_per_pixel as usize + 8;
                (vec![bytes(stride * h, 1)], [stride, 0, 0])
            }
            PixelFormat::Gray8 => (vec![bytes(w * h, 1)], [w, 0, 0]),
            PixelFormat::Nv12 => (vec![bytes(w * h, 1), bytes(cw * 2 * ch, 2)], [w, cw * 2, 0]),
            PixelFormat::I420 => (
                vec![bytes(w * h, 1), bytes(cw * ch, 2), bytes(cw * ch, 3)],
                [w, cw, cw],
            ),
        };
        let view = FrameView {
            width: case.width,
            height: case.height,
            planes: [
                &planes[0],
                planes.get(1).map_or(&[][..], |p| &p[..]),
                planes.get(2).map_or(&[][..], |p| &p[..]),
            ],
            strides,
        };
        let (x, y, rw, rh) = case.region;
        let geometry = ClassifyGeometry::new(rw, rh, 224, 224);
        let mut old = baseline::ClassifyPreprocess::new(geometry);
        let mut new = ClassifyPreprocess::new(geometry);
        let (mut old_tensor, mut new_tensor) =
            (vec![0f32; 3 * 224 * 224], vec![1f32; 3 * 224 * 224]);
        let (mut best_old, mut best_new) = (Duration::MAX, Duration::MAX);
        for _ in 0..rounds {
            best_old = best_old.min(time(|| {
                old.run(&view, case.format, yuv, (x, y), 3, &mut old_tensor)
                    .expect("baseline")
            }));
            best_new = best_new.min(time(|| {
                new.run(&view, case.format, yuv, (x, y), 3, &mut new_tensor)
                    .expect("new")
            }));
        }
        let same = old_tensor
            .iter()
            .zip(&new_tensor)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "{}: the tensors differ", case.name);
        println!(
            "{:34} old {:8.2} ms  new {:7.2} ms  old/new {:5.1}x  (bit-exact: {same})",
            case.name,
            best_old.as_secs_f64() * 1e3,
            best_new.as_secs_f64() * 1e3,
            best_old.as_secs_f64() / best_new.as_secs_f64()
        );
    }
}
