//! Scores a replay against ground truth and writes the report: per-class P/R/F1/AP, mAP,
//! confusion matrix, verdict escapes and false rejects per frame and per part, latency.

use std::collections::BTreeMap;

use serde_json::json;

use super::Replay;
use super::mask_report::{MaskDetection, MaskFigures, MaskTruth, score_masks};
use super::truth::{GroundTruth, Problem, TruthError, TruthFormat};
use crate::analysis::rle::Rle;
use crate::inspect::agreement::{Agreement, Found, Judgement, compare as compare_frames};
use crate::metrics::{self, Evaluation, Prediction, Truth};
use crate::policy::{Policy, Verdict};

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
    pub(super) fn add(&mut self, defective: bool, verdict: Verdict) {
        self.total += 1;
        self.defective += defective as u64;
        self.escapes += (defective && verdict == Verdict::Pass) as u64;
        self.false_rejects += (!defective && verdict == Verdict::Fail) as u64;
        self.reviews += (verdict == Verdict::Review) as u64;
        self.fails += (verdict == Verdict::Fail) as u64;
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
    /// Per truth box (parallel to `truths`): its annotation id in the truth and its area.
    pub truth_annotations: Vec<(Option<i64>, f64)>,
    /// The scored frames as the truth names them, in frame order: what the COCO exports use.
    pub images: Vec<ScoredImage>,
    /// Per model class, the category id of the exports (the truth's own ids).
    pub category_ids: Vec<i64>,
    /// Frames the truth has no entry for (a COCO file not listing every frame of a video):
    /// not scored.
    pub unscored_frames: u64,
    /// Per truth box (parallel to `truths`): its pixels, where the truth gives them.
    pub truth_masks: Vec<Option<Rle>>,
    /// Crowd regions (not in `truths`: box figures leave them out), for the exports.
    pub crowds: Vec<CrowdRegion>,
    /// Per prediction (parallel to `predictions`): its mask, for a segmentation model.
    pub prediction_masks: Vec<Option<Rle>>,
    /// Mask AP and size errors: a segmentation model against a truth with masks.
    pub masks: Option<MaskFigures>,
    /// Why a segmentation model's masks were not scored.
    pub masks_not_scored: Option<String>,
}

/// A crowd region of the truth (COCO `iscrowd` 1).
#[derive(Debug, Clone, PartialEq)]
pub struct CrowdRegion {
    pub frame: u64,
    pub class_id: usize,
    pub bbox: crate::analysis::BBox,
    pub annotation_id: Option<i64>,
    pub area: f64,
    pub rle: Rle,
}

/// A scored frame: its index in the replay and its id and file name in the truth.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredImage {
    pub frame: u64,
    pub id: i64,
    pub file_name: String,
    pub width: u32,
    pub height: u32,
}

/// Scores `replay` against `truth`; `thresholds[c]` is class c's confidence for P/R/F1.
///
/// Frames are matched to the truth's images by file name (image folders) or frame number
/// (videos). Detection metrics count every truth box. Verdicts are scored against what
/// `policy` looks at: a frame is defective when one of its truth boxes has its centre in the
/// inspection region and in no ignore mask, as the policy judges detections (a defect at the
/// edge of a frame, on a part entering or leaving, is judged on the frames where its part is
/// inspected). A truth category the model does not have, or a frame whose size is not the
/// one the truth gives, is an error.
///
/// A segmentation model's masks (detections that carry one) are scored against the truth's
/// masks when it has them ([`super::mask_report`]): then every instance needs one. Crowd
/// regions (with a mask) count for mask AP as pycocotools counts them, and are left out of
/// the box figures.
pub fn score(
    replay: &Replay,
    truth: &GroundTruth,
    thresholds: &[f32],
    policy: Option<&Policy>,
) -> Result<Report, TruthError> {
    let names = &replay.class_names;
    let classes = truth.classes_for(names)?;
    let mut problems = Vec::new();
    let mut truths = Vec::new();
    let mut truth_annotations = Vec::new();
    let mut predictions = Vec::new();
    let mut images = Vec::new();
    let mut unscored_frames = 0;
    let (mut truth_masks, mut crowds, mut prediction_masks) = (Vec::new(), Vec::new(), Vec::new());
    let (mut mask_truths, mut mask_detections, mut unmasked) = (Vec::new(), Vec::new(), Vec::new());
    let mut frames = VerdictStats::default();
    let mut parts: BTreeMap<String, (bool, Verdict)> = BTreeMap::new();
    for frame in &replay.frames {
        let image = match &frame.file_name {
            Some(name) => truth.image_of_file(name),
            None => truth.image_of_frame(frame.index),
        }
        .map(|i| &truth.images[i]);
        if image.is_none() && !truth.missing_is_clean() {
            unscored_frames += 1;
            continue;
        }
        if let Some(image) = image
            && let Some((w, h)) = image.size
            && (w, h) != (frame.width, frame.height)
        {
            problems.push(Problem {
                at: format!("image {}", image.id),
                reason: format!(
                    "the truth says {w}x{h} but frame {} is {}x{}",
                    frame.index, frame.width, frame.height
                ),
            });
            continue;
        }
        let coco = !truth.missing_is_clean();
        images.push(ScoredImage {
            frame: frame.index,
            id: image
                .filter(|_| coco)
                .map_or(frame.index as i64, |image| image.id),
            file_name: match (image.filter(|_| coco), &frame.file_name) {
                (Some(image), _) if image.file_name.is_some() => {
                    image.file_name.clone().unwrap_or_default()
                }
                (_, Some(name)) => name.clone(),
                _ => format!("frame_{:06}", frame.index),
            },
            width: frame.width,
            height: frame.height,
        });
        let image_id = images.last().map_or(frame.index as i64, |i| i.id);
        let mut boxes: Vec<(usize, crate::analysis::BBox)> = Vec::new();
        for b in image
            .map(|image| image.boxes.as_slice())
            .unwrap_or_default()
        {
            let bbox = truth.pixels(b, frame.width, frame.height);
            let class_id = classes.class_of_category[b.category];
            let area = if truth.format != TruthFormat::Yolo {
                b.area
            } else {
                bbox.area() as f64
            };
            boxes.push((class_id, bbox));
            let rle = match b
                .segmentation
                .as_ref()
                .map(|s| s.to_rle(frame.width, frame.height))
            {
                Some(Ok(rle)) => Some(rle),
                Some(Err(reason)) => {
                    problems.push(Problem {
                        at: b.at.clone(),
                        reason,
                    });
                    None
                }
                None => None,
            };
            match &rle {
                Some(rle) => mask_truths.push(MaskTruth {
                    image: image_id,
                    class_id,
                    crowd: b.crowd,
                    area,
                    rle: rle.clone(),
                }),
                None if !b.crowd => unmasked.push(b.at.clone()),
                None => {}
            }
            if b.crowd {
                if let Some(rle) = rle {
                    crowds.push(CrowdRegion {
                        frame: frame.index,
                        class_id,
                        bbox,
                        annotation_id: b.annotation_id,
                        area,
                        rle,
                    });
                }
                continue;
            }
            truth_annotations.push((b.annotation_id, area));
            truth_masks.push(rle);
            truths.push(Truth {
                image: frame.index,
                class_id,
                bbox,
            });
        }
        for d in &frame.detections {
            predictions.push(Prediction {
                image: frame.index,
                class_id: d.class_id,
                confidence: d.confidence,
                bbox: d.bbox,
            });
            let rle = d
                .mask
                .as_ref()
                .map(|m| Rle::from_mask(m, frame.width, frame.height));
            if let Some(rle) = &rle {
                mask_detections.push(MaskDetection {
                    image: image_id,
                    class_id: d.class_id,
                    confidence: d.confidence,
                    area_px: d.size.map_or(rle.area() as f64, |s| s.area_px),
                    length_px: d.size.map(|s| s.length_px),
                    rle: rle.clone(),
                });
            }
            prediction_masks.push(rle);
        }
        let defective = boxes
            .iter()
            .any(|(_, bbox)| policy.is_none_or(|p| p.inspects(bbox)));
        frames.add(defective, frame.verdict);
        if let Some(part) = image.and_then(|image| image.part_id.clone()) {
            let entry = parts.entry(part).or_insert((false, Verdict::Pass));
            entry.0 |= defective;
            // Verdicts are ordered best to worst; UNKNOWN (not inspected) is never a pass.
            entry.1 = entry.1.max(frame.verdict);
        }
    }
    let segmenter = replay.task == "segment" || !mask_detections.is_empty();
    let (masks, masks_not_scored) = if !segmenter {
        (None, None)
    } else if !truth.has_segmentation() {
        (
            None,
            Some("the truth has no masks (COCO segmentation or PNG instance masks): only boxes are scored".to_string()),
        )
    } else {
        for at in unmasked.iter().take(20) {
            problems.push(Problem {
                at: at.clone(),
                reason: "no segmentation, while other instances have one: mask AP needs every instance's mask".into(),
            });
        }
        if unmasked.len() > 20 {
            problems.push(Problem {
                at: String::new(),
                reason: format!(
                    "{} more instances have no segmentation",
                    unmasked.len() - 20
                ),
            });
        }
        (
            Some(score_masks(
                &mask_truths,
                &mask_detections,
                names.len(),
                thresholds,
            )),
            None,
        )
    };
    if !problems.is_empty() {
        return Err(TruthError {
            path: truth.path.clone(),
            problems,
        });
    }
    let mut part_stats = VerdictStats::default();
    for (id, (defective, verdict)) in &parts {
        part_stats.add(
            truth.defective_parts.get(id).copied().unwrap_or(*defective),
            *verdict,
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
        truth_annotations,
        images,
        category_ids: classes.category_id_of_class,
        unscored_frames,
        truth_masks,
        crowds,
        prediction_masks,
        masks,
        masks_not_scored,
    })
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
        if let Some(masks) = &self.masks {
            out += &masks.table(&self.class_names);
        }
        if let Some(why) = &self.masks_not_scored {
            out += &format!("masks not scored: {why}\n");
        }
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
        if self.unscored_frames > 0 {
            out += &format!(
                "warning: {} frames have no image in the ground truth and were not scored\n",
                self.unscored_frames
            );
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
            "unscored_frames": self.unscored_frames,
            "masks": self.masks.as_ref().map(|m| m.to_json(&self.class_names)),
            "masks_not_scored": self.masks_not_scored,
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
        super::output::write_new(&path, text.as_bytes())?;
        written.push(path);
        Ok(())
    };
    write(
        "report.json",
        serde_json::to_string_pretty(&report.to_json()).unwrap_or_default(),
    )?;
    write(
        "truth.coco.json",
        serde_json::to_string(&coco_truth(report)).unwrap_or_default(),
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

/// The truth of the scored frames as a COCO file: the truth's own image ids, file names,
/// category ids and annotation ids, so that it and `predictions.coco.json` can be used with
/// pycocotools interchangeably with the user's original file.
fn coco_truth(report: &Report) -> serde_json::Value {
    let image_id: BTreeMap<u64, i64> = report.images.iter().map(|i| (i.frame, i.id)).collect();
    let mut next_id = report
        .truth_annotations
        .iter()
        .filter_map(|(id, _)| *id)
        .max()
        .unwrap_or(0)
        + 1;
    let annotations: Vec<serde_json::Value> = report
        .truths
        .iter()
        .zip(&report.truth_annotations)
        .zip(&report.truth_masks)
        .map(|((t, (id, area)), rle)| {
            let id = id.unwrap_or_else(|| {
                next_id += 1;
                next_id - 1
            });
            let mut annotation = json!({
                "id": id,
                "image_id": image_id.get(&t.image),
                "category_id": report.category_ids[t.class_id],
                "bbox": xywh(&t.bbox),
                "area": area,
                "iscrowd": 0,
            });
            if let Some(rle) = rle {
                annotation["segmentation"] = coco_rle(rle);
            }
            annotation
        })
        .collect();
    let crowds: Vec<serde_json::Value> = report
        .crowds
        .iter()
        .map(|c| {
            let id = c.annotation_id.unwrap_or_else(|| {
                next_id += 1;
                next_id - 1
            });
            json!({
                "id": id,
                "image_id": image_id.get(&c.frame),
                "category_id": report.category_ids[c.class_id],
                "bbox": xywh(&c.bbox),
                "area": c.area,
                "iscrowd": 1,
                "segmentation": coco_rle(&c.rle),
            })
        })
        .collect();
    let annotations: Vec<serde_json::Value> = annotations.into_iter().chain(crowds).collect();
    json!({
        "info": {"description": format!("ground truth of a defect-replay of {}", report.model_id)},
        "licenses": [],
        "images": report.images.iter().map(|i| json!({
            "id": i.id,
            "file_name": i.file_name,
            "width": i.width,
            "height": i.height,
        })).collect::<Vec<_>>(),
        "annotations": annotations,
        "categories": report.class_names.iter().zip(&report.category_ids).map(|(name, id)| json!({"id": id, "name": name})).collect::<Vec<_>>(),
    })
}

/// The detections of the scored frames as COCO results, with the truth's image and
/// category ids.
fn coco_predictions(report: &Report) -> serde_json::Value {
    let image_id: BTreeMap<u64, i64> = report.images.iter().map(|i| (i.frame, i.id)).collect();
    json!(report
        .predictions
        .iter()
        .zip(report.prediction_masks.iter().map(Some).chain(std::iter::repeat(None)))
        .filter_map(|(p, rle)| {
            let mut prediction = json!({
                "image_id": image_id.get(&p.image)?,
                "category_id": report.category_ids.get(p.class_id).copied().unwrap_or(p.class_id as i64),
                "bbox": xywh(&p.bbox),
                "score": p.confidence,
            });
            if let Some(Some(rle)) = rle {
                prediction["segmentation"] = coco_rle(rle);
            }
            Some(prediction)
        })
        .collect::<Vec<_>>())
}

/// An RLE as COCO writes it: `size` [height, width] and pycocotools' compressed `counts`.
fn coco_rle(rle: &Rle) -> serde_json::Value {
    json!({
        "size": [rle.height, rle.width],
        "counts": crate::analysis::mask::encode_counts(&rle.counts),
    })
}

/// Per-class thresholds at which a sweep reaches `target_recall` with the best precision.
pub fn sweep(report: &Report, target_recall: f64) -> Vec<Option<metrics::SweepPoint>> {
    (0..report.class_names.len())
        .map(|c| metrics::sweep_threshold(&report.truths, &report.predictions, c, target_recall))
        .collect()
}

/// Per class, the threshold of the highest recall the replay reached (for classes whose
/// target recall is out of reach).
pub fn sweep_max_recall(report: &Report) -> Vec<Option<metrics::SweepPoint>> {
    (0..report.class_names.len())
        .map(|c| metrics::max_recall_threshold(&report.truths, &report.predictions, c))
        .collect()
}

/// What a replayed frame's policy counted, for the agreement of two replays.
fn judgement(frame: &super::FrameResult) -> Judgement {
    Judgement {
        verdict: frame.verdict,
        found: frame
            .detections
            .iter()
            .filter(|d| d.decision.is_none_or(|d| d.counted()))
            .map(|d| Found {
                class: d.label.clone(),
                confidence: d.confidence,
                bbox: d.bbox,
            })
            .collect(),
    }
}

/// The agreement of two replays of the same source (A as production, B as challenger) on the
/// frames both replayed, by the rule of [`crate::inspect::agreement`]: the table
/// `defectdetect` keeps for a challenger. `frames`, when given, restricts it to those frame
/// indices (the frames a challenger judged).
pub fn agreement(a: &Replay, b: &Replay, frames: Option<&dyn Fn(u64) -> bool>) -> Agreement {
    let by_index: BTreeMap<u64, &super::FrameResult> =
        b.frames.iter().map(|f| (f.index, f)).collect();
    let mut agreement = Agreement::default();
    for frame in &a.frames {
        if frames.is_some_and(|wanted| !wanted(frame.index)) {
            continue;
        }
        if let Some(other) = by_index.get(&frame.index) {
            agreement.add(&compare_frames(&judgement(frame), &judgement(other)));
        }
    }
    agreement
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
    use crate::replay::FrameResult;
    use std::path::Path;

    fn frame(index: u64, verdict: &str) -> FrameResult {
        FrameResult {
            index,
            file_name: None,
            width: 100,
            height: 100,
            detections: Vec::new(),
            verdict: Verdict::parse(verdict).unwrap(),
            classes: Vec::new(),
            anomaly_score: None,
            anomaly_map: None,
            inference_ms: 1.0,
            total_ms: 1.0,
        }
    }

    fn replay_of(frames: Vec<FrameResult>) -> Replay {
        Replay {
            frames,
            class_names: vec!["scratch".into(), "dent".into()],
            model_id: "m".into(),
            task: "detect".into(),
            wall_seconds: 1.0,
        }
    }

    #[test]
    fn verdicts_are_scored_against_the_truth_boxes_the_policy_inspects() {
        let replay = replay_of(vec![frame(0, "PASS"), frame(1, "PASS")]);
        let truth = GroundTruth::from_coco(
            Path::new("t.json"),
            r#"{"images": [{"id": 10, "frame_index": 0}, {"id": 11, "frame_index": 1}],
                "annotations": [{"id": 1, "image_id": 10, "category_id": 3, "bbox": [2, 40, 10, 10]},
                                {"id": 2, "image_id": 11, "category_id": 3, "bbox": [45, 40, 10, 10]}],
                "categories": [{"id": 3, "name": "scratch"}]}"#,
        )
        .unwrap();
        let band = crate::policy::parse_policy(
            "[region]\nrect = [20, 0, 80, 100]\n[classes.scratch]\nmin-confidence = 0.5\n",
            "band.toml",
        )
        .unwrap();
        let everything = score(&replay, &truth, &[0.25, 0.25], None).unwrap();
        assert_eq!(
            (everything.frames.defective, everything.frames.escapes),
            (2, 2)
        );
        let inspected = score(&replay, &truth, &[0.25, 0.25], Some(&band)).unwrap();
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

    #[test]
    fn exports_keep_the_truths_ids_and_names() {
        let mut frames = vec![frame(0, "FAIL"), frame(1, "PASS")];
        frames[0].file_name = Some("b.jpg".into());
        frames[1].file_name = Some("a.jpg".into());
        frames[0].detections.push(crate::replay::FrameDetection {
            class_id: 0,
            label: "scratch".into(),
            confidence: 0.9,
            bbox: crate::analysis::BBox {
                x1: 1.0,
                y1: 2.0,
                x2: 11.0,
                y2: 22.0,
            },
            decision: None,
            mask: None,
            size: None,
        });
        let truth = GroundTruth::from_coco(
            Path::new("t.json"),
            r#"{"images": [{"id": 7001, "file_name": "a.jpg"}, {"id": 42, "file_name": "sub/b.jpg"}],
                "annotations": [{"id": 900, "image_id": 42, "category_id": 5, "bbox": [1, 2, 10, 20], "area": 150}],
                "categories": [{"id": 5, "name": "scratch"}]}"#,
        )
        .unwrap();
        let report = score(&replay_of(frames), &truth, &[0.25, 0.25], None).unwrap();
        let coco = coco_truth(&report);
        assert_eq!(coco["images"][0]["id"], 42);
        assert_eq!(coco["images"][0]["file_name"], "sub/b.jpg");
        assert_eq!(coco["images"][1]["id"], 7001);
        assert_eq!(coco["annotations"][0]["id"], 900);
        assert_eq!(coco["annotations"][0]["image_id"], 42);
        assert_eq!(coco["annotations"][0]["category_id"], 5);
        assert_eq!(coco["annotations"][0]["area"], 150.0);
        // "dent" is not in the truth: it gets the next free id.
        assert_eq!(coco["categories"][1], json!({"id": 6, "name": "dent"}));
        let predictions = coco_predictions(&report);
        assert_eq!(predictions[0]["image_id"], 42);
        assert_eq!(predictions[0]["category_id"], 5);
        assert_eq!(report.evaluation.classes[0].true_positives, 1);
    }

    #[test]
    fn frames_the_truth_does_not_list_are_not_scored_and_sizes_are_checked() {
        let truth = GroundTruth::from_coco(
            Path::new("t.json"),
            r#"{"images": [{"id": 0, "width": 100, "height": 100}],
                "annotations": [], "categories": [{"id": 0, "name": "dent"}]}"#,
        )
        .unwrap();
        let report = score(
            &replay_of(vec![frame(0, "PASS"), frame(1, "PASS")]),
            &truth,
            &[0.25, 0.25],
            None,
        )
        .unwrap();
        assert_eq!((report.frames.total, report.unscored_frames), (1, 1));
        assert!(
            report
                .table()
                .contains("1 frames have no image in the ground truth")
        );
        let mut wrong = frame(0, "PASS");
        wrong.width = 64;
        let error = score(&replay_of(vec![wrong]), &truth, &[0.25, 0.25], None)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("image 0: the truth says 100x100 but frame 0 is 64x100"),
            "{error}"
        );
    }
}
