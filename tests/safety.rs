// SPDX-License-Identifier: MIT OR Apache-2.0
//! Issue 14, the `defectdetect` side: nothing lost, nothing passed unseen. One test (or more)
//! per numbered item, each failing on the code before the fix: asynchronous inference never
//! reports an unjudged frame or part as PASS (3), limits with clear errors (6, 7, 8), decode
//! validation (10), policy validation (11), models without or with bad names (12), policy
//! reload while playing (13), and the model slot's races (14, 15, 16). Item 9 (linear policy
//! parsing) is a unit test in `src/policy/tests.rs`.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use gst::prelude::*;
use gst_video::VideoFormat;

fn pipeline(description: &str) -> gst::Pipeline {
    init();
    gst::parse::launch(description)
        .unwrap_or_else(|e| panic!("{description}: {e}"))
        .downcast::<gst::Pipeline>()
        .unwrap()
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("defect-safety-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The error a `videotestsrc ! defectdetect <properties> ! fakesink` pipeline posts when set
/// to `state`, within 30 s (a state change that hangs fails the test instead of hanging it).
fn state_error(properties: &str, state: gst::State) -> String {
    let p = pipeline(&format!(
        "videotestsrc num-buffers=3 ! video/x-raw,width=640,height=480 ! defectdetect {properties} ! fakesink"
    ));
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let q = p.clone();
    std::thread::spawn(move || {
        let _ = q.set_state(state);
        let _ = done_tx.send(());
    });
    done_rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("{properties}: the state change hangs"));
    let message = p
        .bus()
        .unwrap()
        .timed_pop_filtered(gst::ClockTime::from_seconds(30), &[gst::MessageType::Error])
        .unwrap_or_else(|| panic!("{properties}: no error"));
    p.set_state(gst::State::Null).unwrap();
    let gst::MessageView::Error(e) = message.view() else {
        unreachable!()
    };
    format!("{} {:?}", e.error(), e.debug())
}

fn ready_error(properties: &str) -> String {
    state_error(properties, gst::State::Ready)
}

fn warnings_of(bus: &gst::Bus) -> Vec<String> {
    std::iter::from_fn(|| bus.pop())
        .filter_map(|m| match m.view() {
            gst::MessageView::Warning(w) => Some(w.error().to_string()),
            gst::MessageView::Error(e) => panic!("{} {:?}", e.error(), e.debug()),
            _ => None,
        })
        .collect()
}

/// `appsrc ! defectdetect ! defectmetaconvert ! appsink`, fed by hand.
struct Records {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    sink: gst_app::AppSink,
    detect: gst::Element,
    pushed: u64,
}

impl Records {
    fn new(properties: &str, width: usize, height: usize) -> Self {
        Self::named("d", properties, width, height)
    }

    fn named(name: &str, properties: &str, width: usize, height: usize) -> Self {
        let pipeline = pipeline(&format!(
            "appsrc name=src format=time max-bytes=0 ! defectdetect name={name} {properties} ! \
             defectmetaconvert ! appsink name=sink sync=false"
        ));
        let src = pipeline
            .by_name("src")
            .unwrap()
            .downcast::<gst_app::AppSrc>()
            .unwrap();
        src.set_caps(Some(&caps(VideoFormat::Rgb, width, height)));
        let sink = pipeline
            .by_name("sink")
            .unwrap()
            .downcast::<gst_app::AppSink>()
            .unwrap();
        let detect = pipeline.by_name(name).unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        Self {
            pipeline,
            src,
            sink,
            detect,
            pushed: 0,
        }
    }

    fn push(&mut self, image: &RgbImage) {
        let mut buffer = frame_buffer(image, VideoFormat::Rgb, 0);
        buffer
            .get_mut()
            .unwrap()
            .set_pts(gst::ClockTime::from_mseconds(33 * self.pushed));
        self.pushed += 1;
        self.src.push_buffer(buffer).unwrap();
    }

    /// The records that came out within `timeout`.
    fn pull(&self, timeout: Duration) -> Vec<serde_json::Value> {
        let mut records = Vec::new();
        while let Some(sample) = self
            .sink
            .try_pull_sample(gst::ClockTime::from_nseconds(timeout.as_nanos() as u64))
        {
            let map = sample.buffer().unwrap().map_readable().unwrap();
            records.extend(
                std::str::from_utf8(&map)
                    .unwrap()
                    .lines()
                    .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()),
            );
            if records
                .iter()
                .any(|r| r["type"] == "frame" && r["frame"].as_u64() == Some(self.pushed - 1))
            {
                break;
            }
        }
        records
    }

    /// Ends the stream; every record, then the bus's messages.
    fn finish(self) -> (Vec<serde_json::Value>, Vec<gst::Message>) {
        self.src.end_of_stream().unwrap();
        let mut records = Vec::new();
        while let Some(sample) = self.sink.try_pull_sample(gst::ClockTime::from_seconds(60)) {
            let map = sample.buffer().unwrap().map_readable().unwrap();
            records.extend(
                std::str::from_utf8(&map)
                    .unwrap()
                    .lines()
                    .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()),
            );
        }
        let bus = self.pipeline.bus().unwrap();
        let messages: Vec<gst::Message> = std::iter::from_fn(|| bus.pop()).collect();
        self.pipeline.set_state(gst::State::Null).unwrap();
        (records, messages)
    }
}

fn frames(records: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    records.iter().filter(|r| r["type"] == "frame").collect()
}

fn parts(records: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    records.iter().filter(|r| r["type"] == "part").collect()
}

fn no_errors(messages: &[gst::Message]) {
    for m in messages {
        if let gst::MessageView::Error(e) = m.view() {
            panic!("{} {:?}", e.error(), e.debug());
        }
    }
}

/// Captures the `defectdetect` debug log lines of one element (by name) that contain `needle`.
struct LogLines {
    lines: Arc<Mutex<Vec<String>>>,
}

impl LogLines {
    fn capture(element_name: &'static str, needle: &'static str) -> Self {
        init();
        gst::log::set_active(true);
        // Only this function sees the lines (the default one would print them).
        gst::log::remove_default_log_function();
        gst::log::set_threshold_for_name("defectdetect", gst::DebugLevel::Info);
        let lines = Arc::new(Mutex::new(Vec::new()));
        let kept = lines.clone();
        gst::log::add_log_function(
            move |category, _level, _file, _function, _line, object, message| {
                if category.name() != "defectdetect" {
                    return;
                }
                let Some(text) = message.get() else { return };
                let named = object.is_some_and(|o| o.to_string() == element_name);
                if named && text.contains(needle) {
                    kept.lock().unwrap().push(text.to_string());
                }
            },
        );
        Self { lines }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

/// Item 3: with `async-inference` and a slow model (about a second a run) that finds two
/// defects on every frame, frames without a result are UNKNOWN (they were PASS), carried
/// frames FAIL, no part is PASS, every record says whether its frame was inspected, where its
/// result came from, and the worker's last results, finished after the last frame, reach the
/// part records (end of stream waits for them).
#[test]
fn item3_async_frames_without_a_result_are_unknown_and_parts_never_pass() {
    let mut run = Records::new(
        &format!(
            "model={} threads=2 async-inference=true frames-per-part=20",
            test_model("slow_e2e")
        ),
        256,
        256,
    );
    let image = RgbImage::new(256, 256, [40, 40, 40]);
    for _ in 0..60 {
        run.push(&image);
    }
    let (records, messages) = run.finish();
    no_errors(&messages);
    let frames = frames(&records);
    let parts = parts(&records);
    assert_eq!(frames.len(), 60);
    let mut unknown = 0;
    for f in &frames {
        let verdict = f["verdict"].as_str().unwrap();
        assert_ne!(verdict, "PASS", "{f}");
        assert!(
            f["inspected"].is_boolean() && f["carried"].is_boolean(),
            "{f}"
        );
        match f["source_frame"].as_u64() {
            Some(source) => {
                assert!(f["carried"].as_bool().unwrap() && source < f["frame"].as_u64().unwrap());
                assert_eq!(verdict, "FAIL", "a carried result of this model fails: {f}");
            }
            None => {
                assert_eq!(verdict, "UNKNOWN", "{f}");
                assert!(f["detections"].as_array().unwrap().is_empty());
                unknown += 1;
            }
        }
    }
    let inspected = frames.iter().filter(|f| f["inspected"] == true).count();
    assert!((1..60).contains(&inspected), "{inspected} frames inspected");
    assert_eq!(parts.len(), 3, "{parts:#?}");
    let part_verdicts: Vec<&str> = parts
        .iter()
        .map(|p| p["verdict"].as_str().unwrap())
        .collect();
    assert!(!part_verdicts.contains(&"PASS"), "{part_verdicts:?}");
    // Part 0 holds the first frames, which the worker took: their results came after the last
    // frame had passed, and decide the part.
    assert_eq!(parts[0]["verdict"], "FAIL", "{:#}", parts[0]);
    assert!(parts[0]["inspected_frames"].as_u64().unwrap() >= 1);
    let inspected_in_parts: u64 = parts
        .iter()
        .map(|p| p["inspected_frames"].as_u64().unwrap())
        .sum();
    assert_eq!(inspected_in_parts, inspected as u64);
    println!(
        "item 3: 60 frames: {unknown} UNKNOWN, {} FAIL (carried), {inspected} inspected; parts {part_verdicts:?}",
        60 - unknown
    );
}

/// Item 3 on the bundled model, policy and video, decoded and paced in real time: in async
/// mode no defective part is PASS, and every frame's record says whether it was inspected.
/// Parts are the video's parts (from its ground truth), given to the element as
/// `DefectPartMeta` on each frame.
#[test]
fn item3_bundled_model_async_on_a_paced_source_passes_no_defective_part() {
    init();
    let truth: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_path("tests/data/conveyor_color.coco.json")).unwrap(),
    )
    .unwrap();
    let part_of_frame: Vec<i64> = truth["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["part_id"].as_i64().unwrap())
        .collect();
    let defective: std::collections::BTreeMap<String, bool> = truth["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["part_id"].as_i64().unwrap().to_string(),
                p["defective"].as_bool().unwrap(),
            )
        })
        .collect();
    let p = pipeline(&format!(
        "filesrc location={} ! decodebin ! videoconvert ! identity sync=true ! \
         defectdetect name=d model={} policy={} threads=2 async-inference=true ! \
         defectmetaconvert ! appsink name=sink sync=false",
        repo_path("tests/data/conveyor_color.mp4").display(),
        repo_path("models/surface-defects.onnx").display(),
        repo_path("pipelines/policy.toml").display()
    ));
    let detect_sink = p.by_name("d").unwrap().static_pad("sink").unwrap();
    let counter = std::sync::atomic::AtomicUsize::new(0);
    detect_sink.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let index = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Some(gst::PadProbeData::Buffer(buffer)) = info.data.as_mut() {
            let part = part_of_frame.get(index).copied().unwrap_or(-1);
            let buffer = buffer.make_mut();
            let mut meta = gst::meta::CustomMeta::add(buffer, "DefectPartMeta").unwrap();
            meta.mut_structure().set("part-id", part.to_string());
        }
        gst::PadProbeReturn::Ok
    });
    let sink = p
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    p.set_state(gst::State::Playing).unwrap();
    let mut records: Vec<serde_json::Value> = Vec::new();
    while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(60)) {
        let map = sample.buffer().unwrap().map_readable().unwrap();
        records.extend(
            std::str::from_utf8(&map)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()),
        );
    }
    let bus = p.bus().unwrap();
    let messages: Vec<gst::Message> = std::iter::from_fn(|| bus.pop()).collect();
    let skipped: u64 = p.by_name("d").unwrap().property("skipped");
    p.set_state(gst::State::Null).unwrap();
    no_errors(&messages);
    let frames = frames(&records);
    assert_eq!(frames.len(), 300);
    for f in &frames {
        assert!(f["inspected"].is_boolean(), "{f}");
        assert!(f["carried"].is_boolean(), "{f}");
        assert_eq!(
            f["carried"].as_bool().unwrap(),
            f["source_frame"].is_u64(),
            "{f}"
        );
        if f["source_frame"].is_null() {
            assert_eq!(f["verdict"], "UNKNOWN", "{f}");
        }
    }
    let inspected = frames.iter().filter(|f| f["inspected"] == true).count();
    let mut summary = Vec::new();
    for part in parts(&records) {
        let id = part["part_id"].as_str().unwrap();
        let verdict = part["verdict"].as_str().unwrap();
        summary.push(format!(
            "{id}:{verdict}({}/{} inspected)",
            part["inspected_frames"], part["frames"]
        ));
        if defective.get(id).copied().unwrap_or(false) {
            assert_ne!(verdict, "PASS", "defective part {id} passed: {part:#}");
        }
    }
    println!(
        "bundled, async, paced: {inspected} of 300 frames inspected, {skipped} skipped; parts {summary:?}"
    );
    assert_eq!(summary.len(), 6, "{summary:?}");
    assert!(inspected > 0);
}

/// Item 6: a model declaring a 100000x100000 input (or `imgsz` metadata saying so, or
/// 20000x20000) is a clean error at NULL to READY naming max-input-pixels (it aborted the
/// process allocating 120 GB); a smaller `max-input-pixels` refuses the squares model.
#[test]
fn item6_huge_inputs_are_refused_before_any_allocation() {
    for model in ["huge_input", "huge_imgsz"] {
        let message = ready_error(&format!("model={}", test_model(model)));
        assert!(
            message.contains("max-input-pixels") && message.contains("100000x100000"),
            "{model}: {message}"
        );
    }
    let dir = temp_dir("imgsz");
    let patched = dir.join("imgsz20000.onnx");
    let bytes = std::fs::read(test_model("huge_imgsz")).unwrap();
    let at = bytes
        .windows(16)
        .position(|w| w == b"[100000, 100000]")
        .unwrap();
    let mut bytes = bytes.clone();
    bytes[at..at + 16].copy_from_slice(b"[ 20000,  20000]");
    std::fs::write(&patched, bytes).unwrap();
    let message = ready_error(&format!("model={}", patched.display()));
    assert!(message.contains("20000x20000"), "{message}");
    let message = ready_error(&format!(
        "model={} max-input-pixels=1000",
        test_model("squares_v8")
    ));
    assert!(
        message.contains("256x256") && message.contains("max-input-pixels (1000)"),
        "{message}"
    );
}

/// Item 6: set as `model` while playing, a huge model keeps the current one with a warning
/// (the process aborted) and frames keep flowing with the old model.
#[test]
fn item6_huge_model_set_while_playing_keeps_the_current_one() {
    let mut run = Records::new(&format!("model={}", test_model("squares_v8")), 640, 480);
    let (image, _) = two_squares_640x480();
    run.push(&image);
    assert_eq!(frames(&run.pull(Duration::from_secs(30))).len(), 1);
    for model in ["huge_input", "huge_imgsz"] {
        run.detect.set_property("model", test_model(model));
        let warning = run
            .pipeline
            .bus()
            .unwrap()
            .timed_pop_filtered(
                gst::ClockTime::from_seconds(30),
                &[gst::MessageType::Warning],
            )
            .expect("a warning");
        let gst::MessageView::Warning(w) = warning.view() else {
            unreachable!()
        };
        let text = w.error().to_string();
        assert!(
            text.contains("keeping the current model") && text.contains("max-input-pixels"),
            "{text}"
        );
        run.push(&image);
        let records = run.pull(Duration::from_secs(30));
        let frame = frames(&records)[0];
        assert_eq!(frame["model"]["name"], "squares_v8");
        assert_eq!(frame["detections"].as_array().unwrap().len(), 2);
    }
    let (_, messages) = run.finish();
    no_errors(&messages);
}

/// Item 7: `tile-size` must be larger than `tile-overlap` (a step of one pixel cut a 640x480
/// frame into 51,761 tiles), and a tiling that still makes too many tiles is an error naming
/// the count.
#[test]
fn item7_tiling_that_cannot_work_is_an_error() {
    let model = test_model("squares_v8");
    for (tile, overlap) in [(64, 64), (32, 64)] {
        let message = ready_error(&format!(
            "model={model} tile-size={tile} tile-overlap={overlap}"
        ));
        assert!(
            message.contains(&format!(
                "tile-overlap ({overlap}) must be smaller than tile-size ({tile})"
            )),
            "{message}"
        );
    }
    let message = state_error(
        &format!("model={model} tile-size=65 tile-overlap=64"),
        gst::State::Playing,
    );
    assert!(
        message.contains("cuts a 640x480 frame into") && message.contains("at most 4096"),
        "{message}"
    );
}

/// Item 8: `labels` and `policy` must be regular files of bounded size: a FIFO blocked NULL
/// to READY forever, `/dev/zero` grew to 11 GB.
#[test]
fn item8_labels_and_policy_are_regular_files_within_a_cap() {
    let dir = temp_dir("files");
    let fifo = dir.join("fifo");
    let _ = std::fs::remove_file(&fifo);
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let big = dir.join("big.toml");
    std::fs::write(&big, "# padding\n".repeat(2 << 20)).unwrap();
    let model = test_model("squares_v8");
    let cases = [
        (
            format!("model={model} labels={}", fifo.display()),
            "is a FIFO",
        ),
        (
            format!("model={model} policy={}", fifo.display()),
            "is a FIFO",
        ),
        (
            format!("model={model} policy=/dev/zero"),
            "is a character device",
        ),
        (
            format!("model={model} labels=/dev/zero"),
            "is a character device",
        ),
        (
            format!("model={model} policy={}", dir.display()),
            "is a directory",
        ),
        (
            format!("model={model} policy={}", big.display()),
            "at most 16777216 are read",
        ),
    ];
    for (properties, reason) in cases {
        let started = Instant::now();
        let message = ready_error(&properties);
        assert!(message.contains(reason), "{properties}: {message}");
        assert!(started.elapsed() < Duration::from_secs(20));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Item 10: an end-to-end model outputting class id 2^31, an inverted box and a score of 1e30:
/// the first two are dropped (class 2^31 came back as class 0, the inverted box was kept with
/// area 0), the score is clamped to 1, each said once in a warning; records stay within the
/// schema (class ids of the model, confidence at most 1).
#[test]
fn item10_decode_drops_bad_classes_and_inverted_boxes_and_clamps_scores() {
    let mut run = Records::new(&format!("model={}", test_model("e2e_bad_values")), 256, 256);
    let image = RgbImage::new(256, 256, [0, 0, 0]);
    for _ in 0..3 {
        run.push(&image);
    }
    let (records, messages) = run.finish();
    no_errors(&messages);
    for f in frames(&records) {
        let detections = f["detections"].as_array().unwrap();
        let mut seen: Vec<(u64, f64)> = detections
            .iter()
            .map(|d| {
                (
                    d["class_id"].as_u64().unwrap(),
                    d["confidence"].as_f64().unwrap(),
                )
            })
            .collect();
        seen.sort_by(|a, b| a.partial_cmp(b).unwrap());
        assert_eq!(seen.len(), 2, "{f}");
        assert_eq!(seen[0].0, 0);
        assert!((seen[0].1 - 0.9).abs() < 1e-6);
        assert_eq!(seen[1], (1, 1.0), "score 1e30 clamped to 1");
        for d in detections {
            assert!(d["area"].as_f64().unwrap() > 0.0, "{d}");
        }
    }
    let warnings: Vec<String> = messages
        .iter()
        .filter_map(|m| match m.view() {
            gst::MessageView::Warning(w) => Some(w.error().to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(warnings.len(), 3, "each said once: {warnings:#?}");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("1 detections whose class is not an integer"))
    );
    assert!(warnings.iter().any(|w| w.contains("1 inverted boxes")));
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("scores above 1 (up to 1e30)"))
    );
}

fn write_policy(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Item 11: policy values that would switch a check off are errors at NULL to READY naming
/// the file and line (they were accepted without a word), and a region outside the frame is an
/// error once the frame size is known.
#[test]
fn item11_policies_that_switch_checks_off_are_errors_with_file_and_line() {
    let dir = temp_dir("policy");
    let model = test_model("squares_v8");
    let cases = [
        (
            "nan.toml",
            "[default]\nmin-area = nan\n",
            "nan.toml:2: min-area NaN",
        ),
        (
            "mm2.toml",
            "pixels-per-mm = 2.0\n\n[default]\nmin-area-mm2 = nan\n",
            "mm2.toml:4: min-area-mm2 NaN",
        ),
        (
            "ppm.toml",
            "pixels-per-mm = inf\n",
            "ppm.toml:1: pixels-per-mm inf",
        ),
        (
            "ppm300.toml",
            "pixels-per-mm = 1e300\n",
            "ppm300.toml:1: pixels-per-mm 1e300",
        ),
        (
            "vertex.toml",
            "[region]\npolygon = [[0, 0], [nan, 10], [10, 0]]\n",
            "vertex.toml:2: region polygon vertex",
        ),
        (
            "line.toml",
            "[region]\npolygon = [[0, 0], [100, 100], [200, 200]]\n",
            "line.toml:2: region polygon has no area",
        ),
    ];
    for (name, text, expected) in cases {
        let path = write_policy(&dir, name, text);
        let message = ready_error(&format!("model={model} policy={}", path.display()));
        assert!(message.contains(expected), "{name}: {message}");
    }
    let outside = write_policy(
        &dir,
        "outside.toml",
        "\n[region]\nrect = [2000, 0, 2100, 100]\n",
    );
    let message = state_error(
        &format!("model={model} policy={}", outside.display()),
        gst::State::Playing,
    );
    assert!(
        message.contains("outside.toml:2: the region lies entirely outside the 640x480 frame"),
        "{message}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Item 12: a model without `names`: the policy can name its classes `class0`, `class1` (it
/// could not); malformed, NUL-holding and non-UTF-8 `names` are said in a warning (they were
/// ignored silently).
#[test]
fn item12_models_without_or_with_bad_names() {
    let dir = temp_dir("names");
    let policy = write_policy(
        &dir,
        "classes.toml",
        "[classes.class1]\nmin-confidence = 0.5\nseverity = \"minor\"\n",
    );
    let mut run = Records::new(
        &format!(
            "model={} policy={}",
            test_model("nonames_v8"),
            policy.display()
        ),
        640,
        480,
    );
    let (image, _) = two_squares_640x480();
    run.push(&image);
    let (records, messages) = run.finish();
    no_errors(&messages);
    let frame = frames(&records)[0];
    let mut names: Vec<&str> = frame["detections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["class_name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["class0", "class1"]);
    // class1 is minor under the policy; class0 fails by the default rule.
    assert_eq!(frame["verdict"], "FAIL");
    let unknown = write_policy(&dir, "c9.toml", "[classes.class9]\nmin-confidence = 0.5\n");
    let message = ready_error(&format!(
        "model={} policy={}",
        test_model("nonames_v8"),
        unknown.display()
    ));
    assert!(message.contains("unknown class \"class9\""), "{message}");

    for (model, expected) in [
        ("badnames_v8", "`names` metadata is ignored"),
        ("nulnames_v8", "`names` metadata is ignored"),
        ("nonutf8names_v8", "`names` metadata is not valid UTF-8"),
    ] {
        let p = pipeline(&format!(
            "videotestsrc num-buffers=1 ! defectdetect model={} ! fakesink",
            test_model(model)
        ));
        p.set_state(gst::State::Ready).unwrap();
        let warnings = warnings_of(&p.bus().unwrap());
        p.set_state(gst::State::Null).unwrap();
        assert!(
            warnings.iter().any(|w| w.contains(expected)),
            "{model}: {warnings:?}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Item 12: labels files: a UTF-8 byte-order mark is not part of the first name, a different
/// class count than the model's is a warning, a directory given as `model` is said to be a
/// directory (not "does not exist"), and an input dimension of 0 is an error (it fell back to
/// 640).
#[test]
fn item12_labels_directories_and_zero_dimensions() {
    let dir = temp_dir("labels");
    let bom = dir.join("bom.txt");
    std::fs::write(&bom, "\u{feff}white_square\nred_square\n").unwrap();
    let mut run = Records::new(
        &format!(
            "model={} labels={}",
            test_model("squares_v8"),
            bom.display()
        ),
        640,
        480,
    );
    let (image, _) = two_squares_640x480();
    run.push(&image);
    let (records, messages) = run.finish();
    no_errors(&messages);
    let names: Vec<&str> = frames(&records)[0]["detections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["class_name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"white_square"), "{names:?}");

    let three = dir.join("three.txt");
    std::fs::write(&three, "a\nb\nc\n").unwrap();
    let p = pipeline(&format!(
        "videotestsrc num-buffers=1 ! defectdetect model={} labels={} ! fakesink",
        test_model("squares_v8"),
        three.display()
    ));
    p.set_state(gst::State::Ready).unwrap();
    let warnings = warnings_of(&p.bus().unwrap());
    p.set_state(gst::State::Null).unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("names 3 classes but the output has 2")),
        "{warnings:?}"
    );

    let message = ready_error(&format!("model={}", dir.display()));
    assert!(message.contains("is a directory"), "{message}");
    let message = ready_error(&format!("model={}", test_model("zero_dim")));
    assert!(message.contains("has a dimension of 0"), "{message}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Item 13: `policy` set while playing takes over at a frame boundary (it was ignored until the
/// next start); a policy with an error keeps the current one and posts a warning.
#[test]
fn item13_policy_set_while_playing_is_reloaded() {
    let dir = temp_dir("reload");
    let strict = write_policy(&dir, "strict.toml", "[default]\nmin-confidence = 0.5\n");
    let lenient = write_policy(
        &dir,
        "lenient.toml",
        "[default]\nmin-confidence = 0.5\nseverity = \"minor\"\n",
    );
    let broken = write_policy(&dir, "broken.toml", "[default]\nmin-confidence = nan\n");
    let mut run = Records::new(
        &format!(
            "model={} policy={}",
            test_model("squares_v8"),
            strict.display()
        ),
        640,
        480,
    );
    let (image, _) = two_squares_640x480();
    let next = |run: &mut Records| {
        run.push(&image);
        let records = run.pull(Duration::from_secs(30));
        frames(&records)[0]["verdict"].as_str().unwrap().to_string()
    };
    assert_eq!(next(&mut run), "FAIL");
    run.detect
        .set_property("policy", lenient.display().to_string());
    let started = Instant::now();
    loop {
        if next(&mut run) == "PASS" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never reloaded"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    run.detect
        .set_property("policy", broken.display().to_string());
    let warning = run
        .pipeline
        .bus()
        .unwrap()
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(30),
            &[gst::MessageType::Warning],
        )
        .expect("a warning");
    let gst::MessageView::Warning(w) = warning.view() else {
        unreachable!()
    };
    let text = w.error().to_string();
    assert!(
        text.contains("keeping the current model and policy") && text.contains("broken.toml:2"),
        "{text}"
    );
    for _ in 0..3 {
        assert_eq!(next(&mut run), "PASS", "the lenient policy stays");
    }
    let (_, messages) = run.finish();
    no_errors(&messages);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Item 14: a model still building when the pipeline goes to NULL and back does not replace
/// the model loaded at the restart (pending was not cleared).
#[test]
fn item14_a_build_under_way_does_not_replace_the_model_loaded_at_restart() {
    let p = pipeline(&format!(
        "appsrc name=src format=time is-live=true ! defectdetect name=d model={} ! appsink name=sink sync=false",
        test_model("squares_v8")
    ));
    let (src, sink) = app_ends(&p);
    let detect = p.by_name("d").unwrap();
    src.set_caps(Some(&caps(VideoFormat::Rgb, 256, 256)));
    p.set_state(gst::State::Playing).unwrap();
    let image = RgbImage::new(256, 256, [0, 0, 0]);
    let model_of = |i: u64| -> String {
        let mut buffer = frame_buffer(&image, VideoFormat::Rgb, 0);
        buffer
            .get_mut()
            .unwrap()
            .set_pts(gst::ClockTime::from_mseconds(33 * i));
        src.push_buffer(buffer).unwrap();
        let sample = sink
            .try_pull_sample(gst::ClockTime::from_seconds(30))
            .expect("a frame");
        gst::meta::CustomMeta::from_buffer(sample.buffer().unwrap(), "DefectVerdictMeta")
            .unwrap()
            .structure()
            .get::<String>("model-name")
            .unwrap()
    };
    assert_eq!(model_of(0), "squares_v8");
    // The slow model's build (two dry runs of about a second each) is under way during the
    // restart.
    detect.set_property("model", test_model("slow_e2e"));
    std::thread::sleep(Duration::from_millis(400));
    p.set_state(gst::State::Null).unwrap();
    detect.set_property("model", test_model("squares_e2e"));
    p.set_state(gst::State::Playing).unwrap();
    let started = Instant::now();
    let mut i = 1;
    while started.elapsed() < Duration::from_secs(5) {
        assert_eq!(model_of(i), "squares_e2e", "frame {i}");
        i += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    p.set_state(gst::State::Null).unwrap();
}

/// Item 15: in async mode, re-setting the same model re-plans the letterbox: the new detector's
/// border is grey 114, not black. `border_probe` scores the mean of the top-left 8x8 of its
/// input, which the letterbox of a 256x128 frame fills with border: 114/255 = 0.447 with a
/// grey border, 0 (no detection) with a black one.
#[test]
fn item15_async_swap_replans_the_letterbox() {
    let log = LogLines::capture("probe15", "in use from frame");
    let mut run = Records::named(
        "probe15",
        &format!(
            "model={} async-inference=true conf-threshold=0.1",
            test_model("border_probe")
        ),
        256,
        128,
    );
    let image = RgbImage::new(256, 128, [0, 0, 0]);
    let mut confidences = Vec::new();
    let mut set_at = None;
    while set_at.is_none_or(|at: Instant| at.elapsed() < Duration::from_secs(3)) {
        run.push(&image);
        // From the first frame that carries a result of the worker on, every frame does (one
        // caps, no parts).
        for f in frames(&run.pull(Duration::from_secs(30))) {
            let detections = f["detections"].as_array().unwrap();
            if !confidences.is_empty() || !detections.is_empty() {
                confidences.push(
                    detections
                        .first()
                        .map_or(0.0, |d| d["confidence"].as_f64().unwrap()),
                );
            }
        }
        if run.pushed == 10 {
            run.detect.set_property("model", test_model("border_probe"));
            set_at = Some(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let (_, messages) = run.finish();
    no_errors(&messages);
    assert!(confidences.len() > 10, "{confidences:?}");
    for c in &confidences {
        assert!(
            (c - 114.0 / 255.0).abs() < 0.01,
            "border not grey 114: {confidences:?}"
        );
    }
    assert!(
        log.lines().len() >= 2,
        "the model was swapped: {:?}",
        log.lines()
    );
}

/// Item 16: `set_property("model")` does not wait for the inference in progress (it took the
/// lock the streaming thread held during inference), and ten quick sets are one background
/// build (they were ten).
#[test]
fn item16_set_property_never_waits_and_quick_sets_are_one_build() {
    let builds = LogLines::capture("race16", "in the background");
    let p = pipeline(&format!(
        "appsrc name=src format=time ! defectdetect name=race16 threads=1 model={} ! appsink name=sink sync=false",
        test_model("slow_e2e")
    ));
    let (src, sink) = app_ends(&p);
    let detect = p.by_name("race16").unwrap();
    src.set_caps(Some(&caps(VideoFormat::Rgb, 256, 256)));
    p.set_state(gst::State::Playing).unwrap();
    let image = RgbImage::new(256, 256, [0, 0, 0]);
    // One frame to learn how long a run takes.
    src.push_buffer(frame_buffer(&image, VideoFormat::Rgb, 0))
        .unwrap();
    let first = sink
        .try_pull_sample(gst::ClockTime::from_seconds(60))
        .unwrap();
    let run_ms = gst::meta::CustomMeta::from_buffer(first.buffer().unwrap(), "DefectVerdictMeta")
        .unwrap()
        .structure()
        .get::<f64>("inference-ms")
        .unwrap();
    // The second frame's inference is in progress while the properties are set.
    src.push_buffer(frame_buffer(&image, VideoFormat::Rgb, 0))
        .unwrap();
    std::thread::sleep(Duration::from_millis((run_ms / 4.0) as u64));
    let started = Instant::now();
    for i in 0..10 {
        let model = if i % 2 == 0 {
            "squares_v8"
        } else {
            "squares_e2e"
        };
        detect.set_property("model", test_model(model));
    }
    let set_ms = started.elapsed().as_secs_f64() * 1e3;
    let second = sink
        .try_pull_sample(gst::ClockTime::from_seconds(60))
        .unwrap();
    println!("item 16: ten sets of `model` took {set_ms:.2} ms during a {run_ms:.0} ms inference");
    assert!(
        set_ms < run_ms / 4.0,
        "setting `model` waited for the inference: {set_ms:.1} ms (a run is {run_ms:.0} ms)"
    );
    drop(second);
    // The last set wins, after one build.
    let started = Instant::now();
    let model_name = loop {
        src.push_buffer(frame_buffer(&image, VideoFormat::Rgb, 0))
            .unwrap();
        let sample = sink
            .try_pull_sample(gst::ClockTime::from_seconds(60))
            .unwrap();
        let name =
            gst::meta::CustomMeta::from_buffer(sample.buffer().unwrap(), "DefectVerdictMeta")
                .unwrap()
                .structure()
                .get::<String>("model-name")
                .unwrap();
        if name != "slow_e2e" || started.elapsed() > Duration::from_secs(30) {
            break name;
        }
    };
    assert_eq!(model_name, "squares_e2e");
    p.set_state(gst::State::Null).unwrap();
    // Sets closer together than the slot's settling time (100 ms) are one build; only a
    // machine so loaded that this thread slept that long between two sets could see two.
    let expected = if set_ms < 100.0 { 1 } else { 2 };
    assert!(
        builds.lines().len() <= expected,
        "{set_ms:.1} ms: {:?}",
        builds.lines()
    );
    assert!(!builds.lines().is_empty());
}

/// Item 16: PLAYING to NULL while a long inference is in progress does not wait for it (it
/// waited for the whole run: 14 s with a 10 s model in async mode), in either mode. The run is
/// interrupted between two of the model's nodes. Prints the time it took.
#[test]
fn item16_stopping_does_not_wait_for_a_long_inference() {
    for mode in ["async-inference=false", "async-inference=true"] {
        // threads=3: a session of its own, which no other test runs on at the same time.
        let p = pipeline(&format!(
            "appsrc name=src format=time ! defectdetect threads=3 {mode} model={} ! fakesink sync=false",
            test_model("slow_e2e")
        ));
        let src = p
            .by_name("src")
            .unwrap()
            .downcast::<gst_app::AppSrc>()
            .unwrap();
        src.set_caps(Some(&caps(VideoFormat::Rgb, 256, 256)));
        p.set_state(gst::State::Playing).unwrap();
        // A run's length, from a dry run of the same model outside the element.
        let run = {
            use gstdefect::runtime::{Detector, DetectorOptions, Provider};
            let (mut detector, _) = Detector::load(&DetectorOptions {
                model: test_model("slow_e2e").into(),
                provider: Provider::Cpu,
                threads: 3,
                ..Default::default()
            })
            .unwrap();
            let started = Instant::now();
            detector.run_only().unwrap();
            started.elapsed()
        };
        let image = RgbImage::new(256, 256, [0, 0, 0]);
        for _ in 0..3 {
            src.push_buffer(frame_buffer(&image, VideoFormat::Rgb, 0))
                .unwrap();
        }
        std::thread::sleep(run / 3);
        let started = Instant::now();
        p.set_state(gst::State::Null).unwrap();
        let took = started.elapsed();
        println!(
            "item 16: {mode}: PLAYING to NULL took {:.0} ms with a {:.0} ms inference in progress",
            took.as_secs_f64() * 1e3,
            run.as_secs_f64() * 1e3
        );
        assert!(
            took < run / 2,
            "{mode}: stopping waited {took:?} (a run is {run:?})"
        );
    }
}
