//! The re-check of what veil publishes: which of the finds in the windows around redacted
//! regions count as an object still seen, to be redacted again. The pipeline encodes each
//! rendition, decodes it and runs the detectors again around what it redacted (see
//! `Pipeline::publish`); these rules decide what of that it acts on. Too low a bar and the
//! re-check chases blobs of its own blur around every region; too high and a blurred head that a
//! detector still scores as a face is published.

use crate::detect::{Class, Detection, Thresholds};
use crate::geometry::BoxF;

/// Fraction of each detector's threshold the re-check searches its windows at: a window around
/// a small object shows the model less of its context than a run over the whole image. What
/// the search finds is then held to [`margin`] of the threshold detection would hold
/// it to, the one for cut objects where the frame cuts it (known only once a find is mapped
/// back to the picture).
pub(crate) const SEARCH_MARGIN: f32 = 0.5;

/// The fraction for finds larger than the small-object size (faces over 20 px, plates over
/// 40 px by default). At half the threshold the re-check took blurred heads, shoulders and
/// hands of a group photo for faces (t1.jpg: finds of 100–230 px at 0.08–0.09 where the
/// threshold is 0.15), and every fill laid over such a find is looked at again: blob after
/// blob around each face.
const LARGE_MARGIN: f32 = 0.75;

/// The share of the smallest guaranteed size (`[recall]`, in the pixels of the image checked)
/// under which the re-check neither looks around a redacted object nor counts a find. Detection
/// keeps boxes of any size that score enough, and boxes far under the guarantee are mostly
/// texture (on the small-object set real 10 px faces are boxed 8–13 px high, and of its 3 642
/// false face boxes 415 were under 7 px). A published copy smaller than the source shows every
/// object smaller again: a face of 15 px in a 1920 px frame is 5 px in a 640 px copy, less than
/// veil promises to find in any image, and a window around it runs at the finest, costliest
/// scale of the plan.
const SMALLEST_SHARE: f32 = 0.7;

/// Whether the re-check looks at `bbox` (a redacted object, or a find): whether it is at least
/// [`SMALLEST_SHARE`] of the `smallest` size the class is guaranteed, in the same pixels.
pub(crate) fn worth_a_look(class: Class, bbox: &BoxF, smallest: f32) -> bool {
    class.size(bbox) >= SMALLEST_SHARE * smallest
}

/// Whether a find of the re-check is large: more than twice the small-object size.
fn is_large(class: Class, find: &BoxF, thresholds: &Thresholds) -> bool {
    class.size(find) > 2.0 * thresholds.small_up_to
}

/// The share of its detection threshold a find of the re-check must reach. Objects up to the
/// small-object size are held to the threshold itself: theirs are the lowest of all, chosen
/// where small faces and plates part from texture, and under them a window scores the blur
/// laid over a small false box as a face a little larger, each fill laid over that find is
/// looked at again, and so on (a photo of a motorbike in a garage, no face in it: 106 face
/// boxes at half the thresholds, 51 at the threshold itself). Larger finds reach
/// [`LARGE_MARGIN`] of theirs.
fn margin(class: Class, find: &BoxF, thresholds: &Thresholds) -> f32 {
    if class.size(find) <= thresholds.small_up_to {
        1.0
    } else {
        LARGE_MARGIN
    }
}

/// Whether a find of the re-check scores enough for its size: [`margin`] of the
/// threshold detection holds it to, the one for cut objects where the `frame` cuts it (see
/// [`Thresholds`]).
fn scores_enough(class: Class, find: &Detection, thresholds: &Thresholds, frame: &BoxF) -> bool {
    find.score
        >= margin(class, &find.bbox, thresholds) * thresholds.needed(class, &find.bbox, Some(frame))
}

/// How much larger than a redacted region a find of the re-check may be (measured as
/// [`Class::size`]) and still count as what remains of it, or of a neighbour it half hides.
const RESIDUE_MAX_GROWTH: f32 = 2.0;

/// How much a large find of the re-check and a redacted region must share, as a fraction of
/// the smaller of the two, for the find to count as what remains of the region's object.
const RESIDUE_MIN_OVERLAP: f32 = 0.5;

/// Whether a find of the re-check is a residue of one of the redacted `regions`: it overlaps
/// the region, and is at most [`RESIDUE_MAX_GROWTH`] times its size. The re-check lowers the
/// threshold only to ask whether a redacted object can still be seen; at half the threshold a
/// tile run whole for a crowd of regions also scores large stretches of background, and a box
/// many times a region's size is not that region seen again (the full-threshold detection
/// already looked for large objects).
///
/// A `large` find (see [`is_large`]) must also share at least [`RESIDUE_MIN_OVERLAP`] of the
/// smaller of the two (a find within the region, or a whole object around a part-found one):
/// the edge of a fill laid over a large residue makes new blobs beside it, each filled in turn
/// (t1.jpg, a group photo: finds of 41–216 px mostly beside every region). A small find need
/// only touch a region: small objects stand close in a crowd, and one beside a redacted
/// neighbour can be found only by the re-check (a 16 px face cut by the frame, between two
/// found ones, on the small-object set), at the cost of a few pixels.
fn is_residue(class: Class, find: &BoxF, regions: &[BoxF], large: bool) -> bool {
    regions.iter().any(|r| {
        let shared = find.intersection(r).map_or(0.0, |i| i.area());
        let enough = if large {
            shared >= RESIDUE_MIN_OVERLAP * find.area().min(r.area())
        } else {
            shared > 0.0
        };
        enough && class.size(find) <= RESIDUE_MAX_GROWTH * class.size(r)
    })
}

/// Whether `find`, a find of the re-check in the windows around the redacted `regions` (both in
/// the pixels of the image the windows were cut from, whose picture lies at `frame`), is an
/// object still seen: it is [worth a look](worth_a_look) for the class's `smallest` size,
/// [scores enough for its size](scores_enough) and is a [residue](is_residue) of one of the
/// regions.
pub(crate) fn still_seen(
    class: Class,
    find: &Detection,
    thresholds: &Thresholds,
    smallest: f32,
    frame: &BoxF,
    regions: &[BoxF],
) -> bool {
    worth_a_look(class, &find.bbox, smallest)
        && scores_enough(class, find, thresholds, frame)
        && is_residue(
            class,
            &find.bbox,
            regions,
            is_large(class, &find.bbox, thresholds),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recheck_holds_small_finds_to_the_threshold_and_larger_ones_to_three_quarters() {
        let thresholds = Thresholds {
            large: 0.2,
            small: 0.1,
            small_up_to: 20.0,
            tiny: 0.09,
            tiny_up_to: 14.0,
            cut: 0.08,
        };
        let find = |height: f32, score: f32| Detection {
            class: Class::Face,
            model: "centerface".into(),
            score,
            bbox: BoxF::new(100.0, 100.0, 100.0 + height, 100.0 + height),
            verify_pass: 1,
        };
        let frame = BoxF::new(0.0, 0.0, 500.0, 500.0);
        let keeps = |d: Detection| scores_enough(Class::Face, &d, &thresholds, &frame);
        assert!(!keeps(find(14.0, 0.089)), "tiny: the tiny threshold itself");
        assert!(keeps(find(14.0, 0.09)));
        assert!(
            !keeps(find(20.0, 0.099)),
            "small: the small threshold itself"
        );
        assert!(keeps(find(20.0, 0.1)));
        assert!(!keeps(find(21.0, 0.149)), "larger: three quarters of 0.2");
        assert!(keeps(find(21.0, 0.15)));
        assert!(keeps(find(200.0, 0.3)));
        // cut by the frame by a quarter or more: the cut threshold where it is lower, to the
        // same share
        let cut = |height: f32, score: f32| Detection {
            bbox: BoxF::new(-height / 3.0, 0.0, height * 2.0 / 3.0, height),
            ..find(0.0, score)
        };
        assert!(keeps(cut(18.0, 0.08)));
        assert!(!keeps(cut(18.0, 0.079)));
        assert!(keeps(cut(80.0, 0.061)));
        assert!(!keeps(cut(80.0, 0.059)));
    }

    #[test]
    fn objects_far_under_the_guaranteed_size_are_not_looked_at() {
        let face = |height: f32| BoxF::new(0.0, 0.0, 100.0, height);
        assert!(worth_a_look(Class::Face, &face(7.1), 10.0));
        assert!(!worth_a_look(Class::Face, &face(6.9), 10.0));
        // plates by their width: a 14 px wide plate against 20 px
        let plate = |width: f32| BoxF::new(0.0, 0.0, width, 100.0);
        assert!(worth_a_look(Class::Plate, &plate(14.1), 20.0));
        assert!(!worth_a_look(Class::Plate, &plate(13.9), 20.0));
    }

    #[test]
    fn a_residue_overlaps_a_redacted_region_and_is_not_many_times_its_size() {
        let regions = [BoxF::new(100.0, 100.0, 130.0, 140.0)]; // 40 px high
        let residue = |b: BoxF| is_residue(Class::Face, &b, &regions, false);
        assert!(
            residue(BoxF::new(105.0, 105.0, 125.0, 135.0)),
            "the blurred face again"
        );
        assert!(
            residue(BoxF::new(90.0, 80.0, 150.0, 160.0)),
            "the whole face around a part-found one (twice the region's height)"
        );
        assert!(
            !residue(BoxF::new(200.0, 100.0, 230.0, 140.0)),
            "beside the region, not on it"
        );
        assert!(
            residue(BoxF::new(120.0, 100.0, 150.0, 140.0)),
            "a small find a third on the region, the rest beside it"
        );
        assert!(
            !residue(BoxF::new(0.0, 0.0, 400.0, 500.0)),
            "a box of background many times the region's size"
        );
        // Plates are measured by width: a find as wide as the region is a residue however tall.
        let plate = [BoxF::new(0.0, 0.0, 60.0, 20.0)];
        assert!(is_residue(
            Class::Plate,
            &BoxF::new(0.0, 0.0, 60.0, 50.0),
            &plate,
            false
        ));
        assert!(!is_residue(
            Class::Plate,
            &BoxF::new(0.0, 0.0, 130.0, 20.0),
            &plate,
            false
        ));
    }

    #[test]
    fn a_large_residue_lies_mostly_on_a_redacted_region() {
        let regions = [BoxF::new(100.0, 100.0, 200.0, 220.0)]; // 120 px high
        let residue = |b: BoxF| is_residue(Class::Face, &b, &regions, true);
        assert!(
            residue(BoxF::new(110.0, 110.0, 190.0, 210.0)),
            "the blurred face again"
        );
        assert!(
            residue(BoxF::new(140.0, 100.0, 220.0, 220.0)),
            "three quarters on the region"
        );
        assert!(
            residue(BoxF::new(80.0, 80.0, 260.0, 300.0)),
            "the whole face around a part-found one"
        );
        assert!(
            !residue(BoxF::new(170.0, 180.0, 260.0, 260.0)),
            "a blob by the region's corner, a sixth of it on the region"
        );
    }
}
