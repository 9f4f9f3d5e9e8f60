// SPDX-License-Identifier: MIT OR Apache-2.0
//! A well-behaved element under faults: repeated state changes, flushing seeks, a model that
//! outputs NaN and Inf, and replacing the model while playing.

mod common;

use common::*;
use gst::prelude::*;
use gst_video::VideoFormat;

fn pipeline(description: &str) -> gst::Pipeline {
    init();
    gst::parse::launch(description)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap()
}

#[test]
fn two_hundred_null_playing_cycles() {
    let p = pipeline(&format!(
        "videotestsrc is-live=false ! video/x-raw,width=160,height=120 ! defectdetect model={} ! fakesink sync=false",
        test_model("squares_v8")
    ));
    for cycle in 0..200 {
        p.set_state(gst::State::Playing)
            .unwrap_or_else(|e| panic!("cycle {cycle}: {e}"));
        let (result, state, _) = p.state(gst::ClockTime::from_seconds(10));
        assert!(
            result.is_ok() && state == gst::State::Playing,
            "cycle {cycle}: {result:?} {state:?}"
        );
        p.set_state(gst::State::Null).unwrap();
    }
    assert!(
        p.bus()
            .unwrap()
            .pop_filtered(&[gst::MessageType::Error])
            .is_none()
    );
}

#[test]
fn a_flushing_seek_mid_stream_keeps_frames_flowing() {
    let p = pipeline(&format!(
        "videotestsrc num-buffers=60 ! video/x-raw,width=320,height=240,framerate=30/1 ! defectdetect model={} ! \
         fakesink sync=false",
        test_model("squares_v8")
    ));
    p.set_state(gst::State::Paused).unwrap();
    p.state(gst::ClockTime::from_seconds(10)).0.unwrap();
    p.set_state(gst::State::Playing).unwrap();
    let bus = p.bus().unwrap();
    let mut verdicts = 0;
    let mut seeked = false;
    for message in bus.iter_timed(gst::ClockTime::from_seconds(60)) {
        match message.view() {
            gst::MessageView::Element(e)
                if e.structure().is_some_and(|s| s.name() == "defect-verdict") =>
            {
                verdicts += 1;
                if verdicts == 20 && !seeked {
                    seeked = p
                        .seek_simple(
                            gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE,
                            gst::ClockTime::from_mseconds(500),
                        )
                        .is_ok();
                    assert!(seeked, "seek refused");
                }
            }
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("{}", e.error()),
            _ => {}
        }
    }
    p.set_state(gst::State::Null).unwrap();
    assert!(seeked);
    assert!(
        verdicts > 20,
        "frames kept flowing after the seek: {verdicts}"
    );
}

#[test]
fn nan_and_inf_outputs_are_dropped_with_a_warning() {
    init();
    let mut h = gst_check::Harness::new_parse(&format!(
        "defectdetect layout=yolov8 model={}",
        test_model("nan_v8")
    ));
    let bus = gst::Bus::new();
    h.element().unwrap().set_bus(Some(&bus));
    h.set_src_caps(caps(VideoFormat::Rgb, 256, 256));
    for _ in 0..3 {
        h.push(frame_buffer(
            &RgbImage::new(256, 256, [0, 0, 0]),
            VideoFormat::Rgb,
            0,
        ))
        .unwrap();
        let out = h.pull().unwrap();
        let found = rois(&out);
        assert_eq!(
            found.len(),
            1,
            "only the finite detection stays: {found:#?}"
        );
        assert_eq!(
            (found[0].label_id, (found[0].confidence * 10.0).round()),
            (1, 9.0)
        );
    }
    let warnings: Vec<String> = std::iter::from_fn(|| bus.pop())
        .filter_map(|m| match m.view() {
            gst::MessageView::Warning(w) => Some(w.error().to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(warnings.len(), 1, "warned once: {warnings:?}");
    assert!(warnings[0].contains("NaN or infinite"), "{warnings:?}");
}

#[test]
fn replacing_the_model_while_playing() {
    let p = pipeline(&format!(
        "appsrc name=src format=time is-live=true ! defectdetect name=d model={} ! appsink name=sink sync=false",
        test_model("squares_v8")
    ));
    let (src, sink) = app_ends(&p);
    let detect = p.by_name("d").unwrap();
    src.set_caps(Some(&caps(VideoFormat::Rgb, 640, 480)));
    p.set_state(gst::State::Playing).unwrap();
    let (image, _) = two_squares_640x480();
    let model_of = |sample: &gst::Sample| -> String {
        let meta =
            gst::meta::CustomMeta::from_buffer(sample.buffer().unwrap(), "DefectVerdictMeta")
                .unwrap();
        meta.structure().get::<String>("model-name").unwrap()
    };
    let push_and_pull = |i: u64| {
        let mut buffer = frame_buffer(&image, VideoFormat::Rgb, 0);
        buffer
            .get_mut()
            .unwrap()
            .set_pts(gst::ClockTime::from_mseconds(33 * i));
        src.push_buffer(buffer).unwrap();
        let sample = sink.pull_sample().expect("frames keep flowing");
        assert_eq!(
            rois(sample.buffer().unwrap()).len(),
            2,
            "frame {i} still detects both squares"
        );
        model_of(&sample)
    };
    for i in 0..3 {
        assert_eq!(push_and_pull(i), "squares_v8");
    }
    detect.set_property("model", test_model("squares_e2e"));
    let mut switched_at = None;
    for i in 3..200 {
        if push_and_pull(i) == "squares_e2e" {
            switched_at = Some(i);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let switched_at = switched_at.expect("the new model took over");
    // Once switched, every later frame uses it.
    for i in switched_at + 1..switched_at + 4 {
        assert_eq!(push_and_pull(i), "squares_e2e");
    }
    // An invalid model keeps the current one and warns.
    detect.set_property("model", test_model("bad_layout"));
    let bus = p.bus().unwrap();
    let warning = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(10),
            &[gst::MessageType::Warning],
        )
        .expect("a warning");
    let gst::MessageView::Warning(w) = warning.view() else {
        unreachable!()
    };
    assert!(
        w.error().to_string().contains("keeping the current model"),
        "{}",
        w.error()
    );
    for i in switched_at + 4..switched_at + 8 {
        assert_eq!(push_and_pull(i), "squares_e2e");
    }
    src.end_of_stream().unwrap();
    p.set_state(gst::State::Null).unwrap();
}

#[test]
fn caps_renegotiation_in_a_pipeline() {
    // Resolution and format change mid-stream through videoconvert/videoscale from a
    // capsfilter whose caps change while playing.
    let p = pipeline(&format!(
        "videotestsrc num-buffers=40 ! capsfilter name=f caps=video/x-raw,width=320,height=240,format=RGB ! \
         defectdetect model={} ! fakesink sync=false",
        test_model("squares_v8")
    ));
    let filter = p.by_name("f").unwrap();
    p.set_state(gst::State::Playing).unwrap();
    let bus = p.bus().unwrap();
    let mut verdicts = 0;
    for message in bus.iter_timed(gst::ClockTime::from_seconds(60)) {
        match message.view() {
            gst::MessageView::Element(e)
                if e.structure().is_some_and(|s| s.name() == "defect-verdict") =>
            {
                verdicts += 1;
                if verdicts == 10 {
                    filter.set_property(
                        "caps",
                        gst::Caps::builder("video/x-raw")
                            .field("width", 641)
                            .field("height", 359)
                            .field("format", "NV12")
                            .build(),
                    );
                } else if verdicts == 20 {
                    filter.set_property(
                        "caps",
                        gst::Caps::builder("video/x-raw")
                            .field("width", 1)
                            .field("height", 1)
                            .field("format", "GRAY8")
                            .build(),
                    );
                }
            }
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("{}: {:?}", e.error(), e.debug()),
            _ => {}
        }
    }
    p.set_state(gst::State::Null).unwrap();
    assert_eq!(verdicts, 40);
}

#[test]
fn the_latency_query_includes_the_processing_time() {
    let p = pipeline(&format!(
        "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 ! defectdetect name=d model={} ! \
         fakesink name=sink",
        test_model("squares_v8")
    ));
    p.set_state(gst::State::Playing).unwrap();
    p.state(gst::ClockTime::from_seconds(10)).0.unwrap();
    let mut query = gst::query::Latency::new();
    let sink_pad = p.by_name("sink").unwrap().static_pad("sink").unwrap();
    assert!(sink_pad.peer_query(&mut query));
    let (live, min, _) = query.result();
    // videotestsrc's own latency is one frame at most (33 ms); defectdetect adds more than 0.
    let mut upstream = gst::query::Latency::new();
    let detect_sink = p.by_name("d").unwrap().static_pad("sink").unwrap();
    assert!(detect_sink.peer_query(&mut upstream));
    p.set_state(gst::State::Null).unwrap();
    assert!(live);
    assert!(
        min > upstream.result().1,
        "defectdetect adds its processing time: {min} vs {}",
        upstream.result().1
    );
}

/// A non-live pipeline has no latency to keep: however the frame times grow, `defectdetect`
/// posts no latency message (gst-launch-1.0 would print "Redistribute latency..." for each).
#[test]
fn no_latency_messages_in_a_non_live_pipeline() {
    let p = pipeline(&format!(
        "videotestsrc num-buffers=40 ! video/x-raw,width=640,height=480 ! defectdetect name=d model={} ! \
         fakesink",
        test_model("squares_v8")
    ));
    let bus = p.bus().unwrap();
    p.set_state(gst::State::Playing).unwrap();
    let mut latency_messages = 0;
    for message in bus.iter_timed(gst::ClockTime::from_seconds(60)) {
        match message.view() {
            gst::MessageView::Latency(_) if message.src().is_some_and(|s| s.name() == "d") => {
                latency_messages += 1
            }
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("{}", e.error()),
            _ => {}
        }
    }
    p.set_state(gst::State::Null).unwrap();
    assert_eq!(latency_messages, 0);
}
