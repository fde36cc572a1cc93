//! What differs between model families (input format, output decoding) behind one trait, and
//! the families veil can decode.

use ndarray::ArrayViewD;
use serde::{Deserialize, Serialize};

use super::input::InputSpec;
use super::tiles::TilingConfig;
use super::{centerface, yolov8, yunet};
use crate::geometry::BoxF;

/// A scored box before it is attributed to a class and model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub bbox: BoxF,
    pub score: f32,
}

/// The model families veil can decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FamilyKind {
    Yunet,
    Centerface,
    Yolov8,
}

impl FamilyKind {
    pub fn family(self) -> Box<dyn Family> {
        match self {
            FamilyKind::Yunet => Box::new(yunet::YuNet),
            FamilyKind::Centerface => Box::new(centerface::CenterFace),
            FamilyKind::Yolov8 => Box::new(yolov8::Yolov8),
        }
    }
}

/// Per-family defaults, chosen for recall: a missed face is worse than a blurred background.
#[derive(Debug, Clone, Copy)]
pub struct FamilyDefaults {
    pub threshold: f32,
    /// Threshold for objects no larger than twice the smallest guaranteed size (see
    /// [`Thresholds`](super::Thresholds)).
    pub small_threshold: f32,
    /// Threshold for objects no larger than 1.4 times the smallest guaranteed size.
    pub tiny_threshold: f32,
    /// Threshold for objects cut by the frame (see [`Thresholds`](super::Thresholds)).
    pub cut_threshold: f32,
    pub nms_iou: f32,
    pub tiling: TilingConfig,
}

/// A model's outputs for one run, by position and name, as float32 arrays.
pub struct Outputs<'a> {
    pub names: Vec<&'a str>,
    pub arrays: Vec<ArrayViewD<'a, f32>>,
}

impl<'a> Outputs<'a> {
    pub fn by_name(&self, name: &str) -> Result<&ArrayViewD<'a, f32>, String> {
        self.names
            .iter()
            .position(|n| *n == name)
            .map(|i| &self.arrays[i])
            .ok_or_else(|| format!("the model has no output named {name:?}"))
    }

    /// Fails on any NaN or infinite value: a model run that produced one cannot be trusted to
    /// have found everything (a NaN score compares as neither above nor below a threshold).
    pub fn check_finite(&self) -> Result<(), String> {
        for (name, a) in self.names.iter().zip(&self.arrays) {
            if let Some(v) = a.iter().find(|v| !v.is_finite()) {
                return Err(format!("output {name} holds a non-finite value ({v})"));
            }
        }
        Ok(())
    }

    pub fn at(&self, index: usize) -> Result<&ArrayViewD<'a, f32>, String> {
        self.arrays
            .get(index)
            .ok_or_else(|| format!("the model has fewer than {} outputs", index + 1))
    }
}

/// What differs between model families: input format and output decoding.
pub trait Family: Send {
    fn input(&self) -> InputSpec;
    fn defaults(&self) -> FamilyDefaults;
    /// Decodes one run into candidates in canvas pixels, keeping those scoring at least `threshold`.
    fn decode(
        &self,
        outputs: &Outputs,
        canvas: (u32, u32),
        threshold: f32,
    ) -> Result<Vec<Candidate>, String>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::ArrayD;

    #[test]
    fn a_nan_or_infinite_output_is_an_error() {
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut scores = ArrayD::<f32>::zeros(vec![1, 5, 4]);
            scores[[0, 4, 2]] = bad;
            let outputs = Outputs {
                names: vec!["output0"],
                arrays: vec![scores.view()],
            };
            let err = outputs.check_finite().unwrap_err();
            assert!(
                err.contains("output0") && err.contains("non-finite"),
                "{err}"
            );
        }
        let fine = ArrayD::<f32>::from_elem(vec![1, 5, 4], 0.5);
        let outputs = Outputs {
            names: vec!["output0"],
            arrays: vec![fine.view()],
        };
        assert!(outputs.check_finite().is_ok());
    }
}
