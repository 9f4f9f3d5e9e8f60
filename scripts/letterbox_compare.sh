#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# The letterbox pass of this tree against the one of an earlier commit (default ca1aa59, the
# floating-point pass the OpenCV-exact fixed-point one replaced), in one process: both
# sources are compiled side by side into a throwaway crate under target/, and each case
# alternates calls of each, keeping the fastest call of each (on a loaded machine the
# fastest calls are those no other process interrupted). Prints the times and the ratio
# new/old.
#
# Usage: scripts/letterbox_compare.sh [BASE_REV] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${1:-ca1aa59}
ROUNDS=${2:-500}
DIR=target/letterbox-compare
mkdir -p "$DIR/src/old" "$DIR/src/new"
git show "$BASE:src/analysis/letterbox.rs" > "$DIR/src/old_lb.rs"
cp src/analysis/letterbox.rs "$DIR/src/new_lb.rs"
cp src/analysis/detection.rs "$DIR/src/detection.rs"
cat > "$DIR/Cargo.toml" <<'TOML'
[package]
name = "letterbox-compare"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
thiserror = "2"

[profile.release]
opt-level = 3

[workspace]
TOML
cp Cargo.lock "$DIR/Cargo.lock"
cat > "$DIR/src/main.rs" <<'RS'
#![allow(dead_code, unused)]
use std::time::{Duration, Instant};

#[path = "detection.rs"]
mod detection;

pub mod old {
    pub use crate::detection::BBox;
    #[path = "../old_lb.rs"]
    pub mod letterbox;
}
pub mod new {
    pub use crate::detection::BBox;
    #[path = "../new_lb.rs"]
    pub mod letterbox;
}

/// One frame and its letterbox, for each version.
macro_rules! case {
    ($version:ident) => {
        pub mod $version {
            use crate::$version::letterbox::*;

            pub struct Case {
                data: Vec<u8>,
                offsets: [usize; 3],
                strides: [usize; 3],
                size: (u32, u32),
                letterbox: Letterbox,
                tensor: Vec<f32>,
            }

            impl Case {
                pub fn new(format: &str, w: u32, h: u32) -> Self {
                    let (wu, hu) = (w as usize, h as usize);
                    let pattern = |i: usize| ((i * 2654435761) >> 13) as u8;
                    let (format, len, offsets, strides) = match format {
                        "rgb" => (PixelFormat::RGB, wu * hu * 3, [0, 0, 0], [wu * 3, 0, 0]),
                        "gray" => (PixelFormat::Gray8, wu * hu, [0, 0, 0], [wu, 0, 0]),
                        _ => {
                            let chroma = wu.div_ceil(2) * 2 * hu.div_ceil(2);
                            let stride = wu.div_ceil(2) * 2;
                            (PixelFormat::Nv12, wu * hu + chroma, [0, wu * hu, 0], [wu, stride, 0])
                        }
                    };
                    let mut letterbox = Letterbox::new(
                        LetterboxGeometry::new(w, h, 640, 640),
                        format,
                        YuvMatrix::bt709(),
                        3,
                    );
                    let mut tensor = vec![0.0f32; letterbox.tensor_len()];
                    letterbox.fill_padding(&mut tensor);
                    let data = (0..len).map(pattern).collect();
                    Self { data, offsets, strides, size: (w, h), letterbox, tensor }
                }

                pub fn run(&mut self) {
                    let plane = |i: usize| {
                        if self.strides[i] == 0 { &self.data[..0] } else { &self.data[self.offsets[i]..] }
                    };
                    let frame = FrameView {
                        width: self.size.0,
                        height: self.size.1,
                        planes: [plane(0), plane(1), plane(2)],
                        strides: self.strides,
                    };
                    self.letterbox.run(&frame, &mut self.tensor).expect("letterbox");
                }
            }
        }
    };
}

mod cases {
    case!(old);
    case!(new);
}

fn once(run: &mut dyn FnMut()) -> Duration {
    let started = Instant::now();
    run();
    started.elapsed()
}

fn main() {
    let rounds: u32 = std::env::args().nth(1).map_or(500, |a| a.parse().expect("rounds"));
    println!("letterbox into 640x640, fastest of {rounds} alternating calls of each");
    for (name, format, w, h) in [
        ("1080p RGB", "rgb", 1920, 1080),
        ("1080p NV12", "nv12", 1920, 1080),
        ("12 MP GRAY8", "gray", 4096, 3000),
        ("12 MP RGB", "rgb", 4096, 3000),
    ] {
        let mut old = cases::old::Case::new(format, w, h);
        let mut new = cases::new::Case::new(format, w, h);
        let (mut best_old, mut best_new) = (Duration::MAX, Duration::MAX);
        for _ in 0..rounds {
            best_old = best_old.min(once(&mut || old.run()));
            best_new = best_new.min(once(&mut || new.run()));
        }
        println!(
            "  {name:12} old {:.3} ms  new {:.3} ms  new/old {:.2}",
            best_old.as_secs_f64() * 1e3,
            best_new.as_secs_f64() * 1e3,
            best_new.as_secs_f64() / best_old.as_secs_f64()
        );
    }
}
RS
echo "letterbox_compare: old = $BASE:src/analysis/letterbox.rs, new = this tree's"
cargo run --quiet --release --offline --manifest-path "$DIR/Cargo.toml" -- "$ROUNDS"
