//! Tiling for small defects on large frames: the frame is cut into overlapping square tiles,
//! each letterboxed to the model on its own, so that a defect keeps its size in pixels
//! instead of shrinking with the whole frame.

/// Top-left corners of `tile` x `tile` tiles covering a `width` x `height` frame, neighbours
/// overlapping by at least `overlap` pixels; the last row and column are aligned with the
/// frame's edges. Tiles are clamped to the frame, corners even (chroma-aligned).
pub fn plan(width: u32, height: u32, tile: u32, overlap: u32) -> (u32, u32, Vec<(u32, u32)>) {
    let (tw, th) = (tile.min(width).max(1), tile.min(height).max(1));
    let axis = |length: u32, size: u32| -> Vec<u32> {
        if size >= length {
            return vec![0];
        }
        let step = size.saturating_sub(overlap).max(1);
        let mut starts: Vec<u32> = (0..)
            .map(|i| i * step)
            .take_while(|&s| s + size < length)
            .map(|s| s & !1)
            .collect();
        starts.push((length - size) & !1);
        starts.dedup();
        starts
    };
    let xs = axis(width, tw);
    let ys = axis(height, th);
    let corners = ys
        .iter()
        .flat_map(|&y| xs.iter().map(move |&x| (x, y)))
        .collect();
    (tw, th, corners)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_cover_the_frame_with_overlap() {
        let (tw, th, corners) = plan(4096, 3000, 640, 64);
        assert_eq!((tw, th), (640, 640));
        let xs: Vec<u32> = corners.iter().filter(|c| c.1 == 0).map(|c| c.0).collect();
        assert_eq!(xs, [0, 576, 1152, 1728, 2304, 2880, 3456]);
        assert_eq!(*xs.last().unwrap() + 640, 4096);
        let ys: Vec<u32> = corners.iter().filter(|c| c.0 == 0).map(|c| c.1).collect();
        assert_eq!(*ys.last().unwrap() + 640, 3000);
        for pair in ys.windows(2) {
            assert!(pair[0] + 640 >= pair[1] + 64, "overlap kept: {ys:?}");
        }
    }

    #[test]
    fn small_frames_are_one_tile() {
        assert_eq!(plan(300, 200, 640, 64), (300, 200, vec![(0, 0)]));
        assert_eq!(plan(1, 1, 640, 64), (1, 1, vec![(0, 0)]));
        let (_, _, corners) = plan(1000, 100, 640, 64);
        assert_eq!(corners, vec![(0, 0), (360, 0)]);
    }
}
