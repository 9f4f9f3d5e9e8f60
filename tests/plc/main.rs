// SPDX-License-Identifier: MIT OR Apache-2.0
//! `defectmodbussink` and `defectopcuasink` against real protocol peers on 127.0.0.1 started
//! by the tests: a pymodbus Modbus TCP server that records every coil and register write with
//! its time (`tests/peers/modbus_server.py`), and `async-opcua`'s OPC UA client.
//!
//! Timing: a pulse must reach the peer no earlier than 1 ms before its due time (the element
//! saw the frame a few microseconds after the test's probe did) and no later than
//! `LATE_TOLERANCE_US` after it. The tolerance is for a shared 2-core CI machine running the
//! model and a Python peer; `cargo bench --bench reject_timing` measures the distribution on
//! an idle machine.

#[path = "../common/mod.rs"]
mod common;
mod peers;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use gst::prelude::*;
use gstdefect::meta;
use gstdefect::meta::prelude::*;
use opcua::crypto::SecurityPolicy;
use opcua::types::{MessageSecurityMode, Variant};
use peers::*;

const LATE_TOLERANCE_US: i64 = 50_000;
const EARLY_TOLERANCE_US: i64 = 1_000;
const COIL: u16 = 3;
const STATUS: u16 = 10;

/// A buffer with a `DefectVerdictMeta` as `defectdetect` attaches it.
fn verdict_buffer(frame: u64, verdict: &str, shadow: bool, part: Option<&str>) -> gst::Buffer {
    let mut buffer = gst::Buffer::with_size(16).unwrap();
    let buffer_mut = buffer.get_mut().unwrap();
    buffer_mut.set_pts(gst::ClockTime::from_mseconds(frame * 33));
    let failing = u32::from(verdict == "FAIL" || verdict == "REVIEW");
    let reason = meta::Reason {
        peak_score: None,
        mean_score: None,
        label_id: 5,
        label: "scratches".into(),
        confidence: 0.9,
        x_min: 1.0,
        y_min: 2.0,
        x_max: 30.0,
        y_max: 40.0,
        severity: meta::Severity::Critical,
        decision: meta::Decision::Fail,
    };
    meta::VerdictMeta {
        task: String::new(),
        anomaly_score: None,
        verdict: meta::Verdict::parse(verdict).expect("a verdict"),
        shadow,
        part_id: part.map(str::to_string),
        frame,
        inspected: true,
        carried: false,
        skipped_frames: 0,
        source_frame: None,
        counts: [failing, 2 * failing, 0, 0],
        model: meta::ModelRef {
            id: "test:1.2.3:0123456789ab".into(),
            name: "test".into(),
            version: "1.2.3".into(),
            sha256: "0123456789ab".into(),
        },
        policy_sha256: None,
        inference_ms: 1.0,
        total_ms: 2.0,
        reasons: (failing > 0).then_some(reason).into_iter().collect(),
        capture_dropped: None,
    }
    .attach(buffer_mut);
    buffer
}

fn part_event(part: &str, verdict: &str, last_frame: u64) -> gst::Event {
    meta::PartVerdictMeta {
        part_id: part.into(),
        verdict: meta::Verdict::parse(verdict).expect("a verdict"),
        shadow: false,
        first_frame: 0,
        last_frame,
        frames: last_frame + 1,
        inspected_frames: last_frame + 1,
        counts: [1, 0, 0, 0],
        model_id: "test:1.2.3:0123456789ab".into(),
        cameras: Vec::new(),
    }
    .to_event()
}

/// A harness around an element made from a launch description with `properties` (the
/// harness starts it).
fn harness(factory: &str, properties: &[(&str, &str)]) -> gst_check::Harness {
    let description = properties
        .iter()
        .fold(factory.to_string(), |d, (name, value)| {
            format!("{d} {name}={value}")
        });
    let mut h = gst_check::Harness::new_parse(&description);
    h.set_src_caps_str("video/x-raw,format=RGB,width=4,height=4,framerate=30/1");
    h
}

fn modbus_harness(peer: &ModbusPeer, extra: &[(&str, &str)]) -> gst_check::Harness {
    let port = peer.port.to_string();
    let coil = COIL.to_string();
    let status = STATUS.to_string();
    let mut properties = vec![
        ("host", "127.0.0.1"),
        ("port", port.as_str()),
        ("reject-coil", coil.as_str()),
        ("status-register", status.as_str()),
        ("max-pulse-lateness-ms", "100"),
        ("max-backoff-ms", "200"),
    ];
    properties.extend_from_slice(extra);
    let mut h = harness("defectmodbussink", &properties);
    h.play();
    let element = h.find_element("defectmodbussink").unwrap();
    wait_until(Duration::from_secs(10), "connected to the peer", || {
        element.property::<bool>("connected")
    });
    h
}

fn wait_until(timeout: Duration, what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Pulses against expected due times (both sorted): same count, each within tolerance.
fn assert_pulses_at(pulses: &[Pulse], due_us: &[i64], pulse_ms: i64, context: &str) {
    let ons: Vec<i64> = pulses.iter().map(|p| p.on_us).collect();
    assert_eq!(
        pulses.len(),
        due_us.len(),
        "{context}: pulses at {ons:?}, expected at {due_us:?}"
    );
    for (pulse, due) in pulses.iter().zip(due_us) {
        let late = pulse.on_us - due;
        assert!(
            (-EARLY_TOLERANCE_US..=LATE_TOLERANCE_US).contains(&late),
            "{context}: pulse {late} us after its due time (pulses {ons:?}, due {due_us:?})"
        );
        let off = pulse.off_us.expect("the pulse ended");
        let length = off - pulse.on_us;
        assert!(
            (length - pulse_ms * 1000).abs() <= LATE_TOLERANCE_US,
            "{context}: pulse of {length} us, pulse-ms {pulse_ms}"
        );
    }
}

#[test]
fn frame_verdicts_pulse_fail_frames_at_the_delay_and_fill_the_status_block() {
    init();
    let peer = ModbusPeer::start(&[]);
    let mut h = modbus_harness(
        &peer,
        &[
            ("unit", "frame"),
            ("reject-delay-ms", "300"),
            ("pulse-ms", "50"),
            // SCHED_FIFO where allowed; where refused, a warning and normal priority.
            ("realtime-priority", "10"),
        ],
    );
    let element = h.find_element("defectmodbussink").unwrap();
    let mut due = Vec::new();
    let frames = [
        ("PASS", false),
        ("FAIL", false),
        ("REVIEW", false),
        ("FAIL", true),
        ("UNKNOWN", true),
        ("UNKNOWN", false),
        ("FAIL", false),
    ];
    for (n, (verdict, shadow)) in frames.into_iter().enumerate() {
        let t = now_us();
        h.push(verdict_buffer(n as u64, verdict, shadow, None))
            .unwrap();
        // A frame the model did not judge is rejected as a FAIL (reject-unknown, default on).
        if (verdict == "FAIL" || verdict == "UNKNOWN") && !shadow {
            due.push(t + 300_000);
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    // Without reject-unknown, an UNKNOWN frame does not pulse (mutable while playing) ...
    element.set_property("reject-unknown", false);
    h.push(verdict_buffer(7, "UNKNOWN", false, None)).unwrap();
    std::thread::sleep(Duration::from_millis(150));
    // ... and REVIEW rejects too, once asked for.
    element.set_property("reject-review", true);
    let t = now_us();
    h.push(verdict_buffer(8, "REVIEW", false, None)).unwrap();
    due.push(t + 300_000);
    assert!(h.push_event(gst::event::Eos::new()));
    // EOS went through once every queued reject fell due and the coil is off again.
    assert_pulses_at(&peer.ended_pulses(COIL), &due, 50, "frame unit");
    assert_eq!(element.property::<u64>("pulses"), 4);
    assert_eq!(element.property::<u64>("missed-rejects"), 0);

    wait_until(Duration::from_secs(3), "the status block", || {
        peer.last_block(STATUS).is_some_and(|b| b[13..15] == [0, 4])
    });
    let block = peer.last_block(STATUS).unwrap();
    assert_eq!(block.len(), 27);
    assert_eq!(block[1], 3, "last verdict REVIEW: {block:?}");
    assert_eq!(block[2] & 0b11, 0b10, "not shadow, reject asked: {block:?}");
    assert_eq!(&block[3..7], &[1, 2, 0, 0], "severity counts: {block:?}");
    assert_eq!(
        &block[7..13],
        &[0, 1, 0, 3, 0, 2],
        "PASS, FAIL, REVIEW: {block:?}"
    );
    assert_eq!(&block[25..27], &[0, 3], "UNKNOWN: {block:?}");
    assert_eq!(&block[15..17], &[0, 0], "missed: {block:?}");
    let version: Vec<u8> = block[17..25].iter().flat_map(|w| w.to_be_bytes()).collect();
    assert!(version.starts_with(b"1.2.3\0"), "{version:?}");
    // The heartbeat went out every second (at least twice in the ~1.3 s run).
    let heartbeats: Vec<u16> = peer
        .writes()
        .iter()
        .filter(|w| w.fc == 6 && w.address == STATUS)
        .map(|w| w.values[0].as_u64().unwrap() as u16)
        .collect();
    assert!(
        heartbeats.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
        "{heartbeats:?}"
    );
    drop(h);
}

#[test]
fn part_verdicts_pulse_from_the_last_frame_and_late_ones_are_missed_not_fired() {
    init();
    let peer = ModbusPeer::start(&[]);
    let mut h = modbus_harness(&peer, &[("reject-delay-ms", "250"), ("pulse-ms", "40")]);
    let element = h.find_element("defectmodbussink").unwrap();
    let mut last_seen = 0;
    for n in 0..4u64 {
        last_seen = now_us();
        h.push(verdict_buffer(
            n,
            if n == 1 { "FAIL" } else { "PASS" },
            false,
            Some("a"),
        ))
        .unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    // The verdict comes a while after the part's last frame: the delay counts from that frame.
    std::thread::sleep(Duration::from_millis(100));
    assert!(h.push_event(part_event("a", "FAIL", 3)));
    h.push(verdict_buffer(4, "PASS", false, Some("b"))).unwrap();
    assert!(h.push_event(part_event("b", "PASS", 4)));
    // A part whose verdict arrives after its due time (0 ms delay): missed, never fired late.
    element.set_property("reject-delay-ms", 0u32);
    h.push(verdict_buffer(5, "FAIL", false, Some("c"))).unwrap();
    std::thread::sleep(Duration::from_millis(150));
    let (tx, rx) = std::sync::mpsc::channel();
    let bus = gst::Bus::new();
    h.element().unwrap().set_bus(Some(&bus));
    bus.set_sync_handler(move |_, message| {
        if let Some(s) = message.structure()
            && s.name().starts_with("defect-reject")
        {
            let _ = tx.send(s.to_owned());
        }
        gst::BusSyncReply::Drop
    });
    assert!(h.push_event(part_event("c", "FAIL", 5)));
    assert!(h.push_event(gst::event::Eos::new()));
    assert_pulses_at(
        &peer.ended_pulses(COIL),
        &[last_seen + 250_000],
        40,
        "part unit",
    );
    assert_eq!(element.property::<u64>("pulses"), 1);
    assert_eq!(element.property::<u64>("missed-rejects"), 1);
    let missed = rx.recv_timeout(Duration::from_secs(2)).unwrap();
    assert_eq!(missed.name(), "defect-reject-missed");
    assert_eq!(missed.get::<String>("label").unwrap(), "part c");
    let reason = missed.get::<String>("reason").unwrap();
    assert!(reason.contains("past its due time"), "{reason}");
}

#[test]
fn encoder_counts_set_the_reject_position() {
    init();
    // An encoder running at 1000 counts/s: 300 counts are 300 ms.
    let peer = ModbusPeer::start(&["--encoder-register", "100", "--encoder-rate", "1000"]);
    let mut h = modbus_harness(
        &peer,
        &[
            ("unit", "frame"),
            ("encoder-register", "100"),
            ("reject-delay-counts", "300"),
            ("encoder-poll-ms", "2"),
            ("pulse-ms", "30"),
        ],
    );
    let element = h.find_element("defectmodbussink").unwrap();
    let mut due = Vec::new();
    for n in 0..3u64 {
        let t = now_us();
        h.push(verdict_buffer(n, "FAIL", false, None)).unwrap();
        due.push(t + 300_000);
        std::thread::sleep(Duration::from_millis(120));
    }
    assert!(h.push_event(gst::event::Eos::new()));
    // One encoder count is 1 ms and the reading 2 ms: a few ms either side of 300 ms.
    let pulses = peer.ended_pulses(COIL);
    assert_eq!(pulses.len(), 3, "{pulses:?}");
    for (p, d) in pulses.iter().zip(&due) {
        let off = p.on_us - d;
        assert!(
            (-5_000..=LATE_TOLERANCE_US).contains(&off),
            "pulse {off} us from 300 counts after the frame"
        );
    }
    assert_eq!(element.property::<u64>("missed-rejects"), 0);
}

#[test]
fn a_plc_away_at_start_is_a_warning_and_its_rejects_are_missed() {
    init();
    let port = free_port();
    let element = gst::ElementFactory::make("defectmodbussink")
        .property("port", u32::from(port))
        .property_from_str("unit", "frame")
        .property("reject-delay-ms", 10u32)
        .property("max-backoff-ms", 200u32)
        .build()
        .unwrap();
    // The bus first: the harness starts the element, and the warning comes at once.
    let bus = gst::Bus::new();
    element.set_bus(Some(&bus));
    let mut h = gst_check::Harness::with_element(&element, Some("sink"), None);
    h.set_src_caps_str("video/x-raw,format=RGB,width=4,height=4,framerate=30/1");
    h.play();
    h.push(verdict_buffer(0, "FAIL", false, None)).unwrap();
    assert!(h.push_event(gst::event::Eos::new()));
    assert_eq!(element.property::<u64>("missed-rejects"), 1);
    let warnings: Vec<String> = std::iter::from_fn(|| bus.pop())
        .filter_map(|m| match m.view() {
            gst::MessageView::Warning(w) => Some(w.error().to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(warnings.len(), 1, "one warning per outage: {warnings:?}");
    assert!(
        warnings[0].contains(&format!("127.0.0.1:{port}")),
        "{warnings:?}"
    );
}

// ---------------------------------------------------------------------------------------
// The coil is left off on every way out.

/// `defectmodbussink` against the peer at `port` with a bus of its own (`unit=frame`, coil
/// `COIL`, no status block), started and connected.
fn sink_with_bus(
    port: u16,
    extra: &[(&str, &str)],
) -> (gst_check::Harness, gst::Element, gst::Bus) {
    let mut builder = gst::ElementFactory::make("defectmodbussink")
        .property("port", u32::from(port))
        .property("reject-coil", u32::from(COIL))
        .property("status-register", -1i32)
        .property_from_str("unit", "frame")
        .property("reject-delay-ms", 10u32)
        .property("max-backoff-ms", 200u32);
    for (name, value) in extra {
        builder = builder.property_from_str(name, value);
    }
    let element = builder.build().unwrap();
    let bus = gst::Bus::new();
    element.set_bus(Some(&bus));
    let mut h = gst_check::Harness::with_element(&element, Some("sink"), None);
    h.set_src_caps_str("video/x-raw,format=RGB,width=4,height=4,framerate=30/1");
    h.play();
    wait_until(Duration::from_secs(10), "connected to the peer", || {
        element.property::<bool>("connected")
    });
    (h, element, bus)
}

fn bus_errors(bus: &gst::Bus) -> Vec<String> {
    std::iter::from_fn(|| bus.pop())
        .filter_map(|m| match m.view() {
            gst::MessageView::Error(e) => Some(e.error().to_string()),
            _ => None,
        })
        .collect()
}

#[test]
fn coil_acknowledged_on_then_the_connection_drops_the_off_is_written_within_the_drain() {
    init();
    let plc = ScriptedPlc::start(PlcScript {
        drop_after_coil_on: Some(Some(Duration::from_millis(700))),
        ..Default::default()
    });
    let (mut h, _element, bus) = sink_with_bus(plc.port, &[("drain-timeout-ms", "5000")]);
    h.push(verdict_buffer(0, "FAIL", false, None)).unwrap();
    wait_until(Duration::from_secs(5), "the coil on", || {
        plc.coil_writes().iter().any(|w| w.on)
    });
    // The PLC is away for 700 ms: the EOS waits for it, and the coil is written off.
    assert!(h.push_event(gst::event::Eos::new()));
    let writes = plc.coil_writes();
    let on = writes.iter().find(|w| w.on).unwrap().t_us;
    assert!(
        writes
            .iter()
            .any(|w| !w.on && w.acknowledged && w.coil == COIL && w.t_us > on),
        "the coil was not written off before the EOS went on: {writes:?}"
    );
    assert!(bus_errors(&bus).is_empty());
}

#[test]
fn coil_acknowledged_on_then_the_plc_gone_is_an_error_naming_the_coil() {
    init();
    let plc = ScriptedPlc::start(PlcScript {
        drop_after_coil_on: Some(None),
        ..Default::default()
    });
    let (mut h, _element, bus) = sink_with_bus(plc.port, &[("drain-timeout-ms", "800")]);
    h.push(verdict_buffer(0, "FAIL", false, None)).unwrap();
    wait_until(Duration::from_secs(5), "the coil on", || {
        plc.coil_writes().iter().any(|w| w.on)
    });
    let started = Instant::now();
    h.push_event(gst::event::Eos::new());
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "the EOS waited the drain"
    );
    let errors = bus_errors(&bus);
    assert!(
        errors
            .iter()
            .any(|e| e.contains(&format!("coil {COIL}")) && e.contains("may still be on")),
        "no error naming the coil: {errors:?}"
    );
}

#[test]
fn a_plc_refusing_every_coil_off_counts_the_rejects_missed_and_is_an_error() {
    init();
    let plc = ScriptedPlc::start(PlcScript {
        refuse_coil_off: true,
        ..Default::default()
    });
    let (mut h, element, bus) =
        sink_with_bus(plc.port, &[("pulse-ms", "50"), ("drain-timeout-ms", "500")]);
    for frame in 0..5 {
        h.push(verdict_buffer(frame, "FAIL", false, None)).unwrap();
        std::thread::sleep(Duration::from_millis(150));
    }
    h.push_event(gst::event::Eos::new());
    let writes = plc.coil_writes();
    assert!(
        writes.iter().any(|w| !w.on && !w.acknowledged),
        "{writes:?}"
    );
    // The coil went on once and never off: one pulse, the other rejects missed.
    assert_eq!(element.property::<u64>("pulses"), 1, "{writes:?}");
    assert_eq!(element.property::<u64>("missed-rejects"), 4, "{writes:?}");
    let errors = bus_errors(&bus);
    assert!(
        errors
            .iter()
            .any(|e| e.contains(&format!("coil {COIL}")) && e.contains("refused")),
        "no error naming the coil: {errors:?}"
    );
}

#[test]
fn sigterm_to_a_pipeline_script_mid_pulse_leaves_the_coil_off() {
    init();
    let peer = ModbusPeer::start(&[]);
    let out = std::env::temp_dir().join(format!("defect-plc-sigterm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let mut child = std::process::Command::new("bash")
        .arg(repo_path("pipelines/video-file.sh"))
        .env("RECORDING", "")
        .env("OUT_DIR", &out)
        .env("DETECT_PROPS", "frames-per-part=25")
        .env("MODBUS_HOST", "127.0.0.1")
        .env("MODBUS_PORT", peer.port.to_string())
        .env(
            "MODBUS_PROPS",
            format!(
                "unit=frame reject-coil={COIL} status-register=-1 reject-delay-ms=0 \
                 pulse-ms=60000 drain-timeout-ms=500"
            ),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A pulse of a minute is on: then the service is stopped.
    let deadline = Instant::now() + Duration::from_secs(300);
    while peer.pulses(COIL).is_empty() {
        assert!(
            Instant::now() < deadline && child.try_wait().unwrap().is_none(),
            "no pulse while the line ran"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the line did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    use std::io::Read;
    let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
    let pulses = peer.ended_pulses(COIL);
    assert!(
        pulses.last().is_some_and(|p| p.off_us.is_some()),
        "the coil was left on: {pulses:?} ({status}) {stderr}"
    );
    assert!(status.success(), "{status}: {stderr}");
    let _ = std::fs::remove_dir_all(&out);
}

// ---------------------------------------------------------------------------------------
// The bundled video through the real model.

/// Part ids of the bundled video's frames, from its ground truth.
fn truth_parts() -> Vec<i64> {
    let text = std::fs::read_to_string(repo_path("tests/data/conveyor_color.coco.json")).unwrap();
    let coco: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut parts: Vec<(u64, i64)> = coco["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["id"].as_u64().unwrap(), i["part_id"].as_i64().unwrap()))
        .collect();
    parts.sort();
    parts.into_iter().map(|(_, p)| p).collect()
}

/// A frame as the PLC sink saw it: frame number, part id, when.
#[derive(Debug, Clone)]
struct Arrival {
    part: Option<String>,
    t_us: i64,
}

struct VideoRun {
    pipeline: gst::Pipeline,
    records: Arc<Mutex<Vec<serde_json::Value>>>,
    arrivals: Arc<Mutex<Vec<Arrival>>>,
    messages: Vec<gst::Message>,
}

impl VideoRun {
    /// The bundled video with the parts of its ground truth (as an application tracking
    /// parts would attach them), `defectdetect`, then a tee to `sinks` and to the records.
    fn new(detect: &str, pace: bool, sinks: &str) -> VideoRun {
        let pipeline = gst::parse::launch(&format!(
            "filesrc location={} ! decodebin ! videoconvert ! identity name=parts sync={pace} ! \
             defectdetect model={} policy={} threads=2 {detect} ! tee name=t \
             t. ! queue ! defectmetaconvert source-id=line-1 ! appsink name=records sync=false \
             {sinks}",
            repo_path("tests/data/conveyor_color.mp4").display(),
            repo_path("models/surface-defects.onnx").display(),
            repo_path("pipelines/policy.toml").display(),
        ))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let truth = truth_parts();
        let frame = std::sync::atomic::AtomicUsize::new(0);
        pipeline
            .by_name("parts")
            .unwrap()
            .static_pad("src")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                let n = frame.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if let Some(gst::PadProbeData::Buffer(buffer)) = info.data.as_mut()
                    && let Some(part) = truth.get(n).filter(|p| **p >= 0)
                {
                    let buffer = buffer.make_mut();
                    let mut custom = gst::meta::CustomMeta::add(buffer, meta::PART_META).unwrap();
                    custom.mut_structure().set("part-id", part.to_string());
                }
                gst::PadProbeReturn::Ok
            });
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        if let Some(plc) = pipeline.by_name("plc") {
            let arrivals = arrivals.clone();
            plc.static_pad("sink")
                .unwrap()
                .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                    if let Some(buffer) = info.buffer() {
                        let t_us = now_us();
                        let v = gstdefect::plc::verdict::frame_verdict(buffer)
                            .expect("every frame has a verdict")
                            .expect("as the contract says");
                        arrivals.lock().unwrap().push(Arrival {
                            part: v.part_id,
                            t_us,
                        });
                    }
                    gst::PadProbeReturn::Ok
                });
        }
        let records = Arc::new(Mutex::new(Vec::new()));
        let sink = pipeline
            .by_name("records")
            .unwrap()
            .downcast::<gst_app::AppSink>()
            .unwrap();
        let into = records.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let map = sample.buffer().unwrap().map_readable().unwrap();
                    let mut records = into.lock().unwrap();
                    for line in std::str::from_utf8(&map).unwrap().lines() {
                        records.push(serde_json::from_str(line).unwrap());
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        VideoRun {
            pipeline,
            records,
            arrivals,
            messages: Vec::new(),
        }
    }

    fn element(&self, name: &str) -> gst::Element {
        self.pipeline.by_name(name).unwrap()
    }

    /// Bus messages so far; true once EOS came. Panics on an error.
    fn poll_bus(&mut self) -> bool {
        let bus = self.pipeline.bus().unwrap();
        let mut eos = false;
        while let Some(message) = bus.pop() {
            match message.view() {
                gst::MessageView::Error(e) => {
                    panic!("{}: {:?}", e.error(), e.debug())
                }
                gst::MessageView::Eos(_) => eos = true,
                _ => {}
            }
            self.messages.push(message);
        }
        eos
    }

    fn wait_eos(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(900);
        while !self.poll_bus() {
            assert!(Instant::now() < deadline, "no EOS");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn part_records(&self) -> Vec<serde_json::Value> {
        self.records
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r["type"] == "part")
            .cloned()
            .collect()
    }

    /// When the PLC sink saw the last frame of each part.
    fn last_seen(&self) -> BTreeMap<String, i64> {
        let mut last = BTreeMap::new();
        for a in self.arrivals.lock().unwrap().iter() {
            if let Some(part) = &a.part {
                last.insert(part.clone(), a.t_us);
            }
        }
        last
    }

    /// Due times of the parts to reject (FAIL, and UNKNOWN: not inspected), in order: last
    /// frame seen plus the delay.
    fn reject_due(&self, delay_ms: i64) -> Vec<(String, i64)> {
        let last = self.last_seen();
        let mut due: Vec<(String, i64)> = self
            .part_records()
            .iter()
            .filter(|r| {
                (r["verdict"] == "FAIL" || r["verdict"] == "UNKNOWN") && r["shadow"] == false
            })
            .map(|r| {
                let id = r["part_id"].as_str().unwrap().to_string();
                let seen = *last
                    .get(&id)
                    .unwrap_or_else(|| panic!("part {id} never seen"));
                (id, seen + delay_ms * 1000)
            })
            .collect();
        due.sort_by_key(|(_, t)| *t);
        due
    }

    fn warnings_from(&self, name: &str) -> Vec<String> {
        self.messages
            .iter()
            .filter(|m| m.src().is_some_and(|s| s.name() == name))
            .filter_map(|m| match m.view() {
                gst::MessageView::Warning(w) => Some(w.error().to_string()),
                _ => None,
            })
            .collect()
    }
}

impl Drop for VideoRun {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

const DELAY_MS: i64 = 1500;
const PULSE_MS: i64 = 100;

fn plc_branch(peer: &ModbusPeer, extra: &str) -> String {
    format!(
        "t. ! queue ! defectmodbussink name=plc host=127.0.0.1 port={} reject-coil={COIL} \
         status-register={STATUS} reject-delay-ms={DELAY_MS} pulse-ms={PULSE_MS} \
         max-pulse-lateness-ms=100 max-backoff-ms=200 {extra}",
        peer.port
    )
}

fn count_verdicts(parts: &[serde_json::Value]) -> [u64; 4] {
    ["PASS", "FAIL", "REVIEW", "UNKNOWN"]
        .map(|v| parts.iter().filter(|r| r["verdict"] == v).count() as u64)
}

#[test]
fn bundled_video_one_pulse_per_fail_part_and_opcua_counters_match_the_records() {
    init();
    let peer = ModbusPeer::start(&[]);
    let mut run = VideoRun::new(
        "",
        false,
        &format!(
            "{} t. ! queue ! defectopcuasink name=opcua port=0 source-id=line-1",
            plc_branch(&peer, "")
        ),
    );
    run.pipeline.set_state(gst::State::Paused).unwrap();
    let opcua = run.element("opcua");
    wait_until(Duration::from_secs(10), "the OPC UA server", || {
        opcua.property::<u32>("bound-port") != 0
    });
    let url = opcua.property::<String>("endpoint-url");
    let client = OpcUaClient::connect(
        &url,
        "line-1",
        SecurityPolicy::None,
        MessageSecurityMode::None,
    )
    .expect("OPC UA session");
    client.subscribe_all();
    run.pipeline.set_state(gst::State::Playing).unwrap();
    run.wait_eos();

    // Modbus: one pulse per FAIL (or UNKNOWN) part at its due time, none for PASS or REVIEW.
    let parts = run.part_records();
    let [pass, fail, review, unknown] = count_verdicts(&parts);
    println!("parts: {pass} PASS, {fail} FAIL, {review} REVIEW, {unknown} UNKNOWN");
    assert!(
        fail > 0 && pass > 0,
        "the bundled video has failing and passing parts"
    );
    let due: Vec<i64> = run.reject_due(DELAY_MS).iter().map(|(_, t)| *t).collect();
    let pulses = peer.ended_pulses(COIL);
    for (p, d) in pulses.iter().zip(&due) {
        println!("pulse {} us after its due time", p.on_us - d);
    }
    assert_pulses_at(&pulses, &due, PULSE_MS, "bundled video");
    let plc = run.element("plc");
    assert_eq!(plc.property::<u64>("pulses"), fail + unknown);
    assert_eq!(plc.property::<u64>("missed-rejects"), 0);
    // The last status write reaches the test through the peer's output a moment later.
    let words = |b: &[u16], i: usize| u64::from(b[i]) << 16 | u64::from(b[i + 1]);
    wait_until(Duration::from_secs(3), "the final status block", || {
        peer.last_block(STATUS)
            .is_some_and(|b| [words(&b, 7), words(&b, 9), words(&b, 11)] == [pass, fail, review])
    });
    let block = peer.last_block(STATUS).expect("a status block");
    let word = |i: usize| words(&block, i);
    assert_eq!(
        [word(7), word(9), word(11), word(25)],
        [pass, fail, review, unknown]
    );

    // OPC UA: the counters equal the records' counts (read once the last update landed).
    let names = [
        "PassCount",
        "FailCount",
        "ReviewCount",
        "UnknownCount",
        "FrameCount",
        "ShadowMode",
    ];
    let expected = vec![
        Variant::from(pass),
        Variant::from(fail),
        Variant::from(review),
        Variant::from(unknown),
        Variant::from(300u64),
        Variant::from(false),
    ];
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut values = client.read(&names);
    while values != expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        values = client.read(&names);
    }
    assert_eq!(values, expected, "{names:?}");
    let last = parts.last().unwrap();
    let [verdict, part_id, model] = client
        .read(&["LastVerdict", "LastPartId", "ModelVersion"])
        .try_into()
        .unwrap();
    assert_eq!(verdict, Variant::from(last["verdict"].as_str().unwrap()));
    assert_eq!(part_id, Variant::from(last["part_id"].as_str().unwrap()));
    assert!(
        matches!(&model, Variant::String(s) if s.as_ref().starts_with("surface-defects:")),
        "{model:?}"
    );
    // The subscription saw the counters grow to the same values.
    wait_until(Duration::from_secs(3), "the last FailCount change", || {
        client.changes_of("FailCount").last() == Some(&Variant::from(fail))
    });
    let fails = client.changes_of("FailCount");
    assert!(
        fails.windows(2).all(|w| match (&w[0], &w[1]) {
            (Variant::UInt64(a), Variant::UInt64(b)) => a < b,
            _ => false,
        }),
        "{fails:?}"
    );
    assert!(
        client
            .changes_of("LastDefects")
            .iter()
            .any(|v| matches!(v, Variant::Array(a) if !a.values.is_empty()))
    );
    client.disconnect();
    run.pipeline.set_state(gst::State::Null).unwrap();
}

#[test]
fn bundled_video_in_shadow_mode_never_pulses() {
    init();
    let peer = ModbusPeer::start(&[]);
    let mut run = VideoRun::new("shadow-mode=true", false, &plc_branch(&peer, ""));
    run.pipeline.set_state(gst::State::Playing).unwrap();
    run.wait_eos();
    let parts = run.part_records();
    let fails = parts.iter().filter(|r| r["verdict"] == "FAIL").count();
    assert!(fails > 0, "shadow mode still has FAIL verdicts to ignore");
    assert!(parts.iter().all(|r| r["shadow"] == true));
    assert_eq!(peer.pulses(COIL), [], "no pulse in shadow mode");
    let plc = run.element("plc");
    assert_eq!(plc.property::<u64>("pulses"), 0);
    assert_eq!(plc.property::<u64>("missed-rejects"), 0);
    wait_until(Duration::from_secs(3), "the final status block", || {
        peer.last_block(STATUS)
            .is_some_and(|b| u64::from(b[9]) << 16 | u64::from(b[10]) == fails as u64)
    });
    let block = peer.last_block(STATUS).expect("a status block");
    assert_eq!(
        block[2] & 0b11,
        0b01,
        "shadow flag, no reject asked: {block:?}"
    );
    run.pipeline.set_state(gst::State::Null).unwrap();
}

#[test]
fn bundled_video_plc_killed_and_restarted_mid_stream() {
    init();
    let mut peer = ModbusPeer::start(&[]);
    // Paced at 30 frames/s (at most), as a camera delivers them.
    let mut run = VideoRun::new("", true, &plc_branch(&peer, ""));
    run.pipeline.set_state(gst::State::Playing).unwrap();
    let deadline = Instant::now() + Duration::from_secs(600);
    let step = |run: &mut VideoRun| {
        assert!(!run.poll_bus(), "EOS before the outage was over");
        assert!(Instant::now() < deadline, "stuck");
        std::thread::sleep(Duration::from_millis(5));
    };
    // The first pulse done, the PLC goes away.
    while peer.pulses(COIL).first().is_none_or(|p| p.off_us.is_none()) {
        step(&mut run);
    }
    let before = peer.pulses(COIL);
    peer.kill();
    let killed_us = now_us();
    // ... and comes back once a FAIL part fell due while it was away.
    loop {
        let now = now_us();
        if run
            .reject_due(DELAY_MS)
            .iter()
            .any(|(_, t)| *t > killed_us && *t + 100_000 < now)
        {
            break;
        }
        step(&mut run);
    }
    let pulses_before_restart = peer.pulses(COIL).len();
    peer.launch();
    let restarted_us = now_us();
    run.wait_eos();

    // Reconnected: the first write the new server handled (the coil written off).
    let reconnected_us = peer
        .writes()
        .iter()
        .map(|w| w.t_us)
        .find(|t| *t >= restarted_us)
        .expect("the element reconnected");
    let due = run.reject_due(DELAY_MS);
    let during: Vec<&(String, i64)> = due
        .iter()
        .filter(|(_, t)| *t >= killed_us && *t < reconnected_us)
        .collect();
    let after: Vec<i64> = due
        .iter()
        .filter(|(_, t)| *t >= reconnected_us)
        .map(|(_, t)| *t)
        .collect();
    println!(
        "FAIL parts due {:?}; PLC away from {killed_us} to {reconnected_us}",
        due
    );
    assert!(!during.is_empty());
    let plc = run.element("plc");
    assert_eq!(
        plc.property::<u64>("missed-rejects"),
        during.len() as u64,
        "missed: the FAIL parts due while away {during:?}"
    );
    // Nothing was fired late into the new connection, and pulses resumed after it.
    assert_eq!(pulses_before_restart, before.len());
    let resumed: Vec<Pulse> = peer
        .ended_pulses(COIL)
        .into_iter()
        .filter(|p| p.on_us >= restarted_us)
        .collect();
    assert!(
        !after.is_empty(),
        "a FAIL part after the outage (the last part)"
    );
    assert_pulses_at(&resumed, &after, PULSE_MS, "after reconnection");
    assert_eq!(
        plc.property::<u64>("pulses") as usize,
        before.len() + resumed.len()
    );
    // One warning for the outage, naming the PLC.
    let warnings = run.warnings_from("plc");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains(&format!("127.0.0.1:{}", peer.port)),
        "{warnings:?}"
    );
    println!(
        "outage of {} ms: {} FAIL parts due in it, missed-rejects {}; pulses {} before, {} after; \
         warning: {}",
        (reconnected_us - killed_us) / 1000,
        during.len(),
        plc.property::<u64>("missed-rejects"),
        before.len(),
        resumed.len(),
        warnings[0]
    );
    // The records flowed on: every frame has its record.
    let frames = run
        .records
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r["type"] == "frame")
        .count();
    assert_eq!(frames, 300);
    run.pipeline.set_state(gst::State::Null).unwrap();
}

// ---------------------------------------------------------------------------------------
// OPC UA without the model.

fn opcua_harness(extra: &[(&str, &str)]) -> gst_check::Harness {
    let mut properties = vec![("port", "0"), ("source-id", "cell-7")];
    properties.extend_from_slice(extra);
    let mut h = harness("defectopcuasink", &properties);
    h.play();
    h
}

#[test]
fn opcua_basic256sha256_endpoint_with_certificates() {
    init();
    let pki = std::env::temp_dir().join(format!("defect-opcua-pki-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&pki);
    let mut h = opcua_harness(&[
        ("security-mode", "sign-and-encrypt"),
        ("pki-dir", pki.to_str().unwrap()),
        ("trust-client-certificates", "true"),
        ("unit", "frame"),
    ]);
    let element = h.find_element("defectopcuasink").unwrap();
    assert!(
        pki.join("own/cert.der").is_file(),
        "a self-signed certificate was made"
    );
    let url = element.property::<String>("endpoint-url");
    h.push(verdict_buffer(0, "FAIL", false, Some("p1")))
        .unwrap();
    let client = OpcUaClient::connect(
        &url,
        "cell-7",
        SecurityPolicy::Basic256Sha256,
        MessageSecurityMode::SignAndEncrypt,
    )
    .expect("a secure session");
    let deadline = Instant::now() + Duration::from_secs(5);
    let names = ["LastVerdict", "FailCount", "LastDefects", "LastPartId"];
    let mut values = client.read(&names);
    while values[1] != Variant::from(1u64) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        values = client.read(&names);
    }
    assert_eq!(values[0], Variant::from("FAIL"));
    assert_eq!(values[1], Variant::from(1u64));
    assert_eq!(
        values[2],
        Variant::from(vec![opcua::types::UAString::from("scratches")])
    );
    assert_eq!(values[3], Variant::from("p1"));
    client.disconnect();
    // No unsecured endpoint is offered.
    let insecure = OpcUaClient::connect(
        &url,
        "cell-7",
        SecurityPolicy::None,
        MessageSecurityMode::None,
    );
    assert!(insecure.is_err(), "security None must be refused");
    drop(h);
    let _ = std::fs::remove_dir_all(&pki);
}

#[test]
fn opcua_port_taken_is_a_clear_error() {
    init();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let element = gst::ElementFactory::make("defectopcuasink")
        .property("port", u32::from(port))
        .build()
        .unwrap();
    let bus = gst::Bus::new();
    element.set_bus(Some(&bus));
    assert!(element.set_state(gst::State::Paused).is_err());
    let error = std::iter::from_fn(|| bus.pop())
        .find_map(|m| match m.view() {
            gst::MessageView::Error(e) => Some(e.error().to_string()),
            _ => None,
        })
        .expect("an error message");
    assert!(error.contains(&format!("127.0.0.1:{port}")), "{error}");
    element.set_state(gst::State::Null).unwrap();
}

/// What an anonymous client may not do: write a variable, add nodes, call a method; what
/// a hostile peer sends (garbage, a Hello with absurd sizes) closes its connection and the
/// server goes on serving.
#[test]
fn opcua_refuses_writes_node_management_method_calls_and_hostile_bytes() {
    use std::io::{Read, Write};
    init();
    let mut h = opcua_harness(&[("unit", "frame")]);
    let element = h.find_element("defectopcuasink").unwrap();
    let port = element.property::<u32>("bound-port") as u16;
    h.push(verdict_buffer(0, "FAIL", false, None)).unwrap();
    let url = format!("opc.tcp://127.0.0.1:{port}/");

    // Garbage, and a Hello asking for 4 GiB messages: the server closes both connections.
    let hello_huge = {
        let mut m = b"HELF".to_vec();
        m.extend_from_slice(&32u32.to_le_bytes());
        for v in [0u32, 0, 0, u32::MAX, u32::MAX] {
            m.extend_from_slice(&v.to_le_bytes());
        }
        m.extend_from_slice(&u32::MAX.to_le_bytes());
        m
    };
    for bytes in [vec![0xA5u8; 4096], hello_huge] {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let _ = stream.write_all(&bytes);
        let mut rest = Vec::new();
        // EOF or a reset: closed; a read timing out: still open.
        let closed = match stream.read_to_end(&mut rest) {
            Ok(_) => true,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        };
        assert!(closed, "the server kept a hostile connection open");
    }

    let client = OpcUaClient::connect(
        &url,
        "cell-7",
        SecurityPolicy::None,
        MessageSecurityMode::None,
    )
    .expect("a session after the hostile connections");
    let verdict = client.node("LastVerdict");
    let written = client
        .runtime
        .block_on(client.session.write(&[opcua::types::WriteValue {
            node_id: verdict.clone(),
            attribute_id: opcua::types::AttributeId::Value as u32,
            index_range: Default::default(),
            value: opcua::types::DataValue::new_now(Variant::from("PASS")),
        }]));
    assert!(
        written
            .as_ref()
            .map_or(true, |codes| codes.iter().all(|c| !c.is_good())),
        "an anonymous write was accepted: {written:?}"
    );
    let added = client
        .runtime
        .block_on(client.session.add_nodes(&[opcua::types::AddNodesItem {
            parent_node_id: client.folder().into(),
            reference_type_id: opcua::types::ReferenceTypeId::Organizes.into(),
            requested_new_node_id: opcua::types::NodeId::new(2, "Intruder").into(),
            browse_name: "Intruder".into(),
            node_class: opcua::types::NodeClass::Object,
            node_attributes: Default::default(),
            type_definition: opcua::types::ObjectTypeId::BaseObjectType.into(),
        }]));
    assert!(
        added
            .as_ref()
            .map_or(true, |r| r.iter().all(|r| !r.status_code.is_good())),
        "node management was accepted: {added:?}"
    );
    let called =
        client
            .runtime
            .block_on(client.session.call_one(opcua::types::CallMethodRequest {
                object_id: client.folder(),
                method_id: verdict.clone(),
                input_arguments: None,
            }));
    assert!(
        called.as_ref().map_or(true, |r| !r.status_code.is_good()),
        "a method call was accepted: {called:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while client.read(&["LastVerdict"])[0] != Variant::from("FAIL") {
        assert!(Instant::now() < deadline, "LastVerdict changed");
        std::thread::sleep(Duration::from_millis(20));
    }
    client.disconnect();
}

/// Connections to the test's OPC UA port: each is still open (true) or was closed by the
/// server (false).
fn still_open(streams: &mut [std::net::TcpStream]) -> Vec<bool> {
    use std::io::Read;
    streams
        .iter_mut()
        .map(|s| {
            s.set_nonblocking(true).unwrap();
            let mut byte = [0u8; 1];
            match s.read(&mut byte) {
                Ok(0) => false,
                Ok(_) => true,
                Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
            }
        })
        .collect()
}

#[test]
fn opcua_connection_flood_is_capped_and_the_rest_of_the_pipeline_goes_on() {
    init();
    // A process allowed 256 descriptors: 400 connections would take them all.
    let port = free_port();
    let out = std::env::temp_dir().join(format!("defect-opcua-flood-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let line = format!(
        "ulimit -n 256; exec gst-launch-1.0 -e videotestsrc is-live=true num-buffers=150 ! \
         video/x-raw,width=64,height=48,framerate=30/1 ! tee name=t \
         t. ! queue ! defectopcuasink port={port} max-connections=8 \
         t. ! queue ! multifilesink location={}/frame-%05d.raw",
        out.display()
    );
    let child = std::process::Command::new("bash")
        .args(["-c", &line])
        .env("GST_PLUGIN_PATH", repo_path("target/debug"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the OPC UA port never opened");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
    let mut streams: Vec<_> = (0..400)
        .filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let open = still_open(&mut streams).into_iter().filter(|o| *o).count();
    assert!(
        open <= 8,
        "{open} of {} connections still open, max-connections=8",
        streams.len()
    );
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{}: {}{stderr}",
        output.status,
        String::from_utf8_lossy(&output.stdout)
    );
    let frames = std::fs::read_dir(&out).unwrap().count();
    assert_eq!(frames, 150, "frames written beside the server: {stderr}");
    drop(streams);
    let _ = std::fs::remove_dir_all(&out);
}

// ---------------------------------------------------------------------------------------
// pipelines/: a line with both machine outputs.

#[test]
fn pipelines_line_with_modbus_and_opcua_outputs() {
    init();
    let peer = ModbusPeer::start(&[]);
    let opcua_port = free_port();
    let out = std::env::temp_dir().join(format!("defect-plc-pipeline-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let script = repo_path("pipelines/video-file.sh");
    let env = [
        ("NUM_BUFFERS", "150".to_string()),
        ("RECORDING", String::new()),
        ("OUT_DIR", out.display().to_string()),
        ("DETECT_PROPS", "frames-per-part=25".to_string()),
        ("MODBUS_HOST", "127.0.0.1".to_string()),
        ("MODBUS_PORT", peer.port.to_string()),
        (
            "MODBUS_PROPS",
            format!("reject-coil={COIL} status-register={STATUS} reject-delay-ms=200 pulse-ms=50"),
        ),
        ("OPCUA_PORT", opcua_port.to_string()),
    ];
    let dry = std::process::Command::new("bash")
        .arg(&script)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("DRY_RUN", "1")
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&dry.stdout).to_string();
    assert!(dry.status.success(), "{line}");
    for wanted in [
        format!(
            "defectmodbussink name=plc host=127.0.0.1 port={}",
            peer.port
        ),
        format!("defectopcuasink name=opcua port={opcua_port} source-id=video-file"),
        "reject-delay-ms=200".to_string(),
    ] {
        assert!(line.contains(&wanted), "{wanted} not in {line}");
    }

    let mut child = std::process::Command::new("bash")
        .arg(&script)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // SCADA's side while the line runs: the address space answers.
    let url = format!("opc.tcp://127.0.0.1:{opcua_port}/");
    let deadline = Instant::now() + Duration::from_secs(60);
    let client = loop {
        match OpcUaClient::connect(
            &url,
            "video-file",
            SecurityPolicy::None,
            MessageSecurityMode::None,
        ) {
            Ok(client) => break client,
            Err(e) => {
                assert!(
                    Instant::now() < deadline && child.try_wait().unwrap().is_none(),
                    "no OPC UA session with the pipeline's server: {e}"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    };
    let mut frames = 0;
    while frames == 0 && child.try_wait().unwrap().is_none() {
        frames = match &client.read(&["FrameCount"])[0] {
            Variant::UInt64(n) => *n,
            other => panic!("FrameCount {other:?}"),
        };
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(frames > 0, "FrameCount grew while the line ran");
    client.disconnect();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // One pulse per rejected part of the NDJSON records.
    let records: Vec<serde_json::Value> = std::fs::read_to_string(out.join("video-file.ndjson"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let parts: Vec<serde_json::Value> = records
        .into_iter()
        .filter(|r| r["type"] == "part")
        .collect();
    let [_, fail, _, unknown] = count_verdicts(&parts);
    assert!(fail > 0, "{parts:?}");
    // The file plays unpaced, so parts can fall due closer together than the pulse: the sink
    // merges those into one longer pulse, writing the coil on once per reject.
    let pulses = peer.ended_pulses(COIL);
    assert_eq!(
        pulses.iter().map(|p| u64::from(p.rejects)).sum::<u64>(),
        fail + unknown,
        "{parts:?} {pulses:?}"
    );
    let _ = std::fs::remove_dir_all(&out);
}
