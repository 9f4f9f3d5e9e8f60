// SPDX-License-Identifier: MIT OR Apache-2.0
/**
 * SECTION:element-defectmetricssink
 * @see_also: defectdetect, defectmetaconvert
 *
 * `defectmetricssink` serves what the inspection does as Prometheus metrics on
 * `http://host:port/metrics` (the Prometheus text format, or OpenMetrics when the scraper
 * asks for it): frames and parts by verdict, detections by class, severity and decision,
 * confidence, inference time and verdict latency histograms, frames the model did not see,
 * the model in use and its swaps, the time since the last frame, drift scores and image
 * statistics (from `defectdetect`'s `defect-drift` events), and the counters of the
 * process's `defectmqttsink`, `defectmodbussink` and `defectopcuasink` elements.
 *
 * It reads the metas of the frames (`DefectVerdictMeta`, the ROI metas' `detection`
 * parameters) and `defectdetect`'s in-band events, so it goes after a `tee`, like the other
 * sinks. Several elements of one process on the same host and port share one endpoint,
 * their series told apart by the `source` label (`source-id`). Scrapes are answered on the
 * plugin's network runtime, never on the streaming thread. `port=0` picks a free port,
 * read back from `bound-port`.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 filesrc location=tests/data/conveyor_color.mp4 ! decodebin ! videoconvert ! \
 *     defectdetect model=models/surface-defects.onnx policy=pipelines/policy.toml ! tee name=t \
 *     t. ! queue ! defectmetricssink source-id=line-1 port=9649 \
 *     t. ! queue ! defectmetaconvert source-id=line-1 ! filesink location=verdicts.ndjson
 * ]|
 *
 * Since: plugins-defect-0.1.0
 */
use gst::glib;
use gst::prelude::*;

pub use crate::monitor::sinks::SinkReading;

mod imp;

crate::element::wrapper!(DefectMetricsSink, gst_base::BaseSink);

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    crate::element::register::<DefectMetricsSink>(plugin, "defectmetricssink")
}

/// For the plugin's other sinks (in their `start`): serve `read`'s counters in the
/// process-wide registry, as series labelled `element="<the element's name>"`, until
/// [`unregister_sink_counters`] (in their `stop`). `read` runs at each scrape on the network
/// runtime, with the element (held weakly: the registry never keeps it alive); it must only
/// read counters (atomics, or a lock held briefly by the streaming thread).
pub fn register_sink_counters<E>(
    element: &E,
    read: impl Fn(&E) -> Option<SinkReading> + Send + Sync + 'static,
) where
    E: IsA<gst::Element> + Send + Sync + 'static,
{
    let weak = element.downgrade();
    crate::monitor::sinks::register(
        key(element),
        element.upcast_ref::<gst::Element>().name().as_str(),
        Box::new(move || weak.upgrade().and_then(|element| read(&element))),
    );
}

/// Removes the counters [`register_sink_counters`] registered for `element`.
pub fn unregister_sink_counters(element: &impl IsA<gst::Element>) {
    crate::monitor::sinks::unregister(key(element));
}

/// The object's address: unique among the living elements.
fn key(element: &impl IsA<gst::Element>) -> usize {
    element.as_ptr() as usize
}
