// SPDX-License-Identifier: MIT OR Apache-2.0
//! Ground truth as PNG instance masks, free of GStreamer: a folder with one subfolder per
//! class, named as the model names the class, holding one greyscale PNG (8 or 16 bits) per
//! image, named after the image's stem:
//!
//! ```text
//! truth/
//!   crack/tile_0001.png      each non-zero value is one crack of tile_0001 (0: background)
//!   crack/tile_0007.png
//!   blowhole/tile_0001.png   the blowholes of tile_0001
//! ```
//!
//! Every distinct non-zero value of a PNG is one instance (a binary 0/255 mask is one instance,
//! however many parts it has); its box and area are its pixels'. An image without a PNG in a
//! class's folder has no instance of that class, and an image in no folder has none at all (as
//! with YOLO labels). A PNG is the size of its image.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use super::truth::{
    Category, GroundTruth, Problems, Segmentation, TruthBox, TruthError, TruthFormat, TruthImage,
    file_name_of, stem_of,
};
use crate::analysis::BBox;
use crate::analysis::rle::Rle;

/// Whether `dir` is laid out as PNG instance masks: no `.txt` files and at least one
/// subfolder holding a `.png`.
pub fn is_mask_folder(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    !paths
        .iter()
        .any(|p| p.extension().is_some_and(|x| x == "txt"))
        && paths.iter().any(|p| p.is_dir() && !pngs(p).is_empty())
}

fn pngs(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file() && p.extension().is_some_and(|x| x.eq_ignore_ascii_case("png"))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// A greyscale PNG's size and values (row-major).
fn read_ids(path: &Path) -> Result<(u32, u32, Vec<u16>), String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let decoder = png::Decoder::new(std::io::BufReader::new(file));
    let mut reader = decoder.read_info().map_err(|e| format!("not a PNG: {e}"))?;
    let (color, depth) = reader.output_color_type();
    if color != png::ColorType::Grayscale {
        return Err(format!(
            "a {color:?} PNG: instance masks are greyscale (8 or 16 bits), each non-zero value one instance"
        ));
    }
    let size = reader
        .output_buffer_size()
        .ok_or("the PNG is too large to decode")?;
    let mut data = vec![0u8; size];
    let info = reader
        .next_frame(&mut data)
        .map_err(|e| format!("cannot decode: {e}"))?;
    let (width, height) = (info.width, info.height);
    let mut ids = Vec::with_capacity(width as usize * height as usize);
    for row in data.chunks(info.line_size).take(height as usize) {
        match depth {
            png::BitDepth::Eight => ids.extend(row[..width as usize].iter().map(|&v| v as u16)),
            png::BitDepth::Sixteen => ids.extend(
                row[..2 * width as usize]
                    .chunks_exact(2)
                    .map(|b| u16::from_be_bytes([b[0], b[1]])),
            ),
            other => {
                return Err(format!(
                    "{other:?}-bit greyscale: instance masks are 8 or 16 bits"
                ));
            }
        }
    }
    Ok((width, height, ids))
}

/// An instance's runs of pixels (column-major [start, end)) and its box (x0, y0, x1, y1).
type Runs = (Vec<(u64, u64)>, [usize; 4]);

/// An image's size and instances.
type ImageMasks = (Option<(u32, u32)>, Vec<TruthBox>);

/// The instances of an id image: per non-zero value, its COCO counts (column-major), box
/// and area.
fn instances(width: u32, height: u32, ids: &[u16]) -> Vec<(u16, Rle, BBox, u64)> {
    let (w, h) = (width as usize, height as usize);
    // Column-major run starts per id.
    let mut runs: BTreeMap<u16, Runs> = BTreeMap::new();
    for x in 0..w {
        let mut y = 0;
        while y < h {
            let id = ids[y * w + x];
            let start = y;
            while y < h && ids[y * w + x] == id {
                y += 1;
            }
            if id == 0 {
                continue;
            }
            let (list, b) = runs
                .entry(id)
                .or_insert_with(|| (Vec::new(), [usize::MAX, usize::MAX, 0, 0]));
            let base = (x * h) as u64;
            match list.last_mut() {
                Some(last) if last.1 == base + start as u64 => last.1 = base + y as u64,
                _ => list.push((base + start as u64, base + y as u64)),
            }
            *b = [b[0].min(x), b[1].min(start), b[2].max(x + 1), b[3].max(y)];
        }
    }
    let total = (w * h) as u64;
    runs.into_iter()
        .map(|(id, (list, b))| {
            let mut counts = Vec::with_capacity(list.len() * 2 + 1);
            let (mut at, mut area) = (0, 0);
            for (s, e) in list {
                counts.push(s - at);
                counts.push(e - s);
                area += e - s;
                at = e;
            }
            counts.push(total - at);
            let rle = Rle {
                width,
                height,
                counts,
            };
            let bbox = BBox {
                x1: b[0] as f32,
                y1: b[1] as f32,
                x2: b[2] as f32,
                y2: b[3] as f32,
            };
            (id, rle, bbox, area)
        })
        .collect()
}

/// Reads and checks a folder of PNG instance masks (see the module).
pub fn load(dir: &Path) -> Result<GroundTruth, TruthError> {
    let mut problems = Problems(Vec::new());
    let mut classes: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| TruthError::one(dir, "", e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    classes.sort();
    let mut categories = Vec::new();
    // Per image stem: its size, and its instances.
    let mut images: BTreeMap<String, ImageMasks> = BTreeMap::new();
    for class_dir in &classes {
        let name = file_name_of(class_dir);
        let files = pngs(class_dir);
        if files.is_empty() {
            continue;
        }
        let category = categories.len();
        categories.push(Category {
            id: category as i64,
            name: name.clone(),
        });
        for file in files {
            let at = format!("{name}/{}", file_name_of(&file));
            let (width, height, ids) = match read_ids(&file) {
                Ok(read) => read,
                Err(e) => {
                    problems.add(at, e);
                    continue;
                }
            };
            let entry = images.entry(stem_of(&file_name_of(&file))).or_default();
            match entry.0 {
                Some(size) if size != (width, height) => {
                    problems.add(
                        at.clone(),
                        format!(
                            "{width}x{height}, but the image's other masks are {}x{}",
                            size.0, size.1
                        ),
                    );
                    continue;
                }
                _ => entry.0 = Some((width, height)),
            }
            for (id, rle, bbox, area) in instances(width, height, &ids) {
                entry.1.push(TruthBox {
                    category,
                    bbox,
                    annotation_id: None,
                    area: area as f64,
                    crowd: false,
                    segmentation: Some(Segmentation::Rle(rle)),
                    at: format!("{at} value {id}"),
                });
            }
        }
    }
    if categories.is_empty() {
        problems.add("", "no class subfolder holds a .png mask");
    }
    let mut by_file_name = HashMap::new();
    let mut by_stem = HashMap::new();
    let mut by_frame = HashMap::new();
    let mut seen_frames = BTreeSet::new();
    let mut list = Vec::with_capacity(images.len());
    for (index, (stem, (size, boxes))) in images.into_iter().enumerate() {
        by_file_name.insert(stem.clone(), index);
        by_stem.insert(stem.clone(), index);
        let frame_index = super::truth::trailing_number(&stem);
        if let Some(frame) = frame_index
            && seen_frames.insert(frame)
        {
            by_frame.insert(frame, index);
        }
        list.push(TruthImage {
            id: index as i64,
            file_name: Some(stem),
            size,
            frame_index,
            part_id: None,
            boxes,
        });
    }
    problems.finish(
        dir,
        GroundTruth::from_parts(
            dir,
            TruthFormat::PngMasks,
            categories,
            list,
            by_frame,
            by_file_name,
            by_stem,
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_png(path: &Path, width: u32, height: u32, values: &[u16], sixteen: bool) {
        let mut bytes = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut bytes, width, height);
            encoder.set_color(png::ColorType::Grayscale);
            encoder.set_depth(if sixteen {
                png::BitDepth::Sixteen
            } else {
                png::BitDepth::Eight
            });
            let mut writer = encoder.write_header().unwrap();
            let data: Vec<u8> = if sixteen {
                values.iter().flat_map(|v| v.to_be_bytes()).collect()
            } else {
                values.iter().map(|&v| v as u8).collect()
            };
            writer.write_image_data(&data).unwrap();
        }
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn each_value_is_one_instance_of_its_folders_class() {
        let dir = std::env::temp_dir().join(format!("mask-truth-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("crack")).unwrap();
        std::fs::create_dir_all(dir.join("blowhole")).unwrap();
        // 4 wide, 3 high: crack 1 at (0..2, 0), crack 300 at column 3 (16 bits).
        #[rustfmt::skip]
        let cracks = [
            1, 1, 0, 300,
            0, 0, 0, 300,
            0, 0, 0, 300,
        ];
        write_png(&dir.join("crack/a.png"), 4, 3, &cracks, true);
        #[rustfmt::skip]
        let holes = [
            0, 0, 0, 0,
            0, 255, 255, 0,
            0, 255, 0, 0,
        ];
        write_png(&dir.join("blowhole/a.png"), 4, 3, &holes, false);
        write_png(&dir.join("blowhole/b.png"), 4, 3, &[0; 12], false);
        assert!(is_mask_folder(&dir));
        let truth = GroundTruth::load(&dir).unwrap();
        assert_eq!(truth.format, TruthFormat::PngMasks);
        let names: Vec<&str> = truth.categories.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["blowhole", "crack"]);
        assert_eq!(truth.images.len(), 2);
        let a = &truth.images[truth.image_of_file("a.jpg").unwrap()];
        assert_eq!(a.size, Some((4, 3)));
        let found: Vec<(usize, u64, [f32; 4])> = a
            .boxes
            .iter()
            .map(|b| {
                let Some(Segmentation::Rle(rle)) = &b.segmentation else {
                    panic!("no mask")
                };
                (
                    b.category,
                    rle.area(),
                    [b.bbox.x1, b.bbox.y1, b.bbox.x2, b.bbox.y2],
                )
            })
            .collect();
        assert_eq!(
            found,
            vec![
                (0, 3, [1.0, 1.0, 3.0, 3.0]),
                (1, 2, [0.0, 0.0, 2.0, 1.0]),
                (1, 3, [3.0, 0.0, 4.0, 3.0]),
            ]
        );
        // Column-major counts as pycocotools' encode gives: pixels 4, 5 and 7.
        let Some(Segmentation::Rle(holes)) = &a.boxes[0].segmentation else {
            panic!()
        };
        assert_eq!(holes.counts, vec![4, 2, 1, 1, 4]);
        // A colour PNG is refused, naming it.
        let mut bytes = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut bytes, 1, 1);
            encoder.set_color(png::ColorType::Rgb);
            encoder
                .write_header()
                .unwrap()
                .write_image_data(&[0, 0, 0])
                .unwrap();
        }
        std::fs::write(dir.join("crack/c.png"), bytes).unwrap();
        let error = GroundTruth::load(&dir).unwrap_err().to_string();
        assert!(
            error.contains("crack/c.png") && error.contains("greyscale"),
            "{error}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
