//! What a model does (its task), read from its metadata or its outputs, free of GStreamer.
//!
//! Ultralytics writes the metadata key `task` (`detect`, `classify`, `segment`, `pose`,
//! `obb`); our anomaly models write `task: anomaly`. Without the key (Anomalib exports carry no
//! metadata, other exporters none either) the outputs decide:
//!
//! - two outputs, detections `[1, 4+nc+nm, N]` and mask prototypes `[1, nm, h, w]` (an
//!   Ultralytics `-seg` export, see [`super::segment`]): segmentation;
//! - an output named `anomaly_map`, or a float output `[B, 1, h, w]` (h, w > 1): anomaly;
//! - a first output `[B, nc]`: classification;
//! - anything else: detection (the detector's layouts decide the rest).

use std::fmt;

pub use super::outputs::OutputSpec;

/// A model's task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Task {
    #[default]
    Detect,
    Classify,
    Segment,
    Anomaly,
}

impl Task {
    pub const ALL: [Task; 4] = [Task::Detect, Task::Classify, Task::Segment, Task::Anomaly];

    pub fn as_str(self) -> &'static str {
        match self {
            Task::Detect => "detect",
            Task::Classify => "classify",
            Task::Segment => "segment",
            Task::Anomaly => "anomaly",
        }
    }

    /// The task a metadata value names (case and surrounding spaces ignored).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim().to_ascii_lowercase();
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an anomaly model's outputs are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnomalyOutputs {
    /// Index of the anomaly map `[B, 1, h, w]`.
    pub map: usize,
    /// Index of the image score (`[B]`, `[B, 1]` or `[1]`), when the model gives one.
    pub score: Option<usize>,
}

/// Why a task cannot be used with a model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    #[error(
        "the model's `task` metadata {0:?} is not one the element runs (detect, classify, segment, anomaly)"
    )]
    Unknown(String),
    #[error("task {task} needs {wanted}; the model's outputs are {outputs}")]
    Outputs {
        task: Task,
        wanted: &'static str,
        outputs: String,
    },
}

fn describe(outputs: &[OutputSpec]) -> String {
    outputs
        .iter()
        .map(|o| {
            format!(
                "{} {:?}{}",
                o.name,
                o.shape,
                if o.is_float { "" } else { " (not float32)" }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether a dimension can be 1 (a static 1, or dynamic).
fn may_be_one(d: i64) -> bool {
    d == 1 || d < 0
}

fn is_map(o: &OutputSpec) -> bool {
    o.is_float
        && matches!(o.shape[..], [b, 1, h, w] if may_be_one(b) && h != 1 && w != 1 && h != 0 && w != 0)
}

fn is_single_value(o: &OutputSpec) -> bool {
    o.is_float
        && match o.shape[..] {
            [b] => may_be_one(b),
            [b, 1] => may_be_one(b),
            [] => true,
            _ => false,
        }
}

/// The task the `forced` property, else the metadata `task` value, else the outputs give.
pub fn detect_task(
    forced: Option<Task>,
    metadata_task: Option<&str>,
    outputs: &[OutputSpec],
) -> Result<Task, TaskError> {
    if let Some(task) = forced {
        return Ok(task);
    }
    if let Some(text) = metadata_task {
        return match Task::parse(text) {
            Some(task) => Ok(task),
            // Ultralytics' pose and obb models are detectors with extra columns: not ours.
            None => Err(TaskError::Unknown(text.to_string())),
        };
    }
    if super::segment::segment_layout(outputs).is_some() {
        return Ok(Task::Segment);
    }
    if outputs.iter().any(|o| o.name == "anomaly_map") || outputs.iter().any(is_map) {
        return Ok(Task::Anomaly);
    }
    if let Some(first) = outputs.first()
        && first.is_float
        && matches!(first.shape[..], [b, nc] if may_be_one(b) && nc != 1 && nc != 0)
    {
        return Ok(Task::Classify);
    }
    Ok(Task::Detect)
}

/// The anomaly map and image score of an anomaly model: by name (`anomaly_map`, `pred_score`,
/// as Anomalib 2.x and our exports name them), else the first `[B, 1, h, w]` float output and
/// the first single-value float output.
pub fn anomaly_outputs(outputs: &[OutputSpec]) -> Result<AnomalyOutputs, TaskError> {
    let map = outputs
        .iter()
        .position(|o| o.name == "anomaly_map" && is_map(o))
        .or_else(|| outputs.iter().position(is_map))
        .ok_or_else(|| TaskError::Outputs {
            task: Task::Anomaly,
            wanted: "a float32 anomaly map [1, 1, h, w]",
            outputs: describe(outputs),
        })?;
    let score = outputs
        .iter()
        .position(|o| o.name == "pred_score" && is_single_value(o))
        .or_else(|| {
            outputs
                .iter()
                .enumerate()
                .position(|(i, o)| i != map && is_single_value(o))
        });
    Ok(AnomalyOutputs { map, score })
}

/// Checks that a classifier's first output is `[1, nc]` float32; returns nc when static.
pub fn classify_output(outputs: &[OutputSpec]) -> Result<Option<usize>, TaskError> {
    match outputs.first() {
        Some(o) if o.is_float => match o.shape[..] {
            [b, nc] if may_be_one(b) && nc != 0 => Ok((nc > 0).then_some(nc as usize)),
            _ => Err(TaskError::Outputs {
                task: Task::Classify,
                wanted: "a first float32 output [1, nc]",
                outputs: describe(outputs),
            }),
        },
        _ => Err(TaskError::Outputs {
            task: Task::Classify,
            wanted: "a first float32 output [1, nc]",
            outputs: describe(outputs),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(name: &str, shape: &[i64]) -> OutputSpec {
        OutputSpec {
            name: name.into(),
            shape: shape.to_vec(),
            is_float: true,
        }
    }

    fn boolean(name: &str, shape: &[i64]) -> OutputSpec {
        OutputSpec {
            is_float: false,
            ..out(name, shape)
        }
    }

    #[test]
    fn metadata_decides_and_the_property_overrides() {
        let det = [out("output0", &[1, 84, 8400])];
        assert_eq!(
            detect_task(None, Some("classify"), &det),
            Ok(Task::Classify)
        );
        assert_eq!(detect_task(None, Some(" Detect "), &det), Ok(Task::Detect));
        assert_eq!(detect_task(None, Some("anomaly"), &det), Ok(Task::Anomaly));
        assert_eq!(detect_task(None, Some("segment"), &det), Ok(Task::Segment));
        assert!(matches!(
            detect_task(None, Some("pose"), &det),
            Err(TaskError::Unknown(t)) if t == "pose"
        ));
        assert_eq!(
            detect_task(Some(Task::Detect), Some("classify"), &det),
            Ok(Task::Detect)
        );
    }

    #[test]
    fn outputs_decide_without_metadata() {
        assert_eq!(
            detect_task(None, None, &[out("output0", &[1, 84, 8400])]),
            Ok(Task::Detect)
        );
        assert_eq!(
            detect_task(None, None, &[out("output0", &[1, 1000])]),
            Ok(Task::Classify)
        );
        // An Ultralytics -seg export: detections with mask coefficients, and prototypes.
        let seg = [
            out("output0", &[1, 38, 8400]),
            out("output1", &[1, 32, 160, 160]),
        ];
        assert_eq!(detect_task(None, None, &seg), Ok(Task::Segment));
        assert_eq!(
            detect_task(None, None, &[out("logits", &[-1, 6])]),
            Ok(Task::Classify)
        );
        // Anomalib 2.x: score, label, map, mask; dynamic batch.
        let anomalib = [
            out("pred_score", &[-1]),
            boolean("pred_label", &[-1]),
            out("anomaly_map", &[-1, 1, 256, 256]),
            boolean("pred_mask", &[-1, 1, 256, 256]),
        ];
        assert_eq!(detect_task(None, None, &anomalib), Ok(Task::Anomaly));
        assert_eq!(
            anomaly_outputs(&anomalib),
            Ok(AnomalyOutputs {
                map: 2,
                score: Some(0)
            })
        );
        // Anomalib 1.x / 0.x: `output` is the map, the score has an exporter-made name.
        let v1 = [out("output", &[1, 1, 256, 256]), out("onnx::Max_5", &[1])];
        assert_eq!(detect_task(None, None, &v1), Ok(Task::Anomaly));
        assert_eq!(
            anomaly_outputs(&v1),
            Ok(AnomalyOutputs {
                map: 0,
                score: Some(1)
            })
        );
        // Ours: score [1, 1] first.
        let ours = [
            out("pred_score", &[1, 1]),
            out("anomaly_map", &[1, 1, 64, 112]),
        ];
        assert_eq!(
            anomaly_outputs(&ours),
            Ok(AnomalyOutputs {
                map: 1,
                score: Some(0)
            })
        );
        // A map alone.
        assert_eq!(
            anomaly_outputs(&[out("m", &[1, 1, 8, 8])]),
            Ok(AnomalyOutputs {
                map: 0,
                score: None
            })
        );
    }

    #[test]
    fn wrong_outputs_are_errors_naming_them() {
        let det = [out("output0", &[1, 84, 8400])];
        let e = anomaly_outputs(&det).unwrap_err().to_string();
        assert!(e.contains("output0 [1, 84, 8400]"), "{e}");
        assert!(classify_output(&det).is_err());
        assert_eq!(classify_output(&[out("o", &[1, 6])]), Ok(Some(6)));
        assert!(classify_output(&[boolean("o", &[1, 6])]).is_err());
    }
}
