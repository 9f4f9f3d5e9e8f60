// SPDX-License-Identifier: MIT OR Apache-2.0
//! A defect's mask at frame resolution, kept at its box (never a frame-sized buffer), and what
//! is measured on it, free of GStreamer:
//!
//! - [`Mask::area`]: set pixels, px²;
//! - [`Mask::length`]: the longest side of the minimum-area rectangle around the mask (rotating
//!   calipers on the convex hull of its pixels' squares), px. It is what a person measures
//!   with a calliper on a straight or slightly bent scratch, it is exact for rectangles and
//!   lines at any angle, and it does not depend on the mask's outline noise (a skeleton's
//!   length grows with every spur a ragged edge gives the thinning, and changes with the
//!   thinning algorithm). It gives a curved defect's span, not its length along the curve;
//! - [`Mask::to_coco_rle`]: the mask as a COCO run-length encoding in frame pixels (column-major
//!   counts, compressed string), as pycocotools' `mask.encode` writes it; [`decode_coco_rle`]
//!   reads it back;
//! - [`Mask::outer_contour`]: the outline of its largest 8-connected part as a polygon, as
//!   OpenCV's `findContours` traces it (the YOLO-seg labels of `defectcapture`).

/// A binary mask of a `width` x `height` window of the frame whose top-left pixel is
/// (`x`, `y`), frame resolution; `data` row-major, one byte a pixel, 0 or 1.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mask {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

/// The minimum-area rectangle of a mask: its sides (longest first) and angle of the long side.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MinAreaRect {
    pub long: f32,
    pub short: f32,
    /// Of the long side against the x axis, degrees in [0, 180).
    pub angle_deg: f32,
}

impl Mask {
    /// An empty (all zero) mask of a window.
    pub fn empty(x: u32, y: u32, width: u32, height: u32) -> Self {
        Self {
            x,
            y,
            width,
            height,
            data: vec![0; width as usize * height as usize],
        }
    }

    /// Whether frame pixel (`fx`, `fy`) is set.
    pub fn get(&self, fx: u32, fy: u32) -> bool {
        fx >= self.x
            && fy >= self.y
            && fx - self.x < self.width
            && fy - self.y < self.height
            && self.data[((fy - self.y) * self.width + fx - self.x) as usize] != 0
    }

    /// The mask resized (nearest neighbour, on pixel centres) to the `width` x `height` window
    /// at (`x`, `y`): where a frame was scaled after the mask was made.
    pub fn resized(&self, x: u32, y: u32, width: u32, height: u32) -> Mask {
        let mut out = Mask::empty(x, y, width, height);
        if self.width == 0 || self.height == 0 || self.data.len() != self.area_of_window() {
            return out;
        }
        let source = |i: u32, to: u32, from: u32| {
            (((2 * u64::from(i) + 1) * u64::from(from) / (2 * u64::from(to))) as u32).min(from - 1)
        };
        let cols: Vec<usize> = (0..width)
            .map(|c| source(c, width, self.width) as usize)
            .collect();
        for (row, out_row) in out.data.chunks_exact_mut(width.max(1) as usize).enumerate() {
            let from = source(row as u32, height, self.height) as usize * self.width as usize;
            for (o, &c) in out_row.iter_mut().zip(&cols) {
                *o = self.data[from + c];
            }
        }
        out
    }

    fn area_of_window(&self) -> usize {
        self.width as usize * self.height as usize
    }

    /// Set pixels (px²).
    pub fn area(&self) -> u64 {
        self.data.iter().map(|&v| u64::from(v != 0)).sum()
    }

    /// The convex hull of the squares of the set pixels (frame coordinates, pixel corners),
    /// counter-clockwise; empty for an empty mask. Only each row's first and last set pixel
    /// contribute, so the hull costs the mask's height, not its area.
    pub fn hull(&self) -> Vec<(f32, f32)> {
        let w = self.width as usize;
        let mut points = Vec::new();
        if w == 0 {
            return points;
        }
        for (row, line) in self.data.chunks_exact(w).enumerate() {
            let Some(first) = line.iter().position(|&v| v != 0) else {
                continue;
            };
            let last = line.iter().rposition(|&v| v != 0).unwrap_or(first);
            let y = (self.y as usize + row) as f32;
            let (x0, x1) = (
                (self.x as usize + first) as f32,
                (self.x as usize + last + 1) as f32,
            );
            points.extend([(x0, y), (x0, y + 1.0), (x1, y), (x1, y + 1.0)]);
        }
        convex_hull(points)
    }

    /// The minimum-area rectangle around the set pixels; None for an empty mask.
    pub fn min_area_rect(&self) -> Option<MinAreaRect> {
        min_area_rect(&self.hull())
    }

    /// The defect's length in pixels: the long side of [`Mask::min_area_rect`] (0 when empty).
    pub fn length(&self) -> f32 {
        self.min_area_rect().map_or(0.0, |r| r.long)
    }

    /// The mask as COCO RLE over a `frame_width` x `frame_height` frame: `counts` of alternating
    /// runs of 0s and 1s (starting with 0s) in column-major order, compressed as pycocotools
    /// writes them. The frame is never materialised: runs are found in the mask's window.
    pub fn to_coco_rle(&self, frame_width: u32, frame_height: u32) -> String {
        encode_counts(&self.coco_counts(frame_width, frame_height))
    }

    /// The uncompressed COCO counts of [`Mask::to_coco_rle`]. Pixels outside the frame are
    /// left out.
    pub fn coco_counts(&self, frame_width: u32, frame_height: u32) -> Vec<u64> {
        let h = u64::from(frame_height);
        let total = u64::from(frame_width) * h;
        let mut counts = Vec::new();
        // End of the last run of ones, and its start.
        let (mut end, mut start) = (0u64, None::<u64>);
        let w = self.width as usize;
        for col in 0..self.width {
            let fx = self.x + col;
            if fx >= frame_width {
                break;
            }
            for row in 0..self.height {
                let fy = self.y + row;
                if fy >= frame_height {
                    break;
                }
                if self.data[row as usize * w + col as usize] == 0 {
                    continue;
                }
                let index = u64::from(fx) * h + u64::from(fy);
                match start {
                    Some(_) if index == end => end += 1,
                    _ => {
                        if let Some(s) = start {
                            counts.push(end - s);
                        }
                        counts.push(index - end);
                        start = Some(index);
                        end = index + 1;
                    }
                }
            }
        }
        if let Some(s) = start {
            counts.push(end - s);
        }
        if total > end || counts.is_empty() {
            counts.push(total - end);
        }
        counts
    }
}

/// The 8 neighbours of a pixel, clockwise on screen (y down) from east.
const NEIGHBOURS: [(i64, i64); 8] = [
    (1, 0),
    (1, 1),
    (0, 1),
    (-1, 1),
    (-1, 0),
    (-1, -1),
    (0, -1),
    (1, -1),
];

impl Mask {
    /// The 8-connected parts of the mask, each a label of its pixels (1 for the first part in
    /// raster order, 0 outside the mask), and each part's area.
    fn labelled_parts(&self) -> (Vec<u32>, Vec<usize>) {
        let (w, h) = (self.width as usize, self.height as usize);
        if self.data.len() != w * h {
            return (vec![0; w * h], Vec::new());
        }
        let mut labels = vec![0u32; w * h];
        let mut areas = Vec::new();
        let mut stack = Vec::new();
        for start in 0..w * h {
            if self.data[start] == 0 || labels[start] != 0 {
                continue;
            }
            let label = areas.len() as u32 + 1;
            labels[start] = label;
            stack.push(start);
            let mut area = 0;
            while let Some(i) = stack.pop() {
                area += 1;
                let (x, y) = ((i % w) as i64, (i / w) as i64);
                for (dx, dy) in NEIGHBOURS {
                    let (nx, ny) = (x + dx, y + dy);
                    if nx < 0 || ny < 0 || nx >= w as i64 || ny >= h as i64 {
                        continue;
                    }
                    let j = ny as usize * w + nx as usize;
                    if self.data[j] != 0 && labels[j] == 0 {
                        labels[j] = label;
                        stack.push(j);
                    }
                }
            }
            areas.push(area);
        }
        (labels, areas)
    }

    /// The pixels of one labelled part, in the mask's window.
    fn part(&self, labels: &[u32], label: u32) -> Mask {
        let mut out = Mask::empty(self.x, self.y, self.width, self.height);
        if out.data.len() == labels.len() {
            for (o, &l) in out.data.iter_mut().zip(labels) {
                *o = u8::from(label != 0 && l == label);
            }
        }
        out
    }

    /// The largest 8-connected part of the mask (the first in raster order among equals), in
    /// the same window.
    pub fn largest_part(&self) -> Mask {
        let (labels, areas) = self.labelled_parts();
        let best = areas
            .iter()
            .enumerate()
            .fold(
                (0, 0),
                |(best, area), (i, &a)| {
                    if a > area { (i + 1, a) } else { (best, area) }
                },
            )
            .0;
        self.part(&labels, best as u32)
    }

    /// Every 8-connected part of the mask, in raster order of their first pixels, each in the
    /// mask's window.
    pub fn parts(&self) -> Vec<Mask> {
        let (labels, areas) = self.labelled_parts();
        (1..=areas.len() as u32)
            .map(|label| self.part(&labels, label))
            .collect()
    }

    /// One polygon that outlines every part of the mask: the [outer contour](Mask::outer_contour)
    /// of each part, joined into one closed path by bridges of zero width (each part is
    /// reached along the shortest segment between two contour points of parts already joined
    /// and left the same way back). Filling it gives every part (holes filled) plus the
    /// bridges' pixels, so a loader that expects one polygon per object keeps the whole mask.
    /// A mask of one part gives its outer contour; an empty mask none.
    pub fn polygon(&self) -> Vec<(u32, u32)> {
        let contours: Vec<Vec<(u32, u32)>> = self
            .parts()
            .iter()
            .map(|p| p.trace())
            .filter(|c| !c.is_empty())
            .collect();
        join_contours(&contours)
    }

    /// The outer contour of the mask's [largest part](Mask::largest_part), as OpenCV's
    /// `findContours` (`RETR_EXTERNAL`, `CHAIN_APPROX_SIMPLE`) gives it: the boundary pixels
    /// (frame pixel indices, a pixel's centre being its index) from its first pixel in raster
    /// order, counter-clockwise on screen, only where the direction changes (Suzuki and Abe's
    /// border following). Holes are not traced: the polygon covers them. Empty for an empty
    /// mask, one point for a single pixel, two for a straight line one pixel wide.
    pub fn outer_contour(&self) -> Vec<(u32, u32)> {
        self.largest_part().trace()
    }

    /// The outer contour of a mask of one part (of its first part in raster order otherwise).
    fn trace(&self) -> Vec<(u32, u32)> {
        let part = self;
        let (w, h) = (part.width as i64, part.height as i64);
        let on = |(x, y): (i64, i64)| {
            x >= 0 && y >= 0 && x < w && y < h && part.data[(y * w + x) as usize] != 0
        };
        let Some(first) = part.data.iter().position(|&v| v != 0) else {
            return Vec::new();
        };
        let step = |(x, y): (i64, i64), d: usize| (x + NEIGHBOURS[d].0, y + NEIGHBOURS[d].1);
        let frame = |(x, y): (i64, i64)| (self.x + x as u32, self.y + y as u32);
        let start = (first as i64 % w, first as i64 / w);
        // Clockwise from the west neighbour (outside: the first pixel in raster order).
        let Some(d1) = (0..8).map(|k| (4 + k) % 8).find(|&d| on(step(start, d))) else {
            return vec![frame(start)];
        };
        let p1 = step(start, d1);
        let (mut previous, mut current) = (p1, start);
        let mut chain = Vec::new();
        // Each boundary pixel is left at most once per direction it has.
        for _ in 0..8 * part.data.len() + 8 {
            let back = NEIGHBOURS
                .iter()
                .position(|&(dx, dy)| (current.0 + dx, current.1 + dy) == previous)
                .unwrap_or(0);
            // Counter-clockwise from the pixel after the previous one; the previous one
            // itself closes the search, so there is always one.
            let d = (1..=8)
                .map(|k| (back + 8 - k) % 8)
                .find(|&d| on(step(current, d)))
                .unwrap_or(back);
            let next = step(current, d);
            chain.push(current);
            if next == start && current == p1 {
                break;
            }
            (previous, current) = (current, next);
        }
        simplify(&chain).into_iter().map(frame).collect()
    }
}

/// Joins closed contours into one closed path: a spanning tree of shortest bridges between
/// their points (Prim's, from the first contour), walked depth first. Each contour is walked
/// whole from the point its bridge arrives at, and each child contour is visited from its
/// parent's bridge point and left back to it, so every bridge is passed twice, once each way.
fn join_contours(contours: &[Vec<(u32, u32)>]) -> Vec<(u32, u32)> {
    let n = contours.len();
    if n <= 1 {
        return contours.first().cloned().unwrap_or_default();
    }
    let distance = |a: (u32, u32), b: (u32, u32)| {
        let (dx, dy) = (a.0 as i64 - b.0 as i64, a.1 as i64 - b.1 as i64);
        dx * dx + dy * dy
    };
    // The shortest bridge between two contours: (squared length, point of a, point of b).
    let bridge = |a: usize, b: usize| {
        let mut best = (i64::MAX, 0, 0);
        for (i, &p) in contours[a].iter().enumerate() {
            for (j, &q) in contours[b].iter().enumerate() {
                let d = distance(p, q);
                if d < best.0 {
                    best = (d, i, j);
                }
            }
        }
        best
    };
    // children[c] = (point index in c, child, point index in the child), in tree order.
    let mut children: Vec<Vec<(usize, usize, usize)>> = vec![Vec::new(); n];
    let mut joined = vec![false; n];
    joined[0] = true;
    // For each contour not yet joined, its shortest bridge to the joined ones.
    let mut nearest: Vec<(i64, usize, usize, usize)> = (0..n)
        .map(|c| {
            let (d, i, j) = bridge(0, c);
            (d, 0, i, j)
        })
        .collect();
    for _ in 1..n {
        let Some(next) = (0..n)
            .filter(|&c| !joined[c])
            .min_by_key(|&c| (nearest[c].0, c))
        else {
            break;
        };
        let (_, parent, at, entry) = nearest[next];
        children[parent].push((at, next, entry));
        joined[next] = true;
        for c in (0..n).filter(|&c| !joined[c]) {
            let (d, i, j) = bridge(next, c);
            if d < nearest[c].0 {
                nearest[c] = (d, next, i, j);
            }
        }
    }
    enum Step {
        /// Walk contour `c` from its point `entry`, `step` points done.
        Walk { c: usize, entry: usize, step: usize },
        /// Back over a bridge to this point.
        Return((u32, u32)),
    }
    let mut path = Vec::new();
    let mut stack = vec![Step::Walk {
        c: 0,
        entry: 0,
        step: 0,
    }];
    while let Some(next) = stack.pop() {
        let (c, entry, step) = match next {
            Step::Return(point) => {
                path.push(point);
                continue;
            }
            Step::Walk { c, entry, step } => (c, entry, step),
        };
        let len = contours[c].len();
        if step == len {
            if c != 0 {
                // Closes the child's loop at the point its bridge arrived at.
                path.push(contours[c][entry]);
            }
            continue;
        }
        let at = (entry + step) % len;
        path.push(contours[c][at]);
        stack.push(Step::Walk {
            c,
            entry,
            step: step + 1,
        });
        // The children bridged from this point, the first one on top of the stack.
        for &(_, child, child_entry) in children[c].iter().rev().filter(|(i, ..)| *i == at) {
            stack.push(Step::Return(contours[c][at]));
            stack.push(Step::Walk {
                c: child,
                entry: child_entry,
                step: 0,
            });
        }
    }
    // A part of one point is entered and left at that point.
    path.dedup();
    // The walk ends back at its first point, which a polygon closes by itself.
    if path.len() > 1 && path.first() == path.last() {
        path.pop();
    }
    path
}

/// The points of a closed chain of neighbouring pixels where its direction changes
/// (`CHAIN_APPROX_SIMPLE`).
fn simplify(chain: &[(i64, i64)]) -> Vec<(i64, i64)> {
    let n = chain.len();
    if n < 3 {
        return chain.to_vec();
    }
    (0..n)
        .filter(|&i| {
            let (a, b, c) = (chain[(i + n - 1) % n], chain[i], chain[(i + 1) % n]);
            (b.0 - a.0, b.1 - a.1) != (c.0 - b.0, c.1 - b.1)
        })
        .map(|i| chain[i])
        .collect()
}

/// Andrew's monotone chain; counter-clockwise, without collinear points.
fn convex_hull(mut points: Vec<(f32, f32)>) -> Vec<(f32, f32)> {
    points.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    points.dedup();
    if points.len() < 3 {
        return points;
    }
    let cross = |o: (f32, f32), a: (f32, f32), b: (f32, f32)| {
        (a.0 - o.0) as f64 * (b.1 - o.1) as f64 - (a.1 - o.1) as f64 * (b.0 - o.0) as f64
    };
    let mut hull: Vec<(f32, f32)> = Vec::with_capacity(points.len() + 1);
    for pass in 0..2 {
        let start = hull.len();
        let iter: Box<dyn Iterator<Item = &(f32, f32)>> = if pass == 0 {
            Box::new(points.iter())
        } else {
            Box::new(points.iter().rev())
        };
        for &p in iter {
            while hull.len() >= start + 2
                && cross(hull[hull.len() - 2], hull[hull.len() - 1], p) <= 0.0
            {
                hull.pop();
            }
            hull.push(p);
        }
        hull.pop();
    }
    hull
}

/// Rotating calipers: one side of the minimum-area rectangle lies on a hull edge, so every
/// edge's direction is tried (the hull of a mask has at most 4 x its height vertices).
fn min_area_rect(hull: &[(f32, f32)]) -> Option<MinAreaRect> {
    if hull.is_empty() {
        return None;
    }
    if hull.len() < 3 {
        // Cannot happen for pixel squares; a degenerate input is a point or a segment.
        let (a, b) = (hull[0], hull[hull.len() - 1]);
        let long = ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt();
        return Some(MinAreaRect {
            long,
            short: 0.0,
            angle_deg: 0.0,
        });
    }
    let mut best: Option<(f64, f64, f64, f64)> = None; // area, side along edge, across, angle
    for i in 0..hull.len() {
        let (a, b) = (hull[i], hull[(i + 1) % hull.len()]);
        let (dx, dy) = ((b.0 - a.0) as f64, (b.1 - a.1) as f64);
        let norm = (dx * dx + dy * dy).sqrt();
        if norm == 0.0 {
            continue;
        }
        let (ux, uy) = (dx / norm, dy / norm);
        let (mut lo_u, mut hi_u, mut lo_v, mut hi_v) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &(px, py) in hull {
            let (px, py) = (px as f64 - a.0 as f64, py as f64 - a.1 as f64);
            let u = px * ux + py * uy;
            let v = -px * uy + py * ux;
            lo_u = lo_u.min(u);
            hi_u = hi_u.max(u);
            lo_v = lo_v.min(v);
            hi_v = hi_v.max(v);
        }
        let (along, across) = (hi_u - lo_u, hi_v - lo_v);
        let area = along * across;
        if best.is_none_or(|(a, ..)| area < a - 1e-9) {
            best = Some((area, along, across, uy.atan2(ux)));
        }
    }
    let (_, along, across, angle) = best?;
    let (long, short, mut angle) = if along >= across {
        (along, across, angle)
    } else {
        (across, along, angle + std::f64::consts::FRAC_PI_2)
    };
    angle = angle.to_degrees().rem_euclid(180.0);
    Some(MinAreaRect {
        long: long as f32,
        short: short as f32,
        angle_deg: angle as f32,
    })
}

/// pycocotools' `rleToString`: each count (after the second, as its difference to the count two
/// before) in 5-bit groups, low first, with a continuation bit, offset by 48.
pub fn encode_counts(counts: &[u64]) -> String {
    let mut out = String::with_capacity(counts.len() * 2);
    for (i, &count) in counts.iter().enumerate() {
        let mut x = count as i64;
        if i > 2 {
            x -= counts[i - 2] as i64;
        }
        loop {
            let mut c = (x & 0x1f) as u8;
            x >>= 5;
            let more = if c & 0x10 != 0 { x != -1 } else { x != 0 };
            if more {
                c |= 0x20;
            }
            out.push((c + 48) as char);
            if !more {
                break;
            }
        }
    }
    out
}

/// pycocotools' `rleFrString`: the counts of a compressed string; None when it is malformed
/// (a character outside the alphabet, a truncated number, or a negative count).
pub fn decode_counts(text: &str) -> Option<Vec<u64>> {
    let bytes = text.as_bytes();
    let mut counts: Vec<u64> = Vec::new();
    let mut p = 0;
    while p < bytes.len() {
        let (mut x, mut k) = (0i64, 0u32);
        loop {
            let c = bytes.get(p)?.checked_sub(48).filter(|&c| c < 64)? as i64;
            if k >= 12 {
                return None;
            }
            x |= (c & 0x1f) << (5 * k);
            p += 1;
            k += 1;
            if c & 0x20 == 0 {
                if c & 0x10 != 0 {
                    x |= -1i64 << (5 * k);
                }
                break;
            }
        }
        if counts.len() > 2 {
            x += counts[counts.len() - 2] as i64;
        }
        counts.push(u64::try_from(x).ok()?);
    }
    Some(counts)
}

/// The set pixels of COCO counts over a `width` x `height` frame, as a mask of the frame
/// window that holds them (None when the counts exceed the frame).
pub fn decode_coco_rle(counts: &[u64], width: u32, height: u32) -> Option<Mask> {
    let h = u64::from(height);
    let total = u64::from(width) * h;
    let mut runs = Vec::new();
    let (mut at, mut ones) = (0u64, false);
    for &count in counts {
        let end = at.checked_add(count).filter(|&e| e <= total)?;
        if ones && count > 0 {
            runs.push((at, end));
        }
        at = end;
        ones = !ones;
    }
    if runs.is_empty() {
        return Some(Mask::default());
    }
    let (mut x0, mut y0, mut x1, mut y1) = (u64::MAX, u64::MAX, 0, 0);
    for &(s, e) in &runs {
        let (first_col, last_col) = (s / h, (e - 1) / h);
        x0 = x0.min(first_col);
        x1 = x1.max(last_col);
        if first_col == last_col {
            y0 = y0.min(s % h);
            y1 = y1.max((e - 1) % h);
        } else {
            y0 = 0;
            y1 = h - 1;
        }
    }
    let mut mask = Mask::empty(
        x0 as u32,
        y0 as u32,
        (x1 - x0 + 1) as u32,
        (y1 - y0 + 1) as u32,
    );
    let w = mask.width as u64;
    for (s, e) in runs {
        for i in s..e {
            let (col, row) = (i / h, i % h);
            if row >= y0 && row <= y1 {
                mask.data[((row - y0) * w + col - x0) as usize] = 1;
            }
        }
    }
    Some(mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask_from(x: u32, y: u32, rows: &[&str]) -> Mask {
        let width = rows[0].len() as u32;
        Mask {
            x,
            y,
            width,
            height: rows.len() as u32,
            data: rows
                .iter()
                .flat_map(|r| r.bytes().map(|b| u8::from(b == b'#')))
                .collect(),
        }
    }

    #[test]
    fn area_and_length_of_a_rectangle_and_a_line() {
        let m = mask_from(3, 4, &["....", ".##.", ".##.", ".##."]);
        assert_eq!(m.area(), 6);
        let r = m.min_area_rect().unwrap();
        assert!(
            (r.long - 3.0).abs() < 1e-5 && (r.short - 2.0).abs() < 1e-5,
            "{r:?}"
        );
        assert!((r.angle_deg - 90.0).abs() < 1e-3, "{r:?}");
        let line = Mask {
            x: 0,
            y: 0,
            width: 20,
            height: 1,
            data: vec![1; 20],
        };
        assert_eq!(line.length(), 20.0);
        assert_eq!(Mask::empty(0, 0, 3, 3).length(), 0.0);
        assert_eq!(Mask::empty(0, 0, 3, 3).min_area_rect(), None);
    }

    /// A diagonal line of n pixels: its rectangle lies along the diagonal, its length is
    /// about n·√2 (the squares' corners add one pixel's diagonal), not the box's side n.
    #[test]
    fn a_diagonal_scratch_is_measured_along_its_direction() {
        let n = 50;
        let mut m = Mask::empty(10, 10, n, n);
        for i in 0..n as usize {
            m.data[i * n as usize + i] = 1;
        }
        let r = m.min_area_rect().unwrap();
        let expected = (n as f32 + 1.0) * std::f32::consts::SQRT_2;
        assert!((r.long - expected).abs() < 1.5, "{r:?} vs {expected}");
        assert!(r.short < 1.5, "{r:?}");
        assert!((r.angle_deg - 45.0).abs() < 1.0, "{r:?}");
    }

    /// The counts pycocotools gives for these masks (`mask.encode(np.asfortranarray(m))`), and
    /// its compressed strings.
    #[test]
    fn coco_rle_is_column_major_and_compressed_as_pycocotools() {
        // 4 x 3 frame; pixels (x=1, y=0), (x=1, y=1), (x=2, y=2).
        let m = Mask {
            x: 1,
            y: 0,
            width: 2,
            height: 3,
            data: vec![1, 0, 1, 0, 0, 1],
        };
        assert_eq!(m.coco_counts(4, 3), vec![3, 2, 3, 1, 3]);
        let text = m.to_coco_rle(4, 3);
        assert_eq!(text, "323O0", "pycocotools' string");
        assert_eq!(decode_counts(&text), Some(vec![3, 2, 3, 1, 3]));
        let back = decode_coco_rle(&[3, 2, 3, 1, 3], 4, 3).unwrap();
        assert_eq!(back, m);
        // An empty mask is one run of zeros; a full frame starts with an empty run.
        assert_eq!(Mask::default().coco_counts(4, 3), vec![12]);
        let full = Mask {
            x: 0,
            y: 0,
            width: 4,
            height: 3,
            data: vec![1; 12],
        };
        assert_eq!(full.coco_counts(4, 3), vec![0, 12]);
        // Large counts and negative differences round-trip.
        let counts = vec![1_000_000, 3, 17, 400_000, 2, 0, 99];
        assert_eq!(decode_counts(&encode_counts(&counts)), Some(counts));
        assert_eq!(decode_counts("\u{7f}"), None);
        assert_eq!(decode_counts("`"), None, "truncated");
    }

    /// pycocotools 2.0's string for a known mask, written by `mask.encode` (a 5x5 frame with a
    /// 2x2 square at (1, 1)): counts [6, 2, 3, 2, 12].
    #[test]
    fn a_string_written_by_pycocotools_decodes() {
        let m = mask_from(1, 1, &["##", "##"]);
        assert_eq!(m.coco_counts(5, 5), vec![6, 2, 3, 2, 12]);
        assert_eq!(m.to_coco_rle(5, 5), "62309");
    }

    /// The contours OpenCV's `cv2.findContours(m, cv2.RETR_EXTERNAL,
    /// cv2.CHAIN_APPROX_SIMPLE)` gives for these masks (same points, same order).
    #[test]
    fn contours_are_traced_as_opencv_traces_them() {
        let square = mask_from(10, 20, &["###", "###", "###"]);
        assert_eq!(
            square.outer_contour(),
            [(10, 20), (10, 22), (12, 22), (12, 20)]
        );
        let l = mask_from(0, 0, &["##..", "##..", "####", "####"]);
        assert_eq!(
            l.outer_contour(),
            [(0, 0), (0, 3), (3, 3), (3, 2), (2, 2), (1, 1), (1, 0)]
        );
        let ring = mask_from(0, 0, &["#####", "#####", "##.##", "#####", "#####"]);
        assert_eq!(
            ring.outer_contour(),
            [(0, 0), (0, 4), (4, 4), (4, 0)],
            "the hole is not traced"
        );
        assert_eq!(mask_from(5, 6, &["#"]).outer_contour(), [(5, 6)]);
        assert_eq!(mask_from(0, 2, &["####"]).outer_contour(), [(0, 2), (3, 2)]);
        assert_eq!(Mask::empty(0, 0, 3, 3).outer_contour(), []);
        // A diagonal: 8-connected, traced there and back.
        let diagonal = mask_from(0, 0, &["#..", ".#.", "..#"]);
        assert_eq!(diagonal.outer_contour(), [(0, 0), (2, 2)]);
    }

    #[test]
    fn the_polygon_joins_every_part() {
        let two = mask_from(0, 0, &["#....", ".....", "..###", "..###"]);
        assert_eq!(two.parts().len(), 2);
        assert_eq!(
            two.polygon(),
            [(0, 0), (2, 2), (2, 3), (4, 3), (4, 2), (2, 2)],
            "out over the shortest bridge, round the square, back"
        );
        let one = mask_from(3, 1, &["##", "##"]);
        assert_eq!(one.polygon(), one.outer_contour());
        assert_eq!(Mask::empty(0, 0, 4, 4).polygon(), []);
        // Three parts: the third is bridged from the part nearest to it, not from the first.
        let three = mask_from(0, 0, &["#.......", "........", "...#...#"]);
        let polygon = three.polygon();
        assert_eq!(polygon, [(0, 0), (3, 2), (7, 2), (3, 2)]);
        for part in three.parts() {
            for point in part.outer_contour() {
                assert!(polygon.contains(&point), "{point:?} of every part is on it");
            }
        }
    }

    #[test]
    fn the_largest_part_is_traced() {
        let two = mask_from(0, 0, &["#....", ".....", "..###", "..###"]);
        assert_eq!(two.largest_part().area(), 6);
        assert_eq!(two.outer_contour(), [(2, 2), (2, 3), (4, 3), (4, 2)]);
        // Equal parts: the first in raster order.
        let equal = mask_from(0, 0, &["#.#"]);
        assert_eq!(equal.outer_contour(), [(0, 0)]);
    }

    /// A mask touching the frame's border (its window at 0, 0) is traced along the border.
    #[test]
    fn contours_along_the_border() {
        let corner = mask_from(0, 0, &["##", "#."]);
        assert_eq!(corner.outer_contour(), [(0, 0), (0, 1), (1, 0)]);
    }

    #[test]
    fn resizing_follows_pixel_centres() {
        let m = mask_from(2, 2, &["#.", ".#"]);
        assert_eq!(
            m.resized(4, 4, 4, 4),
            mask_from(4, 4, &["##..", "##..", "..##", "..##"])
        );
        assert_eq!(m.resized(1, 1, 1, 1), mask_from(1, 1, &["#"]));
        assert_eq!(m.resized(0, 0, 2, 2), mask_from(0, 0, &["#.", ".#"]));
        assert_eq!(m.resized(0, 0, 0, 3).area(), 0);
    }

    #[test]
    fn pixels_outside_the_frame_are_left_out() {
        let m = mask_from(3, 0, &["##", "##"]);
        assert_eq!(m.coco_counts(4, 2), vec![6, 2]);
    }
}
