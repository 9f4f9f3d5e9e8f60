//! Pure image-analysis logic, free of GStreamer: what the elements adapt.
//!
//! - [`letterbox`]: the Ultralytics-style letterbox geometry and the fused
//!   resize + colour conversion + normalisation pass into the model's input tensor;
//! - [`decode`]: output decoders for the YOLO output layouts;
//! - [`nms`]: class-wise non-maximum suppression;
//! - [`model_meta`]: parsing of model metadata (`names`, `imgsz`) and label files;
//! - [`task`]: what a model does (detect, classify, anomaly), from metadata or outputs;
//! - [`classify`]: the Ultralytics classify preprocessing, softmax and top-k;
//! - [`anomaly`]: regions of an anomaly map above a threshold;
//! - [`segment`]: segmentation models' outputs, candidates and masks;
//! - [`mask`]: a mask at its box, its area, length and COCO run-length encoding.

pub mod anomaly;
pub mod classify;
pub mod decode;
pub mod detection;
pub mod letterbox;
pub mod mask;
pub mod model_meta;
pub mod nms;
pub mod outputs;
pub mod rle;
pub mod segment;
pub mod task;
pub mod tiles;

pub use detection::{BBox, Detection};
