// SPDX-License-Identifier: MIT OR Apache-2.0
//! An anomaly map drawn as a translucent heat map: the map resized to the frame rectangle it
//! covers (bilinear, on cell centres, as `cv2.resize`), coloured with a jet ramp (blue cold,
//! red hot) and blended into the frame in place. Pure: no GStreamer.

use super::{Canvas, Rgb, mix};
use crate::frame::{Layout, Packed};

/// A map of bytes (0 cold .. 255 hot), `width` x `height` cells in row-major order, covering
/// the frame rectangle `rect` (`x_min, y_min, x_max, y_max`, frame pixels).
#[derive(Debug, Clone, Copy)]
pub struct HeatSource<'a> {
    pub width: usize,
    pub height: usize,
    pub values: &'a [u8],
    pub rect: [f64; 4],
}

/// The jet colour of `t` in [0, 255]: dark blue, blue, cyan, yellow, red, dark red.
pub fn jet(t: u8) -> Rgb {
    let t = t as f32 / 255.0;
    let channel =
        |centre: f32| (255.0 * (1.5 - (4.0 * t - centre).abs()).clamp(0.0, 1.0)).round() as u8;
    Rgb(channel(3.0), channel(2.0), channel(1.0))
}

/// For each output pixel along one axis: the two cells to interpolate and the weight of the
/// second (0..=256). Pixels outside `lo..hi` get None.
fn axis(pixels: u32, cells: usize, lo: f64, hi: f64) -> Vec<Option<(usize, usize, u32)>> {
    let scale = cells as f64 / (hi - lo);
    (0..pixels)
        .map(|p| {
            let centre = p as f64 + 0.5;
            if centre < lo || centre >= hi {
                return None;
            }
            let u = ((centre - lo) * scale - 0.5).clamp(0.0, (cells - 1) as f64);
            let i = u.floor() as usize;
            let weight = ((u - i as f64) * 256.0).round() as u32;
            Some((i, (i + 1).min(cells - 1), weight))
        })
        .collect()
}

/// The heat of every frame pixel (None outside the map's rectangle): the map resized
/// bilinearly to the frame.
pub fn resize(source: &HeatSource, width: u32, height: u32) -> Vec<Option<u8>> {
    let [x_min, y_min, x_max, y_max] = source.rect;
    let cols = axis(width, source.width, x_min, x_max);
    let rows = axis(height, source.height, y_min, y_max);
    let v = |x: usize, y: usize| source.values[y * source.width + x] as u32;
    let mut out = Vec::with_capacity(width as usize * height as usize);
    for row in &rows {
        for col in &cols {
            out.push(match (row, col) {
                (Some((y0, y1, fy)), Some((x0, x1, fx))) => {
                    let top = v(*x0, *y0) * (256 - fx) + v(*x1, *y0) * fx;
                    let bottom = v(*x0, *y1) * (256 - fx) + v(*x1, *y1) * fx;
                    Some(((top * (256 - fy) + bottom * fy + (1 << 15)) >> 16) as u8)
                }
                _ => None,
            });
        }
    }
    out
}

impl Canvas<'_> {
    /// Blends the jet colour of each pixel's heat (`heat`, one per pixel, row-major; None
    /// leaves the pixel alone) into the frame with `opacity` in [0, 1]. On YUV frames the
    /// colour is blended in Y, U and V (the encoding is affine, so this is the RGB blend);
    /// chroma takes the mean heat of its 2x2 block.
    pub fn blend_heat(&mut self, heat: &[Option<u8>], opacity: f32) {
        let (w, h) = (self.width as usize, self.height as usize);
        assert_eq!(heat.len(), w * h, "one heat value per pixel");
        let alpha = (opacity.clamp(0.0, 1.0) * 256.0).round() as u32;
        if alpha == 0 {
            return;
        }
        let lut: Vec<Rgb> = (0..=255).map(jet).collect();
        match self.format.layout() {
            Layout::Packed(Packed {
                bytes_per_pixel: bpp,
                offsets: [red, green, blue],
            }) => {
                let stride = self.strides[0];
                for y in 0..h {
                    let row = &mut self.planes[0][y * stride..];
                    for (x, px) in row[..w * bpp].chunks_exact_mut(bpp).enumerate() {
                        if let Some(t) = heat[y * w + x] {
                            let c = lut[t as usize];
                            px[red] = mix(px[red], c.0, alpha);
                            px[green] = mix(px[green], c.1, alpha);
                            px[blue] = mix(px[blue], c.2, alpha);
                        }
                    }
                }
            }
            Layout::Grey => {
                let luma: Vec<u8> = lut
                    .iter()
                    .map(|c| c.luma(0.299, 0.114).round() as u8)
                    .collect();
                self.blend_luma(heat, &luma, alpha);
            }
            Layout::Yuv(chroma) => {
                let yuv: Vec<[u8; 3]> = lut.iter().map(|&c| self.yuv.encode(c)).collect();
                let luma: Vec<u8> = yuv.iter().map(|c| c[0]).collect();
                self.blend_luma(heat, &luma, alpha);
                let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
                for cy in 0..ch {
                    for cx in 0..cw {
                        let (mut sum, mut n) = (0u32, 0u32);
                        for y in 2 * cy..(2 * cy + 2).min(h) {
                            for x in 2 * cx..(2 * cx + 2).min(w) {
                                if let Some(t) = heat[y * w + x] {
                                    sum += t as u32;
                                    n += 1;
                                }
                            }
                        }
                        if n == 0 {
                            continue;
                        }
                        let [_, u, v] = yuv[((sum + n / 2) / n) as usize];
                        let (up, vp) = (chroma.u_plane, chroma.v_plane);
                        let i = cy * self.strides[up] + chroma.u_at(cx);
                        self.planes[up][i] = mix(self.planes[up][i], u, alpha);
                        let i = cy * self.strides[vp] + chroma.v_at(cx);
                        self.planes[vp][i] = mix(self.planes[vp][i], v, alpha);
                    }
                }
            }
        }
    }

    fn blend_luma(&mut self, heat: &[Option<u8>], luma: &[u8], alpha: u32) {
        let (w, stride) = (self.width as usize, self.strides[0]);
        for (y, heat_row) in heat.chunks_exact(w).enumerate() {
            let row = &mut self.planes[0][y * stride..y * stride + w];
            for (px, t) in row.iter_mut().zip(heat_row) {
                if let Some(t) = t {
                    *px = mix(*px, luma[*t as usize], alpha);
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

    #[test]
    fn jet_runs_from_blue_to_red() {
        assert_eq!(jet(0), Rgb(0, 0, 128));
        assert_eq!(jet(255), Rgb(128, 0, 0));
        let mid = jet(128);
        assert!(mid.1 == 255 && mid.0 > 100 && mid.2 > 100, "{mid:?}");
    }

    #[test]
    fn resize_follows_cell_centres_and_the_rectangle() {
        // Two cells over 4 pixels: 0, 0.25, 0.75, 1 of the way (cv2.resize's half-pixel rule).
        let values = [0u8, 200];
        let source = HeatSource {
            width: 2,
            height: 1,
            values: &values,
            rect: [0.0, 0.0, 4.0, 1.0],
        };
        let got: Vec<u8> = resize(&source, 4, 1)
            .into_iter()
            .map(Option::unwrap)
            .collect();
        assert_eq!(got, [0, 50, 150, 200]);
        // A rectangle over half the frame: the other half gets no heat.
        let half = HeatSource {
            rect: [2.0, 0.0, 4.0, 1.0],
            ..source
        };
        assert_eq!(resize(&half, 4, 1), [None, None, Some(0), Some(200)]);
    }

    #[test]
    fn blending_keeps_cold_free_pixels_and_tints_hot_ones() {
        let mut data = vec![100u8; 2 * 3];
        let mut c = Canvas::new(
            2,
            1,
            PixelFormat::RGB,
            YuvEncoding::default(),
            [&mut data, &mut [], &mut []],
            [6, 0, 0],
        )
        .unwrap();
        c.blend_heat(&[None, Some(255)], 0.5);
        assert_eq!(&data[..3], &[100, 100, 100]);
        assert_eq!(&data[3..], &[114, 50, 50]);
        // NV12: luma per pixel, chroma from the block's mean heat.
        let (mut y, mut uv) = (vec![128u8; 4], vec![128u8; 2]);
        let mut c = Canvas::new(
            2,
            2,
            PixelFormat::Nv12,
            YuvEncoding::default(),
            [&mut y, &mut uv, &mut []],
            [2, 2, 0],
        )
        .unwrap();
        c.blend_heat(&[Some(255); 4], 1.0);
        let red = YuvEncoding::default().encode(jet(255));
        assert_eq!(y, [red[0]; 4]);
        assert_eq!(uv, [red[1], red[2]]);
    }
}
