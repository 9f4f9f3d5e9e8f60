//! Every verdict rule, with detections made up here, and every kind of policy error.

use super::*;
use crate::analysis::BBox;

const NAMES: [&str; 3] = ["scratches", "inclusion", "patches"];

fn name(id: usize) -> String {
    NAMES[id].to_string()
}

/// A detection of class `class_id` with a 10x10 box centred at (x, y).
fn det(class_id: usize, confidence: f32, x: f32, y: f32) -> Detection {
    Detection {
        class_id,
        confidence,
        bbox: BBox {
            x1: x - 5.0,
            y1: y - 5.0,
            x2: x + 5.0,
            y2: y + 5.0,
        },
    }
}

fn sized(class_id: usize, confidence: f32, w: f32, h: f32) -> Detection {
    Detection {
        class_id,
        confidence,
        bbox: BBox {
            x1: 100.0,
            y1: 100.0,
            x2: 100.0 + w,
            y2: 100.0 + h,
        },
    }
}

fn policy(text: &str) -> Policy {
    parse_policy(text, "test.toml").unwrap_or_else(|e| panic!("{e}"))
}

const BASIC: &str = r#"
[classes.scratches]
min-confidence = 0.5
severity = "major"
review-band = [0.3, 0.5]

[classes.inclusion]
min-confidence = 0.6
severity = "critical"

[classes.patches]
min-confidence = 0.4
severity = "minor"
review-band = [0.2, 0.4]
"#;

fn verdict(p: &Policy, detections: &[Detection]) -> Verdict {
    p.evaluate(detections, name).verdict
}

#[test]
fn no_detections_pass() {
    assert_eq!(verdict(&policy(BASIC), &[]), Verdict::Pass);
}

#[test]
fn failing_severity_at_its_threshold_fails() {
    let p = policy(BASIC);
    assert_eq!(
        verdict(&p, &[det(0, 0.5, 50.0, 50.0)]),
        Verdict::Fail,
        "0.5 is at min-confidence: fails"
    );
    assert_eq!(verdict(&p, &[det(1, 0.61, 50.0, 50.0)]), Verdict::Fail);
    assert_eq!(
        verdict(&p, &[det(1, 0.59, 50.0, 50.0)]),
        Verdict::Pass,
        "critical below threshold, no band"
    );
}

#[test]
fn review_band_edges() {
    let p = policy(BASIC);
    assert_eq!(
        verdict(&p, &[det(0, 0.3, 50.0, 50.0)]),
        Verdict::Review,
        "low edge is inside"
    );
    assert_eq!(verdict(&p, &[det(0, 0.4999, 50.0, 50.0)]), Verdict::Review);
    assert_eq!(
        verdict(&p, &[det(0, 0.2999, 50.0, 50.0)]),
        Verdict::Pass,
        "below the band"
    );
    assert_eq!(
        verdict(&p, &[det(0, 0.5, 50.0, 50.0)]),
        Verdict::Fail,
        "high edge belongs to the fail band"
    );
}

#[test]
fn non_failing_severities_never_fail_but_can_ask_for_review() {
    let p = policy(BASIC);
    let high = p.evaluate(&[det(2, 0.95, 50.0, 50.0)], name);
    assert_eq!(high.verdict, Verdict::Pass);
    assert_eq!(
        high.counts,
        [0, 0, 1, 0],
        "a minor defect above threshold is counted"
    );
    assert_eq!(verdict(&p, &[det(2, 0.25, 50.0, 50.0)]), Verdict::Review);
}

#[test]
fn fail_severities_are_configurable() {
    let p = policy(&format!(
        "fail-severities = [\"critical\", \"major\", \"minor\"]\n{BASIC}"
    ));
    assert_eq!(verdict(&p, &[det(2, 0.95, 50.0, 50.0)]), Verdict::Fail);
    let p = policy(&format!("fail-severities = [\"critical\"]\n{BASIC}"));
    assert_eq!(
        verdict(&p, &[det(0, 0.95, 50.0, 50.0)]),
        Verdict::Pass,
        "major no longer fails"
    );
}

#[test]
fn fail_beats_review_and_reasons_are_the_deciding_detections() {
    let p = policy(BASIC);
    let v = p.evaluate(
        &[
            det(0, 0.35, 10.0, 10.0),
            det(1, 0.9, 50.0, 50.0),
            det(2, 0.9, 90.0, 90.0),
        ],
        name,
    );
    assert_eq!(v.verdict, Verdict::Fail);
    let reasons: Vec<_> = v.reasons().map(|j| j.detection.class_id).collect();
    assert_eq!(reasons, [1]);
    assert_eq!(v.counts, [1, 0, 1, 0]);
    let v = p.evaluate(&[det(0, 0.35, 10.0, 10.0), det(2, 0.25, 90.0, 90.0)], name);
    assert_eq!(v.verdict, Verdict::Review);
    assert_eq!(v.reasons().count(), 2);
    assert_eq!(
        p.evaluate(&[det(2, 0.9, 1.0, 1.0)], name).reasons().count(),
        0
    );
}

#[test]
fn min_area_in_pixels_and_millimetres() {
    let p = policy("[classes.scratches]\nmin-confidence = 0.5\nmin-area = 100\n");
    assert_eq!(
        verdict(&p, &[sized(0, 0.9, 10.0, 10.0)]),
        Verdict::Fail,
        "area 100 is at min-area"
    );
    let small = p.evaluate(&[sized(0, 0.9, 10.0, 9.9)], name);
    assert_eq!(small.verdict, Verdict::Pass);
    assert_eq!(small.judged[0].decision, Decision::TooSmall);
    assert_eq!(small.counts, [0; 4], "too small defects are not counted");
    // 2 px/mm: 4 mm² = 16 px².
    let p = policy(
        "pixels-per-mm = 2.0\n[classes.scratches]\nmin-confidence = 0.5\nmin-area-mm2 = 4\n",
    );
    assert_eq!(verdict(&p, &[sized(0, 0.9, 4.0, 4.0)]), Verdict::Fail);
    assert_eq!(verdict(&p, &[sized(0, 0.9, 4.0, 3.9)]), Verdict::Pass);
}

/// Scratches longer than 2 mm fail, shorter ones go to review; larger than max-area too. With
/// masks, the sizes are the masks' (a thin diagonal scratch in a large box).
#[test]
fn length_and_max_area_limits_send_failures_to_review() {
    use crate::analysis::mask::Mask;
    use std::sync::Arc;
    let p = policy(
        "pixels-per-mm = 10.0\n[classes.scratches]\nmin-confidence = 0.5\nmin-length-mm = 2.0\nmax-area-mm2 = 10.0\n",
    );
    assert_eq!(p.classes["scratches"].min_length_px, Some(20.0));
    assert_eq!(p.classes["scratches"].max_area_px, Some(1000.0));
    assert_eq!(verdict(&p, &[sized(0, 0.9, 25.0, 4.0)]), Verdict::Fail);
    let short = p.evaluate(&[sized(0, 0.9, 15.0, 4.0)], name);
    assert_eq!(
        (
            short.verdict,
            short.judged[0].decision,
            short.judged[0].length_px
        ),
        (Verdict::Review, Decision::Review, 15.0)
    );
    assert_eq!(
        verdict(&p, &[sized(0, 0.9, 40.0, 30.0)]),
        Verdict::Review,
        "1200 px² > max"
    );
    assert_eq!(
        verdict(&p, &[sized(0, 0.3, 15.0, 4.0)]),
        Verdict::Pass,
        "not failing anyway"
    );
    // A mask: a 30-px diagonal line in a 30 x 30 box: area 30 (not 900), length about 43.
    let d = sized(0, 0.9, 30.0, 30.0);
    let mut m = Mask::empty(d.bbox.x1 as u32, d.bbox.y1 as u32, 30, 30);
    for i in 0..30 {
        m.data[i * 30 + i] = 1;
    }
    let judged = p.evaluate_masked(&[d], Some(&Arc::new(vec![m])), name);
    let j = judged.judged[0];
    assert_eq!((judged.verdict, j.area_px), (Verdict::Fail, 30.0));
    assert!(
        (j.length_px - 31.0 * std::f32::consts::SQRT_2).abs() < 1.5,
        "{j:?}"
    );
    assert!(judged.masks.is_some() && judged.pixels_per_mm == Some(10.0));
    for (text, reason) in [
        (
            "[classes.a]\nmin-length-mm = 2\n",
            "min-length-mm needs the top-level pixels-per-mm",
        ),
        (
            "[classes.a]\nmax-area = 5\nmax-area-mm2 = 5\n",
            "give max-area (px²) or max-area-mm2, not both",
        ),
        (
            "[classes.a]\nmin-area = 50\nmax-area = 5\n",
            "is below min-area",
        ),
        (
            "[classes.a]\nmin-length = -1\n",
            "min-length must not be negative",
        ),
    ] {
        let e = parse_policy(text, "p.toml").unwrap_err().to_string();
        assert!(e.contains(reason), "{text}: {e}");
    }
    // The TOML the policy writes reads back to the same limits.
    assert_eq!(
        parse_policy(&p.to_toml(), "p.toml").unwrap().classes,
        p.classes
    );
}

#[test]
fn inspection_region_and_ignore_masks() {
    let p = policy(&format!(
        "[region]\nrect = [0, 0, 100, 100]\n[[ignore]]\nrect = [0, 0, 20, 20]\n[[ignore]]\npolygon = [[60, 60], [100, 60], [100, 100]]\n{BASIC}"
    ));
    assert_eq!(
        verdict(&p, &[det(0, 0.9, 50.0, 50.0)]),
        Verdict::Fail,
        "inside the region"
    );
    let outside = p.evaluate(&[det(0, 0.9, 150.0, 50.0)], name);
    assert_eq!(
        (outside.verdict, outside.judged[0].decision),
        (Verdict::Pass, Decision::OutsideRegion)
    );
    let masked = p.evaluate(&[det(0, 0.9, 10.0, 10.0)], name);
    assert_eq!(
        (masked.verdict, masked.judged[0].decision),
        (Verdict::Pass, Decision::Masked)
    );
    assert_eq!(
        verdict(&p, &[det(0, 0.9, 90.0, 70.0)]),
        Verdict::Pass,
        "centre inside the triangle mask"
    );
    assert_eq!(
        verdict(&p, &[det(0, 0.9, 70.0, 90.0)]),
        Verdict::Fail,
        "centre beside the triangle"
    );
    // The region's edge: centre at x = 100 is outside the half-open rectangle.
    assert_eq!(verdict(&p, &[det(0, 0.9, 100.0, 50.0)]), Verdict::Pass);
    assert_eq!(
        verdict(&p, &[det(0, 0.35, 150.0, 50.0)]),
        Verdict::Pass,
        "no review outside the region"
    );
}

#[test]
fn polygon_region() {
    let p = policy(&format!(
        "[region]\npolygon = [[0, 0], [200, 0], [0, 200]]\n{BASIC}"
    ));
    assert_eq!(verdict(&p, &[det(0, 0.9, 50.0, 50.0)]), Verdict::Fail);
    assert_eq!(verdict(&p, &[det(0, 0.9, 150.0, 150.0)]), Verdict::Pass);
}

#[test]
fn unnamed_classes_follow_the_default_rule() {
    let p = policy("[default]\nmin-confidence = 0.7\nseverity = \"critical\"\n");
    assert_eq!(verdict(&p, &[det(2, 0.69, 5.0, 5.0)]), Verdict::Pass);
    assert_eq!(verdict(&p, &[det(2, 0.7, 5.0, 5.0)]), Verdict::Fail);
    // Without any policy every detection fails.
    assert_eq!(
        verdict(&Policy::fail_on_any_detection(), &[det(2, 0.01, 5.0, 5.0)]),
        Verdict::Fail
    );
}

#[test]
fn unknown_classes_are_reported_with_their_line() {
    let p = policy(
        "\n[classes.scratches]\nmin-confidence = 0.5\n\n[classes.dents]\nmin-confidence = 0.5\n",
    );
    let names: Vec<String> = NAMES.iter().map(|s| s.to_string()).collect();
    let unknown: Vec<_> = p.unknown_classes(&names).collect();
    assert_eq!(unknown, [("dents", 5)]);
}

fn error(text: &str) -> PolicyError {
    parse_policy(text, "line.toml").expect_err("should not parse")
}

#[test]
fn errors_name_file_line_and_reason() {
    let cases: &[(&str, usize, &str)] = &[
        (
            "[classes.scratches]\nmin-confidence = 0.5\nreview-band = [0.4, 0.6]\n",
            3,
            "overlaps the fail band",
        ),
        (
            "[classes.scratches]\nmin-confidence = 1.5\n",
            2,
            "outside [0, 1]",
        ),
        (
            "[classes.scratches]\nmin-confidence = 0.5\nreview-band = [0.4, 0.2]\n",
            3,
            "low < high",
        ),
        (
            "[classes.scratches]\nreview-band = [0.1]\n",
            2,
            "[low, high]",
        ),
        (
            "[classes.scratches]\nseverity = \"fatal\"\n",
            2,
            "unknown severity \"fatal\"",
        ),
        (
            "\n\n[classes.scratches]\nmin-confidance = 0.5\n",
            4,
            "unknown field `min-confidance`",
        ),
        ("[classes.scratches\n", 1, ""),
        (
            "fail-severities = [\"major\", \"worst\"]\n",
            1,
            "unknown severity",
        ),
        (
            "[classes.scratches]\nmin-area-mm2 = 3\n",
            2,
            "pixels-per-mm",
        ),
        ("pixels-per-mm = 0\n", 1, "greater than 0"),
        (
            "[classes.scratches]\nmin-area = 3\nmin-area-mm2 = 3\n",
            3,
            "not both",
        ),
        ("[region]\nrect = [10, 10, 5, 20]\n", 2, "x1 < x2"),
        (
            "\n[[ignore]]\npolygon = [[0, 0], [1, 1]]\n",
            3,
            "at least 3",
        ),
        ("[region]\n", 1, "exactly one of"),
        ("[classes.scratches]\nmin-area = -1\n", 2, "negative"),
    ];
    for &(text, line, reason) in cases {
        let e = error(text);
        assert_eq!(e.file, "line.toml");
        assert!(
            e.line == line || (line == 1 && reason.is_empty()),
            "{text:?}: line {} not {line} ({e})",
            e.line
        );
        assert!(e.reason.contains(reason), "{text:?}: {e}");
        assert!(
            e.to_string()
                .starts_with(&format!("line.toml:{}: ", e.line))
        );
    }
}

#[test]
fn the_example_policy_parses() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../pipelines/policy.toml"
    ))
    .unwrap();
    let p = parse_policy(&text, "pipelines/policy.toml").unwrap();
    assert_eq!(p.classes.len(), 6);
}

#[test]
fn policies_round_trip_through_toml() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../pipelines/policy.toml"
    ))
    .unwrap();
    let mut p = parse_policy(&text, "policy.toml").unwrap();
    p.region = Some(Shape::Polygon(vec![(0.0, 0.0), (10.0, 0.0), (0.0, 10.0)]));
    p.class_lines.clear();
    p.source = PolicySource::default();
    let mut again =
        parse_policy(&p.to_toml(), "again.toml").unwrap_or_else(|e| panic!("{e}\n{}", p.to_toml()));
    again.class_lines.clear();
    again.source = PolicySource::default();
    assert_eq!(again, p);
}

#[test]
fn setting_a_threshold_trims_the_review_band() {
    let mut p = policy(BASIC);
    p.set_min_confidence("scratches", 0.4);
    assert_eq!(p.classes["scratches"].review_band, Some((0.3, 0.4)));
    p.set_min_confidence("scratches", 0.2);
    assert_eq!(p.classes["scratches"].review_band, None);
    p.set_min_confidence("new_class", 0.6);
    assert_eq!(p.classes["new_class"].severity, Severity::Major);
}

/// Item 11 of issue 14: values that would switch a check off (NaN, infinities, a calibration
/// that overflows, degenerate polygons) are errors naming the file and line.
#[test]
fn values_that_switch_checks_off_are_errors_with_their_line() {
    let cases: [(&str, usize, &str); 12] = [
        (
            "[default]\nmin-area = nan\n",
            2,
            "min-area NaN is not a finite number",
        ),
        ("[default]\nmin-area = inf\n", 2, "not a finite number"),
        ("[default]\nmin-area = 1e300\n", 2, "not a finite number"),
        (
            "pixels-per-mm = 2.0\n[default]\nmin-area-mm2 = nan\n",
            3,
            "min-area-mm2 NaN is not a finite number",
        ),
        (
            "pixels-per-mm = inf\n",
            1,
            "pixels-per-mm inf must be a finite number",
        ),
        (
            "pixels-per-mm = 1e300\n",
            1,
            "must be a finite number greater than 0",
        ),
        (
            "pixels-per-mm = 1e-300\n",
            1,
            "must be a finite number greater than 0",
        ),
        (
            "pixels-per-mm = 1e18\n[default]\nmin-area-mm2 = 1e10\n",
            3,
            "is not a finite number of px²",
        ),
        (
            "[region]\npolygon = [[0, 0], [nan, 10], [10, 0]]\n",
            2,
            "is not a pair of finite numbers",
        ),
        (
            "\n[[ignore]]\npolygon = [[0, 0], [inf, 10], [10, 0]]\n",
            3,
            "is not a pair of finite numbers",
        ),
        (
            "[region]\npolygon = [[0, 0], [50, 50], [100, 100], [25, 25]]\n",
            2,
            "no area (its points are collinear)",
        ),
        (
            "[region]\nrect = [0, 0, inf, 100]\n",
            2,
            "not a finite number",
        ),
    ];
    for (text, line, reason) in cases {
        let error = parse_policy(text, "p.toml").expect_err(text);
        assert_eq!(error.line, line, "{text:?}: {error}");
        assert!(error.reason.contains(reason), "{text:?}: {error}");
        assert!(error.to_string().starts_with(&format!("p.toml:{line}: ")));
    }
}

/// Item 11 of issue 14: a region outside the frame (every detection ignored) is an error and
/// a mask over the whole frame a warning, both as file:line, once the frame size is known.
#[test]
fn shapes_outside_or_over_the_frame_are_reported_with_their_line() {
    let p = parse_policy(
        "[region]\nrect = [2000, 0, 2100, 100]\n\n[[ignore]]\nrect = [-1, -1, 5000, 5000]\n\n[[ignore]]\npolygon = [[3000, 0], [3100, 0], [3000, 50]]\n",
        "p.toml",
    )
    .unwrap();
    let problems = p.frame_problems(1280, 720);
    assert_eq!(problems.errors.len(), 1, "{problems:?}");
    assert!(
        problems.errors[0]
            .starts_with("p.toml:1: the region lies entirely outside the 1280x720 frame"),
        "{problems:?}"
    );
    assert_eq!(problems.warnings.len(), 2, "{problems:?}");
    assert!(problems.warnings[0].starts_with("p.toml:4: the ignore mask covers the whole"));
    assert!(problems.warnings[1].starts_with("p.toml:7: the ignore mask lies entirely outside"));
    assert_eq!(p.frame_problems(2200, 720).errors, Vec::<String>::new());
    let ok = policy(BASIC).frame_problems(640, 480);
    assert!(ok.errors.is_empty() && ok.warnings.is_empty());
}

/// Item 9 of issue 14: parsing is linear in the number of `[classes.*]` tables (it was
/// quadratic: 200,000 tables took over two minutes, and over 400 s for this test). Ten times the
/// tables must take well under a hundred times as long: the best of three runs of each,
/// interleaved so that a busy machine slows both alike (linear is about 10, quadratic 100).
#[test]
fn parsing_is_linear_in_the_number_of_class_tables() {
    let policy_of = |n: usize| -> String {
        (0..n)
            .map(|i| format!("[classes.c{i}]\nmin-confidence = 0.5\n"))
            .collect()
    };
    let time = |text: &str| {
        let started = std::time::Instant::now();
        let p = parse_policy(text, "big.toml").unwrap();
        assert!(p.classes.len() >= 20_000);
        started.elapsed().as_secs_f64()
    };
    let (small, large) = (policy_of(20_000), policy_of(200_000));
    let (mut t_small, mut t_large) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..3 {
        t_small = t_small.min(time(&small));
        t_large = t_large.min(time(&large));
    }
    let p = parse_policy(&large, "big.toml").unwrap();
    assert_eq!(p.class_lines["c199999"], 399_999);
    println!(
        "20,000 tables {:.3} s, 200,000 tables {:.3} s: ratio {:.1} (linear 10, quadratic 100)",
        t_small,
        t_large,
        t_large / t_small
    );
    assert!(
        t_large / t_small < 50.0,
        "ratio {:.1}: not linear",
        t_large / t_small
    );
}
