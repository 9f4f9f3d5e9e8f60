// SPDX-License-Identifier: MIT OR Apache-2.0
//! `defectdetect`'s `model-info` property: what the loaded model is, as a structure.

use super::ModelInfoMeta;
use super::fields as f;
use super::structure::{MetaError, Reader};

/// A [`ModelInfoMeta`] as the `model-info` property's structure.
pub trait ModelInfoMetaExt: Sized {
    fn to_structure(&self) -> gst::Structure;
    fn from_structure(s: &gst::StructureRef) -> Result<Self, MetaError>;
    /// The `model-info` of an element: None before a model is loaded.
    fn of(element: &impl gst::prelude::ObjectExt) -> Option<Result<Self, MetaError>>;
}

impl ModelInfoMetaExt for ModelInfoMeta {
    fn to_structure(&self) -> gst::Structure {
        gst::Structure::builder(f::MODEL_INFO)
            .field(f::MODEL_ID, &self.model_id)
            .field(f::TASK, &self.task)
            .field(f::INPUT_NAME, &self.input_name)
            .field(f::CHANNELS, self.channels)
            .field(f::WIDTH, self.width)
            .field(f::HEIGHT, self.height)
            .field(
                f::OUTPUT_SHAPE,
                gst::Array::new(self.output_shape.iter().copied()),
            )
            .field(f::OUTPUT_LAYOUT, &self.output_layout)
            .field(
                f::CLASSES,
                gst::Array::new(self.classes.iter().map(String::as_str)),
            )
            .field(f::PROVIDER, &self.provider)
            .field(f::INT8_RISK, self.int8_risk.as_deref().unwrap_or_default())
            .build()
    }

    fn from_structure(s: &gst::StructureRef) -> Result<Self, MetaError> {
        let r = Reader::new(s);
        if s.name() != f::MODEL_INFO {
            return Err(r.error(
                f::MODEL_INFO,
                format!("is a structure named {:?}", s.name().as_str()),
            ));
        }
        Ok(Self {
            model_id: r.required(f::MODEL_ID)?,
            task: r.optional(f::TASK)?.unwrap_or_default(),
            input_name: r.required(f::INPUT_NAME)?,
            channels: r.required(f::CHANNELS)?,
            width: r.required(f::WIDTH)?,
            height: r.required(f::HEIGHT)?,
            output_shape: r.list(f::OUTPUT_SHAPE)?,
            output_layout: r.required(f::OUTPUT_LAYOUT)?,
            classes: r.list(f::CLASSES)?,
            provider: r.required(f::PROVIDER)?,
            int8_risk: r
                .optional::<String>(f::INT8_RISK)?
                .filter(|risk| !risk.is_empty()),
        })
    }

    fn of(element: &impl gst::prelude::ObjectExt) -> Option<Result<Self, MetaError>> {
        element
            .property::<Option<gst::Structure>>(f::MODEL_INFO)
            .map(|s| Self::from_structure(&s))
    }
}
