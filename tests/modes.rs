// SPDX-License-Identifier: MIT OR Apache-2.0
//! `interval` and tiling give the detections of the plain mode where they should, and tiling
//! finds a small defect on a 12 MP frame that whole-frame letterboxing misses.

mod common;

use common::*;
use gst_video::VideoFormat;

fn harness(properties: &str, format: VideoFormat, w: usize, h: usize) -> gst_check::Harness {
    init();
    let mut h_ = gst_check::Harness::new_parse(&format!(
        "defectdetect model={} {properties}",
        test_model("squares_v8")
    ));
    h_.set_src_caps(caps(format, w, h));
    h_
}

fn push(
    h: &mut gst_check::Harness,
    image: &RgbImage,
    format: VideoFormat,
) -> (Vec<Roi>, gst::Structure) {
    h.push(frame_buffer(image, format, 0)).unwrap();
    let out = h.pull().unwrap();
    let verdict = gst::meta::CustomMeta::from_buffer(&out, "DefectVerdictMeta")
        .unwrap()
        .structure()
        .to_owned();
    (rois(&out), verdict)
}

fn boxes(rois: &[Roi]) -> Vec<(i32, (u32, u32, u32, u32))> {
    let mut b: Vec<_> = rois.iter().map(|r| (r.label_id, r.rect)).collect();
    b.sort();
    b
}

#[test]
fn interval_carries_the_last_result_forward() {
    let (squares, _) = two_squares_640x480();
    let empty = RgbImage::new(640, 480, [0, 0, 0]);
    let mut plain = harness("", VideoFormat::Rgb, 640, 480);
    let (reference, _) = push(&mut plain, &squares, VideoFormat::Rgb);
    let mut h = harness("interval=3", VideoFormat::Rgb, 640, 480);
    let frames = [&squares, &empty, &empty, &empty, &squares, &squares];
    let mut seen = Vec::new();
    for frame in frames {
        let (found, verdict) = push(&mut h, frame, VideoFormat::Rgb);
        seen.push((
            boxes(&found),
            verdict.get::<bool>("carried").unwrap(),
            verdict.get::<u64>("source-frame").ok(),
        ));
    }
    assert_eq!(
        seen[0],
        (boxes(&reference), false, None),
        "frame 0 is inferred: as the plain mode"
    );
    assert_eq!(
        seen[1],
        (boxes(&reference), true, Some(0)),
        "frame 1 carries frame 0"
    );
    assert_eq!(seen[2], (boxes(&reference), true, Some(0)));
    assert_eq!(seen[3], (vec![], false, None), "frame 3 is inferred: empty");
    assert_eq!(seen[4], (vec![], true, Some(3)));
    assert_eq!(seen[5], (vec![], true, Some(3)));
}

#[test]
fn interval_one_is_the_plain_mode() {
    let (squares, _) = two_squares_640x480();
    let mut plain = harness("", VideoFormat::Nv12, 640, 480);
    let mut one = harness("interval=1", VideoFormat::Nv12, 640, 480);
    let (a, _) = push(&mut plain, &squares, VideoFormat::Nv12);
    let (b, verdict) = push(&mut one, &squares, VideoFormat::Nv12);
    assert_eq!(boxes(&a), boxes(&b));
    assert!(!verdict.get::<bool>("carried").unwrap());
}

#[test]
fn tiles_as_large_as_the_frame_are_the_plain_mode() {
    let (squares, _) = two_squares_640x480();
    let mut plain = harness("", VideoFormat::I420, 640, 480);
    let mut tiled = harness("tile-size=1024", VideoFormat::I420, 640, 480);
    let (a, _) = push(&mut plain, &squares, VideoFormat::I420);
    let (b, _) = push(&mut tiled, &squares, VideoFormat::I420);
    assert_eq!(boxes(&a), boxes(&b));
    assert_eq!(a.len(), 2);
}

#[test]
fn tiling_finds_a_small_defect_on_a_12_mp_frame() {
    // 4096x3000 mono frame; a 32-px square at (1000, 1200). Whole-frame letterboxing shrinks
    // it to 2 px; 256-px tiles keep it at 32 px. The square sits exactly on a model window
    // of the tile whose corner is (960, 1152) (tiles step by 256 - 64 = 192 px).
    let (x, y) = (1000usize, 1200usize);
    let mut image = RgbImage::new(4096, 3000, [10, 10, 10]);
    image.fill_rect(x, y, x + 32, y + 32, [255, 255, 255]);
    let mut plain = harness("", VideoFormat::Gray8, 4096, 3000);
    let (missed, _) = push(&mut plain, &image, VideoFormat::Gray8);
    assert!(
        missed.is_empty(),
        "whole-frame letterboxing should miss it: {missed:#?}"
    );
    let mut tiled = harness(
        "tile-size=256 tile-overlap=64",
        VideoFormat::Gray8,
        4096,
        3000,
    );
    let (found, _) = push(&mut tiled, &image, VideoFormat::Gray8);
    let expected = [Expected {
        class: "white_square",
        label_id: 0,
        rect: [x as f64, y as f64, (x + 32) as f64, (y + 32) as f64],
    }];
    assert_rois(&found, &expected, 4096, 3000, 2.0, "tiled 12 MP");
}

#[test]
fn a_defect_in_the_overlap_of_tiles_is_reported_once() {
    // Tiles of 256 stepping by 192: x in [192, 256) is in two tiles. A square at (200, 8) lies
    // on a window of both tiles 0 (x 0..256) and 1 (x 192..448): once after NMS.
    let mut image = RgbImage::new(640, 256, [0, 0, 0]);
    image.fill_rect(200, 8, 232, 40, [255, 255, 255]);
    let mut tiled = harness("tile-size=256 tile-overlap=64", VideoFormat::Rgb, 640, 256);
    let (found, _) = push(&mut tiled, &image, VideoFormat::Rgb);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].rect, (200, 8, 32, 32));
}

/// `test-time-flip`: the model also sees the mirrored frame; what it finds there is mapped
/// back onto the frame and merged with the plain run by NMS, so squares are reported once,
/// where they are (not at their mirror images), frame after frame, with the letterbox's border
/// on either axis. The squares model's windows are symmetric (col c mirrors to col 28 - c), so
/// the mirrored run finds every square too.
#[test]
fn test_time_flip_reports_each_square_once_where_it_is() {
    for (format, w, h) in [(VideoFormat::Rgb, 640, 480), (VideoFormat::Nv12, 480, 640)] {
        let (image, _) = two_squares(w, h);
        let mut plain = harness("", format, w, h);
        let (reference, _) = push(&mut plain, &image, format);
        assert_eq!(reference.len(), 2, "{w}x{h}: {reference:#?}");
        let mut flipped = harness("test-time-flip=true", format, w, h);
        for round in 0..2 {
            let (found, _) = push(&mut flipped, &image, format);
            assert_eq!(boxes(&found), boxes(&reference), "{w}x{h}, frame {round}");
        }
        // Only the mirrored view has the squares' mirror images: they are mapped back to
        // where they are, not reported beside the originals.
        let mut mirror = image.clone();
        for row in mirror.pixels.chunks_exact_mut(w * 3) {
            row.reverse(); // pixels reversed, and each pixel's bytes too
            for pixel in row.chunks_exact_mut(3) {
                pixel.reverse();
            }
        }
        let (mirrored_alone, _) = push(&mut plain, &mirror, format);
        assert_eq!(mirrored_alone.len(), 2);
        assert!(
            boxes(&mirrored_alone) != boxes(&reference),
            "{w}x{h}: the squares are not symmetric, so a wrong mapping would show"
        );
    }
}

/// How [`stream`] feeds its frames.
enum Feed {
    /// This many frames, as fast as possible.
    Burst(u64),
    /// One frame every 20 ms, each pulled before the next is pushed, until at least this
    /// many went through and one of them carries a result of the asynchronous worker (or
    /// 1000 frames went by): a loaded machine must not make the worker look idle.
    PacedUntilAResult(u64),
}

type Frames = Vec<(Vec<Roi>, gst::Structure)>;

/// Pushes copies of `image` through `appsrc ! defectdetect <properties> ! appsink` as
/// `feed` says and returns (rois, verdict meta) per frame and the `defect-verdict` messages.
fn stream(properties: &str, image: &RgbImage, feed: Feed) -> (Frames, usize) {
    use gst::prelude::*;
    init();
    let pipeline = gst::parse::launch(&format!(
        "appsrc name=src format=time ! defectdetect model={} {properties} ! appsink name=sink sync=false",
        test_model("squares_v8")
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let (src, sink) = app_ends(&pipeline);
    src.set_caps(Some(&caps(VideoFormat::Rgb, image.width, image.height)));
    src.set_max_bytes(0);
    pipeline.set_state(gst::State::Playing).unwrap();
    let template = frame_buffer(image, VideoFormat::Rgb, 0);
    let push = |i: u64| {
        let mut buffer = template.copy();
        buffer
            .get_mut()
            .unwrap()
            .set_pts(gst::ClockTime::from_mseconds(10 * i));
        src.push_buffer(buffer).unwrap();
    };
    let pull = |frames: &mut Frames| {
        let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(30)) else {
            return false;
        };
        let buffer = sample.buffer().unwrap();
        let verdict = gst::meta::CustomMeta::from_buffer(buffer, "DefectVerdictMeta")
            .unwrap()
            .structure()
            .to_owned();
        frames.push((rois(buffer), verdict));
        true
    };
    let mut frames = Vec::new();
    match feed {
        Feed::Burst(count) => (0..count).for_each(push),
        Feed::PacedUntilAResult(at_least) => {
            for i in 0..1000 {
                push(i);
                assert!(pull(&mut frames), "frame {i} came out");
                let carried =
                    |(_, verdict): &(Vec<Roi>, gst::Structure)| verdict.has_field("source-frame");
                if i + 1 >= at_least && frames.iter().any(carried) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    }
    src.end_of_stream().unwrap();
    while pull(&mut frames) {}
    let bus = pipeline.bus().unwrap();
    let messages = std::iter::from_fn(|| bus.pop())
        .filter(|m| m.structure().is_some_and(|s| s.name() == "defect-verdict"))
        .count();
    pipeline.set_state(gst::State::Null).unwrap();
    (frames, messages)
}

#[test]
fn asynchronous_inference_gives_every_frame_a_verdict_and_the_plain_detections() {
    let (squares, _) = two_squares_640x480();
    let (plain, _) = stream("", &squares, Feed::Burst(1));
    let reference = boxes(&plain[0].0);
    let (frames, messages) = stream(
        "async-inference=true",
        &squares,
        Feed::PacedUntilAResult(60),
    );
    assert!(frames.len() >= 60, "every frame comes out");
    assert_eq!(messages, frames.len(), "one verdict message per frame");
    let mut sources = std::collections::BTreeSet::new();
    for (i, (found, verdict)) in frames.iter().enumerate() {
        assert_eq!(verdict.get::<u64>("frame").unwrap(), i as u64);
        match verdict.get::<u64>("source-frame") {
            Ok(source) => {
                assert!(verdict.get::<bool>("carried").unwrap());
                assert!(source <= i as u64, "results come from earlier frames");
                assert_eq!(
                    boxes(found),
                    reference,
                    "frame {i} carries the plain mode's detections"
                );
                sources.insert(source);
            }
            Err(_) => assert!(found.is_empty(), "no result yet: nothing detected"),
        }
    }
    assert!(!sources.is_empty(), "the worker produced results");
    let skipped = frames
        .last()
        .unwrap()
        .1
        .get::<u64>("skipped-frames")
        .unwrap();
    println!(
        "async: {} frames inferred, {skipped} skipped",
        sources.len()
    );
}

#[test]
fn asynchronous_inference_skips_frames_under_overload() {
    // 12 MP frames tiled into 30 tiles: inference is far slower than pushing.
    let mut big = RgbImage::new(4096, 3000, [10, 10, 10]);
    big.fill_rect(1000, 1200, 1032, 1232, [255, 255, 255]);
    let (frames, messages) = stream("async-inference=true tile-size=640", &big, Feed::Burst(40));
    assert_eq!((frames.len(), messages), (40, 40));
    let skipped = frames
        .last()
        .unwrap()
        .1
        .get::<u64>("skipped-frames")
        .unwrap();
    assert!(skipped > 0, "under overload frames are skipped and counted");
}

#[test]
fn detectors_of_the_same_model_share_one_session() {
    use gstdefect::runtime::{Detector, DetectorOptions, Provider};
    init();
    let options = DetectorOptions {
        model: test_model("squares_v8").into(),
        provider: Provider::Cpu,
        threads: 1,
        ..Default::default()
    };
    let (a, _) = Detector::load(&options).unwrap();
    let (b, _) = Detector::load(&options).unwrap();
    assert_eq!((a.session_users(), b.session_users()), (2, 2));
    let other = DetectorOptions {
        threads: 2,
        ..options.clone()
    };
    let (c, _) = Detector::load(&other).unwrap();
    assert_eq!(
        c.session_users(),
        1,
        "other thread settings: a session of its own"
    );
    drop(a);
    assert_eq!(b.session_users(), 1);
}

#[test]
fn two_elements_on_one_model_both_detect() {
    use gst::prelude::*;
    init();
    let (squares, _) = two_squares_640x480();
    let pipeline = gst::parse::launch(&format!(
        "appsrc name=src format=time ! tee name=t \
         t. ! queue ! defectdetect model={m} threads=1 ! appsink name=a sync=false \
         t. ! queue ! defectdetect model={m} threads=1 ! appsink name=b sync=false",
        m = test_model("squares_v8")
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let src = pipeline
        .by_name("src")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    src.set_caps(Some(&caps(VideoFormat::Rgb, 640, 480)));
    pipeline.set_state(gst::State::Playing).unwrap();
    for i in 0..10 {
        let mut buffer = frame_buffer(&squares, VideoFormat::Rgb, 0);
        buffer
            .get_mut()
            .unwrap()
            .set_pts(gst::ClockTime::from_mseconds(33 * i));
        src.push_buffer(buffer).unwrap();
    }
    src.end_of_stream().unwrap();
    for name in ["a", "b"] {
        let sink = pipeline
            .by_name(name)
            .unwrap()
            .downcast::<gst_app::AppSink>()
            .unwrap();
        let mut count = 0;
        while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(30)) {
            assert_eq!(rois(sample.buffer().unwrap()).len(), 2);
            count += 1;
        }
        assert_eq!(count, 10, "{name}");
    }
    pipeline.set_state(gst::State::Null).unwrap();
}
