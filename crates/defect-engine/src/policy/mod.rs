//! The inspection policy and the PASS / FAIL / REVIEW decision, free of GStreamer.
//!
//! A [`Policy`] says, per class, how sure the model must be (`min-confidence`), how severe
//! the defect is, which sizes matter (`min-area`) and in which confidence range a person must
//! look (`review-band`); plus where to look (an inspection region) and where not (ignore
//! masks). [`Policy::evaluate`] turns a frame's detections into a [`FrameVerdict`]:
//!
//! 1. a detection whose box centre lies outside the region, or inside an ignore mask, or
//!    whose area is below its class's `min-area`, is ignored;
//! 2. FAIL when a remaining detection of a failing severity (critical and major by default)
//!    has confidence ≥ its class's `min-confidence`, unless it is larger than its class's
//!    `max-area` or shorter than its `min-length`: then REVIEW;
//! 3. else REVIEW when a remaining detection's confidence lies in its class's review band
//!    `[low, high)`;
//! 4. else PASS.
//!
//! Areas and lengths are a segmentation model's masks' where the detections have masks, the
//! boxes' otherwise. The detections that decided the verdict are its reasons. A frame or part the model has not
//! judged is [`Verdict::Unknown`], never PASS (see [`parts`] for how a part's verdict waits for
//! the results of its frames).

mod anomaly;
pub mod drift;
mod parse;
mod parts;
mod shape;
pub mod stages;

pub use anomaly::{AnomalyRule, AnomalyThresholds, NonFiniteOutput};
pub use drift::DriftConfig;
pub use parse::{PolicyError, parse_policy};
pub use parts::{PartKey, PartTracker, PartVerdict, Seen};
pub use shape::Shape;

pub use crate::meta::{Decision, Severity, Verdict};

use std::collections::BTreeMap;

use std::sync::Arc;

use crate::analysis::mask::Mask;
use crate::analysis::{BBox, Detection};

/// What a policy says about one class.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassRule {
    pub min_confidence: f32,
    pub severity: Severity,
    /// In square pixels (a `min-area-mm2` is converted with the calibration at parse time).
    pub min_area_px: f32,
    /// A detection larger than this (px²; `max-area` or `max-area-mm2`) fails nothing: it goes
    /// to REVIEW where it would fail.
    pub max_area_px: Option<f32>,
    /// A detection shorter than this (px; `min-length` or `min-length-mm`) fails nothing: it
    /// goes to REVIEW where it would fail.
    pub min_length_px: Option<f32>,
    /// `[low, high)`; `high` never exceeds `min_confidence`.
    pub review_band: Option<(f32, f32)>,
    /// A good class (a classifier's `ok`): never fails nor goes to review, never counted.
    pub good: bool,
}

impl Default for ClassRule {
    /// Without a policy every detection the detector reports fails the part.
    fn default() -> Self {
        Self {
            min_confidence: 0.0,
            severity: Severity::Major,
            min_area_px: 0.0,
            max_area_px: None,
            min_length_px: None,
            review_band: None,
            good: false,
        }
    }
}

/// One detection as the policy judged it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judged {
    pub detection: Detection,
    pub severity: Severity,
    pub decision: Decision,
    /// The mask's area where the detection has a mask, else the box's (px²).
    pub area_px: f32,
    /// The mask's length (the long side of its minimum-area rectangle, see
    /// [`crate::analysis::mask`]) where the detection has a mask, else the box's longer side
    /// (px).
    pub length_px: f32,
    /// Peak and mean score of an anomaly region (in the model's units).
    pub scores: Option<[f32; 2]>,
}

/// Counts of detections by severity, worst first (critical, major, minor, cosmetic).
pub type SeverityCounts = [u32; 4];

/// A frame's verdict, every detection's judgement, and the detections that decided it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FrameVerdict {
    pub verdict: Verdict,
    /// The image score of an anomaly model's frame.
    pub anomaly_score: Option<f32>,
    pub judged: Vec<Judged>,
    /// A segmentation model's masks, one per judged detection (same order).
    pub masks: Option<Arc<Vec<Mask>>>,
    /// The policy's calibration, for the detections' sizes in millimetres.
    pub pixels_per_mm: Option<f32>,
    /// Counts of detections at or above their class threshold, inside the region, not
    /// masked and large enough.
    pub counts: SeverityCounts,
    /// An anomaly model's output that was not all finite (NaN or infinite map cells, or image
    /// score): the frame is UNKNOWN unless its finite cells fail it or put it in review.
    pub non_finite: Option<anomaly::NonFiniteOutput>,
}

impl FrameVerdict {
    /// The verdict of a frame the model has not judged: no detections, UNKNOWN.
    pub fn unknown() -> Self {
        Self {
            verdict: Verdict::Unknown,
            ..Default::default()
        }
    }

    /// The detections that decided the verdict: the failing ones for FAIL, the ones in a
    /// review band for REVIEW, none for PASS or UNKNOWN.
    pub fn reasons(&self) -> impl Iterator<Item = &Judged> {
        let wanted = match self.verdict {
            Verdict::Fail => Some(Decision::Fail),
            Verdict::Review => Some(Decision::Review),
            Verdict::Pass | Verdict::Unknown => None,
        };
        self.judged
            .iter()
            .filter(move |j| Some(j.decision) == wanted)
    }
}

/// Problems of a policy's shapes on frames of a given size.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FrameProblems {
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

/// A parsed, validated inspection policy.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Policy {
    /// Rules by class name.
    pub classes: BTreeMap<String, ClassRule>,
    /// The rule of classes the policy does not name.
    pub default_rule: ClassRule,
    /// Severities that fail a part.
    pub fail_severities: Vec<Severity>,
    pub region: Option<Shape>,
    pub ignore: Vec<Shape>,
    pub pixels_per_mm: Option<f32>,
    /// The `[anomaly]` section: thresholds and regions of anomaly models.
    pub anomaly: AnomalyRule,
    /// The `[drift]` section: comparing rolling windows with a baseline.
    pub drift: DriftConfig,
    /// Line of each class's table in the file, for errors found once the model is known.
    pub class_lines: BTreeMap<String, usize>,
    /// Where the shapes are in the file, for problems found once the frame size is known.
    pub source: PolicySource,
}

/// The file a policy came from and the lines of its shapes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PolicySource {
    pub file: String,
    /// Line of the `[region]` table (0 without one).
    pub region_line: usize,
    /// Line of each `[[ignore]]` table, in order.
    pub ignore_lines: Vec<usize>,
    /// Line of the `[anomaly]` table (0 without one).
    pub anomaly_line: usize,
}

impl Policy {
    /// The built-in policy: every detection is a major defect that fails the part.
    pub fn fail_on_any_detection() -> Self {
        Self {
            fail_severities: vec![Severity::Critical, Severity::Major],
            ..Default::default()
        }
    }

    pub fn rule(&self, class_name: &str) -> &ClassRule {
        self.classes.get(class_name).unwrap_or(&self.default_rule)
    }

    /// Class names the policy names but the model does not know, with their lines.
    pub fn unknown_classes<'a>(
        &'a self,
        model_classes: &'a [String],
    ) -> impl Iterator<Item = (&'a str, usize)> + 'a {
        self.classes_not_known(move |name| model_classes.iter().any(|c| c == name))
    }

    /// Class names for which `known` says no, with their lines.
    pub fn classes_not_known<'a>(
        &'a self,
        known: impl Fn(&str) -> bool + 'a,
    ) -> impl Iterator<Item = (&'a str, usize)> + 'a {
        self.classes
            .keys()
            .filter(move |name| !known(name))
            .map(|name| {
                (
                    name.as_str(),
                    self.class_lines.get(name).copied().unwrap_or(0),
                )
            })
    }

    /// What is wrong with the region and masks on `width` x `height` frames, as
    /// `file:line: reason`: errors (a region outside the frame would ignore every detection)
    /// and warnings (a mask covering the whole frame, or outside it).
    pub fn frame_problems(&self, width: u32, height: u32) -> FrameProblems {
        let (w, h) = (width as f32, height as f32);
        let mut problems = FrameProblems::default();
        let at = |line: usize| format!("{}:{line}", self.source.file);
        if let Some(region) = &self.region
            && !region.overlaps(w, h)
        {
            problems.errors.push(format!(
                "{}: the region lies entirely outside the {width}x{height} frame: every detection would be ignored",
                at(self.source.region_line)
            ));
        }
        for (i, mask) in self.ignore.iter().enumerate() {
            let line = self.source.ignore_lines.get(i).copied().unwrap_or(0);
            if mask.covers(w, h) {
                problems.warnings.push(format!(
                    "{}: the ignore mask covers the whole {width}x{height} frame: every detection is ignored",
                    at(line)
                ));
            } else if !mask.overlaps(w, h) {
                problems.warnings.push(format!(
                    "{}: the ignore mask lies entirely outside the {width}x{height} frame",
                    at(line)
                ));
            }
        }
        problems
    }

    /// Judges every detection (boxes in frame pixels) and decides the frame's verdict.
    /// `class_name` names a class id.
    pub fn evaluate(
        &self,
        detections: &[Detection],
        class_name: impl Fn(usize) -> String,
    ) -> FrameVerdict {
        self.evaluate_masked(detections, None, class_name)
    }

    /// [`Policy::evaluate`] for a segmentation model's detections: each one's sizes (area,
    /// length) are its mask's, `masks` holding one per detection.
    pub fn evaluate_masked(
        &self,
        detections: &[Detection],
        masks: Option<&Arc<Vec<Mask>>>,
        class_name: impl Fn(usize) -> String,
    ) -> FrameVerdict {
        let masks = masks.filter(|m| m.len() == detections.len());
        let mut result = FrameVerdict {
            judged: Vec::with_capacity(detections.len()),
            masks: masks.cloned(),
            pixels_per_mm: self.pixels_per_mm,
            ..Default::default()
        };
        for (i, detection) in detections.iter().enumerate() {
            let rule = self.rule(&class_name(detection.class_id));
            let judged = self.judge(detection, masks.map(|m| &m[i]), rule);
            if matches!(judged.decision, Decision::Fail | Decision::Accept)
                && !rule.good
                && detection.confidence >= rule.min_confidence
            {
                result.counts[judged.severity.index()] += 1;
            }
            result.verdict = result.verdict.max(match judged.decision {
                Decision::Fail => Verdict::Fail,
                Decision::Review => Verdict::Review,
                _ => Verdict::Pass,
            });
            result.judged.push(judged);
        }
        result
    }

    /// Whether the policy looks at a box: its centre inside the region and in no ignore mask.
    /// Replay scoring asks the same of ground-truth boxes.
    pub fn inspects(&self, bbox: &BBox) -> bool {
        matches!(self.placement(bbox), Decision::Accept)
    }

    /// `OutsideRegion`, `Masked`, or `Accept` where the box's centre is inspected.
    fn placement(&self, b: &BBox) -> Decision {
        let (cx, cy) = ((b.x1 + b.x2) / 2.0, (b.y1 + b.y2) / 2.0);
        if self.region.as_ref().is_some_and(|r| !r.contains(cx, cy)) {
            Decision::OutsideRegion
        } else if self.ignore.iter().any(|mask| mask.contains(cx, cy)) {
            Decision::Masked
        } else {
            Decision::Accept
        }
    }

    fn judge(&self, detection: &Detection, mask: Option<&Mask>, rule: &ClassRule) -> Judged {
        let b = &detection.bbox;
        let (area_px, length_px) = match mask {
            Some(m) => (m.area() as f32, m.length()),
            None => (b.area(), b.width().max(b.height())),
        };
        let confidence = detection.confidence;
        let placement = self.placement(b);
        // Outside the class's size limits a detection that would fail goes to review.
        let out_of_limits = rule.max_area_px.is_some_and(|max| area_px > max)
            || rule.min_length_px.is_some_and(|min| length_px < min);
        let fails =
            confidence >= rule.min_confidence && self.fail_severities.contains(&rule.severity);
        let decision = if placement != Decision::Accept {
            placement
        } else if area_px < rule.min_area_px {
            Decision::TooSmall
        } else if rule.good {
            Decision::Accept
        } else if fails && !out_of_limits {
            Decision::Fail
        } else if fails
            || rule
                .review_band
                .is_some_and(|(low, high)| confidence >= low && confidence < high)
        {
            // Failing but outside the size limits, or in the review band.
            Decision::Review
        } else {
            Decision::Accept
        };
        Judged {
            detection: *detection,
            severity: rule.severity,
            decision,
            area_px,
            length_px,
            scores: None,
        }
    }
}

#[cfg(test)]
mod tests;

impl Policy {
    /// The policy as TOML that [`parse_policy`] reads back to an equal policy (minimum areas are
    /// written in px²).
    pub fn to_toml(&self) -> String {
        // Debug formatting writes floats TOML reads back as floats (`100.0`, `1e30`).
        let mut out = String::new();
        let severities: Vec<String> = self
            .fail_severities
            .iter()
            .map(|s| format!("\"{s}\""))
            .collect();
        out += &format!("fail-severities = [{}]\n", severities.join(", "));
        if let Some(ppm) = self.pixels_per_mm {
            out += &format!("pixels-per-mm = {ppm:?}\n");
        }
        let shape = |s: &Shape| match s {
            Shape::Rect([x1, y1, x2, y2]) => format!("rect = [{x1:?}, {y1:?}, {x2:?}, {y2:?}]\n"),
            Shape::Polygon(points) => {
                let p: Vec<String> = points
                    .iter()
                    .map(|(x, y)| format!("[{x:?}, {y:?}]"))
                    .collect();
                format!("polygon = [{}]\n", p.join(", "))
            }
        };
        if let Some(region) = &self.region {
            out += &format!("\n[region]\n{}", shape(region));
        }
        for mask in &self.ignore {
            out += &format!("\n[[ignore]]\n{}", shape(mask));
        }
        let rule = |r: &ClassRule| {
            let mut text = format!(
                "min-confidence = {:?}\nseverity = \"{}\"\nmin-area = {:?}\n",
                r.min_confidence, r.severity, r.min_area_px
            );
            if let Some(max) = r.max_area_px {
                text += &format!("max-area = {max:?}\n");
            }
            if let Some(min) = r.min_length_px {
                text += &format!("min-length = {min:?}\n");
            }
            if let Some((low, high)) = r.review_band {
                text += &format!("review-band = [{low:?}, {high:?}]\n");
            }
            if r.good {
                text += "good = true\n";
            }
            text
        };
        if self.anomaly != AnomalyRule::default() {
            let a = &self.anomaly;
            out += "\n[anomaly]\n";
            if let Some(t) = a.image_threshold {
                out += &format!("image-threshold = {t:?}\n");
            }
            if let Some(t) = a.pixel_threshold {
                out += &format!("pixel-threshold = {t:?}\n");
            }
            out += &format!(
                "min-area = {:?}\nseverity = \"{}\"\n",
                a.min_area_px, a.severity
            );
            if let Some((low, high)) = a.review_band {
                out += &format!("review-band = [{low:?}, {high:?}]\n");
            }
        }
        out += &format!("\n[default]\n{}", rule(&self.default_rule));
        for (name, r) in &self.classes {
            // A TOML string value is a valid quoted key, whatever the name holds.
            out += &format!(
                "\n[classes.{}]\n{}",
                toml::Value::String(name.clone()),
                rule(r)
            );
        }
        out
    }

    /// Sets a class's `min-confidence`, keeping its other settings (the default rule's when the
    /// class had none) and trimming its review band to stay below the new threshold.
    pub fn set_min_confidence(&mut self, class_name: &str, threshold: f32) {
        let mut rule = self.rule(class_name).clone();
        rule.min_confidence = threshold;
        rule.review_band = rule.review_band.and_then(|(low, high)| {
            let high = high.min(threshold);
            (low < high).then_some((low, high))
        });
        self.classes.insert(class_name.to_string(), rule);
    }
}
