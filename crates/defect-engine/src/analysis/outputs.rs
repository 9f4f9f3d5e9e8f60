// SPDX-License-Identifier: MIT OR Apache-2.0
//! A model's outputs as its session declares them: what [`super::task`] and
//! [`super::segment`] recognise a task's layout from (its own module, so that neither imports
//! the other back).

/// One model output as the session declares it (dynamic dimensions are negative).
#[derive(Debug, Clone, PartialEq)]
pub struct OutputSpec {
    pub name: String,
    pub shape: Vec<i64>,
    /// float32 (the only element type the element reads; bool outputs such as Anomalib's
    /// `pred_label` and `pred_mask` are ignored).
    pub is_float: bool,
}
