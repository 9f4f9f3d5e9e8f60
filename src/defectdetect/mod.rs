// SPDX-License-Identifier: MIT OR Apache-2.0
/**
 * SECTION:element-defectdetect
 * @see_also: defectoverlay
 *
 * `defectdetect` runs a YOLO-style ONNX detector (ONNX Runtime; CPU, CUDA, TensorRT or OpenVINO) on
 * every video frame. The video passes through unchanged; every detection is attached to
 * the buffer as a `GstVideoRegionOfInterestMeta` whose `roi_type` is the class name and
 * whose parameter structure `detection` holds `label_id`, `label`, `confidence` and the box
 * `x_min`, `y_min`, `x_max`, `y_max` normalised to [0, 1] (the DL Streamer convention).
 * Each frame also posts an element message `defect-detections` with `frame`, `pts`,
 * `running-time` and `detections`, an array of `detection` structures with `label-id`,
 * `label`, `confidence` and the box `x-min`, `y-min`, `x-max`, `y-max` in frame pixels.
 *
 * Preprocessing follows the Ultralytics predictor: letterbox to the model's input size
 * keeping the aspect ratio, centred, grey 114 border, RGB, scaled to [0, 1], NCHW float32.
 * The output layout (YOLOv8/YOLO11 `[1, 4+nc, N]`, YOLOv5 `[1, N, 5+nc]`, end-to-end
 * `[1, K, 6]`) is recognised from the output shape; class-wise NMS follows.
 *
 * Classifiers (`[1, nc]` output, Ultralytics classify preprocessing: shortest side resized,
 * centre crop) attach their `top-k` classes as whole-frame ROIs with a `classification`
 * structure; anomaly models (`[1, 1, h, w]` map, optional image score; ours and Anomalib's)
 * attach the regions above the policy's pixel threshold as `anomaly` ROIs with `peak_score`
 * and `mean_score`, and their map as a `DefectAnomalyMapMeta` (for `defectoverlay
 * show-heatmap=true`). A classifier with `crop=x,y,width,height` classifies that window of
 * each frame instead of the whole frame (its classes are ROIs covering the window); one with
 * `on-rois=true` after a detector names each region
 * and re-decides the frame's verdict by its own policy on the classified labels. The task comes from the model's `task` metadata or outputs, or the
 * `task` property; the policy judges every task (`good` classes, an `[anomaly]` section).
 *
 * The model in use goes downstream as a sticky custom event carrying its `model-info`
 * structure (the read-only property's) ahead of its first frame, and again after a swap.
 *
 * The model is loaded in the NULL to READY state change: a missing or invalid model, a model
 * input larger than `max-input-pixels`, an output the element cannot decode, a policy with an
 * error or an ONNX Runtime library that cannot be loaded is an error there, naming the file
 * (and line) and the reason. `model` and `policy` set while playing are built in the
 * background and take over at a frame boundary; one that fails keeps the current model and
 * policy with a warning.
 *
 * Each frame's `DefectVerdictMeta` and `defect-verdict` message give its `verdict` (PASS, FAIL,
 * REVIEW, or UNKNOWN when the model has not judged it: never a pass), whether the model ran on
 * it (`inspected`) and which frame's result it carries (`carried`, `source-frame`). With
 * `async-inference` a part's verdict waits for the results of its frames and is never PASS
 * for a part the model did not see.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 filesrc location=line.mp4 ! decodebin ! videoconvert ! \
 *     defectdetect model=models/surface-defects.onnx conf-threshold=0.3 ! fakesink
 * gst-launch-1.0 filesrc location=line.mp4 ! decodebin ! videoconvert ! \
 *     defectdetect model=models/surface-anomaly.onnx policy=anomaly.toml ! fakesink
 * gst-launch-1.0 filesrc location=line.mp4 ! decodebin ! videoconvert ! \
 *     defectdetect model=models/neu-classifier.onnx crop=540,260,200,200 ! fakesink
 * ]|
 *
 * Since: plugins-defect-0.1.0
 */
use gst::glib;
use gst::prelude::*;

use crate::element;

mod challenger;
mod drift;
mod imp;
mod metas;
mod settings;
mod worker;

crate::element::wrapper!(DefectDetect, gst_base::BaseTransform);

element::enumeration! {
    /// The output layout the element decodes.
    pub enum Layout("GstDefectLayout") {
        Auto, "auto", "Auto: recognise the layout from the output shape";
        Yolov8, "yolov8", "YOLOv8/YOLO11: [1, 4+nc, N], no objectness";
        Yolov5, "yolov5", "YOLOv5: [1, N, 5+nc], objectness times class score";
        End2end, "end2end", "End-to-end: [1, K, 6] x1,y1,x2,y2,score,class (YOLOv10, NMS-exported)";
    }
}

element::enumeration! {
    /// What the model does.
    pub enum TaskChoice("GstDefectTask") {
        Auto, "auto", "Auto: the model's `task` metadata, else recognised from its outputs";
        Detect, "detect", "Detection: boxes (YOLO layouts)";
        Classify, "classify", "Classification: [1, nc] scores of the whole frame";
        Anomaly, "anomaly", "Anomaly detection: an anomaly map [1, 1, h, w] and optionally an image score";
        Segment, "segment", "Segmentation: boxes with masks (Ultralytics -seg: detections [1, 4+nc+32, N] and mask prototypes [1, 32, h, w])";
    }
}

element::enumeration! {
    /// Where ONNX Runtime runs the model.
    pub enum ExecutionProvider("GstDefectExecutionProvider") {
        Auto, "auto", "Auto: TensorRT, then CUDA, where available; else CPU";
        Cpu, "cpu", "CPU";
        Cuda, "cuda", "CUDA (falls back to CPU with a warning when unavailable)";
        Tensorrt, "tensorrt", "TensorRT (falls back to CPU with a warning when unavailable)";
        Openvino, "openvino", "OpenVINO on openvino-device at precision (needs an OpenVINO-enabled ONNX Runtime; falls back to CPU with a warning)";
    }
}

element::enumeration! {
    /// The device the OpenVINO execution provider runs the model on.
    pub enum OpenvinoDevice("GstDefectOpenvinoDevice") {
        Cpu, "CPU", "CPU";
        Gpu, "GPU", "Intel GPU";
        Npu, "NPU", "Intel NPU";
        Auto, "AUTO", "OpenVINO's automatic device selection";
    }
}

element::enumeration! {
    /// The inference precision asked of OpenVINO.
    pub enum Precision("GstDefectPrecision") {
        Auto, "auto", "Auto: bf16 where the CPU computes it natively (AVX512-BF16 or AMX), else f32";
        F32, "f32", "float32";
        Bf16, "bf16", "bfloat16";
        F16, "f16", "float16";
    }
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    element::mark_plugin_api(&[
        Layout::static_type(),
        TaskChoice::static_type(),
        ExecutionProvider::static_type(),
        OpenvinoDevice::static_type(),
        Precision::static_type(),
    ]);
    element::register::<DefectDetect>(plugin, "defectdetect")
}
