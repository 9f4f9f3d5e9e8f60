// SPDX-License-Identifier: MIT OR Apache-2.0
//! Verdicts to the machine: `defectmodbussink` pulses a reject coil over Modbus TCP and keeps
//! a status block of holding registers up to date for the line's PLC; `defectopcuasink`
//! serves the verdicts and counters to SCADA/MES over OPC UA. Both read `defectdetect`'s
//! metas (through [`verdict`], the only place that does) and decide through [`tracker`];
//! the protocols live in [`modbus`] (the reject worker) with [`modbus_tcp`] (its Modbus TCP
//! client), [`map`] (the register map) and [`opcua`] (an `async-opcua` server).
//!
//! Two elements rather than one: the reject output is a timing-critical actuator that a
//! line has once per reject gate, the OPC UA server an information service that a line may
//! have without any gate (or the reverse); each element's `gst-inspect-1.0` page then lists
//! only its own protocol's properties, each can be left out, and a failure of one (a port
//! already taken, a PLC away) does not touch the other.

use gst::glib;
use gst::prelude::*;

pub mod defectmodbussink;
pub mod defectopcuasink;
pub mod map;
pub mod modbus;
pub mod modbus_tcp;
pub mod opcua;
pub mod sink;
pub mod tracker;
pub mod verdict;

crate::element::enumeration! {
    /// What a verdict is about (the `unit` property of both elements).
    pub enum PlcUnit("GstDefectPlcUnit") {
        /// A finished part's verdict (parts come from frames-per-part, DefectPartMeta or
        /// defect-part events upstream of defectdetect)
        Part, "part", "Part: act on each finished part's verdict";
        Frame, "frame", "Frame: act on each frame's verdict";
    }
}

impl From<PlcUnit> for tracker::Unit {
    fn from(unit: PlcUnit) -> Self {
        match unit {
            PlcUnit::Part => tracker::Unit::Part,
            PlcUnit::Frame => tracker::Unit::Frame,
        }
    }
}

/// Registers both elements.
pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    crate::element::mark_plugin_api(&[PlcUnit::static_type()]);
    defectmodbussink::register(plugin)?;
    defectopcuasink::register(plugin)
}
