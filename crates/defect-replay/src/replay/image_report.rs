// SPDX-License-Identifier: MIT OR Apache-2.0
//! Scores of image-level tasks: a classifier's replay against each image's class (accuracy,
//! top-k accuracy, per-class precision/recall/F1, confusion matrix) and an anomaly model's
//! against good/defective labels and masks (image AUROC, the F1-optimal image threshold,
//! pixel AUROC and the F1-optimal pixel threshold), with the verdicts' escapes and false
//! rejects and the latency, as tables, JSON and markdown.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::labels::{Mask, MaskTruth, read_mask};
use super::report::VerdictStats;
use super::{FrameResult, Replay};
use crate::analysis::anomaly::AnomalyMap;
use crate::metrics::image::{Classification, Scores, ThresholdPoint, classification};
use crate::metrics::{self, SweepPoint};
use crate::policy::Policy;

/// p50, p95, p99 of the element's time per frame, and frames per second of the replay.
fn latency(replay: &Replay) -> ([f64; 3], f64) {
    let mut totals: Vec<f64> = replay.frames.iter().map(|f| f.total_ms).collect();
    totals.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        if totals.is_empty() {
            0.0
        } else {
            totals[((p * (totals.len() - 1) as f64).round() as usize).min(totals.len() - 1)]
        }
    };
    (
        [pct(0.5), pct(0.95), pct(0.99)],
        replay.frames.len() as f64 / replay.wall_seconds.max(1e-9),
    )
}

fn latency_line(latency_ms: &[f64; 3], fps: f64) -> String {
    format!(
        "latency per frame p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms   throughput {fps:.1} frames/s\n",
        latency_ms[0], latency_ms[1], latency_ms[2]
    )
}

fn verdict_line(s: &VerdictStats) -> String {
    format!(
        "frames: {} ({} defective)  FAIL {}  REVIEW {} ({:.1} %)  escapes {}  false rejects {}\n",
        s.total,
        s.defective,
        s.fails,
        s.reviews,
        100.0 * s.review_rate(),
        s.escapes,
        s.false_rejects
    )
}

fn verdict_json(s: &VerdictStats) -> serde_json::Value {
    json!({"total": s.total, "defective": s.defective, "fail": s.fails, "review": s.reviews,
           "review_rate": s.review_rate(), "escapes": s.escapes, "false_rejects": s.false_rejects})
}

/// One classified image.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifiedImage {
    pub file_name: String,
    pub truth: usize,
    /// The model's classes, most probable first (top-k).
    pub predicted: Vec<(usize, f32)>,
}

/// A classifier's replay scored.
#[derive(Debug, Clone)]
pub struct ClassifyReport {
    pub model_id: String,
    pub class_names: Vec<String>,
    pub metrics: Classification,
    pub images: Vec<ClassifiedImage>,
    /// Verdicts against the truth: an image is defective when its class is not `good` in the
    /// policy.
    pub frames: VerdictStats,
    pub latency_ms: [f64; 3],
    pub fps: f64,
}

/// Scores a classifier's replay: `truth[i]` is the class of the truth's image i,
/// `image_of_file` finds a frame's image. `k` is the top-k of the replay.
pub fn score_classification(
    replay: &Replay,
    truth: &[usize],
    image_of_file: impl Fn(&str) -> Option<usize>,
    k: usize,
    policy: Option<&Policy>,
) -> ClassifyReport {
    let mut images = Vec::new();
    let mut frames = VerdictStats::default();
    for frame in &replay.frames {
        let Some(i) = frame.file_name.as_deref().and_then(&image_of_file) else {
            continue;
        };
        let t = truth[i];
        let name = replay.class_names.get(t).map_or("", String::as_str);
        let good = policy.is_some_and(|p| p.rule(name).good);
        frames.add(!good, frame.verdict);
        images.push(ClassifiedImage {
            file_name: frame.file_name.clone().unwrap_or_default(),
            truth: t,
            predicted: frame.classes.clone(),
        });
    }
    let truths: Vec<usize> = images.iter().map(|i| i.truth).collect();
    let ranked: Vec<Vec<usize>> = images
        .iter()
        .map(|i| i.predicted.iter().map(|p| p.0).collect())
        .collect();
    let (latency_ms, fps) = latency(replay);
    ClassifyReport {
        model_id: replay.model_id.clone(),
        class_names: replay.class_names.clone(),
        metrics: classification(&truths, &ranked, replay.class_names.len(), k),
        images,
        frames,
        latency_ms,
        fps,
    }
}

impl ClassifyReport {
    pub fn table(&self) -> String {
        let m = &self.metrics;
        let mut out = format!("model {} (classify)\n", self.model_id);
        out += &format!(
            "images {}  top-1 accuracy {:.4} ({} of {})",
            m.images,
            m.accuracy,
            (m.accuracy * m.images as f64).round() as u64,
            m.images
        );
        if let Some((k, acc)) = m.top_k {
            out += &format!("  top-{k} accuracy {acc:.4}");
        }
        out += "\n";
        out += &format!(
            "{:<18} {:>7} {:>9} {:>9} {:>7} {:>7}\n",
            "class", "images", "predicted", "precision", "recall", "F1"
        );
        for (c, s) in m.per_class.iter().enumerate() {
            out += &format!(
                "{:<18} {:>7} {:>9} {:>9.3} {:>7.3} {:>7.3}\n",
                self.class_names[c], s.support, s.predicted, s.precision, s.recall, s.f1
            );
        }
        out += "confusion matrix (rows predicted, columns truth):\n";
        let width = self
            .class_names
            .iter()
            .map(|n| n.chars().count())
            .max()
            .unwrap_or(1)
            .clamp(5, 18);
        out += &format!("{:<width$}", "");
        for name in &self.class_names {
            out += &format!(" {:>width$}", name.chars().take(width).collect::<String>());
        }
        out += "\n";
        for (p, row) in m.confusion.iter().enumerate() {
            out += &format!(
                "{:<width$}",
                self.class_names[p].chars().take(width).collect::<String>()
            );
            for count in row {
                out += &format!(" {count:>width$}");
            }
            out += "\n";
        }
        out += &verdict_line(&self.frames);
        out += &latency_line(&self.latency_ms, self.fps);
        out
    }

    pub fn to_json(&self) -> serde_json::Value {
        let m = &self.metrics;
        json!({
            "model_id": self.model_id,
            "task": "classify",
            "images": m.images,
            "accuracy": m.accuracy,
            "top_k": m.top_k.map(|(k, a)| json!({"k": k, "accuracy": a})),
            "classes": m.per_class.iter().enumerate().map(|(c, s)| json!({
                "class_id": c,
                "name": self.class_names[c],
                "images": s.support,
                "predicted": s.predicted,
                "precision": s.precision,
                "recall": s.recall,
                "f1": s.f1,
            })).collect::<Vec<_>>(),
            "confusion_matrix": {"rows": "predicted", "columns": "truth", "labels": self.class_names, "counts": m.confusion},
            "frames": verdict_json(&self.frames),
            "latency_ms": {"p50": self.latency_ms[0], "p95": self.latency_ms[1], "p99": self.latency_ms[2]},
            "throughput_fps": self.fps,
            "predictions": self.images.iter().map(|i| json!({
                "file_name": i.file_name,
                "truth": self.class_names[i.truth],
                "classes": i.predicted.iter().map(|&(c, p)| self.class_json(c, p)).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }

    fn class_json(&self, class: usize, confidence: f32) -> serde_json::Value {
        let name = self.class_names.get(class).cloned();
        json!({"name": name, "confidence": confidence})
    }

    /// Per class, the `min-confidence` reaching `target_recall` (see
    /// [`metrics::image::class_confidence_sweep`]): the point and whether the target was
    /// reached. None: the class was never found.
    pub fn sweep(&self, target_recall: f64) -> Vec<Option<(SweepPoint, bool)>> {
        let truth: Vec<usize> = self.images.iter().map(|i| i.truth).collect();
        let top1: Vec<(usize, f32)> = self
            .images
            .iter()
            .map(|i| i.predicted.first().copied().unwrap_or((usize::MAX, 0.0)))
            .collect();
        (0..self.class_names.len())
            .map(|c| metrics::image::class_confidence_sweep(&truth, &top1, c, target_recall))
            .collect()
    }
}

/// Pixel-level scores of an anomaly replay.
#[derive(Debug, Clone, PartialEq)]
pub struct PixelFigures {
    pub auroc: Option<f64>,
    pub best: Option<ThresholdPoint>,
    pub pixels: u64,
    pub defective_pixels: u64,
    /// Every `stride`-th pixel on both axes was scored.
    pub stride: u32,
    /// Defective images left out of these figures: their mask is empty
    /// ([`MaskTruth::ImageOnly`]).
    pub image_only: u64,
}

/// One scored image of an anomaly replay.
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyImage {
    pub file_name: String,
    pub defective: bool,
    pub score: Option<f64>,
    pub verdict: crate::meta::Verdict,
}

/// An anomaly model's replay scored.
#[derive(Debug, Clone)]
pub struct AnomalyReport {
    pub model_id: String,
    pub images: Vec<AnomalyImage>,
    pub image_auroc: Option<f64>,
    pub image_best: Option<ThresholdPoint>,
    pub pixel: Option<PixelFigures>,
    pub frames: VerdictStats,
    pub latency_ms: [f64; 3],
    pub fps: f64,
}

/// The map's value at each pixel of a `width` x `height` image: bilinear, half-pixel
/// centres, edges clamped (as OpenCV's `INTER_LINEAR` upsampling), every `stride`-th pixel.
pub fn upsample(
    map: &AnomalyMap,
    width: u32,
    height: u32,
    stride: u32,
    mut out: impl FnMut(usize, f32),
) {
    let (mw, mh) = (map.width, map.height);
    if mw == 0 || mh == 0 {
        return;
    }
    let coordinate = |i: u32, n: u32, m: usize| {
        let x = ((i as f64 + 0.5) * m as f64 / n as f64 - 0.5).max(0.0);
        let x0 = (x.floor() as usize).min(m - 1);
        let x1 = (x0 + 1).min(m - 1);
        (x0, x1, (x - x0 as f64).min(1.0) as f32)
    };
    let stride = stride.max(1) as usize;
    let xs: Vec<(usize, usize, f32)> = (0..width)
        .step_by(stride)
        .map(|x| coordinate(x, width, mw))
        .collect();
    for y in (0..height).step_by(stride) {
        let (y0, y1, fy) = coordinate(y, height, mh);
        let (r0, r1) = (&map.data[y0 * mw..][..mw], &map.data[y1 * mw..][..mw]);
        for (x, &(x0, x1, fx)) in (0..width as usize).step_by(stride).zip(&xs) {
            let top = r0[x0] + (r0[x1] - r0[x0]) * fx;
            let bottom = r1[x0] + (r1[x1] - r1[x0]) * fx;
            out(y as usize * width as usize + x, top + (bottom - top) * fy);
        }
    }
}

/// Scores an anomaly replay: `defective[i]` says whether the truth's image i is defective,
/// `masks[i]` its pixel truth when pixel figures are wanted (`masks` given); an image-only one
/// is left out of them (and counted).
pub fn score_anomaly(
    replay: &Replay,
    defective: &[bool],
    image_of_file: impl Fn(&str) -> Option<usize>,
    masks: Option<&[MaskTruth]>,
    stride: u32,
) -> Result<AnomalyReport, String> {
    let mut images = Vec::new();
    let mut frames = VerdictStats::default();
    let mut image_scores = Scores::default();
    let mut pixel_scores = masks.map(|_| Scores::default());
    let mut image_only = 0u64;
    for frame in &replay.frames {
        let Some(i) = frame.file_name.as_deref().and_then(&image_of_file) else {
            continue;
        };
        let bad = defective[i];
        frames.add(bad, frame.verdict);
        if let Some(s) = frame.anomaly_score {
            image_scores.push(s as f32, bad);
        }
        images.push(AnomalyImage {
            file_name: frame.file_name.clone().unwrap_or_default(),
            defective: bad,
            score: frame.anomaly_score,
            verdict: frame.verdict,
        });
        if let (Some(scores), Some(masks)) = (&mut pixel_scores, masks) {
            match &masks[i] {
                MaskTruth::AllGood => score_pixels(scores, frame, None, stride)?,
                MaskTruth::File(path) => score_pixels(scores, frame, Some(path), stride)?,
                MaskTruth::ImageOnly(_) => image_only += 1,
            }
        }
    }
    let missing = images.iter().filter(|i| i.score.is_none()).count();
    if missing > 0 {
        return Err(format!(
            "{missing} of {} frames carry no anomaly score (is the model an anomaly model?)",
            images.len()
        ));
    }
    let (latency_ms, fps) = latency(replay);
    let pixel = pixel_scores.map(|mut s| PixelFigures {
        auroc: s.auroc(),
        best: s.best_f1(),
        pixels: (s.positive.len() + s.negative.len()) as u64,
        defective_pixels: s.positive.len() as u64,
        stride,
        image_only,
    });
    Ok(AnomalyReport {
        model_id: replay.model_id.clone(),
        image_auroc: image_scores.auroc(),
        image_best: image_scores.best_f1(),
        images,
        pixel,
        frames,
        latency_ms,
        fps,
    })
}

fn score_pixels(
    scores: &mut Scores,
    frame: &FrameResult,
    mask: Option<&Path>,
    stride: u32,
) -> Result<(), String> {
    let name = frame.file_name.as_deref().unwrap_or("?");
    let Some(map) = &frame.anomaly_map else {
        return Err(format!(
            "{name}: the frame carries no anomaly map (DefectAnomalyMapMeta)"
        ));
    };
    let mask = match mask {
        Some(path) => read_mask(path).map_err(|e| format!("{}: {e}", path.display()))?,
        None => Mask {
            width: frame.width,
            height: frame.height,
            defective: vec![false; frame.width as usize * frame.height as usize],
        },
    };
    if (mask.width, mask.height) != (frame.width, frame.height) {
        return Err(format!(
            "{name}: the mask is {}x{} but the frame is {}x{}",
            mask.width, mask.height, frame.width, frame.height
        ));
    }
    upsample(map, frame.width, frame.height, stride, |i, v| {
        scores.push(v, mask.defective[i]);
    });
    Ok(())
}

fn point_line(what: &str, p: &ThresholdPoint) -> String {
    format!(
        "{what} threshold {:.5}  precision {:.3}  recall {:.3}  F1 {:.3}  (TP {} FP {} FN {} TN {})\n",
        p.threshold, p.precision, p.recall, p.f1, p.tp, p.fp, p.fn_, p.tn
    )
}

fn point_json(p: &ThresholdPoint) -> serde_json::Value {
    json!({"threshold": p.threshold, "precision": p.precision, "recall": p.recall, "f1": p.f1,
           "tp": p.tp, "fp": p.fp, "fn": p.fn_, "tn": p.tn})
}

impl AnomalyReport {
    pub fn table(&self) -> String {
        let defective = self.images.iter().filter(|i| i.defective).count();
        let mut out = format!("model {} (anomaly)\n", self.model_id);
        let auroc = |v: Option<f64>| {
            v.map_or("- (needs good and defective)".to_string(), |v| {
                format!("{v:.4}")
            })
        };
        out += &format!(
            "images {} ({} defective)  image AUROC {}\n",
            self.images.len(),
            defective,
            auroc(self.image_auroc)
        );
        if let Some(p) = &self.image_best {
            out += &point_line("F1-optimal image", p);
        }
        if let Some(px) = &self.pixel {
            out += &format!(
                "pixels {} ({} defective, every {} px)  pixel AUROC {}\n",
                px.pixels,
                px.defective_pixels,
                px.stride,
                auroc(px.auroc)
            );
            if px.image_only > 0 {
                out += &format!(
                    "pixel figures leave out {} defective images whose mask is empty (image level only)\n",
                    px.image_only
                );
            }
            if let Some(p) = &px.best {
                out += &point_line("F1-optimal pixel", p);
            }
        }
        out += &verdict_line(&self.frames);
        out += &latency_line(&self.latency_ms, self.fps);
        out
    }

    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "model_id": self.model_id,
            "task": "anomaly",
            "images": self.images.len(),
            "defective_images": self.images.iter().filter(|i| i.defective).count(),
            "image_auroc": self.image_auroc,
            "image_threshold_f1_optimal": self.image_best.as_ref().map(point_json),
            "pixel": self.pixel.as_ref().map(|p| json!({
                "auroc": p.auroc,
                "pixels": p.pixels,
                "defective_pixels": p.defective_pixels,
                "stride": p.stride,
                "image_only_images": p.image_only,
                "threshold_f1_optimal": p.best.as_ref().map(point_json),
            })),
            "frames": verdict_json(&self.frames),
            "latency_ms": {"p50": self.latency_ms[0], "p95": self.latency_ms[1], "p99": self.latency_ms[2]},
            "throughput_fps": self.fps,
            "scores": self.images.iter().map(|i| json!({
                "file_name": i.file_name, "defective": i.defective, "score": i.score,
                "verdict": i.verdict.as_str(),
            })).collect::<Vec<_>>(),
        })
    }
}

/// Writes `report.json`, `report.md` (and for a classifier `confusion.png`) and the latency
/// histogram into `dir`. Returns the files written.
pub fn write_image_outputs(
    dir: &Path,
    table: &str,
    json: &serde_json::Value,
    confusion: Option<(&[String], &[Vec<u64>])>,
    replay: &Replay,
) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    let path = dir.join("report.json");
    super::output::write_new(
        &path,
        serde_json::to_string_pretty(json)
            .unwrap_or_default()
            .as_bytes(),
    )?;
    written.push(path);
    let mut md = format!("# Replay report\n\n```\n{table}```\n\n");
    if let Some((labels, counts)) = confusion {
        let path = dir.join("confusion.png");
        super::plots::confusion(&path, labels, counts)?;
        written.push(path);
        md += "![Confusion matrix](confusion.png)\n\n";
    }
    let latencies: Vec<f64> = replay.frames.iter().map(|f| f.total_ms).collect();
    let path = dir.join("latency.png");
    super::plots::latency_histogram(&path, &latencies)?;
    written.push(path);
    md += "![Latency](latency.png)\n";
    let path = dir.join("report.md");
    super::output::write_new(&path, md.as_bytes())?;
    written.push(path);
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsampling_matches_opencv_bilinear() {
        // cv2.resize(np.array([[0, 4], [8, 12]], np.float32), (4, 4), INTER_LINEAR) gives
        // [[0,1,3,4],[2,3,5,6],[6,7,9,10],[8,9,11,12]].
        let map = AnomalyMap {
            width: 2,
            height: 2,
            data: vec![0.0, 4.0, 8.0, 12.0],
        };
        let mut out = vec![f32::NAN; 16];
        upsample(&map, 4, 4, 1, |i, v| out[i] = v);
        assert_eq!(
            out,
            vec![
                0., 1., 3., 4., 2., 3., 5., 6., 6., 7., 9., 10., 8., 9., 11., 12.
            ]
        );
        let mut seen = Vec::new();
        upsample(&map, 4, 4, 2, |i, v| seen.push((i, v)));
        assert_eq!(seen, vec![(0, 0.0), (2, 3.0), (8, 6.0), (10, 9.0)]);
    }
}
