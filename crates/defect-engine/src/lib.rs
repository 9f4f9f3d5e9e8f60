// SPDX-License-Identifier: MIT OR Apache-2.0
//! gst-plugin-defect's engine: everything the elements do that needs no GStreamer.
//!
//! [`runtime`] wraps ONNX Runtime; [`inspect`] runs a model on frames and judges them with a
//! [`policy`]; [`analysis`] holds the pure maths (letterbox, decoding, NMS, tiles, masks,
//! anomaly maps); [`frame`] the pixel formats; [`draw`] the overlay; [`capture`] the saved
//! frames and datasets; [`parts`] the multi-camera join; [`monitor`] the metrics and drift;
//! [`records`] the NDJSON records; [`meta`] the contract's types; [`net`] the shared tokio
//! runtime and reconnect policy. The plugin (`gst-plugin-defect`) adapts them to GStreamer
//! and re-exports them, so `gstdefect::inspect` and `defect_engine::inspect` are one module.

pub mod analysis;
pub mod capture;
pub mod draw;
pub mod files;
pub mod frame;
pub mod inspect;
pub mod meta;
pub mod monitor;
pub mod net;
pub mod parts;
pub mod policy;
pub mod records;
pub mod runtime;

use std::sync::{Mutex, MutexGuard};

/// Locks a mutex; a panic elsewhere while it was held must not turn every later call into
/// another panic, so a poisoned lock is taken as it is.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
