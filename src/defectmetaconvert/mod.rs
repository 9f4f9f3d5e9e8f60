// SPDX-License-Identifier: MIT OR Apache-2.0
/**
 * SECTION:element-defectmetaconvert
 * @see_also: defectdetect
 *
 * `defectmetaconvert` turns each frame's metas (the ROI metas and `DefectVerdictMeta` that
 * `defectdetect` attaches) into one JSON record, pushed downstream as a buffer with caps
 * `application/x-ndjson` (one line per record), so that it can go to `filesink`, `appsink`,
 * `tcpserversink`, `udpsink` or `multifilesink` while the video continues on another branch
 * of a `tee`. Finished parts (the `defect-part-verdict` events `defectdetect` sends
 * in-band) get records of their own. The schema is `docs/verdict.schema.json`
 * (`schema_version` 4).
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 filesrc location=tests/data/conveyor_color.mp4 ! decodebin ! videoconvert ! \
 *     defectdetect model=models/surface-defects.onnx ! defectmetaconvert source-id=line-1 ! \
 *     filesink location=verdicts.ndjson
 * ]|
 *
 * Since: plugins-defect-0.1.0
 */
use gst::glib;

mod imp;

crate::element::wrapper!(DefectMetaConvert);

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    crate::element::register::<DefectMetaConvert>(plugin, "defectmetaconvert")
}
