// SPDX-License-Identifier: MIT OR Apache-2.0
//! A segmentation mask drawn in place: its pixels filled with a colour at an opacity, its
//! outline (the mask's pixels within `outline` pixels of its edge) opaque. The work stays in
//! the mask's window (its box): the one allocation is a weight per pixel of the window, never
//! a frame-sized buffer. Pure: no GStreamer.

use super::{Canvas, Rgb, mix};
use crate::analysis::mask::Mask;
use crate::frame::{Layout, Packed};

/// How masks are drawn: the fill's opacity (0 = outline only, 1 = opaque) and the outline's
/// width in pixels (0 = no outline).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MaskStyle {
    pub opacity: f32,
    pub outline: i64,
}

/// The opacity (0..=256) each pixel of the mask's window is drawn with: 0 where the mask is
/// unset, 256 on the outline (set pixels with an unset pixel, or the window's edge, within
/// `outline` pixels: the set pixels an erosion by a `2·outline + 1` square removes), `fill`
/// elsewhere. The erosion is separable, so this costs the window's area whatever the width.
pub fn weights(mask: &Mask, fill: u32, outline: i64) -> Vec<u16> {
    let (w, h) = (mask.width as usize, mask.height as usize);
    let fill = fill.min(256) as u16;
    if outline <= 0 {
        return mask
            .data
            .iter()
            .map(|&v| if v != 0 { fill } else { 0 })
            .collect();
    }
    let t = outline as usize;
    let span = 2 * t + 1;
    // Horizontal pass: whether the 2t+1 pixels centred on each one are all set.
    let mut across = vec![false; w * h];
    for (row, out) in mask.data.chunks_exact(w).zip(across.chunks_exact_mut(w)) {
        let mut run = 0usize;
        for (c, &v) in row.iter().enumerate() {
            run = if v != 0 { run + 1 } else { 0 };
            // The window centred on c - t ends at c.
            if c >= t && run >= span {
                out[c - t] = true;
            }
        }
    }
    // Vertical pass over the horizontal one: column runs.
    let mut runs = vec![0usize; w];
    let mut out: Vec<u16> = mask
        .data
        .iter()
        .map(|&v| if v != 0 { 256 } else { 0 })
        .collect();
    for r in 0..h {
        for c in 0..w {
            runs[c] = if across[r * w + c] { runs[c] + 1 } else { 0 };
            if r >= t && runs[c] >= span {
                out[(r - t) * w + c] = fill;
            }
        }
    }
    out
}

impl Canvas<'_> {
    /// Draws `mask` (frame coordinates, clipped to the frame) in `colour`: each pixel blended
    /// with its [`weights`]. On YUV frames luma is blended per pixel and each chroma sample
    /// with the mean weight of its 2x2 block, so that edges are not painted beyond the mask.
    /// A mask whose data does not fill its window is not drawn.
    pub fn draw_mask(&mut self, mask: &Mask, colour: Rgb, style: MaskStyle) {
        let (mw, mh) = (mask.width as usize, mask.height as usize);
        if mask.data.len() != mw * mh || mw == 0 {
            return;
        }
        let (fw, fh) = (self.width as usize, self.height as usize);
        let (x0, y0) = (mask.x as usize, mask.y as usize);
        let (x1, y1) = ((x0 + mw).min(fw), (y0 + mh).min(fh));
        if x0 >= x1 || y0 >= y1 {
            return;
        }
        let fill = (style.opacity.clamp(0.0, 1.0) * 256.0).round() as u32;
        let weights = weights(mask, fill, style.outline);
        let weight = |x: usize, y: usize| weights[(y - y0) * mw + x - x0] as u32;
        match self.format.layout() {
            Layout::Packed(Packed {
                bytes_per_pixel: bpp,
                offsets: [red, green, blue],
            }) => {
                let stride = self.strides[0];
                for y in y0..y1 {
                    let row = &mut self.planes[0][y * stride..];
                    let pixels = row[x0 * bpp..x1 * bpp].chunks_exact_mut(bpp);
                    for (x, px) in (x0..x1).zip(pixels) {
                        let a = weight(x, y);
                        if a != 0 {
                            px[red] = mix(px[red], colour.0, a);
                            px[green] = mix(px[green], colour.1, a);
                            px[blue] = mix(px[blue], colour.2, a);
                        }
                    }
                }
            }
            Layout::Grey => {
                let luma = colour.luma(0.299, 0.114).round() as u8;
                self.blend_window(&weight, (x0, x1), (y0, y1), luma);
            }
            Layout::Yuv(chroma) => {
                let [luma, u, v] = self.yuv.encode(colour);
                self.blend_window(&weight, (x0, x1), (y0, y1), luma);
                for cy in y0 / 2..y1.div_ceil(2) {
                    let rows = 2 * cy..(2 * cy + 2).min(fh);
                    for cx in x0 / 2..x1.div_ceil(2) {
                        let cols = 2 * cx..(2 * cx + 2).min(fw);
                        let pixels = (rows.len() * cols.len()) as u32;
                        let mut sum = 0;
                        for y in rows.clone().filter(|y| (y0..y1).contains(y)) {
                            for x in cols.clone().filter(|x| (x0..x1).contains(x)) {
                                sum += weight(x, y);
                            }
                        }
                        let a = (sum + pixels / 2) / pixels;
                        if a == 0 {
                            continue;
                        }
                        let (up, vp) = (chroma.u_plane, chroma.v_plane);
                        let i = cy * self.strides[up] + chroma.u_at(cx);
                        self.planes[up][i] = mix(self.planes[up][i], u, a);
                        let i = cy * self.strides[vp] + chroma.v_at(cx);
                        self.planes[vp][i] = mix(self.planes[vp][i], v, a);
                    }
                }
            }
        }
    }

    /// Blends `value` into plane 0 (one byte a pixel) over `[x0, x1) x [y0, y1)` with the
    /// weight of each pixel.
    fn blend_window(
        &mut self,
        weight: &dyn Fn(usize, usize) -> u32,
        (x0, x1): (usize, usize),
        (y0, y1): (usize, usize),
        value: u8,
    ) {
        let stride = self.strides[0];
        for y in y0..y1 {
            let row = &mut self.planes[0][y * stride..];
            for (x, px) in (x0..x1).zip(&mut row[x0..x1]) {
                let a = weight(x, y);
                if a != 0 {
                    *px = mix(*px, value, a);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::draw::YuvEncoding;
    use crate::frame::PixelFormat;

    fn mask_from(x: u32, y: u32, rows: &[&str]) -> Mask {
        Mask {
            x,
            y,
            width: rows[0].len() as u32,
            height: rows.len() as u32,
            data: rows
                .iter()
                .flat_map(|r| r.bytes().map(|b| u8::from(b == b'#')))
                .collect(),
        }
    }

    /// The weights as characters: '.' unset, 'o' outline, 'f' fill.
    fn picture(mask: &Mask, outline: i64) -> Vec<String> {
        weights(mask, 100, outline)
            .chunks_exact(mask.width as usize)
            .map(|row| {
                row.iter()
                    .map(|&w| match w {
                        0 => '.',
                        256 => 'o',
                        _ => 'f',
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn the_outline_is_the_edge_of_the_mask_and_of_its_window() {
        let square = mask_from(0, 0, &["#####", "#####", "#####", "#####", "#####"]);
        assert_eq!(
            picture(&square, 1),
            ["ooooo", "offfo", "offfo", "offfo", "ooooo"]
        );
        assert_eq!(
            picture(&square, 2),
            ["ooooo", "ooooo", "oofoo", "ooooo", "ooooo"]
        );
        assert_eq!(picture(&square, 0), ["fffff"; 5], "no outline");
        let l = mask_from(
            0,
            0,
            &["###...", "###...", "######", "######", "######", "......"],
        );
        assert_eq!(
            picture(&l, 1),
            ["ooo...", "ofo...", "ofoooo", "offffo", "oooooo", "......"]
        );
        let ring = mask_from(0, 0, &["#####", "#####", "##.##", "#####", "#####"]);
        assert_eq!(
            picture(&ring, 1),
            ["ooooo", "ooooo", "oo.oo", "ooooo", "ooooo"]
        );
    }

    /// A 6x6 frame of grey 100 and a 4x4 square mask at (1, 1): the ring of 12 pixels is
    /// opaque red, the 2x2 inside half red, everything else untouched.
    fn square() -> Mask {
        mask_from(1, 1, &["####", "####", "####", "####"])
    }

    const RED: Rgb = Rgb(255, 0, 0);
    const HALF: MaskStyle = MaskStyle {
        opacity: 0.5,
        outline: 1,
    };

    /// Whether (x, y) is on the ring, inside it, or outside the mask.
    fn place(x: usize, y: usize) -> u8 {
        let inside = |lo, hi, v| (lo..hi).contains(&v);
        if inside(2, 4, x) && inside(2, 4, y) {
            1
        } else if inside(1, 5, x) && inside(1, 5, y) {
            2
        } else {
            0
        }
    }

    #[test]
    fn packed_formats_get_the_fill_and_the_outline() {
        for (format, bpp, [r, g, b]) in [
            (PixelFormat::RGB, 3, [0, 1, 2]),
            (PixelFormat::BGRA, 4, [2, 1, 0]),
            (
                PixelFormat::Packed {
                    bytes_per_pixel: 4,
                    red: 1,
                    green: 2,
                    blue: 3,
                },
                4,
                [1, 2, 3],
            ),
        ] {
            let stride = 6 * bpp + 5;
            let mut data = vec![100u8; stride * 6];
            let mut c = Canvas::new(
                6,
                6,
                format,
                YuvEncoding::default(),
                [&mut data, &mut [], &mut []],
                [stride, 0, 0],
            )
            .unwrap();
            c.draw_mask(&square(), RED, HALF);
            for y in 0..6 {
                for x in 0..6 {
                    let px = &data[y * stride + x * bpp..];
                    let want = match place(x, y) {
                        0 => [100, 100, 100],
                        1 => [178, 50, 50],
                        _ => [255, 0, 0],
                    };
                    assert_eq!([px[r], px[g], px[b]], want, "{format:?} at ({x}, {y})");
                }
            }
            if bpp == 4 {
                let spare = 6 - r - g - b;
                assert_eq!(data[stride + bpp + spare], 100, "padding byte kept");
            }
        }
    }

    #[test]
    fn gray8_gets_the_luma() {
        let mut data = vec![100u8; 36];
        let mut c = Canvas::new(
            6,
            6,
            PixelFormat::Gray8,
            YuvEncoding::default(),
            [&mut data, &mut [], &mut []],
            [6, 0, 0],
        )
        .unwrap();
        c.draw_mask(&square(), RED, HALF);
        for y in 0..6 {
            for x in 0..6 {
                let want = [100, 88, 76][place(x, y) as usize];
                assert_eq!(data[y * 6 + x], want, "({x}, {y})");
            }
        }
    }

    /// NV12 and I420: luma per pixel; chroma of the inner 2x2 block (all fill) at half, of
    /// the corner blocks (one outline pixel of four) at a quarter, of the edge blocks (two
    /// outline pixels) at half.
    #[test]
    fn yuv_formats_blend_luma_per_pixel_and_chroma_per_block() {
        let enc = YuvEncoding::default();
        let [ry, ru, rv] = enc.encode(RED);
        for format in [PixelFormat::Nv12, PixelFormat::I420] {
            let (mut y, mut u, mut v) = (vec![128u8; 36], vec![128u8; 18], vec![128u8; 9]);
            let (planes, strides): ([&mut [u8]; 3], _) = if format == PixelFormat::Nv12 {
                ([&mut y, &mut u[..], &mut []], [6, 6, 0])
            } else {
                ([&mut y, &mut u[..9], &mut v], [6, 3, 3])
            };
            let mut c = Canvas::new(6, 6, format, enc, planes, strides).unwrap();
            c.draw_mask(&square(), RED, HALF);
            for py in 0..6 {
                for px in 0..6 {
                    let want = match place(px, py) {
                        0 => 128,
                        1 => mix(128, ry, 128),
                        _ => ry,
                    };
                    assert_eq!(y[py * 6 + px], want, "{format:?} luma at ({px}, {py})");
                }
            }
            let chroma = |cx: usize, cy: usize| {
                if format == PixelFormat::Nv12 {
                    (u[cy * 6 + 2 * cx], u[cy * 6 + 2 * cx + 1])
                } else {
                    (u[cy * 3 + cx], v[cy * 3 + cx])
                }
            };
            // Block (1, 1) holds (2..4, 2..4): the fill. Block (0, 0): one outline pixel.
            // Block (1, 0): two outline pixels, (2, 1) and (3, 1).
            assert_eq!(chroma(1, 1), (mix(128, ru, 128), mix(128, rv, 128)));
            assert_eq!(chroma(0, 0), (mix(128, ru, 64), mix(128, rv, 64)));
            assert_eq!(chroma(1, 0), (mix(128, ru, 128), mix(128, rv, 128)));
        }
    }

    #[test]
    fn masks_are_clipped_to_the_frame_and_opacity_zero_is_the_outline_only() {
        let mut data = vec![0u8; 16];
        let mut c = Canvas::new(
            4,
            4,
            PixelFormat::Gray8,
            YuvEncoding::default(),
            [&mut data, &mut [], &mut []],
            [4, 0, 0],
        )
        .unwrap();
        // A 5x5 square from (1, 1): its right and bottom edges lie outside the frame.
        let outline_only = MaskStyle {
            opacity: 0.0,
            outline: 1,
        };
        let big = mask_from(1, 1, &["#####"; 5]);
        c.draw_mask(&big, Rgb::WHITE, outline_only);
        assert_eq!(
            data,
            [0, 0, 0, 0, 0, 255, 255, 255, 0, 255, 0, 0, 0, 255, 0, 0],
            "the left and top edges; the inside untouched"
        );
        // Entirely outside, and a mask whose data does not fill its window: nothing.
        let mut c = Canvas::new(
            4,
            4,
            PixelFormat::Gray8,
            YuvEncoding::default(),
            [&mut data, &mut [], &mut []],
            [4, 0, 0],
        )
        .unwrap();
        c.draw_mask(&mask_from(9, 0, &["#"]), Rgb::WHITE, HALF);
        let broken = Mask {
            data: vec![1; 3],
            ..mask_from(0, 0, &["##", "##"])
        };
        c.draw_mask(&broken, Rgb::WHITE, HALF);
        assert_eq!(data.iter().filter(|&&p| p == 255).count(), 5);
    }
}
