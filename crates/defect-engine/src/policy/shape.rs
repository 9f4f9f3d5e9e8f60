//! Inspection regions and ignore masks: rectangles and polygons in frame pixels.

#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// x1, y1, x2, y2; contains points with x1 ≤ x < x2 and y1 ≤ y < y2.
    Rect([f32; 4]),
    /// Vertices in order; even-odd rule.
    Polygon(Vec<(f32, f32)>),
}

impl Shape {
    pub fn contains(&self, x: f32, y: f32) -> bool {
        match self {
            Shape::Rect([x1, y1, x2, y2]) => x >= *x1 && x < *x2 && y >= *y1 && y < *y2,
            Shape::Polygon(points) => polygon_contains(points, x, y),
        }
    }

    /// The bounding box x1, y1, x2, y2.
    pub fn bounds(&self) -> [f32; 4] {
        match self {
            Shape::Rect(r) => *r,
            Shape::Polygon(points) => points.iter().fold(
                [
                    f32::INFINITY,
                    f32::INFINITY,
                    f32::NEG_INFINITY,
                    f32::NEG_INFINITY,
                ],
                |[x1, y1, x2, y2], &(x, y)| [x1.min(x), y1.min(y), x2.max(x), y2.max(y)],
            ),
        }
    }

    /// Whether the shape shares area with the `[0, width) x [0, height)` frame (by its
    /// bounding box: a polygon around the frame without touching it counts as overlapping).
    pub fn overlaps(&self, width: f32, height: f32) -> bool {
        let [x1, y1, x2, y2] = self.bounds();
        x1 < width && y1 < height && x2 > 0.0 && y2 > 0.0
    }

    /// Whether the shape contains the whole frame (rectangles only; a polygon is never said
    /// to).
    pub fn covers(&self, width: f32, height: f32) -> bool {
        match self {
            Shape::Rect([x1, y1, x2, y2]) => {
                *x1 <= 0.0 && *y1 <= 0.0 && *x2 >= width && *y2 >= height
            }
            Shape::Polygon(_) => false,
        }
    }
}

/// Twice the signed area of a polygon (shoelace formula), in f64.
pub fn polygon_area2(points: &[(f64, f64)]) -> f64 {
    let Some(&last) = points.last() else {
        return 0.0;
    };
    let mut previous = last;
    let mut sum = 0.0;
    for &(x, y) in points {
        sum += previous.0 * y - x * previous.1;
        previous = (x, y);
    }
    sum
}

/// Ray casting towards +x: a point is inside when it crosses an odd number of edges.
fn polygon_contains(points: &[(f32, f32)], x: f32, y: f32) -> bool {
    let mut inside = false;
    let mut previous = match points.last() {
        Some(&p) => p,
        None => return false,
    };
    for &(px, py) in points {
        let (qx, qy) = previous;
        if (py > y) != (qy > y) {
            let crossing = px + (y - py) * (qx - px) / (qy - py);
            if x < crossing {
                inside = !inside;
            }
        }
        previous = (px, py);
    }
    inside
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rectangles_are_half_open() {
        let r = Shape::Rect([10.0, 10.0, 20.0, 20.0]);
        assert!(r.contains(10.0, 10.0));
        assert!(r.contains(19.9, 19.9));
        assert!(!r.contains(20.0, 15.0));
        assert!(!r.contains(9.9, 15.0));
    }

    #[test]
    fn triangle_and_concave_polygon() {
        let triangle = Shape::Polygon(vec![(0.0, 0.0), (10.0, 0.0), (0.0, 10.0)]);
        assert!(triangle.contains(2.0, 2.0));
        assert!(!triangle.contains(8.0, 8.0));
        // A U shape: the notch between the arms is outside.
        let u = Shape::Polygon(vec![
            (0.0, 0.0),
            (30.0, 0.0),
            (30.0, 30.0),
            (20.0, 30.0),
            (20.0, 10.0),
            (10.0, 10.0),
            (10.0, 30.0),
            (0.0, 30.0),
        ]);
        assert!(u.contains(5.0, 20.0));
        assert!(u.contains(25.0, 20.0));
        assert!(!u.contains(15.0, 20.0));
        assert!(u.contains(15.0, 5.0));
        assert!(!Shape::Polygon(vec![]).contains(0.0, 0.0));
    }

    #[test]
    fn overlap_cover_and_area() {
        let r = Shape::Rect([-10.0, -10.0, 700.0, 500.0]);
        assert!(r.covers(640.0, 480.0) && r.overlaps(640.0, 480.0));
        let outside = Shape::Rect([2000.0, 0.0, 2100.0, 100.0]);
        assert!(!outside.overlaps(640.0, 480.0) && !outside.covers(640.0, 480.0));
        let tri = Shape::Polygon(vec![(700.0, 0.0), (800.0, 0.0), (700.0, 50.0)]);
        assert!(!tri.overlaps(640.0, 480.0));
        assert_eq!(
            polygon_area2(&[(0.0, 0.0), (10.0, 0.0), (0.0, 10.0)]),
            100.0
        );
        assert_eq!(polygon_area2(&[(0.0, 0.0), (5.0, 5.0), (10.0, 10.0)]), 0.0);
    }
}
