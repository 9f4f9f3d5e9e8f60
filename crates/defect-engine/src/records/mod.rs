//! The NDJSON verdict records (`docs/verdict.schema.json`), free of GStreamer: one line a
//! frame, and one line a finished part.

use serde::Serialize;

/// Bumped on any incompatible change of the records.
pub const SCHEMA_VERSION: u32 = 4;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelRef {
    pub id: String,
    pub name: String,
    pub version: String,
    pub sha256: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct SeverityCounts {
    pub critical: u32,
    pub major: u32,
    pub minor: u32,
    pub cosmetic: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DetectionRecord {
    pub class_id: u32,
    pub class_name: String,
    pub severity: Option<String>,
    pub decision: Option<String>,
    pub confidence: f64,
    /// x1, y1, x2, y2 in frame pixels.
    #[serde(rename = "box")]
    pub bbox: [f64; 4],
    /// The box's area, square pixels.
    pub area: f64,
    /// The detection's area in square pixels: its mask's where it has one, else its box's.
    pub area_px: f64,
    /// `area_px` in mm² with the policy's `pixels-per-mm`; null without it.
    pub area_mm2: Option<f64>,
    /// The detection's length in pixels (the long side of the minimum-area rectangle around
    /// its mask, else the box's longer side); null where `defectdetect` did not measure it.
    pub length_px: Option<f64>,
    /// `length_px` in mm; null without `pixels-per-mm`.
    pub length_mm: Option<f64>,
    /// A segmentation model's mask as COCO RLE in frame pixels; null without one.
    pub mask: Option<RleRecord>,
    /// An anomaly region's peak and mean score (the model's units); null otherwise.
    pub peak_score: Option<f64>,
    pub mean_score: Option<f64>,
    /// What a downstream classifier (`on-rois`) said of this region; null without one.
    pub classification: Option<ClassificationRecord>,
}

impl DetectionRecord {
    /// The decision that counts for the frame: the classification's when a second stage
    /// judged the region and the detector's policy did not ignore it, else the detection's.
    pub fn effective_decision(&self) -> Option<&str> {
        let ignored = self
            .decision
            .as_deref()
            .and_then(crate::meta::Decision::parse)
            .is_some_and(|d| !d.counted());
        match self
            .classification
            .as_ref()
            .and_then(|c| c.decision.as_deref())
        {
            Some(classified) if !ignored => Some(classified),
            _ => self.decision.as_deref(),
        }
    }
}

/// A mask as COCO run-length encoding over the whole frame (`size` = [height, width],
/// `counts` column-major, compressed as pycocotools writes it): `pycocotools.mask.decode`
/// reads it as it is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RleRecord {
    pub size: [u32; 2],
    pub counts: String,
}

impl RleRecord {
    /// The RLE of a mask in a `width` x `height` frame.
    pub fn new(mask: &crate::analysis::mask::Mask, width: u32, height: u32) -> Self {
        Self {
            size: [height, width],
            counts: mask.to_coco_rle(width, height),
        }
    }
}

/// A classifier's class for a region (`on-rois`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassificationRecord {
    pub class_id: u32,
    pub class_name: String,
    pub confidence: f64,
    pub severity: Option<String>,
    pub decision: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    pub inference: f64,
    pub total: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FrameRecord {
    pub schema_version: u32,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub utc: String,
    pub pts_ns: Option<u64>,
    pub frame: u64,
    pub source_id: String,
    pub part_id: Option<String>,
    pub model: Option<ModelRef>,
    pub policy_sha256: Option<String>,
    /// The model's task: detect, segment, classify or anomaly; null without a verdict.
    pub task: Option<String>,
    /// An anomaly model's image score (the model's units); null for the other tasks.
    pub anomaly_score: Option<f64>,
    pub detections: Vec<DetectionRecord>,
    /// PASS, FAIL, REVIEW, or UNKNOWN when no result of the model applies to the frame yet
    /// (asynchronous inference); null when no `defectdetect` upstream gave one.
    pub verdict: Option<String>,
    /// The model ran on this frame (with `async-inference`, its result comes with a later
    /// frame's record, as `source_frame`, and in its part's record); null without a verdict.
    pub inspected: Option<bool>,
    /// The detections and verdict are those of an earlier frame, `source_frame` (`interval`,
    /// `async-inference`).
    pub carried: bool,
    pub source_frame: Option<u64>,
    /// Indices into `detections` of the detections that decided the verdict.
    pub reasons: Vec<usize>,
    pub shadow: bool,
    pub counts: SeverityCounts,
    pub latency_ms: Option<Latency>,
    /// Frames `defectcapture` could not queue for writing so far; null without it.
    pub capture_dropped: Option<u64>,
}

impl FrameRecord {
    /// Reasons are the failing detections of a FAIL, the ones in review of a REVIEW. A region a
    /// second stage classified (`on-rois`) is judged by its classification, unless the
    /// detector's policy ignored it.
    pub fn derive_reasons(&mut self) {
        let wanted = match self.verdict.as_deref() {
            Some("FAIL") => "fail",
            Some("REVIEW") => "review",
            _ => return self.reasons.clear(),
        };
        self.reasons = (0..self.detections.len())
            .filter(|&i| self.detections[i].effective_decision() == Some(wanted))
            .collect();
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartRecord {
    pub schema_version: u32,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub utc: String,
    pub source_id: String,
    pub part_id: String,
    pub verdict: String,
    pub shadow: bool,
    pub first_frame: u64,
    pub last_frame: u64,
    pub frames: u64,
    /// Frames of the part the model ran on.
    pub inspected_frames: u64,
    pub counts: SeverityCounts,
    pub model_id: String,
    /// A part joined from several cameras (`defectpartmux`): what each camera saw. Absent
    /// for a single camera's part.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cameras: Vec<CameraRecord>,
}

/// One camera's part in a joined part record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CameraRecord {
    pub camera: String,
    /// `reported`, `timeout` (not reported in time) or `stopped`.
    pub status: String,
    /// Whether its absence makes the part UNKNOWN.
    pub required: bool,
    /// Its own verdict; UNKNOWN when it did not report the part.
    pub verdict: String,
    /// Its own frame numbers of the part; absent when it did not report it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_frame: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_frame: Option<u64>,
    pub frames: u64,
    pub inspected_frames: u64,
    pub counts: SeverityCounts,
    pub model_id: String,
}

/// One feature of a drift record (see [`crate::meta::DriftFeature`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftFeatureRecord {
    pub name: String,
    /// Population stability index of the window against the baseline.
    pub score: f64,
    pub threshold: f64,
    pub moved: bool,
    pub baseline: f64,
    pub current: f64,
}

/// A drift episode started (`active` true) or ended (`active` false): one line each.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftRecord {
    pub schema_version: u32,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub utc: String,
    pub source_id: String,
    /// `start` or `end`.
    pub event: &'static str,
    pub active: bool,
    pub episode: u64,
    /// The frame that closed the window.
    pub frame: u64,
    pub window_frames: u64,
    /// Names of the features that moved (worst first at the start; none at the end).
    pub moved: Vec<String>,
    pub features: Vec<DriftFeatureRecord>,
}

impl DriftRecord {
    pub fn new(report: &crate::meta::DriftReport, source_id: String, utc: String) -> Self {
        let mut moved: Vec<&crate::meta::DriftFeature> = report.moved().collect();
        moved.sort_by(|a, b| (b.score / b.threshold).total_cmp(&(a.score / a.threshold)));
        Self {
            schema_version: SCHEMA_VERSION,
            kind: "drift",
            utc,
            source_id,
            event: if report.active { "start" } else { "end" },
            active: report.active,
            episode: report.episode,
            frame: report.frame,
            window_frames: report.window_frames,
            moved: moved.iter().map(|f| f.name.clone()).collect(),
            features: report
                .features
                .iter()
                .map(|f| DriftFeatureRecord {
                    name: f.name.clone(),
                    score: finite(f.score),
                    threshold: finite(f.threshold),
                    moved: f.moved,
                    baseline: finite(f.baseline),
                    current: finite(f.current),
                })
                .collect(),
        }
    }
}

/// One line of a challenger's agreement for a frame (see [`crate::meta::AgreementRow`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgreementRecord {
    /// `class` or `verdict`.
    pub level: String,
    /// The class or verdict.
    pub label: String,
    pub both: u64,
    pub only_production: u64,
    pub only_challenger: u64,
}

/// A challenger model's result for a frame (`defectdetect challenger-model`): its own line,
/// after the frame's (the challenger judges the frame after production has decided it),
/// naming the frame by `frame` and `pts_ns`. Frame records are unchanged by a challenger.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChallengerRecord {
    pub schema_version: u32,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub utc: String,
    pub source_id: String,
    pub frame: u64,
    pub pts_ns: Option<u64>,
    /// The challenger's model id, and the production model's.
    pub model_id: String,
    pub production_model_id: String,
    /// The challenger had no time for the frame: no detections, verdict null.
    pub skipped: bool,
    pub verdict: Option<String>,
    pub production_verdict: String,
    pub detections: Vec<DetectionRecord>,
    /// This frame's agreement with production, per class and per verdict (empty when
    /// skipped).
    pub agreement: Vec<AgreementRecord>,
}

impl ChallengerRecord {
    pub fn new(frame: &crate::meta::ChallengerFrame, source_id: String, utc: String) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            kind: "challenger",
            utc,
            source_id,
            frame: frame.frame,
            pts_ns: frame.pts,
            model_id: frame.model_id.clone(),
            production_model_id: frame.production_model_id.clone(),
            skipped: frame.skipped,
            verdict: (!frame.skipped).then(|| frame.verdict.as_str().to_string()),
            production_verdict: frame.production_verdict.as_str().to_string(),
            detections: frame
                .detections
                .iter()
                .map(|d| DetectionRecord {
                    class_id: d.label_id,
                    class_name: d.label.clone(),
                    severity: Some(d.severity.as_str().to_string()),
                    decision: Some(d.decision.as_str().to_string()),
                    confidence: d.confidence,
                    bbox: [d.x_min, d.y_min, d.x_max, d.y_max],
                    area: (d.x_max - d.x_min).max(0.0) * (d.y_max - d.y_min).max(0.0),
                    // The challenger's event carries boxes only: sizes are its boxes'.
                    area_px: (d.x_max - d.x_min).max(0.0) * (d.y_max - d.y_min).max(0.0),
                    area_mm2: None,
                    length_px: None,
                    length_mm: None,
                    mask: None,
                    peak_score: d.peak_score,
                    mean_score: d.mean_score,
                    classification: None,
                })
                .collect(),
            agreement: frame
                .agreement
                .iter()
                .map(|r| AgreementRecord {
                    level: r.level.clone(),
                    label: r.label.clone(),
                    both: r.both,
                    only_production: r.only_production,
                    only_challenger: r.only_challenger,
                })
                .collect(),
        }
    }
}

/// JSON has no NaN or infinity: such a value is written as the largest finite one of its sign
/// (NaN as 0).
fn finite(v: f64) -> f64 {
    if v.is_nan() {
        0.0
    } else {
        v.clamp(f64::MIN, f64::MAX)
    }
}

/// One NDJSON line (with its newline).
pub fn to_line(record: &impl Serialize) -> String {
    let mut line =
        serde_json::to_string(record).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    line.push('\n');
    line
}

/// RFC 3339 UTC time with milliseconds, e.g. `2026-11-22T18:40:05.123Z`.
pub fn utc_timestamp(since_epoch: std::time::Duration) -> String {
    let seconds = since_epoch.as_secs();
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60,
        since_epoch.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    (year, month, day)
}

/// The current UTC time as [`utc_timestamp`] writes it.
pub fn utc_now() -> String {
    utc_timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps() {
        assert_eq!(
            utc_timestamp(Duration::from_millis(0)),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(
            utc_timestamp(Duration::from_millis(951_782_400_500)),
            "2000-02-29T00:00:00.500Z"
        );
        assert_eq!(
            utc_timestamp(Duration::from_secs(1_795_372_805)),
            "2026-11-22T18:40:05.000Z"
        );
    }

    fn detection(decision: &str) -> DetectionRecord {
        DetectionRecord {
            class_id: 0,
            class_name: "a".into(),
            severity: Some("major".into()),
            decision: Some(decision.into()),
            confidence: 0.5,
            bbox: [0.0, 0.0, 2.0, 3.0],
            area: 6.0,
            area_px: 6.0,
            area_mm2: None,
            length_px: Some(3.0),
            length_mm: None,
            mask: None,
            peak_score: None,
            mean_score: None,
            classification: None,
        }
    }

    #[test]
    fn reasons_follow_the_verdict_and_lines_end_in_newline() {
        let mut record = FrameRecord {
            schema_version: SCHEMA_VERSION,
            kind: "frame",
            utc: utc_timestamp(Duration::ZERO),
            pts_ns: None,
            frame: 0,
            source_id: "cam".into(),
            part_id: None,
            model: None,
            policy_sha256: None,
            task: None,
            anomaly_score: None,
            detections: vec![detection("review"), detection("fail"), detection("accept")],
            verdict: Some("FAIL".into()),
            inspected: Some(true),
            carried: false,
            source_frame: None,
            reasons: vec![],
            shadow: false,
            counts: SeverityCounts::default(),
            latency_ms: None,
            capture_dropped: None,
        };
        record.derive_reasons();
        assert_eq!(record.reasons, [1]);
        record.verdict = Some("REVIEW".into());
        record.derive_reasons();
        assert_eq!(record.reasons, [0]);
        // A second stage's classification decides a region the detector did not ignore.
        let classified = |decision: &str| {
            Some(ClassificationRecord {
                class_id: 1,
                class_name: "scratches".into(),
                confidence: 0.9,
                severity: Some("critical".into()),
                decision: Some(decision.into()),
            })
        };
        record.detections[0].classification = classified("fail");
        record.detections[1].classification = classified("accept");
        record.detections.push(DetectionRecord {
            classification: classified("fail"),
            ..detection("outside-region")
        });
        record.verdict = Some("FAIL".into());
        record.derive_reasons();
        assert_eq!(record.reasons, [0]);
        let line = to_line(&record);
        assert!(
            line.ends_with("}\n")
                && line.contains("\"box\":[0.0,0.0,2.0,3.0]")
                && line.contains("\"type\":\"frame\"")
        );
    }
}
