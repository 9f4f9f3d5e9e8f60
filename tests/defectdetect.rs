// SPDX-License-Identifier: MIT OR Apache-2.0
//! `defectdetect` driven through `gst_check::Harness` and real pipelines: known squares
//! in, ROI metas and bus messages out, for every output layout and pixel format; and
//! each kind of bad input failing with its reason.

mod common;

use common::*;
use gst::prelude::*;
use gst_video::VideoFormat;
use gstdefect::meta::prelude::*;

fn harness(properties: &str) -> gst_check::Harness {
    init();
    gst_check::Harness::new_parse(&format!("defectdetect {properties}"))
}

/// Pushes one frame and returns the ROIs of the buffer that comes out.
fn detect_once(
    h: &mut gst_check::Harness,
    image: &RgbImage,
    format: VideoFormat,
    row_padding: usize,
) -> Vec<Roi> {
    h.set_src_caps(caps(format, image.width, image.height));
    h.push(frame_buffer(image, format, row_padding))
        .expect("push");
    let out = h.pull().expect("pull");
    rois(&out)
}

#[test]
fn every_layout_finds_the_squares() {
    let (image, expected) = two_squares_640x480();
    for model in [
        "squares_v8",
        "squares_v5",
        "squares_e2e",
        "squares_v8_dynamic",
    ] {
        let mut h = harness(&format!("model={}", test_model(model)));
        let found = detect_once(&mut h, &image, VideoFormat::Rgb, 0);
        assert_rois(&found, &expected, 640, 480, 2.0, model);
    }
}

#[test]
fn every_pixel_format_finds_the_squares_with_padded_strides() {
    let (image, expected) = two_squares_640x480();
    let formats = [
        VideoFormat::Rgb,
        VideoFormat::Bgr,
        VideoFormat::Rgba,
        VideoFormat::Bgra,
        VideoFormat::Rgbx,
        VideoFormat::Bgrx,
        VideoFormat::Argb,
        VideoFormat::Xrgb,
        VideoFormat::Nv12,
        VideoFormat::I420,
    ];
    for format in formats {
        for model in ["squares_v8", "squares_v5", "squares_e2e"] {
            let mut h = harness(&format!("model={}", test_model(model)));
            let found = detect_once(&mut h, &image, format, 12);
            assert_rois(
                &found,
                &expected,
                640,
                480,
                2.0,
                &format!("{model} {format:?}"),
            );
        }
    }
}

#[test]
fn gray8_feeds_three_and_one_channel_models() {
    // On a mono camera only the white square is visible (red turns dark grey).
    let (image, expected) = two_squares_640x480();
    let white_only = &expected[..1];
    for model in ["squares_v8", "squares_v8_gray"] {
        let mut h = harness(&format!("model={}", test_model(model)));
        let found = detect_once(&mut h, &image, VideoFormat::Gray8, 3);
        assert_rois(&found, white_only, 640, 480, 2.0, model);
    }
}

#[test]
fn full_hd_frames_map_back_to_frame_pixels() {
    let mut image = RgbImage::new(1920, 1080, [0, 0, 0]);
    let b = window_box(1920, 1080, 12, 20);
    image.fill_rect(
        b[0] as usize,
        b[1] as usize,
        b[2] as usize,
        b[3] as usize,
        [255, 255, 255],
    );
    let expected = [Expected {
        class: "white_square",
        label_id: 0,
        rect: b,
    }];
    for format in [VideoFormat::Rgb, VideoFormat::Nv12] {
        let mut h = harness(&format!("model={}", test_model("squares_v8")));
        let found = detect_once(&mut h, &image, format, 0);
        assert_rois(
            &found,
            &expected,
            1920,
            1080,
            2.0,
            &format!("1080p {format:?}"),
        );
    }
}

#[test]
fn labels_file_overrides_model_names() {
    let dir = std::env::temp_dir().join(format!("defect-labels-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let labels = dir.join("labels.txt");
    std::fs::write(&labels, "bright\nrust\n").unwrap();
    let (image, _) = two_squares_640x480();
    let mut h = harness(&format!(
        "model={} labels={}",
        test_model("squares_v8"),
        labels.display()
    ));
    let mut names: Vec<_> = detect_once(&mut h, &image, VideoFormat::Rgb, 0)
        .into_iter()
        .map(|r| r.label)
        .collect();
    names.sort();
    assert_eq!(names, ["bright", "rust"]);
}

#[test]
fn thresholds_and_max_detections_apply() {
    let (image, _) = two_squares_640x480();
    let mut h = harness(&format!(
        "model={} conf-threshold=0.999",
        test_model("squares_v8")
    ));
    assert!(
        detect_once(&mut h, &image, VideoFormat::Rgb, 0).is_empty(),
        "0.9975 is below 0.999"
    );
    let mut h = harness(&format!(
        "model={} max-detections=1",
        test_model("squares_v8")
    ));
    assert_eq!(detect_once(&mut h, &image, VideoFormat::Rgb, 0).len(), 1);
}

#[test]
fn a_large_bright_area_is_reduced_by_nms() {
    // A 64-px square covers 25 equally scored windows 8 px apart; after class-wise NMS no
    // two kept boxes overlap by more than the IoU threshold, and far fewer than 25 remain.
    let mut image = RgbImage::new(256, 256, [0, 0, 0]);
    image.fill_rect(64, 64, 128, 128, [255, 255, 255]);
    let mut h = harness(&format!("model={}", test_model("squares_v8")));
    let found = detect_once(&mut h, &image, VideoFormat::Rgb, 0);
    assert!((2..=16).contains(&found.len()), "{found:#?}");
    let boxes: Vec<[f64; 4]> = found
        .iter()
        .map(|r| r.normalised.map(|v| v * 256.0))
        .collect();
    for (i, a) in boxes.iter().enumerate() {
        for b in &boxes[i + 1..] {
            assert!(
                iou(a, b) <= 0.45 + 1e-6,
                "{a:?} and {b:?} overlap by {}",
                iou(a, b)
            );
        }
    }
}

fn iou(a: &[f64; 4], b: &[f64; 4]) -> f64 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let area = |r: &[f64; 4]| (r[2] - r[0]) * (r[3] - r[1]);
    iw * ih / (area(a) + area(b) - iw * ih)
}

#[test]
fn empty_frames_give_no_metas() {
    let image = RgbImage::new(320, 240, [20, 20, 20]);
    let mut h = harness(&format!("model={}", test_model("squares_v8")));
    assert!(detect_once(&mut h, &image, VideoFormat::I420, 0).is_empty());
}

#[test]
fn tiny_and_odd_frames_do_not_fail() {
    for (w, h_) in [(1, 1), (3, 5), (641, 479), (17, 1000)] {
        let image = RgbImage::new(w, h_, [200, 200, 200]);
        for format in [
            VideoFormat::Nv12,
            VideoFormat::I420,
            VideoFormat::Gray8,
            VideoFormat::Rgb,
        ] {
            let mut h = harness(&format!("model={}", test_model("squares_v8")));
            detect_once(&mut h, &image, format, 3);
        }
    }
}

#[test]
fn caps_change_mid_stream_is_followed() {
    let (image, expected) = two_squares_640x480();
    let mut h = harness(&format!("model={}", test_model("squares_v8")));
    assert_rois(
        &detect_once(&mut h, &image, VideoFormat::Rgb, 0),
        &expected,
        640,
        480,
        2.0,
        "before",
    );
    let mut big = RgbImage::new(1920, 1080, [0, 0, 0]);
    let b = window_box(1920, 1080, 12, 20);
    big.fill_rect(
        b[0] as usize,
        b[1] as usize,
        b[2] as usize,
        b[3] as usize,
        [255, 255, 255],
    );
    let found = detect_once(&mut h, &big, VideoFormat::Nv12, 0);
    let expected = [Expected {
        class: "white_square",
        label_id: 0,
        rect: b,
    }];
    assert_rois(&found, &expected, 1920, 1080, 2.0, "after");
}

/// Runs `appsrc ! defectdetect ! appsink` on frames and returns the bus's `defect-detections`.
fn detection_messages(model: &str, frames: &[RgbImage]) -> Vec<gst::Structure> {
    init();
    let pipeline = gst::parse::launch(&format!(
        "appsrc name=src format=time ! defectdetect model={model} ! appsink name=sink sync=false"
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let src = pipeline
        .by_name("src")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    src.set_caps(Some(&caps(
        VideoFormat::Rgb,
        frames[0].width,
        frames[0].height,
    )));
    pipeline.set_state(gst::State::Playing).unwrap();
    for (i, image) in frames.iter().enumerate() {
        let mut buffer = frame_buffer(image, VideoFormat::Rgb, 0);
        buffer
            .get_mut()
            .unwrap()
            .set_pts(gst::ClockTime::from_mseconds(40 * i as u64));
        src.push_buffer(buffer).unwrap();
    }
    src.end_of_stream().unwrap();
    let bus = pipeline.bus().unwrap();
    let mut messages = Vec::new();
    for message in bus.iter_timed(gst::ClockTime::from_seconds(30)) {
        match message.view() {
            gst::MessageView::Element(e)
                if e.structure()
                    .is_some_and(|s| s.name() == "defect-detections") =>
            {
                messages.push(e.structure().unwrap().to_owned())
            }
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("{}", e.error()),
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    messages
}

#[test]
fn one_bus_message_per_frame_with_the_detections() {
    let (image, expected) = two_squares_640x480();
    let empty = RgbImage::new(640, 480, [0, 0, 0]);
    let messages = detection_messages(&test_model("squares_v8"), &[image.clone(), empty, image]);
    assert_eq!(messages.len(), 3);
    for (i, s) in messages.iter().enumerate() {
        assert_eq!(s.get::<u64>("frame").unwrap(), i as u64);
        assert_eq!(
            s.get::<Option<gst::ClockTime>>("pts").unwrap(),
            Some(gst::ClockTime::from_mseconds(40 * i as u64))
        );
        assert!(
            s.get::<Option<gst::ClockTime>>("running-time")
                .unwrap()
                .is_some()
        );
    }
    let detections = messages[0].get::<gst::Array>("detections").unwrap();
    assert_eq!(detections.len(), 2);
    assert!(
        messages[1]
            .get::<gst::Array>("detections")
            .unwrap()
            .is_empty()
    );
    let first = detections.as_slice()[0].get::<gst::Structure>().unwrap();
    let want = expected
        .iter()
        .find(|e| e.class == first.get::<String>("label").unwrap())
        .unwrap();
    for (field, value) in ["x-min", "y-min", "x-max", "y-max"].iter().zip(want.rect) {
        assert!(
            (first.get::<f64>(*field).unwrap() - value).abs() <= 2.0,
            "{field}"
        );
    }
    assert!(first.get::<f64>("confidence").unwrap() > 0.99);
}

/// Sets a pipeline with `defectdetect <properties>` to READY and returns the error text.
fn ready_error(properties: &str) -> String {
    init();
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc ! defectdetect {properties} ! fakesink"
    ))
    .unwrap();
    assert!(
        pipeline.set_state(gst::State::Ready).is_err(),
        "{properties} should fail"
    );
    let bus = pipeline.bus().unwrap();
    let message = bus
        .timed_pop_filtered(gst::ClockTime::from_seconds(5), &[gst::MessageType::Error])
        .expect("an error message");
    pipeline.set_state(gst::State::Null).unwrap();
    match message.view() {
        gst::MessageView::Error(e) => e.error().to_string(),
        _ => unreachable!(),
    }
}

#[test]
fn bad_inputs_fail_at_ready_with_the_reason() {
    let dir = std::env::temp_dir().join(format!("defect-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = dir.join("not-a-model.onnx");
    std::fs::write(&text, "this is not a protobuf").unwrap();
    let truncated = dir.join("truncated.onnx");
    let model = std::fs::read(repo_path("models/test/squares_v8.onnx")).unwrap();
    std::fs::write(&truncated, &model[..model.len() / 3]).unwrap();

    let cases = [
        ("".to_string(), "no model given"),
        (
            "model=/nonexistent/model.onnx".to_string(),
            "does not exist",
        ),
        (
            format!("model={}", text.display()),
            "Protobuf parsing failed",
        ),
        (format!("model={}", truncated.display()), "failed"),
        (
            format!("model={}", test_model("bad_not_image")),
            "not image-like",
        ),
        (
            format!("model={}", test_model("bad_layout")),
            "matches no known layout",
        ),
        (
            format!("model={} layout=end2end", test_model("squares_v8")),
            "does not fit the end-to-end",
        ),
        (
            format!(
                "model={} labels=/nonexistent/labels.txt",
                test_model("squares_v8")
            ),
            "labels file",
        ),
    ];
    for (properties, reason) in cases {
        let message = ready_error(&properties);
        assert!(
            message.contains(reason),
            "{properties}: {message:?} lacks {reason:?}"
        );
    }
}

#[test]
fn unavailable_gpu_provider_falls_back_to_cpu_with_a_warning() {
    init();
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=2 ! defectdetect name=d execution-provider=cuda model={} ! fakesink",
        test_model("squares_v8")
    ))
    .unwrap();
    pipeline.set_state(gst::State::Ready).unwrap();
    let bus = pipeline.bus().unwrap();
    let warning = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(5),
        &[gst::MessageType::Warning],
    );
    let detect = pipeline
        .downcast_ref::<gst::Bin>()
        .unwrap()
        .by_name("d")
        .unwrap();
    let info = gstdefect::meta::ModelInfoMeta::of(&detect)
        .expect("a model is loaded")
        .expect("model-info as the contract says");
    pipeline.set_state(gst::State::Null).unwrap();
    if info.provider == "cuda" {
        return; // A GPU build of ONNX Runtime with a GPU: nothing to fall back from.
    }
    assert_eq!(info.provider, "cpu", "{info:?}");
    let warning = warning.expect("a fallback warning");
    let gst::MessageView::Warning(w) = warning.view() else {
        unreachable!()
    };
    assert!(
        w.error().to_string().contains("falling back to CPU"),
        "{}",
        w.error()
    );
}

#[test]
fn gst_launch_line_for_each_format_runs_to_eos() {
    init();
    for format in [
        "RGB", "BGR", "RGBA", "BGRA", "RGBx", "BGRx", "GRAY8", "NV12", "I420",
    ] {
        let pipeline = gst::parse::launch(&format!(
            "videotestsrc num-buffers=5 ! video/x-raw,width=1920,height=1080,format={format} ! defectdetect model={} ! fakesink",
            test_model("squares_v8")
        ))
        .unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let bus = pipeline.bus().unwrap();
        let message = bus
            .timed_pop_filtered(
                gst::ClockTime::from_seconds(60),
                &[gst::MessageType::Eos, gst::MessageType::Error],
            )
            .expect("EOS or error");
        pipeline.set_state(gst::State::Null).unwrap();
        assert!(
            matches!(message.view(), gst::MessageView::Eos(_)),
            "{format}: {message:?}"
        );
    }
}
