// SPDX-License-Identifier: MIT OR Apache-2.0
//! Parts seen by several cameras: [`join`] joins their part verdicts into one per part
//! (the logic of `defectpartmux`, free of GStreamer).

pub mod join;

pub use join::{CameraCounts, CameraId, Join, Notice, Output};
