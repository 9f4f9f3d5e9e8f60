// SPDX-License-Identifier: MIT OR Apache-2.0
/**
 * SECTION:element-defectcapture
 * @see_also: defectdetect, defectmetaconvert
 *
 * `defectcapture` keeps the frames a model must learn from next: frames whose verdict (the
 * `DefectVerdictMeta` of `defectdetect`) is FAIL or REVIEW, and every `pass-every`-th PASS
 * frame, are written to `location` as a dataset that annotation tools (CVAT, Label Studio)
 * and YOLO trainers open, with the detections the policy counted as pre-annotations:
 * `images/<name>.png` (or `.jpg`), `labels/<name>.txt` (YOLO, `class cx cy w h`
 * normalised), `data.yaml` and `classes.txt` (the model's class names, from the `model-info`
 * event `defectdetect` sends), a COCO file per run, `annotations/<run>.json` (boxes in pixels
 * with their `score`), and for anomaly models `heatmaps/<name>_heatmap.png` (the map over the
 * frame, coloured as `defectoverlay` draws it). A segmentation model's detections are
 * labelled with their masks: a YOLO-seg polygon (`class x1 y1 x2 y2 ...`, the outer contour
 * of the mask's largest part) and a COCO `segmentation` as RLE (the records' string) with
 * `area` the mask's pixels. `annotations` chooses the formats. The COCO
 * file is rewritten whole (a temporary file renamed over it) every `coco-every` captures and
 * before EOS goes on, so that it is valid whenever it is read.
 *
 * Every capture is named `<run>_<frame>_<VERDICT>`, where `<run>` is the UTC
 * time the element started, the process id and a counter of runs within the process
 * (`20261122T184005123Z-4242-1_00000012_FAIL.png`): a second run never writes the names of
 * the first, and files are created exclusively, never over an existing file (a name that
 * exists gets `-2`, `-3`...), never through a link. The directory stays under `max-size-mb`
 * and `max-files` by removing the oldest captures first, but only files named that way:
 * anything else in `location` is never adopted and never deleted; `data.yaml` and
 * `classes.txt` are written only where missing. A capture that cannot be written whole (disk
 * full) is removed again, image and labels, so that no truncated or empty file stays.
 *
 * Writing never blocks the streaming thread: frames go to a worker thread through a queue of
 * `queue-size` frames; when it is full the frame is not captured and the drop is counted.
 * The count so far is added to each frame's `DefectVerdictMeta` as `capture-dropped`, so it
 * appears in `defectmetaconvert`'s records. The video passes through unchanged. Queued
 * frames hold their buffers: keep `queue-size` below the number of buffers upstream can lend.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 filesrc location=tests/data/conveyor_color.mp4 ! decodebin ! videoconvert ! \
 *     defectdetect model=models/surface-defects.onnx policy=pipelines/policy.toml ! \
 *     defectcapture location=captures pass-every=100 ! defectmetaconvert ! filesink location=v.ndjson
 * ]|
 *
 * Since: plugins-defect-0.1.0
 */
use gst::glib;
use gst::prelude::*;

use crate::element;

mod imp;

crate::element::wrapper!(DefectCapture, gst_base::BaseTransform);

element::enumeration! {
    /// The pre-annotation formats written beside the images.
    pub enum Annotations("GstDefectCaptureAnnotations") {
        YoloCoco, "yolo+coco", "YOLO labels, data.yaml and classes.txt, and a COCO file per run";
        Yolo, "yolo", "YOLO labels, data.yaml and classes.txt";
        Coco, "coco", "A COCO file per run";
        None, "none", "Images only";
    }
}

impl Annotations {
    pub fn yolo(self) -> bool {
        matches!(self, Self::YoloCoco | Self::Yolo)
    }

    pub fn coco(self) -> bool {
        matches!(self, Self::YoloCoco | Self::Coco)
    }
}

element::enumeration! {
    /// Image format of the captures.
    pub enum CaptureFormat("GstDefectCaptureFormat") {
        Png, "png", "PNG (lossless)";
        Jpeg, "jpeg", "JPEG (quality 90)";
    }
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    element::mark_plugin_api(&[CaptureFormat::static_type(), Annotations::static_type()]);
    element::register::<DefectCapture>(plugin, "defectcapture")
}
