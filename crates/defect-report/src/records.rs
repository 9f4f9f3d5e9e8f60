// SPDX-License-Identifier: MIT OR Apache-2.0
//! The fields of `defectmetaconvert`'s NDJSON records (`docs/verdict.schema.json`) that a trend
//! report reads; everything else on a line is skipped without being stored.

use std::borrow::Cow;

use serde::Deserialize;

/// One line: a `frame`, `part` or `drift` record (other types are counted and skipped).
#[derive(Debug, Deserialize)]
pub struct Line<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    #[serde(borrow, default)]
    pub utc: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub source_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub verdict: Option<Cow<'a, str>>,
    #[serde(default)]
    pub shadow: bool,
    #[serde(default)]
    pub inspected: Option<bool>,
    #[serde(borrow, default)]
    pub detections: Vec<Detection<'a>>,
    #[serde(borrow, default)]
    pub model: Option<Model<'a>>,
    #[serde(borrow, default)]
    pub model_id: Option<Cow<'a, str>>,
    #[serde(default)]
    pub latency_ms: Option<Latency>,
    // drift records
    #[serde(default)]
    pub active: Option<bool>,
    #[serde(default)]
    pub episode: Option<u64>,
    #[serde(borrow, default)]
    pub features: Vec<DriftFeature<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct Detection<'a> {
    #[serde(borrow)]
    pub class_name: Cow<'a, str>,
    pub confidence: f64,
    #[serde(borrow, default)]
    pub decision: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
pub struct Model<'a> {
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    #[serde(borrow, default)]
    pub version: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize, Clone, Copy)]
pub struct Latency {
    pub inference: f64,
    pub total: f64,
}

#[derive(Debug, Deserialize)]
pub struct DriftFeature<'a> {
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    #[serde(default)]
    pub score: f64,
    #[serde(default)]
    pub moved: bool,
}

/// The verdicts in report order.
pub const VERDICTS: [&str; 4] = ["PASS", "FAIL", "REVIEW", "UNKNOWN"];

/// The index of a verdict in [`VERDICTS`]; a frame without a verdict counts as UNKNOWN (the
/// model did not judge it).
pub fn verdict_index(verdict: Option<&str>) -> usize {
    match verdict {
        Some("PASS") => 0,
        Some("FAIL") => 1,
        Some("REVIEW") => 2,
        _ => 3,
    }
}
