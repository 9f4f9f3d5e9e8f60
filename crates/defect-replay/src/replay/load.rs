// SPDX-License-Identifier: MIT OR Apache-2.0
//! Which reader a truth path takes: a COCO `.json` file, a folder of YOLO `.txt` files, or a
//! folder of PNG instance masks. Kept apart from both readers so that neither imports the other.

use std::path::Path;

use super::mask_truth;
use super::truth::{GroundTruth, TruthError, load_coco, load_yolo_dir};

impl GroundTruth {
    /// Reads and checks a `.json` COCO file, a folder of YOLO `.txt` files, or a folder of
    /// PNG instance masks (one subfolder per class).
    pub fn load(path: &Path) -> Result<Self, TruthError> {
        if path.is_dir() {
            if mask_truth::is_mask_folder(path) {
                return mask_truth::load(path);
            }
            return load_yolo_dir(path);
        }
        let text =
            std::fs::read_to_string(path).map_err(|e| TruthError::one(path, "", e.to_string()))?;
        load_coco(path, &text)
    }
}
