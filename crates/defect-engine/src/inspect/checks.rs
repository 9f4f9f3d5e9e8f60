// SPDX-License-Identifier: MIT OR Apache-2.0
//! What is checked before frames flow, free of GStreamer: which settings combine (`crop`,
//! `on-rois`, `async-inference`, a challenger), and whether the model's task fits them. The
//! adapter turns a [`Refusal`] into its error: a `Message` is the error's text, a `Detail`
//! its debug detail (as each has always been reported).

use crate::analysis::task::Task;

/// The settings whose combinations are checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Combination {
    /// A classifier judges one fixed window of the frame (`crop`).
    pub crop: bool,
    /// A classifier judges the regions of interest on the buffer (`on-rois`).
    pub on_rois: bool,
    pub async_inference: bool,
    /// A challenger model judges beside production.
    pub challenger: bool,
}

/// Why a stream cannot start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Said in the error's message.
    Message(String),
    /// Said in the error's debug detail.
    Detail(String),
}

/// The model a check sees: its id and task.
pub type ModelTask<'a> = (&'a str, Task);

/// A feature that needs a classifier (`crop`, `on-rois`) with a model of another task.
pub fn needs_classifier(feature: &str, (model_id, task): ModelTask) -> Option<String> {
    (task != Task::Classify)
        .then(|| format!("{feature} needs a classifier; model {model_id} is a {task} model"))
}

/// Why the settings cannot start with `model` (None: not loaded yet, only the combination is
/// checked); the challenger is checked by [`challenger`], after the previous one stopped.
pub fn start(combination: Combination, model: Option<ModelTask>) -> Option<Refusal> {
    let Combination {
        crop,
        on_rois,
        async_inference,
        ..
    } = combination;
    let needs = |feature: &str| model.and_then(|m| needs_classifier(feature, m));
    if crop {
        if on_rois {
            return Some(Refusal::Message(
                "crop and on-rois cannot be combined: on-rois classifies the regions on the buffer, crop one fixed region of the frame".into(),
            ));
        }
        if let Some(reason) = needs("crop") {
            return Some(Refusal::Message(reason));
        }
    }
    if on_rois {
        if async_inference {
            return Some(Refusal::Detail(
                "on-rois classifies on the streaming thread: it cannot be combined with async-inference".into(),
            ));
        }
        if let Some(reason) = needs("on-rois") {
            return Some(Refusal::Message(reason));
        }
    }
    None
}

/// Why a challenger cannot judge beside these settings.
pub fn challenger(combination: Combination) -> Option<Refusal> {
    (combination.challenger && (combination.async_inference || combination.on_rois)).then(|| {
        Refusal::Detail(
            "challenger-model cannot be combined with async-inference or on-rois".into(),
        )
    })
}

/// Whether frame `frame` goes to the challenger: only frames production inferred itself (not
/// one carrying an earlier result), every `interval` frames.
pub fn challenger_due(
    inspected: bool,
    carried_from: Option<u64>,
    frame: u64,
    interval: u32,
) -> bool {
    inspected && carried_from.is_none() && frame.is_multiple_of(interval.max(1) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(f: impl FnOnce(&mut Combination)) -> Combination {
        let mut c = Combination::default();
        f(&mut c);
        c
    }

    #[test]
    fn plain_settings_start_with_any_model() {
        for task in Task::ALL {
            assert_eq!(start(Combination::default(), Some(("m", task))), None);
        }
        assert_eq!(challenger(with(|c| c.challenger = true)), None);
    }

    #[test]
    fn crop_and_on_rois_need_a_classifier() {
        let crop = with(|c| c.crop = true);
        assert_eq!(start(crop, Some(("m", Task::Classify))), None);
        assert_eq!(start(crop, None), None);
        assert_eq!(
            start(crop, Some(("yolo.onnx", Task::Detect))),
            Some(Refusal::Message(
                "crop needs a classifier; model yolo.onnx is a detect model".into()
            ))
        );
        let rois = with(|c| c.on_rois = true);
        assert_eq!(
            start(rois, Some(("a.onnx", Task::Anomaly))),
            Some(Refusal::Message(
                "on-rois needs a classifier; model a.onnx is a anomaly model".into()
            ))
        );
        assert_eq!(needs_classifier("on-rois", ("c", Task::Classify)), None);
    }

    #[test]
    fn conflicting_settings_are_refused_before_the_model_is_looked_at() {
        let both = with(|c| {
            c.crop = true;
            c.on_rois = true;
        });
        let Some(Refusal::Message(text)) = start(both, Some(("c", Task::Classify))) else {
            panic!("crop with on-rois must be refused");
        };
        assert!(
            text.starts_with("crop and on-rois cannot be combined"),
            "{text}"
        );
        let rois_async = with(|c| {
            c.on_rois = true;
            c.async_inference = true;
        });
        let Some(Refusal::Detail(text)) = start(rois_async, Some(("d", Task::Detect))) else {
            panic!("on-rois with async-inference must be refused first");
        };
        assert!(text.contains("async-inference"), "{text}");
    }

    #[test]
    fn a_challenger_needs_the_streaming_thread() {
        for other in [
            with(|c| c.async_inference = true),
            with(|c| c.on_rois = true),
        ] {
            assert_eq!(challenger(other), None, "no challenger, nothing to refuse");
            let refused = challenger(Combination {
                challenger: true,
                ..other
            });
            assert!(matches!(refused, Some(Refusal::Detail(_))), "{refused:?}");
        }
    }

    #[test]
    fn the_challenger_sees_every_interval_th_inferred_frame() {
        assert!(challenger_due(true, None, 0, 1));
        assert!(
            challenger_due(true, None, 7, 0),
            "interval 0 is every frame"
        );
        assert!(challenger_due(true, None, 6, 3));
        assert!(!challenger_due(true, None, 7, 3));
        assert!(!challenger_due(false, None, 6, 3), "not inferred");
        assert!(
            !challenger_due(true, Some(5), 6, 3),
            "carries frame 5's result"
        );
    }
}
