// SPDX-License-Identifier: MIT OR Apache-2.0
//! `defectcapture`: exactly the FAIL and REVIEW frames (and the PASS sample) land in the
//! directory with YOLO labels that round-trip to the detections' boxes; a full queue drops
//! frames and the count reaches the records; an unwritable directory fails at start; files
//! the element did not write are never deleted, a second run never overwrites the first, and
//! a full disk leaves no partial file (issue 14, items 1, 2 and 5). The directory is a dataset:
//! `images/`, `labels/`, `data.yaml` and `classes.txt` with the model's classes, and a COCO
//! file of the run whose boxes are the records' detections.

mod common;

use std::path::Path;

use common::*;
use gst::prelude::*;
use gst_video::VideoFormat;
use gstdefect::capture::CaptureName;

const POLICY: &str = "[classes.white_square]\nmin-confidence = 0.5\nseverity = \"critical\"\n\
[classes.red_square]\nmin-confidence = 0.999\nseverity = \"minor\"\nreview-band = [0.9, 0.999]\n";

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("defect-capture-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A 640x480 frame with a white square (FAIL) and/or a red one (REVIEW) on model windows.
fn frame(white: bool, red: bool) -> RgbImage {
    let mut image = RgbImage::new(640, 480, [12, 12, 12]);
    let (w, r) = (window_box(640, 480, 8, 5), window_box(640, 480, 14, 20));
    if white {
        image.fill_rect(
            w[0] as usize,
            w[1] as usize,
            w[2] as usize,
            w[3] as usize,
            [255, 255, 255],
        );
    }
    if red {
        image.fill_rect(
            r[0] as usize,
            r[1] as usize,
            r[2] as usize,
            r[3] as usize,
            [255, 0, 0],
        );
    }
    image
}

/// Runs frames through `defectdetect policy ! defectcapture <props> ! defectmetaconvert` and
/// returns the NDJSON records.
fn run(
    frames: &[RgbImage],
    format: VideoFormat,
    capture_properties: &str,
) -> Vec<serde_json::Value> {
    run_counted(frames, format, capture_properties).0
}

/// What `defectcapture` counted over a run: captured, dropped, write errors.
struct Counts {
    captured: u64,
    dropped: u64,
    write_errors: u64,
}

fn run_counted(
    frames: &[RgbImage],
    format: VideoFormat,
    capture_properties: &str,
) -> (Vec<serde_json::Value>, Counts) {
    init();
    // One policy directory a run: tests run in parallel and each clears its own.
    static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let dir = temp_dir(&format!(
        "policy-{}",
        RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let pipeline = gst::parse::launch(&format!(
        "appsrc name=src format=time ! defectdetect model={} policy={} ! defectcapture name=capture {capture_properties} ! \
         defectmetaconvert ! appsink name=sink sync=false",
        test_model("squares_v8"),
        policy.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let (src, sink) = app_ends(&pipeline);
    src.set_caps(Some(&caps(format, frames[0].width, frames[0].height)));
    src.set_max_bytes(0);
    pipeline.set_state(gst::State::Playing).unwrap();
    for (i, image) in frames.iter().enumerate() {
        let mut buffer = frame_buffer(image, format, 0);
        buffer
            .get_mut()
            .unwrap()
            .set_pts(gst::ClockTime::from_mseconds(33 * i as u64));
        src.push_buffer(buffer).unwrap();
    }
    src.end_of_stream().unwrap();
    let mut records = Vec::new();
    while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(30)) {
        let map = sample.buffer().unwrap().map_readable().unwrap();
        records.extend(
            std::str::from_utf8(&map)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap()),
        );
    }
    // NULL stops the element: the writer finishes its queue first.
    pipeline.set_state(gst::State::Null).unwrap();
    let capture = pipeline.by_name("capture").unwrap();
    let counts = Counts {
        captured: capture.property("captured"),
        dropped: capture.property("dropped"),
        write_errors: capture.property("write-errors"),
    };
    (records, counts)
}

/// Every file in `dir` and its folders, as `folder/name`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().unwrap().is_dir() {
            names.extend(
                listing(&entry.path())
                    .into_iter()
                    .map(|n| format!("{name}/{n}")),
            );
        } else {
            names.push(name);
        }
    }
    names.sort();
    names
}

/// The files of the captures (in `images/` and `labels/`), as `folder/name`.
fn capture_files(dir: &Path) -> Vec<String> {
    listing(dir)
        .into_iter()
        .filter(|n| n.starts_with("images/") || n.starts_with("labels/"))
        .collect()
}

/// The last part of a `folder/name`.
fn base(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// The captures in `dir` as `frame_<n>_<VERDICT>.<ext>` (the run id left out), sorted; every
/// file in `images/` and `labels/` must be a capture, all of one run.
fn captures(dir: &Path) -> Vec<String> {
    let names: Vec<CaptureName> = capture_files(dir)
        .iter()
        .map(|n| CaptureName::parse(base(n)).unwrap_or_else(|| panic!("not a capture name: {n}")))
        .collect();
    assert!(
        names
            .windows(2)
            .all(|w| (&w[0].started, w[0].pid, w[0].run) == (&w[1].started, w[1].pid, w[1].run)),
        "captures of several runs: {names:?}"
    );
    let mut short: Vec<String> = names
        .iter()
        .map(|n| format!("frame_{:08}_{}.{}", n.frame, n.verdict, n.extension))
        .collect();
    short.sort();
    short
}

/// The path of the capture file of `frame` with `verdict` and extension `ext` in `dir`.
fn capture_path(dir: &Path, frame: u64, verdict: &str, ext: &str) -> std::path::PathBuf {
    capture_files(dir)
        .iter()
        .find(|n| {
            CaptureName::parse(base(n))
                .is_some_and(|c| c.frame == frame && c.verdict == verdict && c.extension == ext)
        })
        .map(|n| dir.join(n))
        .unwrap_or_else(|| panic!("no capture of frame {frame} {verdict} .{ext}"))
}

#[test]
fn exactly_the_fail_and_review_frames_with_round_tripping_labels() {
    let dir = temp_dir("exact");
    let frames = [
        frame(true, true),
        frame(false, true),
        frame(false, false),
        frame(true, false),
        frame(false, false),
        frame(false, true),
    ];
    let records = run(
        &frames,
        VideoFormat::I420,
        &format!("location={}", dir.display()),
    );
    let verdicts: Vec<&str> = records
        .iter()
        .map(|r| r["verdict"].as_str().unwrap())
        .collect();
    assert_eq!(
        verdicts,
        ["FAIL", "REVIEW", "PASS", "FAIL", "PASS", "REVIEW"]
    );
    let expected: Vec<String> = [(0, "FAIL"), (1, "REVIEW"), (3, "FAIL"), (5, "REVIEW")]
        .iter()
        .flat_map(|(n, v)| {
            [
                format!("frame_{n:08}_{v}.png"),
                format!("frame_{n:08}_{v}.txt"),
            ]
        })
        .collect();
    let mut expected_sorted = expected.clone();
    expected_sorted.sort();
    assert_eq!(captures(&dir), expected_sorted);

    // Labels round-trip to the detections' boxes (the records hold them in pixels).
    for (record, name) in records.iter().zip(0..) {
        let verdict = record["verdict"].as_str().unwrap();
        if verdict == "PASS" {
            continue;
        }
        let text = std::fs::read_to_string(capture_path(&dir, name, verdict, "txt")).unwrap();
        let labels = gstdefect::capture::parse_yolo_labels(&text, 640, 480).unwrap();
        let detections = record["detections"].as_array().unwrap();
        assert_eq!(labels.len(), detections.len());
        for (class, b) in labels {
            let twin = detections
                .iter()
                .find(|d| d["class_id"].as_u64() == Some(class as u64))
                .unwrap();
            let want: Vec<f64> = twin["box"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            for (got, want) in [b.x1, b.y1, b.x2, b.y2].iter().zip(want) {
                assert!((*got as f64 - want).abs() <= 1.0, "{name}: {got} vs {want}");
            }
        }
        let png = std::fs::File::open(capture_path(&dir, name, verdict, "png")).unwrap();
        let info = png::Decoder::new(std::io::BufReader::new(png))
            .read_info()
            .unwrap()
            .info()
            .clone();
        assert_eq!((info.width, info.height), (640, 480));
    }
    assert!(records.iter().all(|r| r["capture_dropped"] == 0));

    // The dataset files: the model's classes, and the run's COCO file with the same boxes.
    let names = "[\"white_square\", \"red_square\"]";
    let yaml = std::fs::read_to_string(dir.join("data.yaml")).unwrap();
    assert!(yaml.contains(&format!("names: {names}\n")), "{yaml}");
    assert!(yaml.contains("train: images\nval: images\n"), "{yaml}");
    assert_eq!(
        std::fs::read_to_string(dir.join("classes.txt")).unwrap(),
        "white_square\nred_square\n"
    );
    let coco_files: Vec<String> = listing(&dir)
        .into_iter()
        .filter(|n| n.starts_with("annotations/"))
        .collect();
    assert_eq!(coco_files.len(), 1, "{coco_files:?}");
    let coco: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(&coco_files[0])).unwrap()).unwrap();
    assert_eq!(
        coco["categories"],
        serde_json::json!([{"id": 1, "name": "white_square", "supercategory": ""},
                           {"id": 2, "name": "red_square", "supercategory": ""}])
    );
    let images = coco["images"].as_array().unwrap();
    assert_eq!(images.len(), 4);
    for image in images {
        let frame = image["frame"].as_u64().unwrap();
        let record = &records[frame as usize];
        assert_eq!(image["verdict"], record["verdict"]);
        assert!(
            dir.join("images")
                .join(image["file_name"].as_str().unwrap())
                .is_file()
        );
        assert_eq!(
            (image["width"].as_u64(), image["height"].as_u64()),
            (Some(640), Some(480))
        );
        let boxes: Vec<&serde_json::Value> = coco["annotations"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["image_id"] == image["id"])
            .collect();
        let detections = record["detections"].as_array().unwrap();
        assert_eq!(boxes.len(), detections.len());
        for a in boxes {
            let d = detections
                .iter()
                .find(|d| d["class_id"].as_u64().unwrap() + 1 == a["category_id"].as_u64().unwrap())
                .unwrap();
            let xywh: Vec<f64> = a["bbox"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let want: Vec<f64> = d["box"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let got = [xywh[0], xywh[1], xywh[0] + xywh[2], xywh[1] + xywh[3]];
            for (got, want) in got.iter().zip(want) {
                assert!((got - want).abs() <= 1.0, "frame {frame}: {got} vs {want}");
            }
            assert!(
                (a["score"].as_f64().unwrap() - d["confidence"].as_f64().unwrap()).abs() < 1e-3
            );
        }
    }
}

#[test]
fn pass_frames_are_sampled_and_gray_stays_gray_jpeg() {
    let dir = temp_dir("sample");
    let frames: Vec<RgbImage> = (0..6).map(|_| frame(false, false)).collect();
    run(
        &frames,
        VideoFormat::Gray8,
        &format!("location={} pass-every=3 format=jpeg", dir.display()),
    );
    assert_eq!(
        captures(&dir),
        [
            "frame_00000000_PASS.jpg",
            "frame_00000000_PASS.txt",
            "frame_00000003_PASS.jpg",
            "frame_00000003_PASS.txt"
        ]
    );
    let jpeg = std::fs::read(capture_path(&dir, 0, "PASS", "jpg")).unwrap();
    assert_eq!(&jpeg[..2], &[0xff, 0xd8]);
}

#[test]
fn a_full_queue_drops_frames_and_the_records_count_them() {
    let dir = temp_dir("full");
    // Noisy frames take the writer far longer to encode as PNG than the detector to pass
    // on (noise does not compress); 960x540 keeps the directory small on CI disks.
    let (width, height) = (960, 540);
    let mut noisy = RgbImage::new(width, height, [12, 12, 12]);
    let mut seed = 12345u32;
    for p in noisy.pixels.iter_mut() {
        seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
        *p = (seed >> 27) as u8;
    }
    let b = window_box(width, height, 12, 20);
    noisy.fill_rect(
        b[0] as usize,
        b[1] as usize,
        b[2] as usize,
        b[3] as usize,
        [255, 255, 255],
    );
    let frames: Vec<RgbImage> = (0..40).map(|_| noisy.clone()).collect();
    let (records, counts) = run_counted(
        &frames,
        VideoFormat::Rgb,
        &format!("location={} queue-size=1", dir.display()),
    );
    let fails = records.iter().filter(|r| r["verdict"] == "FAIL").count() as u64;
    assert_eq!(fails, 40, "every frame shows the FAIL square");
    assert_eq!(counts.write_errors, 0, "no capture failed to write");
    let dropped = records.last().unwrap()["capture_dropped"].as_u64().unwrap();
    assert!(dropped > 0, "no frame was dropped");
    assert_eq!(
        dropped, counts.dropped,
        "the records carry the element's count"
    );
    let captured = capture_files(&dir)
        .iter()
        .filter(|n| n.ends_with(".png"))
        .count() as u64;
    assert_eq!(
        captured, counts.captured,
        "every capture counted is on disk"
    );
    assert_eq!(
        captured + dropped,
        40,
        "every FAIL frame is either captured or counted as dropped"
    );
    let counts: Vec<u64> = records
        .iter()
        .map(|r| r["capture_dropped"].as_u64().unwrap())
        .collect();
    assert!(
        counts.windows(2).all(|w| w[0] <= w[1]),
        "the count only grows"
    );
}

#[test]
fn the_directory_is_bounded() {
    let dir = temp_dir("bounded");
    let frames: Vec<RgbImage> = (0..8).map(|_| frame(true, false)).collect();
    run(
        &frames,
        VideoFormat::Rgb,
        &format!("location={} max-files=3", dir.display()),
    );
    assert_eq!(
        captures(&dir),
        [5, 6, 7]
            .iter()
            .flat_map(|n| [
                format!("frame_{n:08}_FAIL.png"),
                format!("frame_{n:08}_FAIL.txt")
            ])
            .collect::<Vec<_>>(),
        "the last three captures of two files"
    );
}

#[test]
fn an_unwritable_directory_fails_at_start_naming_it() {
    init();
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=2 ! defectdetect model={} ! defectcapture location=/proc/defect-capture ! fakesink",
        test_model("squares_v8")
    ))
    .unwrap();
    let _ = pipeline.set_state(gst::State::Playing);
    let message = pipeline
        .bus()
        .unwrap()
        .timed_pop_filtered(gst::ClockTime::from_seconds(10), &[gst::MessageType::Error])
        .expect("an error");
    pipeline.set_state(gst::State::Null).unwrap();
    let gst::MessageView::Error(e) = message.view() else {
        unreachable!()
    };
    let text = format!("{} {:?}", e.error(), e.debug());
    assert!(text.contains("/proc/defect-capture"), "{text}");
}

/// Whether a capture file is whole: a PNG that decodes to its last row, a label file that is
/// not empty (a PASS sample without detections has no lines, but these frames are snow).
fn whole_file(path: &Path) -> bool {
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    if bytes.is_empty() {
        return path.extension().is_some_and(|e| e == "txt");
    }
    if path.extension().is_some_and(|e| e == "png") {
        let Ok(mut reader) = png::Decoder::new(std::io::Cursor::new(bytes)).read_info() else {
            return false;
        };
        let mut out = vec![0; reader.output_buffer_size().unwrap_or(0)];
        return reader.next_frame(&mut out).is_ok();
    }
    true
}

/// Mounts a 2 MiB tmpfs (needs root; skipped elsewhere) and returns its path.
fn tiny_filesystem() -> Option<std::path::PathBuf> {
    let dir = temp_dir("tiny-filesystem");
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&dir)
        .status()
        .ok()?;
    status.success().then_some(dir)
}

/// Issue 14, item 5 (with the unit test `a_failed_write_removes_the_files_of_the_capture`):
/// the disk fills mid-run; the captures that did not fit leave no 0-byte or truncated file.
#[test]
fn a_full_disk_warns_and_keeps_the_stream_flowing() {
    let Some(dir) = tiny_filesystem() else {
        eprintln!("full-disk test skipped: cannot mount a tmpfs here");
        return;
    };
    init();
    // Noisy 640x480 PNGs (about 900 KB each): two fit in 2 MiB, then the disk is full.
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=20 pattern=snow ! video/x-raw,width=640,height=480 ! defectdetect model={} ! \
         defectcapture name=c location={} pass-every=1 queue-size=32 max-size-mb=64 ! fakesink",
        test_model("squares_v8"),
        dir.display()
    ))
    .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let mut warnings = Vec::new();
    for message in bus.iter_timed(gst::ClockTime::from_seconds(60)) {
        match message.view() {
            gst::MessageView::Warning(w) => warnings.push(w.error().to_string()),
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("{}", e.error()),
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    let capture = pipeline
        .downcast_ref::<gst::Bin>()
        .unwrap()
        .by_name("c")
        .unwrap();
    let errors: u64 = capture.property("write-errors");
    let captured: u64 = capture.property("captured");
    let names = capture_files(&dir);
    let complete = names
        .iter()
        .map(|name| (name.clone(), whole_file(&dir.join(name))))
        .collect::<Vec<_>>();
    let everything = listing(&dir);
    let coco: Vec<Result<serde_json::Value, String>> = everything
        .iter()
        .filter(|n| n.starts_with("annotations/"))
        .map(|n| {
            serde_json::from_slice(&std::fs::read(dir.join(n)).unwrap())
                .map_err(|e| format!("{n}: {e}"))
        })
        .collect();
    let _ = std::process::Command::new("umount").arg(&dir).status();
    // The COCO file is replaced whole or not at all: never a temporary or a partial file.
    assert!(
        !everything.iter().any(|n| n.ends_with(".tmp")),
        "{everything:?}"
    );
    for file in coco {
        file.unwrap();
    }
    // Issue 14, item 5: no 0-byte or truncated file, every image with its labels.
    for (name, whole) in &complete {
        assert!(whole, "{name} is empty or truncated (all: {names:?})");
    }
    let stems = |ext: &str| -> Vec<String> {
        names
            .iter()
            .filter_map(|n| base(n).strip_suffix(ext).map(str::to_owned))
            .collect()
    };
    assert_eq!(stems(".png"), stems(".txt"), "images and labels pair up");
    assert_eq!(stems(".png").len() as u64, captured, "{names:?}");
    assert!(
        errors > 0 && captured > 0,
        "errors {errors}, captured {captured}"
    );
    assert_eq!(captured + errors, 20);
    // One warning for the captures, at most one for the COCO file.
    let (coco_warnings, capture_warnings): (Vec<&String>, Vec<&String>) =
        warnings.iter().partition(|w| w.contains("COCO"));
    assert_eq!(capture_warnings.len(), 1, "one warning: {warnings:?}");
    assert!(coco_warnings.len() <= 1, "{warnings:?}");
    assert!(
        warnings.iter().all(|w| w.contains("No space left")),
        "{warnings:?}"
    );
}

/// Issue 14, item 1: a directory holding 21 files the element did not write, with
/// `max-files=2`: all 21 survive; only the element's own captures are trimmed.
#[test]
fn unrelated_files_in_the_directory_are_never_deleted() {
    let dir = temp_dir("unrelated");
    let mut unrelated: Vec<String> = (0..19).map(|i| format!("shift-{i:02}.csv")).collect();
    unrelated.extend(["report.docx".into(), "inventory.sqlite".into()]);
    for (i, name) in unrelated.iter().enumerate() {
        std::fs::write(dir.join(name), format!("keep me {i}")).unwrap();
    }
    let frames: Vec<RgbImage> = (0..5).map(|_| frame(true, false)).collect();
    run(
        &frames,
        VideoFormat::Rgb,
        &format!("location={} max-files=2 max-size-mb=1", dir.display()),
    );
    let names = listing(&dir);
    let missing: Vec<&String> = unrelated.iter().filter(|n| !names.contains(n)).collect();
    assert!(missing.is_empty(), "deleted: {missing:?}");
    for (i, name) in unrelated.iter().enumerate() {
        assert_eq!(
            std::fs::read_to_string(dir.join(name)).unwrap(),
            format!("keep me {i}")
        );
    }
    let own = capture_files(&dir);
    assert_eq!(own.len(), 4, "two captures of two files: {own:?}");
    let coco = listing(&dir)
        .into_iter()
        .find(|n| n.starts_with("annotations/"))
        .unwrap();
    let coco: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(coco)).unwrap()).unwrap();
    let in_coco: Vec<&str> = coco["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["file_name"].as_str().unwrap())
        .collect();
    let images: Vec<&str> = own
        .iter()
        .filter_map(|n| n.strip_prefix("images/"))
        .collect();
    assert_eq!(
        in_coco, images,
        "the COCO file lists the captures the bounds kept"
    );
}

/// Issue 14, item 2: a second run into the same directory keeps every capture of the first
/// (same frame numbers, new names), and adopts them for its bounds.
#[test]
fn a_second_run_never_overwrites_the_first() {
    let dir = temp_dir("second-run");
    let frames = [frame(true, false), frame(false, true)];
    let properties = format!("location={} format=jpeg", dir.display());
    run(&frames, VideoFormat::Rgb, &properties);
    let first: Vec<(String, Vec<u8>, std::time::SystemTime)> = listing(&dir)
        .into_iter()
        .map(|n| {
            let path = dir.join(&n);
            let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
            (n, std::fs::read(&path).unwrap(), modified)
        })
        .collect();
    // Two captures of two files, data.yaml, classes.txt and the run's COCO file.
    assert_eq!(first.len(), 7, "{first:?}");
    run(&frames, VideoFormat::Rgb, &properties);
    let names = listing(&dir);
    assert_eq!(names.len(), 12, "{names:?}");
    for (name, bytes, modified) in &first {
        let path = dir.join(name);
        assert_eq!(&std::fs::read(&path).unwrap(), bytes, "{name} changed");
        assert_eq!(
            &std::fs::metadata(&path).unwrap().modified().unwrap(),
            modified,
            "{name} rewritten"
        );
    }
}
