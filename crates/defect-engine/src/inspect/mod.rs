// SPDX-License-Identifier: MIT OR Apache-2.0
//! The inspection engine, free of GStreamer: what `defectdetect` adapts to buffers, events,
//! metas and messages.
//!
//! - [`infer`]: planning and preprocessing (the tile limit, the letterbox of whole frames and
//!   tiles, the classifier's resize and crop of whole frames and of regions), inference for
//!   every task (detect, classify, anomaly), decoding and NMS;
//! - [`model`]: the unit the slot swaps ([`model::Loaded`]: a detector, its preprocessing plan
//!   and its policy) and what verdicts need of it ([`model::Identity`]);
//! - [`slot`]: the model slot (the model in use, the one waiting to take over, background
//!   builds);
//! - [`stream`]: a stream's state (caps, frame count, parts, the carried result, the
//!   asynchronous worker's results) and how a frame is decided from its result, its carried
//!   result or none yet;
//! - [`flow`]: a frame's way from its part to its verdict, step by step as the adapter calls
//!   it (count it, decide whether the model runs, look at its one mapping, conclude; or hand
//!   it to the asynchronous worker and decide it pending), and end of stream;
//! - [`agreement`]: what two models made of the same frames, compared (a challenger and
//!   production; `defect-replay --model-b`);
//! - [`engine`]: what the streaming thread and the asynchronous worker share ([`Engine`]): the
//!   slot, the interrupter of the model in use, the counters and the latency reported;
//! - [`checks`]: which settings combine (`crop`, `on-rois`, `async-inference`, a challenger),
//!   whether the model's task fits them, and which frames go to the challenger.
//!
//! Frames come in as a [`crate::frame::FrameView`] with their [`crate::frame::PixelFormat`] and
//! [`crate::frame::YuvMatrix`] ([`infer::FrameInput`]), never as GStreamer caps.
//!
//! Locks, and their order where two are held: the slot's current model
//! ([`slot::Slot::lock_current`], held for a whole inference by the thread that infers), then
//! the slot's `control` or the engine's `interrupter` (both short). The adapter's own
//! running-state lock may be taken while the current model is held, never the other way round.

pub mod agreement;
pub mod checks;
pub mod engine;
pub mod flow;
pub mod infer;
pub mod model;
pub mod slot;
pub mod stream;

pub use engine::{Adopted, Engine};
