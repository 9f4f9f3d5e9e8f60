// SPDX-License-Identifier: MIT OR Apache-2.0
//! An anomaly model's map as it travels on the buffer (`DefectAnomalyMapMeta`), from
//! `defectdetect` to `defectoverlay`, `defect-replay` (pixel-level AUROC) and applications.

use std::sync::LazyLock;

use gst::glib;
use gst::glib::translate::{FromGlib, IntoGlib};
use gst::meta::MetaTransform;

use super::fields as f;
use super::structure::{MetaError, Reader};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "defectmeta",
        gst::DebugColorFlags::empty(),
        Some("The defect plugin's metas"),
    )
});

/// Registers `DefectAnomalyMapMeta` as a `GstCustomMeta` tagged `video`, `size` and
/// `orientation` (it describes a rectangle of the frame), with a transform function:
///
/// - copied with the buffer (a `tee`, a copy on write): copied as it is;
/// - scaled (`videoscale`, and every element that hands `GstVideoMetaTransform` scale data):
///   its rectangle is scaled with the frame, the scores are kept;
/// - any other transform (a flip or rotation of `videoflip` or `videorotate`, a crop, a
///   conversion GStreamer describes otherwise): dropped, with a debug line; elements that do
///   not know how to transform metas so tagged drop it too (GStreamer 1.22's `videoflip`
///   does). `defectoverlay` warns when an anomaly model's frame reaches it without its map.
pub(super) fn register() {
    let tags = [
        c"video".as_ptr(),
        c"size".as_ptr(),
        c"orientation".as_ptr(),
        std::ptr::null(),
    ];
    let mut tags = tags;
    // SAFETY: the name and tags are NUL-terminated and outlive the call (GStreamer copies
    // them); `transform` has the signature of `GstCustomMetaTransformFunction` and needs no
    // user data.
    unsafe {
        gst::ffi::gst_meta_register_custom(
            c"DefectAnomalyMapMeta".as_ptr(),
            tags.as_mut_ptr(),
            Some(transform),
            std::ptr::null_mut(),
            None,
        );
    }
    debug_assert_eq!(f::ANOMALY_MAP_META, "DefectAnomalyMapMeta");
}

/// The rectangle a map covers on a frame scaled from `in_size` to `out_size` (width, height).
pub fn scaled_rect(rect: [f64; 4], in_size: (u32, u32), out_size: (u32, u32)) -> [f64; 4] {
    let sx = out_size.0 as f64 / in_size.0.max(1) as f64;
    let sy = out_size.1 as f64 / in_size.1.max(1) as f64;
    [rect[0] * sx, rect[1] * sy, rect[2] * sx, rect[3] * sy]
}

/// `GstCustomMetaTransformFunction` of `DefectAnomalyMapMeta` (see [`register`]).
unsafe extern "C" fn transform(
    dest: *mut gst::ffi::GstBuffer,
    meta: *mut gst::ffi::GstCustomMeta,
    _src: *mut gst::ffi::GstBuffer,
    kind: glib::ffi::GQuark,
    data: glib::ffi::gpointer,
    _user_data: glib::ffi::gpointer,
) -> glib::ffi::gboolean {
    // SAFETY: GStreamer calls this with a valid meta, a writable destination buffer and, for
    // the scale transform, `GstVideoMetaTransform` data (`VideoMetaTransformScale` is its
    // transparent wrapper).
    let (structure, dest, kind) = unsafe {
        (
            (*(meta as *const gst::meta::CustomMeta)).structure(),
            gst::BufferRef::from_mut_ptr(dest),
            glib::Quark::from_glib(kind),
        )
    };
    let mut fields = structure.to_owned();
    if kind == gst::meta::MetaTransformCopy::quark() {
        // As it is.
    } else if kind == gst_video::video_meta::VideoMetaTransformScale::quark() && !data.is_null() {
        let scale = unsafe { &*(data as *const gst_video::video_meta::VideoMetaTransformScale) };
        let (from, to) = (scale.in_info(), scale.out_info());
        let read = |name: &str| structure.get::<f64>(name).ok();
        let (Some(x_min), Some(y_min), Some(x_max), Some(y_max)) = (
            read(f::X_MIN),
            read(f::Y_MIN),
            read(f::X_MAX),
            read(f::Y_MAX),
        ) else {
            gst::debug!(CAT, "malformed {} not scaled: dropped", f::ANOMALY_MAP_META);
            return glib::ffi::GFALSE;
        };
        let rect = scaled_rect(
            [x_min, y_min, x_max, y_max],
            (from.width(), from.height()),
            (to.width(), to.height()),
        );
        gst::debug!(
            CAT,
            "{} scaled with the frame from {}x{} to {}x{}",
            f::ANOMALY_MAP_META,
            from.width(),
            from.height(),
            to.width(),
            to.height()
        );
        for (name, value) in [f::X_MIN, f::Y_MIN, f::X_MAX, f::Y_MAX].iter().zip(rect) {
            fields.set(*name, value);
        }
    } else {
        gst::debug!(
            CAT,
            "{} cannot follow the transform {}: dropped",
            f::ANOMALY_MAP_META,
            kind.as_str()
        );
        return glib::ffi::GFALSE;
    }
    let Ok(mut custom) = gst::meta::CustomMeta::add(dest, f::ANOMALY_MAP_META) else {
        return glib::ffi::GFALSE;
    };
    let structure = custom.mut_structure();
    for (name, value) in fields.iter() {
        structure.set_value(name, value.clone());
    }
    true.into_glib()
}

/// `DefectAnomalyMapMeta` (a `GstCustomMeta`): an anomaly model's map, `width` x `height`
/// cells in row-major order, the raw scores as the model gave them (`scores`: a `GBytes` of
/// little-endian f32). The map covers the frame rectangle `x_min..x_max`, `y_min..y_max` (frame
/// pixels, cell edges: cell (i, j) spans `x_min + i * (x_max - x_min) / width` onwards), the
/// rectangle the model saw. `threshold` is the pixel threshold in force.
///
/// `score_low..score_high` is the scale a display maps to colours ([`Self::values`]):
/// `[0, 2 * threshold]` (so that the pixel threshold is 128 of 255, Anomalib's convention of
/// 0.5), or the map's own range when the threshold is not positive.
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyMapMeta {
    pub width: u32,
    pub height: u32,
    pub x_min: f64,
    pub y_min: f64,
    pub x_max: f64,
    pub y_max: f64,
    pub score_low: f64,
    pub score_high: f64,
    pub threshold: f64,
    pub scores: Vec<f32>,
}

impl AnomalyMapMeta {
    /// A map of scores (row-major, `width` x `height`) covering the frame rectangle `rect`
    /// (`x_min, y_min, x_max, y_max`), with its display scale from the pixel threshold, as
    /// described above.
    pub fn new(width: u32, height: u32, scores: &[f32], rect: [f64; 4], threshold: f32) -> Self {
        let (low, high) = if threshold > 0.0 {
            (0.0, 2.0 * threshold as f64)
        } else {
            let finite = scores.iter().copied().filter(|v| v.is_finite());
            let low = finite.clone().fold(f32::INFINITY, f32::min);
            let high = finite.fold(f32::NEG_INFINITY, f32::max);
            if low.is_finite() && high > low {
                (low as f64, high as f64)
            } else {
                (threshold as f64, threshold as f64 + 1.0)
            }
        };
        Self {
            width,
            height,
            x_min: rect[0],
            y_min: rect[1],
            x_max: rect[2],
            y_max: rect[3],
            score_low: low,
            score_high: high,
            threshold: threshold as f64,
            scores: scores.to_vec(),
        }
    }

    /// The map quantised to bytes on the display scale: 0 at `score_low`, 255 at `score_high`
    /// (scores outside are clamped, NaN is 0).
    pub fn values(&self) -> Vec<u8> {
        let (low, scale) = (
            self.score_low as f32,
            255.0 / (self.score_high - self.score_low) as f32,
        );
        self.scores
            .iter()
            // NaN clamps to 0 through the cast.
            .map(|&v| ((v - low) * scale).round().clamp(0.0, 255.0) as u8)
            .collect()
    }

    /// The score a byte of [`Self::values`] stands for.
    pub fn score(&self, value: u8) -> f64 {
        self.score_low + value as f64 / 255.0 * (self.score_high - self.score_low)
    }

    pub fn to_structure(&self) -> gst::Structure {
        gst::Structure::builder(f::ANOMALY_MAP_META)
            .field(f::WIDTH, self.width)
            .field(f::HEIGHT, self.height)
            .field(f::X_MIN, self.x_min)
            .field(f::Y_MIN, self.y_min)
            .field(f::X_MAX, self.x_max)
            .field(f::Y_MAX, self.y_max)
            .field(f::SCORE_LOW, self.score_low)
            .field(f::SCORE_HIGH, self.score_high)
            .field(f::THRESHOLD, self.threshold)
            .field(f::ANOMALY_SCORES, {
                let bytes: Vec<u8> = self.scores.iter().flat_map(|v| v.to_le_bytes()).collect();
                glib::Bytes::from_owned(bytes)
            })
            .build()
    }

    /// Reads the meta's structure: a missing or mistyped field, an empty map, an empty
    /// rectangle or scale, or `values` of another length than `width * height` is an error
    /// naming the field.
    pub fn from_structure(s: &gst::StructureRef) -> Result<Self, MetaError> {
        let r = Reader::new(s);
        let bytes: glib::Bytes = r.required(f::ANOMALY_SCORES)?;
        let meta = Self {
            width: r.required(f::WIDTH)?,
            height: r.required(f::HEIGHT)?,
            x_min: r.required(f::X_MIN)?,
            y_min: r.required(f::Y_MIN)?,
            x_max: r.required(f::X_MAX)?,
            y_max: r.required(f::Y_MAX)?,
            score_low: r.required(f::SCORE_LOW)?,
            score_high: r.required(f::SCORE_HIGH)?,
            threshold: r.required(f::THRESHOLD)?,
            scores: Vec::new(),
        };
        if meta.width == 0 || meta.height == 0 {
            let field = if meta.width == 0 { f::WIDTH } else { f::HEIGHT };
            return Err(r.error(field, "is 0"));
        }
        // NaN bounds are refused too.
        let above = |a: f64, b: f64| a.partial_cmp(&b) == Some(std::cmp::Ordering::Greater);
        if !above(meta.x_max, meta.x_min) {
            return Err(r.error(f::X_MAX, format!("is not above x-min ({})", meta.x_min)));
        }
        if !above(meta.y_max, meta.y_min) {
            return Err(r.error(f::Y_MAX, format!("is not above y-min ({})", meta.y_min)));
        }
        if !above(meta.score_high, meta.score_low) {
            return Err(r.error(
                f::SCORE_HIGH,
                format!("is not above score-low ({})", meta.score_low),
            ));
        }
        let cells = meta.width as u64 * meta.height as u64;
        if bytes.len() as u64 != cells * 4 {
            return Err(r.error(
                f::ANOMALY_SCORES,
                format!(
                    "holds {} bytes where a {}x{} map of f32 needs {}",
                    bytes.len(),
                    meta.width,
                    meta.height,
                    cells * 4
                ),
            ));
        }
        let scores = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let meta = Self { scores, ..meta };
        Ok(meta)
    }

    /// Adds the meta to a buffer.
    pub fn attach(&self, buffer: &mut gst::BufferRef) {
        super::register();
        let fields = self.to_structure();
        if let Ok(mut custom) = gst::meta::CustomMeta::add(buffer, f::ANOMALY_MAP_META) {
            let structure = custom.mut_structure();
            for (name, value) in fields.iter() {
                structure.set_value(name, value.clone());
            }
        }
    }

    /// The buffer's anomaly map: None when it has none, an error naming the field when it is
    /// malformed.
    pub fn from_buffer(buffer: &gst::BufferRef) -> Option<Result<Self, MetaError>> {
        let meta = gst::meta::CustomMeta::from_buffer(buffer, f::ANOMALY_MAP_META).ok()?;
        Some(Self::from_structure(meta.structure()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> AnomalyMapMeta {
        AnomalyMapMeta::new(
            3,
            2,
            &[0.0, 1.0, 2.0, 4.0, f32::NAN, -1.0],
            [0.0, 0.0, 640.0, 480.0],
            2.0,
        )
    }

    #[test]
    fn quantises_against_twice_the_threshold_and_reads_back() {
        gst::init().unwrap();
        let m = map();
        assert_eq!((m.score_low, m.score_high), (0.0, 4.0));
        assert_eq!(m.values(), [0, 64, 128, 255, 0, 0]);
        assert!((m.score(128) - 2.0).abs() < 0.02);
        // The scores read back exactly (NaN compared by its bits).
        let back = AnomalyMapMeta::from_structure(&m.to_structure()).unwrap();
        let bits = |m: &AnomalyMapMeta| m.scores.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back), bits(&m));
        assert_eq!(
            AnomalyMapMeta {
                scores: vec![],
                ..back
            },
            AnomalyMapMeta {
                scores: vec![],
                ..m
            }
        );
        // Without a positive threshold: the map's own finite range.
        let own = AnomalyMapMeta::new(2, 1, &[-3.0, -1.0], [0.0, 0.0, 2.0, 1.0], 0.0);
        assert_eq!((own.score_low, own.score_high), (-3.0, -1.0));
        assert_eq!(own.values(), [0, 255]);
        let flat = AnomalyMapMeta::new(1, 1, &[f32::NAN], [0.0, 0.0, 2.0, 1.0], 0.0);
        assert!(flat.score_high > flat.score_low);
    }

    #[test]
    fn malformed_maps_name_the_field() {
        gst::init().unwrap();
        let error = |edit: &dyn Fn(&mut gst::Structure)| {
            let mut s = map().to_structure();
            edit(&mut s);
            AnomalyMapMeta::from_structure(&s).unwrap_err().to_string()
        };
        assert_eq!(
            error(&|s| s.remove_field(f::ANOMALY_SCORES)),
            "DefectAnomalyMapMeta: field `scores` is missing"
        );
        assert_eq!(
            error(&|s| s.set(f::WIDTH, 3i32)),
            "DefectAnomalyMapMeta: field `width` is a gint where a guint is expected"
        );
        assert_eq!(
            error(&|s| s.set(f::ANOMALY_SCORES, glib::Bytes::from(&[1u8, 2][..]))),
            "DefectAnomalyMapMeta: field `scores` holds 2 bytes where a 3x2 map of f32 needs 24"
        );
        assert_eq!(
            error(&|s| s.set(f::X_MAX, -1.0)),
            "DefectAnomalyMapMeta: field `x-max` is not above x-min (0)"
        );
        assert_eq!(
            error(&|s| s.set(f::SCORE_HIGH, 0.0)),
            "DefectAnomalyMapMeta: field `score-high` is not above score-low (0)"
        );
        assert_eq!(
            error(&|s| s.set(f::HEIGHT, 0u32)),
            "DefectAnomalyMapMeta: field `height` is 0"
        );
    }
}
