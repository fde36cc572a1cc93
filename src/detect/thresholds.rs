//! The score an object must reach to be kept, by its size and by whether the frame cuts it.

use super::{Candidate, Class};
use crate::geometry::BoxF;

/// The share of an object's width or height beyond the frame from which it counts as cut by
/// it (see [`Thresholds`]). The objects the frame cuts in the small-object set have 30–50 % of
/// themselves outside.
pub const CUT_SHARE: f32 = 0.25;

/// The score a candidate must reach to be kept: `tiny` for objects no larger than `tiny_up_to`
/// (source pixels, measured as [`Class::size`]), `small` for the others no larger than
/// `small_up_to`, `large` for the rest, and `cut` for objects cut by the frame, whatever their
/// size, unless their size's own is lower (centerface-int8's small objects: 0.08 against a cut
/// threshold of 0.1). A model scores the smallest objects lowest (it sees them upscaled, with
/// little detail), and a false box over a small object's area changes few pixels; a false large
/// box blurs a patch of background anyone notices. So the small objects get a lower threshold,
/// and those at the limit of the guarantee a lower one still: a face there that a camera
/// recorded soft, or seen in profile, scores under the small objects' threshold, and a false
/// box of its size changes fewest pixels of all. An object cut by the frame shows only
/// part of itself (the mirrored border completes it only as a reflection), scores lower still,
/// and a false box there changes only the part inside the frame. It counts as cut when at
/// least [`CUT_SHARE`] of it lies beyond the frame: a box that only overhangs the edge shows
/// the model nearly all of its object, and at the plates' cut threshold (0.01) a helmet at the
/// bottom of a portrait, overhanging by 4 %, was blurred as a 224 × 192 px plate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub large: f32,
    pub small: f32,
    pub small_up_to: f32,
    pub tiny: f32,
    pub tiny_up_to: f32,
    pub cut: f32,
}

impl Thresholds {
    /// The lowest score a candidate can be kept at: what decoding keeps.
    pub(super) fn floor(&self, frame: Option<&BoxF>) -> f32 {
        let lowest = self.large.min(self.small).min(self.tiny);
        if frame.is_some() {
            lowest.min(self.cut)
        } else {
            lowest
        }
    }

    /// Every threshold times `factor` (the re-check of redacted regions uses a fraction).
    pub fn scaled(self, factor: f32) -> Self {
        Self {
            large: self.large * factor,
            small: self.small * factor,
            tiny: self.tiny * factor,
            cut: self.cut * factor,
            ..self
        }
    }

    /// Whether `c` scores enough for its size; `frame`, where given, is the picture's frame
    /// within a searched image extended beyond it, and a box with at least [`CUT_SHARE`] of
    /// itself beyond it is cut by it.
    pub(super) fn keeps(&self, class: Class, c: &Candidate, frame: Option<&BoxF>) -> bool {
        c.score >= self.needed(class, &c.bbox, frame)
    }

    /// The score an object of class `class` at `bbox` must reach (see `Thresholds::keeps`).
    pub fn needed(&self, class: Class, bbox: &BoxF, frame: Option<&BoxF>) -> f32 {
        let size = class.size(bbox);
        let by_size = if size <= self.tiny_up_to {
            self.tiny
        } else if size <= self.small_up_to {
            self.small
        } else {
            self.large
        };
        // A cut object shows less of itself than a whole one of its size: never held higher.
        if frame.is_some_and(|f| bbox.share_outside(f) >= CUT_SHARE) {
            self.cut.min(by_size)
        } else {
            by_size
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Thresholds with every level apart: tiny objects up to 14 px, small up to 20 px.
    pub(in crate::detect) fn thresholds() -> Thresholds {
        Thresholds {
            large: 0.15,
            small: 0.1,
            small_up_to: 20.0,
            tiny: 0.07,
            tiny_up_to: 14.0,
            cut: 0.05,
        }
    }

    #[test]
    fn tiny_small_and_cut_objects_are_held_to_their_thresholds_and_others_to_the_large_one() {
        let t = thresholds();
        let c = |height: f32, score| Candidate {
            bbox: BoxF::new(10.0, 10.0, 110.0, 10.0 + height),
            score,
        };
        assert!(t.keeps(Class::Face, &c(14.0, 0.07), None), "14 px is tiny");
        assert!(!t.keeps(Class::Face, &c(14.0, 0.06), None));
        assert!(
            !t.keeps(Class::Face, &c(15.0, 0.09), None),
            "15 px is small"
        );
        assert!(t.keeps(Class::Face, &c(20.0, 0.1), None), "20 px is small");
        assert!(!t.keeps(Class::Face, &c(20.0, 0.09), None));
        assert!(!t.keeps(Class::Face, &c(21.0, 0.14), None), "21 px is not");
        assert!(t.keeps(Class::Face, &c(21.0, 0.15), None));
        // a plate's size is its width: 100 px here, whatever the height
        assert!(!t.keeps(Class::Plate, &c(10.0, 0.12), None));
        // inside the frame the cut threshold does not apply; across its edge it does, once a
        // quarter of the box is beyond it (the box spans 10..110 × 10..60; 25 % and 5 % here)
        let frame = BoxF::new(0.0, 0.0, 200.0, 200.0);
        assert!(!t.keeps(Class::Face, &c(50.0, 0.06), Some(&frame)));
        let across = BoxF::new(35.0, 0.0, 120.0, 200.0);
        assert!(t.keeps(Class::Face, &c(50.0, 0.05), Some(&across)));
        assert!(!t.keeps(Class::Face, &c(50.0, 0.04), Some(&across)));
        let overhung = BoxF::new(15.0, 0.0, 120.0, 200.0);
        assert!(!t.keeps(Class::Face, &c(50.0, 0.06), Some(&overhung)));
        // a cut threshold above the small one (as centerface-int8's: cut 0.1, small 0.08)
        // never holds a small cut object higher than a whole one of its size
        let high_cut = Thresholds { cut: 0.12, ..t };
        assert!(high_cut.keeps(Class::Face, &c(20.0, 0.1), Some(&across)));
        assert!(!high_cut.keeps(Class::Face, &c(50.0, 0.11), Some(&across)));
        assert_eq!(t.floor(None), 0.07);
        assert_eq!(t.floor(Some(&frame)), 0.05);
        let half = t.scaled(0.5);
        assert_eq!(
            (half.large, half.small, half.tiny, half.cut),
            (0.075, 0.05, 0.035, 0.025)
        );
        assert_eq!((half.small_up_to, half.tiny_up_to), (20.0, 14.0));
    }
}
