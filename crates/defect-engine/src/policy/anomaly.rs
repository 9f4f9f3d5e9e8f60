//! The `[anomaly]` section and the verdict of an anomaly model's frame.
//!
//! An anomaly model gives a map of scores (and often an image score; else the map's maximum
//! is the image score). With the thresholds in force (the policy's, else the model's):
//!
//! 1. the map cells at or above `pixel-threshold` form regions (8-connected components), whose
//!    boxes are scaled to the frame; each becomes a detection of the anomaly class with the
//!    region's peak and mean score; its confidence is the peak normalised so that the pixel
//!    threshold is 0.5 (`0.5 * peak / pixel-threshold`, clamped to [0, 1]);
//! 2. a region outside the policy's region, in an ignore mask, or smaller than `min-area`
//!    (frame px²) is ignored, as detections are;
//! 3. the frame is anomalous when its image score is at or above `image-threshold`. It FAILs
//!    (with a failing `severity`) when a region remains, or when no cell reaches the pixel
//!    threshold at all (the image score alone decides); its remaining regions are the reasons.
//!    When every region was ignored the frame passes;
//! 4. else REVIEW when the image score lies in `review-band` `[low, high)`; else PASS.
//!
//! A model output that is not all finite (NaN, +inf or -inf in map cells, or as the image
//! score) is not trusted to pass anything: such cells are never part of a region, the image
//! score is then the highest finite cell, and the frame is judged on its finite cells as
//! above; a FAIL or a REVIEW stands, but where they would PASS the frame is UNKNOWN (no image
//! score), with [`NonFiniteOutput`] saying which cells. (+inf is not taken as "over every
//! threshold": an overflowing model is broken, not certain, and NaN gives no direction at
//! all.) A map without any finite cell is thus one UNKNOWN frame, not an error.

use super::{Decision, FrameVerdict, Judged, Policy, Severity, Verdict};
use crate::analysis::anomaly::{AnomalyMap, NonFiniteCells, regions};
use crate::analysis::{BBox, Detection};

/// An anomaly model's output with values that are not finite, for the frame's UNKNOWN verdict.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NonFiniteOutput {
    /// The map's cells without a finite score.
    pub cells: Option<NonFiniteCells>,
    /// Their bounding box in frame pixels: x1, y1, x2, y2.
    pub rect: [f32; 4],
    /// The model's image score, when it gave one that is not finite.
    pub score: Option<f32>,
}

impl std::fmt::Display for NonFiniteOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [x1, y1, x2, y2] = self.rect;
        match (&self.cells, self.score) {
            (Some(cells), score) => {
                write!(
                    f,
                    "the anomaly map holds {} cells in x {x1}..{x2}, y {y1}..{y2} (frame pixels)",
                    cells.counts()
                )?;
                if let Some(score) = score {
                    write!(f, " and the image score is {score}")?;
                }
                Ok(())
            }
            (None, Some(score)) => write!(f, "the model's image score is {score}"),
            (None, None) => write!(f, "the model's output is finite"),
        }
    }
}

/// The `[anomaly]` section as written.
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyRule {
    /// None: the model's own (metadata, or 0.5 for Anomalib's normalised exports).
    pub image_threshold: Option<f32>,
    pub pixel_threshold: Option<f32>,
    /// In frame px².
    pub min_area_px: f32,
    pub severity: Severity,
    /// On the image score, `[low, high)`.
    pub review_band: Option<(f32, f32)>,
}

impl Default for AnomalyRule {
    fn default() -> Self {
        Self {
            image_threshold: None,
            pixel_threshold: None,
            min_area_px: 0.0,
            severity: Severity::Major,
            review_band: None,
        }
    }
}

/// The thresholds in force for one model and policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnomalyThresholds {
    pub image: f32,
    pub pixel: f32,
}

impl AnomalyRule {
    /// The policy's thresholds, else the model's; None names what is missing.
    pub fn thresholds(
        &self,
        model_image: Option<f32>,
        model_pixel: Option<f32>,
    ) -> Result<AnomalyThresholds, &'static str> {
        let image = self
            .image_threshold
            .or(model_image)
            .ok_or("image-threshold")?;
        let pixel = self
            .pixel_threshold
            .or(model_pixel)
            .ok_or("pixel-threshold")?;
        Ok(AnomalyThresholds { image, pixel })
    }
}

impl Policy {
    /// Judges an anomaly model's output on a `frame_width` x `frame_height` frame.
    /// `class_id` is the anomaly class's id.
    pub fn evaluate_anomaly(
        &self,
        thresholds: AnomalyThresholds,
        score: Option<f32>,
        map: &AnomalyMap,
        (frame_width, frame_height): (f32, f32),
        class_id: usize,
    ) -> FrameVerdict {
        let rule = &self.anomaly;
        let (sx, sy) = (
            frame_width / map.width.max(1) as f32,
            frame_height / map.height.max(1) as f32,
        );
        let cells = map.non_finite_cells();
        let bad_score = score.filter(|s| !s.is_finite());
        let non_finite = (cells.is_some() || bad_score.is_some()).then(|| NonFiniteOutput {
            cells,
            rect: cells.map_or([0.0; 4], |c| {
                [
                    c.x1 as f32 * sx,
                    c.y1 as f32 * sy,
                    c.x2 as f32 * sx,
                    c.y2 as f32 * sy,
                ]
            }),
            score: bad_score,
        });
        let score = score.filter(|s| s.is_finite()).or_else(|| map.max());
        let anomalous = score.is_some_and(|s| s >= thresholds.image);
        let fails = anomalous && self.fail_severities.contains(&rule.severity);
        let in_review = !anomalous
            && score.is_some_and(|s| {
                rule.review_band
                    .is_some_and(|(low, high)| s >= low && s < high)
            });
        let found = regions(map, thresholds.pixel);
        let mut result = FrameVerdict {
            anomaly_score: score,
            judged: Vec::with_capacity(found.len()),
            ..Default::default()
        };
        let confidence = |peak: f32| {
            if thresholds.pixel > 0.0 {
                (0.5 * peak / thresholds.pixel).clamp(0.0, 1.0)
            } else {
                peak.clamp(0.0, 1.0)
            }
        };
        for r in &found {
            let bbox = BBox {
                x1: r.x1 as f32 * sx,
                y1: r.y1 as f32 * sy,
                x2: r.x2 as f32 * sx,
                y2: r.y2 as f32 * sy,
            };
            let area_px = r.cells as f32 * sx * sy;
            let placement = self.placement(&bbox);
            let decision = if placement != Decision::Accept {
                placement
            } else if area_px < rule.min_area_px {
                Decision::TooSmall
            } else if fails {
                Decision::Fail
            } else if in_review {
                Decision::Review
            } else {
                Decision::Accept
            };
            result.judged.push(Judged {
                detection: Detection {
                    bbox,
                    confidence: confidence(r.peak),
                    class_id,
                },
                severity: rule.severity,
                decision,
                area_px,
                length_px: bbox.width().max(bbox.height()),
                scores: Some([r.peak, r.mean]),
            });
        }
        let kept = result
            .judged
            .iter()
            .filter(|j| {
                matches!(
                    j.decision,
                    Decision::Fail | Decision::Review | Decision::Accept
                )
            })
            .count();
        let counted = if anomalous {
            if found.is_empty() { 1 } else { kept }
        } else {
            0
        };
        result.counts[rule.severity as usize] += counted as u32;
        result.verdict = if fails && (found.is_empty() || kept > 0) {
            Verdict::Fail
        } else if in_review {
            Verdict::Review
        } else {
            Verdict::Pass
        };
        if non_finite.is_some() {
            result.non_finite = non_finite;
            if result.verdict == Verdict::Pass {
                // Not judged: the finite cells alone cannot pass the frame.
                result.verdict = Verdict::Unknown;
                result.anomaly_score = None;
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::parse_policy;

    fn map() -> AnomalyMap {
        // 5 x 2 map on a 500 x 200 frame: each cell is 100 x 100 px; two regions.
        AnomalyMap {
            width: 5,
            height: 2,
            data: vec![0.1, 0.9, 0.8, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.6],
        }
    }

    const T: AnomalyThresholds = AnomalyThresholds {
        image: 0.5,
        pixel: 0.5,
    };

    #[test]
    fn regions_become_anomaly_detections_and_the_score_decides() {
        let policy = Policy::fail_on_any_detection();
        let v = policy.evaluate_anomaly(T, Some(0.95), &map(), (500.0, 200.0), 0);
        assert_eq!(v.verdict, Verdict::Fail);
        assert_eq!(v.anomaly_score, Some(0.95));
        assert_eq!(v.judged.len(), 2);
        let first = &v.judged[0];
        assert_eq!(
            first.detection.bbox,
            BBox {
                x1: 100.0,
                y1: 0.0,
                x2: 300.0,
                y2: 100.0
            }
        );
        assert_eq!(first.area_px, 20_000.0);
        assert_eq!(first.scores, Some([0.9, 0.85]));
        assert!((first.detection.confidence - 0.9).abs() < 1e-6);
        assert_eq!(first.decision, Decision::Fail);
        assert_eq!(v.counts, [0, 2, 0, 0]);
        // Below the image threshold: regions are shown, the frame passes.
        let v = policy.evaluate_anomaly(T, Some(0.4), &map(), (500.0, 200.0), 0);
        assert_eq!(v.verdict, Verdict::Pass);
        assert!(v.judged.iter().all(|j| j.decision == Decision::Accept));
        assert_eq!(v.counts, [0; 4]);
        // Without an image score the map's maximum is the score.
        let v = policy.evaluate_anomaly(T, None, &map(), (500.0, 200.0), 0);
        assert_eq!(v.anomaly_score, Some(0.9));
        assert_eq!(v.verdict, Verdict::Fail);
    }

    #[test]
    fn min_area_masks_review_band_and_thresholds_from_the_policy() {
        let policy = parse_policy(
            "[anomaly]\nimage-threshold = 0.7\npixel-threshold = 0.7\nmin-area = 15000\n\
             severity = \"critical\"\nreview-band = [0.3, 0.7]\n",
            "p.toml",
        )
        .unwrap();
        let t = policy.anomaly.thresholds(Some(0.5), Some(0.5)).unwrap();
        assert_eq!(
            t,
            AnomalyThresholds {
                image: 0.7,
                pixel: 0.7
            }
        );
        // Pixel threshold 0.7: one region of two cells (0.9, 0.8): 20000 px² >= 15000.
        let v = policy.evaluate_anomaly(t, Some(0.9), &map(), (500.0, 200.0), 3);
        assert_eq!(v.verdict, Verdict::Fail);
        assert_eq!(v.judged.len(), 1);
        assert_eq!(v.judged[0].detection.class_id, 3);
        assert_eq!(v.counts, [1, 0, 0, 0]);
        // A larger minimum area: the only region is too small, the frame passes.
        let mut strict = policy.clone();
        strict.anomaly.min_area_px = 30_000.0;
        let v = strict.evaluate_anomaly(t, Some(0.9), &map(), (500.0, 200.0), 3);
        assert_eq!(v.verdict, Verdict::Pass);
        assert_eq!(v.judged[0].decision, Decision::TooSmall);
        // In the review band.
        let v = policy.evaluate_anomaly(t, Some(0.5), &map(), (500.0, 200.0), 3);
        assert_eq!(v.verdict, Verdict::Review);
        // Ignore mask over the region.
        let masked = parse_policy(
            "[[ignore]]\nrect = [100, 0, 300, 100]\n[anomaly]\nimage-threshold = 0.7\npixel-threshold = 0.7\n",
            "p.toml",
        )
        .unwrap();
        let v = masked.evaluate_anomaly(t, Some(0.9), &map(), (500.0, 200.0), 0);
        assert_eq!(v.judged[0].decision, Decision::Masked);
        assert_eq!(v.verdict, Verdict::Pass);
        // No cell at the pixel threshold: the image score alone fails the frame.
        let high = AnomalyThresholds {
            image: 0.5,
            pixel: 2.0,
        };
        let v = Policy::fail_on_any_detection().evaluate_anomaly(
            high,
            Some(0.9),
            &map(),
            (500.0, 200.0),
            0,
        );
        assert_eq!(
            (v.verdict, v.judged.len(), v.counts),
            (Verdict::Fail, 0, [0, 1, 0, 0])
        );
    }

    #[test]
    fn non_finite_cells_never_pass() {
        // The defect's cells (two of ten) are +inf, NaN or -inf, the rest 0: never PASS; the
        // same map with 0.9 there fails.
        let policy = Policy::fail_on_any_detection();
        let with = |v: f32| AnomalyMap {
            width: 5,
            height: 2,
            data: vec![0.0, v, v, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        };
        let judge = |v: f32, score: Option<f32>| {
            policy.evaluate_anomaly(T, score, &with(v), (500.0, 200.0), 0)
        };
        assert_eq!(judge(0.9, None).verdict, Verdict::Fail);
        for v in [f32::INFINITY, f32::NAN, f32::NEG_INFINITY] {
            for score in [None, Some(v), Some(0.1)] {
                let got = judge(v, score);
                assert_eq!(got.verdict, Verdict::Unknown, "{v} {score:?}: {got:?}");
                assert_eq!(got.anomaly_score, None, "{v} {score:?}");
                assert_eq!(got.counts, [0; 4]);
                // No region carries a non-finite score.
                assert!(
                    got.judged
                        .iter()
                        .all(|j| j.scores.is_some_and(|s| s.iter().all(|x| x.is_finite())))
                );
            }
        }
        let got = judge(f32::INFINITY, None);
        assert_eq!(
            got.non_finite.unwrap().to_string(),
            "the anomaly map holds 2 infinite cells in x 100..300, y 0..100 (frame pixels)"
        );
        let got = judge(f32::NAN, Some(f32::NAN));
        assert_eq!(
            got.non_finite.unwrap().to_string(),
            "the anomaly map holds 2 NaN cells in x 100..300, y 0..100 (frame pixels) and the image score is NaN"
        );
        // A finite map with a NaN image score: UNKNOWN too.
        let got = policy.evaluate_anomaly(T, Some(f32::NAN), &with(0.1), (500.0, 200.0), 0);
        assert_eq!(got.verdict, Verdict::Unknown);
        assert_eq!(
            got.non_finite.unwrap().to_string(),
            "the model's image score is NaN"
        );
        assert!(judge(0.9, None).non_finite.is_none());
        // A map of NaN only: UNKNOWN, not an error.
        let nan = AnomalyMap {
            width: 2,
            height: 2,
            data: vec![f32::NAN; 4],
        };
        let got = policy.evaluate_anomaly(T, None, &nan, (20.0, 20.0), 0);
        assert_eq!((got.verdict, got.judged.len()), (Verdict::Unknown, 0));
        // Finite cells that fail the frame still fail it; in the review band it stays REVIEW.
        let mut failing = with(f32::NAN);
        failing.data[9] = 0.95;
        let got = policy.evaluate_anomaly(T, None, &failing, (500.0, 200.0), 0);
        assert_eq!(
            (got.verdict, got.anomaly_score, got.judged.len()),
            (Verdict::Fail, Some(0.95), 1)
        );
        let mut review = policy.clone();
        review.anomaly.review_band = Some((0.3, 0.5));
        failing.data[9] = 0.4;
        let got = review.evaluate_anomaly(T, None, &failing, (500.0, 200.0), 0);
        assert_eq!(got.verdict, Verdict::Review);
    }

    #[test]
    fn missing_thresholds_are_named_and_sections_parse_strictly() {
        let rule = AnomalyRule::default();
        assert_eq!(rule.thresholds(None, Some(1.0)), Err("image-threshold"));
        assert_eq!(rule.thresholds(Some(1.0), None), Err("pixel-threshold"));
        for (bad, wanted) in [
            ("[anomaly]\nimage-treshold = 1\n", "unknown field"),
            ("[anomaly]\nimage-threshold = nan\n", "not a finite number"),
            ("[anomaly]\nseverity = \"fatal\"\n", "unknown severity"),
            (
                "[anomaly]\nimage-threshold = 0.5\nreview-band = [0.4, 0.6]\n",
                "overlaps the fail band",
            ),
            ("[anomaly]\nmin-area = -1\n", "must not be negative"),
        ] {
            let e = parse_policy(bad, "p.toml").unwrap_err();
            assert!(e.to_string().contains(wanted), "{bad}: {e}");
            assert!(e.line >= 2, "{bad}: {e}");
        }
        let p = parse_policy(
            "[anomaly]\nimage-threshold = 7.5\npixel-threshold = 6\nmin-area = 50\n",
            "p.toml",
        )
        .unwrap();
        assert_eq!(p.source.anomaly_line, 1);
        assert_eq!(
            parse_policy(&p.to_toml(), "p.toml").unwrap().anomaly,
            p.anomaly
        );
    }
}
