// SPDX-License-Identifier: MIT OR Apache-2.0
/**
 * SECTION:element-defectpartmux
 * @see_also: defectdetect, defectmetaconvert, defectmodbussink, defectopcuasink
 *
 * `defectpartmux` gives one verdict per part from several cameras. Each camera branch ends
 * after its `defectdetect` in a request pad `sink_%u`; the element reads the
 * `defect-part-verdict` events that come down each pad (video buffers are dropped), joins
 * those of the same part id, and sends one `defect-part-verdict` per part downstream: the
 * worst of the cameras' verdicts (FAIL > UNKNOWN > REVIEW > PASS), with a `cameras` entry per
 * camera saying what it saw (`reported`, `timeout`, `stopped`). Its source pad carries
 * `application/x-defect-parts`: each joined part is the event followed by an empty buffer,
 * and `defectmetaconvert`, `defectmodbussink` and `defectopcuasink` accept that stream. The
 * joined part is also posted on the bus as a `defect-part-verdict` element message.
 *
 * A part is joined as soon as every running camera has reported it, at the latest
 * `timeout-ms` after the first camera did (a timer joins it even when no more data comes). A
 * required camera (`required`, the default) that has not reported by then, or that has
 * stopped (end of stream, pad released), makes the part UNKNOWN, never PASS; each such
 * episode is one warning, and the camera's return an info message. A camera that is not
 * required is waited for alike and its verdict counts when it reported in time; otherwise it
 * is listed and does not change the verdict. End of stream on every pad joins the pending
 * parts and ends the output.
 *
 * Pad properties: `camera-name` (default: the pad's name), `required`, and the read-only
 * counters `reported`, `timeouts`, `stopped-parts`, `late`.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 defectpartmux name=mux timeout-ms=2000 \
 *     sink_0::camera-name=top sink_1::camera-name=side ! \
 *     defectmodbussink host=127.0.0.1 port=5020 reject-coil=3 \
 *   filesrc location=top.mp4 ! decodebin ! videoconvert ! \
 *     defectdetect model=models/surface-defects.onnx frames-per-part=50 ! mux.sink_0 \
 *   filesrc location=side.mp4 ! decodebin ! videoconvert ! \
 *     defectdetect model=models/surface-defects.onnx frames-per-part=50 ! mux.sink_1
 * ]|
 *
 * Since: plugins-defect-0.1.0
 */
use gst::glib;
use gst::prelude::*;

mod imp;
mod pad;

glib::wrapper! {
    pub struct DefectPartMux(ObjectSubclass<imp::DefectPartMux>)
        @extends gst::Element, gst::Object, @implements gst::ChildProxy;
}

glib::wrapper! {
    /// A camera's pad: `camera-name`, `required` and the camera's counters.
    pub struct DefectPartMuxPad(ObjectSubclass<pad::DefectPartMuxPad>)
        @extends gst::Pad, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    DefectPartMuxPad::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    crate::element::register::<DefectPartMux>(plugin, "defectpartmux")
}
