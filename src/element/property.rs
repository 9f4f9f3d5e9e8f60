// SPDX-License-Identifier: MIT OR Apache-2.0
//! What the elements' properties share: [`properties!`](crate::element::properties), a table
//! that writes each property's specification (name, nick, blurb, range, default, flags) on
//! one line; [`Setting`], how a field of an element's settings is read from and written to a
//! property's value; [`settings_properties!`](crate::element::settings_properties), which
//! maps property names to those fields for `set_property` and `property`; and
//! [`enumeration!`](crate::element::enumeration), the declaration of a property's
//! `glib::Enum`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gst::glib;
use gst::prelude::*;

/// An `ObjectImpl`'s `properties`, from a table with one property a line:
/// `kind(name, nick[, range][, default]).flag()...: blurb`, where `kind` is `string`,
/// `boolean`, `uint`, `int`, `uint64`, `double`, `enumeration` (the default is required: it
/// gives the type) or `structure` (a boxed `gst::Structure`), the range is an inclusive
/// range of the property's type and each flag a builder method of the specification
/// (`mutable_ready`, `mutable_playing`, `read_only`, `write_only`). A visibility before the
/// table makes it a free function of that visibility.
macro_rules! properties {
    ($vis:vis $($kind:ident($($arg:expr),+ $(,)?) $(.$flag:ident())* : $blurb:expr),* $(,)?) => {
        $vis fn properties() -> &'static [gst::glib::ParamSpec] {
            static PROPERTIES: std::sync::LazyLock<Vec<gst::glib::ParamSpec>> =
                std::sync::LazyLock::new(|| {
                    use gst::glib::prelude::ParamSpecBuilderExt as _;
                    use gst::prelude::GstParamSpecBuilderExt as _;
                    vec![$(
                        $crate::element::property_builder!($kind $($arg),+)
                            .blurb($blurb)
                            $(.$flag())*
                            .build()
                    ),*]
                });
            PROPERTIES.as_ref()
        }
    };
}
pub(crate) use properties;

/// One property's builder, with its nick, range and default (see
/// [`properties!`](crate::element::properties)).
macro_rules! property_builder {
    (string $name:expr, $nick:expr $(, $default:expr)?) => {
        gst::glib::ParamSpecString::builder($name).nick($nick)$(.default_value($default))?
    };
    (boolean $name:expr, $nick:expr $(, $default:expr)?) => {
        gst::glib::ParamSpecBoolean::builder($name).nick($nick)$(.default_value($default))?
    };
    (enumeration $name:expr, $nick:expr, $default:expr) => {
        gst::glib::ParamSpecEnum::builder_with_default($name, $default).nick($nick)
    };
    (structure $name:expr, $nick:expr) => {
        gst::glib::ParamSpecBoxed::builder::<gst::Structure>($name).nick($nick)
    };
    (uint $($arg:expr),+) => {
        $crate::element::property_builder!(@number gst::glib::ParamSpecUInt, u32, $($arg),+)
    };
    (int $($arg:expr),+) => {
        $crate::element::property_builder!(@number gst::glib::ParamSpecInt, i32, $($arg),+)
    };
    (uint64 $($arg:expr),+) => {
        $crate::element::property_builder!(@number gst::glib::ParamSpecUInt64, u64, $($arg),+)
    };
    (double $($arg:expr),+) => {
        $crate::element::property_builder!(@number gst::glib::ParamSpecDouble, f64, $($arg),+)
    };
    (@number $spec:ty, $type:ty, $name:expr, $nick:expr $(, $range:expr $(, $default:expr)?)?) => {
        <$spec>::builder($name)
            .nick($nick)
            $(.minimum(*std::ops::RangeInclusive::<$type>::start(&$range))
            .maximum(*std::ops::RangeInclusive::<$type>::end(&$range))
            $(.default_value($default))?)?
    };
}
pub(crate) use property_builder;

/// A field of an element's settings that a property reads and writes. GObject checks a
/// value's type before `set_property`; a NULL string sets a text field to the property's
/// default and an optional one (NULL or empty) to None.
pub trait Setting: Sized {
    fn from_property(value: &glib::Value, pspec: &glib::ParamSpec) -> Self;
    fn to_property(&self) -> glib::Value;
}

/// Settings whose value is the property's value as it is (numbers, booleans, enums).
macro_rules! plain_setting {
    ($($type:ty),* $(,)?) => {$(
        impl $crate::element::Setting for $type {
            fn from_property(value: &gst::glib::Value, _pspec: &gst::glib::ParamSpec) -> Self {
                value.get().expect("type checked upstream")
            }

            fn to_property(&self) -> gst::glib::Value {
                gst::glib::prelude::ToValue::to_value(self)
            }
        }
    )*};
}
pub(crate) use plain_setting;

plain_setting!(bool, u32, i32, u64, f64);

fn text(value: &glib::Value) -> Option<String> {
    value
        .get::<Option<String>>()
        .expect("type checked upstream")
}

impl Setting for String {
    fn from_property(value: &glib::Value, pspec: &glib::ParamSpec) -> Self {
        text(value)
            .or_else(|| text(pspec.default_value()))
            .unwrap_or_default()
    }

    fn to_property(&self) -> glib::Value {
        self.to_value()
    }
}

impl Setting for Option<String> {
    fn from_property(value: &glib::Value, _pspec: &glib::ParamSpec) -> Self {
        text(value).filter(|s| !s.is_empty())
    }

    fn to_property(&self) -> glib::Value {
        self.to_value()
    }
}

impl Setting for PathBuf {
    fn from_property(value: &glib::Value, pspec: &glib::ParamSpec) -> Self {
        String::from_property(value, pspec).into()
    }

    fn to_property(&self) -> glib::Value {
        self.display().to_string().to_value()
    }
}

impl Setting for Option<PathBuf> {
    fn from_property(value: &glib::Value, pspec: &glib::ParamSpec) -> Self {
        Option::<String>::from_property(value, pspec).map(PathBuf::from)
    }

    fn to_property(&self) -> glib::Value {
        self.as_ref().map(|p| p.display().to_string()).to_value()
    }
}

/// Paths shared without copying (settings copied per frame).
impl Setting for Option<Arc<Path>> {
    fn from_property(value: &glib::Value, pspec: &glib::ParamSpec) -> Self {
        Option::<String>::from_property(value, pspec).map(|s| Arc::from(Path::new(&s)))
    }

    fn to_property(&self) -> glib::Value {
        self.as_ref().map(|p| p.display().to_string()).to_value()
    }
}

/// Settings whose fields properties hold (written by
/// [`settings_properties!`](crate::element::settings_properties)).
pub trait PropertySettings {
    /// Sets the field of the property; false for a property these settings do not hold.
    fn set(&mut self, value: &glib::Value, pspec: &glib::ParamSpec) -> bool;
    /// The value of the property; None for a property these settings do not hold.
    fn get(&self, pspec: &glib::ParamSpec) -> Option<glib::Value>;
}

/// [`PropertySettings`] for a struct, from the names of its fields' properties:
/// `settings_properties!(Settings { "host" => host, "port" => port });` (also for read-only
/// properties, such as counters). With `for` the element's imp type, whose properties are
/// all these fields, `Default` too: each field the default of its property, so that the
/// property table says each default once.
macro_rules! settings_properties {
    ($settings:ty { $($name:expr => $field:ident),* $(,)? }) => {
        impl $crate::element::PropertySettings for $settings {
            fn set(&mut self, value: &gst::glib::Value, pspec: &gst::glib::ParamSpec) -> bool {
                match pspec.name() {
                    $($name => {
                        self.$field = $crate::element::Setting::from_property(value, pspec)
                    })*
                    _ => return false,
                }
                true
            }

            fn get(&self, pspec: &gst::glib::ParamSpec) -> Option<gst::glib::Value> {
                match pspec.name() {
                    $($name => Some($crate::element::Setting::to_property(&self.$field)),)*
                    _ => None,
                }
            }
        }
    };
    ($settings:ident for $imp:ty { $($name:expr => $field:ident),* $(,)? }) => {
        $crate::element::settings_properties!($settings { $($name => $field),* });

        impl Default for $settings {
            fn default() -> Self {
                let specs = <$imp as gst::glib::subclass::prelude::ObjectImpl>::properties();
                Self {
                    $($field: $crate::element::property::default_setting(specs, $name),)*
                }
            }
        }
    };
}
pub(crate) use settings_properties;

/// The default of the property `name` of `specs`, as a setting.
pub fn default_setting<S: Setting>(specs: &[glib::ParamSpec], name: &str) -> S {
    let pspec = specs
        .iter()
        .find(|p| p.name() == name)
        .unwrap_or_else(|| panic!("no property {name}"));
    S::from_property(pspec.default_value(), pspec)
}

/// An element's `set_property` for the properties its settings hold; GObject passes only
/// the element's own properties, so another is a bug of the element, said in a warning.
pub fn set_property<S: PropertySettings>(
    settings: &std::sync::Mutex<S>,
    value: &glib::Value,
    pspec: &glib::ParamSpec,
) {
    if !super::lock(settings).set(value, pspec) {
        glib::g_warning!("gstdefect", "property {} is not settable", pspec.name());
    }
}

/// An element's `property` for the properties its settings hold (another, a bug of the
/// element, is a warning and reads as its default).
pub fn property<S: PropertySettings>(
    settings: &std::sync::Mutex<S>,
    pspec: &glib::ParamSpec,
) -> glib::Value {
    super::lock(settings).get(pspec).unwrap_or_else(|| {
        glib::g_warning!("gstdefect", "property {} is not readable", pspec.name());
        pspec.default_value().clone()
    })
}

/// An `ObjectImpl`'s `set_property` and `property` when its settings (the field named) hold
/// all its properties.
macro_rules! settings_accessors {
    ($settings:ident) => {
        fn set_property(&self, _id: usize, value: &gst::glib::Value, pspec: &gst::glib::ParamSpec) {
            $crate::element::set_property(&self.$settings, value, pspec);
        }

        fn property(&self, _id: usize, pspec: &gst::glib::ParamSpec) -> gst::glib::Value {
            $crate::element::property(&self.$settings, pspec)
        }
    };
}
pub(crate) use settings_accessors;

/// A property's enum: `glib::Enum` with values numbered from 0 in their order and the first
/// as the default, usable as a [`Setting`] (and to be registered as plugin API by
/// [`mark_plugin_api`]). Each value: `Variant, "nick", "description";`.
macro_rules! enumeration {
    (
        $(#[$attr:meta])*
        $vis:vis enum $enum:ident($type_name:tt) {
            $(#[$first_attr:meta])*
            $first:ident, $first_nick:tt, $first_name:tt;
            $($(#[$variant_attr:meta])* $variant:ident, $nick:tt, $name:tt;)*
        }
    ) => {
        $(#[$attr])*
        #[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, gst::glib::Enum)]
        #[repr(u32)]
        #[enum_type(name = $type_name)]
        $vis enum $enum {
            $(#[$first_attr])*
            #[default]
            #[enum_value(name = $first_name, nick = $first_nick)]
            $first = 0,
            $(
                $(#[$variant_attr])*
                #[enum_value(name = $name, nick = $nick)]
                $variant,
            )*
        }

        $crate::element::plain_setting!($enum);
    };
}
pub(crate) use enumeration;

/// Marks the types of an element's enum properties as plugin API (documented with the
/// element, not as types of their own).
pub fn mark_plugin_api(types: &[glib::Type]) {
    for t in types {
        t.mark_as_plugin_api(gst::PluginAPIFlags::empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Probe {
        name: String,
        path: Option<PathBuf>,
        count: u32,
    }

    settings_properties!(Probe { "name" => name, "path" => path, "count" => count });

    struct Table;

    impl Table {
        properties! {
            uint("count", "Count", 1..=9, 3).mutable_playing(): "How many",
            string("name", "Name", "default").mutable_ready(): "What it is called",
            string("path", "Path").read_only(): "Where it is",
        }
    }

    fn spec(name: &str) -> &'static glib::ParamSpec {
        Table::properties()
            .iter()
            .find(|p| p.name() == name)
            .unwrap()
    }

    #[test]
    fn the_table_gives_each_property_its_range_default_blurb_and_flags() {
        let count = spec("count").downcast_ref::<glib::ParamSpecUInt>().unwrap();
        assert_eq!(
            (count.minimum(), count.maximum(), count.default_value()),
            (1, 9, 3)
        );
        assert_eq!((count.nick(), count.blurb()), ("Count", Some("How many")));
        assert!(count.flags().contains(glib::ParamFlags::READWRITE));
        assert!(count.flags().contains(gst::PARAM_FLAG_MUTABLE_PLAYING));
        let name = spec("name")
            .downcast_ref::<glib::ParamSpecString>()
            .unwrap();
        assert_eq!(name.default_value(), Some("default"));
        assert!(name.flags().contains(gst::PARAM_FLAG_MUTABLE_READY));
        let path = spec("path");
        assert!(path.flags().contains(glib::ParamFlags::READABLE));
        assert!(!path.flags().contains(glib::ParamFlags::WRITABLE));
    }

    #[test]
    fn settings_read_and_write_their_properties() {
        let mut probe = Probe {
            name: "x".into(),
            path: None,
            count: 0,
        };
        // A NULL text is the property's default; an empty optional one is None.
        assert!(probe.set(&None::<String>.to_value(), spec("name")));
        assert_eq!(probe.name, "default");
        assert!(probe.set(&"/a".to_value(), spec("path")));
        assert_eq!(probe.path, Some(PathBuf::from("/a")));
        assert!(probe.set(&"".to_value(), spec("path")));
        assert_eq!(probe.path, None);
        assert!(probe.set(&7u32.to_value(), spec("count")));
        assert_eq!(probe.get(spec("count")).unwrap().get::<u32>().unwrap(), 7);
        let path = probe.get(spec("path")).unwrap();
        assert_eq!(path.get::<Option<String>>().unwrap(), None);
        let other = glib::ParamSpecUInt::builder("other").build();
        assert!(!probe.set(&1u32.to_value(), &other));
        assert!(probe.get(&other).is_none());
        assert_eq!(default_setting::<u32>(Table::properties(), "count"), 3);
    }
}
