//! Reading a policy from TOML, with errors that name the file, the line and the reason.
//!
//! ```toml
//! fail-severities = ["critical", "major"]   # which severities fail a part (this is the default)
//! pixels-per-mm = 4.0                       # calibration, needed for the -mm2 and -mm keys
//!
//! [region]                                  # where to look: rect = [x1, y1, x2, y2] or
//! rect = [100, 40, 1180, 680]               # polygon = [[x, y], ...], frame pixels
//!
//! [[ignore]]                                # where not to look (any number)
//! polygon = [[0, 0], [200, 0], [0, 120]]
//!
//! [default]                                 # classes the policy does not name
//! min-confidence = 0.5
//! severity = "major"
//!
//! [classes.scratches]
//! min-confidence = 0.5                      # FAIL at or above this (failing severities)
//! severity = "major"                        # critical, major, minor or cosmetic
//! min-area = 150                            # px²; or min-area-mm2 = 2.5
//! max-area-mm2 = 400                        # larger: REVIEW at most; or max-area (px²)
//! min-length-mm = 2.0                       # shorter: REVIEW at most; or min-length (px)
//! review-band = [0.3, 0.5]                  # REVIEW for confidence in [0.3, 0.5)
//!
//! [classes.ok]                              # a classifier's good class: never fails, never
//! good = true                               # counted, whatever its confidence
//!
//! [anomaly]                                 # anomaly models (scores in the model's units)
//! image-threshold = 0.5                     # FAIL at or above this image score
//! pixel-threshold = 0.5                     # regions: map cells at or above this
//! min-area = 100                            # px² (frame pixels); or min-area-mm2
//! severity = "major"
//! review-band = [0.4, 0.5]                  # REVIEW for an image score in [0.4, 0.5)
//!
//! [drift]                                   # drift against a baseline (see super::drift)
//! window = 90
//! ```

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use super::{AnomalyRule, ClassRule, Policy, PolicySource, Severity, Shape};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}:{line}: {reason}")]
pub struct PolicyError {
    pub file: String,
    /// 1-based; 0 when the problem has no place in the file.
    pub line: usize,
    pub reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawPolicy {
    fail_severities: Option<Spanned<Vec<Spanned<String>>>>,
    pixels_per_mm: Option<Spanned<f64>>,
    region: Option<Spanned<RawShape>>,
    #[serde(default)]
    ignore: Vec<Spanned<RawShape>>,
    default: Option<Spanned<RawClass>>,
    #[serde(default)]
    classes: BTreeMap<Spanned<String>, Spanned<RawClass>>,
    anomaly: Option<Spanned<RawAnomaly>>,
    drift: Option<Spanned<super::drift::RawDrift>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawAnomaly {
    image_threshold: Option<Spanned<f64>>,
    pixel_threshold: Option<Spanned<f64>>,
    min_area: Option<Spanned<f64>>,
    min_area_mm2: Option<Spanned<f64>>,
    severity: Option<Spanned<String>>,
    review_band: Option<Spanned<Vec<f64>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShape {
    rect: Option<Spanned<[f64; 4]>>,
    polygon: Option<Spanned<Vec<[f64; 2]>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawClass {
    min_confidence: Option<Spanned<f64>>,
    severity: Option<Spanned<String>>,
    min_area: Option<Spanned<f64>>,
    min_area_mm2: Option<Spanned<f64>>,
    max_area: Option<Spanned<f64>>,
    max_area_mm2: Option<Spanned<f64>>,
    min_length: Option<Spanned<f64>>,
    min_length_mm: Option<Spanned<f64>>,
    review_band: Option<Spanned<Vec<f64>>>,
    good: Option<Spanned<bool>>,
}

/// Turns byte offsets into line numbers: a binary search in the offsets of the line starts,
/// found once, so that a policy with many tables parses in linear time.
struct Locator<'a> {
    file: &'a str,
    /// Byte offset of the start of every line after the first.
    line_starts: Vec<usize>,
}

impl<'a> Locator<'a> {
    fn new(text: &str, file: &'a str) -> Self {
        Self {
            file,
            line_starts: text
                .bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i + 1)
                .collect(),
        }
    }

    fn line(&self, span: Range<usize>) -> usize {
        self.line_starts
            .partition_point(|&start| start <= span.start)
            + 1
    }

    fn error(&self, span: Range<usize>, reason: impl Into<String>) -> PolicyError {
        PolicyError {
            file: self.file.to_string(),
            line: self.line(span),
            reason: reason.into(),
        }
    }
}

/// Parses and validates a policy. `file` names it in errors.
pub fn parse_policy(text: &str, file: &str) -> Result<Policy, PolicyError> {
    let at = Locator::new(text, file);
    let raw: RawPolicy = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(0, |span| at.line(span));
        PolicyError {
            file: file.to_string(),
            line,
            reason: e.message().trim().to_string(),
        }
    })?;

    let pixels_per_mm = match raw.pixels_per_mm {
        Some(value) => {
            let v = *value.get_ref();
            // Checked as the f32 it becomes: 1e300 would be infinite, 1e-300 zero.
            let ppm = v as f32;
            if !(ppm.is_finite() && ppm > 0.0) {
                return Err(at.error(
                    value.span(),
                    format!("pixels-per-mm {v:?} must be a finite number greater than 0"),
                ));
            }
            Some(ppm)
        }
        None => None,
    };
    let fail_severities = match raw.fail_severities {
        Some(list) => list
            .into_inner()
            .into_iter()
            .map(|name| severity(&at, &name))
            .collect::<Result<Vec<_>, _>>()?,
        None => vec![Severity::Critical, Severity::Major],
    };
    let mut source = PolicySource {
        file: file.to_string(),
        region_line: raw.region.as_ref().map_or(0, |r| at.line(r.span())),
        ignore_lines: raw.ignore.iter().map(|r| at.line(r.span())).collect(),
        anomaly_line: 0,
    };
    let region = raw
        .region
        .map(|shape| parse_shape(&at, shape, "region"))
        .transpose()?;
    let ignore = raw
        .ignore
        .into_iter()
        .map(|shape| parse_shape(&at, shape, "ignore"))
        .collect::<Result<Vec<_>, _>>()?;
    source.ignore_lines.truncate(ignore.len());
    let default_rule = match raw.default {
        Some(rule) => parse_rule(&at, rule, pixels_per_mm)?,
        None => ClassRule::default(),
    };
    let mut classes = BTreeMap::new();
    let mut class_lines = BTreeMap::new();
    for (name, rule) in raw.classes {
        let line = at.line(name.span());
        let name = name.into_inner();
        classes.insert(name.clone(), parse_rule(&at, rule, pixels_per_mm)?);
        class_lines.insert(name, line);
    }
    let (anomaly, anomaly_line) = match raw.anomaly {
        Some(section) => {
            let line = at.line(section.span());
            (
                parse_anomaly(&at, section.into_inner(), pixels_per_mm)?,
                line,
            )
        }
        None => (AnomalyRule::default(), 0),
    };
    source.anomaly_line = anomaly_line;
    let drift = match raw.drift {
        Some(section) => {
            let (line, span) = (at.line(section.span()), section.span());
            section
                .into_inner()
                .parse(line, span)
                .map_err(|(span, reason)| at.error(span, reason))?
        }
        None => super::DriftConfig::default(),
    };
    Ok(Policy {
        drift,
        classes,
        default_rule,
        anomaly,
        fail_severities,
        region,
        ignore,
        pixels_per_mm,
        class_lines,
        source,
    })
}

/// A float of the policy as the f32 it becomes, or an error when it is NaN or infinite
/// (a NaN threshold would switch its check off without a word).
fn finite(at: &Locator, value: &Spanned<f64>, what: &str) -> Result<f32, PolicyError> {
    let v = *value.get_ref();
    let f = v as f32;
    if f.is_finite() {
        Ok(f)
    } else {
        Err(at.error(value.span(), format!("{what} {v:?} is not a finite number")))
    }
}

fn severity(at: &Locator, name: &Spanned<String>) -> Result<Severity, PolicyError> {
    Severity::parse(name.get_ref()).ok_or_else(|| {
        at.error(
            name.span(),
            format!(
                "unknown severity {:?}: expected critical, major, minor or cosmetic",
                name.get_ref()
            ),
        )
    })
}

fn parse_shape(at: &Locator, shape: Spanned<RawShape>, what: &str) -> Result<Shape, PolicyError> {
    let span = shape.span();
    match shape.into_inner() {
        RawShape {
            rect: Some(rect),
            polygon: None,
        } => {
            let [x1, y1, x2, y2] = *rect.get_ref();
            if !rect.get_ref().iter().all(|v| (*v as f32).is_finite()) {
                return Err(at.error(
                    rect.span(),
                    format!("{what} rect [{x1:?}, {y1:?}, {x2:?}, {y2:?}] holds a value that is not a finite number"),
                ));
            }
            if x1 < x2 && y1 < y2 {
                Ok(Shape::Rect([x1 as f32, y1 as f32, x2 as f32, y2 as f32]))
            } else {
                Err(at.error(
                    rect.span(),
                    format!("{what} rect [{x1}, {y1}, {x2}, {y2}] must have x1 < x2 and y1 < y2"),
                ))
            }
        }
        RawShape {
            rect: None,
            polygon: Some(points),
        } => {
            if points.get_ref().len() < 3 {
                let count = points.get_ref().len();
                return Err(at.error(
                    points.span(),
                    format!("{what} polygon has {count} points; at least 3 are needed"),
                ));
            }
            if let Some([x, y]) = points
                .get_ref()
                .iter()
                .find(|p| !p.iter().all(|v| (*v as f32).is_finite()))
            {
                return Err(at.error(
                    points.span(),
                    format!("{what} polygon vertex [{x:?}, {y:?}] is not a pair of finite numbers"),
                ));
            }
            let vertices: Vec<(f64, f64)> = points.get_ref().iter().map(|&[x, y]| (x, y)).collect();
            if super::shape::polygon_area2(&vertices).abs() < 1e-9 {
                return Err(at.error(
                    points.span(),
                    format!("{what} polygon has no area (its points are collinear): it would contain nothing"),
                ));
            }
            Ok(Shape::Polygon(
                vertices
                    .into_iter()
                    .map(|(x, y)| (x as f32, y as f32))
                    .collect(),
            ))
        }
        _ => Err(at.error(
            span,
            format!(
                "{what} needs exactly one of rect = [x1, y1, x2, y2] or polygon = [[x, y], ...]"
            ),
        )),
    }
}

fn parse_rule(
    at: &Locator,
    rule: Spanned<RawClass>,
    pixels_per_mm: Option<f32>,
) -> Result<ClassRule, PolicyError> {
    let raw = rule.into_inner();
    let defaults = ClassRule::default();
    let min_confidence = match raw.min_confidence {
        Some(value) => {
            let v = *value.get_ref();
            if !(0.0..=1.0).contains(&v) {
                return Err(at.error(
                    value.span(),
                    format!("min-confidence {v} is outside [0, 1]"),
                ));
            }
            v as f32
        }
        None => defaults.min_confidence,
    };
    let severity = match &raw.severity {
        Some(name) => severity(at, name)?,
        None => defaults.severity,
    };
    let min_area_px = min_area(at, raw.min_area, raw.min_area_mm2, pixels_per_mm)?
        .unwrap_or(defaults.min_area_px);
    let max_area_span = raw
        .max_area
        .as_ref()
        .or(raw.max_area_mm2.as_ref())
        .map(|v| v.span());
    let max_area_px = calibrated(
        at,
        (raw.max_area, raw.max_area_mm2),
        ("max-area", "max-area-mm2", "px²"),
        pixels_per_mm,
        2,
    )?;
    if let (Some(max), Some(span)) = (max_area_px, max_area_span)
        && max < min_area_px
    {
        return Err(at.error(
            span,
            format!("max-area ({max} px²) is below min-area ({min_area_px} px²): every detection would be outside"),
        ));
    }
    let min_length_px = calibrated(
        at,
        (raw.min_length, raw.min_length_mm),
        ("min-length", "min-length-mm", "px"),
        pixels_per_mm,
        1,
    )?;
    let review_band = match raw.review_band {
        Some(band) => {
            let [low, high] = band.get_ref()[..] else {
                return Err(at.error(band.span(), "review-band must be [low, high]"));
            };
            if !(0.0 <= low && low < high && high <= 1.0) {
                return Err(at.error(
                    band.span(),
                    format!("review-band [{low}, {high}] must have 0 <= low < high <= 1"),
                ));
            }
            if high as f32 > min_confidence {
                return Err(at.error(
                    band.span(),
                    format!("review-band [{low}, {high}] overlaps the fail band: it must end at or below min-confidence {min_confidence}"),
                ));
            }
            Some((low as f32, high as f32))
        }
        None => None,
    };
    Ok(ClassRule {
        min_confidence,
        severity,
        min_area_px,
        max_area_px,
        min_length_px,
        review_band,
        good: raw.good.is_some_and(|g| *g.get_ref()),
    })
}

/// `min-area` (px²) or `min-area-mm2` (with the calibration) in px², when given.
fn min_area(
    at: &Locator,
    min_area: Option<Spanned<f64>>,
    min_area_mm2: Option<Spanned<f64>>,
    pixels_per_mm: Option<f32>,
) -> Result<Option<f32>, PolicyError> {
    calibrated(
        at,
        (min_area, min_area_mm2),
        ("min-area", "min-area-mm2", "px²"),
        pixels_per_mm,
        2,
    )
}

/// A size given in pixels (`keys.0`) or in millimetres (`keys.1`, converted with the
/// calibration to the power `power`: 2 for areas, 1 for lengths), in pixels, when given.
fn calibrated(
    at: &Locator,
    (in_px, in_mm): (Option<Spanned<f64>>, Option<Spanned<f64>>),
    (px_key, mm_key, unit): (&str, &str, &str),
    pixels_per_mm: Option<f32>,
    power: i32,
) -> Result<Option<f32>, PolicyError> {
    Ok(Some(match (in_px, in_mm) {
        (Some(_), Some(mm)) => {
            return Err(at.error(
                mm.span(),
                format!("give {px_key} ({unit}) or {mm_key}, not both"),
            ));
        }
        (Some(px), None) => {
            let size = finite(at, &px, px_key)?;
            if size < 0.0 {
                return Err(at.error(px.span(), format!("{px_key} must not be negative")));
            }
            size
        }
        (None, Some(mm)) => {
            let Some(ppm) = pixels_per_mm else {
                return Err(at.error(
                    mm.span(),
                    format!("{mm_key} needs the top-level pixels-per-mm calibration"),
                ));
            };
            let size = finite(at, &mm, mm_key)?;
            if size < 0.0 {
                return Err(at.error(mm.span(), format!("{mm_key} must not be negative")));
            }
            let px = size * ppm.powi(power);
            if !px.is_finite() {
                return Err(at.error(
                    mm.span(),
                    format!(
                        "{mm_key} {size} at pixels-per-mm {ppm} is not a finite number of {unit}"
                    ),
                ));
            }
            px
        }
        (None, None) => return Ok(None),
    }))
}

/// A threshold of the `[anomaly]` section: a finite number (scores are the model's own units).
fn threshold(
    at: &Locator,
    value: Option<Spanned<f64>>,
    what: &str,
) -> Result<Option<f32>, PolicyError> {
    value.map(|v| finite(at, &v, what)).transpose()
}

fn parse_anomaly(
    at: &Locator,
    raw: RawAnomaly,
    pixels_per_mm: Option<f32>,
) -> Result<AnomalyRule, PolicyError> {
    let defaults = AnomalyRule::default();
    let image_threshold = threshold(at, raw.image_threshold, "image-threshold")?;
    let pixel_threshold = threshold(at, raw.pixel_threshold, "pixel-threshold")?;
    let min_area_px = min_area(at, raw.min_area, raw.min_area_mm2, pixels_per_mm)?
        .unwrap_or(defaults.min_area_px);
    let severity = match &raw.severity {
        Some(name) => severity(at, name)?,
        None => defaults.severity,
    };
    let review_band = match raw.review_band {
        Some(band) => {
            let [low, high] = band.get_ref()[..] else {
                return Err(at.error(band.span(), "review-band must be [low, high]"));
            };
            if !((low as f32).is_finite() && (high as f32).is_finite() && low < high) {
                return Err(at.error(
                    band.span(),
                    format!("review-band [{low}, {high}] must be finite with low < high"),
                ));
            }
            if let Some(t) = image_threshold
                && high as f32 > t
            {
                return Err(at.error(
                    band.span(),
                    format!("review-band [{low}, {high}] overlaps the fail band: it must end at or below image-threshold {t}"),
                ));
            }
            Some((low as f32, high as f32))
        }
        None => None,
    };
    Ok(AnomalyRule {
        image_threshold,
        pixel_threshold,
        min_area_px,
        severity,
        review_band,
    })
}
