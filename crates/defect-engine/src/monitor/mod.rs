// SPDX-License-Identifier: MIT OR Apache-2.0
//! Monitoring, free of GStreamer: drift of the images and of the model's results against a
//! baseline of known-good operation ([`drift`]), the process-wide Prometheus registry of the plugin's
//! metrics ([`metrics`]: one [`metrics::Station`] a `defectmetricssink` source; [`sinks`]: the
//! counters the network sinks report at scrape time) and the HTTP endpoint that serves it in
//! the Prometheus text and OpenMetrics formats ([`server`], on [`crate::net::RUNTIME`]).
//!
//! Several `defectmetricssink` elements of one process on one host and port share one
//! endpoint; every endpoint of a process serves the one registry, each source's series told
//! apart by their `source` label.

pub mod drift;
pub mod metrics;
pub mod server;
pub mod sinks;

/// The port `defectmetricssink` listens on by default.
pub const DEFAULT_PORT: u16 = 9649;

/// The exposition of the process-wide registry in the format the scraper asked for
/// (OpenMetrics when its `Accept` header names it, else the Prometheus text format 0.0.4):
/// the content type and the body.
pub fn exposition(accept: Option<&str>) -> (&'static str, String) {
    let registry = metrics::registry();
    let mut body = String::new();
    let openmetrics = accept.is_some_and(|a| a.contains("application/openmetrics-text"));
    let encoded = if openmetrics {
        prometheus_client::encoding::text::encode(&mut body, registry)
    } else {
        prometheus_client::encoding::prometheus_text::encode(&mut body, registry)
    };
    if let Err(e) = encoded {
        // Writing to a String does not fail; say so in the body rather than panic.
        body = format!("# encoding failed: {e}\n");
    }
    let content_type = if openmetrics {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        prometheus_client::encoding::prometheus_text::CONTENT_TYPE
    };
    (content_type, body)
}
