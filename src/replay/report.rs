//! Scores a replay against ground truth and writes the report: per-class P/R/F1/AP, mAP,
//! confusion matrix, verdict escapes and false rejects per frame and per part, latency.

use std::collections::BTreeMap;

use serde_json::json;

use super::Replay;
use super::truth::GroundTruth;
use crate::metrics::{self, Evaluation, Prediction, Truth};
use crate::policy::Policy;

/// Verdict agreement with the truth (a frame or part is defective when it has a truth box the
/// policy inspects).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VerdictStats {
    pub total: u64,
    pub defective: u64,
    /// Truth defective, verdict PASS (UNKNOWN, not inspected, is not an escape: it is never
    /// a pass).
    pub escapes: u64,
    /// Truth clean, verdict FAIL.
    pub false_rejects: u64,
    pub reviews: u64,
    pub fails: u64,
}

impl VerdictStats {
    fn add(&mut self, defective: bool, verdict: &str) {
        self.total += 1;
        self.defective += defective as u64;
        self.escapes += (defective && verdict == "PASS") as u64;
        self.false_rejects += (!defective && verdict == "FAIL") as u64;
        self.reviews += (verdict == "REVIEW") as u64;
        self.fails += (verdict == "FAIL") as u64;
    }

    pub fn review_rate(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.reviews as f64 / self.total as f64
        }
    }
}

#[derive(Debug, Clone)]
pub struct Report {
    pub evaluation: Evaluation,
    pub class_names: Vec<String>,
    pub frames: VerdictStats,
    pub parts: VerdictStats,
    /// p50, p95, p99 of the element's total time per frame, ms.
    pub latency_ms: [f64; 3],
    pub fps: f64,
    pub model_id: String,
    pub truths: Vec<Truth>,
    pub predictions: Vec<Prediction>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("ground-truth class {0:?} is not a class of the model (the model has {1:?})")]
pub struct ClassMismatch(pub String, pub Vec<String>);

/// Scores `replay` against `truth`; `thresholds[c]` is class c's confidence for P/R/F1.
///
/// Detection metrics count every truth box. Verdicts are scored against what `policy` looks
/// at: a frame is defective when one of its truth boxes has its centre in the inspection
/// region and in no ignore mask, as the policy judges detections (a defect at the edge of a
/// frame, on a part entering or leaving, is judged on the frames where its part is inspected).
pub fn score(
    replay: &Replay,
    truth: &GroundTruth,
    thresholds: &[f32],
    policy: Option<&Policy>,
) -> Result<Report, ClassMismatch> {
    let names = &replay.class_names;
    if let Some(unknown) = truth.class_names.iter().find(|n| !names.contains(n)) {
        return Err(ClassMismatch(unknown.clone(), names.clone()));
    }
    let mut truths = Vec::new();
    let mut predictions = Vec::new();
    let mut frames = VerdictStats::default();
    let mut parts: BTreeMap<String, (bool, String)> = BTreeMap::new();
    for frame in &replay.frames {
        let t = truth.frame(
            frame.index,
            frame.stem.as_deref(),
            frame.width,
            frame.height,
        );
        for (name, bbox) in &t.boxes {
            let class_id = names.iter().position(|n| n == name).unwrap_or(0);
            truths.push(Truth {
                image: frame.index,
                class_id,
                bbox: *bbox,
            });
        }
        for d in &frame.detections {
            predictions.push(Prediction {
                image: frame.index,
                class_id: d.class_id,
                confidence: d.confidence,
                bbox: d.bbox,
            });
        }
        let defective = t
            .boxes
            .iter()
            .any(|(_, bbox)| policy.is_none_or(|p| p.inspects(bbox)));
        frames.add(defective, &frame.verdict);
        if let Some(part) = t.part_id {
            let entry = parts.entry(part).or_insert((false, "PASS".into()));
            entry.0 |= defective;
            entry.1 = worst(&entry.1, &frame.verdict).to_string();
        }
    }
    let mut part_stats = VerdictStats::default();
    for (id, (defective, verdict)) in &parts {
        part_stats.add(
            truth.defective_parts.get(id).copied().unwrap_or(*defective),
            verdict,
        );
    }
    let evaluation = metrics::evaluate(&truths, &predictions, names.len(), thresholds);
    let mut latencies: Vec<f64> = replay.frames.iter().map(|f| f.total_ms).collect();
    latencies.sort_by(f64::total_cmp);
    let percentile = |p: f64| {
        if latencies.is_empty() {
            0.0
        } else {
            latencies[((latencies.len() - 1) as f64 * p).round() as usize]
        }
    };
    Ok(Report {
        evaluation,
        class_names: names.clone(),
        frames,
        parts: part_stats,
        latency_ms: [percentile(0.5), percentile(0.95), percentile(0.99)],
        fps: replay.frames.len() as f64 / replay.wall_seconds.max(1e-9),
        model_id: replay.model_id.clone(),
        truths,
        predictions,
    })
}

fn worst<'a>(a: &'a str, b: &'a str) -> &'a str {
    let rank = |v: &str| match v {
        "FAIL" => 3,
        "REVIEW" => 2,
        "PASS" => 0,
        // UNKNOWN (not inspected), or anything else, is never a pass.
        _ => 1,
    };
    if rank(b) > rank(a) { b } else { a }
}

impl Report {
    /// The table `defect-replay` prints.
    pub fn table(&self) -> String {
        let mut out = format!("model {}\n", self.model_id);
        out += &format!(
            "{:<18} {:>6} {:>9} {:>7} {:>7} {:>7} {:>7} {:>10}\n",
            "class", "truths", "precision", "recall", "F1", "AP50", "AP50-95", "TP/FP/FN"
        );
        for c in &self.evaluation.classes {
            let ap = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
            out += &format!(
                "{:<18} {:>6} {:>9.3} {:>7.3} {:>7.3} {:>7} {:>7} {:>10}\n",
                self.class_names.get(c.class_id).map_or("?", String::as_str),
                c.truths,
                c.precision,
                c.recall,
                c.f1,
                ap(c.ap50),
                ap(c.ap50_95),
                format!(
                    "{}/{}/{}",
                    c.true_positives, c.false_positives, c.false_negatives
                )
            );
        }
        out += &format!(
            "mAP@0.5 {:.3}   mAP@0.5:0.95 {:.3}\n",
            self.evaluation.map50, self.evaluation.map50_95
        );
        for (what, s) in [("frames", &self.frames), ("parts", &self.parts)] {
            if s.total > 0 {
                out += &format!(
                    "{what}: {} ({} defective)  FAIL {}  REVIEW {} ({:.1} %)  escapes {}  false rejects {}\n",
                    s.total,
                    s.defective,
                    s.fails,
                    s.reviews,
                    100.0 * s.review_rate(),
                    s.escapes,
                    s.false_rejects
                );
            }
        }
        out += &format!(
            "latency per frame p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms   throughput {:.1} frames/s\n",
            self.latency_ms[0], self.latency_ms[1], self.latency_ms[2], self.fps
        );
        out
    }

    pub fn to_json(&self) -> serde_json::Value {
        let verdicts = |s: &VerdictStats| {
            json!({"total": s.total, "defective": s.defective, "fail": s.fails, "review": s.reviews,
                   "review_rate": s.review_rate(), "escapes": s.escapes, "false_rejects": s.false_rejects})
        };
        json!({
            "model_id": self.model_id,
            "classes": self.evaluation.classes.iter().map(|c| json!({
                "class_id": c.class_id,
                "name": self.class_names.get(c.class_id),
                "truths": c.truths,
                "true_positives": c.true_positives,
                "false_positives": c.false_positives,
                "false_negatives": c.false_negatives,
                "precision": c.precision,
                "recall": c.recall,
                "f1": c.f1,
                "ap50": c.ap50,
                "ap50_95": c.ap50_95,
            })).collect::<Vec<_>>(),
            "map50": self.evaluation.map50,
            "map50_95": self.evaluation.map50_95,
            "confusion_matrix": {"rows": "predicted", "columns": "truth", "labels": self.class_names.iter().cloned().chain(["background".to_string()]).collect::<Vec<_>>(), "counts": self.evaluation.confusion},
            "frames": verdicts(&self.frames),
            "parts": verdicts(&self.parts),
            "latency_ms": {"p50": self.latency_ms[0], "p95": self.latency_ms[1], "p99": self.latency_ms[2]},
            "throughput_fps": self.fps,
        })
    }
}

/// Writes `report.json`, `report.md`, the plots, and the ground truth and predictions as COCO
/// files (for pycocotools) into `dir`. Returns the files written.
pub fn write_outputs(
    dir: &std::path::Path,
    report: &Report,
    replay: &Replay,
) -> std::io::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    let mut write = |name: &str, text: String| -> std::io::Result<()> {
        let path = dir.join(name);
        std::fs::write(&path, text)?;
        written.push(path);
        Ok(())
    };
    write(
        "report.json",
        serde_json::to_string_pretty(&report.to_json()).unwrap_or_default(),
    )?;
    write(
        "truth.coco.json",
        serde_json::to_string(&coco_truth(report, replay)).unwrap_or_default(),
    )?;
    write(
        "predictions.coco.json",
        serde_json::to_string(&coco_predictions(report)).unwrap_or_default(),
    )?;
    let curves: Vec<Vec<(f64, f64)>> = (0..report.class_names.len())
        .map(|c| {
            metrics::pr_curve(&report.truths, &report.predictions, c)
                .into_iter()
                .map(|(r, p, _)| (r, p))
                .collect()
        })
        .collect();
    super::plots::pr_curves(&dir.join("pr_curves.png"), &report.class_names, &curves)?;
    let mut labels = report.class_names.clone();
    labels.push("background".into());
    super::plots::confusion(
        &dir.join("confusion.png"),
        &labels,
        &report.evaluation.confusion,
    )?;
    let latencies: Vec<f64> = replay.frames.iter().map(|f| f.total_ms).collect();
    super::plots::latency_histogram(&dir.join("latency.png"), &latencies)?;
    write(
        "report.md",
        format!(
            "# Replay report\n\n```\n{}```\n\n![Precision-recall](pr_curves.png)\n\n![Confusion matrix](confusion.png)\n\n![Latency](latency.png)\n",
            report.table()
        ),
    )?;
    for name in ["pr_curves.png", "confusion.png", "latency.png"] {
        written.push(dir.join(name));
    }
    Ok(written)
}

fn xywh(b: &crate::analysis::BBox) -> [f64; 4] {
    [
        b.x1 as f64,
        b.y1 as f64,
        b.width() as f64,
        b.height() as f64,
    ]
}

fn coco_truth(report: &Report, replay: &Replay) -> serde_json::Value {
    json!({
        "info": {"description": format!("ground truth of a defect-replay of {}", report.model_id)},
        "licenses": [],
        "images": replay.frames.iter().map(|f| json!({
            "id": f.index,
            "file_name": f.stem.clone().unwrap_or_else(|| format!("frame_{:06}", f.index)),
            "width": f.width,
            "height": f.height,
        })).collect::<Vec<_>>(),
        "annotations": report.truths.iter().enumerate().map(|(i, t)| json!({
            "id": i + 1,
            "image_id": t.image,
            "category_id": t.class_id,
            "bbox": xywh(&t.bbox),
            "area": t.bbox.area(),
            "iscrowd": 0,
        })).collect::<Vec<_>>(),
        "categories": report.class_names.iter().enumerate().map(|(id, name)| json!({"id": id, "name": name})).collect::<Vec<_>>(),
    })
}

fn coco_predictions(report: &Report) -> serde_json::Value {
    json!(report
        .predictions
        .iter()
        .map(|p| json!({"image_id": p.image, "category_id": p.class_id, "bbox": xywh(&p.bbox), "score": p.confidence}))
        .collect::<Vec<_>>())
}

/// Per-class thresholds at which a sweep reaches `target_recall` with the best precision.
pub fn sweep(report: &Report, target_recall: f64) -> Vec<Option<metrics::SweepPoint>> {
    (0..report.class_names.len())
        .map(|c| metrics::sweep_threshold(&report.truths, &report.predictions, c, target_recall))
        .collect()
}

/// Two reports side by side: mAP, per-class F1, escapes and false rejects.
pub fn compare(a: &Report, b: &Report, label_a: &str, label_b: &str) -> String {
    let mut out = format!("{:<18} {:>12} {:>12}\n", "A/B", label_a, label_b);
    out += &format!(
        "{:<18} {:>12.3} {:>12.3}\n",
        "mAP@0.5", a.evaluation.map50, b.evaluation.map50
    );
    out += &format!(
        "{:<18} {:>12.3} {:>12.3}\n",
        "mAP@0.5:0.95", a.evaluation.map50_95, b.evaluation.map50_95
    );
    for (ca, cb) in a.evaluation.classes.iter().zip(&b.evaluation.classes) {
        let name = format!(
            "F1 {}",
            a.class_names.get(ca.class_id).map_or("?", String::as_str)
        );
        out += &format!("{:<18} {:>12.3} {:>12.3}\n", name, ca.f1, cb.f1);
    }
    out += &format!(
        "{:<18} {:>12} {:>12}\n",
        "frame escapes", a.frames.escapes, b.frames.escapes
    );
    out += &format!(
        "{:<18} {:>12} {:>12}\n",
        "false rejects", a.frames.false_rejects, b.frames.false_rejects
    );
    out += &format!(
        "{:<18} {:>11.1}% {:>11.1}%\n",
        "review rate",
        100.0 * a.frames.review_rate(),
        100.0 * b.frames.review_rate()
    );
    out += &format!(
        "{:<18} {:>12.2} {:>12.2}\n",
        "p50 latency ms", a.latency_ms[0], b.latency_ms[0]
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::BBox;
    use crate::replay::FrameResult;
    use crate::replay::truth::FrameTruth;

    fn frame(index: u64, verdict: &str) -> FrameResult {
        FrameResult {
            index,
            stem: None,
            width: 100,
            height: 100,
            detections: Vec::new(),
            verdict: verdict.into(),
            inference_ms: 1.0,
            total_ms: 1.0,
        }
    }

    #[test]
    fn verdicts_are_scored_against_the_truth_boxes_the_policy_inspects() {
        let replay = Replay {
            frames: vec![frame(0, "PASS"), frame(1, "PASS")],
            class_names: vec!["scratch".into()],
            model_id: "m".into(),
            wall_seconds: 1.0,
        };
        let mut truth = GroundTruth {
            class_names: vec!["scratch".into()],
            ..Default::default()
        };
        let at = |x: f32| BBox {
            x1: x,
            y1: 40.0,
            x2: x + 10.0,
            y2: 50.0,
        };
        for (index, x) in [(0, 2.0), (1, 45.0)] {
            truth.by_frame.insert(
                index,
                FrameTruth {
                    boxes: vec![("scratch".into(), at(x))],
                    part_id: None,
                },
            );
        }
        let band = crate::policy::parse_policy(
            "[region]\nrect = [20, 0, 80, 100]\n[classes.scratch]\nmin-confidence = 0.5\n",
            "band.toml",
        )
        .unwrap();
        let everything = score(&replay, &truth, &[0.25], None).unwrap();
        assert_eq!(
            (everything.frames.defective, everything.frames.escapes),
            (2, 2)
        );
        let inspected = score(&replay, &truth, &[0.25], Some(&band)).unwrap();
        assert_eq!(
            (inspected.frames.defective, inspected.frames.escapes),
            (1, 1),
            "the box at the frame's edge is outside the region"
        );
        assert_eq!(
            inspected.evaluation.classes[0].truths, 2,
            "metrics count both"
        );
    }
}
