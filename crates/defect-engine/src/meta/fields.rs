// SPDX-License-Identifier: MIT OR Apache-2.0
//! Every name of the contract: metas, structures, messages, events and their fields. No other
//! module spells one of these as a string (`tests/contract.rs` checks it); they read and write
//! through the types of [`crate::meta`].

// Metas, events, messages and structures.
pub const VERDICT_META: &str = "DefectVerdictMeta";
pub const PART_META: &str = "DefectPartMeta";
pub const PART_EVENT: &str = "defect-part";
pub const DETECTION: &str = "detection";
pub const REASON: &str = "reason";
pub const DETECTIONS_MESSAGE: &str = "defect-detections";
pub const VERDICT_MESSAGE: &str = "defect-verdict";
pub const PART_VERDICT: &str = "defect-part-verdict";
pub const MODEL_INFO: &str = "model-info";
/// Posted when a reloaded model or policy is in force (the next frame uses it).
pub const MODEL_READY_MESSAGE: &str = "defect-model-ready";
pub const GENERATION: &str = "generation";
pub const CLASSIFICATION: &str = "classification";

// The ROI meta's `detection` parameters (DL Streamer's names, normalised box).
pub const ROI_LABEL_ID: &str = "label_id";
pub const ROI_X_MIN: &str = "x_min";
pub const ROI_Y_MIN: &str = "y_min";
pub const ROI_X_MAX: &str = "x_max";
pub const ROI_Y_MAX: &str = "y_max";
pub const ROI_PEAK_SCORE: &str = "peak_score";
pub const ROI_MEAN_SCORE: &str = "mean_score";

// A detection or reason of the verdict and the messages (pixels).
pub const LABEL_ID: &str = "label-id";
pub const LABEL: &str = "label";
pub const CONFIDENCE: &str = "confidence";
pub const X_MIN: &str = "x-min";
pub const Y_MIN: &str = "y-min";
pub const X_MAX: &str = "x-max";
pub const Y_MAX: &str = "y-max";
pub const SEVERITY: &str = "severity";
pub const DECISION: &str = "decision";
pub const PEAK_SCORE: &str = "peak-score";
pub const MEAN_SCORE: &str = "mean-score";

// The verdict meta and message, the part verdict.
pub const VERDICT: &str = "verdict";
pub const TASK: &str = "task";
pub const ANOMALY_SCORE: &str = "anomaly-score";
pub const SHADOW: &str = "shadow";
pub const PART_ID: &str = "part-id";
pub const FRAME: &str = "frame";
pub const INSPECTED: &str = "inspected";
pub const CARRIED: &str = "carried";
pub const SKIPPED_FRAMES: &str = "skipped-frames";
pub const SOURCE_FRAME: &str = "source-frame";
pub const CRITICAL: &str = "critical";
pub const MAJOR: &str = "major";
pub const MINOR: &str = "minor";
pub const COSMETIC: &str = "cosmetic";
pub const MODEL_ID: &str = "model-id";
pub const MODEL_NAME: &str = "model-name";
pub const MODEL_VERSION: &str = "model-version";
pub const MODEL_SHA256: &str = "model-sha256";
pub const POLICY_SHA256: &str = "policy-sha256";
pub const INFERENCE_MS: &str = "inference-ms";
pub const TOTAL_MS: &str = "total-ms";
pub const REASONS: &str = "reasons";
pub const CAPTURE_DROPPED: &str = "capture-dropped";
pub const PTS: &str = "pts";
pub const RUNNING_TIME: &str = "running-time";
pub const DETECTIONS: &str = "detections";
pub const FIRST_FRAME: &str = "first-frame";
pub const LAST_FRAME: &str = "last-frame";
pub const FRAMES: &str = "frames";
pub const INSPECTED_FRAMES: &str = "inspected-frames";
/// A joined part verdict's per-camera entries (`camera` structures: `label` (its name), `status`,
/// `required`, and the camera's own `verdict`, frames, counts and `model-id`).
pub const CAMERAS: &str = "cameras";
pub const CAMERA: &str = "camera";
pub const STATUS: &str = "status";
pub const REQUIRED: &str = "required";

/// The media type of `defectpartmux`'s output: one empty buffer per joined part, each after
/// the `defect-part-verdict` event that carries the part.
pub const PARTS_CAPS: &str = "application/x-defect-parts";

// `model-info`.
pub const INPUT_NAME: &str = "input-name";
pub const CHANNELS: &str = "channels";
pub const WIDTH: &str = "width";
pub const HEIGHT: &str = "height";
pub const OUTPUT_SHAPE: &str = "output-shape";
pub const OUTPUT_LAYOUT: &str = "output-layout";
pub const CLASSES: &str = "classes";
pub const PROVIDER: &str = "provider";
/// Why 8-bit kernels can saturate on this CPU with this model; "" where they cannot.
pub const INT8_RISK: &str = "int8-risk";

// defectmodbussink's messages.
pub const REJECT_MESSAGE: &str = "defect-reject";
pub const REJECT_MISSED_MESSAGE: &str = "defect-reject-missed";
pub const LATE_US: &str = "late-us";
/// Why a reject was missed (a string; the `reason` structures of verdicts are another thing).
pub const MISSED_BECAUSE: &str = "reason";

// `DefectAnomalyMapMeta`: an anomaly model's map (also `width`, `height`, `x-min`,
// `y-min`, `x-max`, `y-max`).
pub const ANOMALY_MAP_META: &str = "DefectAnomalyMapMeta";
pub const SCORE_LOW: &str = "score-low";
pub const SCORE_HIGH: &str = "score-high";
pub const THRESHOLD: &str = "threshold";
/// `DefectAnomalyMapMeta`'s scores: `width * height` f32, little-endian, row-major (a `GBytes`).
pub const ANOMALY_SCORES: &str = "scores";

// Drift (`defect-drift` message and downstream event, `drift-feature` entries).
pub const DRIFT: &str = "defect-drift";
pub const DRIFT_FEATURE: &str = "drift-feature";
pub const ACTIVE: &str = "active";
pub const EPISODE: &str = "episode";
pub const WINDOW_FRAMES: &str = "window-frames";
pub const FEATURES: &str = "features";
pub const FEATURE_NAME: &str = "feature-name";
pub const SCORE: &str = "score";
pub const MOVED: &str = "moved";
pub const BASELINE: &str = "baseline";
pub const CURRENT: &str = "current";

// A challenger model (`defectdetect challenger-model`): the `defect-challenger-frame` downstream
// event (one per frame offered to it), the `defect-challenger` message at end of stream and
// the `challenger-stats` property, with `agreement` entries.
pub const CHALLENGER_FRAME: &str = "defect-challenger-frame";
pub const CHALLENGER_SUMMARY: &str = "defect-challenger";
pub const CHALLENGER_SKIPPED: &str = "challenger-skipped";
pub const PRODUCTION_VERDICT: &str = "production-verdict";
pub const PRODUCTION_MODEL_ID: &str = "production-model-id";
pub const JUDGED_FRAMES: &str = "judged-frames";
pub const AGREEMENT: &str = "agreement";
/// An `agreement` entry's level: `class` or `verdict`; its `label` names the class or verdict.
pub const AGREEMENT_LEVEL: &str = "level";
pub const FOUND_BY_BOTH: &str = "found-by-both";
pub const ONLY_PRODUCTION: &str = "only-production";
pub const ONLY_CHALLENGER: &str = "only-challenger";

// A segmentation mask on an ROI (`defect-mask`: `x`, `y`, `width`, `height`, `counts`) and a
// detection's sizes (`defect-size`).
pub const MASK: &str = "defect-mask";
pub const MASK_X: &str = "x";
pub const MASK_Y: &str = "y";
/// COCO compressed run-length encoding of the mask's window (column-major).
pub const MASK_COUNTS: &str = "counts";
pub const SIZE: &str = "defect-size";
pub const AREA_PX: &str = "area-px";
pub const LENGTH_PX: &str = "length-px";
pub const AREA_MM2: &str = "area-mm2";
pub const LENGTH_MM: &str = "length-mm";
