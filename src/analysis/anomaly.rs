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

/// The 8-connected regions of cells with a score at or above `threshold` (NaN cells never
/// are), in the order of their first cell in row-major order.
pub fn regions(map: &AnomalyMap, threshold: f32) -> Vec<Region> {
    let (w, h) = (map.width, map.height);
    let mut label = vec![u32::MAX; w * h];
    let mut out = Vec::new();
    let mut stack = Vec::new();
    for start in 0..w * h {
        // NaN cells compare false: never anomalous.
        if label[start] != u32::MAX
            || map.data[start]
                .partial_cmp(&threshold)
                .is_none_or(|o| o.is_lt())
        {
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
                    if label[j] == u32::MAX && map.data[j] >= threshold {
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
}
