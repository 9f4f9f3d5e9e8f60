// SPDX-License-Identifier: MIT OR Apache-2.0
//! YUV to RGB: the constants of a matrix and range, and their tables for 8-bit samples.

/// YUV to RGB conversion constants (a matrix and a range).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct YuvMatrix {
    y_offset: f32,
    y_scale: f32,
    c_scale: f32,
    r_from_v: f32,
    g_from_u: f32,
    g_from_v: f32,
    b_from_u: f32,
}

impl YuvMatrix {
    /// From the luma coefficients Kr, Kb (0.299/0.114 for BT.601, 0.2126/0.0722 for BT.709).
    pub fn new(kr: f32, kb: f32, full_range: bool) -> Self {
        let kg = 1.0 - kr - kb;
        let (y_offset, y_scale, c_scale) = if full_range {
            (0.0, 1.0, 1.0)
        } else {
            (16.0, 255.0 / 219.0, 255.0 / 224.0)
        };
        Self {
            y_offset,
            y_scale,
            c_scale,
            r_from_v: 2.0 * (1.0 - kr),
            g_from_u: -2.0 * kb * (1.0 - kb) / kg,
            g_from_v: -2.0 * kr * (1.0 - kr) / kg,
            b_from_u: 2.0 * (1.0 - kb),
        }
    }

    pub fn bt601() -> Self {
        Self::new(0.299, 0.114, false)
    }

    pub fn bt709() -> Self {
        Self::new(0.2126, 0.0722, false)
    }

    /// The constants [`YuvMatrix::rgb`] computes with, for vectorised copies of it that must
    /// give its bits: luma offset and scale, chroma scale, then R from V, G from U, G from V
    /// and B from U.
    pub fn constants(self) -> [f32; 7] {
        [
            self.y_offset,
            self.y_scale,
            self.c_scale,
            self.r_from_v,
            self.g_from_u,
            self.g_from_v,
            self.b_from_u,
        ]
    }

    /// RGB in [0, 255] of one YUV sample.
    #[inline(always)]
    pub fn rgb(self, y: f32, u: f32, v: f32) -> [f32; 3] {
        let y = (y - self.y_offset) * self.y_scale;
        let (u, v) = ((u - 128.0) * self.c_scale, (v - 128.0) * self.c_scale);
        [
            (y + self.r_from_v * v).clamp(0.0, 255.0),
            (y + self.g_from_u * u + self.g_from_v * v).clamp(0.0, 255.0),
            (y + self.b_from_u * u).clamp(0.0, 255.0),
        ]
    }
}

/// The per-sample terms of [`YuvMatrix::rgb`] tabulated for 8-bit samples: the same f32
/// operations in the same order, so [`YuvTables::rgb`] equals `YuvMatrix::rgb` bit for bit.
#[derive(Debug, Clone)]
pub struct YuvTables {
    y: [f32; 256],
    r_from_v: [f32; 256],
    g_from_u: [f32; 256],
    g_from_v: [f32; 256],
    b_from_u: [f32; 256],
}

impl YuvMatrix {
    pub fn tables(self) -> YuvTables {
        let table = |f: &dyn Fn(f32) -> f32| std::array::from_fn(|i| f(i as f32));
        let chroma = |c: f32| (c - 128.0) * self.c_scale;
        YuvTables {
            y: table(&|y| (y - self.y_offset) * self.y_scale),
            r_from_v: table(&|v| self.r_from_v * chroma(v)),
            g_from_u: table(&|u| self.g_from_u * chroma(u)),
            g_from_v: table(&|v| self.g_from_v * chroma(v)),
            b_from_u: table(&|u| self.b_from_u * chroma(u)),
        }
    }
}

/// A value of [`YuvMatrix::rgb`] (in [0, 255]) rounded to a byte, half away from zero as
/// `f32::round`: the integer part and the fraction are exact in f32 below 2^24.
#[inline(always)]
pub fn round_u8(v: f32) -> u8 {
    let whole = v as u32;
    (whole + ((v - whole as f32) >= 0.5) as u32).min(255) as u8
}

impl YuvTables {
    /// RGB in [0, 255] of one YUV sample, as [`YuvMatrix::rgb`].
    #[inline(always)]
    pub fn rgb(&self, y: u8, u: u8, v: u8) -> [f32; 3] {
        let y = self.y[y as usize];
        [
            (y + self.r_from_v[v as usize]).clamp(0.0, 255.0),
            (y + self.g_from_u[u as usize] + self.g_from_v[v as usize]).clamp(0.0, 255.0),
            (y + self.b_from_u[u as usize]).clamp(0.0, 255.0),
        ]
    }
}

impl Default for YuvMatrix {
    fn default() -> Self {
        Self::bt601()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuv_tables_equal_the_matrix_bit_for_bit() {
        for (matrix, step) in [
            (YuvMatrix::bt709(), 1),
            (YuvMatrix::bt601(), 3),
            (YuvMatrix::new(0.299, 0.114, true), 5),
        ] {
            let tables = matrix.tables();
            for y in (0..=255u8).step_by(step) {
                for u in 0..=255u8 {
                    for v in 0..=255u8 {
                        let want = matrix.rgb(y as f32, u as f32, v as f32).map(f32::to_bits);
                        assert_eq!(tables.rgb(y, u, v).map(f32::to_bits), want, "{y} {u} {v}");
                        let rounded = tables.rgb(y, u, v).map(round_u8);
                        let want = matrix
                            .rgb(y as f32, u as f32, v as f32)
                            .map(|c| c.round().clamp(0.0, 255.0) as u8);
                        assert_eq!(rounded, want, "{y} {u} {v}");
                    }
                }
            }
        }
    }
}
