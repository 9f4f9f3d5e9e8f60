// SPDX-License-Identifier: MIT OR Apache-2.0
//! gst-plugin-defect: GStreamer elements for automated visual inspection with
//! YOLO-style ONNX detectors.
//!
//! Pure logic lives in [`analysis`] (no GStreamer inside); [`runtime`] wraps ONNX Runtime;
//! each element has its own folder and is a thin adapter over both.

pub mod analysis;
pub mod capture;
pub mod policy;
pub mod records;
pub mod replay;
pub mod runtime;

pub mod defectcapture;
pub mod defectdetect;
pub mod defectmetaconvert;
pub mod defectmqttsink;
pub mod defectoverlay;
pub mod draw;
pub mod element;
pub mod files;
pub mod meta;
pub mod metrics;
pub mod monitor;
pub mod mqtt;
pub mod net;
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
    defectmqttsink::register(plugin)?;
    defectcapture::register(plugin)?;
    plc::register(plugin)?;
    Ok(())
}
