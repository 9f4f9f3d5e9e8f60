// SPDX-License-Identifier: MIT OR Apache-2.0
//! The network sinks' counters in the process-wide registry, free of GStreamer: a sink
//! registers a reader in `start` ([`register`]) and removes it in `stop` ([`unregister`]);
//! each scrape calls every reader (on the scraping thread, never the sink's streaming
//! thread) and serves what they read, labelled with the sink's element name.

use std::collections::BTreeMap;
use std::sync::{LazyLock, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// What a sink's reader returns at a scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkReading {
    /// `defectmqttsink`.
    Mqtt {
        /// Records delivered (acknowledged with QoS 1, written with QoS 0).
        published: u64,
        /// Records no broker received.
        dropped: u64,
        /// Records waiting in the queue now.
        queued: u64,
        connected: bool,
    },
    /// `defectmodbussink`.
    Modbus {
        /// Reject pulses fired.
        pulses: u64,
        /// Rejects not fired.
        missed: u64,
        /// Rejects waiting to fall due now.
        queued: u64,
        connected: bool,
    },
    /// `defectopcuasink`: the decisions it served, by verdict (PASS, FAIL, REVIEW, UNKNOWN).
    OpcUa { decisions: [u64; 4] },
}

/// A sink's reader: None once the sink is gone (it is then forgotten).
pub type Reader = Box<dyn Fn() -> Option<SinkReading> + Send + Sync>;

struct Registered {
    element: String,
    read: Reader,
}

/// The readers, by a key the sink chooses (its object's address: unique while it lives).
static READERS: LazyLock<Mutex<BTreeMap<usize, Registered>>> = LazyLock::new(Mutex::default);

fn readers() -> std::sync::MutexGuard<'static, BTreeMap<usize, Registered>> {
    READERS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Adds (or replaces) the reader of the sink `key`, whose series carry `element="<element>"`.
pub fn register(key: usize, element: &str, read: Reader) {
    readers().insert(
        key,
        Registered {
            element: element.to_string(),
            read,
        },
    );
}

/// Removes the reader of the sink `key` (nothing when it has none).
pub fn unregister(key: usize) {
    readers().remove(&key);
}

type Labels = Vec<(&'static str, String)>;

/// One sample: the family's name, type, help, the series' labels and the value.
struct Sample {
    name: &'static str,
    counter: bool,
    help: &'static str,
    labels: Labels,
    value: u64,
}

const VERDICTS: [&str; 4] = ["PASS", "FAIL", "REVIEW", "UNKNOWN"];

fn samples(element: &str, reading: SinkReading) -> Vec<Sample> {
    let labels = || vec![("element", element.to_string())];
    let sample = |name, counter, help, value| Sample {
        name,
        counter,
        help,
        labels: labels(),
        value,
    };
    match reading {
        SinkReading::Mqtt {
            published,
            dropped,
            queued,
            connected,
        } => vec![
            sample(
                "defect_mqtt_records_published",
                true,
                "Records the MQTT broker received (acknowledged with QoS 1)",
                published,
            ),
            sample(
                "defect_mqtt_records_dropped",
                true,
                "Records no MQTT broker received: queue full, flush timed out, refused",
                dropped,
            ),
            sample(
                "defect_mqtt_records_queued",
                false,
                "Records waiting for the MQTT broker now",
                queued,
            ),
            sample(
                "defect_mqtt_connected",
                false,
                "Whether defectmqttsink is connected to its broker (1) or not (0)",
                u64::from(connected),
            ),
        ],
        SinkReading::Modbus {
            pulses,
            missed,
            queued,
            connected,
        } => vec![
            sample(
                "defect_plc_reject_pulses",
                true,
                "Reject pulses written to the PLC",
                pulses,
            ),
            sample(
                "defect_plc_missed_rejects",
                true,
                "Rejects not fired: due while disconnected, too late, refused, or queued at stop",
                missed,
            ),
            sample(
                "defect_plc_rejects_queued",
                false,
                "Rejects waiting to fall due now",
                queued,
            ),
            sample(
                "defect_plc_connected",
                false,
                "Whether defectmodbussink is connected to the PLC (1) or not (0)",
                u64::from(connected),
            ),
        ],
        SinkReading::OpcUa { decisions } => VERDICTS
            .iter()
            .zip(decisions)
            .map(|(verdict, value)| Sample {
                name: "defect_opcua_decisions",
                counter: true,
                help: "Decisions defectopcuasink served to OPC UA clients, by verdict",
                labels: {
                    let mut l = labels();
                    l.push(("verdict", verdict.to_string()));
                    l
                },
                value,
            })
            .collect(),
    }
}

/// The collector of the process-wide registry that calls the readers at each scrape.
#[derive(Debug)]
pub(super) struct Collected;

impl Collector for Collected {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // Read every sink, then encode family by family (a family's series together).
        let mut all: Vec<Sample> = Vec::new();
        readers().retain(|_, r| match (r.read)() {
            Some(reading) => {
                all.extend(samples(&r.element, reading));
                true
            }
            None => false,
        });
        let mut names: Vec<&'static str> = all.iter().map(|s| s.name).collect();
        names.dedup();
        let mut seen = Vec::new();
        for name in names {
            if seen.contains(&name) {
                continue;
            }
            seen.push(name);
            let family: Vec<&Sample> = all.iter().filter(|s| s.name == name).collect();
            let (counter, help) = (family[0].counter, family[0].help);
            let kind = if counter {
                MetricType::Counter
            } else {
                MetricType::Gauge
            };
            let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
            for s in family {
                let series = metric.encode_family(&s.labels)?;
                if counter {
                    ConstCounter::new(s.value).encode(series)?;
                } else {
                    ConstGauge::new(s.value as i64).encode(series)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_readers_are_served_until_unregistered_or_gone() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let pulses = Arc::new(AtomicU64::new(3));
        let p = pulses.clone();
        register(
            1001,
            "plc-a",
            Box::new(move || {
                Some(SinkReading::Modbus {
                    pulses: p.load(Ordering::Relaxed),
                    missed: 1,
                    queued: 2,
                    connected: false,
                })
            }),
        );
        let alive = Arc::new(AtomicBool::new(true));
        let a = alive.clone();
        register(
            1002,
            "mqtt-a",
            Box::new(move || {
                a.load(Ordering::Relaxed).then_some(SinkReading::Mqtt {
                    published: 10,
                    dropped: 4,
                    queued: 0,
                    connected: true,
                })
            }),
        );
        register(
            1003,
            "opcua-a",
            Box::new(|| {
                Some(SinkReading::OpcUa {
                    decisions: [5, 1, 0, 2],
                })
            }),
        );
        pulses.store(7, Ordering::Relaxed);
        let text = super::super::exposition(None).1;
        for line in [
            r#"defect_plc_reject_pulses_total{element="plc-a"} 7"#,
            r#"defect_plc_missed_rejects_total{element="plc-a"} 1"#,
            r#"defect_plc_rejects_queued{element="plc-a"} 2"#,
            r#"defect_plc_connected{element="plc-a"} 0"#,
            r#"defect_mqtt_records_dropped_total{element="mqtt-a"} 4"#,
            r#"defect_mqtt_connected{element="mqtt-a"} 1"#,
            r#"defect_opcua_decisions_total{element="opcua-a",verdict="UNKNOWN"} 2"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
        assert_eq!(
            text.matches("# TYPE defect_plc_reject_pulses_total")
                .count(),
            1
        );
        alive.store(false, Ordering::Relaxed);
        unregister(1001);
        let text = super::super::exposition(None).1;
        assert!(
            !text.contains("plc-a") && !text.contains("mqtt-a"),
            "{text}"
        );
        unregister(1003);
    }
}
