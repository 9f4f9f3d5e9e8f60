// SPDX-License-Identifier: MIT OR Apache-2.0
//! What every element of the plugin shares: the poison-ignoring lock, the element metadata's
//! author, the pad templates, and [`describe!`](crate::element::describe), which writes an
//! `ElementImpl`'s `metadata` and `pad_templates` from them; the properties' tables, settings
//! and enums ([`property`]).

pub mod property;
pub mod sink;

pub use property::{PropertySettings, Setting, mark_plugin_api, property, set_property};
pub(crate) use property::{
    enumeration, plain_setting, properties, property_builder, settings_accessors,
    settings_properties,
};

use crate::video::FORMATS;

pub use defect_engine::lock;

/// An element's debug category (one per element).
pub fn debug_category(name: &str, description: &str) -> gst::DebugCategory {
    gst::DebugCategory::new(name, gst::DebugColorFlags::empty(), Some(description))
}

/// The metadata of one of the plugin's elements.
pub fn metadata(
    long_name: &str,
    classification: &str,
    description: &str,
) -> gst::subclass::ElementMetadata {
    gst::subclass::ElementMetadata::new(
        long_name,
        classification,
        description,
        "gst-plugin-defect developers",
    )
}

/// Raw video in every format the plugin's video elements read and write.
pub fn video_caps() -> gst::Caps {
    gst_video::VideoCapsBuilder::new()
        .format_list(FORMATS.iter().copied())
        .build()
}

/// Raw video of any format and memory (elements that read only metas).
pub fn any_video_caps() -> gst::Caps {
    gst::Caps::builder("video/x-raw").any_features().build()
}

/// What the verdict readers (`defectmetaconvert`, the PLC sinks) accept: video with the
/// metas of `defectdetect`, or the joined parts of `defectpartmux`.
pub fn verdict_caps() -> gst::Caps {
    let mut caps = any_video_caps();
    caps.merge(parts_caps());
    caps
}

/// `defectpartmux`'s output: an empty buffer per joined part, after its part verdict event.
pub fn parts_caps() -> gst::Caps {
    gst::Caps::builder(crate::meta::fields::PARTS_CAPS).build()
}

/// Whether caps are [`parts_caps`].
pub fn is_parts_caps(caps: &gst::CapsRef) -> bool {
    caps.structure(0)
        .is_some_and(|s| s.name() == crate::meta::fields::PARTS_CAPS)
}

/// NDJSON records, one a buffer.
pub fn ndjson_caps() -> gst::Caps {
    gst::Caps::builder("application/x-ndjson").build()
}

/// Always-present pads: a `sink` pad with `sink` caps and, when given, a `src` pad.
pub fn pads(sink: &gst::Caps, src: Option<&gst::Caps>) -> Vec<gst::PadTemplate> {
    let template = |name: &str, direction, caps: &gst::Caps| {
        gst::PadTemplate::new(name, direction, gst::PadPresence::Always, caps)
            .expect("valid template")
    };
    let mut templates = vec![template("sink", gst::PadDirection::Sink, sink)];
    if let Some(src) = src {
        templates.push(template("src", gst::PadDirection::Src, src));
    }
    templates
}

/// The pads of an in-place video filter: the same raw video caps on both sides.
pub fn video_filter_pads() -> Vec<gst::PadTemplate> {
    let caps = video_caps();
    pads(&caps, Some(&caps))
}

/// Writes an `ElementImpl`'s `pad_templates` (an expression giving the templates) and
/// `metadata` (long name, classification, description), each made once:
/// `describe!(pads => "Long name", "Klass", "Description");`.
macro_rules! describe {
    ($pads:expr => $long_name:expr, $classification:expr, $description:expr $(,)?) => {
        fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
            static METADATA: std::sync::LazyLock<gst::subclass::ElementMetadata> =
                std::sync::LazyLock::new(|| {
                    $crate::element::metadata($long_name, $classification, $description)
                });
            Some(&METADATA)
        }

        fn pad_templates() -> &'static [gst::PadTemplate] {
            static TEMPLATES: std::sync::LazyLock<Vec<gst::PadTemplate>> =
                std::sync::LazyLock::new(|| $pads);
            &TEMPLATES
        }
    };
}
pub(crate) use describe;

/// Malformed contract metadata seen by an element: the first is posted as a warning naming
/// the structure and the field, the rest go to the debug log (a stream of them would flood
/// the bus).
#[derive(Debug, Default)]
pub struct MetaProblems {
    warned: std::sync::atomic::AtomicBool,
}

impl MetaProblems {
    pub fn report(
        &self,
        element: &impl gst::prelude::IsA<gst::Element>,
        cat: gst::DebugCategory,
        error: &crate::meta::MetaError,
    ) {
        if !self.warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
            gst::element_warning!(
                element,
                gst::StreamError::Format,
                ("Malformed defect metadata: {}", error),
                ["Further malformed metadata goes to the debug log only"]
            );
        } else {
            gst::debug!(cat, obj = element, "malformed defect metadata: {error}");
        }
    }

    /// The value, or None after reporting the error.
    pub fn check<T>(
        &self,
        element: &impl gst::prelude::IsA<gst::Element>,
        cat: gst::DebugCategory,
        read: Result<T, crate::meta::MetaError>,
    ) -> Option<T> {
        read.map_err(|e| self.report(element, cat, &e)).ok()
    }
}

/// An element's wrapper type `$name` around `imp::$name`, a subclass of `$parent` (none:
/// of `gst::Element`).
macro_rules! wrapper {
    ($name:ident) => {
        gst::glib::wrapper! {
            pub struct $name(ObjectSubclass<imp::$name>) @extends gst::Element, gst::Object;
        }
    };
    ($name:ident, $parent:path) => {
        gst::glib::wrapper! {
            pub struct $name(ObjectSubclass<imp::$name>) @extends $parent, gst::Element, gst::Object;
        }
    };
}
pub(crate) use wrapper;

/// Registers one of the plugin's elements (rank NONE: never picked by autoplugging).
pub fn register<T: gst::glib::types::StaticType>(
    plugin: &gst::Plugin,
    name: &str,
) -> Result<(), gst::glib::BoolError> {
    gst::Element::register(Some(plugin), name, gst::Rank::NONE, T::static_type())
}

/// An element's `ObjectSubclass` (type name, wrapper `super::$imp`, parent class) and its
/// empty `GstObjectImpl`; with pads and metadata after them (as [`describe!`] takes them),
/// its `ElementImpl` too.
macro_rules! subclass {
    ($imp:ident, $name:literal, $parent:ty) => {
        #[glib::object_subclass]
        impl ObjectSubclass for $imp {
            const NAME: &'static str = $name;
            type Type = super::$imp;
            type ParentType = $parent;
        }

        impl GstObjectImpl for $imp {}
    };
    ($imp:ident, $name:literal, $parent:ty, $pads:expr => $($metadata:expr),+ $(,)?) => {
        $crate::element::subclass!($imp, $name, $parent);

        impl ElementImpl for $imp {
            $crate::element::describe!($pads => $($metadata),+);
        }
    };
}
pub(crate) use subclass;

/// A `BaseTransformImpl`'s constants for a filter that works on buffers in place and is
/// never bypassed.
macro_rules! in_place_transform {
    () => {
        const MODE: gst_base::subclass::BaseTransformMode =
            gst_base::subclass::BaseTransformMode::AlwaysInPlace;
        const PASSTHROUGH_ON_SAME_CAPS: bool = false;
        const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;
    };
}
pub(crate) use in_place_transform;
