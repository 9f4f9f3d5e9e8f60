// SPDX-License-Identifier: MIT OR Apache-2.0
//! What is checked before frames flow, free of GStreamer: which settings combine (`crop`,
//! `on-rois`, `async-inference`, a challenger), whether the model's task fits them, and
//! whether the frames of new caps fit the tiling, the crop and the policy ([`caps`]). The
//! adapter turns a [`Refusal`] into its error: a `Message` is the error's text, a `Detail`
//! its debug detail (as each has always been reported).

use super::infer::{self, Region};
use crate::analysis::task::Task;
use crate::policy::Policy;

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

/// Frames of new caps that can be inspected: in how many tiles, and what the policy warns
/// about on frames of that size (each a warning of its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapsFit {
    pub tiles: usize,
    pub warnings: Vec<String>,
}

/// Why frames of new caps cannot be inspected: the error's text, and the short reason the
/// adapter logs with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapsRefusal {
    pub text: String,
    pub logged: &'static str,
}

/// Whether `width` x `height` frames can be inspected with this tiling (`tile-size`,
/// `tile-overlap`), `crop` and policy: too many tiles, a crop outside the frame or a policy
/// region outside it (every detection would be ignored) refuse them.
pub fn caps(
    (width, height): (u32, u32),
    (tile_size, tile_overlap): (u32, u32),
    crop: Option<Region>,
    policy: &Policy,
) -> Result<CapsFit, CapsRefusal> {
    let refusal = |text, logged| CapsRefusal { text, logged };
    let tiles = infer::tile_count(width, height, tile_size, tile_overlap)
        .map_err(|text| refusal(text, "too many tiles"))?;
    if let Some(text) = crop.and_then(|crop| infer::crop_error(crop, width, height)) {
        return Err(refusal(text, "crop outside the frame"));
    }
    let problems = policy.frame_problems(width, height);
    if let Some(error) = problems.errors.first() {
        let text = format!("policy {error}");
        return Err(refusal(text, "policy region outside the frame"));
    }
    let warnings = problems.warnings.iter().map(|w| format!("policy {w}"));
    Ok(CapsFit {
        tiles,
        warnings: warnings.collect(),
    })
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

    #[test]
    fn new_caps_are_refused_for_tiles_a_crop_or_a_policy_region_outside_the_frame() {
        let plain = crate::policy::parse_policy("", "p.toml").unwrap();
        let fit = caps((1280, 720), (0, 64), None, &plain).unwrap();
        assert_eq!(
            fit,
            CapsFit {
                tiles: 1,
                warnings: Vec::new()
            }
        );
        assert!(caps((1280, 720), (640, 64), None, &plain).unwrap().tiles > 1);
        let tiles = caps((100_000, 100_000), (32, 0), None, &plain).unwrap_err();
        assert_eq!(tiles.logged, "too many tiles");
        assert!(tiles.text.contains("tiles; at most"), "{}", tiles.text);
        let crop = caps((64, 48), (0, 0), Some((60, 0, 10, 10)), &plain).unwrap_err();
        assert_eq!(crop.logged, "crop outside the frame");
        assert!(caps((64, 48), (0, 0), Some((0, 0, 64, 48)), &plain).is_ok());
        let region =
            crate::policy::parse_policy("[region]\nrect = [2000, 0, 2100, 100]\n", "p.toml")
                .unwrap();
        let refused = caps((1280, 720), (0, 0), None, &region).unwrap_err();
        assert_eq!(refused.logged, "policy region outside the frame");
        assert!(
            refused
                .text
                .starts_with("policy p.toml:1: the region lies entirely outside"),
            "{}",
            refused.text
        );
        let over =
            crate::policy::parse_policy("[[ignore]]\nrect = [-1, -1, 5000, 5000]\n", "p.toml")
                .unwrap();
        let fit = caps((1280, 720), (0, 0), None, &over).unwrap();
        assert_eq!(fit.warnings.len(), 1, "{:?}", fit.warnings);
        assert!(
            fit.warnings[0].starts_with("policy p.toml:"),
            "{:?}",
            fit.warnings
        );
    }
}
