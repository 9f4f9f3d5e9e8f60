// SPDX-License-Identifier: MIT OR Apache-2.0
//! Frame-sized COCO run-length encodings, free of GStreamer: what mask AP is computed on.
//!
//! An [`Rle`] is a binary mask of a whole `width` x `height` frame as COCO writes it: counts of
//! alternating runs of 0s and 1s (starting with 0s) in column-major order. It is made from a
//! [`Mask`] (a detection's mask at its box), from COCO `counts` (a list or pycocotools'
//! compressed string), or from COCO polygons, rasterised by the rule of pycocotools'
//! `rleFrPoly` (the COCO toolbox's C API, BSD licence): the outline is walked on a grid 5 times
//! finer than the pixels, and a pixel is inside when its centre is below a crossing of the
//! outline in its column; several polygons of one object are united. The same pixels as
//! pycocotools, so that mask IoU, and AP, are the same.
//!
//! [`Rle::iou`] is pycocotools' `rleIou`: intersection over union of the pixels, or over the
//! detection's pixels for a crowd region, 0 when they do not intersect.

use super::mask::{Mask, decode_coco_rle};

/// A binary mask of a whole frame as COCO run-length counts (column-major, runs of 0s first).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rle {
    pub width: u32,
    pub height: u32,
    pub counts: Vec<u64>,
}

/// pycocotools' polygons are drawn on a grid this many times finer than the pixels.
const POLY_SCALE: f64 = 5.0;

impl Rle {
    /// COCO counts of a `width` x `height` frame; an error when they do not add up to its
    /// pixels.
    pub fn from_counts(counts: Vec<u64>, width: u32, height: u32) -> Result<Self, String> {
        let total: u64 = counts.iter().sum();
        let pixels = u64::from(width) * u64::from(height);
        if total != pixels {
            return Err(format!(
                "the counts cover {total} pixels, not the {width}x{height} = {pixels} of the frame"
            ));
        }
        Ok(Self {
            width,
            height,
            counts,
        })
    }

    /// A mask (at its window) over a `width` x `height` frame.
    pub fn from_mask(mask: &Mask, width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            counts: mask.coco_counts(width, height),
        }
    }

    /// An all-zero mask of the frame.
    pub fn empty(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            counts: vec![u64::from(width) * u64::from(height)],
        }
    }

    /// One polygon (`x0, y0, x1, y1, ...` in pixels) rasterised as pycocotools' `rleFrPoly`
    /// does (see the module). Counts are in pycocotools' form (a run may be empty).
    pub fn from_polygon(xy: &[f64], width: u32, height: u32) -> Self {
        let (w, h) = (i64::from(width), i64::from(height));
        let k = xy.len() / 2;
        // C's (int)(v + .5): truncation toward zero.
        let x: Vec<i64> = (0..=k)
            .map(|j| (POLY_SCALE * xy[(j % k.max(1)) * 2] + 0.5) as i32 as i64)
            .collect();
        let y: Vec<i64> = (0..=k)
            .map(|j| (POLY_SCALE * xy[(j % k.max(1)) * 2 + 1] + 0.5) as i32 as i64)
            .collect();
        if k == 0 {
            return Self::empty(width, height);
        }
        // Every point of the fine grid along the outline.
        let (mut u, mut v) = (Vec::new(), Vec::new());
        for j in 0..k {
            let (mut xs, mut xe, mut ys, mut ye) = (x[j], x[j + 1], y[j], y[j + 1]);
            let (dx, dy) = ((xe - xs).abs(), (ys - ye).abs());
            let flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
            if flip {
                std::mem::swap(&mut xs, &mut xe);
                std::mem::swap(&mut ys, &mut ye);
            }
            if dx >= dy {
                let s = if dx == 0 {
                    0.0
                } else {
                    (ye - ys) as f64 / dx as f64
                };
                for d in 0..=dx {
                    let t = if flip { dx - d } else { d };
                    u.push(t + xs);
                    v.push((ys as f64 + s * t as f64 + 0.5) as i32 as i64);
                }
            } else {
                let s = (xe - xs) as f64 / dy as f64;
                for d in 0..=dy {
                    let t = if flip { dy - d } else { d };
                    v.push(t + ys);
                    u.push((xs as f64 + s * t as f64 + 0.5) as i32 as i64);
                }
            }
        }
        // Where the outline crosses a pixel column's centre: the first pixel below it.
        let mut starts: Vec<u64> = Vec::new();
        for j in 1..u.len() {
            if u[j] == u[j - 1] {
                continue;
            }
            let xd = (if u[j] < u[j - 1] { u[j] } else { u[j] - 1 }) as f64;
            let xd = (xd + 0.5) / POLY_SCALE - 0.5;
            if xd.floor() != xd || xd < 0.0 || xd > (w - 1) as f64 {
                continue;
            }
            let yd = (if v[j] < v[j - 1] { v[j] } else { v[j - 1] }) as f64;
            let yd = ((yd + 0.5) / POLY_SCALE - 0.5).clamp(0.0, h as f64).ceil();
            starts.push((xd as i64 * h + yd as i64) as u64);
        }
        starts.push((w * h) as u64);
        starts.sort_unstable();
        // Differences; a zero run merges the two runs around it.
        let mut previous = 0;
        let deltas: Vec<u64> = starts
            .iter()
            .map(|&s| {
                let d = s - previous;
                previous = s;
                d
            })
            .collect();
        let mut counts = vec![deltas[0]];
        let mut j = 1;
        while j < deltas.len() {
            if deltas[j] > 0 {
                counts.push(deltas[j]);
                j += 1;
            } else {
                j += 1;
                if j < deltas.len() {
                    if let Some(last) = counts.last_mut() {
                        *last += deltas[j];
                    }
                    j += 1;
                }
            }
        }
        Self {
            width,
            height,
            counts,
        }
    }

    /// The polygons of one object, united (pycocotools' `frPyObjects` then `merge`).
    pub fn from_polygons(polygons: &[Vec<f64>], width: u32, height: u32) -> Self {
        let rles: Vec<Self> = polygons
            .iter()
            .map(|p| Self::from_polygon(p, width, height))
            .collect();
        Self::union(&rles).unwrap_or_else(|| Self::empty(width, height))
    }

    /// The union of masks of one frame size; None for none or for different sizes.
    pub fn union(rles: &[Self]) -> Option<Self> {
        let first = rles.first()?;
        if rles
            .iter()
            .any(|r| (r.width, r.height) != (first.width, first.height))
        {
            return None;
        }
        let mut runs: Vec<(u64, u64)> = rles.iter().flat_map(|r| r.runs()).collect();
        runs.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::new();
        for (s, e) in runs {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        let total = u64::from(first.width) * u64::from(first.height);
        let mut counts = Vec::with_capacity(merged.len() * 2 + 1);
        let mut at = 0;
        for (s, e) in merged {
            counts.push(s - at);
            counts.push(e - s);
            at = e;
        }
        counts.push(total - at);
        Some(Self {
            width: first.width,
            height: first.height,
            counts,
        })
    }

    /// The runs of 1s as [start, end) pixel indices (column-major), in order.
    pub fn runs(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let mut at = 0u64;
        self.counts.iter().enumerate().filter_map(move |(i, &c)| {
            let start = at;
            at += c;
            (i % 2 == 1 && c > 0).then_some((start, at))
        })
    }

    /// Set pixels.
    pub fn area(&self) -> u64 {
        self.counts.iter().skip(1).step_by(2).sum()
    }

    /// pycocotools' `rleIou` of a detection (`self`) and a truth: set pixels in both over
    /// pixels in either, or, for a crowd truth, over the detection's pixels; 0 when none is in
    /// both; -1 when the frame sizes differ (pycocotools' value: never a match).
    pub fn iou(&self, truth: &Self, crowd: bool) -> f64 {
        if (self.width, self.height) != (truth.width, truth.height) {
            return -1.0;
        }
        let intersection = intersection(self, truth);
        if intersection == 0 {
            return 0.0;
        }
        let union = if crowd {
            self.area()
        } else {
            self.area() + truth.area() - intersection
        };
        intersection as f64 / union as f64
    }

    /// The set pixels as a mask of the window that holds them.
    pub fn to_mask(&self) -> Mask {
        decode_coco_rle(&self.counts, self.width, self.height).unwrap_or_default()
    }
}

/// Pixels set in both.
fn intersection(a: &Rle, b: &Rle) -> u64 {
    let (a, b): (Vec<_>, Vec<_>) = (a.runs().collect(), b.runs().collect());
    let (mut i, mut j, mut both) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        let (s, e) = (a[i].0.max(b[j].0), a[i].1.min(b[j].1));
        if e > s {
            both += e - s;
        }
        if a[i].1 < b[j].1 { i += 1 } else { j += 1 }
    }
    both
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pixel (x, y) of a frame of height h, column-major.
    fn pixels(rle: &Rle) -> Vec<(u64, u64)> {
        let h = u64::from(rle.height);
        rle.runs()
            .flat_map(|(s, e)| (s..e).map(move |i| (i / h, i % h)))
            .collect()
    }

    /// pycocotools 2.0.10: `mask.frPyObjects([[1, 1, 4, 1, 4, 3, 1, 3]], 5, 6)` is the
    /// rectangle of pixel centres x 1..3, y 1..2 (a pixel is in when its centre is inside or
    /// on the top or left edge): counts [6, 2, 3, 2, 3, 2, 12].
    #[test]
    fn a_rectangle_as_pycocotools_rasterises_it() {
        let rle = Rle::from_polygon(&[1.0, 1.0, 4.0, 1.0, 4.0, 3.0, 1.0, 3.0], 6, 5);
        assert_eq!(rle.counts, vec![6, 2, 3, 2, 3, 2, 12]);
        assert_eq!(rle.area(), 6);
        assert_eq!(
            pixels(&rle),
            vec![(1, 1), (1, 2), (2, 1), (2, 2), (3, 1), (3, 2)]
        );
    }

    /// A triangle and a polygon reaching outside the frame, against counts pycocotools 2.0.10
    /// gives (`frPyObjects(poly, h, w)['counts']` decoded with `_mask` / `rleFrString`).
    #[test]
    fn triangles_and_clipping_as_pycocotools() {
        let canonical = |r: Rle| Rle::union(&[r]).unwrap().counts;
        let tri = Rle::from_polygon(&[0.5, 0.5, 7.3, 1.2, 2.2, 6.6], 8, 8);
        assert_eq!(tri.counts.iter().sum::<u64>(), 64);
        assert_eq!(tri.area(), 18);
        assert_eq!(canonical(tri), vec![9, 3, 5, 5, 3, 4, 4, 3, 5, 2, 6, 1, 14]);
        let outside = Rle::from_polygon(&[-3.0, -2.0, 12.0, -2.0, 12.0, 3.4, -3.0, 3.4], 6, 5);
        assert_eq!(
            canonical(outside),
            vec![0, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2]
        );
    }

    #[test]
    fn union_iou_and_crowd() {
        let a = Rle::from_counts(vec![2, 4, 6], 3, 4).unwrap(); // pixels 2..6
        let b = Rle::from_counts(vec![4, 4, 4], 3, 4).unwrap(); // pixels 4..8
        assert_eq!(
            Rle::union(&[a.clone(), b.clone()]).unwrap().counts,
            vec![2, 6, 4]
        );
        // Intersection 2, union 6; as a crowd region: over the detection's 4.
        assert!((a.iou(&b, false) - 2.0 / 6.0).abs() < 1e-15);
        assert!((a.iou(&b, true) - 0.5).abs() < 1e-15);
        let far = Rle::from_counts(vec![10, 2], 3, 4).unwrap();
        assert_eq!(a.iou(&far, false), 0.0);
        assert_eq!(a.iou(&Rle::empty(4, 3), false), -1.0);
        assert!(Rle::from_counts(vec![2, 4], 3, 4).is_err());
        let m = a.to_mask();
        assert_eq!((m.x, m.y, m.width, m.height, m.area()), (0, 0, 2, 4, 4));
        assert_eq!(Rle::from_mask(&m, 3, 4), a);
    }
}
