// SPDX-License-Identifier: MIT OR Apache-2.0
//! The inspection metrics of one process, free of GStreamer: metric families in one
//! process-wide `prometheus-client` registry ([`registry`]), and a [`Station`] for each
//! source (`defectmetricssink`'s `source-id`), which records what its element observes
//! (frames, detections, parts, drift reports) into the series labelled with its source and
//! removes them when it is dropped.
//!
//! Names follow Prometheus conventions: base units in the name (`_seconds`), `_total` for
//! counters (appended by the encoder), `_info` for the model's identity. Updates are atomic
//! counters and gauges and per-series histogram locks: a scrape reads them without holding
//! anything the streaming thread waits on for longer than one copy of a histogram.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry};

use crate::meta::{ChallengerFrame, DriftReport, Verdict};

/// A series' labels, `source` first.
pub type Labels = Vec<(&'static str, String)>;

type FloatGauge = Gauge<f64, AtomicU64>;
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// The verdicts, in the order of the per-verdict counters.
const VERDICTS: [Verdict; 4] = [
    Verdict::Pass,
    Verdict::Fail,
    Verdict::Review,
    Verdict::Unknown,
];

/// Upper bounds of the time histograms, in seconds (1-2-5 steps from 1 ms to 10 s).
pub const TIME_BUCKETS: [f64; 13] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];

/// Image statistics: the drift features whose `current` value is exposed as a gauge of its
/// own, and the gauge's name.
pub const IMAGE_STATISTICS: [(&str, &str); 3] = [
    ("brightness", "defect_image_brightness"),
    ("contrast", "defect_image_contrast"),
    ("focus", "defect_image_focus"),
];

fn time_histogram() -> Histogram {
    Histogram::new(TIME_BUCKETS)
}

fn confidence_histogram() -> Histogram {
    // 0.05 steps: fine enough for p50/p90 of a class's confidence.
    Histogram::new((1..=20).map(|i| f64::from(i) * 0.05))
}

/// Registers `metric` (a family: the registry keeps a handle to the same series) and returns
/// it.
fn family<M: Metric + Clone>(
    r: &mut Registry,
    name: &str,
    help: impl Into<String>,
    metric: M,
) -> M {
    r.register(name, help, metric.clone());
    metric
}

/// Every metric family of the process.
struct Families {
    frames: Family<Labels, Counter>,
    frames_without_verdict: Family<Labels, Counter>,
    uninspected: Family<Labels, Counter>,
    parts: Family<Labels, Counter>,
    detections: Family<Labels, Counter>,
    confidence: HistogramFamily,
    inference: HistogramFamily,
    latency: HistogramFamily,
    anomaly_score: Family<Labels, FloatGauge>,
    model_info: Family<Labels, Gauge>,
    model_swaps: Family<Labels, Counter>,
    last_frame: Family<Labels, FloatGauge>,
    image: [Family<Labels, FloatGauge>; 3],
    drift_score: Family<Labels, FloatGauge>,
    drift_threshold: Family<Labels, FloatGauge>,
    drift_moved: Family<Labels, Gauge>,
    drift_active: Family<Labels, Gauge>,
    drift_episodes: Family<Labels, Counter>,
    drift_reports: Family<Labels, Counter>,
    challenger_frames: Family<Labels, Counter>,
    challenger_agreement: Family<Labels, Counter>,
}

struct Process {
    registry: Registry,
    families: Families,
    /// The sources in use, each with the time of its last frame (see [`Clock`]).
    sources: Arc<Mutex<HashMap<String, Arc<AtomicU64>>>>,
}

static PROCESS: LazyLock<Process> = LazyLock::new(|| {
    let mut registry = Registry::default();
    let r = &mut registry;
    let histogram =
        |make: fn() -> Histogram| -> HistogramFamily { Family::new_with_constructor(make) };
    let families = Families {
        frames: family(
            r,
            "defect_frames",
            "Frames seen, by verdict (PASS, FAIL, REVIEW, UNKNOWN: the model has not judged the frame)",
            Family::default(),
        ),
        frames_without_verdict: family(
            r,
            "defect_frames_without_verdict",
            "Frames that came without a verdict (no defectdetect upstream, or a malformed verdict)",
            Family::default(),
        ),
        uninspected: family(
            r,
            "defect_frames_uninspected",
            "Frames the model did not run on (interval, async-inference skipped them): their verdict is carried from an earlier frame or UNKNOWN",
            Family::default(),
        ),
        parts: family(
            r,
            "defect_parts",
            "Finished parts, by verdict",
            Family::default(),
        ),
        detections: family(
            r,
            "defect_detections",
            "Detections on the frames the model ran on, by class, severity and decision (the classification's for a region a second stage judged)",
            Family::default(),
        ),
        confidence: family(
            r,
            "defect_detection_confidence",
            "Confidence of the detections on the frames the model ran on, by class",
            histogram(confidence_histogram),
        ),
        inference: family(
            r,
            "defect_inference_duration_seconds",
            "Model time of the frames the model ran on (inference-ms)",
            histogram(time_histogram),
        ),
        latency: family(
            r,
            "defect_verdict_latency_seconds",
            "Time from a frame entering defectdetect to its verdict (total-ms), every frame",
            histogram(time_histogram),
        ),
        anomaly_score: family(
            r,
            "defect_anomaly_score",
            "An anomaly model's image score of the last frame it ran on (the model's units)",
            Family::default(),
        ),
        model_info: family(
            r,
            "defect_model_info",
            "The model in use (1): id, name, version and task",
            Family::default(),
        ),
        model_swaps: family(
            r,
            "defect_model_swaps",
            "Changes of the model in use after the first one",
            Family::default(),
        ),
        last_frame: family(
            r,
            "defect_last_frame_timestamp_seconds",
            "Unix time of the last frame seen",
            Family::default(),
        ),
        image: IMAGE_STATISTICS.map(|(feature, name)| {
            let help = format!(
                "Image {feature} of the last drift window (the drift feature's current value)"
            );
            family(r, name, help, Family::default())
        }),
        drift_score: family(
            r,
            "defect_drift_score",
            "How far the last drift window moved from the baseline, by feature (population stability index)",
            Family::default(),
        ),
        drift_threshold: family(
            r,
            "defect_drift_threshold",
            "The drift score at which a feature counts as moved",
            Family::default(),
        ),
        drift_moved: family(
            r,
            "defect_drift_feature_moved",
            "Whether the feature moved in the last drift window (1) or not (0)",
            Family::default(),
        ),
        drift_active: family(
            r,
            "defect_drift_active",
            "Whether a drift episode is on (1) or not (0)",
            Family::default(),
        ),
        drift_episodes: family(
            r,
            "defect_drift_episodes",
            "Drift episodes started",
            Family::default(),
        ),
        drift_reports: family(
            r,
            "defect_drift_reports",
            "Drift windows reported (defect-drift events)",
            Family::default(),
        ),
        challenger_frames: family(
            r,
            "defect_challenger_frames",
            "Frames offered to the challenger model, by outcome (judged, or skipped: it was still busy)",
            Family::default(),
        ),
        challenger_agreement: family(
            r,
            "defect_challenger_agreement",
            "The challenger's agreement with the production model: per class (level=class, class) the detections found by both, only by production, only by the challenger; per verdict (level=verdict, verdict) the frames both gave that verdict, only production, only the challenger",
            Family::default(),
        ),
    };
    let sources: Arc<Mutex<HashMap<String, Arc<AtomicU64>>>> = Arc::default();
    r.register_collector(Box::new(SinceLastFrame(sources.clone())));
    r.register_collector(Box::new(super::sinks::Collected));
    Process {
        registry,
        families,
        sources,
    }
});

/// The process-wide registry every endpoint serves.
pub fn registry() -> &'static Registry {
    &PROCESS.registry
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Milliseconds since the Unix epoch, now.
fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `defect_seconds_since_last_frame`, computed at each scrape from the sources' last frame.
#[derive(Debug)]
struct SinceLastFrame(Arc<Mutex<HashMap<String, Arc<AtomicU64>>>>);

impl Collector for SinceLastFrame {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let now = unix_ms();
        let sources: Vec<(String, u64)> = lock(&self.0)
            .iter()
            .map(|(source, last)| (source.clone(), last.load(Ordering::Relaxed)))
            .filter(|(_, last)| *last > 0)
            .collect();
        if sources.is_empty() {
            return Ok(());
        }
        let mut metric = encoder.encode_descriptor(
            "defect_seconds_since_last_frame",
            "Seconds since the last frame of the source, at the scrape",
            None,
            MetricType::Gauge,
        )?;
        for (source, last) in sources {
            let labels: Labels = vec![("source", source)];
            let seconds = now.saturating_sub(last) as f64 / 1000.0;
            ConstGauge::new(seconds).encode(metric.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// The model a frame's verdict came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelSeen<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub version: &'a str,
    pub task: &'a str,
}

/// A detection of a frame.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectionSeen {
    pub class: String,
    /// `critical` ... `cosmetic`; None when no policy judged it.
    pub severity: Option<&'static str>,
    /// `fail`, `review`, `accept`, ...; None when no policy judged it.
    pub decision: Option<&'static str>,
    pub confidence: f64,
}

/// What a frame's metas say.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameSeen<'a> {
    /// None when the frame has no (readable) verdict.
    pub verdict: Option<Verdict>,
    /// The model ran on this frame.
    pub inspected: bool,
    /// The detections are an earlier frame's (`interval`, `async-inference`).
    pub carried: bool,
    pub model: Option<ModelSeen<'a>>,
    pub inference_seconds: Option<f64>,
    pub latency_seconds: Option<f64>,
    pub anomaly_score: Option<f64>,
    pub detections: Vec<DetectionSeen>,
}

/// The source id is used by another station of this process.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("source-id {0:?} is already used by another defectmetricssink of this process")]
pub struct SourceTaken(pub String);

/// The series of one source. Made by [`Station::new`]; dropping it removes its series from
/// the registry and frees the source id.
pub struct Station {
    source: String,
    last_frame_ms: Arc<AtomicU64>,
    frames: [Counter; 4],
    parts: [Counter; 4],
    frames_without_verdict: Counter,
    uninspected: Counter,
    inference: Histogram,
    latency: Histogram,
    last_frame: FloatGauge,
    model_swaps: Counter,
    drift_active: Gauge,
    drift_episodes: Counter,
    drift_reports: Counter,
    /// The labels of the model in use.
    model: Option<Labels>,
    /// Detections by (class, severity, decision).
    detections: HashMap<(String, Option<&'static str>, Option<&'static str>), Counter>,
    confidence: HashMap<String, Histogram>,
    anomaly_score: Option<FloatGauge>,
    /// The drift features seen (for removal).
    features: HashSet<String>,
    image: [Option<FloatGauge>; 3],
    episode: u64,
    /// The challenger's series (labels beyond `source`), for removal.
    challenger: HashSet<Vec<(&'static str, String)>>,
}

impl Station {
    /// A station for `source`; an error when another station of the process has it.
    pub fn new(source: &str) -> Result<Station, SourceTaken> {
        let process = &*PROCESS;
        let last_frame_ms = Arc::new(AtomicU64::new(0));
        {
            let mut sources = lock(&process.sources);
            if sources.contains_key(source) {
                return Err(SourceTaken(source.to_string()));
            }
            sources.insert(source.to_string(), last_frame_ms.clone());
        }
        let f = &process.families;
        let of = |family: &Family<Labels, Counter>, verdict: Verdict| {
            family.get_or_create_owned(&vec![
                ("source", source.to_string()),
                ("verdict", verdict.as_str().to_string()),
            ])
        };
        let own = vec![("source", source.to_string())];
        Ok(Station {
            source: source.to_string(),
            last_frame_ms,
            frames: VERDICTS.map(|v| of(&f.frames, v)),
            parts: VERDICTS.map(|v| of(&f.parts, v)),
            frames_without_verdict: f.frames_without_verdict.get_or_create_owned(&own),
            uninspected: f.uninspected.get_or_create_owned(&own),
            inference: f.inference.get_or_create_owned(&own),
            latency: f.latency.get_or_create_owned(&own),
            last_frame: f.last_frame.get_or_create_owned(&own),
            model_swaps: f.model_swaps.get_or_create_owned(&own),
            drift_active: f.drift_active.get_or_create_owned(&own),
            drift_episodes: f.drift_episodes.get_or_create_owned(&own),
            drift_reports: f.drift_reports.get_or_create_owned(&own),
            model: None,
            detections: HashMap::new(),
            confidence: HashMap::new(),
            anomaly_score: None,
            features: HashSet::new(),
            image: Default::default(),
            episode: 0,
            challenger: HashSet::new(),
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    fn labels(&self, more: &[(&'static str, &str)]) -> Labels {
        let mut labels = vec![("source", self.source.clone())];
        labels.extend(more.iter().map(|(k, v)| (*k, v.to_string())));
        labels
    }

    /// Records a frame.
    pub fn frame(&mut self, frame: &FrameSeen) {
        let now = unix_ms();
        self.last_frame_ms.store(now.max(1), Ordering::Relaxed);
        self.last_frame.set(now as f64 / 1000.0);
        let Some(verdict) = frame.verdict else {
            self.frames_without_verdict.inc();
            return;
        };
        let index = VERDICTS.iter().position(|v| *v == verdict).unwrap_or(3);
        self.frames[index].inc();
        if !frame.inspected {
            self.uninspected.inc();
        }
        if let Some(model) = frame.model {
            self.model(model);
        }
        if let Some(seconds) = frame.latency_seconds {
            self.latency.observe(seconds);
        }
        if !frame.inspected || frame.carried {
            return;
        }
        if let Some(seconds) = frame.inference_seconds {
            self.inference.observe(seconds);
        }
        if let Some(score) = frame.anomaly_score {
            let labels = self.labels(&[]);
            self.anomaly_score
                .get_or_insert_with(|| PROCESS.families.anomaly_score.get_or_create_owned(&labels))
                .set(score);
        }
        for d in &frame.detections {
            let key = (d.class.clone(), d.severity, d.decision);
            if !self.detections.contains_key(&key) {
                let labels = self.labels(&[
                    ("class", d.class.as_str()),
                    ("severity", d.severity.unwrap_or("none")),
                    ("decision", d.decision.unwrap_or("none")),
                ]);
                let counter = PROCESS.families.detections.get_or_create_owned(&labels);
                self.detections.insert(key.clone(), counter);
            }
            self.detections[&key].inc();
            if !self.confidence.contains_key(&d.class) {
                let labels = self.labels(&[("class", d.class.as_str())]);
                let histogram = PROCESS.families.confidence.get_or_create_owned(&labels);
                self.confidence.insert(d.class.clone(), histogram);
            }
            self.confidence[&d.class].observe(d.confidence);
        }
    }

    /// The model in use: its info series, and a swap when it changed.
    fn model(&mut self, model: ModelSeen) {
        let labels = self.labels(&[
            ("model_id", model.id),
            ("model_name", model.name),
            ("model_version", model.version),
            ("task", model.task),
        ]);
        if self.model.as_ref() == Some(&labels) {
            return;
        }
        let info = &PROCESS.families.model_info;
        if let Some(old) = self.model.take() {
            info.remove(&old);
            self.model_swaps.inc();
        }
        info.get_or_create(&labels).set(1);
        self.model = Some(labels);
    }

    /// Records a finished part.
    pub fn part(&mut self, verdict: Verdict) {
        let index = VERDICTS.iter().position(|v| *v == verdict).unwrap_or(3);
        self.parts[index].inc();
    }

    /// Records a drift window: each feature's score, threshold and whether it moved, the
    /// image statistics (the `current` values of `brightness`, `contrast`, `focus`), whether
    /// an episode is on and the episodes started.
    pub fn drift(&mut self, report: &DriftReport) {
        let f = &PROCESS.families;
        self.drift_reports.inc();
        self.drift_active.set(i64::from(report.active));
        if report.episode > self.episode {
            self.drift_episodes.inc_by(report.episode - self.episode);
            self.episode = report.episode;
        }
        for feature in &report.features {
            let labels = self.labels(&[("feature", feature.name.as_str())]);
            f.drift_score.get_or_create(&labels).set(feature.score);
            f.drift_threshold
                .get_or_create(&labels)
                .set(feature.threshold);
            f.drift_moved
                .get_or_create(&labels)
                .set(i64::from(feature.moved));
            self.features.insert(feature.name.clone());
            if let Some(i) = IMAGE_STATISTICS
                .iter()
                .position(|(name, _)| *name == feature.name)
            {
                let own = self.labels(&[]);
                self.image[i]
                    .get_or_insert_with(|| f.image[i].get_or_create_owned(&own))
                    .set(feature.current);
            }
        }
    }
}

impl Station {
    /// Records a frame offered to the challenger: judged or skipped, and its agreement with
    /// production (per class and per verdict).
    pub fn challenger(&mut self, frame: &ChallengerFrame) {
        let f = &PROCESS.families;
        let outcome = if frame.skipped { "skipped" } else { "judged" };
        let mut add =
            |family: &Family<Labels, Counter>, more: Vec<(&'static str, String)>, n: u64| {
                let labels = self
                    .labels(&[])
                    .into_iter()
                    .chain(more.iter().cloned())
                    .collect();
                family.get_or_create(&labels).inc_by(n);
                self.challenger.insert(more);
            };
        add(&f.challenger_frames, vec![("outcome", outcome.into())], 1);
        for row in &frame.agreement {
            let name = if row.level == "class" {
                "class"
            } else {
                "verdict"
            };
            let counts = [row.both, row.only_production, row.only_challenger];
            for (outcome, n) in crate::inspect::agreement::OUTCOMES.iter().zip(counts) {
                let more = vec![
                    ("level", row.level.clone()),
                    (name, row.label.clone()),
                    ("outcome", outcome.to_string()),
                ];
                add(&f.challenger_agreement, more, n);
            }
        }
    }
}

impl Drop for Station {
    fn drop(&mut self) {
        let process = &*PROCESS;
        let f = &process.families;
        for more in &self.challenger {
            let labels: Labels = self
                .labels(&[])
                .into_iter()
                .chain(more.iter().cloned())
                .collect();
            f.challenger_frames.remove(&labels);
            f.challenger_agreement.remove(&labels);
        }
        let own = self.labels(&[]);
        for verdict in VERDICTS {
            let labels = self.labels(&[("verdict", verdict.as_str())]);
            f.frames.remove(&labels);
            f.parts.remove(&labels);
        }
        f.frames_without_verdict.remove(&own);
        f.uninspected.remove(&own);
        f.inference.remove(&own);
        f.latency.remove(&own);
        f.anomaly_score.remove(&own);
        f.last_frame.remove(&own);
        f.model_swaps.remove(&own);
        f.drift_active.remove(&own);
        f.drift_episodes.remove(&own);
        f.drift_reports.remove(&own);
        for image in &f.image {
            image.remove(&own);
        }
        if let Some(model) = self.model.take() {
            f.model_info.remove(&model);
        }
        for (class, severity, decision) in self.detections.keys() {
            f.detections.remove(&self.labels(&[
                ("class", class.as_str()),
                ("severity", severity.unwrap_or("none")),
                ("decision", decision.unwrap_or("none")),
            ]));
        }
        for class in self.confidence.keys() {
            f.confidence
                .remove(&self.labels(&[("class", class.as_str())]));
        }
        for feature in &self.features {
            let labels = self.labels(&[("feature", feature.as_str())]);
            f.drift_score.remove(&labels);
            f.drift_threshold.remove(&labels);
            f.drift_moved.remove(&labels);
        }
        lock(&process.sources).remove(&self.source);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::DriftFeature;

    fn text() -> String {
        super::super::exposition(None).1
    }

    /// The value of the sample line that starts with `series ` (name and labels).
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.parse().ok())
    }

    fn frame(verdict: Verdict, detections: Vec<DetectionSeen>) -> FrameSeen<'static> {
        FrameSeen {
            verdict: Some(verdict),
            inspected: true,
            carried: false,
            model: Some(ModelSeen {
                id: "m:1:abc",
                name: "m",
                version: "1",
                task: "detect",
            }),
            inference_seconds: Some(0.004),
            latency_seconds: Some(0.006),
            anomaly_score: None,
            detections,
        }
    }

    fn scratch(confidence: f64, decision: &'static str) -> DetectionSeen {
        DetectionSeen {
            class: "scratch".into(),
            severity: Some("major"),
            decision: Some(decision),
            confidence,
        }
    }

    #[test]
    fn frames_parts_and_detections_are_counted_per_source() {
        let mut a = Station::new("unit-a").unwrap();
        let mut b = Station::new("unit-b").unwrap();
        a.frame(&frame(Verdict::Pass, vec![]));
        a.frame(&frame(
            Verdict::Fail,
            vec![scratch(0.9, "fail"), scratch(0.42, "accept")],
        ));
        a.frame(&FrameSeen {
            inspected: false,
            carried: true,
            ..frame(Verdict::Fail, vec![scratch(0.9, "fail")])
        });
        a.frame(&FrameSeen {
            verdict: None,
            ..frame(Verdict::Pass, vec![])
        });
        a.part(Verdict::Fail);
        b.frame(&FrameSeen {
            inspected: false,
            ..frame(Verdict::Unknown, vec![])
        });
        let t = text();
        let v = |s: &str| value(&t, s);
        assert_eq!(
            v(r#"defect_frames_total{source="unit-a",verdict="PASS"}"#),
            Some(1.0)
        );
        assert_eq!(
            v(r#"defect_frames_total{source="unit-a",verdict="FAIL"}"#),
            Some(2.0)
        );
        assert_eq!(
            v(r#"defect_frames_total{source="unit-b",verdict="UNKNOWN"}"#),
            Some(1.0)
        );
        assert_eq!(
            v(r#"defect_frames_total{source="unit-b",verdict="PASS"}"#),
            Some(0.0)
        );
        assert_eq!(
            v(r#"defect_frames_without_verdict_total{source="unit-a"}"#),
            Some(1.0)
        );
        assert_eq!(
            v(r#"defect_frames_uninspected_total{source="unit-a"}"#),
            Some(1.0)
        );
        assert_eq!(
            v(r#"defect_frames_uninspected_total{source="unit-b"}"#),
            Some(1.0)
        );
        assert_eq!(
            v(r#"defect_parts_total{source="unit-a",verdict="FAIL"}"#),
            Some(1.0)
        );
        // The carried frame's detection is not counted again.
        assert_eq!(
            v(
                r#"defect_detections_total{source="unit-a",class="scratch",severity="major",decision="fail"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            v(r#"defect_detection_confidence_bucket{source="unit-a",class="scratch",le="0.45"}"#),
            Some(1.0)
        );
        assert_eq!(
            v(r#"defect_detection_confidence_count{source="unit-a",class="scratch"}"#),
            Some(2.0)
        );
        assert_eq!(
            v(r#"defect_inference_duration_seconds_count{source="unit-a"}"#),
            Some(2.0)
        );
        assert_eq!(
            v(r#"defect_verdict_latency_seconds_count{source="unit-a"}"#),
            Some(3.0)
        );
        assert_eq!(
            v(
                r#"defect_model_info{source="unit-a",model_id="m:1:abc",model_name="m",model_version="1",task="detect"}"#
            ),
            Some(1.0)
        );
        assert!(v(r#"defect_seconds_since_last_frame{source="unit-a"}"#).is_some_and(|s| s < 60.0));
        drop(b);
        let t = text();
        assert!(!t.contains(r#"source="unit-b""#), "{t}");
        assert!(t.contains(r#"source="unit-a""#));
    }

    #[test]
    fn a_source_id_is_used_once_at_a_time() {
        let station = Station::new("unit-once").unwrap();
        assert_eq!(
            Station::new("unit-once").err(),
            Some(SourceTaken("unit-once".into()))
        );
        drop(station);
        assert!(Station::new("unit-once").is_ok());
    }

    #[test]
    fn a_model_swap_replaces_the_info_series_and_is_counted() {
        let mut s = Station::new("unit-swap").unwrap();
        s.frame(&frame(Verdict::Pass, vec![]));
        s.frame(&frame(Verdict::Pass, vec![]));
        let mut second = frame(Verdict::Pass, vec![]);
        second.model = Some(ModelSeen {
            id: "m:2:def",
            name: "m",
            version: "2",
            task: "detect",
        });
        s.frame(&second);
        let t = text();
        assert_eq!(
            value(&t, r#"defect_model_swaps_total{source="unit-swap"}"#),
            Some(1.0)
        );
        assert!(!t.contains(r#"source="unit-swap",model_id="m:1:abc""#));
        assert!(t.contains(r#"source="unit-swap",model_id="m:2:def""#));
    }

    #[test]
    fn drift_reports_give_scores_image_statistics_and_episodes() {
        let mut s = Station::new("unit-drift").unwrap();
        let feature = |name: &str, score: f64, current: f64| DriftFeature {
            name: name.into(),
            score,
            threshold: 0.25,
            moved: score >= 0.25,
            baseline: 120.0,
            current,
        };
        let mut report = DriftReport {
            active: true,
            episode: 1,
            frame: 450,
            window_frames: 90,
            features: vec![
                feature("brightness", 0.7, 66.5),
                feature("contrast", 0.1, 31.0),
                feature("focus", 0.05, 812.0),
                feature("detections:scratch", 0.4, 3.0),
            ],
        };
        s.drift(&report);
        s.drift(&report);
        report.active = false;
        s.drift(&report);
        report.episode = 2;
        report.active = true;
        s.drift(&report);
        let t = text();
        let v = |x: &str| value(&t, x);
        assert_eq!(
            v(r#"defect_drift_score{source="unit-drift",feature="brightness"}"#),
            Some(0.7)
        );
        assert_eq!(
            v(r#"defect_drift_feature_moved{source="unit-drift",feature="detections:scratch"}"#),
            Some(1.0)
        );
        assert_eq!(
            v(r#"defect_drift_feature_moved{source="unit-drift",feature="focus"}"#),
            Some(0.0)
        );
        assert_eq!(
            v(r#"defect_drift_threshold{source="unit-drift",feature="focus"}"#),
            Some(0.25)
        );
        assert_eq!(
            v(r#"defect_image_brightness{source="unit-drift"}"#),
            Some(66.5)
        );
        assert_eq!(
            v(r#"defect_image_contrast{source="unit-drift"}"#),
            Some(31.0)
        );
        assert_eq!(v(r#"defect_image_focus{source="unit-drift"}"#), Some(812.0));
        assert_eq!(v(r#"defect_drift_active{source="unit-drift"}"#), Some(1.0));
        assert_eq!(
            v(r#"defect_drift_episodes_total{source="unit-drift"}"#),
            Some(2.0)
        );
        assert_eq!(
            v(r#"defect_drift_reports_total{source="unit-drift"}"#),
            Some(4.0)
        );
        drop(s);
        assert!(!text().contains("unit-drift"));
    }

    #[test]
    fn openmetrics_is_served_when_asked_for() {
        let _s = Station::new("unit-om").unwrap();
        let (content_type, body) =
            super::super::exposition(Some("application/openmetrics-text;version=1.0.0"));
        assert!(content_type.starts_with("application/openmetrics-text"));
        assert!(body.ends_with("# EOF\n"));
        let (content_type, body) = super::super::exposition(Some("text/plain"));
        assert!(content_type.starts_with("text/plain; version=0.0.4"));
        assert!(!body.contains("# EOF"));
    }

    #[test]
    fn challenger_frames_and_agreement_are_counted_and_removed_with_the_station() {
        let row = |level: &str, label: &str| crate::meta::AgreementRow {
            level: level.into(),
            label: label.into(),
            both: 2,
            only_production: 1,
            only_challenger: 0,
        };
        let judged = ChallengerFrame {
            frame: 3,
            pts: None,
            model_id: "b:1".into(),
            production_model_id: "a:1".into(),
            skipped: false,
            verdict: Verdict::Fail,
            production_verdict: Verdict::Fail,
            detections: Vec::new(),
            agreement: vec![row("class", "scratch"), row("verdict", "FAIL")],
        };
        let skipped = ChallengerFrame {
            skipped: true,
            agreement: Vec::new(),
            ..judged.clone()
        };
        let mut station = Station::new("unit-challenger").unwrap();
        station.challenger(&judged);
        station.challenger(&judged);
        station.challenger(&skipped);
        let t = text();
        let frames = |outcome: &str| {
            value(
                &t,
                &format!(
                    "defect_challenger_frames_total{{source=\"unit-challenger\",outcome=\"{outcome}\"}}"
                ),
            )
        };
        assert_eq!(
            (frames("judged"), frames("skipped")),
            (Some(2.0), Some(1.0))
        );
        assert_eq!(
            value(
                &t,
                "defect_challenger_agreement_total{source=\"unit-challenger\",level=\"class\",class=\"scratch\",outcome=\"both\"}"
            ),
            Some(4.0),
            "{t}"
        );
        assert_eq!(
            value(
                &t,
                "defect_challenger_agreement_total{source=\"unit-challenger\",level=\"verdict\",verdict=\"FAIL\",outcome=\"only_production\"}"
            ),
            Some(2.0),
            "{t}"
        );
        drop(station);
        assert!(!text().contains("unit-challenger"));
    }
}
