// SPDX-License-Identifier: MIT OR Apache-2.0
//! A segmentation mask and a detection's sizes as ROI meta parameters.
//!
//! - `defect-mask` (on the ROI of a detection of a segmentation model): `x`, `y`, `width`,
//!   `height` (guint: the window of the frame the mask covers, the detection's box in frame
//!   pixels, at frame resolution) and `counts` (string: the window's pixels as a COCO
//!   run-length encoding, column-major, compressed as pycocotools writes it; pycocotools decodes
//!   it with `size = [height, width]`).
//! - `defect-size` (on the ROI of every detection `defectdetect` judged): `area-px` and
//!   `length-px` (double: the mask's area and length where there is a mask, else the box's
//!   area and longer side), `area-mm2` and `length-mm` (double, present with the policy's
//!   `pixels-per-mm`). The length is the long side of the minimum-area rectangle around the
//!   mask ([`crate::analysis::mask`]).

use super::fields as f;
use super::structure::{MetaError, Reader};
use crate::analysis::mask::{self, Mask};

/// The `defect-mask` parameters of an ROI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskParams {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    /// COCO compressed RLE of the `width` x `height` window.
    pub counts: String,
}

impl MaskParams {
    pub fn from_mask(m: &Mask) -> Self {
        let local = Mask {
            x: 0,
            y: 0,
            ..m.clone()
        };
        Self {
            x: m.x,
            y: m.y,
            width: m.width,
            height: m.height,
            counts: local.to_coco_rle(m.width, m.height),
        }
    }

    /// The mask, in frame coordinates; None when `counts` is malformed or does not fit the
    /// window.
    pub fn to_mask(&self) -> Option<Mask> {
        let counts = mask::decode_counts(&self.counts)?;
        if counts.iter().sum::<u64>() != u64::from(self.width) * u64::from(self.height) {
            return None;
        }
        let found = mask::decode_coco_rle(&counts, self.width, self.height)?;
        let mut out = Mask::empty(self.x, self.y, self.width, self.height);
        for row in 0..found.height {
            for col in 0..found.width {
                if found.data[(row * found.width + col) as usize] != 0 {
                    out.data[((found.y + row) * self.width + found.x + col) as usize] = 1;
                }
            }
        }
        Some(out)
    }

    /// The mask, in frame coordinates, or an error naming `counts` when it is malformed or
    /// does not fit the window.
    pub fn decode(&self) -> Result<Mask, MetaError> {
        self.to_mask().ok_or_else(|| MetaError {
            structure: f::MASK.to_owned(),
            field: f::MASK_COUNTS,
            problem: format!(
                "is not a COCO RLE of the {}x{} window",
                self.width, self.height
            ),
        })
    }

    pub fn to_roi_param(&self) -> gst::Structure {
        gst::Structure::builder(f::MASK)
            .field(f::MASK_X, self.x)
            .field(f::MASK_Y, self.y)
            .field(f::WIDTH, self.width)
            .field(f::HEIGHT, self.height)
            .field(f::MASK_COUNTS, &self.counts)
            .build()
    }

    pub fn from_roi_param(s: &gst::StructureRef) -> Result<Self, MetaError> {
        let r = Reader::new(s);
        Ok(Self {
            x: r.required(f::MASK_X)?,
            y: r.required(f::MASK_Y)?,
            width: r.required(f::WIDTH)?,
            height: r.required(f::HEIGHT)?,
            counts: r.required(f::MASK_COUNTS)?,
        })
    }

    /// The `defect-mask` parameters of an ROI meta: None without them.
    pub fn of_roi(roi: &gst_video::VideoRegionOfInterestMeta) -> Option<Result<Self, MetaError>> {
        roi.param(f::MASK).map(Self::from_roi_param)
    }
}

/// The `defect-size` parameters of an ROI.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SizeParams {
    pub area_px: f64,
    pub length_px: f64,
    pub area_mm2: Option<f64>,
    pub length_mm: Option<f64>,
}

impl SizeParams {
    /// Sizes in pixels, and in millimetres with a calibration.
    pub fn new(area_px: f64, length_px: f64, pixels_per_mm: Option<f64>) -> Self {
        Self {
            area_px,
            length_px,
            area_mm2: pixels_per_mm.map(|p| area_px / (p * p)),
            length_mm: pixels_per_mm.map(|p| length_px / p),
        }
    }

    pub fn to_roi_param(&self) -> gst::Structure {
        gst::Structure::builder(f::SIZE)
            .field(f::AREA_PX, self.area_px)
            .field(f::LENGTH_PX, self.length_px)
            .field_if_some(f::AREA_MM2, self.area_mm2)
            .field_if_some(f::LENGTH_MM, self.length_mm)
            .build()
    }

    pub fn from_roi_param(s: &gst::StructureRef) -> Result<Self, MetaError> {
        let r = Reader::new(s);
        Ok(Self {
            area_px: r.required(f::AREA_PX)?,
            length_px: r.required(f::LENGTH_PX)?,
            area_mm2: r.optional(f::AREA_MM2)?,
            length_mm: r.optional(f::LENGTH_MM)?,
        })
    }

    /// The `defect-size` parameters of an ROI meta: None without them.
    pub fn of_roi(roi: &gst_video::VideoRegionOfInterestMeta) -> Option<Result<Self, MetaError>> {
        roi.param(f::SIZE).map(Self::from_roi_param)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_and_sizes_read_back_what_they_wrote() {
        gst::init().unwrap();
        let m = Mask {
            x: 10,
            y: 20,
            width: 3,
            height: 2,
            data: vec![0, 1, 1, 1, 1, 0],
        };
        let params = MaskParams::from_mask(&m);
        assert_eq!(
            MaskParams::from_roi_param(&params.to_roi_param()),
            Ok(params.clone())
        );
        assert_eq!(params.to_mask(), Some(m));
        let wrong = MaskParams {
            counts: "3".into(),
            ..params
        };
        assert_eq!(wrong.to_mask(), None, "counts that do not cover the window");
        assert_eq!(
            wrong.decode().unwrap_err().to_string(),
            "defect-mask: field `counts` is not a COCO RLE of the 3x2 window"
        );
        let sizes = SizeParams::new(400.0, 40.0, Some(4.0));
        assert_eq!((sizes.area_mm2, sizes.length_mm), (Some(25.0), Some(10.0)));
        assert_eq!(SizeParams::from_roi_param(&sizes.to_roi_param()), Ok(sizes));
        let uncalibrated = SizeParams::new(400.0, 40.0, None);
        assert_eq!(
            SizeParams::from_roi_param(&uncalibrated.to_roi_param()),
            Ok(uncalibrated)
        );
        let mut s = sizes.to_roi_param();
        s.remove_field(f::AREA_PX);
        assert_eq!(
            SizeParams::from_roi_param(&s).unwrap_err().to_string(),
            "defect-size: field `area-px` is missing"
        );
    }
}
