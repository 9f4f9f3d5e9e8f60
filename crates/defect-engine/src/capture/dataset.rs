// SPDX-License-Identifier: MIT OR Apache-2.0
//! The capture directory as a dataset annotation tools import, free of GStreamer:
//! `data.yaml` (the YOLO dataset file: `path`, `train`/`val` pointing at `images`, the class
//! names), `classes.txt` (one name a line, as Label Studio's YOLO import reads it), and a COCO
//! JSON file per run, `annotations/<run>.json`, rewritten whole (temporary file, then rename)
//! so that it is valid whenever it is read.
//!
//! Nothing here overwrites a file it did not write: `data.yaml` and `classes.txt` are created
//! only where missing (an existing one that says something else is reported, not replaced),
//! and the COCO file is named after the run, which no other run shares.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::dir::{IMAGES, own_folder};
use crate::analysis::BBox;
use crate::analysis::mask::Mask;

/// The folder of the COCO files.
pub const ANNOTATIONS: &str = "annotations";
/// The YOLO dataset file.
pub const DATA_YAML: &str = "data.yaml";
/// The class names, one a line.
pub const CLASSES_TXT: &str = "classes.txt";

/// `data.yaml` of a capture directory at `dir` (absolute) for `names` in class-id order.
pub fn data_yaml(dir: &Path, names: &[String]) -> String {
    // JSON strings are YAML double-quoted scalars: any name or path is quoted safely.
    let quoted = |s: &str| Value::String(s.to_owned()).to_string();
    let list: Vec<String> = names.iter().map(|n| quoted(n)).collect();
    format!(
        "# Written by defectcapture: pre-annotations of the captured frames, YOLO labels in\n\
         # labels/ for the images in images/ (class cx cy w h, normalised).\n\
         path: {}\ntrain: {IMAGES}\nval: {IMAGES}\nnc: {}\nnames: [{}]\n",
        quoted(&dir.to_string_lossy()),
        names.len(),
        list.join(", ")
    )
}

/// `classes.txt`: one class name a line, in class-id order.
pub fn classes_txt(names: &[String]) -> String {
    names.iter().map(|n| format!("{n}\n")).collect()
}

/// What [`create_once`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// The file was missing and has been written.
    Written,
    /// The file says the same already.
    Same,
    /// The file exists and says something else: left alone.
    Different,
}

/// Writes `dir/name` with `content` where it is missing, atomically and never over an
/// existing file (a temporary file of run `run`, then a hard link, which fails where the name
/// exists); compares an existing one.
pub fn create_once(dir: &Path, name: &str, content: &str, run: &str) -> std::io::Result<Created> {
    let path = dir.join(name);
    let temporary = dir.join(format!(".{name}.{run}.tmp"));
    write_new(&temporary, content.as_bytes())?;
    let linked = std::fs::hard_link(&temporary, &path);
    let _ = std::fs::remove_file(&temporary);
    match linked {
        Ok(()) => Ok(Created::Written),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // `symlink_metadata`: a link by that name is not followed, only reported.
            let is_file = std::fs::symlink_metadata(&path)?.file_type().is_file();
            let same = is_file && std::fs::read(&path).is_ok_and(|c| c == content.as_bytes());
            Ok(if same {
                Created::Same
            } else {
                Created::Different
            })
        }
        Err(e) => Err(e),
    }
}

/// Creates `path` exclusively with `data`; removes it again when the write fails.
fn write_new(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
    let written = file.write_all(data).and_then(|_| file.sync_data());
    if written.is_err() {
        let _ = std::fs::remove_file(path);
    }
    written
}

/// Replaces `dir/name` by `data` atomically: a temporary file of run `run` in the same
/// folder, renamed over it (a reader sees the old file or the new one, never a part).
pub fn replace(dir: &Path, name: &str, data: &[u8], run: &str) -> std::io::Result<()> {
    let temporary = dir.join(format!(".{name}.{run}.tmp"));
    write_new(&temporary, data)?;
    std::fs::rename(&temporary, dir.join(name)).inspect_err(|_| {
        let _ = std::fs::remove_file(&temporary);
    })
}

/// One box of a capture.
#[derive(Debug, Clone, PartialEq)]
pub struct Labelled {
    pub class: usize,
    /// The class's name as the detection carried it.
    pub label: String,
    /// Frame pixels.
    pub bbox: BBox,
    pub confidence: f64,
    /// A segmentation model's mask, frame coordinates.
    pub mask: Option<Mask>,
}

/// The YOLO labels of a capture, a line per detection in its order: for one with a mask, a
/// YOLO-seg polygon line, the outer contours of every part of the mask joined into one
/// polygon ([`Mask::polygon`]); for the others a box line, and for a mask whose contour has no
/// area (empty, a single pixel, a straight line one pixel wide) the detection's box line.
pub fn yolo_lines(labelled: &[Labelled], width: u32, height: u32) -> String {
    labelled
        .iter()
        .map(|l| {
            let contour = l.mask.as_ref().map(Mask::polygon).unwrap_or_default();
            let spans = |axis: fn(&(u32, u32)) -> u32| {
                let mut values = contour.iter().map(axis);
                let first = values.next();
                values.any(|v| Some(v) != first)
            };
            if !(spans(|p| p.0) && spans(|p| p.1)) {
                super::yolo_labels(&[(l.class, l.bbox)], width, height)
            } else {
                super::yolo_polygon(l.class, &contour, width, height)
            }
        })
        .collect()
}

/// One captured image in the COCO file.
#[derive(Debug, Clone)]
struct CocoImage {
    id: u64,
    file_name: String,
    width: u32,
    height: u32,
    frame: u64,
    verdict: String,
    boxes: Vec<Labelled>,
}

/// The COCO file of one run: its captures, kept as they are written and removed again when
/// the directory's bounds remove them.
#[derive(Debug)]
pub struct CocoRun {
    folder: PathBuf,
    run: String,
    model_id: String,
    /// Class names in class-id order (the model's), else learnt from the boxes.
    names: Vec<String>,
    seen: BTreeMap<usize, String>,
    images: BTreeMap<String, CocoImage>,
    next_image: u64,
    /// Captures since the file was last written.
    pending: u32,
}

impl CocoRun {
    /// The COCO file of run `run` in `dir/annotations` (created when missing; a link or a
    /// file by that name is refused).
    pub fn new(dir: &Path, run: &str) -> std::io::Result<Self> {
        Ok(Self {
            folder: own_folder(dir, ANNOTATIONS)?,
            run: run.to_owned(),
            model_id: String::new(),
            names: Vec::new(),
            seen: BTreeMap::new(),
            images: BTreeMap::new(),
            next_image: 1,
            pending: 0,
        })
    }

    /// The file's name in `annotations/`.
    pub fn file_name(&self) -> String {
        format!("{}.json", self.run)
    }

    /// The model's class names (its `model-info`).
    pub fn set_model(&mut self, model_id: &str, names: &[String]) {
        self.model_id = model_id.to_owned();
        self.names = names.to_vec();
    }

    /// The class names of the categories: the model's, else those the boxes carried so far
    /// (`class<N>` for ids none carried).
    pub fn names(&self) -> Vec<String> {
        let known = self.seen.keys().next_back().map_or(0, |&max| max + 1);
        (0..known.max(self.names.len()))
            .map(|id| {
                self.names
                    .get(id)
                    .or_else(|| self.seen.get(&id))
                    .cloned()
                    .unwrap_or_else(|| format!("class{id}"))
            })
            .collect()
    }

    /// Adds a capture: its stem, image file name (in `images/`), size, frame, verdict and
    /// boxes.
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        stem: &str,
        file_name: &str,
        width: u32,
        height: u32,
        frame: u64,
        verdict: &str,
        boxes: &[Labelled],
    ) {
        for b in boxes {
            self.seen.entry(b.class).or_insert_with(|| b.label.clone());
        }
        self.images.insert(
            stem.to_owned(),
            CocoImage {
                id: self.next_image,
                file_name: file_name.to_owned(),
                width,
                height,
                frame,
                verdict: verdict.to_owned(),
                boxes: boxes.to_vec(),
            },
        );
        self.next_image += 1;
        self.pending += 1;
    }

    /// Removes the captures of these stems (removed from the directory); returns whether one
    /// was this run's.
    pub fn remove(&mut self, stems: &[String]) -> bool {
        let before = self.images.len();
        for stem in stems {
            self.images.remove(stem);
        }
        let removed = self.images.len() != before;
        if removed {
            self.pending += 1;
        }
        removed
    }

    /// Captures added or removed since the file was last written.
    pub fn pending(&self) -> u32 {
        self.pending
    }

    pub fn images(&self) -> usize {
        self.images.len()
    }

    /// The COCO document: categories with ids = class id + 1 (COCO's ids start at 1, as CVAT
    /// requires), images with `width`, `height`, `file_name` (in `images/`), and annotations
    /// with `bbox` `[x, y, w, h]` in pixels and the detection's `score` (pre-annotations). A
    /// detection with a mask gets `segmentation`, the mask as COCO RLE over the image
    /// (`{"size": [height, width], "counts": ...}`, the string the records' `mask` carries),
    /// and `area`, the mask's pixels; the others get the box's area.
    pub fn to_json(&self) -> Value {
        let categories: Vec<Value> = self
            .names()
            .iter()
            .enumerate()
            .map(|(id, name)| json!({"id": id + 1, "name": name, "supercategory": ""}))
            .collect();
        let mut images: Vec<&CocoImage> = self.images.values().collect();
        images.sort_by_key(|i| i.id);
        let mut annotations = Vec::new();
        for image in &images {
            for b in &image.boxes {
                let (w, h) = (b.bbox.width() as f64, b.bbox.height() as f64);
                let mut annotation = json!({
                    "id": annotations.len() + 1,
                    "image_id": image.id,
                    "category_id": b.class + 1,
                    "bbox": [round(b.bbox.x1 as f64), round(b.bbox.y1 as f64), round(w), round(h)],
                    "area": round(w * h),
                    "iscrowd": 0,
                    "score": round(b.confidence),
                });
                if let Some(mask) = &b.mask {
                    annotation["segmentation"] = json!({
                        "size": [image.height, image.width],
                        "counts": mask.to_coco_rle(image.width, image.height),
                    });
                    annotation["area"] = json!(mask.area());
                }
                annotations.push(annotation);
            }
        }
        let images: Vec<Value> = images
            .iter()
            .map(|i| {
                json!({
                    "id": i.id,
                    "file_name": i.file_name,
                    "width": i.width,
                    "height": i.height,
                    "frame": i.frame,
                    "verdict": i.verdict,
                })
            })
            .collect();
        json!({
            "info": {
                "description": "defectcapture pre-annotations",
                "run": self.run,
                "model_id": self.model_id,
            },
            "licenses": [],
            "categories": categories,
            "images": images,
            "annotations": annotations,
        })
    }

    /// Writes the file atomically (see [`replace`]).
    pub fn write(&mut self) -> std::io::Result<()> {
        let mut text = serde_json::to_vec_pretty(&self.to_json()).map_err(std::io::Error::other)?;
        text.push(b'\n');
        replace(&self.folder, &self.file_name(), &text, &self.run)?;
        self.pending = 0;
        Ok(())
    }
}

/// Four decimals: pixel boxes stay exact to well below a pixel, and the file stays readable.
fn round(v: f64) -> f64 {
    (v * 1e4).round() / 1e4
}

/// Removes the images of `stems` (and their annotations) from another run's COCO file
/// `annotations/<file>` after the directory's bounds removed those captures; removes the file
/// when no image is left. Only files named after a run (`<run>.json`) are touched.
pub fn prune_other_run(dir: &Path, file: &str, stems: &[String], run: &str) -> std::io::Result<()> {
    let folder = dir.join(ANNOTATIONS);
    let path = folder.join(file);
    if !std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_file()) {
        return Ok(());
    }
    let mut coco: Value = match serde_json::from_slice(&std::fs::read(&path)?) {
        Ok(coco) => coco,
        // Not ours to fix: a file that does not parse is left as it is.
        Err(_) => return Ok(()),
    };
    let gone = |image: &Value| {
        image
            .get("file_name")
            .and_then(Value::as_str)
            .and_then(|f| Path::new(f).file_stem())
            .is_some_and(|s| stems.iter().any(|stem| s == stem.as_str()))
    };
    let Some(images) = coco.get_mut("images").and_then(Value::as_array_mut) else {
        return Ok(());
    };
    let removed: Vec<Value> = images
        .iter()
        .filter(|i| gone(i))
        .filter_map(|i| i.get("id").cloned())
        .collect();
    if removed.is_empty() {
        return Ok(());
    }
    images.retain(|i| !gone(i));
    if images.is_empty() {
        return std::fs::remove_file(&path);
    }
    if let Some(annotations) = coco.get_mut("annotations").and_then(Value::as_array_mut) {
        annotations.retain(|a| a.get("image_id").is_none_or(|id| !removed.contains(id)));
    }
    let mut text = serde_json::to_vec_pretty(&coco).map_err(std::io::Error::other)?;
    text.push(b'\n');
    replace(&folder, file, &text, run)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dataset-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn boxed(class: usize, x1: f32, y1: f32, x2: f32, y2: f32) -> Labelled {
        Labelled {
            class,
            label: format!("c{class}"),
            bbox: BBox { x1, y1, x2, y2 },
            confidence: 0.87654321,
            mask: None,
        }
    }

    #[test]
    fn masks_give_polygon_lines_and_rle_segmentations() {
        // An L of 5 pixels and a lone pixel at the frame's right edge: the polygon goes out to
        // the pixel from the L's nearest point and back, then round the L.
        let mask = Mask {
            x: 7,
            y: 1,
            width: 3,
            height: 3,
            data: vec![1, 0, 1, 1, 0, 0, 1, 1, 1],
        };
        let with_mask = Labelled {
            mask: Some(mask.clone()),
            ..boxed(1, 7.0, 1.0, 10.0, 4.0)
        };
        let text = yolo_lines(&[with_mask.clone(), boxed(0, 0.0, 0.0, 2.0, 2.0)], 10, 5);
        assert_eq!(
            text,
            "1 0.700000 0.200000 0.900000 0.200000 0.700000 0.200000 0.700000 0.600000 0.900000 0.600000 0.800000 0.600000 0.700000 0.400000\n\
             0 0.100000 0.200000 0.200000 0.400000\n"
        );
        let empty = Labelled {
            mask: Some(Mask::empty(7, 1, 3, 3)),
            ..with_mask.clone()
        };
        assert_eq!(
            yolo_lines(&[empty], 10, 5),
            "1 0.850000 0.500000 0.300000 0.600000\n",
            "an empty mask: the box"
        );
        let line = Labelled {
            mask: Some(Mask {
                data: vec![0, 0, 0, 1, 1, 1, 0, 0, 0],
                ..mask.clone()
            }),
            ..with_mask.clone()
        };
        assert_eq!(
            yolo_lines(&[line], 10, 5),
            "1 0.850000 0.500000 0.300000 0.600000\n",
            "a line one pixel wide: the box"
        );
        let dir = temp_dir("coco-masks");
        let mut coco = CocoRun::new(&dir, "R-2-1").unwrap();
        coco.add("s1", "s1.png", 10, 5, 1, "FAIL", &[with_mask]);
        let a = &coco.to_json()["annotations"][0];
        assert_eq!(a["area"], json!(6), "the mask's pixels, every part");
        assert_eq!(
            a["segmentation"],
            json!({"size": [5, 10], "counts": mask.to_coco_rle(10, 5)})
        );
        let counts =
            crate::analysis::mask::decode_counts(a["segmentation"]["counts"].as_str().unwrap())
                .unwrap();
        assert_eq!(
            crate::analysis::mask::decode_coco_rle(&counts, 10, 5).map(|m| m.area()),
            Some(6)
        );
    }

    #[test]
    fn data_yaml_quotes_names_and_path() {
        let names = ["crazing".to_string(), "a \"quoted\": name".to_string()];
        let text = data_yaml(Path::new("/tmp/cap ture"), &names);
        assert!(text.contains("path: \"/tmp/cap ture\"\n"), "{text}");
        assert!(
            text.contains("train: images\nval: images\nnc: 2\n"),
            "{text}"
        );
        assert!(
            text.contains(r#"names: ["crazing", "a \"quoted\": name"]"#),
            "{text}"
        );
        assert_eq!(classes_txt(&names[..1]), "crazing\n");
    }

    #[test]
    fn files_are_created_once_and_never_replaced() {
        let dir = temp_dir("once");
        assert_eq!(
            create_once(&dir, "data.yaml", "a", "r1").unwrap(),
            Created::Written
        );
        assert_eq!(
            create_once(&dir, "data.yaml", "a", "r2").unwrap(),
            Created::Same
        );
        assert_eq!(
            create_once(&dir, "data.yaml", "b", "r3").unwrap(),
            Created::Different
        );
        assert_eq!(std::fs::read_to_string(dir.join("data.yaml")).unwrap(), "a");
        std::os::unix::fs::symlink(dir.join("data.yaml"), dir.join("classes.txt")).unwrap();
        assert_eq!(
            create_once(&dir, "classes.txt", "a", "r4").unwrap(),
            Created::Different
        );
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["classes.txt", "data.yaml"],
            "no temporary file stays"
        );
    }

    #[test]
    fn the_coco_file_follows_the_captures() {
        let dir = temp_dir("coco");
        let mut coco = CocoRun::new(&dir, "R-1-1").unwrap();
        coco.add(
            "s1",
            "s1.png",
            640,
            480,
            7,
            "FAIL",
            &[boxed(2, 10.0, 20.0, 50.0, 80.0)],
        );
        coco.add("s2", "s2.png", 640, 480, 9, "REVIEW", &[]);
        // Without the model's names: learnt from the boxes, gaps named by id.
        assert_eq!(coco.names(), ["class0", "class1", "c2"]);
        coco.set_model("m:1:abc", &["a".into(), "b".into(), "c".into(), "d".into()]);
        coco.write().unwrap();
        let text = std::fs::read_to_string(dir.join("annotations/R-1-1.json")).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v["categories"][0],
            json!({"id": 1, "name": "a", "supercategory": ""})
        );
        assert_eq!(v["categories"].as_array().unwrap().len(), 4);
        assert_eq!(
            v["images"][0],
            json!({"id": 1, "file_name": "s1.png", "width": 640, "height": 480, "frame": 7, "verdict": "FAIL"})
        );
        let a = &v["annotations"][0];
        assert_eq!(a["category_id"], 3);
        assert_eq!(a["bbox"], json!([10.0, 20.0, 40.0, 60.0]));
        assert_eq!(
            (a["area"].as_f64(), a["score"].as_f64()),
            (Some(2400.0), Some(0.8765))
        );
        // (defect-replay reads it as ground truth: its crate's tests.)
        assert!(coco.remove(&["s1".into(), "other".into()]));
        assert!(!coco.remove(&["other".into()]));
        coco.write().unwrap();
        let v: Value =
            serde_json::from_slice(&std::fs::read(dir.join("annotations/R-1-1.json")).unwrap())
                .unwrap();
        assert_eq!(v["images"].as_array().unwrap().len(), 1);
        assert_eq!(v["annotations"], json!([]));

        // Another run's file loses the images the bounds removed, and goes with its last.
        std::fs::write(
            dir.join("annotations/R-0-1.json"),
            r#"{"images": [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "b.png"}],
                "annotations": [{"id": 1, "image_id": 1}, {"id": 2, "image_id": 2}],
                "categories": []}"#,
        )
        .unwrap();
        prune_other_run(&dir, "R-0-1.json", &["a".into()], "R-1-1").unwrap();
        let v: Value =
            serde_json::from_slice(&std::fs::read(dir.join("annotations/R-0-1.json")).unwrap())
                .unwrap();
        assert_eq!(v["annotations"], json!([{"id": 2, "image_id": 2}]));
        prune_other_run(&dir, "R-0-1.json", &["b".into()], "R-1-1").unwrap();
        assert!(!dir.join("annotations/R-0-1.json").exists());
    }
}
