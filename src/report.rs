//! What the pipeline says about one image: detections, models, outputs and timings — never pixels.

use serde::{Deserialize, Serialize};

use crate::codec::Format;
use crate::detect::tiles::Pass;
use crate::detect::{Class, Detection, FamilyKind};
use crate::runtime::Device;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub name: String,
    pub family: FamilyKind,
    pub class: Class,
    pub sha256: String,
    pub device: Device,
}

/// The passes one model made over the image (see `detect::tiles`), finest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelPlan {
    pub model: String,
    pub passes: Vec<Pass>,
    /// The second look at the picture's edges (see `detect::edges`), where the model makes one:
    /// the tiles of both strips.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edges: Option<Pass>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputInfo {
    pub format: Format,
    pub width: u32,
    pub height: u32,
    pub bytes: usize,
    pub sha256: String,
}

/// Milliseconds spent in each stage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    pub decode_ms: f64,
    pub detect_ms: f64,
    pub redact_ms: f64,
    /// Checking each output again as published: decoding it and looking around the redacted
    /// regions (see `redaction.verify_passes`).
    pub verify_ms: f64,
    /// Resizing to each rendition and encoding it (again after a check that found something).
    pub encode_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub format: Format,
    pub width: u32,
    pub height: u32,
    /// EXIF orientation applied before detection (1 = none).
    pub orientation: u8,
    pub detections: Vec<Detection>,
    /// Each model's passes over one view of this image (scales and tiles), its mirrored border
    /// included; a translucent image may be looked at over a white and a black page: twice.
    pub plan: Vec<ModelPlan>,
    pub models: Vec<ModelInfo>,
    pub outputs: Vec<OutputInfo>,
    pub timings: Timings,
}

impl Report {
    pub fn count(&self, class: Class) -> usize {
        self.detections.iter().filter(|d| d.class == class).count()
    }
}
