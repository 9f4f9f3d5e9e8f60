// SPDX-License-Identifier: MIT OR Apache-2.0
//! Reading a structure of the contract: a missing or mistyped field is a [`MetaError`] naming
//! the structure and the field, never a silent default.

use gst::glib;
use gst::prelude::*;

/// A field of a contract structure that is missing, of another type, or holds a value the
/// contract does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{structure}: field `{field}` {problem}")]
pub struct MetaError {
    /// The structure's name (`DefectVerdictMeta`, `detection`, ...).
    pub structure: String,
    pub field: &'static str,
    pub problem: String,
}

/// Reads the fields of one structure.
pub(crate) struct Reader<'a> {
    structure: &'a gst::StructureRef,
}

impl<'a> Reader<'a> {
    pub fn new(structure: &'a gst::StructureRef) -> Self {
        Self { structure }
    }

    pub fn error(&self, field: &'static str, problem: impl Into<String>) -> MetaError {
        MetaError {
            structure: self.structure.name().to_string(),
            field,
            problem: problem.into(),
        }
    }

    /// A field that may be absent; present, it must have type `T`.
    pub fn optional<T>(&self, field: &'static str) -> Result<Option<T>, MetaError>
    where
        T: for<'b> glib::value::FromValue<'b> + StaticType + 'static,
    {
        let Ok(value) = self.structure.value(field) else {
            return Ok(None);
        };
        value.get::<T>().map(Some).map_err(|_| {
            self.error(
                field,
                format!(
                    "is a {} where a {} is expected",
                    value.type_(),
                    T::static_type()
                ),
            )
        })
    }

    /// A field that must be present with type `T`.
    pub fn required<T>(&self, field: &'static str) -> Result<T, MetaError>
    where
        T: for<'b> glib::value::FromValue<'b> + StaticType + 'static,
    {
        self.optional(field)?
            .ok_or_else(|| self.error(field, "is missing"))
    }

    /// A string field naming one of an enum's values.
    pub fn named<T>(
        &self,
        field: &'static str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<T, MetaError> {
        let text: String = self.required(field)?;
        parse(&text).ok_or_else(|| self.error(field, format!("has the unknown value {text:?}")))
    }

    /// An optional string field naming one of an enum's values.
    pub fn optional_named<T>(
        &self,
        field: &'static str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>, MetaError> {
        match self.optional::<String>(field)? {
            None => Ok(None),
            Some(text) => parse(&text)
                .map(Some)
                .ok_or_else(|| self.error(field, format!("has the unknown value {text:?}"))),
        }
    }

    /// An array of structures, each read by `read`.
    pub fn structures<T>(
        &self,
        field: &'static str,
        read: impl Fn(&gst::StructureRef) -> Result<T, MetaError>,
    ) -> Result<Vec<T>, MetaError> {
        let array: gst::Array = self.required(field)?;
        array
            .iter()
            .map(|value| {
                let structure = value.get::<gst::Structure>().map_err(|_| {
                    self.error(
                        field,
                        format!("holds a {} where a structure is expected", value.type_()),
                    )
                })?;
                read(&structure)
            })
            .collect()
    }

    /// An array of values of type `T`.
    pub fn list<T>(&self, field: &'static str) -> Result<Vec<T>, MetaError>
    where
        T: for<'b> glib::value::FromValue<'b> + StaticType + 'static,
    {
        let array: gst::Array = self.required(field)?;
        array
            .iter()
            .map(|value| {
                value.get::<T>().map_err(|_| {
                    self.error(
                        field,
                        format!(
                            "holds a {} where a {} is expected",
                            value.type_(),
                            T::static_type()
                        ),
                    )
                })
            })
            .collect()
    }
}
