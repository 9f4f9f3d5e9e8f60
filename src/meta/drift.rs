// SPDX-License-Identifier: MIT OR Apache-2.0
//! Drift: `defectdetect`'s comparison of a rolling window of frames against its baseline
//! profile. The same structure is the `defect-drift` element message (posted when an episode
//! starts and when it ends) and the `defect-drift` custom downstream serialized event (sent
//! at every window, so sinks after it, such as `defectmetaconvert` and `defectmetricssink`,
//! see the current scores and whether an episode is on).

use super::fields as f;
use super::structure::{MetaError, Reader};
use super::{DriftFeature, DriftReport};

fn feature_to_structure(feature: &DriftFeature) -> gst::Structure {
    gst::Structure::builder(f::DRIFT_FEATURE)
        .field(f::FEATURE_NAME, &feature.name)
        .field(f::SCORE, feature.score)
        .field(f::THRESHOLD, feature.threshold)
        .field(f::MOVED, feature.moved)
        .field(f::BASELINE, feature.baseline)
        .field(f::CURRENT, feature.current)
        .build()
}

fn feature_from_structure(s: &gst::StructureRef) -> Result<DriftFeature, MetaError> {
    let r = Reader::new(s);
    Ok(DriftFeature {
        name: r.required(f::FEATURE_NAME)?,
        score: r.required(f::SCORE)?,
        threshold: r.required(f::THRESHOLD)?,
        moved: r.required(f::MOVED)?,
        baseline: r.required(f::BASELINE)?,
        current: r.required(f::CURRENT)?,
    })
}

/// A [`DriftReport`] as the `defect-drift` message's structure and event.
pub trait DriftReportExt: Sized {
    fn to_structure(&self) -> gst::Structure;
    /// The report in a message's or event's structure; None when it is another structure.
    fn from_structure(s: &gst::StructureRef) -> Option<Result<Self, MetaError>>;
    /// The `defect-drift` custom downstream serialized event.
    fn to_event(&self) -> gst::Event;
    /// The report an event carries; None for any other event.
    fn from_event(event: &gst::EventRef) -> Option<Result<Self, MetaError>>;
}

impl DriftReportExt for DriftReport {
    fn to_structure(&self) -> gst::Structure {
        let features = gst::Array::new(self.features.iter().map(feature_to_structure));
        gst::Structure::builder(f::DRIFT)
            .field(f::ACTIVE, self.active)
            .field(f::EPISODE, self.episode)
            .field(f::FRAME, self.frame)
            .field(f::WINDOW_FRAMES, self.window_frames)
            .field(f::FEATURES, features)
            .build()
    }

    fn from_structure(s: &gst::StructureRef) -> Option<Result<Self, MetaError>> {
        (s.name() == f::DRIFT).then(|| {
            let r = Reader::new(s);
            Ok(Self {
                active: r.required(f::ACTIVE)?,
                episode: r.required(f::EPISODE)?,
                frame: r.required(f::FRAME)?,
                window_frames: r.required(f::WINDOW_FRAMES)?,
                features: r.structures(f::FEATURES, feature_from_structure)?,
            })
        })
    }

    fn to_event(&self) -> gst::Event {
        gst::event::CustomDownstream::new(self.to_structure())
    }

    fn from_event(event: &gst::EventRef) -> Option<Result<Self, MetaError>> {
        match event.view() {
            gst::EventView::CustomDownstream(custom) => {
                custom.structure().and_then(Self::from_structure)
            }
            _ => None,
        }
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
