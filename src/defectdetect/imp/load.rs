// SPDX-License-Identifier: MIT OR Apache-2.0
//! `defectdetect`'s model loading: the model and policy loaded in the NULL to READY state
//! change (an error names the file and the reason), and the background builds of the model
//! slot ([`crate::inspect::slot`]) when `model` or `policy` change later, with what they say
//! (warnings, the `defect-model-ready` message), and a built model taken over at a frame
//! boundary.

use std::sync::Arc;

use gst::subclass::prelude::*;

use super::{CAT, DefectDetect};
use crate::defectdetect::challenger::Challenger;
use crate::defectdetect::settings::Settings;
use crate::element::lock;
use crate::inspect::model::{self, LoadError, Loaded};
use crate::inspect::slot::{BuildFn, Current, Outcome, ReportFn};
use crate::runtime::RuntimeError;

impl DefectDetect {
    /// NULL to READY: loads model and policy, or fails the state change naming the reason.
    pub(super) fn load(&self) -> Result<(), gst::StateChangeError> {
        let settings = lock(&self.settings).clone();
        if let Some(reason) = settings.tiling_error() {
            gst::element_imp_error!(self, gst::LibraryError::Settings, ("{reason}"));
            return Err(gst::StateChangeError);
        }
        match model::build(&settings.load_request(), None) {
            Ok((loaded, warnings)) => {
                for warning in warnings {
                    gst::element_imp_warning!(self, gst::LibraryError::Settings, ("{warning}"));
                }
                gst::info!(CAT, imp = self, "loaded {:?}", loaded.detector.info());
                self.engine.load(loaded);
                Ok(())
            }
            Err(LoadError::Runtime(error)) => {
                let kind = match &error {
                    RuntimeError::ModelMissing(_) => gst::ResourceError::NotFound,
                    RuntimeError::Library { .. } | RuntimeError::Environment(_) => {
                        gst::ResourceError::OpenRead
                    }
                    _ => gst::ResourceError::Read,
                };
                gst::element_imp_error!(self, kind, ("{error}"));
                Err(gst::StateChangeError)
            }
            Err(LoadError::Policy(message)) => {
                gst::element_imp_error!(self, gst::ResourceError::Settings, ("{message}"));
                Err(gst::StateChangeError)
            }
        }
    }

    /// `model` or `policy` set while READY or beyond: the slot builds the new model and policy
    /// in the background (requests in quick succession are one build) and the next frame after
    /// it is ready switches to it. One that fails to load keeps the current one, with a
    /// warning. Never waits for a build or an inference.
    pub(super) fn reload_in_background(&self) {
        let settings = lock(&self.settings).clone();
        let weak = self.obj().downgrade();
        let build: BuildFn<Loaded, Settings> = Arc::new(move |settings: &Settings| {
            let element = weak.upgrade().ok_or("the element is gone")?;
            let imp = element.imp();
            gst::info!(
                CAT,
                imp = imp,
                "building model {:?} with policy {:?} in the background",
                settings.model,
                settings.policy
            );
            let frame_size = lock(&imp.running)
                .stream
                .as_ref()
                .map(|s| (s.caps.width, s.caps.height));
            model::build(&settings.load_request(), frame_size).map_err(|e| e.to_string())
        });
        let weak = self.obj().downgrade();
        let report: ReportFn = Arc::new(move |outcome: Outcome| {
            let Some(element) = weak.upgrade() else {
                return;
            };
            let imp = element.imp();
            match outcome {
                Outcome::Ready {
                    generation,
                    warnings,
                } => {
                    for warning in warnings {
                        gst::element_imp_warning!(imp, gst::LibraryError::Settings, ("{warning}"));
                    }
                    gst::info!(CAT, imp = imp, "model generation {generation} ready");
                    // The next frame uses it: applications (and tests) can tell when a new
                    // policy or threshold is in force.
                    imp.post(
                        gst::Structure::builder(crate::meta::fields::MODEL_READY_MESSAGE)
                            .field(crate::meta::fields::GENERATION, generation)
                            .build(),
                    );
                }
                Outcome::Failed { generation, reason } => {
                    gst::info!(CAT, imp = imp, "build {generation} failed");
                    gst::element_imp_warning!(
                        imp,
                        gst::ResourceError::Read,
                        ("keeping the current model and policy: {reason}")
                    );
                }
                Outcome::Superseded { generation } => {
                    gst::debug!(CAT, imp = imp, "build {generation} superseded");
                }
            }
        });
        if self.engine.slot.request(settings, build, report) {
            gst::debug!(CAT, imp = self, "background build requested");
        }
    }

    /// At a frame boundary, with the current model locked (and `running`, whose challenger
    /// this is): takes over a pending model. Returns whether the model changed.
    pub(super) fn adopt(
        &self,
        current: &mut Option<Current<Loaded>>,
        frame: u64,
        challenger: Option<&Challenger>,
    ) -> bool {
        let Some(adopted) = self.engine.adopt(current) else {
            return false;
        };
        if let Some(model_id) = adopted.model_id {
            let challenger = challenger
                .map(|c| format!("; challenger {}", c.model_id))
                .unwrap_or_default();
            gst::info!(
                CAT,
                imp = self,
                "model generation {} ({model_id}) in use from frame {frame}{challenger}",
                adopted.generation
            );
        }
        true
    }
}
