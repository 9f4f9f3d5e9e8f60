// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `[drift]` section: how `defectdetect` compares rolling windows of frames with its
//! baseline profile of known-good operation (see [`crate::monitor::drift`]).
//!
//! ```toml
//! [drift]
//! enabled = true                 # compare at all (default true)
//! baseline = "baseline.json"     # a profile written by defect-replay --baseline-out
//!                                # (relative to this file); without one the element learns
//! learn-frames = 300             # ... from its first N frames
//! window = 150                   # frames in the rolling window
//! step = 15                      # compared every `step` frames
//! threshold = 2.0                # population stability index at which a feature moved
//! onset-windows = 2              # consecutive windows with a moved feature start an episode
//! recovery-windows = 4           # consecutive quiet windows end it
//! recovery-fraction = 0.5        # during an episode a feature is quiet below threshold x this
//! min-samples = 20               # values a distribution needs in the window (and baseline)
//! features = ["brightness", "contrast", "focus", "colour-balance",
//!             "detections", "confidence", "verdict", "anomaly-score"]
//!
//! [drift.thresholds]             # per feature (`detections:scratches`) or family (`focus`)
//! focus = 1.5
//! ```

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

/// The feature families that can be switched on and off (`features`).
pub const FAMILIES: [&str; 8] = [
    "brightness",
    "contrast",
    "focus",
    "colour-balance",
    "detections",
    "confidence",
    "verdict",
    crate::meta::fields::ANOMALY_SCORE,
];

/// The `[drift]` section, with its defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftConfig {
    pub enabled: bool,
    /// A baseline profile (JSON), resolved against the policy file's folder.
    pub baseline: Option<String>,
    pub learn_frames: u32,
    pub window: u32,
    pub step: u32,
    pub threshold: f64,
    pub onset_windows: u32,
    pub recovery_windows: u32,
    pub recovery_fraction: f64,
    pub min_samples: u32,
    /// Enabled families (of [`FAMILIES`]).
    pub features: Vec<String>,
    /// Thresholds by feature name or family.
    pub thresholds: BTreeMap<String, f64>,
    /// Line of the `[drift]` table (0 without one).
    pub line: usize,
}

impl Default for DriftConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            baseline: None,
            learn_frames: 300,
            window: 150,
            step: 15,
            threshold: 2.0,
            onset_windows: 2,
            recovery_windows: 4,
            recovery_fraction: 0.5,
            min_samples: 20,
            features: FAMILIES.iter().map(|f| f.to_string()).collect(),
            thresholds: BTreeMap::new(),
            line: 0,
        }
    }
}

impl DriftConfig {
    /// The family of a feature name: `detections:scratches` is in `detections`,
    /// `colour-balance:red` in `colour-balance`.
    pub fn family(feature: &str) -> &str {
        feature.split(':').next().unwrap_or(feature)
    }

    pub fn feature_enabled(&self, feature: &str) -> bool {
        let family = Self::family(feature);
        self.features.iter().any(|f| f == family)
    }

    /// The threshold of a feature: its own, else its family's, else `threshold`.
    pub fn threshold_of(&self, feature: &str) -> f64 {
        self.thresholds
            .get(feature)
            .or_else(|| self.thresholds.get(Self::family(feature)))
            .copied()
            .unwrap_or(self.threshold)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawDrift {
    enabled: Option<bool>,
    baseline: Option<String>,
    learn_frames: Option<Spanned<i64>>,
    window: Option<Spanned<i64>>,
    step: Option<Spanned<i64>>,
    threshold: Option<Spanned<f64>>,
    onset_windows: Option<Spanned<i64>>,
    recovery_windows: Option<Spanned<i64>>,
    recovery_fraction: Option<Spanned<f64>>,
    min_samples: Option<Spanned<i64>>,
    features: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    thresholds: BTreeMap<Spanned<String>, Spanned<f64>>,
}

/// A problem of the section: the byte span it is at and the reason.
pub(super) type Problem = (Range<usize>, String);

fn count(value: &Option<Spanned<i64>>, key: &str, min: i64, default: u32) -> Result<u32, Problem> {
    match value {
        None => Ok(default),
        Some(v) => {
            let n = *v.get_ref();
            if n < min || n > 1_000_000 {
                Err((
                    v.span(),
                    format!("drift {key} {n} must be between {min} and 1000000"),
                ))
            } else {
                Ok(n as u32)
            }
        }
    }
}

fn positive(value: &Spanned<f64>, key: &str) -> Result<f64, Problem> {
    let v = *value.get_ref();
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err((
            value.span(),
            format!("drift {key} {v:?} must be a finite number greater than 0"),
        ))
    }
}

impl RawDrift {
    pub(super) fn parse(self, line: usize, section: Range<usize>) -> Result<DriftConfig, Problem> {
        let d = DriftConfig::default();
        let window = count(&self.window, "window", 10, d.window)?;
        let step = count(&self.step, "step", 1, d.step)?;
        if step > window {
            let span = self
                .step
                .as_ref()
                .or(self.window.as_ref())
                .map(|s| s.span());
            return Err((
                span.unwrap_or(section.clone()),
                format!("drift step {step} is longer than the window of {window} frames"),
            ));
        }
        let learn_frames = count(&self.learn_frames, "learn-frames", 1, d.learn_frames)?;
        if learn_frames < window {
            let span = self.learn_frames.as_ref().or(self.window.as_ref());
            return Err((
                span.map_or(section.clone(), |s| s.span()),
                format!(
                    "drift learn-frames {learn_frames} is shorter than the window of {window} frames: the baseline would hold less than one window"
                ),
            ));
        }
        let min_samples = count(&self.min_samples, "min-samples", 1, d.min_samples)?;
        if min_samples > window {
            let span = self
                .min_samples
                .as_ref()
                .map_or(section.clone(), |s| s.span());
            return Err((
                span,
                format!(
                    "drift min-samples {min_samples} is more than the window of {window} frames"
                ),
            ));
        }
        let threshold = match &self.threshold {
            Some(v) => positive(v, "threshold")?,
            None => d.threshold,
        };
        let recovery_fraction = match &self.recovery_fraction {
            Some(v) => {
                let f = positive(v, "recovery-fraction")?;
                if f > 1.0 {
                    return Err((
                        v.span(),
                        format!("drift recovery-fraction {f} must be at most 1"),
                    ));
                }
                f
            }
            None => d.recovery_fraction,
        };
        let features = match self.features {
            Some(list) => {
                let mut features = Vec::new();
                for name in list {
                    if !FAMILIES.contains(&name.get_ref().as_str()) {
                        return Err((
                            name.span(),
                            format!(
                                "unknown drift feature {:?}: expected one of {}",
                                name.get_ref(),
                                FAMILIES.join(", ")
                            ),
                        ));
                    }
                    features.push(name.into_inner());
                }
                features
            }
            None => d.features,
        };
        let mut thresholds = BTreeMap::new();
        for (name, value) in self.thresholds {
            let family = DriftConfig::family(name.get_ref());
            if !FAMILIES.contains(&family) {
                return Err((
                    name.span(),
                    format!(
                        "drift threshold for {:?}: not a feature (a family of {}, or family:name)",
                        name.get_ref(),
                        FAMILIES.join(", ")
                    ),
                ));
            }
            let v = positive(&value, "threshold")?;
            thresholds.insert(name.into_inner(), v);
        }
        Ok(DriftConfig {
            enabled: self.enabled.unwrap_or(d.enabled),
            baseline: self.baseline,
            learn_frames,
            window,
            step,
            threshold,
            onset_windows: count(&self.onset_windows, "onset-windows", 1, d.onset_windows)?,
            recovery_windows: count(
                &self.recovery_windows,
                "recovery-windows",
                1,
                d.recovery_windows,
            )?,
            recovery_fraction,
            min_samples,
            features,
            thresholds,
            line,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::parse_policy;

    fn error(text: &str) -> String {
        parse_policy(text, "p.toml").unwrap_err().to_string()
    }

    #[test]
    fn defaults_without_a_section_and_values_with_one() {
        let p = parse_policy("", "p.toml").unwrap();
        assert_eq!(p.drift, DriftConfig::default());
        let p = parse_policy(
            "[default]\nmin-confidence = 0.5\n\n[drift]\nwindow = 60\nstep = 20\nlearn-frames = 120\nthreshold = 2\nfeatures = [\"brightness\", \"detections\"]\nbaseline = \"b.json\"\n\n[drift.thresholds]\n\"detections:scratches\" = 3.5\n",
            "p.toml",
        )
        .unwrap();
        let d = &p.drift;
        assert_eq!((d.window, d.step, d.learn_frames), (60, 20, 120));
        assert_eq!(d.line, 4);
        assert_eq!(d.baseline.as_deref(), Some("b.json"));
        assert!(d.feature_enabled("detections:scratches") && !d.feature_enabled("focus"));
        assert_eq!(d.threshold_of("detections:scratches"), 3.5);
        assert_eq!(d.threshold_of("brightness"), 2.0);
    }

    #[test]
    fn errors_name_the_file_and_line() {
        assert_eq!(
            error("[drift]\nwindow = 5\n"),
            "p.toml:2: drift window 5 must be between 10 and 1000000"
        );
        assert_eq!(
            error("[drift]\nwindow = 30\nstep = 40\n"),
            "p.toml:3: drift step 40 is longer than the window of 30 frames"
        );
        assert!(error("[drift]\nlearn-frames = 50\n").starts_with(
            "p.toml:2: drift learn-frames 50 is shorter than the window of 150 frames"
        ));
        assert_eq!(
            error("[drift]\n\nthreshold = -1.0\n"),
            "p.toml:3: drift threshold -1.0 must be a finite number greater than 0"
        );
        assert!(
            error("[drift]\nfeatures = [\"brightness\", \"sharpness\"]\n")
                .starts_with("p.toml:2: unknown drift feature \"sharpness\"")
        );
        assert!(
            error("[drift.thresholds]\nsharpness = 2.0\n")
                .starts_with("p.toml:2: drift threshold for \"sharpness\": not a feature")
        );
        assert!(error("[drift]\nwindwo = 3\n").starts_with("p.toml:2: unknown field `windwo`"));
        assert_eq!(
            error("[drift]\nrecovery-fraction = 1.5\n"),
            "p.toml:2: drift recovery-fraction 1.5 must be at most 1"
        );
    }
}
