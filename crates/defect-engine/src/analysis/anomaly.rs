//! Anomaly maps, free of GStreamer: the regions above a pixel threshold (8-connected
//! components), their boxes and their peak and mean scores.

/// An anomaly map as the model output it: `height` rows of `width` scores.
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyMap {
    pub width: usize,
    pub height: usize,
    pub data: Vec<f32>,
}

impl AnomalyMap {
    /// The highest finite score (None for a map without any).
    pub fn max(&self) -> Option<f32> {
        self.data
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .fold(None, |m, v| Some(m.map_or(v, |m: f32| m.max(v))))
    }

    /// Scores that are not finite.
    pub fn non_finite(&self) -> usize {
        self.data.iter().filter(|v| !v.is_finite()).count()
    }

    /// The cells that hold no finite score, by kind, and their bounding box (None when every
    /// score is finite).
    pub fn non_finite_cells(&self) -> Option<NonFiniteCells> {
        let w = self.width.max(1);
        let mut found: Option<NonFiniteCells> = None;
        for (i, v) in self.data.iter().enumerate() {
            if v.is_finite() {
                continue;
            }
            let (x, y) = (i % w, i / w);
            let cells = found.get_or_insert(NonFiniteCells {
                nan: 0,
                infinite: 0,
                negative_infinite: 0,
                x1: x,
                y1: y,
                x2: x + 1,
                y2: y + 1,
            });
            if v.is_nan() {
                cells.nan += 1;
            } else if *v > 0.0 {
                cells.infinite += 1;
            } else {
                cells.negative_infinite += 1;
            }
            cells.x1 = cells.x1.min(x);
            cells.y1 = cells.y1.min(y);
            cells.x2 = cells.x2.max(x + 1);
            cells.y2 = cells.y2.max(y + 1);
        }
        found
    }
}

/// The cells of a map without a finite score: NaN, +inf and -inf counts, and their bounding
/// box in map cells (`x1..x2`, `y1..y2`, exclusive ends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NonFiniteCells {
    pub nan: usize,
    pub infinite: usize,
    pub negative_infinite: usize,
    pub x1: usize,
    pub y1: usize,
    pub x2: usize,
    pub y2: usize,
}

impl NonFiniteCells {
    /// "16 NaN", "3 infinite, 1 negative infinite": the counts that are not zero.
    pub fn counts(&self) -> String {
        [
            (self.nan, "NaN"),
            (self.infinite, "infinite"),
            (self.negative_infinite, "negative infinite"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect::<Vec<_>>()
        .join(", ")
    }
}

/// One connected region of map cells at or above the threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Region {
    /// Bounding box in map cells: `x1..x2`, `y1..y2` (exclusive ends).
    pub x1: usize,
    pub y1: usize,
    pub x2: usize,
    pub y2: usize,
    /// Cells in the region.
    pub cells: usize,
    pub peak: f32,
    pub mean: f32,
}

/// The 8-connected regions of cells with a score at or above `threshold` (cells without a
/// finite score, NaN or infinite, never are: no region has a score that is not finite), in
/// the order of their first cell in row-major order.
pub fn regions(map: &AnomalyMap, threshold: f32) -> Vec<Region> {
    let (w, h) = (map.width, map.height);
    let mut label = vec![u32::MAX; w * h];
    let mut out = Vec::new();
    let mut stack = Vec::new();
    for start in 0..w * h {
        if label[start] != u32::MAX || !at_or_above(map.data[start], threshold) {
            continue;
        }
        let id = out.len() as u32;
        let (mut region, mut sum) = (
            Region {
                x1: start % w,
                y1: start / w,
                x2: start % w + 1,
                y2: start / w + 1,
                cells: 0,
                peak: f32::NEG_INFINITY,
                mean: 0.0,
            },
            0f64,
        );
        label[start] = id;
        stack.push(start);
        while let Some(i) = stack.pop() {
            let (x, y) = (i % w, i / w);
            let v = map.data[i];
            region.cells += 1;
            region.peak = region.peak.max(v);
            sum += v as f64;
            region.x1 = region.x1.min(x);
            region.y1 = region.y1.min(y);
            region.x2 = region.x2.max(x + 1);
            region.y2 = region.y2.max(y + 1);
            for ny in y.saturating_sub(1)..(y + 2).min(h) {
                for nx in x.saturating_sub(1)..(x + 2).min(w) {
                    let j = ny * w + nx;
                    if label[j] == u32::MAX && at_or_above(map.data[j], threshold) {
                        label[j] = id;
                        stack.push(j);
                    }
                }
            }
        }
        region.mean = (sum / region.cells as f64) as f32;
        out.push(region);
    }
    out
}

/// A finite score at or above the threshold (NaN compares false; infinities are left out).
fn at_or_above(v: f32, threshold: f32) -> bool {
    v.is_finite() && v >= threshold
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(rows: &[&str]) -> AnomalyMap {
        let height = rows.len();
        let width = rows[0].len();
        let data = rows
            .iter()
            .flat_map(|r| {
                r.bytes()
                    .map(|b| if b == b'.' { 0.0 } else { (b - b'0') as f32 })
            })
            .collect();
        AnomalyMap {
            width,
            height,
            data,
        }
    }

    #[test]
    fn eight_connected_regions_with_boxes_and_scores() {
        let m = map(&[
            "12......", //
            ".3....9.", //
            "..2...9.", //
            "........", //
            "5......1",
        ]);
        let r = regions(&m, 2.0);
        assert_eq!(r.len(), 3, "{r:?}");
        // 2, 3, 2 touch diagonally: one region.
        assert_eq!((r[0].x1, r[0].y1, r[0].x2, r[0].y2), (1, 0, 3, 3));
        assert_eq!(r[0].cells, 3);
        assert_eq!(r[0].peak, 3.0);
        assert!((r[0].mean - 7.0 / 3.0).abs() < 1e-6);
        assert_eq!(
            (r[1].x1, r[1].y1, r[1].x2, r[1].y2, r[1].cells),
            (6, 1, 7, 3, 2)
        );
        assert_eq!((r[2].x1, r[2].y1, r[2].peak), (0, 4, 5.0));
        // A threshold above everything: none; at the lowest score: one region per component.
        assert!(regions(&m, 10.0).is_empty());
        assert_eq!(m.max(), Some(9.0));
    }

    #[test]
    fn nan_cells_are_never_anomalous() {
        let m = AnomalyMap {
            width: 2,
            height: 1,
            data: vec![f32::NAN, 1.0],
        };
        assert_eq!(regions(&m, 0.5).len(), 1);
        assert_eq!(m.non_finite(), 1);
        assert_eq!(m.max(), Some(1.0));
    }

    #[test]
    fn infinite_cells_are_never_in_a_region_and_are_located() {
        let m = map(&["9....", ".....", "....."]);
        let mut m = m;
        m.data[6] = f32::INFINITY;
        m.data[8] = f32::NAN;
        m.data[12] = f32::NEG_INFINITY;
        m.data[7] = f32::INFINITY;
        let r = regions(&m, 1.0);
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!((r[0].cells, r[0].peak), (1, 9.0));
        let cells = m.non_finite_cells().unwrap();
        assert_eq!(
            cells,
            NonFiniteCells {
                nan: 1,
                infinite: 2,
                negative_infinite: 1,
                x1: 1,
                y1: 1,
                x2: 4,
                y2: 3
            }
        );
        assert_eq!(cells.counts(), "1 NaN, 2 infinite, 1 negative infinite");
        assert_eq!(map(&["1"]).non_finite_cells(), None);
    }
}
