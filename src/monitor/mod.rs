// SPDX-License-Identifier: MIT OR Apache-2.0
//! A station watching itself, free of GStreamer: drift of the images and of the model's
//! results against a baseline of known-good operation.

pub mod drift;
