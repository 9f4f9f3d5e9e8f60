// SPDX-License-Identifier: MIT OR Apache-2.0
//! The types of the contract between the elements that the engine works with, without
//! GStreamer: the names of every meta, structure, message, event and field ([`fields`]),
//! [`Verdict`], [`Severity`] and [`Decision`], and the frame, part, drift, challenger and model
//! records ([`VerdictMeta`], [`PartVerdictMeta`], [`DriftReport`], [`ChallengerFrame`],
//! [`ModelInfoMeta`]).
//!
//! The plugin's `meta` module re-exports them and writes and reads each as its
//! `gst::Structure` (the metas, messages, events and properties), alone.

mod challenger;
mod detection;
mod drift;
pub mod fields;
mod model_info;
mod values;
mod verdict;

pub use challenger::{AgreementRow, ChallengerFrame, ChallengerSummary};
pub use detection::Reason;
pub use drift::{DriftFeature, DriftReport};
pub use model_info::ModelInfoMeta;
pub use values::{Decision, Severity, Verdict};
pub use verdict::{CameraStatus, CameraVerdict, ModelRef, PartVerdictMeta, VerdictMeta};
