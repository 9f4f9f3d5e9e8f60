// SPDX-License-Identifier: MIT OR Apache-2.0
//! The tasks of `defectdetect` beyond boxes (issue 15), through `gst_check::Harness` with
//! known answers: classification (an Ultralytics 8.x `-cls` signature, probabilities and
//! logits, top-k, centre crop, good classes, YUV frames) and anomaly detection (our export and
//! an Anomalib 2.x-style export: regions, scores, thresholds from the model and the policy, a
//! threshold changed while PLAYING in force on the next frame). The test models are made by
//! `scripts/make_task_test_models.py`; their rules are in its documentation.

mod common;

use common::*;
use gst::prelude::*;
use gst_video::VideoFormat;
use gstdefect::meta::prelude::*;

struct Run {
    harness: gst_check::Harness,
    detect: gst::Element,
    bus: gst::Bus,
    width: usize,
    height: usize,
}

/// One ROI meta: type, rect, `detection` parameters, `classification` parameters.
type RoiOut = (
    String,
    (u32, u32, u32, u32),
    gst::Structure,
    Option<gst::Structure>,
);

/// What came out with one frame.
struct Out {
    verdict: gst::Structure,
    /// The ROI metas: type, rect, `detection` parameters, `classification` parameters.
    rois: Vec<RoiOut>,
}

impl Out {
    fn verdict(&self) -> String {
        self.verdict.get::<String>("verdict").unwrap()
    }

    fn labels(&self) -> Vec<String> {
        self.rois.iter().map(|r| r.0.clone()).collect()
    }
}

impl Run {
    fn new(properties: &str, width: usize, height: usize, format: VideoFormat) -> Self {
        init();
        let detect = gst::parse::launch(&format!("defectdetect {properties}")).unwrap();
        // The bus first: the harness starts the element, and loading may warn.
        let bus = gst::Bus::new();
        detect.set_bus(Some(&bus));
        let mut harness = gst_check::Harness::with_element(&detect, Some("sink"), Some("src"));
        harness.set_src_caps(caps(format, width, height));
        harness.play();
        Self {
            harness,
            detect,
            bus,
            width,
            height,
        }
    }

    fn rgb(properties: &str) -> Self {
        Self::new(properties, 640, 480, VideoFormat::Rgb)
    }

    /// The warnings posted since the last call.
    fn warnings(&self) -> Vec<String> {
        std::iter::from_fn(|| self.bus.pop_filtered(&[gst::MessageType::Warning]))
            .filter_map(|m| match m.view() {
                gst::MessageView::Warning(w) => Some(w.error().to_string()),
                _ => None,
            })
            .collect()
    }

    fn push_as(&mut self, image: &RgbImage, format: VideoFormat) -> Out {
        assert_eq!((image.width, image.height), (self.width, self.height));
        self.harness
            .push(frame_buffer(image, format, 0))
            .expect("pushed");
        let out = self.harness.pull().expect("a buffer out");
        let verdict = gst::meta::CustomMeta::from_buffer(&out, "DefectVerdictMeta")
            .expect("verdict meta")
            .structure()
            .to_owned();
        let rois = out
            .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
            .map(|m| {
                (
                    m.roi_type().to_string(),
                    m.rect(),
                    m.param("detection").expect("detection").to_owned(),
                    m.param("classification").map(|c| c.to_owned()),
                )
            })
            .collect();
        Out { verdict, rois }
    }

    fn push(&mut self, image: &RgbImage) -> Out {
        self.push_as(image, VideoFormat::Rgb)
    }

    fn wait_for(&self, name: &str) -> gst::Structure {
        loop {
            let message = self
                .bus
                .timed_pop(gst::ClockTime::from_seconds(60))
                .unwrap_or_else(|| panic!("no {name} message"));
            if let Some(s) = message.structure().filter(|s| s.name() == name) {
                return s.to_owned();
            }
            if let gst::MessageView::Error(e) = message.view() {
                panic!("error while waiting for {name}: {}", e.error());
            }
        }
    }
}

fn temp_file(name: &str, text: &str) -> String {
    let dir = std::env::temp_dir().join(format!("defect-tasks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// The error `defectdetect` posts when it cannot start with these properties.
fn start_error(properties: &str) -> String {
    init();
    let element = gst::parse::launch(&format!("defectdetect {properties}")).unwrap();
    let bus = gst::Bus::new();
    element.set_bus(Some(&bus));
    assert!(
        element.set_state(gst::State::Ready).is_err(),
        "{properties}"
    );
    let _ = element.set_state(gst::State::Null);
    std::iter::from_fn(|| bus.pop())
        .find_map(|m| match m.view() {
            gst::MessageView::Error(e) => Some(e.error().to_string()),
            _ => None,
        })
        .expect("an error message")
}

/// Grid colours of the colour classifier: 255 * i / 9 rounded.
const GRID: [u8; 10] = [0, 28, 57, 85, 113, 142, 170, 198, 227, 255];

fn cls_model(logits: bool) -> String {
    test_model(if logits {
        "cls_colour_224_logits"
    } else {
        "cls_colour_224"
    })
}

/// An Ultralytics 8.x `-cls` signature ([1, 3, 224, 224] -> [1, 1000], metadata `task:
/// classify`, 1000 names) classifies: the top-1 class of a uniform frame is its colour's grid
/// class, named from the metadata (names with apostrophes included), with a `classification`
/// structure on a whole-frame ROI, for probabilities and for logits alike.
#[test]
fn ultralytics_cls_signature_classifies_the_whole_frame() {
    for logits in [false, true] {
        let mut run = Run::rgb(&format!("model={}", cls_model(logits)));
        let info = model_info(&run.detect);
        assert!(info.contains("task classify"), "{info}");
        for (colour, id, name) in [
            ([GRID[4]; 3], 444, "jack-o'-lantern"),
            ([GRID[5]; 3], 555, "potter's wheel"),
            ([255, 0, 0], 900, "red"),
            ([GRID[1], GRID[7], GRID[3]], 173, "r1g7b3"),
        ] {
            let out = run.push(&RgbImage::new(640, 480, colour));
            assert_eq!(out.labels(), [name], "logits {logits}, {colour:?}");
            let (_, rect, detection, classification) = &out.rois[0];
            assert_eq!(*rect, (0, 0, 640, 480));
            let c = classification.as_ref().expect("classification parameters");
            assert_eq!(c.get::<String>("label").unwrap(), name);
            assert_eq!(c.get::<i32>("label_id").unwrap(), id);
            let confidence = c.get::<f64>("confidence").unwrap();
            assert!(confidence > 0.999, "{confidence}");
            assert_eq!(detection.get::<f64>("confidence").unwrap(), confidence);
            assert_eq!(out.verdict.get::<String>("task").unwrap(), "classify");
            // Without a policy a class fails the frame, like a detection.
            assert_eq!(out.verdict(), "FAIL");
        }
    }
}

/// `top-k` attaches the k most probable classes, most probable first; the logits model's
/// probabilities (softmax in the element) equal the softmax model's.
#[test]
fn top_k_and_softmax_of_logits() {
    // Mean colour between two grid colours: class 444 and its neighbours share the mass.
    let image = RgbImage::new(640, 480, [113, 113, 127]);
    let mut probabilities = Vec::new();
    for logits in [false, true] {
        let mut run = Run::rgb(&format!("model={} top-k=3", cls_model(logits)));
        let out = run.push(&image);
        assert_eq!(out.rois.len(), 3);
        assert_eq!(out.labels()[0], "jack-o'-lantern");
        assert_eq!(out.labels()[1], "r4g4b5");
        let p: Vec<f64> = out
            .rois
            .iter()
            .map(|r| r.2.get::<f64>("confidence").unwrap())
            .collect();
        assert!(p.windows(2).all(|w| w[0] >= w[1]), "{p:?}");
        probabilities.push(p);
    }
    for (a, b) in probabilities[0].iter().zip(&probabilities[1]) {
        assert!((a - b).abs() < 1e-3, "{probabilities:?}");
    }
}

/// The Ultralytics preprocessing: the short side is resized and the centre cropped, so colour
/// outside the central square never counts (a letterbox or a stretch would mix it in).
#[test]
fn centre_crop_ignores_the_sides() {
    let mut image = RgbImage::new(640, 480, [255, 0, 0]);
    // The central 480 x 480 square (80..560) is blue; the 80-px sides red.
    image.fill_rect(80, 0, 560, 480, [0, 0, 255]);
    let mut run = Run::rgb(&format!("model={}", cls_model(false)));
    assert_eq!(run.push(&image).labels(), ["blue"]);
    // Portrait: the top and bottom are cropped.
    let mut run = Run::new(
        &format!("model={}", cls_model(false)),
        240,
        320,
        VideoFormat::Rgb,
    );
    let mut image = RgbImage::new(240, 320, [255, 255, 255]);
    image.fill_rect(0, 40, 240, 280, [0, 255, 0]);
    assert_eq!(run.push(&image).labels(), ["green"]);
}

/// YUV frames are converted to RGB first (BT.601 limited range here).
#[test]
fn yuv_frames_classify() {
    for format in [VideoFormat::Nv12, VideoFormat::I420] {
        let mut run = Run::new(&format!("model={}", cls_model(false)), 320, 240, format);
        let out = run.push_as(&RgbImage::new(320, 240, [GRID[4]; 3]), format);
        assert_eq!(out.labels(), ["jack-o'-lantern"], "{format:?}");
    }
}

/// Classes are judged by the policy like detections: per-class min-confidence and severity,
/// and a class declared good never fails a frame.
#[test]
fn the_policy_judges_classes_and_good_classes_pass() {
    let policy = temp_file(
        "classes.toml",
        "[default]\nmin-confidence = 0.5\nseverity = \"major\"\n\n\
         [classes.white]\ngood = true\n\n\
         [classes.red]\nmin-confidence = 0.5\nseverity = \"minor\"\n\n\
         [classes.blue]\nmin-confidence = 0.5\nseverity = \"critical\"\n",
    );
    let mut run = Run::rgb(&format!("model={} policy={policy}", cls_model(false)));
    let white = run.push(&RgbImage::new(640, 480, [255; 3]));
    assert_eq!(white.verdict(), "PASS");
    assert_eq!(white.rois[0].2.get::<String>("decision").unwrap(), "accept");
    assert_eq!(white.verdict.get::<u32>("major").unwrap(), 0);
    let red = run.push(&RgbImage::new(640, 480, [255, 0, 0]));
    assert_eq!(red.verdict(), "PASS");
    assert_eq!(red.verdict.get::<u32>("minor").unwrap(), 1);
    let blue = run.push(&RgbImage::new(640, 480, [0, 0, 255]));
    assert_eq!(blue.verdict(), "FAIL");
    assert_eq!(blue.verdict.get::<u32>("critical").unwrap(), 1);
    // A class the model does not know is an error naming it.
    let unknown = temp_file("unknown.toml", "[classes.okay]\ngood = true\n");
    let error = start_error(&format!("model={} policy={unknown}", cls_model(false)));
    assert!(error.contains("unknown class \"okay\""), "{error}");
}

/// `crop` classifies a window of the frame, not the frame: a 200 x 200 blue window at an odd
/// corner of a red 640 x 480 frame is `blue` with it and mostly red without, and the class's ROI
/// covers the window; YUV frames too (the window's chroma from its odd corner). A malformed
/// crop, one outside the frames, one beside on-rois or for a detector is refused, naming why.
#[test]
fn crop_classifies_the_window_not_the_frame() {
    let mut image = RgbImage::new(640, 480, [255, 0, 0]);
    image.fill_rect(301, 97, 501, 297, [0, 0, 255]);
    let model = cls_model(false);
    // The colour model names a frame's mean colour: the whole frame's is mostly red.
    let mut whole = Run::rgb(&format!("model={model}"));
    assert_eq!(whole.push(&image).labels(), ["r7g0b2"]);
    for format in [VideoFormat::Rgb, VideoFormat::Nv12, VideoFormat::I420] {
        let mut run = Run::new(
            &format!("model={model} crop=301,97,200,200"),
            640,
            480,
            format,
        );
        assert_eq!(
            run.detect.property::<Option<String>>("crop").as_deref(),
            Some("301,97,200,200")
        );
        let out = run.push_as(&image, format);
        assert_eq!(out.labels(), ["blue"], "{format:?}");
        let (_, rect, _, classification) = &out.rois[0];
        assert_eq!(*rect, (301, 97, 200, 200), "{format:?}");
        let c = classification.as_ref().expect("classification parameters");
        assert!(c.get::<f64>("confidence").unwrap() > 0.99, "{c:?}");
    }
    for (properties, reason) in [
        (
            format!("model={model} crop=1,2,3"),
            "crop \"1,2,3\" is not x,y,width,height",
        ),
        (
            format!("model={model} crop=0,0,0,10"),
            "is not x,y,width,height",
        ),
        (
            format!("model={model} crop=10,10,60,20"),
            "crop 10,10,60,20 (x,y,width,height) is not inside the 64x64 frame",
        ),
        (
            format!("model={model} crop=0,0,10,10 on-rois=true"),
            "crop and on-rois cannot be combined",
        ),
        (
            format!("model={} crop=0,0,10,10", test_model("squares_v8")),
            "crop needs a classifier",
        ),
    ] {
        let error = start_error_playing(&properties);
        assert!(error.contains(reason), "{properties}: {error}");
    }
}

/// The `task` property overrides the model: a classifier forced to be a detector or an
/// anomaly model fails at start naming what is wrong; an unknown `task` metadata value too.
#[test]
fn task_property_overrides_and_mismatches_are_errors() {
    let error = start_error(&format!("model={} task=detect", cls_model(false)));
    assert!(error.contains("output"), "{error}");
    let error = start_error(&format!("model={} task=anomaly", cls_model(false)));
    assert!(
        error.contains("anomaly map") && error.contains("output0 [1, 1000]"),
        "{error}"
    );
    // The detector of the other tests is still a detector under auto.
    let run = Run::rgb(&format!("model={}", test_model("squares_v8")));
    let info = model_info(&run.detect);
    assert!(info.contains("task detect"), "{info}");
}

/// A dark 640x480 frame with a bright square at (320..400, 160..240).
fn bright_square(level: u8) -> RgbImage {
    let mut image = RgbImage::new(640, 480, [10, 10, 10]);
    image.fill_rect(320, 160, 400, 240, [level; 3]);
    image
}

fn f64_of(s: &gst::StructureRef, field: &str) -> f64 {
    s.get::<f64>(field)
        .unwrap_or_else(|_| panic!("{field} in {s}"))
}

/// Our export (`task: anomaly` and thresholds in the metadata; map = 10 x brightness): the
/// bright square is one `anomaly` region with its box, peak and mean score; a dark frame
/// passes with its score.
#[test]
fn our_anomaly_export_gives_regions_and_verdicts() {
    let mut run = Run::rgb(&format!("model={}", test_model("anomaly_ours")));
    let info = model_info(&run.detect);
    assert!(
        info.contains("task anomaly") && info.contains("image threshold 7"),
        "{info}"
    );
    let out = run.push(&bright_square(255));
    assert_eq!(out.verdict(), "FAIL");
    assert_eq!(out.verdict.get::<String>("task").unwrap(), "anomaly");
    assert!((f64_of(&out.verdict, "anomaly-score") - 10.0).abs() < 1e-3);
    assert_eq!(out.labels(), ["anomaly"]);
    let (_, (x, y, w, h), detection, _) = &out.rois[0];
    // The map is 112 x 64 over 640 x 480: cells of 5.7 x 7.5 px; the bilinear resize blurs
    // the square's edges by about a cell.
    for (got, want) in [(*x, 320), (*y, 160), (x + w, 400), (y + h, 240)] {
        assert!((got as i32 - want).abs() <= 12, "rect {:?}", (x, y, w, h));
    }
    assert!((f64_of(detection, "peak_score") - 10.0).abs() < 1e-3);
    let mean = f64_of(detection, "mean_score");
    assert!(mean > 7.0 && mean <= 10.0, "{mean}");
    assert_eq!(detection.get::<String>("decision").unwrap(), "fail");
    assert!((f64_of(detection, "confidence") - 10.0 / 14.0).abs() < 1e-3);

    let dark = run.push(&RgbImage::new(640, 480, [10, 10, 10]));
    assert_eq!(dark.verdict(), "PASS");
    assert!(dark.rois.is_empty());
    assert!((f64_of(&dark.verdict, "anomaly-score") - 100.0 / 255.0).abs() < 1e-3);
}

/// An Anomalib 2.x-style export (no metadata; `pred_score`, `pred_label`, `anomaly_map`,
/// `pred_mask`; dynamic input; normalised scores): recognised from its outputs, its bool
/// outputs ignored, 0.5 as both thresholds (Anomalib's own decision).
#[test]
fn anomalib_export_is_recognised_and_normalised_at_half() {
    let mut run = Run::rgb(&format!("model={}", test_model("anomalib_v2_style")));
    let info = model_info(&run.detect);
    assert!(
        info.contains("task anomaly") && info.contains("image threshold 0.5"),
        "{info}"
    );
    let out = run.push(&bright_square(255));
    assert_eq!(out.verdict(), "FAIL");
    // n(1.0) = clamp((1.0 - 0.7) / 0.8 + 0.5) = 0.875.
    assert!((f64_of(&out.verdict, "anomaly-score") - 0.875).abs() < 1e-3);
    assert_eq!(out.rois.len(), 1);
    // Just below Anomalib's threshold (brightness 0.69): PASS, no region.
    let out = run.push(&bright_square(176));
    assert_eq!(out.verdict(), "PASS");
    assert!(out.rois.is_empty());
}

/// The `[anomaly]` section: its thresholds replace the model's; `min-area` drops small
/// regions; `severity` decides the counts; and a policy set while PLAYING is in force on the
/// very next frame once the element says it is ready (`defect-model-ready`).
#[test]
fn anomaly_policy_thresholds_min_area_and_reload_while_playing() {
    let lenient = temp_file(
        "anomaly-lenient.toml",
        "[anomaly]\nimage-threshold = 9.0\npixel-threshold = 9.0\n",
    );
    let strict = temp_file(
        "anomaly-strict.toml",
        "[anomaly]\nimage-threshold = 5.0\npixel-threshold = 5.0\nseverity = \"critical\"\n",
    );
    let large = temp_file(
        "anomaly-large.toml",
        "[anomaly]\nimage-threshold = 5.0\npixel-threshold = 5.0\nmin-area = 10000\n",
    );
    // Brightness 200 / 255: score 7.84, between the two thresholds.
    let frame = bright_square(200);
    let mut run = Run::rgb(&format!(
        "model={} policy={lenient}",
        test_model("anomaly_ours")
    ));
    let out = run.push(&frame);
    assert_eq!(out.verdict(), "PASS");
    assert!(out.rois.is_empty(), "no cell reaches 9.0");

    run.detect.set_property("policy", &strict);
    run.wait_for("defect-model-ready");
    let out = run.push(&frame);
    assert_eq!(out.verdict(), "FAIL", "the new threshold on the next frame");
    assert_eq!(out.verdict.get::<u32>("critical").unwrap(), 1);
    assert_eq!(out.rois.len(), 1);
    // The 80 x 80 square is 6400 px²: below a 10000 px² minimum area it is ignored.
    run.detect.set_property("policy", &large);
    run.wait_for("defect-model-ready");
    let out = run.push(&frame);
    assert_eq!(out.verdict(), "PASS");
    assert_eq!(
        out.rois[0].2.get::<String>("decision").unwrap(),
        "too-small"
    );
    // Back to the lenient policy: passes again at once.
    run.detect.set_property("policy", &lenient);
    run.wait_for("defect-model-ready");
    assert_eq!(run.push(&frame).verdict(), "PASS");
}

/// A policy may set one threshold and keep the model's other: the Anomalib stand-in (forced
/// to `task=anomaly`) keeps its 0.5 pixel threshold under a policy with only an image
/// threshold.
#[test]
fn one_policy_threshold_keeps_the_models_other() {
    let image_only = temp_file(
        "anomaly-image-only.toml",
        "[anomaly]\nimage-threshold = 0.6\n",
    );
    let run = Run::rgb(&format!(
        "model={} task=anomaly policy={image_only}",
        test_model("anomalib_v2_style")
    ));
    let info = model_info(&run.detect);
    assert!(
        info.contains("image threshold 0.6, pixel threshold 0.5"),
        "{info}"
    );
}

/// A region's classification: label, severity, decision.
type ClassOut = (String, String, String);

/// `on-rois=true`: the crop of every ROI already on the buffer (an upstream detector's) is
/// classified and gets a `classification` structure with the policy's judgement; the frame
/// itself (green) is not classified and no ROI is added.
#[test]
fn on_rois_classifies_each_upstream_region() {
    let policy = temp_file(
        "rois.toml",
        "[classes.red]\nmin-confidence = 0.5\nseverity = \"minor\"\n",
    );
    let mut run = Run::rgb(&format!(
        "model={} on-rois=true policy={policy}",
        cls_model(false)
    ));
    let mut image = RgbImage::new(640, 480, [0, 255, 0]);
    image.fill_rect(40, 40, 200, 120, [255, 0, 0]);
    image.fill_rect(400, 300, 480, 460, [0, 0, 255]);
    let mut buffer = frame_buffer(&image, VideoFormat::Rgb, 0);
    {
        let buffer = buffer.get_mut().unwrap();
        for (label, rect) in [
            ("defect", (40, 40, 160, 80)),
            ("defect", (400, 300, 80, 160)),
        ] {
            gst_video::VideoRegionOfInterestMeta::add(buffer, label, rect);
        }
        // A region outside the frame is left alone.
        gst_video::VideoRegionOfInterestMeta::add(buffer, "defect", (700, 10, 20, 20));
    }
    run.harness.push(buffer).unwrap();
    let out = run.harness.pull().unwrap();
    let got: Vec<(String, Option<ClassOut>)> = out
        .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
        .map(|m| {
            (
                m.roi_type().to_string(),
                m.param("classification").map(|c| {
                    assert!(c.get::<f64>("confidence").unwrap() > 0.999);
                    (
                        c.get::<String>("label").unwrap(),
                        c.get::<String>("severity").unwrap(),
                        c.get::<String>("decision").unwrap(),
                    )
                }),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "defect".to_string(),
                Some(("red".to_string(), "minor".to_string(), "accept".to_string()))
            ),
            (
                "defect".to_string(),
                Some(("blue".to_string(), "major".to_string(), "fail".to_string()))
            ),
            ("defect".to_string(), None),
        ]
    );
    // A detector with on-rois is refused at start.
    let error = start_error_playing(&format!("model={} on-rois=true", test_model("squares_v8")));
    assert!(error.contains("on-rois needs a classifier"), "{error}");
}

/// What a two-stage pipeline gave for one frame: the verdict meta on the buffer, and the
/// `defect-verdict` messages of the detector (`det`) and of the classifier (`cls`).
struct TwoStage {
    meta: gstdefect::meta::VerdictMeta,
    detector_message: String,
    classifier_message: String,
    /// The `defect-part-verdict` messages' verdicts: the detector's, the classifier's.
    detector_part: String,
    classifier_part: String,
}

/// `squares_v8` (no policy: every square fails the frame, major) then the colour classifier
/// with `on-rois=true` and `policy` on a frame with a white and a red square; every frame is a
/// part (`frames-per-part=1`).
fn two_stage(policy: &str) -> TwoStage {
    init();
    let (image, _) = two_squares_640x480();
    let pipeline = gst::parse::launch(&format!(
        "appsrc name=src format=time ! defectdetect name=det model={} frames-per-part=1 ! \
         defectdetect name=cls model={} on-rois=true policy={policy} ! appsink name=sink sync=false",
        test_model("squares_v8"),
        cls_model(false)
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
    let bus = pipeline.bus().unwrap();
    let (mut detector_message, mut classifier_message) = (String::new(), String::new());
    let (mut detector_part, mut classifier_part) = (String::new(), String::new());
    while let Some(message) = bus.timed_pop(gst::ClockTime::from_seconds(30)) {
        match message.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("{}", e.error()),
            _ => {}
        }
        let Some(s) = message.structure() else {
            continue;
        };
        let part = match s.name().as_str() {
            "defect-verdict" => false,
            "defect-part-verdict" => true,
            _ => continue,
        };
        let verdict = s.get::<String>("verdict").unwrap();
        match (message.src().map(|o| o.name().to_string()).as_deref(), part) {
            (Some("det"), false) => detector_message = verdict,
            (Some("cls"), false) => classifier_message = verdict,
            (Some("det"), true) => detector_part = verdict,
            (Some("cls"), true) => classifier_part = verdict,
            (other, _) => panic!("{} from {other:?}", s.name()),
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    let meta = gstdefect::meta::VerdictMeta::from_buffer(sample.buffer().unwrap())
        .expect("a verdict meta")
        .expect("it reads");
    TwoStage {
        meta,
        detector_message,
        classifier_message,
        detector_part,
        classifier_part,
    }
}

/// Two stages: the frame's verdict follows the classifier's policy on each region's classified
/// label. The detector fails both squares (major); the classifier calls them `white` and `red`.
/// With `white` good and `red` critical the frame fails on the red region alone, counted
/// critical and named `red`; with both good it passes. The buffer's verdict meta is replaced,
/// and the classifier posts its own `defect-verdict` after the detector's; the part verdict
/// (in-band event and message) is re-decided the same way.
#[test]
fn two_stage_verdict_follows_the_classified_label() {
    let critical_red = temp_file(
        "two-stage-red.toml",
        "[classes.white]\ngood = true\n\n[classes.red]\nmin-confidence = 0.5\nseverity = \"critical\"\n",
    );
    let run = two_stage(&critical_red);
    assert_eq!(run.detector_message, "FAIL");
    assert_eq!(run.classifier_message, "FAIL");
    assert_eq!(
        (run.detector_part.as_str(), run.classifier_part.as_str()),
        ("FAIL", "FAIL")
    );
    assert_eq!(run.meta.verdict, gstdefect::meta::Verdict::Fail);
    assert_eq!(run.meta.counts, [1, 0, 0, 0]);
    let reasons: Vec<(&str, &str)> = run
        .meta
        .reasons
        .iter()
        .map(|r| (r.label.as_str(), r.severity.as_str()))
        .collect();
    assert_eq!(reasons, [("red", "critical")]);
    let r = &run.meta.reasons[0];
    assert!(r.confidence > 0.999, "{r:?}");
    // The red square's region (the detector's box, 80 x 80 frame px).
    assert!((r.x_max - r.x_min - 80.0).abs() <= 2.0, "{r:?}");

    let all_good = temp_file(
        "two-stage-good.toml",
        "[classes.white]\ngood = true\n\n[classes.red]\ngood = true\n",
    );
    let run = two_stage(&all_good);
    assert_eq!(run.detector_message, "FAIL");
    assert_eq!(run.classifier_message, "PASS");
    // The part's verdict follows its re-decided frames.
    assert_eq!(
        (run.detector_part.as_str(), run.classifier_part.as_str()),
        ("FAIL", "PASS")
    );
    assert_eq!(run.meta.verdict, gstdefect::meta::Verdict::Pass);
    assert_eq!(run.meta.counts, [0; 4]);
    assert!(run.meta.reasons.is_empty());
}

/// A region the detector's policy ignored (outside its region) stays ignored whatever the
/// classifier calls it; an upstream frame without a verdict meta gets none.
#[test]
fn two_stage_keeps_regions_the_detector_ignored() {
    use gstdefect::meta::{Decision, DetectionParams, ModelRef, Severity, Verdict, VerdictMeta};
    let policy = temp_file(
        "two-stage-ignored.toml",
        "[classes.red]\nmin-confidence = 0.5\nseverity = \"critical\"\n",
    );
    let mut run = Run::rgb(&format!(
        "model={} on-rois=true policy={policy}",
        cls_model(false)
    ));
    let mut image = RgbImage::new(640, 480, [0, 255, 0]);
    image.fill_rect(40, 40, 200, 120, [255, 0, 0]);
    let region = |decision| DetectionParams {
        label_id: 0,
        label: "defect".into(),
        confidence: 0.6,
        x_min: 40.0 / 640.0,
        y_min: 40.0 / 480.0,
        x_max: 200.0 / 640.0,
        y_max: 120.0 / 480.0,
        severity: Some(Severity::Major),
        decision: Some(decision),
        peak_score: None,
        mean_score: None,
    };
    let verdict = VerdictMeta {
        task: "detect".into(),
        anomaly_score: None,
        verdict: Verdict::Pass,
        shadow: false,
        part_id: None,
        frame: 0,
        inspected: true,
        carried: false,
        skipped_frames: 0,
        source_frame: None,
        counts: [0; 4],
        model: ModelRef::default(),
        policy_sha256: None,
        inference_ms: 1.0,
        total_ms: 1.0,
        reasons: Vec::new(),
        capture_dropped: None,
    };
    for (decision, want) in [
        (Decision::OutsideRegion, Verdict::Pass),
        (Decision::Accept, Verdict::Fail),
    ] {
        let mut buffer = frame_buffer(&image, VideoFormat::Rgb, 0);
        {
            let buffer = buffer.get_mut().unwrap();
            region(decision).attach(buffer, 0, (40, 40, 160, 80));
            verdict.attach(buffer);
        }
        run.harness.push(buffer).unwrap();
        let out = run.harness.pull().unwrap();
        let got = VerdictMeta::from_buffer(&out).unwrap().unwrap();
        assert_eq!(got.verdict, want, "detector decision {decision:?}");
    }
    let mut buffer = frame_buffer(&image, VideoFormat::Rgb, 0);
    region(Decision::Fail).attach(buffer.get_mut().unwrap(), 0, (40, 40, 160, 80));
    run.harness.push(buffer).unwrap();
    let out = run.harness.pull().unwrap();
    assert!(VerdictMeta::from_buffer(&out).is_none());
}

/// A green frame with an upstream FAIL verdict, for the `on-rois` limits below.
fn upstream_fail_verdict() -> gstdefect::meta::VerdictMeta {
    use gstdefect::meta::{ModelRef, Verdict, VerdictMeta};
    VerdictMeta {
        task: "detect".into(),
        anomaly_score: None,
        verdict: Verdict::Fail,
        shadow: false,
        part_id: None,
        frame: 0,
        inspected: true,
        carried: false,
        skipped_frames: 0,
        source_frame: None,
        counts: [0, 1, 0, 0],
        model: ModelRef::default(),
        policy_sha256: None,
        inference_ms: 1.0,
        total_ms: 1.0,
        reasons: Vec::new(),
        capture_dropped: None,
    }
}

/// An upstream region's `detection` parameters: a major defect that fails the frame.
fn failing_region() -> gstdefect::meta::DetectionParams {
    use gstdefect::meta::{Decision, DetectionParams, Severity};
    DetectionParams {
        label_id: 0,
        label: "defect".into(),
        confidence: 0.9,
        x_min: 0.0,
        y_min: 0.0,
        x_max: 1.0,
        y_max: 1.0,
        severity: Some(Severity::Major),
        decision: Some(Decision::Fail),
        peak_score: None,
        mean_score: None,
    }
}

/// `on-rois`: a region larger than the frame (a size of 0xFFFFFFFF) is classified on its part
/// inside the frame, and the re-decided verdict records it clipped to the frame, never with
/// `x_max < x_min`.
#[test]
fn on_rois_clips_regions_to_the_frame() {
    use gstdefect::meta::{Verdict, VerdictMeta};
    let mut run = Run::rgb(&format!("model={} on-rois=true", cls_model(false)));
    let image = RgbImage::new(640, 480, [0, 255, 0]);
    let mut buffer = frame_buffer(&image, VideoFormat::Rgb, 0);
    {
        let buffer = buffer.get_mut().unwrap();
        failing_region().attach(buffer, 0, (40, 30, u32::MAX, u32::MAX));
        upstream_fail_verdict().attach(buffer);
    }
    run.harness.push(buffer).unwrap();
    let out = run.harness.pull().unwrap();
    let roi = out
        .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
        .next()
        .unwrap();
    let class = roi
        .param("classification")
        .expect("the region is classified");
    assert_eq!(class.get::<String>("label").unwrap(), "green");
    let verdict = VerdictMeta::from_buffer(&out).unwrap().unwrap();
    assert_eq!(verdict.verdict, Verdict::Fail);
    assert_eq!(verdict.reasons.len(), 1, "{:?}", verdict.reasons);
    let r = &verdict.reasons[0];
    assert!(r.x_max >= r.x_min && r.y_max >= r.y_min, "{r:?}");
    assert_eq!(
        (r.x_min, r.y_min, r.x_max, r.y_max),
        (40.0, 30.0, 640.0, 480.0)
    );
}

/// `on-rois`: at most `max-rois` regions of a frame are classified (the first ones); the
/// others are left unclassified, with one warning per stream naming the property.
#[test]
fn on_rois_classifies_at_most_max_rois_regions() {
    let warnings = |run: &Run| {
        run.warnings()
            .iter()
            .filter(|w| w.contains("max-rois"))
            .count()
    };
    let classified = |out: &gst::Buffer| {
        out.iter_meta::<gst_video::VideoRegionOfInterestMeta>()
            .map(|m| m.param("classification").is_some())
            .collect::<Vec<_>>()
    };
    let frame = |regions: u32| {
        let image = RgbImage::new(640, 480, [0, 255, 0]);
        let mut buffer = frame_buffer(&image, VideoFormat::Rgb, 0);
        let b = buffer.get_mut().unwrap();
        for i in 0..regions {
            let (x, y) = ((i % 20) * 30, (i / 20) * 30 % 450);
            gst_video::VideoRegionOfInterestMeta::add(b, "defect", (x, y, 30, 30));
        }
        buffer
    };
    let mut run = Run::rgb(&format!(
        "model={} on-rois=true max-rois=2",
        cls_model(false)
    ));
    assert_eq!(run.detect.property::<u32>("max-rois"), 2);
    run.harness.push(frame(3)).unwrap();
    let out = run.harness.pull().unwrap();
    assert_eq!(classified(&out), [true, true, false]);
    assert_eq!(warnings(&run), 1);
    run.harness.push(frame(3)).unwrap();
    let out = run.harness.pull().unwrap();
    assert_eq!(classified(&out), [true, true, false]);
    assert_eq!(warnings(&run), 0, "warned once per stream");
    // The default cap: 200 regions, the first 64 classified.
    let mut run = Run::rgb(&format!("model={} on-rois=true", cls_model(false)));
    assert_eq!(run.detect.property::<u32>("max-rois"), 64);
    run.harness.push(frame(200)).unwrap();
    let out = run.harness.pull().unwrap();
    let got = classified(&out);
    assert_eq!(got.len(), 200);
    assert!(got[..64].iter().all(|&c| c) && got[64..].iter().all(|&c| !c));
    assert_eq!(warnings(&run), 1);
}

/// `test-time-flip` is for detectors: a classifier runs once a frame and the element says so
/// with one warning naming the property, at load.
#[test]
fn test_time_flip_on_a_classifier_is_a_warning() {
    let mut run = Run::rgb(&format!("model={} test-time-flip=true", cls_model(false)));
    let image = RgbImage::new(640, 480, [0, 255, 0]);
    run.harness
        .push(frame_buffer(&image, VideoFormat::Rgb, 0))
        .unwrap();
    run.harness.pull().unwrap();
    let warnings = run.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("test-time-flip applies to detectors"),
        "{warnings:?}"
    );
}

/// The error posted when the element cannot go to PAUSED with these properties.
fn start_error_playing(properties: &str) -> String {
    init();
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=1 ! video/x-raw,width=64,height=64 ! defectdetect {properties} ! fakesink"
    ))
    .unwrap();
    let _ = pipeline.set_state(gst::State::Paused);
    let bus = pipeline.bus().unwrap();
    let message = bus
        .timed_pop_filtered(gst::ClockTime::from_seconds(30), &[gst::MessageType::Error])
        .expect("an error");
    let _ = pipeline.set_state(gst::State::Null);
    match message.view() {
        gst::MessageView::Error(e) => e.error().to_string(),
        _ => unreachable!(),
    }
}

/// `model-info` as text to search: `task <task>, <output-layout>` (the anomaly thresholds are in
/// the layout).
fn model_info(detect: &gst::Element) -> String {
    let info = gstdefect::meta::ModelInfoMeta::of(detect)
        .expect("a model is loaded")
        .expect("model-info reads");
    format!("task {}, {}", info.task, info.output_layout)
}

/// A black 256 x 256 frame with a 32 x 32 square of `colour` at (96..128, 96..128): with
/// `anomaly_cells.onnx` (32 x 32 map, B / G where R > 0.5) the square is 16 map cells whose
/// value the colour chooses: NaN for red, +inf for magenta, 0.9 for (255, 255, 230).
fn cells_square(colour: [u8; 3]) -> RgbImage {
    let mut image = RgbImage::new(256, 256, [0, 0, 0]);
    image.fill_rect(96, 96, 128, 128, colour);
    image
}

/// The warnings and errors posted so far, as text.
fn warnings_and_errors(bus: &gst::Bus) -> (Vec<String>, Vec<String>) {
    let (mut warnings, mut errors) = (Vec::new(), Vec::new());
    while let Some(m) = bus.pop() {
        match m.view() {
            gst::MessageView::Warning(w) => warnings.push(w.error().to_string()),
            gst::MessageView::Error(e) => errors.push(e.error().to_string()),
            _ => {}
        }
    }
    (warnings, errors)
}

/// An anomaly map that is +inf or NaN exactly in the defect's cells (0 elsewhere) never
/// passes: the frame is UNKNOWN, and a warning names the cells. The same map with 0.9 there
/// fails.
#[test]
fn non_finite_anomaly_cells_make_the_frame_unknown_never_pass() {
    let mut run = Run::new(
        &format!("model={}", test_model("anomaly_cells")),
        256,
        256,
        VideoFormat::Rgb,
    );
    let finite = run.push(&cells_square([255, 255, 230]));
    assert_eq!(finite.verdict(), "FAIL", "0.9 in the defect's cells");
    for (colour, what) in [([255, 0, 255], "+inf"), ([255, 0, 0], "NaN")] {
        let out = run.push(&cells_square(colour));
        assert_eq!(out.verdict(), "UNKNOWN", "{what} in the defect's cells");
        assert!(out.verdict.get::<bool>("inspected").unwrap(), "{what}");
        assert!(
            out.verdict.get::<f64>("anomaly-score").is_err(),
            "{what}: no image score from a map that has none: {}",
            out.verdict
        );
    }
    let (warnings, errors) = warnings_and_errors(&run.bus);
    assert!(errors.is_empty(), "{errors:?}");
    assert!(
        warnings.iter().any(|w| w.contains("anomaly map")
            && w.contains("16 infinite")
            && w.contains("UNKNOWN")
            && w.contains("96..128")),
        "a warning names the non-finite cells: {warnings:?}"
    );
    assert_eq!(
        run.push(&RgbImage::new(256, 256, [0, 0, 0])).verdict(),
        "PASS"
    );
}

/// One frame whose anomaly map is all NaN is UNKNOWN with a warning; the stream goes on, and
/// the next frames are judged.
#[test]
fn an_all_nan_anomaly_map_is_one_unknown_frame_and_the_stream_goes_on() {
    let mut run = Run::new(
        &format!("model={}", test_model("anomaly_cells")),
        256,
        256,
        VideoFormat::Rgb,
    );
    let all_nan = run.push(&RgbImage::new(256, 256, [255, 0, 0]));
    assert_eq!(all_nan.verdict(), "UNKNOWN");
    assert!(all_nan.rois.is_empty());
    assert_eq!(run.push(&cells_square([255, 255, 230])).verdict(), "FAIL");
    assert_eq!(
        run.push(&RgbImage::new(256, 256, [0, 0, 0])).verdict(),
        "PASS"
    );
    let (warnings, errors) = warnings_and_errors(&run.bus);
    assert!(errors.is_empty(), "{errors:?}");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("1024 NaN") && w.contains("UNKNOWN")),
        "{warnings:?}"
    );
}
