//! Ground truth for replays, free of GStreamer: one COCO JSON, or a folder of YOLO txt files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::analysis::BBox;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("ground truth {path}: {reason}")]
pub struct TruthError {
    pub path: PathBuf,
    pub reason: String,
}

/// Boxes of one frame (or image), in pixels once sizes are known.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FrameTruth {
    /// (class name, box).
    pub boxes: Vec<(String, BBox)>,
    pub part_id: Option<String>,
}

/// What the ground truth says, keyed by frame index (video) or file stem (images).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GroundTruth {
    pub by_frame: BTreeMap<u64, FrameTruth>,
    pub by_stem: BTreeMap<String, FrameTruth>,
    /// Class names the ground truth uses.
    pub class_names: Vec<String>,
    /// YOLO boxes are normalised until the frame size is known.
    pub normalised: bool,
    /// Whether each part is defective, where the ground truth says so per part (a COCO
    /// top-level `parts` list); otherwise a part is defective when one of its frames has a box.
    pub defective_parts: BTreeMap<String, bool>,
}

impl GroundTruth {
    /// Loads a `.json` COCO file or a folder of YOLO `.txt` files (`class_names` names the
    /// YOLO class ids; COCO files name their own categories).
    pub fn load(path: &Path, class_names: &[String]) -> Result<Self, TruthError> {
        let error = |reason: String| TruthError {
            path: path.to_path_buf(),
            reason,
        };
        if path.is_dir() {
            load_yolo_dir(path, class_names).map_err(error)
        } else {
            let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
            load_coco(&text).map_err(error)
        }
    }

    /// The truth of a frame: by index, else by file stem; boxes scaled to the frame size.
    pub fn frame(&self, index: u64, stem: Option<&str>, width: u32, height: u32) -> FrameTruth {
        let found = stem
            .and_then(|s| self.by_stem.get(s))
            .or_else(|| self.by_frame.get(&index))
            .cloned()
            .unwrap_or_default();
        if !self.normalised {
            return found;
        }
        let (w, h) = (width as f32, height as f32);
        FrameTruth {
            boxes: found
                .boxes
                .into_iter()
                .map(|(name, b)| {
                    (
                        name,
                        BBox {
                            x1: b.x1 * w,
                            y1: b.y1 * h,
                            x2: b.x2 * w,
                            y2: b.y2 * h,
                        },
                    )
                })
                .collect(),
            part_id: found.part_id,
        }
    }
}

fn load_coco(text: &str) -> Result<GroundTruth, String> {
    let json: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let list = |key: &str| {
        json.get(key)
            .and_then(|v| v.as_array())
            .ok_or_else(|| format!("no \"{key}\" list: not a COCO file"))
    };
    let mut categories = BTreeMap::new();
    for c in list("categories")? {
        let id = c["id"].as_i64().ok_or("a category without an integer id")?;
        let name = c["name"].as_str().ok_or("a category without a name")?;
        categories.insert(id, name.to_string());
    }
    let mut truth = GroundTruth {
        class_names: categories.values().cloned().collect(),
        ..Default::default()
    };
    let mut frame_of_image = BTreeMap::new();
    for image in list("images")? {
        let id = image["id"]
            .as_i64()
            .ok_or("an image without an integer id")?;
        let frame = image
            .get("frame_index")
            .and_then(|v| v.as_u64())
            .unwrap_or(id.max(0) as u64);
        let part_id = match image.get("part_id") {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Number(n)) if n.as_i64() != Some(-1) => Some(n.to_string()),
            _ => None,
        };
        let entry = FrameTruth {
            boxes: Vec::new(),
            part_id,
        };
        if let Some(stem) = image["file_name"]
            .as_str()
            .and_then(|f| Path::new(f).file_stem())
            .and_then(|s| s.to_str())
        {
            truth.by_stem.insert(stem.to_string(), entry.clone());
        }
        truth.by_frame.insert(frame, entry);
        frame_of_image.insert(id, (frame, image["file_name"].as_str().map(stem_of)));
    }
    if let Some(parts) = json.get("parts").and_then(|v| v.as_array()) {
        for part in parts {
            let id = match &part["part_id"] {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                _ => continue,
            };
            if let Some(defective) = part["defective"].as_bool() {
                truth.defective_parts.insert(id, defective);
            }
        }
    }
    for a in list("annotations")? {
        let image = a["image_id"]
            .as_i64()
            .ok_or("an annotation without an image_id")?;
        let category = a["category_id"]
            .as_i64()
            .ok_or("an annotation without a category_id")?;
        let name = categories
            .get(&category)
            .ok_or_else(|| format!("annotation of unknown category {category}"))?;
        let bbox = a["bbox"]
            .as_array()
            .filter(|b| b.len() == 4)
            .ok_or("an annotation without a [x, y, w, h] bbox")?;
        let v: Vec<f32> = bbox
            .iter()
            .map(|x| x.as_f64().unwrap_or(f64::NAN) as f32)
            .collect();
        if v.iter().any(|x| !x.is_finite()) {
            return Err(format!(
                "annotation of image {image} has a non-numeric bbox"
            ));
        }
        let b = BBox {
            x1: v[0],
            y1: v[1],
            x2: v[0] + v[2],
            y2: v[1] + v[3],
        };
        let (frame, stem) = frame_of_image
            .get(&image)
            .ok_or_else(|| format!("annotation of unknown image {image}"))?;
        truth
            .by_frame
            .entry(*frame)
            .or_default()
            .boxes
            .push((name.clone(), b));
        if let Some(stem) = stem {
            truth
                .by_stem
                .entry(stem.clone())
                .or_default()
                .boxes
                .push((name.clone(), b));
        }
    }
    Ok(truth)
}

fn stem_of(file: &str) -> String {
    Path::new(file)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn load_yolo_dir(dir: &Path, class_names: &[String]) -> Result<GroundTruth, String> {
    let mut truth = GroundTruth {
        normalised: true,
        class_names: class_names.to_vec(),
        ..Default::default()
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err("no .txt label files".into());
    }
    for file in files {
        let text =
            std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let mut frame = FrameTruth::default();
        for (number, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let bad = || {
                format!(
                    "{}:{}: expected `class cx cy w h` (normalised)",
                    file.display(),
                    number + 1
                )
            };
            let fields: Vec<f32> = line
                .split_whitespace()
                .map(|f| f.parse::<f32>())
                .collect::<Result<_, _>>()
                .map_err(|_| bad())?;
            let [class, cx, cy, w, h] = fields[..] else {
                return Err(bad());
            };
            let name = class_names
                .get(class as usize)
                .filter(|_| class >= 0.0 && class.fract() == 0.0)
                .ok_or_else(|| {
                    format!(
                        "{}:{}: class {class} is not a class of the model",
                        file.display(),
                        number + 1
                    )
                })?;
            frame
                .boxes
                .push((name.clone(), BBox::from_center(cx, cy, w, h)));
        }
        let stem = stem_of(&file.display().to_string());
        if let Some(index) = trailing_number(&stem) {
            truth.by_frame.insert(index, frame.clone());
        }
        truth.by_stem.insert(stem, frame);
    }
    Ok(truth)
}

/// The number at the end of a name (`frame_000123` → 123).
fn trailing_number(stem: &str) -> Option<u64> {
    let digits: String = stem
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_digit())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coco_with_frames_and_parts() {
        let text = r#"{"images": [{"id": 0, "file_name": "f0.png", "frame_index": 0, "part_id": 3},
                                   {"id": 1, "file_name": "f1.png", "frame_index": 1, "part_id": -1}],
                       "annotations": [{"image_id": 0, "category_id": 2, "bbox": [10, 20, 30, 40]}],
                       "categories": [{"id": 2, "name": "scratches"}]}"#;
        let t = load_coco(text).unwrap();
        let f = t.frame(0, None, 100, 100);
        assert_eq!(
            f.boxes,
            vec![(
                "scratches".to_string(),
                BBox {
                    x1: 10.0,
                    y1: 20.0,
                    x2: 40.0,
                    y2: 60.0
                }
            )]
        );
        assert_eq!(f.part_id.as_deref(), Some("3"));
        assert_eq!(t.frame(1, None, 100, 100).part_id, None);
        assert_eq!(t.frame(0, Some("f0"), 100, 100).boxes.len(), 1);
    }

    #[test]
    fn malformed_coco_is_explained() {
        assert!(load_coco("[1, 2").unwrap_err().contains("not valid JSON"));
        assert!(load_coco("{}").unwrap_err().contains("not a COCO file"));
        let bad = r#"{"images": [], "annotations": [{"image_id": 5, "category_id": 1, "bbox": [0,0,1,1]}], "categories": [{"id": 1, "name": "a"}]}"#;
        assert!(load_coco(bad).unwrap_err().contains("unknown image 5"));
    }

    #[test]
    fn yolo_folder() {
        let dir = std::env::temp_dir().join(format!("yolo-truth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("frame_000007.txt"), "1 0.5 0.5 0.2 0.4\n").unwrap();
        let names = vec!["a".to_string(), "b".to_string()];
        let t = load_yolo_dir(&dir, &names).unwrap();
        let f = t.frame(7, None, 200, 100);
        assert_eq!(f.boxes.len(), 1);
        let (name, b) = &f.boxes[0];
        assert_eq!(name, "b");
        for (got, want) in [b.x1, b.y1, b.x2, b.y2]
            .iter()
            .zip([80.0, 30.0, 120.0, 70.0])
        {
            assert!((got - want).abs() < 1e-3, "{b:?}");
        }
        std::fs::write(dir.join("frame_000008.txt"), "9 0.5 0.5 0.2 0.4\n").unwrap();
        assert!(
            load_yolo_dir(&dir, &names)
                .unwrap_err()
                .contains("class 9 is not a class of the model")
        );
        std::fs::write(dir.join("frame_000008.txt"), "1 0.5 0.5\n").unwrap();
        assert!(
            load_yolo_dir(&dir, &names)
                .unwrap_err()
                .contains(":1: expected")
        );
    }
}
