//! What detection finds: the classes of object and one found object.

use serde::{Deserialize, Serialize};

use crate::geometry::BoxF;

/// What a detection is of; each class has its own redaction settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    Face,
    Plate,
}

impl Class {
    pub fn as_str(&self) -> &'static str {
        match self {
            Class::Face => "face",
            Class::Plate => "plate",
        }
    }

    /// Whether an object of this class close to an edge of a picture can be hidden by its mirror
    /// image, so that the edges are looked at again with grey beyond them ([`edges`](super::edges)). A face
    /// head to head with an inverted face, or cheek to cheek with its reflection, is no longer
    /// one face to a detector. A plate and its reflection make a larger plate-like shape: on
    /// the small-object set a second look at the top and bottom edges found no plate more, for
    /// about a tenth more of platedet's time.
    pub fn hidden_by_its_mirror(&self) -> bool {
        matches!(self, Class::Face)
    }

    /// Whether a detector of this class looks at every picture a second time mirrored left to
    /// right, unless configured otherwise. A face model is not symmetric: it scores a face in
    /// profile or three-quarter view differently facing left and right (on the small-object
    /// set, camera.png's profile at 24 px cut by the top edge scored 0.26 one way and 0.06 the
    /// other; the held-apart three-quarter profile of zidane.jpg, missed at 10 px one way, is
    /// found the other), and a face turned either way is a face. A plate read backwards is not
    /// a plate.
    pub fn looked_at_mirrored(&self) -> bool {
        matches!(self, Class::Face)
    }

    /// How far the re-check's window around a redacted region of this class reaches beyond
    /// it, as a fraction of the region's size on every side. A face model scores a head by
    /// what lies around it (hair, neck, shoulders): with windows a quarter of the region beyond
    /// it, full detection of the outputs of the small-object set still found four blurred
    /// heads of 16 and 24 px (at 0.10–0.17, over their thresholds of 0.08 and 0.15) and a 16 px
    /// face cut by the frame that the re-check's window showed too little of; at half, none
    /// (at three eighths, two), for a re-check of 21 % of detection's time instead of 15 %.
    /// A plate's windows half as large again found no plate more.
    pub fn recheck_reach(&self) -> f32 {
        match self {
            Class::Face => 0.5,
            Class::Plate => 0.25,
        }
    }

    /// The size of an object of this class, as the guarantees and `min_object` measure it: a
    /// face's height, a plate's width.
    pub fn size(&self, b: &BoxF) -> f32 {
        match self {
            Class::Face => b.height(),
            Class::Plate => b.width(),
        }
    }
}

/// One object found in the source image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    pub class: Class,
    /// Name of the model (manifest entry) that found it.
    pub model: String,
    pub score: f32,
    #[serde(rename = "box")]
    pub bbox: BoxF,
    /// 0 when found by detection; n when found by the n-th re-check of redacted regions (at a
    /// lower threshold), which then redacted it too.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub verify_pass: u8,
}

fn is_zero(n: &u8) -> bool {
    *n == 0
}
