// SPDX-License-Identifier: MIT OR Apache-2.0
//! Ground truth for replays, free of GStreamer: one COCO JSON, or a folder of YOLO txt files.
//!
//! The whole file is read and checked before anything is replayed, and every problem is
//! reported at once with where it is (the image or annotation id, or the file and line) and
//! why: duplicate ids, categories defined twice, annotations of unknown images or
//! categories, boxes with negative or zero sizes or outside their image, crowd annotations
//! without a segmentation, malformed segmentations (polygons, RLE).
//! What needs the model (its class names) or the frames (which image each frame is) is
//! checked as soon as it is known: [`GroundTruth::classes_for`], [`GroundTruth::match_files`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::analysis::BBox;
use crate::analysis::mask::decode_counts;
use crate::analysis::rle::Rle;

/// The key of a COCO run-length encoding's runs (COCO's format, not one of our metas' fields).
const COCO_COUNTS: &str = "counts";

/// At most this many problems are listed; the rest are counted.
const MAX_LISTED: usize = 25;

/// How far (in pixels) a COCO box may reach past its image's edge before it is an error:
/// converters write coordinates such as 199.99999 for 200.
const EDGE_TOLERANCE: f64 = 0.01;

/// One problem of a ground-truth file: where and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// `annotation 17 (image 3)`, `image 12`, `category 2`, `labels/f001.txt:3`, ...
    pub at: String,
    pub reason: String,
}

/// Everything wrong with a ground-truth file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct TruthError {
    pub path: PathBuf,
    pub problems: Vec<Problem>,
}

impl TruthError {
    pub(super) fn one(path: &Path, at: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            path: path.to_path_buf(),
            problems: vec![Problem {
                at: at.into(),
                reason: reason.into(),
            }],
        }
    }
}

impl fmt::Display for TruthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        let line = |f: &mut fmt::Formatter<'_>, p: &Problem| {
            if p.at.is_empty() {
                write!(f, "ground truth {path}: {}", p.reason)
            } else {
                write!(f, "ground truth {path}: {}: {}", p.at, p.reason)
            }
        };
        match self.problems.as_slice() {
            [] => write!(f, "ground truth {path}: no problem"),
            [only] => line(f, only),
            problems => {
                write!(f, "ground truth {path}: {} problems", problems.len())?;
                for p in problems.iter().take(MAX_LISTED) {
                    writeln!(f)?;
                    line(f, p)?;
                }
                if problems.len() > MAX_LISTED {
                    write!(f, "\n... and {} more", problems.len() - MAX_LISTED)?;
                }
                Ok(())
            }
        }
    }
}

/// Collects problems while reading a file.
pub(super) struct Problems(pub(super) Vec<Problem>);

impl Problems {
    pub(super) fn add(&mut self, at: impl Into<String>, reason: impl Into<String>) {
        self.0.push(Problem {
            at: at.into(),
            reason: reason.into(),
        });
    }

    pub(super) fn finish<T>(self, path: &Path, value: T) -> Result<T, TruthError> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(TruthError {
                path: path.to_path_buf(),
                problems: self.0,
            })
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TruthFormat {
    /// One COCO JSON file: images, annotations, categories with the user's ids.
    Coco,
    /// A folder of YOLO `.txt` files, one per image or frame, class ids of the model.
    Yolo,
    /// A folder of PNG instance masks, one subfolder per class (the `mask_truth` module).
    PngMasks,
}

/// A category: the user's id and name (YOLO: the model's class index and name).
#[derive(Debug, Clone, PartialEq)]
pub struct Category {
    pub id: i64,
    pub name: String,
}

/// One truth box.
#[derive(Debug, Clone, PartialEq)]
pub struct TruthBox {
    /// Index into [`GroundTruth::categories`] (YOLO: the class id of the file).
    pub category: usize,
    /// Pixels (COCO) or normalised to [0, 1] (YOLO).
    pub bbox: BBox,
    /// The annotation id (COCO; absent when the file gives none).
    pub annotation_id: Option<i64>,
    /// COCO `area` (pycocotools uses it for its size ranges), else the mask's, else the box's.
    pub area: f64,
    /// A crowd region (COCO `iscrowd` 1, with a segmentation): mask AP ignores it and the
    /// detections inside it, as pycocotools does; box figures leave it out.
    pub crowd: bool,
    /// The instance's pixels (COCO `segmentation`, or a PNG instance mask).
    pub segmentation: Option<Segmentation>,
    /// Where it is, for messages.
    pub at: String,
}

/// The pixels of a truth instance, as the truth gives them.
#[derive(Debug, Clone, PartialEq)]
pub enum Segmentation {
    /// COCO polygons (`[[x0, y0, x1, y1, ...], ...]`, pixels), united; rasterised at the
    /// frame's size as pycocotools does ([`Rle::from_polygons`]).
    Polygons(Vec<Vec<f64>>),
    /// A run-length encoding of the whole image (COCO `{"size": [h, w], "counts": ...}`).
    Rle(Rle),
}

impl Segmentation {
    /// The instance's pixels over a `width` x `height` frame; an error when an RLE is of
    /// another size.
    pub fn to_rle(&self, width: u32, height: u32) -> Result<Rle, String> {
        match self {
            Self::Polygons(polygons) => Ok(Rle::from_polygons(polygons, width, height)),
            Self::Rle(rle) if (rle.width, rle.height) == (width, height) => Ok(rle.clone()),
            Self::Rle(rle) => Err(format!(
                "its segmentation's size is [{}, {}] (height, width) but the frame is {width}x{height}",
                rle.height, rle.width
            )),
        }
    }
}

/// One image (or video frame) of the truth.
#[derive(Debug, Clone, PartialEq)]
pub struct TruthImage {
    /// COCO image id (YOLO: the frame number or the index of the label file).
    pub id: i64,
    /// COCO `file_name` (YOLO: the label file's stem).
    pub file_name: Option<String>,
    /// Width and height, when the truth says.
    pub size: Option<(u32, u32)>,
    /// COCO `frame_index`: which frame of a video this is.
    pub frame_index: Option<u64>,
    pub part_id: Option<String>,
    pub boxes: Vec<TruthBox>,
}

/// A ground-truth file, read and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct GroundTruth {
    pub path: PathBuf,
    pub format: TruthFormat,
    /// COCO categories in file order; YOLO: empty (class ids are the model's).
    pub categories: Vec<Category>,
    pub images: Vec<TruthImage>,
    /// Whether each part is defective, where the ground truth says so per part (a COCO
    /// top-level `parts` list); otherwise a part is defective when one of its frames has a box.
    pub defective_parts: BTreeMap<String, bool>,
    by_frame: HashMap<u64, usize>,
    by_file_name: HashMap<String, usize>,
    /// Stems used by exactly one image (a folder of `.jpg` against a truth naming `.png`).
    by_stem: HashMap<String, usize>,
}

/// What the truth and a model's classes have in common.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassMap {
    /// Per truth category (YOLO: per class id), the model's class index.
    pub class_of_category: Vec<usize>,
    /// Per model class, the category id exports use: the truth's category of that name, or
    /// a fresh id after the truth's for classes the truth does not define.
    pub category_id_of_class: Vec<i64>,
}

impl GroundTruth {
    /// Reads and checks COCO JSON `text` (problems name `path`).
    pub fn from_coco(path: &Path, text: &str) -> Result<Self, TruthError> {
        load_coco(path, text)
    }

    /// Whether a frame without an entry in the truth counts as clean: YOLO's convention (an
    /// image without a label file has no objects). In a COCO file an image it does not list
    /// cannot be scored.
    pub fn missing_is_clean(&self) -> bool {
        self.format != TruthFormat::Coco
    }

    /// Whether any instance has a segmentation (mask AP can be scored).
    pub fn has_segmentation(&self) -> bool {
        self.images
            .iter()
            .any(|i| i.boxes.iter().any(|b| b.segmentation.is_some()))
    }

    /// The truth image of frame `index` of a video.
    pub fn image_of_frame(&self, index: u64) -> Option<usize> {
        self.by_frame.get(&index).copied()
    }

    /// The truth image of an image file: by file name, else by stem when one image has it.
    pub fn image_of_file(&self, file_name: &str) -> Option<usize> {
        if self.format != TruthFormat::Coco {
            return self.by_stem.get(&stem_of(file_name)).copied();
        }
        self.by_file_name
            .get(file_name)
            .or_else(|| self.by_stem.get(&stem_of(file_name)))
            .copied()
    }

    /// Checks a folder's image files against the truth before they are replayed: with a COCO
    /// file each image must be in the truth and each truth image in the folder; `sizes`
    /// (read from the files' headers) must agree with the truth's and hold its boxes.
    pub fn match_files(&self, files: &[(PathBuf, (u32, u32))]) -> Result<(), TruthError> {
        let mut problems = Problems(Vec::new());
        let mut seen = vec![false; self.images.len()];
        for (file, (width, height)) in files {
            let name = file_name_of(file);
            let Some(index) = self.image_of_file(&name) else {
                if !self.missing_is_clean() {
                    problems.add(
                        format!("image file {}", file.display()),
                        "not in the truth's images (no file_name matches it)",
                    );
                }
                continue;
            };
            seen[index] = true;
            let image = &self.images[index];
            let at = format!("image {}", image.id);
            match image.size {
                Some(size) if size != (*width, *height) => problems.add(
                    at,
                    format!(
                        "the truth says {}x{} but {} is {width}x{height}",
                        size.0,
                        size.1,
                        file.display()
                    ),
                ),
                Some(_) => {}
                None if self.format == TruthFormat::Coco => {
                    check_boxes(&mut problems, image, *width, *height)
                }
                None => {}
            }
        }
        if self.format == TruthFormat::Coco {
            let missing: Vec<&TruthImage> = self
                .images
                .iter()
                .zip(&seen)
                .filter(|(_, seen)| !**seen)
                .map(|(image, _)| image)
                .collect();
            for image in missing {
                problems.add(
                    format!("image {}", image.id),
                    format!(
                        "{} is not in the image folder (pycocotools would count its {} boxes as missed)",
                        image.file_name.as_deref().unwrap_or("(no file_name)"),
                        image.boxes.len()
                    ),
                );
            }
        }
        problems.finish(&self.path, ())
    }

    /// Maps the truth's categories onto the model's classes by name (YOLO: checks the class
    /// ids); a category the model does not have is an error.
    pub fn classes_for(&self, model_classes: &[String]) -> Result<ClassMap, TruthError> {
        let mut problems = Problems(Vec::new());
        if self.format == TruthFormat::Yolo {
            for image in &self.images {
                for b in &image.boxes {
                    if b.category >= model_classes.len() {
                        problems.add(
                            b.at.clone(),
                            format!(
                                "class {} is not a class of the model (it has {} classes: {model_classes:?})",
                                b.category,
                                model_classes.len()
                            ),
                        );
                    }
                }
            }
            return problems.finish(
                &self.path,
                ClassMap {
                    class_of_category: (0..model_classes.len()).collect(),
                    category_id_of_class: (0..model_classes.len() as i64).collect(),
                },
            );
        }
        let mut class_of_category = Vec::new();
        for category in &self.categories {
            match model_classes.iter().position(|c| *c == category.name) {
                Some(class) => class_of_category.push(class),
                None => {
                    problems.add(
                        format!("category {}", category.id),
                        format!(
                            "{:?} is not a class of the model (the model has {model_classes:?})",
                            category.name
                        ),
                    );
                    class_of_category.push(usize::MAX);
                }
            }
        }
        let mut next = self.categories.iter().map(|c| c.id).max().unwrap_or(-1) + 1;
        let category_id_of_class = model_classes
            .iter()
            .map(|name| {
                self.categories
                    .iter()
                    .find(|c| c.name == *name)
                    .map(|c| c.id)
                    .unwrap_or_else(|| {
                        next += 1;
                        next - 1
                    })
            })
            .collect();
        problems.finish(
            &self.path,
            ClassMap {
                class_of_category,
                category_id_of_class,
            },
        )
    }

    /// A box of the truth in frame pixels.
    pub fn pixels(&self, b: &TruthBox, width: u32, height: u32) -> BBox {
        if self.format != TruthFormat::Yolo {
            return b.bbox;
        }
        let (w, h) = (width as f32, height as f32);
        BBox {
            x1: b.bbox.x1 * w,
            y1: b.bbox.y1 * h,
            x2: b.bbox.x2 * w,
            y2: b.bbox.y2 * h,
        }
    }
}

pub(super) fn stem_of(file: &str) -> String {
    Path::new(file)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The last component of a path, as text.
pub fn file_name_of(path: &Path) -> String {
    path.file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Boxes of a COCO image against its size.
fn check_boxes(problems: &mut Problems, image: &TruthImage, width: u32, height: u32) {
    let (w, h) = (width as f64, height as f64);
    for b in &image.boxes {
        let (x1, y1, x2, y2) = (
            b.bbox.x1 as f64,
            b.bbox.y1 as f64,
            b.bbox.x2 as f64,
            b.bbox.y2 as f64,
        );
        if x1 < -EDGE_TOLERANCE
            || y1 < -EDGE_TOLERANCE
            || x2 > w + EDGE_TOLERANCE
            || y2 > h + EDGE_TOLERANCE
        {
            problems.add(
                b.at.clone(),
                format!(
                    "box [{x1}, {y1}, {}, {}] (x, y, w, h) reaches outside its {width}x{height} image",
                    x2 - x1,
                    y2 - y1
                ),
            );
        }
    }
}

/// A JSON value as a part id: a string, or an integer other than -1 (no part).
fn part_id(value: Option<&Value>) -> Option<String> {
    match value {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) if n.as_i64() != Some(-1) => Some(n.to_string()),
        _ => None,
    }
}

/// An integer field that must be there.
fn integer(object: &Value, key: &str) -> Result<i64, String> {
    match object.get(key) {
        None => Err(format!("no \"{key}\"")),
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .ok_or_else(|| format!("\"{key}\" is {v}, not an integer")),
    }
}

/// A positive integer size field, absent or valid.
fn size_field(object: &Value, key: &str) -> Result<Option<u32>, String> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => {
            let v = integer(object, key)?;
            if v <= 0 || v > u32::MAX as i64 {
                Err(format!("\"{key}\" is {v}: not a positive size"))
            } else {
                Ok(Some(v as u32))
            }
        }
    }
}

/// A COCO `segmentation`: polygons, or an RLE with its `size` and `counts` (a list, or
/// pycocotools' compressed string). None when absent or empty.
fn segmentation(value: Option<&Value>) -> Result<Option<Segmentation>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(list)) if list.is_empty() => Ok(None),
        Some(Value::Array(list)) => {
            let mut polygons = Vec::with_capacity(list.len());
            for (i, p) in list.iter().enumerate() {
                let numbers: Option<Vec<f64>> = p
                    .as_array()
                    .and_then(|p| p.iter().map(|v| v.as_f64()).collect());
                let Some(numbers) = numbers.filter(|n| n.iter().all(|v| v.is_finite())) else {
                    return Err(format!(
                        "segmentation[{i}] is not a polygon (a list of numbers x0, y0, x1, y1, ...)"
                    ));
                };
                if numbers.len() % 2 != 0 || numbers.len() < 6 {
                    return Err(format!(
                        "segmentation[{i}] has {} numbers: a polygon is at least 3 points, x and y each \
                         (pycocotools reads 4 numbers as a box)",
                        numbers.len()
                    ));
                }
                polygons.push(numbers);
            }
            Ok(Some(Segmentation::Polygons(polygons)))
        }
        Some(Value::Object(rle)) => {
            let size: Option<Vec<u32>> = rle
                .get("size")
                .and_then(|s| s.as_array())
                .filter(|s| s.len() == 2)
                .and_then(|s| {
                    s.iter()
                        .map(|v| v.as_u64().and_then(|v| u32::try_from(v).ok()))
                        .collect()
                });
            let Some([height, width]) = size.as_deref().map(|s| [s[0], s[1]]) else {
                return Err("segmentation has no \"size\" [height, width]".into());
            };
            let counts = match rle.get(COCO_COUNTS) {
                Some(Value::String(text)) => decode_counts(text).ok_or_else(|| {
                    "segmentation's \"counts\" is not a valid compressed RLE string".to_string()
                })?,
                Some(Value::Array(list)) => list
                    .iter()
                    .map(|v| v.as_u64())
                    .collect::<Option<Vec<u64>>>()
                    .ok_or_else(|| {
                        "segmentation's \"counts\" are not all non-negative integers".to_string()
                    })?,
                _ => return Err("segmentation has no \"counts\" (a list or a string)".into()),
            };
            Rle::from_counts(counts, width, height)
                .map(|r| Some(Segmentation::Rle(r)))
                .map_err(|e| format!("segmentation: {e}"))
        }
        Some(other) => Err(format!(
            "segmentation is {other}: neither polygons nor an RLE"
        )),
    }
}

pub(super) fn load_coco(path: &Path, text: &str) -> Result<GroundTruth, TruthError> {
    let json: Value = serde_json::from_str(text)
        .map_err(|e| TruthError::one(path, "", format!("not valid JSON: {e}")))?;
    let list = |key: &str| {
        json.get(key)
            .and_then(|v| v.as_array())
            .ok_or_else(|| TruthError::one(path, "", format!("no \"{key}\" list: not a COCO file")))
    };
    let (categories_json, images_json, annotations_json) =
        (list("categories")?, list("images")?, list("annotations")?);
    let mut problems = Problems(Vec::new());

    let mut categories: Vec<Category> = Vec::new();
    let mut category_index = HashMap::new();
    for (i, c) in categories_json.iter().enumerate() {
        let at = format!("categories[{i}]");
        let id = match integer(c, "id") {
            Ok(id) => id,
            Err(e) => {
                problems.add(at, e);
                continue;
            }
        };
        let at = format!("category {id}");
        let Some(name) = c
            .get("name")
            .and_then(|n| n.as_str())
            .filter(|n| !n.is_empty())
        else {
            problems.add(at, "no \"name\"");
            continue;
        };
        if let Some(&other) = category_index.get(&id) {
            let other: &Category = &categories[other];
            problems.add(
                at,
                format!("defined twice (as {:?} and as {name:?})", other.name),
            );
            continue;
        }
        if let Some(other) = categories.iter().find(|o| o.name == name) {
            problems.add(
                at,
                format!(
                    "{name:?} is defined twice (categories {} and {id})",
                    other.id
                ),
            );
            continue;
        }
        category_index.insert(id, categories.len());
        categories.push(Category {
            id,
            name: name.to_string(),
        });
    }

    let mut images: Vec<TruthImage> = Vec::new();
    let mut image_index = HashMap::new();
    let mut file_names: HashMap<String, i64> = HashMap::new();
    let mut frames: HashMap<u64, i64> = HashMap::new();
    for (i, image) in images_json.iter().enumerate() {
        let id = match integer(image, "id") {
            Ok(id) => id,
            Err(e) => {
                problems.add(format!("images[{i}]"), e);
                continue;
            }
        };
        let at = format!("image {id}");
        if image_index.contains_key(&id) {
            problems.add(at, "image id defined twice");
            continue;
        }
        let file_name = match image.get("file_name") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(other) => {
                problems.add(at.clone(), format!("\"file_name\" is {other}, not a name"));
                None
            }
        };
        if let Some(name) = &file_name {
            let base = file_name_of(Path::new(name));
            if let Some(other) = file_names.insert(base.clone(), id) {
                problems.add(
                    at.clone(),
                    format!("file name {base} is also image {other}'s"),
                );
            }
        }
        let size = match (size_field(image, "width"), size_field(image, "height")) {
            (Ok(Some(w)), Ok(Some(h))) => Some((w, h)),
            (Ok(_), Ok(_)) => None,
            (Err(e), _) | (_, Err(e)) => {
                problems.add(at.clone(), e);
                None
            }
        };
        let frame_index = match image.get("frame_index") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64() {
                Some(frame) => {
                    if let Some(other) = frames.insert(frame, id) {
                        problems.add(
                            at.clone(),
                            format!("frame_index {frame} is also image {other}'s"),
                        );
                    }
                    Some(frame)
                }
                None => {
                    problems.add(
                        at.clone(),
                        format!("\"frame_index\" is {v}, not a frame number"),
                    );
                    None
                }
            },
        };
        image_index.insert(id, images.len());
        images.push(TruthImage {
            id,
            file_name,
            size,
            frame_index,
            part_id: part_id(image.get("part_id")),
            boxes: Vec::new(),
        });
    }
    let with_frames = images.iter().filter(|i| i.frame_index.is_some()).count();
    if with_frames > 0 && with_frames < images.len() {
        problems.add(
            "images",
            format!(
                "{with_frames} of {} images have a frame_index: give every image one, or none",
                images.len()
            ),
        );
    }

    let mut defective_parts = BTreeMap::new();
    if let Some(parts) = json.get("parts").and_then(|v| v.as_array()) {
        for part in parts {
            if let (Some(id), Some(defective)) = (
                part_id(part.get("part_id")),
                part.get("defective").and_then(|d| d.as_bool()),
            ) {
                defective_parts.insert(id, defective);
            }
        }
    }

    let mut annotation_ids: HashMap<i64, usize> = HashMap::new();
    for (i, a) in annotations_json.iter().enumerate() {
        let id = match a.get("id") {
            None => None,
            Some(_) => match integer(a, "id") {
                Ok(id) => Some(id),
                Err(e) => {
                    problems.add(format!("annotations[{i}]"), e);
                    continue;
                }
            },
        };
        let image_id = integer(a, "image_id");
        let mut at = match id {
            Some(id) => format!("annotation {id}"),
            None => format!("annotations[{i}]"),
        };
        if let Ok(image) = &image_id {
            at += &format!(" (image {image})");
        }
        if let Some(id) = id
            && let Some(first) = annotation_ids.insert(id, i)
        {
            problems.add(
                at.clone(),
                format!("annotation id defined twice (annotations[{first}] and [{i}])"),
            );
        }
        let image = match image_id {
            Ok(image) => match image_index.get(&image) {
                Some(&index) => Some(index),
                None => {
                    problems.add(at.clone(), format!("image {image} is not in \"images\""));
                    None
                }
            },
            Err(e) => {
                problems.add(at.clone(), e);
                None
            }
        };
        let category = match integer(a, "category_id") {
            Ok(c) => match category_index.get(&c) {
                Some(&index) => Some(index),
                None => {
                    problems.add(at.clone(), format!("category {c} is not in \"categories\""));
                    None
                }
            },
            Err(e) => {
                problems.add(at.clone(), e);
                None
            }
        };
        let segmentation = match segmentation(a.get("segmentation")) {
            Ok(s) => s,
            Err(e) => {
                problems.add(at.clone(), e);
                None
            }
        };
        let crowd = a.get("iscrowd").and_then(|c| c.as_i64()).unwrap_or(0) != 0;
        if crowd && segmentation.is_none() {
            problems.add(
                at.clone(),
                "crowd annotations (iscrowd 1) need a segmentation (mask AP ignores the region); as boxes they would be scored as ordinary boxes",
            );
        }
        let bbox: Option<Vec<f64>> = a
            .get("bbox")
            .and_then(|b| b.as_array())
            .filter(|b| b.len() == 4)
            .and_then(|b| b.iter().map(|v| v.as_f64()).collect());
        let Some(bbox) = bbox.filter(|b| b.iter().all(|v| v.is_finite())) else {
            problems.add(at, "no [x, y, width, height] bbox of four numbers");
            continue;
        };
        let [x, y, w, h] = [bbox[0], bbox[1], bbox[2], bbox[3]];
        let mut sized = true;
        for (what, v) in [("width", w), ("height", h)] {
            if v < 0.0 {
                problems.add(at.clone(), format!("negative {what} {v}"));
                sized = false;
            } else if v == 0.0 {
                problems.add(at.clone(), format!("zero {what}: the box is empty"));
                sized = false;
            }
        }
        let (Some(image), Some(category)) = (image, category) else {
            continue;
        };
        if !sized {
            continue;
        }
        // Without an `area`: the mask's where it can be known here, else the box's.
        let mask_area = match (&segmentation, images[image].size) {
            (Some(Segmentation::Rle(rle)), _) => Some(rle.area() as f64),
            (Some(s @ Segmentation::Polygons(_)), Some((width, height))) => {
                s.to_rle(width, height).ok().map(|r| r.area() as f64)
            }
            _ => None,
        };
        let area = a
            .get("area")
            .and_then(|v| v.as_f64())
            .filter(|v| v.is_finite() && *v >= 0.0)
            .or(mask_area)
            .unwrap_or(w * h);
        images[image].boxes.push(TruthBox {
            category,
            bbox: BBox {
                x1: x as f32,
                y1: y as f32,
                x2: (x + w) as f32,
                y2: (y + h) as f32,
            },
            annotation_id: id,
            area,
            crowd,
            segmentation,
            at,
        });
    }
    for image in &images {
        if let Some((w, h)) = image.size {
            check_boxes(&mut problems, image, w, h);
        }
    }

    let mut truth = GroundTruth {
        path: path.to_path_buf(),
        format: TruthFormat::Coco,
        categories,
        images,
        defective_parts,
        by_frame: HashMap::new(),
        by_file_name: HashMap::new(),
        by_stem: HashMap::new(),
    };
    truth.index(with_frames > 0);
    problems.finish(path, truth)
}

impl GroundTruth {
    /// A truth whose look-ups its reader built.
    pub(super) fn from_parts(
        path: &Path,
        format: TruthFormat,
        categories: Vec<Category>,
        images: Vec<TruthImage>,
        by_frame: HashMap<u64, usize>,
        by_file_name: HashMap<String, usize>,
        by_stem: HashMap<String, usize>,
    ) -> Self {
        Self {
            path: path.to_path_buf(),
            format,
            categories,
            images,
            defective_parts: BTreeMap::new(),
            by_frame,
            by_file_name,
            by_stem,
        }
    }

    /// Builds the look-ups: frames by `frame_index` (else the images in id order are the
    /// frames in order), files by name and by stem.
    fn index(&mut self, frame_indices: bool) {
        let mut order: Vec<usize> = (0..self.images.len()).collect();
        order.sort_by_key(|&i| self.images[i].id);
        let mut stems: HashMap<String, Option<usize>> = HashMap::new();
        for (k, &i) in order.iter().enumerate() {
            let image = &self.images[i];
            let frame = if frame_indices {
                image.frame_index
            } else {
                Some(k as u64)
            };
            if let Some(frame) = frame {
                self.by_frame.insert(frame, i);
            }
            if let Some(name) = &image.file_name {
                self.by_file_name.insert(file_name_of(Path::new(name)), i);
                stems
                    .entry(stem_of(name))
                    .and_modify(|e| *e = None)
                    .or_insert(Some(i));
            }
        }
        self.by_stem = stems
            .into_iter()
            .filter_map(|(stem, i)| Some((stem, i?)))
            .collect();
    }
}

pub(super) fn load_yolo_dir(dir: &Path) -> Result<GroundTruth, TruthError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| TruthError::one(dir, "", e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(TruthError::one(dir, "", "no .txt label files"));
    }
    let mut problems = Problems(Vec::new());
    let mut images = Vec::new();
    for (index, file) in files.iter().enumerate() {
        let name = file_name_of(file);
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) => {
                problems.add(name, e.to_string());
                continue;
            }
        };
        let mut boxes = Vec::new();
        for (number, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let at = format!("{name}:{}", number + 1);
            let fields: Result<Vec<f64>, _> =
                line.split_whitespace().map(|f| f.parse::<f64>()).collect();
            match fields.as_deref() {
                Ok(&[class, cx, cy, w, h]) => boxes.push((at, [class, cx, cy, w, h])),
                // A YOLO-seg polygon (`class x1 y1 x2 y2 ...`, 3 points or more): its bounds.
                Ok([class, points @ ..]) if points.len() >= 6 && points.len() % 2 == 0 => {
                    let bounds = |axis: usize| {
                        let values = points.iter().skip(axis).step_by(2);
                        let lo = values.clone().copied().fold(f64::INFINITY, f64::min);
                        (lo, values.copied().fold(f64::NEG_INFINITY, f64::max))
                    };
                    let ((x1, x2), (y1, y2)) = (bounds(0), bounds(1));
                    let (w, h) = (x2 - x1, y2 - y1);
                    boxes.push((at, [*class, x1 + w / 2.0, y1 + h / 2.0, w, h]));
                }
                _ => problems.add(
                    at,
                    "expected `class cx cy w h` or a polygon `class x1 y1 x2 y2 x3 y3 ...` (normalised)",
                ),
            }
        }
        let mut checked = Vec::new();
        for (at, [class, cx, cy, w, h]) in boxes {
            if class < 0.0 || class.fract() != 0.0 || !class.is_finite() {
                problems.add(at, format!("class {class} is not a class id"));
                continue;
            }
            if !(w > 0.0 && h > 0.0) {
                problems.add(at, format!("width {w} and height {h} must be positive"));
                continue;
            }
            let (x1, y1, x2, y2) = (cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0);
            let slack = 1e-4;
            if x1 < -slack || y1 < -slack || x2 > 1.0 + slack || y2 > 1.0 + slack {
                problems.add(
                    at,
                    format!(
                        "box ({x1:.4}, {y1:.4})-({x2:.4}, {y2:.4}) reaches outside the image (0..1)"
                    ),
                );
                continue;
            }
            checked.push(TruthBox {
                category: class as usize,
                bbox: BBox {
                    x1: x1 as f32,
                    y1: y1 as f32,
                    x2: x2 as f32,
                    y2: y2 as f32,
                },
                annotation_id: None,
                area: 0.0,
                crowd: false,
                segmentation: None,
                at,
            });
        }
        let stem = stem_of(&name);
        images.push(TruthImage {
            id: index as i64,
            frame_index: trailing_number(&stem),
            file_name: Some(stem),
            size: None,
            part_id: None,
            boxes: checked,
        });
    }
    let mut truth = GroundTruth {
        path: dir.to_path_buf(),
        format: TruthFormat::Yolo,
        categories: Vec::new(),
        images,
        defective_parts: BTreeMap::new(),
        by_frame: HashMap::new(),
        by_file_name: HashMap::new(),
        by_stem: HashMap::new(),
    };
    for (i, image) in truth.images.iter().enumerate() {
        if let Some(frame) = image.frame_index {
            truth.by_frame.insert(frame, i);
        }
        if let Some(stem) = &image.file_name {
            truth.by_stem.insert(stem.clone(), i);
        }
    }
    problems.finish(dir, truth)
}

/// The number at the end of a name (`frame_000123` → 123).
pub(super) fn trailing_number(stem: &str) -> Option<u64> {
    let start = stem
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_ascii_digit())
        .last()?
        .0;
    stem[start..].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coco(text: &str) -> Result<GroundTruth, TruthError> {
        load_coco(Path::new("gt.json"), text)
    }

    fn problems(text: &str) -> Vec<String> {
        coco(text)
            .unwrap_err()
            .problems
            .into_iter()
            .map(|p| format!("{}: {}", p.at, p.reason))
            .collect()
    }

    #[test]
    fn coco_with_frames_and_parts() {
        let text = r#"{"images": [{"id": 0, "file_name": "f0.png", "frame_index": 0, "part_id": 3},
                                   {"id": 1, "file_name": "f1.png", "frame_index": 1, "part_id": -1}],
                       "annotations": [{"id": 5, "image_id": 0, "category_id": 2, "bbox": [10, 20, 30, 40]}],
                       "categories": [{"id": 2, "name": "scratches"}]}"#;
        let t = coco(text).unwrap();
        let image = &t.images[t.image_of_frame(0).unwrap()];
        assert_eq!(
            image.boxes[0].bbox,
            BBox {
                x1: 10.0,
                y1: 20.0,
                x2: 40.0,
                y2: 60.0
            }
        );
        assert_eq!(image.boxes[0].annotation_id, Some(5));
        assert_eq!(image.part_id.as_deref(), Some("3"));
        assert_eq!(t.images[t.image_of_frame(1).unwrap()].part_id, None);
        assert_eq!(t.image_of_file("f0.png"), Some(0));
        assert_eq!(t.image_of_file("f0.jpg"), Some(0), "by stem");
        assert_eq!(t.image_of_frame(2), None);
    }

    #[test]
    fn without_frame_indices_images_in_id_order_are_the_frames() {
        let t = coco(
            r#"{"images": [{"id": 9, "file_name": "c.jpg"}, {"id": 1, "file_name": "a.jpg"}],
                "annotations": [], "categories": []}"#,
        )
        .unwrap();
        assert_eq!(t.images[t.image_of_frame(0).unwrap()].id, 1);
        assert_eq!(t.images[t.image_of_frame(1).unwrap()].id, 9);
    }

    #[test]
    fn malformed_coco_is_explained() {
        let e = coco("[1, 2").unwrap_err().to_string();
        assert!(e.contains("gt.json") && e.contains("not valid JSON"), "{e}");
        assert!(
            coco("{}")
                .unwrap_err()
                .to_string()
                .contains("not a COCO file")
        );
        let found = problems(
            r#"{"images": [{"id": 1, "file_name": "a.png", "width": 100, "height": 50},
                           {"id": 1, "file_name": "b.png"},
                           {"id": 2, "file_name": "a.png", "width": -3, "height": 5}],
                "annotations": [{"id": 10, "image_id": 5, "category_id": 1, "bbox": [0, 0, 1, 1]},
                                {"id": 11, "image_id": 1, "category_id": 1, "bbox": [90, 0, 20, 10]},
                                {"id": 12, "image_id": 1, "category_id": 1, "bbox": [0, 0, -4, 10]},
                                {"id": 12, "image_id": 1, "category_id": 7, "bbox": [0, 0, 4, 10]},
                                {"id": 13, "image_id": 1, "category_id": 1, "bbox": [0, 0, 0, 10]},
                                {"id": 14, "image_id": 1, "category_id": 1, "bbox": [0, "x", 3, 10]},
                                {"id": 15, "image_id": 1, "category_id": 1, "bbox": [1, 1, 3, 3], "iscrowd": 1}],
                "categories": [{"id": 1, "name": "a"}, {"id": 1, "name": "b"}, {"id": 3, "name": "a"}]}"#,
        );
        for expected in [
            "category 1: defined twice (as \"a\" and as \"b\")",
            "category 3: \"a\" is defined twice (categories 1 and 3)",
            "image 1: image id defined twice",
            "image 2: file name a.png is also image 1's",
            "image 2: \"width\" is -3: not a positive size",
            "annotation 10 (image 5): image 5 is not in \"images\"",
            "annotation 11 (image 1): box [90, 0, 20, 10] (x, y, w, h) reaches outside its 100x50 image",
            "annotation 12 (image 1): negative width -4",
            "annotation 12 (image 1): annotation id defined twice (annotations[2] and [3])",
            "annotation 12 (image 1): category 7 is not in \"categories\"",
            "annotation 13 (image 1): zero width: the box is empty",
            "annotation 14 (image 1): no [x, y, width, height] bbox of four numbers",
            "annotation 15 (image 1): crowd annotations (iscrowd 1) need a segmentation",
        ] {
            assert!(
                found.iter().any(|p| p.starts_with(expected)),
                "missing {expected:?} in {found:#?}"
            );
        }
        let message = coco(
            r#"{"images": [], "annotations": [{"id": 3, "image_id": 5, "category_id": 1, "bbox": [0,0,1,1]}],
                "categories": [{"id": 1, "name": "a"}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            message,
            "ground truth gt.json: annotation 3 (image 5): image 5 is not in \"images\""
        );
    }

    #[test]
    fn classes_map_by_name_onto_the_model() {
        let t = coco(
            r#"{"images": [], "annotations": [],
                "categories": [{"id": 7, "name": "b"}, {"id": 3, "name": "a"}]}"#,
        )
        .unwrap();
        let model = ["a", "b", "c"].map(String::from);
        let map = t.classes_for(&model).unwrap();
        assert_eq!(map.class_of_category, vec![1, 0]);
        assert_eq!(map.category_id_of_class, vec![3, 7, 8]);
        let e = t.classes_for(&model[..1]).unwrap_err().to_string();
        assert!(
            e.contains("category 7: \"b\" is not a class of the model"),
            "{e}"
        );
    }

    #[test]
    fn files_are_matched_both_ways() {
        let t = coco(
            r#"{"images": [{"id": 4, "file_name": "x/a.jpg", "width": 20, "height": 10},
                           {"id": 5, "file_name": "b.jpg"},
                           {"id": 6, "file_name": "gone.jpg"}],
                "annotations": [{"id": 1, "image_id": 5, "category_id": 0, "bbox": [0, 0, 30, 5]}],
                "categories": [{"id": 0, "name": "a"}]}"#,
        )
        .unwrap();
        let files = [
            (PathBuf::from("/d/a.jpg"), (20, 12)),
            (PathBuf::from("/d/b.jpg"), (20, 10)),
            (PathBuf::from("/d/extra.jpg"), (20, 10)),
        ];
        let e = t.match_files(&files).unwrap_err().to_string();
        for expected in [
            "image 4: the truth says 20x10 but /d/a.jpg is 20x12",
            "annotation 1 (image 5): box [0, 0, 30, 5] (x, y, w, h) reaches outside its 20x10 image",
            "image file /d/extra.jpg: not in the truth's images",
            "image 6: gone.jpg is not in the image folder",
        ] {
            assert!(e.contains(expected), "missing {expected:?} in {e}");
        }
    }

    #[test]
    fn yolo_folder() {
        let dir = std::env::temp_dir().join(format!("yolo-truth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A box line, and a YOLO-seg polygon line read as its bounds.
        std::fs::write(
            dir.join("frame_000007.txt"),
            "1 0.5 0.5 0.2 0.4\n0 0.1 0.1 0.1 0.3 0.2 0.3 0.3 0.2\n",
        )
        .unwrap();
        let names = vec!["a".to_string(), "b".to_string()];
        let t = load_yolo_dir(&dir).unwrap();
        assert!(t.classes_for(&names).is_ok());
        let index = t.image_of_frame(7).unwrap();
        assert_eq!(t.image_of_file("frame_000007.png"), Some(index));
        let b = &t.images[index].boxes[0];
        assert_eq!(b.category, 1);
        let pixels = t.pixels(b, 200, 100);
        for (got, want) in [pixels.x1, pixels.y1, pixels.x2, pixels.y2]
            .iter()
            .zip([80.0, 30.0, 120.0, 70.0])
        {
            assert!((got - want).abs() < 1e-3, "{pixels:?}");
        }
        let polygon = t.pixels(&t.images[index].boxes[1], 200, 100);
        for (got, want) in [polygon.x1, polygon.y1, polygon.x2, polygon.y2]
            .iter()
            .zip([20.0, 10.0, 60.0, 30.0])
        {
            assert!((got - want).abs() < 1e-3, "{polygon:?}");
        }
        std::fs::write(dir.join("frame_000008.txt"), "9 0.5 0.5 0.2 0.4\n").unwrap();
        let e = load_yolo_dir(&dir)
            .unwrap()
            .classes_for(&names)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("frame_000008.txt:1: class 9 is not a class of the model"),
            "{e}"
        );
        std::fs::write(
            dir.join("frame_000008.txt"),
            "1 0.5 0.5\n0 0.95 0.5 0.2 0.2\n0 0.5 0.5 -0.1 0.2\n",
        )
        .unwrap();
        let e = load_yolo_dir(&dir).unwrap_err().to_string();
        for expected in [
            "frame_000008.txt:1: expected `class cx cy w h`",
            "frame_000008.txt:2: box (0.8500, 0.4000)-(1.0500, 0.6000) reaches outside",
            "frame_000008.txt:3: width -0.1 and height 0.2 must be positive",
        ] {
            assert!(e.contains(expected), "missing {expected:?} in {e}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
