// SPDX-License-Identifier: MIT OR Apache-2.0
//! Frames as the pure modules see them, free of GStreamer: how a frame's bytes hold its
//! pixels ([`PixelFormat`]), its planes ([`FrameView`]), YUV to RGB ([`YuvMatrix`],
//! [`YuvTables`]), and the one per-format dispatch ([`Layout`]) that preprocessing
//! ([`crate::analysis::letterbox`], [`crate::analysis::tiles`]), drawing and heat maps
//! ([`crate::draw`]) and capture ([`crate::capture`]) share.
//!
//! The formats differ in three ways only, each said once here:
//! - which planes there are and how they are subsampled ([`PixelFormat::planes`]), from which
//!   the bytes a frame needs ([`PixelFormat::plane_extents`], [`PixelFormat::check_planes`])
//!   and the planes of a crop ([`crop`]) follow;
//! - where a packed pixel keeps its red, green and blue bytes ([`Packed`]);
//! - where a YUV frame keeps its chroma: NV12 interleaves U and V in one plane, I420 has a
//!   plane for each ([`Chroma`]).
//!
//! Code matches on [`PixelFormat::layout`] once per frame or row and runs a loop written for
//! that layout: no per-pixel dispatch.

mod yuv;

pub use yuv::{YuvMatrix, YuvTables, round_u8};

/// How a frame's bytes hold its pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    /// One plane of `bytes_per_pixel`-byte pixels with the given byte offsets of R, G and B.
    Packed {
        bytes_per_pixel: u8,
        red: u8,
        green: u8,
        blue: u8,
    },
    Gray8,
    /// Y plane, then one plane of interleaved U, V at half resolution.
    Nv12,
    /// Y, U and V planes, chroma at half resolution.
    I420,
}

impl PixelFormat {
    pub const RGB: Self = Self::Packed {
        bytes_per_pixel: 3,
        red: 0,
        green: 1,
        blue: 2,
    };
    pub const BGR: Self = Self::Packed {
        bytes_per_pixel: 3,
        red: 2,
        green: 1,
        blue: 0,
    };
    pub const RGBA: Self = Self::Packed {
        bytes_per_pixel: 4,
        red: 0,
        green: 1,
        blue: 2,
    };
    pub const BGRA: Self = Self::Packed {
        bytes_per_pixel: 4,
        red: 2,
        green: 1,
        blue: 0,
    };

    /// The planes of the format, in order; `None` for planes it does not have. Everything
    /// else that depends on the format (plane extents, crops, chroma addressing) is derived
    /// from this table and from [`PixelFormat::layout`].
    #[inline]
    pub fn planes(self) -> [Option<Plane>; 3] {
        let plane = |bytes_per_sample, subsampling| {
            Some(Plane {
                bytes_per_sample,
                subsampling,
            })
        };
        match self {
            PixelFormat::Packed {
                bytes_per_pixel, ..
            } => [plane(bytes_per_pixel as usize, 1), None, None],
            PixelFormat::Gray8 => [plane(1, 1), None, None],
            PixelFormat::Nv12 => [plane(1, 1), plane(2, 2), None],
            PixelFormat::I420 => [plane(1, 1), plane(1, 2), plane(1, 2)],
        }
    }

    /// How code that reads or writes pixels takes this format: the one per-format dispatch
    /// (preprocessing, drawing, heat maps and capture match on it, once per frame or row,
    /// never per pixel).
    #[inline]
    pub fn layout(self) -> Layout {
        match self {
            PixelFormat::Packed {
                bytes_per_pixel,
                red,
                green,
                blue,
            } => Layout::Packed(Packed {
                bytes_per_pixel: bytes_per_pixel as usize,
                offsets: [red as usize, green as usize, blue as usize],
            }),
            PixelFormat::Gray8 => Layout::Grey,
            PixelFormat::Nv12 => Layout::Yuv(Chroma {
                u_plane: 1,
                v_plane: 1,
                step: 2,
                v_offset: 1,
            }),
            PixelFormat::I420 => Layout::Yuv(Chroma {
                u_plane: 1,
                v_plane: 2,
                step: 1,
                v_offset: 0,
            }),
        }
    }

    /// Bytes each plane needs for a `width` x `height` frame: (bytes per row, rows); (0, 0)
    /// for planes the format does not have. An array, so checking a frame allocates nothing.
    pub fn plane_extents(self, width: usize, height: usize) -> [(usize, usize); 3] {
        self.planes().map(|plane| match plane {
            Some(p) => (
                width.div_ceil(p.subsampling) * p.bytes_per_sample,
                height.div_ceil(p.subsampling),
            ),
            None => (0, 0),
        })
    }

    /// Checks that planes of the given lengths and strides hold a `width` x `height` frame,
    /// so that code reading or writing them never goes out of bounds.
    pub fn check_planes(
        self,
        width: u32,
        height: u32,
        lengths: [usize; 3],
        strides: [usize; 3],
    ) -> Result<(), PlaneTooSmall> {
        let extents = self.plane_extents(width as usize, height as usize);
        for (plane, &(row_bytes, rows)) in extents.iter().enumerate() {
            let (len, stride) = (lengths[plane], strides[plane]);
            let needed = if rows == 0 {
                0
            } else {
                (rows - 1) * stride + row_bytes
            };
            if len < needed || (rows > 1 && stride < row_bytes) {
                return Err(PlaneTooSmall {
                    plane,
                    len,
                    needed,
                    stride,
                });
            }
        }
        Ok(())
    }
}

/// One plane of a format: bytes per sample and the subsampling of both axes (1 or 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plane {
    pub bytes_per_sample: usize,
    pub subsampling: usize,
}

/// A plane holds fewer bytes than the frame needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlaneTooSmall {
    pub plane: usize,
    pub len: usize,
    pub needed: usize,
    pub stride: usize,
}

/// How pixels are read and written, per kind of format: see [`PixelFormat::layout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One plane of pixels with red, green and blue at byte offsets.
    Packed(Packed),
    /// One plane of 8-bit luma.
    Grey,
    /// A full-resolution Y plane (plane 0) and chroma at half resolution in both axes.
    Yuv(Chroma),
}

/// A packed format's pixel size and the byte offsets of R, G and B in a pixel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packed {
    pub bytes_per_pixel: usize,
    pub offsets: [usize; 3],
}

/// Where a YUV frame keeps chroma sample `cx` (a chroma column) of a chroma row: U at
/// `cx * step` in plane `u_plane`, V at `cx * step + v_offset` in plane `v_plane`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chroma {
    pub u_plane: usize,
    pub v_plane: usize,
    pub step: usize,
    pub v_offset: usize,
}

impl Chroma {
    /// Index of U of chroma column `cx` in its row.
    #[inline(always)]
    pub fn u_at(self, cx: usize) -> usize {
        cx * self.step
    }

    /// Index of V of chroma column `cx` in its row.
    #[inline(always)]
    pub fn v_at(self, cx: usize) -> usize {
        cx * self.step + self.v_offset
    }

    /// Whether U and V share one plane (NV12).
    #[inline(always)]
    pub fn interleaved(self) -> bool {
        self.u_plane == self.v_plane
    }
}

/// A frame's planes as the element mapped them: `planes[i]` starts at the plane's first
/// pixel and rows are `strides[i]` bytes apart. Unused planes are empty.
#[derive(Debug, Clone, Copy)]
pub struct FrameView<'a> {
    pub width: u32,
    pub height: u32,
    pub planes: [&'a [u8]; 3],
    pub strides: [usize; 3],
}

impl<'a> FrameView<'a> {
    /// Row `y` of `plane`, from its first byte to the end of the plane's data.
    #[inline(always)]
    pub fn row(&self, plane: usize, y: usize) -> &'a [u8] {
        &self.planes[plane][y * self.strides[plane]..]
    }
}

/// The part of a frame at (x, y), `width` x `height`, sharing its planes (no copy). The corner
/// must be even for the YUV formats (chroma-aligned); the caller keeps the crop inside the
/// frame (a crop that starts past a plane's end gets an empty plane, which a check rejects).
pub fn crop<'a>(
    frame: &FrameView<'a>,
    format: PixelFormat,
    x: u32,
    y: u32,
    width: u32,
    height: u32,
) -> FrameView<'a> {
    let (x, y) = (x as usize, y as usize);
    let mut planes: [&'a [u8]; 3] = [&[], &[], &[]];
    for (i, plane) in format.planes().into_iter().enumerate() {
        if let Some(p) = plane {
            let start =
                (y / p.subsampling) * frame.strides[i] + (x / p.subsampling) * p.bytes_per_sample;
            planes[i] = frame.planes[i].get(start..).unwrap_or(&[]);
        }
    }
    FrameView {
        width,
        height,
        planes,
        strides: frame.strides,
    }
}

/// Row `y` of the frame from column `x0` on, as RGB bytes (`out.len() / 3` pixels; grey
/// replicated); YUV frames through `tables` (chroma of each pixel's 2x2 block, converted and
/// rounded as [`YuvMatrix::rgb`] then `f32::round` would). `Err(plane)` when a plane is too
/// short for the row.
#[inline]
pub fn rgb_row(
    frame: &FrameView,
    format: PixelFormat,
    tables: Option<&YuvTables>,
    y: usize,
    x0: usize,
    out: &mut [u8],
) -> Result<(), usize> {
    let n = out.len() / 3;
    let row = |plane: usize, y: usize, len: usize| -> Result<&[u8], usize> {
        let start = y * frame.strides[plane];
        frame.planes[plane].get(start..start + len).ok_or(plane)
    };
    match format.layout() {
        Layout::Packed(Packed {
            bytes_per_pixel: bpp,
            offsets: [r, g, b],
        }) => {
            let src = &row(0, y, (x0 + n) * bpp)?[x0 * bpp..];
            for (px, p) in out.chunks_exact_mut(3).zip(src.chunks_exact(bpp)) {
                px[0] = p[r];
                px[1] = p[g];
                px[2] = p[b];
            }
        }
        Layout::Grey => {
            let src = &row(0, y, x0 + n)?[x0..];
            for (px, &v) in out.chunks_exact_mut(3).zip(src) {
                px.fill(v);
            }
        }
        Layout::Yuv(chroma) => {
            let tables = tables.expect("tables are made for YUV frames");
            let luma = &row(0, y, x0 + n)?[x0..];
            let chroma_len = (x0 + n).div_ceil(2) * chroma.step;
            let u = row(chroma.u_plane, y / 2, chroma_len)?;
            let v = row(chroma.v_plane, y / 2, chroma_len)?;
            for (i, (px, &l)) in out.chunks_exact_mut(3).zip(luma).enumerate() {
                let c = (x0 + i) / 2;
                let rgb = tables.rgb(l, u[chroma.u_at(c)], v[chroma.v_at(c)]);
                px[0] = round_u8(rgb[0]);
                px[1] = round_u8(rgb[1]);
                px[2] = round_u8(rgb[2]);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extents_follow_the_plane_table() {
        assert_eq!(
            PixelFormat::RGB.plane_extents(5, 3),
            [(15, 3), (0, 0), (0, 0)]
        );
        assert_eq!(
            PixelFormat::BGRA.plane_extents(5, 3),
            [(20, 3), (0, 0), (0, 0)]
        );
        assert_eq!(
            PixelFormat::Gray8.plane_extents(5, 3),
            [(5, 3), (0, 0), (0, 0)]
        );
        assert_eq!(
            PixelFormat::Nv12.plane_extents(5, 3),
            [(5, 3), (6, 2), (0, 0)]
        );
        assert_eq!(
            PixelFormat::I420.plane_extents(5, 3),
            [(5, 3), (3, 2), (3, 2)]
        );
    }

    #[test]
    fn short_planes_and_strides_are_refused() {
        let nv12 = PixelFormat::Nv12;
        assert!(nv12.check_planes(4, 4, [16, 8, 0], [4, 4, 0]).is_ok());
        assert_eq!(
            nv12.check_planes(4, 4, [16, 7, 0], [4, 4, 0]),
            Err(PlaneTooSmall {
                plane: 1,
                len: 7,
                needed: 8,
                stride: 4
            })
        );
        // A stride shorter than a row is refused even when the bytes would suffice.
        assert!(
            PixelFormat::RGB
                .check_planes(4, 2, [100, 0, 0], [11, 0, 0])
                .is_err()
        );
    }

    #[test]
    fn chroma_addressing_of_nv12_and_i420() {
        let Layout::Yuv(nv12) = PixelFormat::Nv12.layout() else {
            panic!("NV12 is YUV");
        };
        assert_eq!(
            (nv12.u_at(3), nv12.v_at(3), nv12.interleaved()),
            (6, 7, true)
        );
        let Layout::Yuv(i420) = PixelFormat::I420.layout() else {
            panic!("I420 is YUV");
        };
        assert_eq!(
            (i420.u_at(3), i420.v_at(3), i420.interleaved()),
            (3, 3, false)
        );
    }

    #[test]
    fn rgb_rows_of_every_layout() {
        let mut out = [0u8; 6];
        let bgra = [1u8, 2, 3, 4, 5, 6, 7, 8];
        let frame = FrameView {
            width: 2,
            height: 1,
            planes: [&bgra, &[], &[]],
            strides: [8, 0, 0],
        };
        rgb_row(&frame, PixelFormat::BGRA, None, 0, 0, &mut out).unwrap();
        assert_eq!(out, [3, 2, 1, 7, 6, 5]);
        let grey = [9u8, 10];
        let frame = FrameView {
            planes: [&grey, &[], &[]],
            strides: [2, 0, 0],
            ..frame
        };
        rgb_row(&frame, PixelFormat::Gray8, None, 0, 0, &mut out).unwrap();
        assert_eq!(out, [9, 9, 9, 10, 10, 10]);
        // BT.601 limited-range white and red, NV12 and I420 alike.
        let tables = YuvMatrix::bt601().tables();
        let nv12 = FrameView {
            width: 2,
            height: 2,
            planes: [&[235, 235, 235, 235], &[128, 128], &[]],
            strides: [2, 2, 0],
        };
        rgb_row(&nv12, PixelFormat::Nv12, Some(&tables), 1, 0, &mut out).unwrap();
        assert_eq!(out, [255; 6]);
        let i420 = FrameView {
            planes: [&[81; 4], &[90], &[240]],
            strides: [2, 1, 1],
            ..nv12
        };
        rgb_row(&i420, PixelFormat::I420, Some(&tables), 0, 0, &mut out).unwrap();
        assert!(out[0] > 250 && out[1] < 5 && out[2] < 5, "{out:?}");
        // A short chroma plane is named.
        let short = FrameView {
            planes: [&[81; 4], &[], &[]],
            ..nv12
        };
        assert_eq!(
            rgb_row(&short, PixelFormat::Nv12, Some(&tables), 0, 0, &mut out),
            Err(1)
        );
    }

    #[test]
    fn crops_share_the_planes_at_the_corner() {
        let data: Vec<u8> = (0..48).collect();
        let frame = FrameView {
            width: 4,
            height: 4,
            planes: [&data[..16], &data[16..24], &[]],
            strides: [4, 4, 0],
        };
        let c = crop(&frame, PixelFormat::Nv12, 2, 2, 2, 2);
        assert_eq!((c.planes[0][0], c.planes[1][0]), (10, 22));
        assert_eq!(c.row(0, 1)[0], 14);
    }

    #[test]
    fn crops_share_the_planes() {
        let data: Vec<u8> = (0..48).collect(); // 4x4 RGB, stride 12
        let frame = FrameView {
            width: 4,
            height: 4,
            planes: [&data, &[], &[]],
            strides: [12, 0, 0],
        };
        let c = crop(&frame, PixelFormat::RGB, 2, 1, 2, 2);
        assert_eq!(&c.planes[0][..3], &[18, 19, 20]);
        let (y, uv) = (vec![0u8; 16], (0..8).collect::<Vec<u8>>()); // 4x4 NV12
        let frame = FrameView {
            width: 4,
            height: 4,
            planes: [&y, &uv, &[]],
            strides: [4, 4, 0],
        };
        let c = crop(&frame, PixelFormat::Nv12, 2, 2, 2, 2);
        assert_eq!(&c.planes[1][..2], &[6, 7]);
    }
}
