// SPDX-License-Identifier: MIT OR Apache-2.0
//! `defectmodbussink`'s element messages: a reject pulse fired, a reject missed.

use super::fields as f;
use super::structure::{MetaError, Reader};

/// `defect-reject`: the reject pulse of a part (or frame) was written to the PLC.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectMessage {
    /// The part (or frame) rejected.
    pub label: String,
    /// How long after its due time the pulse was written, in microseconds.
    pub late_us: u64,
}

impl RejectMessage {
    pub fn to_structure(&self) -> gst::Structure {
        gst::Structure::builder(f::REJECT_MESSAGE)
            .field(f::LABEL, &self.label)
            .field(f::LATE_US, self.late_us)
            .build()
    }

    /// The message's contents; None when the structure is another message.
    pub fn from_structure(s: &gst::StructureRef) -> Option<Result<Self, MetaError>> {
        (s.name() == f::REJECT_MESSAGE).then(|| {
            let r = Reader::new(s);
            Ok(Self {
                label: r.required(f::LABEL)?,
                late_us: r.required(f::LATE_US)?,
            })
        })
    }
}

/// `defect-reject-missed`: a reject that could not be fired in time, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectMissedMessage {
    pub label: String,
    pub reason: String,
}

impl RejectMissedMessage {
    pub fn to_structure(&self) -> gst::Structure {
        gst::Structure::builder(f::REJECT_MISSED_MESSAGE)
            .field(f::LABEL, &self.label)
            .field(f::MISSED_BECAUSE, &self.reason)
            .build()
    }

    /// The message's contents; None when the structure is another message.
    pub fn from_structure(s: &gst::StructureRef) -> Option<Result<Self, MetaError>> {
        (s.name() == f::REJECT_MISSED_MESSAGE).then(|| {
            let r = Reader::new(s);
            Ok(Self {
                label: r.required(f::LABEL)?,
                reason: r.required(f::MISSED_BECAUSE)?,
            })
        })
    }
}
