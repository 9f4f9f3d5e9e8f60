// SPDX-License-Identifier: MIT OR Apache-2.0
//! `DefectAnomalyScoresMeta`: the anomaly map an anomaly model gave for a frame, as the model
//! output it (its own resolution, raw scores in the model's units), so that downstream
//! elements and `defect-replay` (pixel-level AUROC) can read it. Fields: `width`, `height`
//! (guint, the map's cells) and `scores` (`GBytes`: `width * height` little-endian f32,
//! row-major). The map covers the whole frame (the model sees the frame stretched).

use gst::glib;

use super::fields as f;
use super::structure::{MetaError, Reader};
use crate::analysis::anomaly::AnomalyMap;

/// An anomaly map as the meta carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyScoresMeta {
    pub map: AnomalyMap,
}

impl AnomalyScoresMeta {
    pub fn to_structure(&self) -> gst::Structure {
        let mut bytes = Vec::with_capacity(self.map.data.len() * 4);
        for v in &self.map.data {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        gst::Structure::builder(f::ANOMALY_SCORES_META)
            .field(f::WIDTH, self.map.width as u32)
            .field(f::HEIGHT, self.map.height as u32)
            .field(f::ANOMALY_SCORES, glib::Bytes::from_owned(bytes))
            .build()
    }

    pub fn from_structure(s: &gst::StructureRef) -> Result<Self, MetaError> {
        let r = Reader::new(s);
        let width: u32 = r.required(f::WIDTH)?;
        let height: u32 = r.required(f::HEIGHT)?;
        let bytes: glib::Bytes = r.required(f::ANOMALY_SCORES)?;
        let cells = width as usize * height as usize;
        if bytes.len() != cells * 4 {
            return Err(r.error(
                f::ANOMALY_SCORES,
                format!(
                    "holds {} bytes where a {width}x{height} map needs {}",
                    bytes.len(),
                    cells * 4
                ),
            ));
        }
        let data = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(Self {
            map: AnomalyMap {
                width: width as usize,
                height: height as usize,
                data,
            },
        })
    }

    /// Adds the meta to a buffer.
    pub fn attach(&self, buffer: &mut gst::BufferRef) {
        let fields = self.to_structure();
        if let Ok(mut custom) = gst::meta::CustomMeta::add(buffer, f::ANOMALY_SCORES_META) {
            let structure = custom.mut_structure();
            for (name, value) in fields.iter() {
                structure.set_value(name, value.clone());
            }
        }
    }

    /// The buffer's anomaly map: None when it has none, an error naming the field when it is
    /// malformed.
    pub fn from_buffer(buffer: &gst::BufferRef) -> Option<Result<Self, MetaError>> {
        let meta = gst::meta::CustomMeta::from_buffer(buffer, f::ANOMALY_SCORES_META).ok()?;
        Some(Self::from_structure(meta.structure()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_what_it_wrote_and_names_a_short_map() {
        gst::init().unwrap();
        super::super::register();
        let meta = AnomalyScoresMeta {
            map: AnomalyMap {
                width: 3,
                height: 2,
                data: vec![0.0, 1.5, -2.0, 4.25, f32::MAX, 0.125],
            },
        };
        let mut buffer = gst::Buffer::new();
        meta.attach(buffer.get_mut().unwrap());
        assert_eq!(
            AnomalyScoresMeta::from_buffer(&buffer),
            Some(Ok(meta.clone()))
        );
        let mut s = meta.to_structure();
        s.set(f::WIDTH, 4u32);
        let e = AnomalyScoresMeta::from_structure(&s).unwrap_err();
        assert_eq!(e.field, f::ANOMALY_SCORES);
        assert!(e.to_string().contains("needs 32"), "{e}");
        assert!(AnomalyScoresMeta::from_buffer(&gst::Buffer::new()).is_none());
    }
}
