// SPDX-License-Identifier: MIT OR Apache-2.0
//! `defect-replay`'s library: replaying recorded video or image folders through the plugin's
//! elements ([`replay`]) and scoring the result against ground truth ([`metrics`]).
//!
//! It depends on the plugin's rlib (the elements, registered statically, and the metas) and
//! on the engine; the plugin does not depend on it.

pub mod metrics;
pub mod replay;

// The engine's and the plugin's modules the replay code names as `crate::...`.
use defect_engine::{analysis, files, inspect, policy};
use gstdefect::meta;

#[cfg(test)]
mod tests {
    use std::path::Path;

    use defect_engine::analysis::BBox;
    use defect_engine::capture::dataset::{CocoRun, Labelled};

    use crate::replay::truth::GroundTruth;

    #[test]
    fn the_coco_file_of_the_captures_is_ground_truth_for_the_replay() {
        let dir = std::env::temp_dir().join(format!("replay-coco-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut coco = CocoRun::new(&dir, "R-1-1").unwrap();
        let boxed = Labelled {
            class: 2,
            label: "c2".into(),
            bbox: BBox {
                x1: 10.0,
                y1: 20.0,
                x2: 50.0,
                y2: 80.0,
            },
            confidence: 0.87654321,
            mask: None,
        };
        coco.add("s1", "s1.png", 640, 480, 7, "FAIL", &[boxed]);
        coco.add("s2", "s2.png", 640, 480, 9, "REVIEW", &[]);
        coco.set_model("m:1:abc", &["a".into(), "b".into(), "c".into()]);
        coco.write().unwrap();
        let text = std::fs::read_to_string(dir.join("annotations/R-1-1.json")).unwrap();
        let truth = GroundTruth::from_coco(Path::new("x.json"), &text).unwrap();
        assert_eq!(truth.images.len(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
