// SPDX-License-Identifier: MIT OR Apache-2.0
//! Image-level ground truth for classifiers and anomaly models, free of GStreamer: one label
//! per image, and for anomaly models optional pixel masks.
//!
//! - A CSV file `file,label` (one image a line; an optional header line `file,label`; blank
//!   lines and lines starting with `#` are skipped). `file` is the image's file name in the
//!   replayed folder (or its stem). For a classifier the label is a class name of the model;
//!   for an anomaly model it is `good` or `defective`.
//! - A COCO JSON file (`images`, `annotations`, `categories`; boxes are not needed): for a
//!   classifier every image carries annotations of exactly one category, its class; for an
//!   anomaly model an image without annotations is good, one with any is defective.
//! - Masks (anomaly models): a folder of PNG files named after the images' stems
//!   (`part-001.png` for `part-001.jpg`), any colour type; a non-zero pixel is defective.
//!   Each must have its image's size; a good image's mask (when there is one) must be empty,
//!   and every defective image needs one. A defective image's mask must mark a pixel, unless
//!   [`EmptyMasks::ImageOnly`] is asked for: such an image then keeps its label for the
//!   image-level figures and is left out of the pixel-level ones (real datasets have defective
//!   images whose defect nobody outlined).
//!
//! Everything is checked before the first frame, every problem at once, naming the file,
//! line or image and why.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::truth::{Problems, TruthError, file_name_of, stem_of};

/// The labels an anomaly truth uses.
pub const GOOD: &str = "good";
pub const DEFECTIVE: &str = "defective";

/// One labelled image.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledImage {
    pub file_name: String,
    pub label: String,
    /// Where it is, for messages (`line 3`, `image 12`).
    pub at: String,
}

/// What the labels mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelKind {
    /// A class name of the model.
    Class,
    /// `good` or `defective`.
    Anomaly,
}

/// Image-level truth, read and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageTruth {
    pub path: PathBuf,
    pub images: Vec<LabelledImage>,
    by_name: HashMap<String, usize>,
    /// Stems used by exactly one image.
    by_stem: HashMap<String, usize>,
}

impl ImageTruth {
    /// Reads and checks a `.json` COCO file or a CSV file of `file,label` lines.
    pub fn load(path: &Path, kind: LabelKind) -> Result<Self, TruthError> {
        if path.is_dir() {
            return Err(TruthError::one(
                path,
                "",
                "a folder: image-level truth is a CSV file (file,label) or a COCO JSON file",
            ));
        }
        let text =
            std::fs::read_to_string(path).map_err(|e| TruthError::one(path, "", e.to_string()))?;
        let is_json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        let images = if is_json {
            coco_labels(path, &text, kind)?
        } else {
            csv_labels(path, &text)?
        };
        let mut problems = Problems(Vec::new());
        if images.is_empty() {
            problems.add("", "no image is labelled");
        }
        for image in &images {
            if kind == LabelKind::Anomaly && image.label != GOOD && image.label != DEFECTIVE {
                problems.add(
                    image.at.clone(),
                    format!(
                        "label {:?} of {} is neither {GOOD:?} nor {DEFECTIVE:?}",
                        image.label, image.file_name
                    ),
                );
            }
        }
        let mut by_name = HashMap::new();
        let mut stems: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, image) in images.iter().enumerate() {
            if let Some(first) = by_name.insert(image.file_name.clone(), i) {
                problems.add(
                    image.at.clone(),
                    format!(
                        "{} is labelled twice (also at {})",
                        image.file_name, images[first].at
                    ),
                );
            }
            stems.entry(stem_of(&image.file_name)).or_default().push(i);
        }
        let by_stem = stems
            .into_iter()
            .filter(|(_, v)| v.len() == 1)
            .map(|(k, v)| (k, v[0]))
            .collect();
        problems.finish(
            path,
            Self {
                path: path.to_path_buf(),
                images,
                by_name,
                by_stem,
            },
        )
    }

    /// The labelled image of a file: by file name, else by stem when one image has it.
    pub fn image_of_file(&self, file_name: &str) -> Option<usize> {
        self.by_name
            .get(file_name)
            .or_else(|| self.by_stem.get(&stem_of(file_name)))
            .copied()
    }

    /// Checks a folder's image files against the truth: each file labelled, each label's
    /// image in the folder.
    pub fn match_files(&self, files: &[PathBuf]) -> Result<(), TruthError> {
        let mut problems = Problems(Vec::new());
        let mut seen = vec![false; self.images.len()];
        for file in files {
            match self.image_of_file(&file_name_of(file)) {
                Some(i) => seen[i] = true,
                None => problems.add(
                    format!("image file {}", file.display()),
                    "has no label in the truth",
                ),
            }
        }
        for (image, seen) in self.images.iter().zip(seen) {
            if !seen {
                problems.add(
                    image.at.clone(),
                    format!("{} is not in the image folder", image.file_name),
                );
            }
        }
        problems.finish(&self.path, ())
    }

    /// Each image's class index among the model's classes; a label the model does not have
    /// is an error.
    pub fn classes_for(&self, model_classes: &[String]) -> Result<Vec<usize>, TruthError> {
        let mut problems = Problems(Vec::new());
        let mut out = Vec::with_capacity(self.images.len());
        for image in &self.images {
            match model_classes.iter().position(|c| *c == image.label) {
                Some(c) => out.push(c),
                None => {
                    problems.add(
                        image.at.clone(),
                        format!(
                            "{}: label {:?} is not a class of the model (it has {model_classes:?})",
                            image.file_name, image.label
                        ),
                    );
                    out.push(usize::MAX);
                }
            }
        }
        problems.finish(&self.path, out)
    }

    /// Whether each image is defective (anomaly truth).
    pub fn defective(&self) -> Vec<bool> {
        self.images.iter().map(|i| i.label == DEFECTIVE).collect()
    }
}

fn csv_labels(path: &Path, text: &str) -> Result<Vec<LabelledImage>, TruthError> {
    let mut problems = Problems(Vec::new());
    let mut images = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let at = format!("line {}", n + 1);
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if images.is_empty() && fields == ["file", "label"] {
            continue;
        }
        match fields.as_slice() {
            [file, label] if !file.is_empty() && !label.is_empty() => images.push(LabelledImage {
                file_name: file.to_string(),
                label: label.to_string(),
                at,
            }),
            [_, _] => problems.add(at, "an empty file name or label"),
            _ => problems.add(
                at,
                format!(
                    "{} fields where `file,label` has 2 ({line:?})",
                    fields.len()
                ),
            ),
        }
    }
    problems.finish(path, images)
}

fn coco_labels(path: &Path, text: &str, kind: LabelKind) -> Result<Vec<LabelledImage>, TruthError> {
    let json: Value = serde_json::from_str(text)
        .map_err(|e| TruthError::one(path, "", format!("not valid JSON: {e}")))?;
    let list = |key: &str| {
        json.get(key)
            .and_then(|v| v.as_array())
            .ok_or_else(|| TruthError::one(path, "", format!("no \"{key}\" list: not a COCO file")))
    };
    let (categories, images, annotations) =
        (list("categories")?, list("images")?, list("annotations")?);
    let mut problems = Problems(Vec::new());
    let int = |v: &Value, key: &str| v.get(key).and_then(Value::as_i64);
    let mut names = HashMap::new();
    for (i, c) in categories.iter().enumerate() {
        match (int(c, "id"), c.get("name").and_then(Value::as_str)) {
            (Some(id), Some(name)) => {
                if names.insert(id, name.to_string()).is_some() {
                    problems.add(format!("category {id}"), "defined twice");
                }
            }
            _ => problems.add(
                format!("categories[{i}]"),
                "needs an integer \"id\" and a \"name\"",
            ),
        }
    }
    let mut labels: HashMap<i64, Vec<i64>> = HashMap::new();
    for (i, a) in annotations.iter().enumerate() {
        let at = int(a, "id").map_or(format!("annotations[{i}]"), |id| format!("annotation {id}"));
        match (int(a, "image_id"), int(a, "category_id")) {
            (Some(image), Some(category)) => {
                if !names.contains_key(&category) {
                    problems.add(at, format!("category {category} is not in \"categories\""));
                } else {
                    labels.entry(image).or_default().push(category);
                }
            }
            _ => problems.add(at, "needs an integer \"image_id\" and \"category_id\""),
        }
    }
    let mut out = Vec::new();
    let mut ids = HashMap::new();
    for (i, image) in images.iter().enumerate() {
        let (Some(id), Some(file)) = (
            int(image, "id"),
            image.get("file_name").and_then(Value::as_str),
        ) else {
            problems.add(
                format!("images[{i}]"),
                "needs an integer \"id\" and a \"file_name\"",
            );
            continue;
        };
        let at = format!("image {id}");
        if ids.insert(id, ()).is_some() {
            problems.add(at, "the id is used twice");
            continue;
        }
        let mut cats = labels.remove(&id).unwrap_or_default();
        cats.sort_unstable();
        cats.dedup();
        let label = match (kind, cats.as_slice()) {
            (LabelKind::Anomaly, []) => GOOD.to_string(),
            (LabelKind::Anomaly, _) => DEFECTIVE.to_string(),
            (LabelKind::Class, [one]) => names[one].clone(),
            (LabelKind::Class, []) => {
                problems.add(
                    at,
                    format!("{file} has no annotation: its class is unknown"),
                );
                continue;
            }
            (LabelKind::Class, several) => {
                let several: Vec<&str> = several.iter().map(|c| names[c].as_str()).collect();
                problems.add(
                    at,
                    format!("{file} has annotations of several categories ({several:?}); a classifier's image has one"),
                );
                continue;
            }
        };
        out.push(LabelledImage {
            file_name: file.to_string(),
            label,
            at,
        });
    }
    for image in labels.keys() {
        problems.add(format!("image {image}"), "annotated but not in \"images\"");
    }
    problems.finish(path, out)
}

/// A decoded mask: width, height, and whether each pixel (row-major) is defective.
#[derive(Debug, Clone, PartialEq)]
pub struct Mask {
    pub width: u32,
    pub height: u32,
    pub defective: Vec<bool>,
}

/// Reads a PNG mask (any colour type and depth): a pixel is defective when any of its colour
/// channels is non-zero (alpha is ignored).
pub fn read_mask(path: &Path) -> Result<Mask, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().map_err(|e| format!("not a PNG: {e}"))?;
    let size = reader
        .output_buffer_size()
        .ok_or("the PNG is too large to decode")?;
    let mut data = vec![0u8; size];
    let info = reader
        .next_frame(&mut data)
        .map_err(|e| format!("cannot decode: {e}"))?;
    let (width, height) = (info.width, info.height);
    let channels = info.color_type.samples();
    let colour = match info.color_type {
        png::ColorType::GrayscaleAlpha => 1,
        png::ColorType::Rgba => 3,
        _ => channels,
    };
    let bytes_per_sample = if info.bit_depth == png::BitDepth::Sixteen {
        2
    } else {
        1
    };
    let pixel = channels * bytes_per_sample;
    let mut defective = Vec::with_capacity(width as usize * height as usize);
    for row in data.chunks(info.line_size).take(height as usize) {
        for x in 0..width as usize {
            let p = &row[x * pixel..(x + 1) * pixel];
            defective.push(p[..colour * bytes_per_sample].iter().any(|&b| b != 0));
        }
    }
    Ok(Mask {
        width,
        height,
        defective,
    })
}

/// What a defective image whose mask marks no pixel means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EmptyMasks {
    /// A mistake: the truth is refused, naming the mask.
    #[default]
    Refuse,
    /// The defect is not outlined: the image keeps its `defective` label for the image-level
    /// figures (AUROC, escapes) and is left out of the pixel-level ones.
    ImageOnly,
}

/// One image's pixel truth.
#[derive(Debug, Clone, PartialEq)]
pub enum MaskTruth {
    /// No mask file: every pixel is good (a good image).
    AllGood,
    /// The image's mask.
    File(PathBuf),
    /// A defective image whose mask is empty, scored at image level only
    /// ([`EmptyMasks::ImageOnly`]).
    ImageOnly(PathBuf),
}

/// The mask of each image file, checked: its size must be the image's, a good image's mask
/// must be empty, a defective image needs one, and it must mark a pixel unless `empty` is
/// [`EmptyMasks::ImageOnly`]. `files` are the image files with their sizes, `defective`
/// whether each is defective per the labels.
pub fn check_masks(
    dir: &Path,
    files: &[(PathBuf, (u32, u32))],
    defective: &[bool],
    empty: EmptyMasks,
) -> Result<Vec<MaskTruth>, TruthError> {
    let mut problems = Problems(Vec::new());
    let mut by_stem: HashMap<String, PathBuf> = HashMap::new();
    let entries = std::fs::read_dir(dir).map_err(|e| TruthError::one(dir, "", e.to_string()))?;
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("png"))
        {
            by_stem.insert(stem_of(&file_name_of(&path)), path);
        }
    }
    let mut out = Vec::with_capacity(files.len());
    for ((file, (width, height)), &bad) in files.iter().zip(defective) {
        let name = file_name_of(file);
        let at = format!("mask of {name}");
        let Some(mask_path) = by_stem.remove(&stem_of(&name)) else {
            if bad {
                problems.add(
                    at,
                    format!("no {}.png: a defective image needs a mask", stem_of(&name)),
                );
            }
            out.push(MaskTruth::AllGood);
            continue;
        };
        let mut image_only = false;
        match read_mask(&mask_path) {
            Err(e) => problems.add(at, format!("{}: {e}", mask_path.display())),
            Ok(mask) if (mask.width, mask.height) != (*width, *height) => problems.add(
                at,
                format!(
                    "{} is {}x{} but the image is {width}x{height}",
                    mask_path.display(),
                    mask.width,
                    mask.height
                ),
            ),
            Ok(mask) if !bad && mask.defective.iter().any(|&d| d) => problems.add(
                at,
                format!(
                    "{} marks {} defective pixels but the image is labelled {GOOD}",
                    mask_path.display(),
                    mask.defective.iter().filter(|&&d| d).count()
                ),
            ),
            Ok(mask) if bad && !mask.defective.iter().any(|&d| d) => {
                if empty == EmptyMasks::ImageOnly {
                    image_only = true;
                } else {
                    problems.add(
                        at,
                        format!(
                            "{} is empty but the image is labelled {DEFECTIVE} (--empty-masks \
                             image-only keeps such an image for the image-level figures only)",
                            mask_path.display()
                        ),
                    )
                }
            }
            Ok(_) => {}
        }
        out.push(if image_only {
            MaskTruth::ImageOnly(mask_path)
        } else {
            MaskTruth::File(mask_path)
        });
    }
    let mut left: Vec<String> = by_stem.values().map(|p| p.display().to_string()).collect();
    left.sort();
    for path in left {
        problems.add(format!("mask {path}"), "matches no replayed image");
    }
    problems.finish(dir, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("labels-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn csv_and_coco_labels_with_every_problem_named() {
        let dir = temp("csv");
        let csv = dir.join("t.csv");
        std::fs::write(
            &csv,
            "file,label\n# comment\na.png, scratch\nb.png,dent\n\nc.png\na.png,dent\n",
        )
        .unwrap();
        let e = ImageTruth::load(&csv, LabelKind::Class)
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 6: 1 fields"), "{e}");
        std::fs::write(&csv, "a.png,scratch\nb.png,dent\na.png,dent\n").unwrap();
        let e = ImageTruth::load(&csv, LabelKind::Class)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 3: a.png is labelled twice (also at line 1)"),
            "{e}"
        );
        std::fs::write(&csv, "a.png,scratch\nb.png,dent\n").unwrap();
        let t = ImageTruth::load(&csv, LabelKind::Class).unwrap();
        let names = ["dent".to_string(), "scratch".to_string()];
        assert_eq!(t.classes_for(&names).unwrap(), vec![1, 0]);
        let e = t.classes_for(&names[..1]).unwrap_err().to_string();
        assert!(
            e.contains("line 1: a.png: label \"scratch\" is not a class"),
            "{e}"
        );
        let e = ImageTruth::load(&csv, LabelKind::Anomaly)
            .unwrap_err()
            .to_string();
        assert!(e.contains("neither \"good\" nor \"defective\""), "{e}");
        assert_eq!(t.image_of_file("a.jpg"), Some(0));
        let e = t
            .match_files(&[dir.join("a.png"), dir.join("z.png")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("z.png: has no label"), "{e}");
        assert!(
            e.contains("line 2: b.png is not in the image folder"),
            "{e}"
        );

        let coco = dir.join("t.json");
        let json = serde_json::json!({
            "categories": [{"id": 1, "name": "dent"}, {"id": 2, "name": "scratch"}],
            "images": [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "b.png"},
                       {"id": 3, "file_name": "c.png"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 2},
                            {"id": 2, "image_id": 2, "category_id": 1},
                            {"id": 3, "image_id": 2, "category_id": 2},
                            {"id": 4, "image_id": 9, "category_id": 1}],
        });
        std::fs::write(&coco, json.to_string()).unwrap();
        let e = ImageTruth::load(&coco, LabelKind::Class)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("image 2: b.png has annotations of several categories"),
            "{e}"
        );
        assert!(e.contains("image 3: c.png has no annotation"), "{e}");
        assert!(e.contains("image 9: annotated but not in"), "{e}");
        let t = ImageTruth::load(&coco, LabelKind::Anomaly)
            .unwrap_err()
            .to_string();
        assert!(t.contains("image 9"), "{t}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn write_png(path: &Path, width: u32, height: u32, pixels: &[u8]) {
        let file = std::fs::File::create(path).unwrap();
        let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), width, height);
        encoder.set_color(png::ColorType::Grayscale);
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(pixels).unwrap();
    }

    #[test]
    fn masks_are_checked_against_images_and_labels() {
        let dir = temp("masks");
        write_png(&dir.join("a.png"), 3, 2, &[0, 0, 255, 0, 1, 0]);
        let mask = read_mask(&dir.join("a.png")).unwrap();
        assert_eq!(mask.defective, vec![false, false, true, false, true, false]);
        write_png(&dir.join("b.png"), 3, 2, &[0; 6]);
        write_png(&dir.join("c.png"), 4, 2, &[0; 8]);
        write_png(&dir.join("e.png"), 3, 2, &[0; 6]);
        let files = |names: &[&str]| -> Vec<(PathBuf, (u32, u32))> {
            names
                .iter()
                .map(|n| (PathBuf::from(format!("/img/{n}.jpg")), (3, 2)))
                .collect()
        };
        let ok = check_masks(
            &dir,
            &files(&["a", "b", "c", "d"]),
            &[true, false, false, false],
            EmptyMasks::Refuse,
        );
        let e = ok.unwrap_err().to_string();
        assert!(
            e.contains("mask of c.jpg") && e.contains("is 4x2 but the image is 3x2"),
            "{e}"
        );
        assert!(e.contains("e.png: matches no replayed image"), "{e}");
        let e = check_masks(
            &dir,
            &files(&["a", "b", "c", "d", "e"]),
            &[false, true, false, true, false],
            EmptyMasks::Refuse,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("mask of a.jpg") && e.contains("marks 2 defective pixels"),
            "{e}"
        );
        assert!(
            e.contains("mask of b.jpg") && e.contains("is empty but"),
            "{e}"
        );
        assert!(e.contains("mask of d.jpg: no d.png"), "{e}");
        std::fs::remove_file(dir.join("c.png")).unwrap();
        let found = check_masks(
            &dir,
            &files(&["a", "b", "d", "e"]),
            &[true, false, false, false],
            EmptyMasks::Refuse,
        )
        .unwrap();
        assert_eq!(found[2], MaskTruth::AllGood);
        assert_eq!(found[0], MaskTruth::File(dir.join("a.png")));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_empty_mask_of_a_defective_image_is_refused_or_kept_at_image_level() {
        let dir = temp("empty-masks");
        write_png(&dir.join("a.png"), 3, 2, &[0, 0, 255, 0, 0, 0]);
        write_png(&dir.join("b.png"), 3, 2, &[0; 6]);
        write_png(&dir.join("c.png"), 3, 2, &[0; 6]);
        let files: Vec<(PathBuf, (u32, u32))> = ["a", "b", "c", "d"]
            .iter()
            .map(|n| (PathBuf::from(format!("/img/{n}.jpg")), (3, 2)))
            .collect();
        // a: defective, outlined; b: defective, empty mask; c: good, empty mask; d: good.
        let defective = [true, true, false, false];
        let e = check_masks(&dir, &files, &defective, EmptyMasks::Refuse)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("mask of b.jpg") && e.contains("is empty but") && e.contains("image-only"),
            "{e}"
        );
        assert!(!e.contains("mask of c.jpg"), "{e}");
        let found = check_masks(&dir, &files, &defective, EmptyMasks::ImageOnly).unwrap();
        assert_eq!(
            found,
            vec![
                MaskTruth::File(dir.join("a.png")),
                MaskTruth::ImageOnly(dir.join("b.png")),
                MaskTruth::File(dir.join("c.png")),
                MaskTruth::AllGood,
            ]
        );
        // Image-only never excuses a missing mask or a good image's marked one.
        std::fs::remove_file(dir.join("b.png")).unwrap();
        let e = check_masks(
            &dir,
            &files,
            &[true, true, false, true],
            EmptyMasks::ImageOnly,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("mask of b.jpg: no b.png"), "{e}");
        assert!(e.contains("mask of d.jpg: no d.png"), "{e}");
        let e = check_masks(
            &dir,
            &files,
            &[false, true, false, false],
            EmptyMasks::ImageOnly,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("mask of a.jpg") && e.contains("marks 1 defective pixels"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
