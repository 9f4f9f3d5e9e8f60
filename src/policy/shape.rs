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
}
