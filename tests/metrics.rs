// SPDX-License-Identifier: MIT OR Apache-2.0
//! `defectmetricssink`: the element on its own (a harness, events made here), and a real
//! Prometheus server (Debian's `prometheus`) scraping it during the bundled recording, its
//! query API checked against the NDJSON records of the same run, the exposition against
//! `promtool check metrics`, and every PromQL expression of the Grafana dashboard against
//! the same server.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{init, repo_path};
use gst::prelude::*;
use gstdefect::meta::prelude::*;
use gstdefect::meta::{
    DetectionParams, DriftFeature, DriftReport, ModelRef, PartVerdictMeta, Severity, Verdict,
    VerdictMeta,
};

/// A GET over HTTP/1.1: the status code and the body.
fn http_get(port: u16, target: &str, accept: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let accept = accept.map_or(String::new(), |a| format!("Accept: {a}\r\n"));
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{accept}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}

fn scrape(port: u16) -> String {
    let (status, body) = http_get(port, "/metrics", None);
    assert_eq!(status, 200, "{body}");
    body
}

/// The value of the exposition's sample `series` (name and labels, as written).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
}

fn verdict_meta(frame: u64, verdict: Verdict, counts: [u32; 4]) -> VerdictMeta {
    VerdictMeta {
        verdict,
        task: "detect".into(),
        anomaly_score: None,
        shadow: false,
        part_id: None,
        frame,
        inspected: verdict != Verdict::Unknown,
        carried: false,
        skipped_frames: 0,
        source_frame: None,
        counts,
        model: ModelRef {
            id: "surface:3:abcd".into(),
            name: "surface".into(),
            version: "3".into(),
            sha256: "abcd".into(),
        },
        policy_sha256: None,
        inference_ms: 12.0,
        total_ms: 15.0,
        reasons: vec![],
        capture_dropped: None,
    }
}

fn frame(meta: &VerdictMeta, detections: &[(&str, f64)]) -> gst::Buffer {
    let mut buffer = gst::Buffer::with_size(64 * 48 * 4).unwrap();
    {
        let b = buffer.get_mut().unwrap();
        meta.attach(b);
        for (label, confidence) in detections {
            let mut roi = gst_video::VideoRegionOfInterestMeta::add(b, label, (1, 2, 10, 10));
            roi.add_param(
                DetectionParams {
                    label_id: 0,
                    label: label.to_string(),
                    confidence: *confidence,
                    x_min: 0.0,
                    y_min: 0.0,
                    x_max: 0.2,
                    y_max: 0.2,
                    severity: Some(Severity::Major),
                    decision: Some(gstdefect::meta::Decision::Fail),
                    peak_score: None,
                    mean_score: None,
                }
                .to_roi_param(),
            );
        }
    }
    buffer
}

fn harness(source: &str) -> gst_check::Harness {
    init();
    let mut h =
        gst_check::Harness::new_parse(&format!("defectmetricssink source-id={source} port=0"));
    h.set_src_caps_str("video/x-raw,format=RGBA,width=64,height=48,framerate=30/1");
    h
}

/// The harness's element (`new_parse` puts it in a bin).
fn inner(h: &gst_check::Harness) -> gst::Element {
    let element = h.element().unwrap();
    match element.downcast_ref::<gst::Bin>() {
        Some(bin) => bin.iterate_elements().next().unwrap().unwrap(),
        None => element,
    }
}

fn bound_port(h: &gst_check::Harness) -> u16 {
    inner(h).property::<u32>("bound-port") as u16
}

#[test]
fn frames_detections_parts_and_drift_events_become_metrics() {
    let mut h = harness("harness-1");
    let port = bound_port(&h);
    assert_ne!(port, 0, "bound-port is read back while running");
    let pass = verdict_meta(0, Verdict::Pass, [0; 4]);
    h.push(frame(&pass, &[])).unwrap();
    let fail = verdict_meta(1, Verdict::Fail, [0, 2, 0, 0]);
    h.push(frame(&fail, &[("scratches", 0.91), ("scratches", 0.62)]))
        .unwrap();
    h.push(frame(&verdict_meta(2, Verdict::Unknown, [0; 4]), &[]))
        .unwrap();
    let part = PartVerdictMeta {
        part_id: "p-1".into(),
        verdict: Verdict::Fail,
        shadow: false,
        first_frame: 0,
        last_frame: 2,
        frames: 3,
        inspected_frames: 2,
        counts: [0, 2, 0, 0],
        model_id: "surface:3:abcd".into(),
        cameras: Vec::new(),
    };
    assert!(h.push_event(part.to_event()));
    let feature = |name: &str, score: f64, current: f64| DriftFeature {
        name: name.into(),
        score,
        threshold: 0.25,
        moved: score >= 0.25,
        baseline: 100.0,
        current,
    };
    let report = DriftReport {
        active: true,
        episode: 1,
        frame: 2,
        window_frames: 3,
        features: vec![
            feature("brightness", 0.8, 55.0),
            feature("contrast", 0.1, 40.0),
            feature("focus", 0.3, 210.5),
        ],
    };
    assert!(h.push_event(report.to_event()));
    let text = scrape(port);
    let v = |series: &str| sample(&text, series);
    assert_eq!(
        v(r#"defect_frames_total{source="harness-1",verdict="PASS"}"#),
        Some(1.0)
    );
    assert_eq!(
        v(r#"defect_frames_total{source="harness-1",verdict="FAIL"}"#),
        Some(1.0)
    );
    assert_eq!(
        v(r#"defect_frames_total{source="harness-1",verdict="UNKNOWN"}"#),
        Some(1.0)
    );
    assert_eq!(
        v(r#"defect_frames_uninspected_total{source="harness-1"}"#),
        Some(1.0)
    );
    assert_eq!(
        v(r#"defect_parts_total{source="harness-1",verdict="FAIL"}"#),
        Some(1.0)
    );
    assert_eq!(
        v(
            r#"defect_detections_total{source="harness-1",class="scratches",severity="major",decision="fail"}"#
        ),
        Some(2.0)
    );
    assert_eq!(
        v(r#"defect_detection_confidence_bucket{source="harness-1",class="scratches",le="0.65"}"#),
        Some(1.0)
    );
    assert_eq!(
        v(r#"defect_inference_duration_seconds_sum{source="harness-1"}"#),
        Some(0.024)
    );
    assert_eq!(
        v(
            r#"defect_model_info{source="harness-1",model_id="surface:3:abcd",model_name="surface",model_version="3",task="detect"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        v(r#"defect_drift_score{source="harness-1",feature="brightness"}"#),
        Some(0.8)
    );
    assert_eq!(v(r#"defect_drift_active{source="harness-1"}"#), Some(1.0));
    assert_eq!(
        v(r#"defect_drift_episodes_total{source="harness-1"}"#),
        Some(1.0)
    );
    assert_eq!(
        v(r#"defect_image_brightness{source="harness-1"}"#),
        Some(55.0)
    );
    assert_eq!(v(r#"defect_image_focus{source="harness-1"}"#), Some(210.5));
    assert!(v(r#"defect_seconds_since_last_frame{source="harness-1"}"#).is_some());
    // OpenMetrics for a scraper that asks for it.
    let (status, body) = http_get(
        port,
        "/metrics",
        Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5"),
    );
    assert_eq!(status, 200);
    assert!(body.ends_with("# EOF\n"), "{body}");
    assert_eq!(http_get(port, "/nothing", None).0, 404);
    // Stopped, the series are gone and the port is closed.
    drop(h);
    let closed = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        TcpStream::connect(("127.0.0.1", port)).is_err()
    });
    assert!(closed, "the endpoint closes with its last element");
}

#[test]
fn the_joined_parts_of_defectpartmux_are_counted() {
    init();
    let mut h = gst_check::Harness::new_parse("defectmetricssink source-id=joined-1 port=0");
    h.set_src_caps_str("application/x-defect-parts");
    let port = bound_port(&h);
    for (id, verdict) in [
        ("p-1", Verdict::Fail),
        ("p-2", Verdict::Pass),
        ("p-3", Verdict::Fail),
    ] {
        let part = PartVerdictMeta {
            part_id: id.into(),
            verdict,
            frames: 2,
            inspected_frames: 2,
            ..Default::default()
        };
        assert!(h.push_event(part.to_event()));
        // The parts stream's empty buffer of each part: no frame, nothing counted for it.
        h.push(gst::Buffer::new()).unwrap();
    }
    let text = scrape(port);
    let v = |series: &str| sample(&text, series);
    assert_eq!(
        v(r#"defect_parts_total{source="joined-1",verdict="FAIL"}"#),
        Some(2.0)
    );
    assert_eq!(
        v(r#"defect_parts_total{source="joined-1",verdict="PASS"}"#),
        Some(1.0)
    );
    for verdict in ["PASS", "FAIL", "REVIEW", "UNKNOWN"] {
        let frames = v(&format!(
            r#"defect_frames_total{{source="joined-1",verdict="{verdict}"}}"#
        ));
        assert!(matches!(frames, None | Some(0.0)), "{verdict}: {frames:?}");
    }
}

#[test]
fn two_elements_on_one_port_share_one_endpoint_told_apart_by_source() {
    let mut first = harness("shared-a");
    let port = bound_port(&first);
    init();
    let mut second =
        gst_check::Harness::new_parse(&format!("defectmetricssink source-id=shared-b port={port}"));
    second.set_src_caps_str("video/x-raw,format=RGBA,width=64,height=48,framerate=30/1");
    assert_eq!(bound_port(&second), port);
    first
        .push(frame(&verdict_meta(0, Verdict::Pass, [0; 4]), &[]))
        .unwrap();
    second
        .push(frame(&verdict_meta(0, Verdict::Fail, [0; 4]), &[]))
        .unwrap();
    let text = scrape(port);
    assert_eq!(
        sample(
            &text,
            r#"defect_frames_total{source="shared-a",verdict="PASS"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"defect_frames_total{source="shared-b",verdict="FAIL"}"#
        ),
        Some(1.0)
    );
    // The first one stopping leaves the endpoint to the second, without the first's series.
    drop(first);
    let text = scrape(port);
    assert!(!text.contains("shared-a") && text.contains("shared-b"));
}

/// The element's start fails with `expected` in the error posted on the bus.
fn start_fails(element: &gst::Element, expected: &str) {
    let pipeline = gst::Pipeline::new();
    pipeline.add(element).unwrap();
    assert!(pipeline.set_state(gst::State::Ready).is_err());
    let bus = pipeline.bus().unwrap();
    let message = bus
        .timed_pop_filtered(gst::ClockTime::from_seconds(5), &[gst::MessageType::Error])
        .expect("an error on the bus");
    let gst::MessageView::Error(e) = message.view() else {
        unreachable!()
    };
    let text = format!("{} {:?}", e.error(), e.debug());
    assert!(text.contains(expected), "{text}");
    pipeline.set_state(gst::State::Null).unwrap();
}

#[test]
fn a_source_id_in_use_or_a_port_taken_is_a_clear_error() {
    let h = harness("taken-source");
    let element = gst::ElementFactory::make("defectmetricssink")
        .property("source-id", "taken-source")
        .property("port", 0u32)
        .build()
        .unwrap();
    start_fails(&element, "already used by another defectmetricssink");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let element = gst::ElementFactory::make("defectmetricssink")
        .property("source-id", "port-taken")
        .property("port", u32::from(port))
        .build()
        .unwrap();
    start_fails(&element, &format!("127.0.0.1:{port}"));
    drop(h);
}

#[test]
fn the_mqtt_and_plc_sinks_counters_are_served_while_they_run() {
    let metrics = harness("with-sinks");
    let port = bound_port(&metrics);
    // Peers that are not there: nothing listens on a port just released.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut mqtt = gst_check::Harness::new_parse(&format!(
        "defectmqttsink name=mqtt-test port={dead} max-queue=2 max-backoff-ms=60000"
    ));
    mqtt.set_src_caps_str("application/x-ndjson");
    for i in 0..5 {
        mqtt.push(gst::Buffer::from_slice(format!(
            "{{\"type\":\"frame\",\"frame\":{i}}}\n"
        )))
        .unwrap();
    }
    let mut plc =
        gst_check::Harness::new_parse(&format!("defectmodbussink name=plc-test port={dead}"));
    plc.set_src_caps_str("video/x-raw,format=RGBA,width=64,height=48,framerate=30/1");
    let text = scrape(port);
    assert_eq!(
        sample(&text, r#"defect_mqtt_connected{element="mqtt-test"}"#),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, r#"defect_mqtt_records_queued{element="mqtt-test"}"#),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"defect_mqtt_records_dropped_total{element="mqtt-test"}"#
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(&text, r#"defect_plc_connected{element="plc-test"}"#),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"defect_plc_missed_rejects_total{element="plc-test"}"#
        ),
        Some(0.0)
    );
    drop(mqtt);
    drop(plc);
    let text = scrape(port);
    assert!(
        !text.contains("mqtt-test") && !text.contains("plc-test"),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------
// A real Prometheus server.

/// `prometheus` and `promtool`, or None (the test is skipped, except under CI).
fn prometheus_tools() -> Option<(PathBuf, PathBuf)> {
    let find = |name: &str| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
    };
    match (find("prometheus"), find("promtool")) {
        (Some(server), Some(tool)) => Some((server, tool)),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!(
                "prometheus/promtool not installed (scripts/setup.sh installs Debian's prometheus); under CI this test must run"
            )
        }
        _ => {
            eprintln!(
                "SKIPPED: prometheus and promtool are not installed (apt-get install prometheus, or scripts/setup.sh)"
            );
            None
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Prometheus server of this test: killed when dropped.
struct Prometheus {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Prometheus {
    fn start(server: &Path, target_port: u16, rules: &Path) -> Prometheus {
        let dir = TempDir::new("defect-prometheus");
        let config = dir.0.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {}\n\
                 scrape_configs:\n  - job_name: defect\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n",
                rules.display()
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new(server)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.0.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start prometheus");
        let prometheus = Prometheus {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !TcpStream::connect(("127.0.0.1", port))
            .is_ok_and(|_| http_get(port, "/-/ready", None).0 == 200)
        {
            assert!(Instant::now() < deadline, "prometheus did not get ready");
            std::thread::sleep(Duration::from_millis(200));
        }
        prometheus
    }

    /// An instant query's result vector; panics when Prometheus refuses the query.
    fn query(&self, promql: &str) -> Vec<serde_json::Value> {
        let (status, body) = http_get(
            self.port,
            &format!("/api/v1/query?query={}", percent_encode(promql)),
            None,
        );
        let reply: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(
            status == 200 && reply["status"] == "success",
            "{promql}: {body}"
        );
        match reply["data"]["result"].as_array() {
            Some(result) => result.clone(),
            // A scalar or string result: one value.
            None => vec![reply["data"].clone()],
        }
    }

    /// The instant vector's values by the given label.
    fn by(&self, promql: &str, label: &str) -> BTreeMap<String, f64> {
        self.query(promql)
            .iter()
            .map(|s| {
                (
                    s["metric"][label].as_str().unwrap_or_default().to_string(),
                    s["value"][1].as_str().unwrap().parse::<f64>().unwrap(),
                )
            })
            .collect()
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn count_by(records: &[serde_json::Value], kind: &str, field: &str) -> BTreeMap<String, f64> {
    let mut counts = BTreeMap::new();
    for r in records.iter().filter(|r| r["type"] == kind) {
        *counts
            .entry(r[field].as_str().unwrap_or("null").to_string())
            .or_insert(0.0) += 1.0;
    }
    counts
}

/// Every `"expr"` of a Grafana dashboard, with its variables given values.
fn dashboard_expressions(json: &serde_json::Value, out: &mut Vec<String>) {
    match json {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr", serde_json::Value::String(expr)) if !expr.is_empty() => {
                        out.push(expr.clone())
                    }
                    _ => dashboard_expressions(value, out),
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                dashboard_expressions(item, out);
            }
        }
        _ => {}
    }
}

#[test]
fn prometheus_scrapes_the_bundled_recording_and_agrees_with_the_records() {
    let Some((server, promtool)) = prometheus_tools() else {
        return;
    };
    init();
    let dir = TempDir::new("defect-metrics-run");
    let ndjson = dir.0.join("verdicts.ndjson");
    // The PLC and the MQTT broker are away (nothing listens on `dead`): their sinks count
    // missed rejects and queued records.
    let dead = free_port();
    // Paced as a camera delivers it (identity sync=true: the 10 s recording takes 10 s), so
    // that Prometheus scrapes it several times during the run on a fast machine too.
    let pipeline = gst::parse::launch(&format!(
        "filesrc location={} ! decodebin ! videoconvert ! identity sync=true ! \
         defectdetect name=detect model={} policy={} threads=2 interval=2 frames-per-part=30 ! \
         tee name=t \
         t. ! queue ! defectmetricssink name=metrics source-id=line-1 port=0 \
         t. ! queue ! defectmodbussink name=plc-1 port={dead} reject-delay-ms=0 \
         t. ! queue ! defectmetaconvert source-id=line-1 ! tee name=n \
         n. ! queue ! filesink location={} \
         n. ! queue ! defectmqttsink name=mqtt-1 port={dead} flush-timeout-ms=0",
        repo_path("tests/data/conveyor_color.mp4").display(),
        repo_path("models/surface-defects.onnx").display(),
        repo_path("pipelines/policy.toml").display(),
        ndjson.display(),
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    // A drift window made here (the drift engine's event), sent in-band at frame 150, so
    // that the drift series exist in this run.
    let detect = pipeline.by_name("detect").unwrap();
    let srcpad = detect.static_pad("src").unwrap();
    let sent = std::sync::atomic::AtomicBool::new(false);
    srcpad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let frame = info
            .buffer()
            .and_then(|b| VerdictMeta::from_buffer(b))
            .and_then(Result::ok)
            .map_or(0, |v| v.frame);
        if frame >= 150 && !sent.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let feature = |name: &str, score: f64, current: f64| DriftFeature {
                name: name.into(),
                score,
                threshold: 0.25,
                moved: score >= 0.25,
                baseline: 120.0,
                current,
            };
            let _ = pad.push_event(
                DriftReport {
                    active: true,
                    episode: 1,
                    frame,
                    window_frames: 90,
                    features: vec![
                        feature("brightness", 0.61, 66.0),
                        feature("contrast", 0.08, 41.0),
                        feature("focus", 0.12, 930.0),
                    ],
                }
                .to_event(),
            );
        }
        gst::PadProbeReturn::Ok
    });
    pipeline.set_state(gst::State::Ready).unwrap();
    let metrics = pipeline.by_name("metrics").unwrap();
    let port = metrics.property::<u32>("bound-port") as u16;
    assert_ne!(port, 0);
    let rules = repo_path("monitoring/alerts.yml");
    let prometheus = Prometheus::start(&server, port, &rules);
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let message = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(600),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("the recording ends");
    if let gst::MessageView::Error(e) = message.view() {
        panic!("{} {:?}", e.error(), e.debug());
    }
    let eos = unix_now();
    // The exposition as a scraper gets it passes promtool's checks.
    let exposition = scrape(port);
    let mut check = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let checked = check.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics: {}{}\n{exposition}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    // Wait for a scrape after the end of the stream.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let last =
            prometheus.query(r#"timestamp(defect_last_frame_timestamp_seconds{source="line-1"})"#);
        let at = last
            .first()
            .and_then(|s| s["value"][1].as_str())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        if at > eos + 1.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no scrape after the end of the stream"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let scrapes = prometheus.query(r#"count_over_time(up{job="defect"}[10m])"#);
    let scrapes: f64 = scrapes[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(
        scrapes >= 3.0,
        "Prometheus scraped during the run ({scrapes} scrapes)"
    );

    let text = std::fs::read_to_string(&ndjson).unwrap();
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let frames = count_by(&records, "frame", "verdict");
    assert_eq!(
        frames.values().sum::<f64>(),
        300.0,
        "every frame has a record"
    );
    let queried = prometheus.by(r#"defect_frames_total{source="line-1"}"#, "verdict");
    let nonzero = |m: BTreeMap<String, f64>| -> BTreeMap<String, f64> {
        m.into_iter().filter(|(_, v)| *v > 0.0).collect()
    };
    assert_eq!(nonzero(queried), frames, "frames by verdict");
    let parts = count_by(&records, "part", "verdict");
    assert!(!parts.is_empty(), "the run has parts");
    let queried = prometheus.by(r#"defect_parts_total{source="line-1"}"#, "verdict");
    assert_eq!(nonzero(queried), parts, "parts by verdict");
    let judged: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["type"] == "frame" && r["inspected"] == true && r["carried"] == false)
        .collect();
    let uninspected = records
        .iter()
        .filter(|r| r["type"] == "frame" && r["inspected"] == false)
        .count() as f64;
    assert!(uninspected > 0.0, "interval=2 leaves frames to carry");
    assert_eq!(
        prometheus.by(
            r#"defect_frames_uninspected_total{source="line-1"}"#,
            "source"
        )["line-1"],
        uninspected
    );
    assert_eq!(
        prometheus.by(
            r#"defect_inference_duration_seconds_count{source="line-1"}"#,
            "source"
        )["line-1"],
        judged.len() as f64
    );
    let mut by_class: BTreeMap<String, f64> = BTreeMap::new();
    let mut by_decision: BTreeMap<String, f64> = BTreeMap::new();
    for d in judged
        .iter()
        .flat_map(|r| r["detections"].as_array().unwrap())
    {
        *by_class
            .entry(d["class_name"].as_str().unwrap().into())
            .or_default() += 1.0;
        *by_decision
            .entry(d["decision"].as_str().unwrap_or("none").into())
            .or_default() += 1.0;
    }
    assert!(!by_class.is_empty(), "the recording has detections");
    assert_eq!(
        prometheus.by(
            r#"sum by (class) (defect_detections_total{source="line-1"})"#,
            "class"
        ),
        by_class,
        "detections by class"
    );
    assert_eq!(
        prometheus.by(
            r#"sum by (decision) (defect_detections_total{source="line-1"})"#,
            "decision"
        ),
        by_decision,
        "detections by decision"
    );
    assert_eq!(
        prometheus.by(
            r#"defect_detection_confidence_count{source="line-1"}"#,
            "class"
        ),
        by_class,
        "confidences by class"
    );
    let model = judged[0]["model"]["id"].as_str().unwrap();
    assert_eq!(
        prometheus.by(r#"defect_model_info{source="line-1"}"#, "model_id"),
        BTreeMap::from([(model.to_string(), 1.0)])
    );
    assert_eq!(
        prometheus.by(r#"defect_drift_episodes_total{source="line-1"}"#, "source")["line-1"],
        1.0
    );
    assert_eq!(
        prometheus.by(r#"defect_image_brightness{source="line-1"}"#, "source")["line-1"],
        66.0
    );

    // The PLC and MQTT sinks' counters, through the same endpoint.
    let rejects =
        parts.get("FAIL").copied().unwrap_or(0.0) + parts.get("UNKNOWN").copied().unwrap_or(0.0);
    assert!(rejects > 0.0, "the run has parts to reject");
    assert_eq!(
        prometheus.by(
            r#"defect_plc_missed_rejects_total{element="plc-1"}"#,
            "element"
        )["plc-1"],
        rejects,
        "every reject missed while the PLC is away"
    );
    assert_eq!(
        prometheus.by(r#"defect_plc_connected{element="plc-1"}"#, "element")["plc-1"],
        0.0
    );
    assert_eq!(
        prometheus.by(r#"defect_mqtt_records_queued{element="mqtt-1"}"#, "element")["mqtt-1"],
        records.len() as f64,
        "every record queued while the broker is away"
    );

    // Every expression of the dashboard: accepted, and with series from this run.
    let dashboard_dir = repo_path("monitoring/grafana");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dashboard_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let mut expressions = Vec::new();
        dashboard_expressions(&json, &mut expressions);
        assert!(!expressions.is_empty(), "{}: no expression", path.display());
        for expr in expressions {
            let promql = expr
                .replace("$__rate_interval", "1m")
                .replace("$__interval", "15s")
                .replace("$__range", "10m")
                .replace("${source:regex}", "line-1")
                .replace("$source", "line-1");
            let result = prometheus.query(&promql);
            assert!(
                !result.is_empty(),
                "{}: {expr} gave no series",
                path.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "{checked} dashboard expressions checked");
    eprintln!(
        "{scrapes} scrapes; frames {frames:?}; parts {parts:?}; detections {by_class:?}; \
         {uninspected} uninspected; {checked} dashboard expressions with series"
    );
    drop(prometheus);
    pipeline.set_state(gst::State::Null).unwrap();
}
