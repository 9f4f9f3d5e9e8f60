// SPDX-License-Identifier: MIT OR Apache-2.0
//! `defectoverlay` checked pixel by pixel in every format: box edges in the severity colour,
//! the banner in the verdict colour, text present, segmentation masks filled and outlined; and
//! in pipelines after `defectdetect`, directly and after a tee and a queue, and after a
//! segmentation model.

mod common;

use common::*;
use gst::prelude::*;
use gst_video::VideoFormat;
use gst_video::prelude::*;
use gstdefect::analysis::mask::Mask;
use gstdefect::meta::prelude::*;
use gstdefect::meta::{Decision, DetectionParams, MaskParams, Severity, Verdict, VerdictMeta};

const FORMATS: [VideoFormat; 8] = [
    VideoFormat::Rgb,
    VideoFormat::Bgr,
    VideoFormat::Rgba,
    VideoFormat::Bgrx,
    VideoFormat::Argb,
    VideoFormat::Gray8,
    VideoFormat::Nv12,
    VideoFormat::I420,
];

/// Every format `defectoverlay` accepts.
const ALL_FORMATS: [VideoFormat; 13] = [
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

/// A dark 1280x720 frame with one ROI (critical, at 400..600 x 300..500) and a verdict meta.
fn annotated_input(format: VideoFormat, verdict: &str, shadow: bool) -> gst::Buffer {
    init();
    let image = RgbImage::new(1280, 720, [0, 0, 0]);
    let mut buffer = frame_buffer(&image, format, 8);
    {
        let b = buffer.get_mut().unwrap();
        DetectionParams {
            peak_score: None,
            mean_score: None,
            label_id: 0,
            label: "scratches".into(),
            confidence: 0.87,
            x_min: 400.0 / 1280.0,
            y_min: 300.0 / 720.0,
            x_max: 600.0 / 1280.0,
            y_max: 500.0 / 720.0,
            severity: Some(Severity::Critical),
            decision: Some(Decision::Fail),
        }
        .attach(b, 0, (400, 300, 200, 200));
        VerdictMeta {
            shadow,
            ..verdict_meta(Verdict::parse(verdict).unwrap(), 42)
        }
        .attach(b);
    }
    buffer
}

/// The RGB colour at (x, y) of a buffer in `format` with rows padded by 8 bytes.
fn pixel(buffer: &gst::BufferRef, format: VideoFormat, x: usize, y: usize) -> [f64; 3] {
    let info = gst_video::VideoInfo::builder(format, 1280, 720)
        .build()
        .unwrap();
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info).unwrap();
    let plane = |p: u32| frame.plane_data(p).unwrap();
    let stride = |p: usize| frame.plane_stride()[p] as usize;
    let packed = |bpp: usize, r: usize, g: usize, b: usize| {
        let i = y * stride(0) + x * bpp;
        let d = plane(0);
        [d[i + r], d[i + g], d[i + b]].map(|v| v as f64)
    };
    match format {
        VideoFormat::Rgb => packed(3, 0, 1, 2),
        VideoFormat::Bgr => packed(3, 2, 1, 0),
        VideoFormat::Rgba | VideoFormat::Rgbx => packed(4, 0, 1, 2),
        VideoFormat::Bgra | VideoFormat::Bgrx => packed(4, 2, 1, 0),
        VideoFormat::Argb | VideoFormat::Xrgb => packed(4, 1, 2, 3),
        VideoFormat::Abgr | VideoFormat::Xbgr => packed(4, 3, 2, 1),
        VideoFormat::Gray8 => [plane(0)[y * stride(0) + x] as f64; 3],
        VideoFormat::Nv12 | VideoFormat::I420 => {
            let luma = plane(0)[y * stride(0) + x] as f64;
            let (u, v) = if format == VideoFormat::Nv12 {
                let i = (y / 2) * stride(1) + (x / 2) * 2;
                (plane(1)[i] as f64, plane(1)[i + 1] as f64)
            } else {
                let i = (y / 2) * stride(1) + x / 2;
                (
                    plane(1)[i] as f64,
                    plane(2)[(y / 2) * stride(2) + x / 2] as f64,
                )
            };
            // 1280x720 caps default to BT.709 limited range, which the overlay follows.
            let (c, d, e) = (luma - 16.0, u - 128.0, v - 128.0);
            [
                1.164 * c + 1.793 * e,
                1.164 * c - 0.213 * d - 0.533 * e,
                1.164 * c + 2.112 * d,
            ]
            .map(|v| v.clamp(0.0, 255.0))
        }
        other => panic!("{other:?}"),
    }
}

fn assert_colour(got: [f64; 3], want: [u8; 3], format: VideoFormat, what: &str) {
    let want = want.map(|v| v as f64);
    let close = if format == VideoFormat::Gray8 {
        let luma = 0.299 * want[0] + 0.587 * want[1] + 0.114 * want[2];
        (got[0] - luma).abs() <= 2.0
    } else {
        got.iter().zip(want).all(|(g, w)| (g - w).abs() <= 14.0)
    };
    assert!(close, "{format:?} {what}: got {got:?}, want {want:?}");
}

fn overlay_once(format: VideoFormat, verdict: &str, shadow: bool) -> gst::Buffer {
    overlay_with(format, &[], annotated_input(format, verdict, shadow))
}

/// `defectoverlay` with `properties` over one 1280x720 `input` frame.
fn overlay_with(
    format: VideoFormat,
    properties: &[(&str, &dyn ToValue)],
    input: gst::Buffer,
) -> gst::Buffer {
    init();
    let mut h = gst_check::Harness::new("defectoverlay");
    for (name, value) in properties {
        h.element()
            .unwrap()
            .set_property_from_value(name, &value.to_value());
    }
    let info = gst_video::VideoInfo::builder(format, 1280, 720)
        .build()
        .unwrap();
    h.set_src_caps(info.to_caps().unwrap());
    h.push(input).unwrap();
    h.pull().unwrap()
}

/// A ring, the mask of the box 400..600 x 300..500: the square 440..560 x 340..460 (frame
/// pixels) with a hole 480..520 x 380..420, edges on even pixels so that a 2-pixel outline
/// covers whole chroma blocks.
fn ring() -> Mask {
    let mut mask = Mask::empty(400, 300, 200, 200);
    for y in 300..500 {
        for x in 400..600 {
            let inside = |x0, x1, y0, y1| (x0..x1).contains(&x) && (y0..y1).contains(&y);
            let set = inside(440, 560, 340, 460) && !inside(480, 520, 380, 420);
            mask.data[((y - 300) * 200 + x - 400) as usize] = u8::from(set);
        }
    }
    mask
}

/// The frame of [`annotated_input`] with the ROI's `defect-mask`: [`ring`], or `counts`
/// instead of its encoding.
fn masked_input(format: VideoFormat, counts: Option<&str>) -> gst::Buffer {
    let mut buffer = annotated_input(format, "FAIL", false);
    {
        let b = buffer.get_mut().unwrap();
        let mut roi = b
            .meta_mut::<gst_video::VideoRegionOfInterestMeta>()
            .unwrap();
        let mut params = MaskParams::from_mask(&ring());
        if let Some(counts) = counts {
            params.counts = counts.into();
        }
        roi.add_param(params.to_roi_param());
    }
    buffer
}

/// The critical colour at the given opacity over black.
fn critical_at(opacity: f64) -> [u8; 3] {
    [230.0, 20.0, 60.0].map(|c: f64| (c * opacity).round() as u8)
}

#[test]
fn masks_filled_and_outlined_in_every_format() {
    for format in ALL_FORMATS {
        let out = overlay_with(
            format,
            &[("show-banner", &false), ("show-labels", &false)],
            masked_input(format, None),
        );
        let at = |x, y| pixel(&out, format, x, y);
        // 720p: lines 2 px; the mask's outline 2 px; default opacity 0.4.
        assert_colour(at(400, 400), [230, 20, 60], format, "left box edge");
        assert_colour(at(460, 400), critical_at(0.4), format, "the ring's fill");
        assert_colour(at(500, 400), [0, 0, 0], format, "the hole");
        assert_colour(
            at(420, 320),
            [0, 0, 0],
            format,
            "in the box, outside the mask",
        );
        assert_colour(at(440, 400), [230, 20, 60], format, "the ring's outer edge");
        assert_colour(at(441, 401), [230, 20, 60], format, "the ring's outer edge");
        assert_colour(
            at(442, 402),
            critical_at(0.4),
            format,
            "the fill next to it",
        );
        assert_colour(at(478, 400), [230, 20, 60], format, "the hole's edge");
        assert_colour(at(640, 600), [0, 0, 0], format, "untouched area");
    }
}

#[test]
fn mask_properties_turn_the_fill_and_the_masks_off() {
    let format = VideoFormat::Rgb;
    let out = overlay_with(
        format,
        &[("mask-opacity", &0.0f64)],
        masked_input(format, None),
    );
    assert_colour(pixel(&out, format, 460, 400), [0, 0, 0], format, "no fill");
    assert_colour(
        pixel(&out, format, 440, 400),
        [230, 20, 60],
        format,
        "outline",
    );
    let out = overlay_with(
        format,
        &[("mask-opacity", &1.0f64), ("show-boxes", &false)],
        masked_input(format, None),
    );
    assert_colour(
        pixel(&out, format, 460, 400),
        [230, 20, 60],
        format,
        "opaque fill",
    );
    assert_colour(pixel(&out, format, 400, 400), [0, 0, 0], format, "no box");
    let out = overlay_with(
        format,
        &[("draw-masks", &false)],
        masked_input(format, None),
    );
    assert_colour(pixel(&out, format, 460, 400), [0, 0, 0], format, "no mask");
    assert_colour(
        pixel(&out, format, 440, 400),
        [0, 0, 0],
        format,
        "no outline",
    );
    assert_colour(
        pixel(&out, format, 400, 400),
        [230, 20, 60],
        format,
        "the box",
    );
}

/// A mask whose counts do not encode its window is not drawn: a warning names the field;
/// the box is drawn.
#[test]
fn malformed_mask_is_a_warning_naming_the_field() {
    init();
    let mut h = gst_check::Harness::new("defectoverlay");
    let bus = gst::Bus::new();
    h.element().unwrap().set_bus(Some(&bus));
    let format = VideoFormat::Rgb;
    h.set_src_caps(caps(format, 1280, 720));
    h.push(masked_input(format, Some("3"))).unwrap();
    let out = h.pull().unwrap();
    assert_colour(pixel(&out, format, 460, 400), [0, 0, 0], format, "no fill");
    assert_colour(
        pixel(&out, format, 400, 400),
        [230, 20, 60],
        format,
        "the box",
    );
    let warning = bus
        .pop_filtered(&[gst::MessageType::Warning])
        .expect("a warning");
    let gst::MessageView::Warning(w) = warning.view() else {
        unreachable!()
    };
    let warning = w.error().to_string();
    assert!(
        warning.contains("defect-mask") && warning.contains("counts"),
        "{warning}"
    );
}

/// After `defectdetect` and a segmentation model: the mask of the red square is drawn over
/// it, in the colour of its box.
#[test]
fn masks_of_a_segmentation_model_are_drawn_over_the_defect() {
    init();
    let mut image = RgbImage::new(640, 480, [12, 12, 12]);
    image.fill_rect(200, 150, 360, 310, [255, 0, 0]);
    let pipeline = gst::parse::launch(&format!(
        "appsrc name=src format=time ! defectdetect model={} ! \
         defectoverlay show-boxes=false show-banner=false mask-opacity=1.0 ! \
         appsink name=sink sync=false",
        test_model("seg_squares")
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let (src, sink) = app_ends(&pipeline);
    src.set_caps(Some(&caps(VideoFormat::Rgb, 640, 480)));
    pipeline.set_state(gst::State::Playing).unwrap();
    src.push_buffer(frame_buffer(&image, VideoFormat::Rgb, 0))
        .unwrap();
    src.end_of_stream().unwrap();
    let sample = sink.pull_sample().expect("a frame");
    pipeline.set_state(gst::State::Null).unwrap();
    let buffer = sample.buffer().unwrap();
    let roi = buffer
        .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
        .find(|roi| MaskParams::of_roi(roi).is_some())
        .expect("a detection with a mask");
    let params = DetectionParams::of_roi(&roi).unwrap().unwrap();
    let colour = gstdefect::draw::overlay::severity_colour(params.severity);
    let at = |x: usize, y: usize| {
        let i = (y * 640 + x) * 3;
        let d = buffer.map_readable().unwrap();
        [d[i], d[i + 1], d[i + 2]]
    };
    assert_eq!(
        at(280, 230),
        [colour.0, colour.1, colour.2],
        "the square's middle"
    );
    assert_eq!(at(500, 400), [12, 12, 12], "the background");
}

#[test]
fn boxes_banner_and_text_in_every_format() {
    for format in FORMATS {
        let out = overlay_once(format, "FAIL", false);
        // 720p: lines 2 px, glyphs 16 px, label strip and banner 20 px high.
        assert_colour(
            pixel(&out, format, 400, 400),
            [230, 20, 60],
            format,
            "left box edge",
        );
        assert_colour(
            pixel(&out, format, 598, 400),
            [230, 20, 60],
            format,
            "right box edge",
        );
        assert_colour(
            pixel(&out, format, 500, 400),
            [0, 0, 0],
            format,
            "inside the box",
        );
        assert_colour(
            pixel(&out, format, 1270, 10),
            [210, 20, 20],
            format,
            "banner far right",
        );
        let inked = (4..700)
            .filter(|&x| pixel(&out, format, x, 10).iter().sum::<f64>() > 600.0)
            .count();
        assert!(
            inked > 40,
            "{format:?}: banner text has {inked} white pixels on its middle row"
        );
        let label_ink = (400..560)
            .filter(|&x| pixel(&out, format, x, 290).iter().sum::<f64>() < 60.0)
            .count();
        assert!(
            label_ink > 10,
            "{format:?}: label text has {label_ink} dark pixels"
        );
        assert_colour(
            pixel(&out, format, 640, 600),
            [0, 0, 0],
            format,
            "untouched area",
        );
    }
}

#[test]
fn verdict_colours_and_shadow_marking() {
    for (verdict, colour) in [
        ("PASS", [0, 170, 60]),
        ("REVIEW", [255, 176, 0]),
        ("FAIL", [210, 20, 20]),
    ] {
        let out = overlay_once(VideoFormat::Rgb, verdict, false);
        assert_colour(
            pixel(&out, VideoFormat::Rgb, 1270, 10),
            colour,
            VideoFormat::Rgb,
            verdict,
        );
        // No shadow stripe under a normal banner.
        assert_colour(
            pixel(&out, VideoFormat::Rgb, 2, 21),
            [0, 0, 0],
            VideoFormat::Rgb,
            "below the banner",
        );
    }
    let shadow = overlay_once(VideoFormat::Rgb, "FAIL", true);
    assert_colour(
        pixel(&shadow, VideoFormat::Rgb, 2, 21),
        [210, 20, 20],
        VideoFormat::Rgb,
        "shadow stripe",
    );
}

#[test]
fn text_scales_with_resolution() {
    init();
    let mut h = gst_check::Harness::new("defectoverlay");
    let info = gst_video::VideoInfo::builder(VideoFormat::Gray8, 3840, 2160)
        .build()
        .unwrap();
    h.set_src_caps(info.to_caps().unwrap());
    let mut buffer = gst::Buffer::from_mut_slice(vec![0u8; info.size()]);
    verdict_meta(Verdict::Pass, 0).attach(buffer.get_mut().unwrap());
    h.push(buffer).unwrap();
    let out = h.pull().unwrap();
    let map = out.map_readable().unwrap();
    let banner_rows = (0..100).take_while(|&y| map[y * 3840 + 3800] > 50).count();
    assert_eq!(banner_rows, 60, "4K banner: 48 px glyphs plus padding");
}

#[test]
fn works_after_defectdetect_directly_and_after_tee_and_queue() {
    init();
    let (image, _) = two_squares_640x480();
    for tail in ["defectoverlay", "tee name=t ! queue ! defectoverlay"] {
        let pipeline = gst::parse::launch(&format!(
            "appsrc name=src format=time ! defectdetect model={} ! {tail} ! appsink name=sink sync=false",
            test_model("squares_v8")
        ))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let (src, sink) = app_ends(&pipeline);
        src.set_caps(Some(&caps(VideoFormat::I420, 640, 480)));
        pipeline.set_state(gst::State::Playing).unwrap();
        src.push_buffer(frame_buffer(&image, VideoFormat::I420, 0))
            .unwrap();
        src.end_of_stream().unwrap();
        let sample = sink.pull_sample().expect("a frame");
        pipeline.set_state(gst::State::Null).unwrap();
        let buffer = sample.buffer().unwrap();
        let info = gst_video::VideoInfo::from_caps(sample.caps().unwrap()).unwrap();
        let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info).unwrap();
        let luma = frame.plane_data(0).unwrap();
        let stride = frame.plane_stride()[0] as usize;
        // Banner (FAIL red (210, 20, 20): BT.601 limited luma 82) across the top.
        assert!(
            (luma[5 * stride + 630] as i32 - 82).abs() < 3,
            "{tail}: banner luma {}",
            luma[5 * stride + 630]
        );
    }
}

/// A verdict meta missing its fields (an application's, another version's) is not drawn as
/// anything: a warning names the structure and the field.
#[test]
fn malformed_verdict_meta_is_a_warning_naming_the_field() {
    init();
    let mut h = gst_check::Harness::new("defectoverlay");
    let bus = gst::Bus::new();
    h.element().unwrap().set_bus(Some(&bus));
    let info = gst_video::VideoInfo::builder(VideoFormat::Gray8, 320, 240)
        .build()
        .unwrap();
    h.set_src_caps(info.to_caps().unwrap());
    let mut buffer = gst::Buffer::from_mut_slice(vec![0u8; info.size()]);
    let mut meta =
        gst::meta::CustomMeta::add(buffer.get_mut().unwrap(), "DefectVerdictMeta").unwrap();
    meta.mut_structure().set("verdict", "PASS");
    h.push(buffer).unwrap();
    let out = h.pull().unwrap();
    assert!(
        out.map_readable().unwrap().iter().all(|&v| v == 0),
        "no banner drawn"
    );
    let warning = bus
        .pop_filtered(&[gst::MessageType::Warning])
        .expect("a warning");
    let gst::MessageView::Warning(w) = warning.view() else {
        unreachable!()
    };
    let text = w.error().to_string();
    assert!(
        text.contains("DefectVerdictMeta: field `shadow` is missing"),
        "{text}"
    );
}

/// A flat grey 1280x720 surface with a dark scratch (10 px thick, from (400, 300) falling 1 px
/// every 5 to (880, 396)): `models/surface-anomaly.onnx` scores the scratch about twice the
/// clean surface (onnxruntime on the same frame: 4.38 on the scratch at (640, 348), 2.03 far
/// from it, peak 5.97 near the scratch's left end).
fn scratched_surface() -> RgbImage {
    let mut image = RgbImage::new(1280, 720, [128, 128, 128]);
    for x in 400..880 {
        let y = 300 + (x - 400) / 5;
        image.fill_rect(x, y - 5, x + 1, y + 5, [40, 40, 40]);
    }
    image
}

/// How red (hot) a pixel is against blue (cold).
fn heat(rgb: [f64; 3]) -> f64 {
    rgb[0] - rgb[2]
}

/// `show-heatmap`: the anomaly map `defectdetect` attaches (`DefectAnomalyMapMeta`, the map over
/// the whole frame, as the element stretched it for the model) is drawn over the frame: with
/// `show-heatmap=false` the frame is unchanged; set to true while PLAYING, the scratch turns
/// hot (towards red) and the clean surface cold (blue), in RGB and YUV formats; the hottest
/// cell of the map lies on the scratch.
#[test]
fn heatmap_of_an_anomaly_model_lands_on_the_defect() {
    init();
    let image = scratched_surface();
    for format in [
        VideoFormat::Rgb,
        VideoFormat::Bgrx,
        VideoFormat::Nv12,
        VideoFormat::I420,
    ] {
        let mut h = gst_check::Harness::new_parse(&format!(
            "defectdetect model={} ! defectoverlay name=overlay show-boxes=false show-banner=false",
            repo_path("models/surface-anomaly.onnx").display()
        ));
        h.set_src_caps(caps(format, 1280, 720));
        let input = frame_buffer(&image, format, 8);
        h.push(input.clone()).unwrap();
        let plain = h.pull().unwrap();
        assert_eq!(
            *plain.map_readable().unwrap(),
            *input.map_readable().unwrap(),
            "{format:?}: show-heatmap=false leaves the frame alone"
        );
        let map = gstdefect::meta::AnomalyMapMeta::from_buffer(&plain)
            .expect("an anomaly map meta")
            .expect("it reads");
        assert_eq!((map.width, map.height), (448, 256));
        assert_eq!(
            [map.x_min, map.y_min, map.x_max, map.y_max],
            [0.0, 0.0, 1280.0, 720.0]
        );
        let values = map.values();
        let hottest = (0..values.len()).max_by_key(|&i| values[i]).unwrap();
        let (cx, cy) = ((hottest % 448) as f64 + 0.5, (hottest / 448) as f64 + 0.5);
        let (fx, fy) = (cx * 1280.0 / 448.0, cy * 720.0 / 256.0);
        assert!(
            (380.0..=900.0).contains(&fx)
                && (fy - (300.0 + (fx - 400.0).max(0.0) / 5.0)).abs() < 40.0,
            "{format:?}: the hottest cell maps to ({fx}, {fy}), off the scratch"
        );
        let bin = h.element().unwrap().downcast::<gst::Bin>().unwrap();
        bin.by_name("overlay")
            .unwrap()
            .set_property("show-heatmap", true);
        h.push(input.clone()).unwrap();
        let drawn = h.pull().unwrap();
        let (scratch, clean) = ((640, 348), (100, 650));
        let peak = (fx as usize, fy as usize);
        let before = |(x, y)| heat(pixel(&input, format, x, y));
        let after = |(x, y)| heat(pixel(&drawn, format, x, y));
        eprintln!(
            "{format:?}: red - blue at the map's peak {peak:?} {:.0} -> {:.0}, on the scratch {:.0} -> {:.0}, clean {:.0} -> {:.0}",
            before(peak),
            after(peak),
            before(scratch),
            after(scratch),
            before(clean),
            after(clean)
        );
        assert!(
            after(peak) > before(peak) + 60.0,
            "{format:?}: the map's peak at {peak:?} turns red: {} -> {}",
            before(peak),
            after(peak)
        );
        assert!(
            after(clean) < before(clean) - 60.0,
            "{format:?}: the clean surface gets colder: {} -> {}",
            before(clean),
            after(clean)
        );
        assert!(
            after(scratch) > after(clean) + 60.0,
            "{format:?}: scratch {} vs clean {}",
            after(scratch),
            after(clean)
        );
    }
}

/// A malformed `DefectAnomalyMapMeta` (values of the wrong length) is not drawn: a warning
/// names the field and the frame is left alone.
#[test]
fn malformed_anomaly_map_is_a_warning_naming_the_field() {
    init();
    let mut h = gst_check::Harness::new("defectoverlay");
    h.element().unwrap().set_property("show-heatmap", true);
    let bus = gst::Bus::new();
    h.element().unwrap().set_bus(Some(&bus));
    let info = gst_video::VideoInfo::builder(VideoFormat::Gray8, 320, 240)
        .build()
        .unwrap();
    h.set_src_caps(info.to_caps().unwrap());
    let mut buffer = gst::Buffer::from_mut_slice(vec![7u8; info.size()]);
    let mut map =
        gstdefect::meta::AnomalyMapMeta::new(4, 2, &[9.0; 8], [0.0, 0.0, 320.0, 240.0], 1.0);
    map.scores.pop();
    map.attach(buffer.get_mut().unwrap());
    h.push(buffer).unwrap();
    let out = h.pull().unwrap();
    assert!(out.map_readable().unwrap().iter().all(|&v| v == 7));
    let warning = bus
        .pop_filtered(&[gst::MessageType::Warning])
        .expect("a warning");
    let gst::MessageView::Warning(w) = warning.view() else {
        unreachable!()
    };
    let text = w.error().to_string();
    assert!(
        text.contains(
            "DefectAnomalyMapMeta: field `scores` holds 28 bytes where a 4x2 map of f32 needs 32"
        ),
        "{text}"
    );
}

/// A black 256 x 256 frame with a (255, 255, 230) square at x 128..192, y 0..64: through
/// `anomaly_cells.onnx` its 8 x 8 cells of the 32 x 32 map are 0.9 (hot: jet red at the
/// display scale 0..1), the rest 0 (cold: jet dark blue).
fn hot_square() -> RgbImage {
    let mut image = RgbImage::new(256, 256, [0, 0, 0]);
    image.fill_rect(128, 0, 192, 64, [255, 255, 230]);
    image
}

/// The pipeline's output buffers for one frame of `hot_square`, and the warnings posted.
fn through(middle: &str, out_size: usize) -> (gst::Buffer, Vec<String>) {
    init();
    let mut h = gst_check::Harness::new_parse(&format!(
        "defectdetect model={} ! {middle} ! defectoverlay show-heatmap=true heatmap-opacity=1.0 show-boxes=false show-banner=false",
        test_model("anomaly_cells")
    ));
    let bus = gst::Bus::new();
    h.element().unwrap().set_bus(Some(&bus));
    h.set_src_caps(caps(VideoFormat::Rgb, 256, 256));
    h.push(frame_buffer(&hot_square(), VideoFormat::Rgb, 0))
        .unwrap();
    let out = h.pull().unwrap();
    let info =
        gst_video::VideoInfo::from_caps(&h.sinkpad().unwrap().current_caps().unwrap()).unwrap();
    assert_eq!(
        (info.width() as usize, info.height() as usize),
        (out_size, out_size)
    );
    let warnings = std::iter::from_fn(|| bus.pop())
        .filter_map(|m| match m.view() {
            gst::MessageView::Warning(w) => Some(w.error().to_string()),
            _ => None,
        })
        .collect();
    (out, warnings)
}

/// A pixel of an RGB frame `width` wide (rows without padding).
fn rgb_at(buffer: &gst::BufferRef, width: usize, x: usize, y: usize) -> [f64; 3] {
    let data = buffer.map_readable().unwrap();
    let i = (y * width + x) * 3;
    [data[i], data[i + 1], data[i + 2]].map(|v| v as f64)
}

/// Whether a pixel shows the hot end of the jet ramp (red) or the cold end (dark blue).
fn is_hot(rgb: [f64; 3]) -> bool {
    rgb[0] > 180.0 && rgb[1] < 60.0 && rgb[2] < 60.0
}
fn is_cold(rgb: [f64; 3]) -> bool {
    rgb[0] < 40.0 && rgb[1] < 40.0 && (100.0..160.0).contains(&rgb[2])
}

/// A `videoscale` between `defectdetect` and `defectoverlay` scales the anomaly map's rectangle
/// with the frame: the heat lands on the scaled defect, not the map's top-left quarter stretched
/// over the frame; the ROI metas (detections in frame pixels) are scaled alike.
#[test]
fn heatmap_follows_the_frame_through_videoscale() {
    let (out, warnings) = through("videoscale ! video/x-raw,width=128,height=128", 128);
    let map = gstdefect::meta::AnomalyMapMeta::from_buffer(&out)
        .expect("the anomaly map went through videoscale")
        .expect("it reads");
    assert_eq!(
        [map.x_min, map.y_min, map.x_max, map.y_max],
        [0.0, 0.0, 128.0, 128.0]
    );
    let px = |x, y| rgb_at(&out, 128, x, y);
    for (x, y) in [(70, 5), (80, 16), (90, 26)] {
        assert!(
            is_hot(px(x, y)),
            "({x}, {y}) on the scaled defect: {:?}",
            px(x, y)
        );
    }
    for (x, y) in [(20, 100), (110, 40), (40, 16), (100, 100)] {
        assert!(
            is_cold(px(x, y)),
            "({x}, {y}) off the defect: {:?}",
            px(x, y)
        );
    }
    // The region's ROI meta is scaled by GStreamer (its own transform): the same region in
    // the scaled frame's pixels. (GStreamer 1.22 drops its parameters when it scales it.)
    let found: Vec<_> = out
        .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
        .map(|m| (m.roi_type().to_string(), m.rect()))
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    let (label, (x, y, w, h)) = &found[0];
    assert_eq!(label, "anomaly");
    assert!(
        x.abs_diff(64) <= 1 && *y == 0 && w.abs_diff(32) <= 1 && h.abs_diff(32) <= 1,
        "the region scaled with the frame: {found:?}"
    );
    assert!(warnings.is_empty(), "{warnings:?}");
}

/// A `videoflip` between them: the heat map is never drawn unmirrored over the flipped frame.
/// GStreamer 1.22 gives metas no flip transform: the map is dropped and `defectoverlay` says
/// so in a warning. (`video-direction`: in GStreamer 1.22 a `method` set by `gst-launch-1.0`
/// is reset to identity by the `video-direction` default, and the element passes frames
/// through unflipped.)
#[test]
fn heatmap_is_not_drawn_unmirrored_after_videoflip() {
    let (out, warnings) = through("videoflip video-direction=horiz", 256);
    let px = |x, y| rgb_at(&out, 256, x, y);
    // The mirrored square is at x 64..128.
    assert!(
        !is_hot(px(160, 32)),
        "heat drawn where the defect was before the flip: {:?}",
        px(160, 32)
    );
    if gstdefect::meta::AnomalyMapMeta::from_buffer(&out).is_some() {
        assert!(is_hot(px(96, 32)), "the mirrored defect: {:?}", px(96, 32));
    } else {
        // Not drawn: the frame is the flipped input.
        assert_eq!(px(96, 32), [255.0, 255.0, 230.0]);
        assert_eq!(px(160, 32), [0.0, 0.0, 0.0]);
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("DefectAnomalyMapMeta") && w.contains("heat map")),
            "{warnings:?}"
        );
    }
}
