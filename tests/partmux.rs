// SPDX-License-Identifier: MIT OR Apache-2.0
//! `defectpartmux`: one verdict per part from several cameras.
//!
//! - Harness tests drive the camera pads with `defect-part-verdict` events built here (as
//!   `defectdetect` sends them): out-of-order parts, the timeout firing with no more data, a
//!   camera at its end, a released pad and its return, a camera that is not required.
//! - Pipeline tests run two real camera branches (`appsrc ! defectdetect` with the
//!   `squares_v8` test model) on frames rendered here: two views of the same six parts, some
//!   defects visible to one view only, with the truth per part. The joined verdicts must equal
//!   the truth; a camera stalled mid-run gives UNKNOWN for exactly the parts it missed (FAIL
//!   where the other camera saw a defect) and recovers; `defectmodbussink` behind the muxer
//!   pulses once per rejected part against a Modbus peer on 127.0.0.1.

mod common;
#[allow(dead_code)]
#[path = "plc/peers.rs"]
mod peers;

use std::time::{Duration, Instant};

use common::*;
use gst::prelude::*;
use gstdefect::meta::prelude::*;
use gstdefect::meta::{self, CameraStatus, PartVerdictMeta, Verdict};

// ---------------------------------------------------------------------------------------
// Harness tests

fn part(id: &str, verdict: Verdict) -> gst::Event {
    PartVerdictMeta {
        part_id: id.into(),
        verdict,
        first_frame: 0,
        last_frame: 9,
        frames: 10,
        inspected_frames: 10,
        counts: [u32::from(verdict == Verdict::Fail), 0, 0, 0],
        model_id: "m".into(),
        ..PartVerdictMeta::default()
    }
    .to_event()
}

/// A muxer with two camera pads (`top` on `sink_0`, `side` on `sink_1`), a harness on each;
/// the first also reads the muxer's output. Its bus is `bus`.
struct Mux {
    top: gst_check::Harness,
    side: gst_check::Harness,
    element: gst::Element,
    bus: gst::Bus,
}

impl Mux {
    fn new(timeout_ms: u32, side_required: bool) -> Self {
        init();
        let element = gst::ElementFactory::make("defectpartmux")
            .property("timeout-ms", timeout_ms)
            .build()
            .unwrap();
        let bus = gst::Bus::new();
        element.set_bus(Some(&bus));
        let mut top = gst_check::Harness::with_element(&element, Some("sink_0"), Some("src"));
        let mut side = gst_check::Harness::with_element(&element, Some("sink_1"), None);
        let proxy = element.dynamic_cast_ref::<gst::ChildProxy>().unwrap();
        proxy.set_child_property("sink_0::camera-name", "top");
        proxy.set_child_property("sink_1::camera-name", "side");
        proxy.set_child_property("sink_1::required", side_required);
        for h in [&mut top, &mut side] {
            h.set_src_caps_str("video/x-raw,format=RGB,width=4,height=4,framerate=30/1");
        }
        top.play();
        side.play();
        Self {
            top,
            side,
            element,
            bus,
        }
    }

    fn pad(&self, name: &str) -> gst::Pad {
        self.element.static_pad(name).unwrap()
    }

    fn counter(&self, pad: &str, name: &str) -> u64 {
        self.pad(pad).property::<u64>(name)
    }

    /// The joined parts pushed so far (each event is followed by an empty buffer).
    fn parts(&mut self) -> Vec<PartVerdictMeta> {
        let mut parts = Vec::new();
        while let Some(event) = self.top.try_pull_event() {
            if let gst::EventView::CustomDownstream(c) = event.view()
                && let Some(read) = c.structure().and_then(PartVerdictMeta::from_structure)
            {
                parts.push(read.unwrap());
                let buffer = self.top.try_pull().expect("a buffer after each part");
                assert_eq!(buffer.size(), 0);
            }
        }
        parts
    }

    /// The joined parts, waiting up to `wait` for `n` of them.
    fn wait_parts(&mut self, n: usize, wait: Duration) -> Vec<PartVerdictMeta> {
        let deadline = Instant::now() + wait;
        let mut parts = self.parts();
        while parts.len() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
            parts.extend(self.parts());
        }
        parts
    }

    /// Warnings and infos on the bus, as (kind, text).
    fn notes(&self) -> Vec<(&'static str, String)> {
        let mut notes = Vec::new();
        while let Some(m) = self.bus.pop() {
            match m.view() {
                gst::MessageView::Warning(w) => notes.push(("warning", w.error().to_string())),
                gst::MessageView::Info(i) => notes.push(("info", i.error().to_string())),
                _ => {}
            }
        }
        notes
    }
}

fn verdicts(parts: &[PartVerdictMeta]) -> Vec<(&str, Verdict)> {
    parts
        .iter()
        .map(|p| (p.part_id.as_str(), p.verdict))
        .collect()
}

fn side_status(p: &PartVerdictMeta) -> CameraStatus {
    p.cameras.iter().find(|c| c.name == "side").unwrap().status
}

#[test]
fn parts_out_of_order_are_joined_to_the_worst_verdict_naming_each_camera() {
    let mut mux = Mux::new(5000, true);
    // The side camera is ahead: it reports parts 1 and 2 before the top one reports 1.
    mux.side.push_event(part("1", Verdict::Fail));
    mux.side.push_event(part("2", Verdict::Pass));
    assert!(mux.parts().is_empty());
    mux.top.push_event(part("1", Verdict::Pass));
    mux.top.push_event(part("2", Verdict::Review));
    mux.top.push_event(part("3", Verdict::Unknown));
    mux.side.push_event(part("3", Verdict::Pass));
    let parts = mux.parts();
    assert_eq!(
        verdicts(&parts),
        [
            ("1", Verdict::Fail),
            ("2", Verdict::Review),
            ("3", Verdict::Unknown)
        ]
    );
    let cameras: Vec<(&str, Verdict, CameraStatus)> = parts[0]
        .cameras
        .iter()
        .map(|c| (c.name.as_str(), c.verdict, c.status))
        .collect();
    assert_eq!(
        cameras,
        [
            ("top", Verdict::Pass, CameraStatus::Reported),
            ("side", Verdict::Fail, CameraStatus::Reported)
        ]
    );
    assert_eq!((parts[0].frames, parts[0].counts[0]), (20, 1));
    // The stream has its own caps; frames pushed by the cameras do not come out.
    mux.top.push(gst::Buffer::with_size(48).unwrap()).unwrap();
    assert!(mux.top.try_pull().is_none());
    let caps = mux.pad("src").current_caps().unwrap();
    assert_eq!(caps.structure(0).unwrap().name(), meta::fields::PARTS_CAPS);
    // Each joined part is posted on the bus too.
    assert_eq!(mux.element.property::<u64>("parts"), 3);
    assert_eq!(mux.counter("sink_1", "reported"), 3);
    assert!(mux.notes().is_empty());
}

#[test]
fn a_camera_that_does_not_report_makes_the_part_unknown_without_more_data() {
    let mut mux = Mux::new(200, true);
    let t0 = Instant::now();
    mux.top.push_event(part("1", Verdict::Pass));
    // Nothing more comes: the timer joins the part.
    let parts = mux.wait_parts(1, Duration::from_secs(5));
    let waited = t0.elapsed();
    assert_eq!(verdicts(&parts), [("1", Verdict::Unknown)]);
    assert!(
        waited >= Duration::from_millis(200),
        "joined after {waited:?}"
    );
    assert_eq!(side_status(&parts[0]), CameraStatus::Timeout);
    // A second missed part: counted, no second warning.
    mux.top.push_event(part("2", Verdict::Fail));
    assert_eq!(
        verdicts(&mux.wait_parts(1, Duration::from_secs(5))),
        [("2", Verdict::Fail)]
    );
    let notes = mux.notes();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].0 == "warning" && notes[0].1.contains("side") && notes[0].1.contains("part 1"),
        "{notes:?}"
    );
    assert_eq!(mux.counter("sink_1", "timeouts"), 2);
    // Its late report of part 1 is dropped and counted; it is back (an info message).
    mux.side.push_event(part("1", Verdict::Fail));
    assert!(mux.parts().is_empty());
    assert_eq!(mux.counter("sink_1", "late"), 1);
    let notes = mux.notes();
    assert!(
        notes.len() == 1 && notes[0].0 == "info" && notes[0].1.contains("side"),
        "{notes:?}"
    );
    mux.side.push_event(part("3", Verdict::Pass));
    mux.top.push_event(part("3", Verdict::Pass));
    assert_eq!(verdicts(&mux.parts()), [("3", Verdict::Pass)]);
}

#[test]
fn a_camera_at_its_end_makes_its_parts_unknown_until_it_is_back_and_eos_flushes() {
    let mut mux = Mux::new(60_000, true);
    mux.top.push_event(part("1", Verdict::Pass));
    mux.side.push_event(gst::event::Eos::new());
    // Part 1 waited only for the side camera: joined at once, UNKNOWN.
    let parts = mux.parts();
    assert_eq!(verdicts(&parts), [("1", Verdict::Unknown)]);
    assert_eq!(side_status(&parts[0]), CameraStatus::Stopped);
    mux.top.push_event(part("2", Verdict::Pass));
    assert_eq!(verdicts(&mux.parts()), [("2", Verdict::Unknown)]);
    assert_eq!(mux.counter("sink_1", "stopped-parts"), 2);
    let notes = mux.notes();
    assert!(
        notes.len() == 1 && notes[0].0 == "warning" && notes[0].1.contains("side"),
        "{notes:?}"
    );
    // A new stream on the side pad: back, waited for again.
    mux.side.push_event(gst::event::FlushStart::new());
    mux.side.push_event(gst::event::FlushStop::new(true));
    mux.side.push_event(gst::event::StreamStart::new("side-2"));
    mux.top.push_event(part("3", Verdict::Pass));
    assert!(mux.parts().is_empty());
    mux.side.push_event(part("3", Verdict::Pass));
    assert_eq!(verdicts(&mux.parts()), [("3", Verdict::Pass)]);
    // End of stream on every pad joins what is pending and ends the output.
    mux.top.push_event(part("4", Verdict::Review));
    mux.top.push_event(gst::event::Eos::new());
    assert!(mux.parts().is_empty());
    mux.side.push_event(gst::event::Eos::new());
    let mut saw_eos = false;
    let mut parts = Vec::new();
    while let Some(event) = mux.top.try_pull_event() {
        match event.view() {
            gst::EventView::CustomDownstream(c) => {
                parts.push(
                    PartVerdictMeta::from_structure(c.structure().unwrap())
                        .unwrap()
                        .unwrap(),
                );
            }
            gst::EventView::Eos(_) => saw_eos = true,
            _ => {}
        }
    }
    // The side camera never reported part 4: UNKNOWN, worse than the top camera's REVIEW.
    assert_eq!(verdicts(&parts), [("4", Verdict::Unknown)]);
    assert_eq!(side_status(&parts[0]), CameraStatus::Stopped);
    assert!(saw_eos);
}

#[test]
fn a_released_camera_is_unknown_until_a_pad_takes_its_name() {
    let mut mux = Mux::new(60_000, true);
    let side = mux.pad("sink_1");
    mux.element.release_request_pad(&side);
    mux.top.push_event(part("1", Verdict::Pass));
    let parts = mux.parts();
    assert_eq!(verdicts(&parts), [("1", Verdict::Unknown)]);
    assert_eq!(side_status(&parts[0]), CameraStatus::Stopped);
    // The camera is plugged in again on a new pad.
    let mut again = gst_check::Harness::with_element(&mux.element, Some("sink_5"), None);
    again.set_src_caps_str("video/x-raw,format=RGB,width=4,height=4,framerate=30/1");
    mux.pad("sink_5").set_property("camera-name", "side");
    again.play();
    mux.top.push_event(part("2", Verdict::Pass));
    assert!(mux.parts().is_empty());
    again.push_event(part("2", Verdict::Review));
    let parts = mux.parts();
    assert_eq!(verdicts(&parts), [("2", Verdict::Review)]);
    assert_eq!(parts[0].cameras.len(), 2);
    let notes = mux.notes();
    assert_eq!(
        notes.iter().map(|n| n.0).collect::<Vec<_>>(),
        ["warning", "info"],
        "{notes:?}"
    );
}

#[test]
fn a_camera_that_is_not_required_counts_only_when_it_reports() {
    let mut mux = Mux::new(150, false);
    // Missing: the top camera's verdict alone, PASS; listed as timed out.
    mux.top.push_event(part("1", Verdict::Pass));
    let parts = mux.wait_parts(1, Duration::from_secs(5));
    assert_eq!(verdicts(&parts), [("1", Verdict::Pass)]);
    assert_eq!(side_status(&parts[0]), CameraStatus::Timeout);
    // Reported: its FAIL fails the part.
    mux.top.push_event(part("2", Verdict::Pass));
    mux.side.push_event(part("2", Verdict::Fail));
    assert_eq!(verdicts(&mux.parts()), [("2", Verdict::Fail)]);
    // Only it reported: the required top camera missing makes the part UNKNOWN.
    mux.side.push_event(part("3", Verdict::Pass));
    assert_eq!(
        verdicts(&mux.wait_parts(1, Duration::from_secs(5))),
        [("3", Verdict::Unknown)]
    );
}

// ---------------------------------------------------------------------------------------
// Pipeline tests: two cameras with the model

/// What each camera sees of each part: true when the defect is in its view.
const VIEWS: [(bool, bool); 6] = [
    (false, false),
    (true, false),
    (false, true),
    (true, true),
    (false, false),
    (false, true),
];
const FRAMES_PER_PART: usize = 2;
/// `timeout-ms` of the runs where a camera stalls.
const STALL_TIMEOUT_MS: u32 = 4000;

/// The truth of a part: defective when one view shows its defect.
fn truth(part: usize) -> Verdict {
    let (top, side) = VIEWS[part];
    if top || side {
        Verdict::Fail
    } else {
        Verdict::Pass
    }
}

fn frame(defect: bool, part: usize, n: u64) -> gst::Buffer {
    let image = if defect {
        two_squares_640x480().0
    } else {
        RgbImage::new(640, 480, [10, 10, 10])
    };
    let mut buffer = frame_buffer(&image, gst_video::VideoFormat::Rgb, 0);
    let b = buffer.get_mut().unwrap();
    b.set_pts(gst::ClockTime::from_mseconds(n * 33));
    let mut meta = gst::meta::CustomMeta::add(b, meta::PART_META).unwrap();
    meta.mut_structure()
        .set(meta::fields::PART_ID, part.to_string());
    buffer
}

struct Line {
    pipeline: gst::Pipeline,
    top: gst_app::AppSrc,
    side: gst_app::AppSrc,
    bus: gst::Bus,
    frames: [u64; 2],
    /// Messages taken off the bus and not yet asked for.
    unread: Vec<gst::Message>,
}

impl Line {
    /// Two camera branches into `defectpartmux`, its output into `tail`.
    fn new(timeout_ms: u32, tail: &str) -> Self {
        init();
        let model = test_model("squares_v8");
        let caps = "video/x-raw,format=RGB,width=640,height=480,framerate=30/1";
        let pipeline = gst::parse::launch(&format!(
            "defectpartmux name=mux timeout-ms={timeout_ms} \
               sink_0::camera-name=top sink_1::camera-name=side ! {tail} \
             appsrc name=top format=time caps={caps} ! defectdetect name=dtop model={model} ! mux.sink_0 \
             appsrc name=side format=time caps={caps} ! defectdetect name=dside model={model} ! mux.sink_1"
        ))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let src = |name: &str| {
            pipeline
                .by_name(name)
                .unwrap()
                .downcast::<gst_app::AppSrc>()
                .unwrap()
        };
        let (top, side) = (src("top"), src("side"));
        let bus = pipeline.bus().unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        Self {
            pipeline,
            top,
            side,
            bus,
            frames: [0, 0],
            unread: Vec::new(),
        }
    }

    fn push(&mut self, camera: usize, part: usize, frames: usize) {
        let (src, defect) = if camera == 0 {
            (&self.top, VIEWS[part].0)
        } else {
            (&self.side, VIEWS[part].1)
        };
        for _ in 0..frames {
            src.push_buffer(frame(defect, part, self.frames[camera]))
                .unwrap();
            self.frames[camera] += 1;
        }
    }

    /// Waits for the `defect-part-verdict` message of `part` posted by `element`.
    fn part_message(&mut self, element: &str, part: usize) -> PartVerdictMeta {
        let wanted = |m: &gst::Message| {
            m.src().is_some_and(|s| s.name() == element)
                && m.structure()
                    .and_then(PartVerdictMeta::from_structure)
                    .and_then(Result::ok)
                    .is_some_and(|p| p.part_id == part.to_string())
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(i) = self.unread.iter().position(wanted) {
                let m = self.unread.remove(i);
                return PartVerdictMeta::from_structure(m.structure().unwrap())
                    .unwrap()
                    .unwrap();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no part verdict of part {part} from {element}"
            );
            match self
                .bus
                .timed_pop(gst::ClockTime::from_nseconds(left.as_nanos() as u64))
            {
                Some(m) => {
                    if let gst::MessageView::Error(e) = m.view() {
                        panic!("error: {} ({:?})", e.error(), e.debug());
                    }
                    self.unread.push(m);
                }
                None => panic!("no part verdict of part {part} from {element}"),
            }
        }
    }

    /// Ends both cameras and waits for the end of the stream.
    fn finish(&mut self) {
        self.top.end_of_stream().unwrap();
        self.side.end_of_stream().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self
                .unread
                .iter()
                .any(|m| matches!(m.view(), gst::MessageView::Eos(_)))
            {
                return;
            }
            assert!(Instant::now() < deadline, "no end of stream");
            if let Some(m) = self.bus.timed_pop(gst::ClockTime::from_mseconds(100)) {
                if let gst::MessageView::Error(e) = m.view() {
                    panic!("error: {} ({:?})", e.error(), e.debug());
                }
                self.unread.push(m);
            }
        }
    }

    fn mux_pad_counter(&self, pad: &str, name: &str) -> u64 {
        let mux = self.pipeline.by_name("mux").unwrap();
        mux.static_pad(pad).unwrap().property::<u64>(name)
    }

    fn warnings(&self) -> Vec<String> {
        self.unread
            .iter()
            .filter_map(|m| match m.view() {
                gst::MessageView::Warning(w) => Some(w.error().to_string()),
                _ => None,
            })
            .collect()
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// Runs the six parts; the side camera misses the parts in `stalled` (it sees the first frame
/// of the first of them, then nothing until the part after the last). Returns the joined
/// parts in order.
fn run_line(line: &mut Line, stalled: std::ops::RangeInclusive<usize>) -> Vec<PartVerdictMeta> {
    let mut joined = Vec::new();
    for part in 0..VIEWS.len() {
        if stalled.contains(&part) {
            if part == *stalled.start() {
                // The side camera sees the part's first frame (ending its previous part),
                // then stalls.
                line.push(1, part, 1);
                if part > 0 {
                    line.part_message("dside", part - 1);
                }
            }
            line.push(0, part, FRAMES_PER_PART);
            if part > 0 && !stalled.contains(&(part - 1)) {
                joined.push(line.part_message("mux", part - 1));
            }
        } else if part > 0 && stalled.contains(&(part - 1)) {
            // The top camera goes on; the timer joins the missed parts with no further
            // report from the side camera, which then comes back: its report of the part it
            // stalled in comes late and is dropped.
            line.push(0, part, FRAMES_PER_PART);
            for missed in stalled.clone() {
                joined.push(line.part_message("mux", missed));
            }
            line.push(1, part, FRAMES_PER_PART);
            line.part_message("dside", *stalled.start());
        } else {
            // The side camera is a little ahead of the top one.
            line.push(1, part, FRAMES_PER_PART);
            line.push(0, part, FRAMES_PER_PART);
            if part > 0 {
                joined.push(line.part_message("mux", part - 1));
            }
        }
    }
    line.finish();
    joined.push(line.part_message("mux", VIEWS.len() - 1));
    joined
}

#[test]
fn two_cameras_join_to_the_truth() {
    let mut line = Line::new(
        5000,
        "defectmetaconvert source-id=station ! fakesink name=out sync=false",
    );
    // The NDJSON lines that reach the sink.
    let text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let seen = text.clone();
    let out = line.pipeline.by_name("out").unwrap();
    out.static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(buffer) = info.buffer() {
                let map = buffer.map_readable().unwrap();
                seen.lock()
                    .unwrap()
                    .push_str(std::str::from_utf8(&map).unwrap());
            }
            gst::PadProbeReturn::Ok
        });
    // Nothing stalls (an empty range).
    #[allow(clippy::reversed_empty_ranges)]
    let joined = run_line(&mut line, 99..=98);
    let got: Vec<(String, Verdict)> = joined
        .iter()
        .map(|p| (p.part_id.clone(), p.verdict))
        .collect();
    let want: Vec<(String, Verdict)> = (0..VIEWS.len())
        .map(|p| (p.to_string(), truth(p)))
        .collect();
    assert_eq!(got, want);
    // Each camera's entry is its own view of the part.
    for (p, part) in joined.iter().enumerate() {
        let seen: Vec<Verdict> = part.cameras.iter().map(|c| c.verdict).collect();
        let (top, side) = VIEWS[p];
        let v = |defect| if defect { Verdict::Fail } else { Verdict::Pass };
        assert_eq!(seen, [v(top), v(side)], "part {p}");
        assert!(
            part.cameras
                .iter()
                .all(|c| c.status == CameraStatus::Reported)
        );
    }
    assert!(line.warnings().is_empty(), "{:?}", line.warnings());
    // defectmetaconvert wrote one part record per joined part, with its cameras.
    let records: Vec<serde_json::Value> = text
        .lock()
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), VIEWS.len(), "{records:?}");
    for (p, record) in records.iter().enumerate() {
        assert_eq!(record["type"], "part");
        assert_eq!(record["verdict"], truth(p).as_str());
        assert_eq!(record["cameras"][0]["camera"], "top");
        assert_eq!(record["cameras"][1]["camera"], "side");
        assert_eq!(record["cameras"][1]["frames"], FRAMES_PER_PART as u64);
    }
}

#[test]
fn a_camera_stalled_mid_run_gives_unknown_for_exactly_the_parts_it_missed_and_recovers() {
    // The timeout leaves the two cameras' branches seconds apart on a loaded machine; the
    // stalled parts wait for it.
    let mut line = Line::new(STALL_TIMEOUT_MS, "fakesink sync=false");
    let joined = run_line(&mut line, 2..=3);
    for (p, part) in joined.iter().enumerate() {
        assert_eq!(part.part_id, p.to_string());
        let side = &part.cameras[1];
        if (2..=3).contains(&p) {
            // Missed: UNKNOWN, unless the top camera saw a defect (FAIL wins).
            assert_eq!(side.status, CameraStatus::Timeout, "part {p}");
            let want = if VIEWS[p].0 {
                Verdict::Fail
            } else {
                Verdict::Unknown
            };
            assert_eq!(part.verdict, want, "part {p}");
        } else {
            assert_eq!(side.status, CameraStatus::Reported, "part {p}");
            assert_eq!(part.verdict, truth(p), "part {p}");
        }
    }
    assert_eq!(line.mux_pad_counter("sink_1", "timeouts"), 2);
    assert_eq!(line.mux_pad_counter("sink_1", "late"), 1);
    assert_eq!(line.mux_pad_counter("sink_0", "timeouts"), 0);
    let warnings = line.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("side"), "{warnings:?}");
}

#[test]
fn the_reject_gate_pulses_once_per_rejected_part_not_once_per_camera() {
    const COIL: u16 = 3;
    let peer = peers::ModbusPeer::start(&[]);
    let mut line = Line::new(
        STALL_TIMEOUT_MS,
        &format!(
            "defectmodbussink name=plc host=127.0.0.1 port={} reject-coil={COIL} \
             reject-delay-ms=100 pulse-ms=10 max-pulse-lateness-ms=500",
            peer.port
        ),
    );
    let plc = line.pipeline.by_name("plc").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !plc.property::<bool>("connected") {
        assert!(
            Instant::now() < deadline,
            "not connected to the Modbus peer"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // The side camera stalls over parts 2 and 3: part 2 is UNKNOWN (rejected too).
    let joined = run_line(&mut line, 2..=3);
    let rejected = joined
        .iter()
        .filter(|p| matches!(p.verdict, Verdict::Fail | Verdict::Unknown))
        .count();
    // Parts 1, 2 (UNKNOWN), 3, 5.
    assert_eq!(rejected, 4);
    // Each camera reported its FAILs: two per part seen by both, yet one pulse per part.
    std::thread::sleep(Duration::from_millis(300));
    let pulses = peer.ended_pulses(COIL);
    let rejects: u32 = pulses.iter().map(|p| p.rejects).sum();
    assert_eq!(rejects as usize, rejected, "pulses {pulses:?}");
}
