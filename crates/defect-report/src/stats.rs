// SPDX-License-Identifier: MIT OR Apache-2.0
//! What a report counts, per hour of (local) time: bounded by hours x classes, never by the
//! number of records. Two [`Stats`] of disjoint record sets merge into the stats of both.

use std::collections::{BTreeMap, HashMap};

use crate::records::{Line, VERDICTS, verdict_index};
use crate::time::parse_rfc3339_ms;

/// Log-spaced latency histogram: 40 bins a decade from 0.01 ms to 100 s (quantiles within
/// about 6 % of the exact figure; bounded memory whatever the number of frames).
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyHistogram {
    bins: Vec<u64>,
}

const BINS_PER_DECADE: f64 = 40.0;
const LOWEST_MS: f64 = 0.01;
const DECADES: usize = 7;

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            bins: vec![0; DECADES * BINS_PER_DECADE as usize + 2],
        }
    }
}

impl LatencyHistogram {
    pub fn add(&mut self, ms: f64) {
        let last = self.bins.len() - 1;
        let bin = if !ms.is_finite() || ms <= LOWEST_MS {
            if ms.is_nan() {
                return;
            }
            if ms == f64::INFINITY { last } else { 0 }
        } else {
            (((ms / LOWEST_MS).log10() * BINS_PER_DECADE).floor() as usize + 1).min(last)
        };
        self.bins[bin] += 1;
    }

    pub fn count(&self) -> u64 {
        self.bins.iter().sum()
    }

    /// The q-quantile (0..1), as the geometric centre of its bin; None when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
        let mut seen = 0;
        for (i, c) in self.bins.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(match i {
                    0 => LOWEST_MS,
                    i => LOWEST_MS * 10f64.powf((i as f64 - 0.5) / BINS_PER_DECADE),
                });
            }
        }
        None
    }

    pub fn merge(&mut self, other: &Self) {
        for (a, b) in self.bins.iter_mut().zip(&other.bins) {
            *a += b;
        }
    }
}

/// A class in one hour.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClassHour {
    pub detections: u64,
    pub confidence_sum: f64,
}

/// One hour of records.
#[derive(Debug, Clone, Default)]
pub struct Hour {
    /// Frames by verdict (index as [`VERDICTS`]).
    pub frames: [u64; 4],
    /// Frames the model did not judge (`inspected: false`).
    pub uninspected: u64,
    pub parts: [u64; 4],
    pub classes: HashMap<String, ClassHour>,
    pub latency_total: LatencyHistogram,
    pub latency_inference: LatencyHistogram,
}

impl Hour {
    pub fn merge(&mut self, other: &Hour) {
        for i in 0..4 {
            self.frames[i] += other.frames[i];
            self.parts[i] += other.parts[i];
        }
        self.uninspected += other.uninspected;
        for (name, c) in &other.classes {
            let mine = self.classes.entry(name.clone()).or_default();
            mine.detections += c.detections;
            mine.confidence_sum += c.confidence_sum;
        }
        self.latency_total.merge(&other.latency_total);
        self.latency_inference.merge(&other.latency_inference);
    }

    pub fn frames_total(&self) -> u64 {
        self.frames.iter().sum()
    }
}

/// A model seen in the records: when first and last, on how many frames.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpan {
    pub version: String,
    pub first_ms: i64,
    pub last_ms: i64,
    pub frames: u64,
}

/// A drift episode of one source.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Episode {
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    /// The features that moved, with the highest score seen.
    pub features: BTreeMap<String, f64>,
}

/// A line that could not be read.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub file: usize,
    pub line: u64,
    pub message: String,
}

/// Everything a report is made of.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Offset added to UTC for hours, days and shifts, in seconds.
    pub offset_s: i64,
    pub hours: BTreeMap<i64, Hour>,
    pub models: HashMap<String, ModelSpan>,
    pub episodes: BTreeMap<(String, u64), Episode>,
    pub sources: BTreeMap<String, [u64; 4]>,
    pub records: u64,
    pub skipped_types: u64,
    pub malformed: u64,
    /// The first few malformed lines (at most [`MAX_PROBLEMS`]).
    pub problems: Vec<Problem>,
}

pub const MAX_PROBLEMS: usize = 20;

impl Stats {
    pub fn new(offset_s: i64) -> Self {
        Self {
            offset_s,
            ..Self::default()
        }
    }

    fn problem(&mut self, file: usize, line: u64, message: String) {
        self.malformed += 1;
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(Problem {
                file,
                line,
                message,
            });
        }
    }

    /// Counts one NDJSON line (blank lines are skipped).
    pub fn add_line(&mut self, file: usize, line_no: u64, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let record: Line = match serde_json::from_slice(line) {
            Ok(record) => record,
            Err(error) => return self.problem(file, line_no, error.to_string()),
        };
        let Some(utc_ms) = record.utc.as_deref().and_then(parse_rfc3339_ms) else {
            return self.problem(file, line_no, "no RFC 3339 `utc` time".into());
        };
        self.records += 1;
        let local_ms = utc_ms + self.offset_s * 1000;
        let hour_no = local_ms.div_euclid(3_600_000);
        let source = record.source_id.as_deref().unwrap_or("").to_owned();
        match record.kind.as_ref() {
            "frame" => {
                let v = verdict_index(record.verdict.as_deref());
                let hour = self.hours.entry(hour_no).or_default();
                hour.frames[v] += 1;
                if record.inspected == Some(false) {
                    hour.uninspected += 1;
                }
                for d in &record.detections {
                    // Detections the policy ignored (outside the region, masked, too small)
                    // are not defects of the part; counted are those it judged.
                    if matches!(
                        d.decision.as_deref(),
                        Some("outside-region" | "masked" | "too-small")
                    ) {
                        continue;
                    }
                    let c = match hour.classes.get_mut(d.class_name.as_ref()) {
                        Some(c) => c,
                        None => hour.classes.entry(d.class_name.to_string()).or_default(),
                    };
                    c.detections += 1;
                    c.confidence_sum += d.confidence;
                }
                if let Some(latency) = record.latency_ms {
                    hour.latency_total.add(latency.total);
                    hour.latency_inference.add(latency.inference);
                }
                self.sources.entry(source).or_default()[v] += 1;
                if let Some(model) = &record.model {
                    let span = match self.models.get_mut(model.id.as_ref()) {
                        Some(span) => span,
                        None => self
                            .models
                            .entry(model.id.to_string())
                            .or_insert(ModelSpan {
                                version: model.version.as_deref().unwrap_or("").to_owned(),
                                first_ms: utc_ms,
                                last_ms: utc_ms,
                                frames: 0,
                            }),
                    };
                    span.first_ms = span.first_ms.min(utc_ms);
                    span.last_ms = span.last_ms.max(utc_ms);
                    span.frames += 1;
                }
            }
            "part" => {
                let v = verdict_index(record.verdict.as_deref());
                self.hours.entry(hour_no).or_default().parts[v] += 1;
            }
            "drift" => {
                let episode = record.episode.unwrap_or(0);
                let e = self.episodes.entry((source, episode)).or_default();
                if record.active == Some(true) {
                    e.start_ms = Some(e.start_ms.map_or(utc_ms, |s| s.min(utc_ms)));
                    for f in record.features.iter().filter(|f| f.moved) {
                        let best = e.features.entry(f.name.to_string()).or_insert(f.score);
                        *best = best.max(f.score);
                    }
                } else {
                    e.end_ms = Some(e.end_ms.map_or(utc_ms, |s| s.max(utc_ms)));
                }
            }
            _ => self.skipped_types += 1,
        }
    }

    /// Adds the counts of `other` (records disjoint from this one's).
    pub fn merge(&mut self, other: Stats) {
        for (h, hour) in &other.hours {
            self.hours.entry(*h).or_default().merge(hour);
        }
        for (id, span) in other.models {
            match self.models.get_mut(&id) {
                Some(mine) => {
                    mine.first_ms = mine.first_ms.min(span.first_ms);
                    mine.last_ms = mine.last_ms.max(span.last_ms);
                    mine.frames += span.frames;
                }
                None => {
                    self.models.insert(id, span);
                }
            }
        }
        for (key, e) in other.episodes {
            let mine = self.episodes.entry(key).or_default();
            mine.start_ms = match (mine.start_ms, e.start_ms) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            mine.end_ms = match (mine.end_ms, e.end_ms) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            for (name, score) in e.features {
                let best = mine.features.entry(name).or_insert(score);
                *best = best.max(score);
            }
        }
        for (source, counts) in other.sources {
            let mine = self.sources.entry(source).or_default();
            for i in 0..4 {
                mine[i] += counts[i];
            }
        }
        self.records += other.records;
        self.skipped_types += other.skipped_types;
        self.malformed += other.malformed;
        for p in other.problems {
            if self.problems.len() < MAX_PROBLEMS {
                self.problems.push(p);
            }
        }
        self.problems.sort_by_key(|p| (p.file, p.line));
    }

    /// Frames by verdict over every hour.
    pub fn frame_totals(&self) -> [u64; 4] {
        let mut t = [0; 4];
        for hour in self.hours.values() {
            for (a, b) in t.iter_mut().zip(hour.frames) {
                *a += b;
            }
        }
        t
    }

    pub fn part_totals(&self) -> [u64; 4] {
        let mut t = [0; 4];
        for hour in self.hours.values() {
            for (a, b) in t.iter_mut().zip(hour.parts) {
                *a += b;
            }
        }
        t
    }

    /// Classes by detections, most first.
    pub fn classes_by_count(&self) -> Vec<(String, u64)> {
        let mut totals: HashMap<&str, u64> = HashMap::new();
        for hour in self.hours.values() {
            for (name, c) in &hour.classes {
                *totals.entry(name).or_default() += c.detections;
            }
        }
        let mut v: Vec<(String, u64)> =
            totals.into_iter().map(|(k, n)| (k.to_owned(), n)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }
}

/// The name of verdict index `i`.
pub fn verdict_name(i: usize) -> &'static str {
    VERDICTS[i]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(utc: &str, verdict: &str, classes: &[(&str, f64)], total_ms: f64) -> String {
        let detections: Vec<String> = classes
            .iter()
            .map(|(c, p)| format!(r#"{{"class_name":"{c}","confidence":{p},"decision":"fail"}}"#))
            .collect();
        format!(
            r#"{{"type":"frame","utc":"{utc}","source_id":"cam","verdict":"{verdict}","inspected":true,"detections":[{}],"model":{{"id":"m:1.0:abc","version":"1.0"}},"latency_ms":{{"inference":5.0,"total":{total_ms}}},"other":[1,2,{{"x":null}}]}}"#,
            detections.join(",")
        )
    }

    #[test]
    fn counts_frames_parts_classes_and_latency_by_hour() {
        let mut s = Stats::new(0);
        s.add_line(
            0,
            1,
            frame("2026-12-06T10:00:01.000Z", "PASS", &[], 10.0).as_bytes(),
        );
        s.add_line(
            0,
            2,
            frame(
                "2026-12-06T10:59:59.000Z",
                "FAIL",
                &[("scratch", 0.8), ("dent", 0.5)],
                20.0,
            )
            .as_bytes(),
        );
        s.add_line(
            0,
            3,
            frame(
                "2026-12-06T11:00:00.000Z",
                "FAIL",
                &[("scratch", 0.6)],
                30.0,
            )
            .as_bytes(),
        );
        s.add_line(
            0,
            4,
            br#"{"type":"part","utc":"2026-12-06T11:00:00.500Z","verdict":"FAIL","part_id":"p1"}"#,
        );
        s.add_line(0, 5, b"{not json");
        s.add_line(0, 6, b"   ");
        s.add_line(0, 7, br#"{"type":"frame","verdict":"PASS"}"#);
        assert_eq!(s.records, 4);
        assert_eq!(s.malformed, 2);
        assert_eq!(s.problems[0].line, 5);
        assert_eq!(s.hours.len(), 2);
        assert_eq!(s.frame_totals(), [1, 2, 0, 0]);
        assert_eq!(s.part_totals(), [0, 1, 0, 0]);
        assert_eq!(
            s.classes_by_count(),
            vec![("scratch".into(), 2), ("dent".into(), 1)]
        );
        let ten = &s.hours[&(s.hours.keys().next().copied().unwrap())];
        assert!((ten.classes["scratch"].confidence_sum - 0.8).abs() < 1e-12);
        assert_eq!(s.models["m:1.0:abc"].frames, 3);
    }

    #[test]
    fn merging_two_halves_equals_one_pass() {
        let lines: Vec<String> = (0..200)
            .map(|i| {
                let v = ["PASS", "FAIL", "REVIEW", "UNKNOWN"][i % 4];
                frame(
                    &format!("2026-12-06T{:02}:{:02}:00.000Z", i / 60, i % 60),
                    v,
                    &[("scratch", 0.5)],
                    i as f64,
                )
            })
            .collect();
        let mut whole = Stats::new(3600);
        let (mut a, mut b) = (Stats::new(3600), Stats::new(3600));
        for (i, l) in lines.iter().enumerate() {
            whole.add_line(0, i as u64, l.as_bytes());
            if i % 3 == 0 { &mut a } else { &mut b }.add_line(0, i as u64, l.as_bytes());
        }
        a.merge(b);
        assert_eq!(a.frame_totals(), whole.frame_totals());
        assert_eq!(
            a.hours.keys().collect::<Vec<_>>(),
            whole.hours.keys().collect::<Vec<_>>()
        );
        for (h, hour) in &whole.hours {
            assert_eq!(a.hours[h].latency_total, hour.latency_total);
            assert_eq!(
                a.hours[h].classes["scratch"].detections,
                hour.classes["scratch"].detections
            );
        }
    }

    #[test]
    fn latency_quantiles_are_within_the_bin_width() {
        let mut h = LatencyHistogram::default();
        for i in 1..=1000 {
            h.add(i as f64 / 10.0);
        }
        let p50 = h.quantile(0.5).unwrap();
        let p99 = h.quantile(0.99).unwrap();
        assert!((p50 / 50.0 - 1.0).abs() < 0.06, "{p50}");
        assert!((p99 / 99.0 - 1.0).abs() < 0.06, "{p99}");
        h.add(f64::NAN);
        assert_eq!(h.count(), 1000);
        assert_eq!(LatencyHistogram::default().quantile(0.5), None);
    }

    #[test]
    fn drift_records_make_episodes() {
        let mut s = Stats::new(0);
        s.add_line(0, 1, br#"{"type":"drift","utc":"2026-12-06T10:00:00.000Z","source_id":"cam","active":true,"episode":1,"features":[{"name":"brightness","score":0.9,"moved":true},{"name":"focus","score":0.1,"moved":false}]}"#);
        s.add_line(0, 2, br#"{"type":"drift","utc":"2026-12-06T10:05:00.000Z","source_id":"cam","active":false,"episode":1,"features":[]}"#);
        let e = &s.episodes[&("cam".to_owned(), 1)];
        assert_eq!(e.end_ms.unwrap() - e.start_ms.unwrap(), 300_000);
        assert_eq!(e.features.keys().collect::<Vec<_>>(), vec!["brightness"]);
    }
}
