// SPDX-License-Identifier: MIT OR Apache-2.0
//! GStreamer video helpers shared by the elements: the formats they accept and how a mapped
//! frame becomes the pure modules' view of it.

use gst_video::VideoFormat;
use gst_video::prelude::*;

use crate::draw::{Canvas, YuvEncoding};
use crate::frame::{FrameView, PixelFormat, YuvMatrix};

/// Raw formats the elements work on in place.
pub const FORMATS: &[VideoFormat] = &[
    VideoFormat::Rgb,
    VideoFormat::Bgr,
    VideoFormat::Rgba,
    VideoFormat::Bgra,
    VideoFormat::Rgbx,
    VideoFormat::Bgrx,
    VideoFormat::Argb,
    VideoFormat::Abgr,
    VideoFormat::Xrgb,
    VideoFormat::Xbgr,
    VideoFormat::Gray8,
    VideoFormat::Nv12,
    VideoFormat::I420,
];

/// The pure preprocessing's description of a negotiated format.
pub fn pixel_format(format: VideoFormat) -> Option<PixelFormat> {
    let packed = |bytes_per_pixel, red, green, blue| PixelFormat::Packed {
        bytes_per_pixel,
        red,
        green,
        blue,
    };
    Some(match format {
        VideoFormat::Rgb => PixelFormat::RGB,
        VideoFormat::Bgr => PixelFormat::BGR,
        VideoFormat::Rgba | VideoFormat::Rgbx => PixelFormat::RGBA,
        VideoFormat::Bgra | VideoFormat::Bgrx => PixelFormat::BGRA,
        VideoFormat::Argb | VideoFormat::Xrgb => packed(4, 1, 2, 3),
        VideoFormat::Abgr | VideoFormat::Xbgr => packed(4, 3, 2, 1),
        VideoFormat::Gray8 => PixelFormat::Gray8,
        VideoFormat::Nv12 => PixelFormat::Nv12,
        VideoFormat::I420 => PixelFormat::I420,
        _ => return None,
    })
}

/// The caps' YUV matrix and range; BT.601 limited range where the caps do not say.
pub fn yuv_matrix(info: &gst_video::VideoInfo) -> YuvMatrix {
    let (kr, kb, full_range) = luma_coefficients(info);
    YuvMatrix::new(kr, kb, full_range)
}

/// Kr, Kb and full range of the frames' colour matrix; BT.601's where the caps name none.
/// Elements compute it once per caps.
fn luma_coefficients(info: &gst_video::VideoInfo) -> (f32, f32, bool) {
    let colorimetry = info.colorimetry();
    let full_range = colorimetry.range() == gst_video::VideoColorRange::Range0_255;
    let (kr, kb) = colorimetry.matrix().kr_kb().unwrap_or((0.299, 0.114));
    (kr as f32, kb as f32, full_range)
}

pub fn frame_view<'a>(
    frame: &'a gst_video::VideoFrameRef<&gst::BufferRef>,
) -> Result<FrameView<'a>, String> {
    let mut planes: [&[u8]; 3] = [&[], &[], &[]];
    let mut strides = [0usize; 3];
    for plane in 0..frame.n_planes().min(3) as usize {
        let stride = frame.plane_stride()[plane];
        if stride <= 0 {
            return Err(format!(
                "plane {plane} has stride {stride}; only positive strides are supported"
            ));
        }
        strides[plane] = stride as usize;
        planes[plane] = frame
            .plane_data(plane as u32)
            .map_err(|e| format!("cannot read plane {plane}: {e}"))?;
    }
    Ok(FrameView {
        width: frame.width(),
        height: frame.height(),
        planes,
        strides,
    })
}

/// The caps' RGB to YUV encoding, for drawing.
pub fn yuv_encoding(info: &gst_video::VideoInfo) -> YuvEncoding {
    let (kr, kb, full_range) = luma_coefficients(info);
    YuvEncoding { kr, kb, full_range }
}

/// A writable frame as a drawing canvas; `encoding` is `yuv_encoding` of its caps.
pub fn canvas<'a>(
    frame: &'a mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
    encoding: YuvEncoding,
) -> Result<Canvas<'a>, String> {
    let info = frame.info().clone();
    let format = pixel_format(info.format())
        .ok_or_else(|| format!("unsupported format {:?}", info.format()))?;
    let n_planes = frame.n_planes().min(3) as usize;
    let mut strides = [0usize; 3];
    for (plane, stride) in strides.iter_mut().enumerate().take(n_planes) {
        let s = frame.plane_stride()[plane];
        if s <= 0 {
            return Err(format!(
                "plane {plane} has stride {s}; only positive strides are supported"
            ));
        }
        *stride = s as usize;
    }
    let mut planes: [&mut [u8]; 3] = [&mut [], &mut [], &mut []];
    let mut rest = frame.planes_data_mut();
    for (plane, slot) in planes.iter_mut().enumerate().take(n_planes) {
        let data = std::mem::take(&mut rest[plane]);
        *slot = data;
    }
    Canvas::new(
        info.width(),
        info.height(),
        format,
        encoding,
        planes,
        strides,
    )
    .map_err(|e| e.to_string())
}

/// Maps `buffer` readable as a frame of `info` and hands the pure modules' view of it to `f`:
/// the one place a frame is mapped for inference (on the streaming thread and on the worker).
/// An error names what could not be mapped.
pub fn with_frame_view<T>(
    buffer: &gst::BufferRef,
    info: &gst_video::VideoInfo,
    f: impl FnOnce(&FrameView) -> T,
) -> Result<T, String> {
    with_frame_view_or(buffer, info, |view| view.map(f))
}

/// As [`with_frame_view`], for a caller that decides what a frame that cannot be mapped
/// becomes: `f` gets the view, or what could not be mapped.
pub fn with_frame_view_or<T>(
    buffer: &gst::BufferRef,
    info: &gst_video::VideoInfo,
    f: impl FnOnce(Result<&FrameView, String>) -> T,
) -> T {
    let Ok(frame) = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, info) else {
        return f(Err(format!(
            "cannot map a {}x{} frame",
            info.width(),
            info.height()
        )));
    };
    match frame_view(&frame) {
        Ok(view) => f(Ok(&view)),
        Err(reason) => f(Err(reason)),
    }
}
