// SPDX-License-Identifier: MIT OR Apache-2.0
//! gst-plugin-defect: GStreamer elements for automated visual inspection with
//! YOLO-style ONNX detectors.
//!
//! The engine (`defect_engine`: model runtime, inspection, policy, analysis, drawing,
//! monitoring, no GStreamer inside) is re-exported here, so `gstdefect::inspect` and
//! `defect_engine::inspect` are one module; each element has its own folder and is a thin
//! adapter over it. [`meta`] writes and reads the contract's types as GStreamer structures.

pub use defect_engine::{
    analysis, capture, draw, files, frame, inspect, monitor, net, parts, policy, records, runtime,
};

pub mod defectcapture;
pub mod defectdetect;
pub mod defectmetaconvert;
pub mod defectmetricssink;
pub mod defectmqttsink;
pub mod defectoverlay;
pub mod defectpartmux;
pub mod element;
pub mod meta;
pub mod mqtt;
pub mod plc;
pub mod video;

gst::plugin_define!(
    defect,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MIT/X11",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);

fn plugin_init(plugin: &gst::Plugin) -> Result<(), gst::glib::BoolError> {
    meta::register();
    defectdetect::register(plugin)?;
    defectoverlay::register(plugin)?;
    defectmetaconvert::register(plugin)?;
    defectmetricssink::register(plugin)?;
    defectmqttsink::register(plugin)?;
    defectcapture::register(plugin)?;
    defectpartmux::register(plugin)?;
    plc::register(plugin)?;
    Ok(())
}
