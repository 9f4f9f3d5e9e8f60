// SPDX-License-Identifier: MIT OR Apache-2.0
/**
 * SECTION:element-defectoverlay
 * @see_also: defectdetect
 *
 * `defectoverlay` draws what `defectdetect` found, in place, with no format conversion:
 * every `GstVideoRegionOfInterestMeta` as a box coloured by its defect's severity (critical
 * crimson, major orange, minor yellow, cosmetic cyan; grey for detections the policy
 * ignored) with its label and confidence, and the frame's `DefectVerdictMeta` as a banner
 * across the top: PASS green, FAIL red, REVIEW amber, UNKNOWN (not inspected) slate; shadow verdicts read "SHADOW … (not
 * enforced)" and get a striped edge. Text uses an 8x8 bitmap font embedded in the plugin,
 * scaled with the frame height so that it is readable from 720p to 4K.
 *
 * With `show-heatmap=true` an anomaly model's map (the `DefectAnomalyMapMeta` `defectdetect`
 * attaches) is blended over the frame as a translucent jet heat map (`heatmap-opacity`): blue
 * cold, green at the pixel threshold, red at twice it, resized bilinearly over the frame
 * rectangle the model saw. A region a second-stage classifier (`on-rois`) judged is labelled
 * with its classified name and severity.
 *
 * A segmentation model's masks (the `defect-mask` of each ROI) are filled in the colour of
 * their box at `mask-opacity` (default 0.4; 0 = outline only) with a 1-2 pixel outline,
 * under the boxes; `draw-masks=false` leaves them out.
 *
 * Works on RGB, BGR, RGBA, BGRA, RGBx, BGRx, ARGB, ABGR, xRGB, xBGR, GRAY8, NV12 and I420,
 * directly after `defectdetect` or after a `tee` and a `queue`.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 filesrc location=tests/data/conveyor_color.mp4 ! decodebin ! videoconvert ! \
 *     defectdetect model=models/surface-defects.onnx policy=pipelines/policy.toml ! \
 *     defectoverlay ! videoconvert ! x264enc ! mp4mux ! filesink location=annotated.mp4
 * gst-launch-1.0 filesrc location=line.mp4 ! decodebin ! videoconvert ! \
 *     defectdetect model=models/surface-anomaly.onnx ! \
 *     defectoverlay show-heatmap=true ! videoconvert ! autovideosink
 * gst-launch-1.0 filesrc location=tile.jpg ! jpegdec ! videoconvert ! video/x-raw,format=RGB ! \
 *     defectdetect model=magnetic-tile-seg.onnx task=segment ! \
 *     defectoverlay mask-opacity=0.5 ! videoconvert ! pngenc ! filesink location=masks.png
 * ]|
 *
 * Since: plugins-defect-0.1.0
 */
use gst::glib;

mod imp;

crate::element::wrapper!(DefectOverlay, gst_base::BaseTransform);

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    crate::element::register::<DefectOverlay>(plugin, "defectoverlay")
}
