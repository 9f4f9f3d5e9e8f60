// SPDX-License-Identifier: MIT OR Apache-2.0
//! Drift: `defectdetect`'s comparison of a rolling window of frames against its baseline
//! profile. The same structure is the `defect-drift` element message (posted when an episode
//! starts and when it ends) and the `defect-drift` custom downstream serialized event (sent
//! at every window, so sinks after it, such as `defectmetaconvert` and `defectmetricssink`,
//! see the current scores and whether an episode is on).

use super::fields as f;
use super::structure::{MetaError, Reader};

/// One feature compared with its baseline (an image statistic such as `brightness`, a
/// detection rate, a confidence or anomaly-score distribution).
#[derive(Debug, Clone, PartialEq)]
pub struct DriftFeature {
    /// The feature, e.g. `brightness`, `contrast`, `focus`, `colour-balance`,
    /// `detections:scratch`, `confidence:scratch`, `verdict:FAIL`, `anomaly-score`.
    pub name: String,
    /// How far the window moved from the baseline (population stability index).
    pub score: f64,
    /// The score at which the feature counts as moved.
    pub threshold: f64,
    /// `score >= threshold` in this window.
    pub moved: bool,
    /// The feature's mean (or rate) in the baseline and in the window.
    pub baseline: f64,
    pub current: f64,
}

/// The state of drift after a window of frames.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftReport {
    /// An episode is on (it started at or before this window and has not ended).
    pub active: bool,
    /// The episode's number in this stream (1, 2 ...); 0 before the first episode.
    pub episode: u64,
    /// The frame (`VerdictMeta::frame`) that closed the window.
    pub frame: u64,
    /// Frames in the window.
    pub window_frames: u64,
    pub features: Vec<DriftFeature>,
}

impl DriftFeature {
    fn to_structure(&self) -> gst::Structure {
        gst::Structure::builder(f::DRIFT_FEATURE)
            .field(f::FEATURE_NAME, &self.name)
            .field(f::SCORE, self.score)
            .field(f::THRESHOLD, self.threshold)
            .field(f::MOVED, self.moved)
            .field(f::BASELINE, self.baseline)
            .field(f::CURRENT, self.current)
            .build()
    }

    fn from_structure(s: &gst::StructureRef) -> Result<Self, MetaError> {
        let r = Reader::new(s);
        Ok(Self {
            name: r.required(f::FEATURE_NAME)?,
            score: r.required(f::SCORE)?,
            threshold: r.required(f::THRESHOLD)?,
            moved: r.required(f::MOVED)?,
            baseline: r.required(f::BASELINE)?,
            current: r.required(f::CURRENT)?,
        })
    }
}

impl DriftReport {
    pub fn to_structure(&self) -> gst::Structure {
        let features = gst::Array::new(self.features.iter().map(|x| x.to_structure()));
        gst::Structure::builder(f::DRIFT)
            .field(f::ACTIVE, self.active)
            .field(f::EPISODE, self.episode)
            .field(f::FRAME, self.frame)
            .field(f::WINDOW_FRAMES, self.window_frames)
            .field(f::FEATURES, features)
            .build()
    }

    /// The report in a message's or event's structure; None when it is another structure.
    pub fn from_structure(s: &gst::StructureRef) -> Option<Result<Self, MetaError>> {
        (s.name() == f::DRIFT).then(|| {
            let r = Reader::new(s);
            Ok(Self {
                active: r.required(f::ACTIVE)?,
                episode: r.required(f::EPISODE)?,
                frame: r.required(f::FRAME)?,
                window_frames: r.required(f::WINDOW_FRAMES)?,
                features: r.structures(f::FEATURES, DriftFeature::from_structure)?,
            })
        })
    }

    /// The `defect-drift` custom downstream serialized event.
    pub fn to_event(&self) -> gst::Event {
        gst::event::CustomDownstream::new(self.to_structure())
    }

    /// The report an event carries; None for any other event.
    pub fn from_event(event: &gst::EventRef) -> Option<Result<Self, MetaError>> {
        match event.view() {
            gst::EventView::CustomDownstream(custom) => {
                custom.structure().and_then(Self::from_structure)
            }
            _ => None,
        }
    }

    /// The features that moved in this window.
    pub fn moved(&self) -> impl Iterator<Item = &DriftFeature> {
        self.features.iter().filter(|x| x.moved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> DriftReport {
        DriftReport {
            active: true,
            episode: 2,
            frame: 450,
            window_frames: 90,
            features: vec![DriftFeature {
                name: "brightness".into(),
                score: 0.7,
                threshold: 0.25,
                moved: true,
                baseline: 121.5,
                current: 66.8,
            }],
        }
    }

    #[test]
    fn a_report_round_trips_through_its_structure_and_event() {
        gst::init().unwrap();
        let r = report();
        assert_eq!(
            DriftReport::from_structure(&r.to_structure())
                .unwrap()
                .unwrap(),
            r
        );
        assert_eq!(DriftReport::from_event(&r.to_event()).unwrap().unwrap(), r);
        assert_eq!(r.moved().count(), 1);
    }

    #[test]
    fn a_missing_field_is_an_error_naming_it() {
        gst::init().unwrap();
        let mut s = report().to_structure();
        s.remove_field(f::EPISODE);
        let error = DriftReport::from_structure(&s).unwrap().unwrap_err();
        assert_eq!(error.field, f::EPISODE);
    }
}
