//! Recall on the small-object set (tests/common/smallset.rs): faces of 10–24 px and plates of
//! 20–40 px in 720p to 12 MP frames, cut by the frame, grayscale, drawn in the alpha plane and
//! stored sideways; the same scenes up to 1080p made of held-apart faces, mirrored, and as a
//! camera records them (blurred, JPEG). The default configuration is held, per size bucket, to
//! the goal of covering ≥ 0.99 of it by the coverage rule, or where it falls short to what it
//! was measured to cover, and the rule itself is checked against its calibration points.

mod common;

use common::smallset::{self, Camera, Case, Faces, Frames, Plane, Variant};
use common::*;
use image::RgbImage;

/// `img` with an exact Gaussian blur of σ = `k` × the box's short side over each truth box
/// (reading 3σ of surroundings).
fn blurred_boxes(case: &Case, k: f32) -> RgbImage {
    let mut img = case.views[0].clone();
    for t in &case.truth {
        let Some((x, y, w, h)) = t.bbox.pixel_rect(img.width(), img.height()) else {
            continue;
        };
        let sigma = k * t.bbox.width().min(t.bbox.height());
        let m = (3.0 * sigma).ceil() as u32 + 1;
        let (x0, y0) = (x.saturating_sub(m), y.saturating_sub(m));
        let (x1, y1) = ((x + w + m).min(img.width()), (y + h + m).min(img.height()));
        let (ww, wh) = ((x1 - x0) as usize, (y1 - y0) as usize);
        for c in 0..3 {
            let plane: Vec<f32> = (0..ww * wh)
                .map(|i| img.get_pixel(x0 + (i % ww) as u32, y0 + (i / ww) as u32).0[c] as f32)
                .collect();
            let soft = smallset::gaussian(&plane, ww, wh, sigma);
            for yy in y..y + h {
                for xx in x..x + w {
                    let v = soft[(yy - y0) as usize * ww + (xx - x0) as usize];
                    img.get_pixel_mut(xx, yy).0[c] = v.round() as u8;
                }
            }
        }
    }
    img
}

fn covered_fraction(case: &Case, after: &RgbImage) -> f64 {
    let (before, after) = (Plane::new(&case.views[0]), Plane::new(after));
    let covered = case
        .truth
        .iter()
        .filter(|t| smallset::coverage(&before, &after, &t.bbox).is_some_and(|c| c.covered()))
        .count();
    covered as f64 / case.truth.len() as f64
}

#[test]
fn the_coverage_rule_passes_strong_blurs_and_fails_weak_blurs_jpeg_and_noise() {
    let case = smallset::case(0, (1280, 720), Variant::Plain, Faces::Known, Camera::Sharp);
    assert!(case.truth.len() > 80, "{} objects", case.truth.len());
    assert_eq!(covered_fraction(&case, &blurred_boxes(&case, 0.3)), 1.0);
    let weak = covered_fraction(&case, &blurred_boxes(&case, 0.04));
    assert_eq!(weak, 0.0, "σ = 0.04 × short side covers {weak:.2}");
    let jpeg = rgb(&jpeg(&case.views[0], 90));
    assert_eq!(covered_fraction(&case, &jpeg), 0.0);
    let mut noisy = case.views[0].clone();
    let mut state = 1u32;
    for p in noisy.pixels_mut() {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let n = ((state >> 16) % 33) as i32 - 16;
        p.0 = p.0.map(|c| (c as i32 + n).clamp(0, 255) as u8);
    }
    assert_eq!(covered_fraction(&case, &noisy), 0.0);
}

/// Faces packed edge to edge lie across every edge between two tiles of the finest pass, where
/// one tile sees only part of a face and can score that part higher than its neighbour scores
/// the whole face: each face is covered and found whole (its box spans at least 70 % of the
/// face's height and width), not as the part one tile saw.
#[test]
fn every_face_of_a_crowd_is_covered_and_found_whole() {
    let case = smallset::crowd((1920, 1080), 20, Faces::Known);
    assert!(case.truth.len() > 1000, "{} faces", case.truth.len());
    let engine = config().engine().expect("models load");
    let mut pipeline = engine.pipeline().expect("a pipeline");
    let out = pipeline
        .anonymise(&case.bytes, &[veil::rendition::Rendition::default()])
        .expect("anonymised");
    let found: Vec<_> = out
        .report
        .detections
        .iter()
        .filter(|d| d.class == veil::detect::Class::Face && d.verify_pass == 0)
        .map(|d| d.bbox)
        .collect();
    let spanned = |t: &smallset::Truth| {
        found.iter().any(|b| {
            let share = |lo: f32, hi: f32, a: f32, z: f32| (hi.min(z) - lo.max(a)) / (z - a);
            share(b.x1, b.x2, t.bbox.x1, t.bbox.x2) >= 0.7
                && share(b.y1, b.y2, t.bbox.y1, t.bbox.y2) >= 0.7
        })
    };
    let covered = smallset::score(&case, &out.outputs[0].bytes);
    let mut wrong: Vec<String> = case
        .truth
        .iter()
        .zip(covered)
        .filter(|(t, covered)| !covered || !spanned(t))
        .map(|(t, covered)| {
            let how = if covered {
                "found as a part"
            } else {
                "not covered"
            };
            format!("{} at {:?}: {how}", t.origin, t.bbox)
        })
        .collect();
    wrong.sort();
    assert!(
        wrong.is_empty(),
        "of {} faces:\n{}",
        case.truth.len(),
        wrong.join("\n")
    );
}

/// The share of every size bucket the default configuration must cover, on every set.
const GOAL: f64 = 0.99;

/// The buckets where the default falls short of [`GOAL`] on a set, each with the objects it
/// was measured to miss there (README "Small objects"): a guard against regressions where the
/// goal is not met. Every other bucket of every set is held to the goal. On the sharp sets
/// every object missed is cut by the frame.
/// - The scenes as drawn, faces of 12 px: t1.jpg's second face on the 720p edge-cut frame, a
///   quarter of it above the top edge, which CenterFace scores 0.008 at best. (camera.png's
///   10 px face cut by the bottom edge of the 1080p one, also missed before, is found since the
///   second look at the edges looks both ways; the 16 px profile cut by a side edge since the
///   passes at 1× looked at the picture mirrored as well.) Its two 20 px plates missed, cut by
///   the frame along their length to 2.5 and 3.8 px of their height, leave that bucket at
///   0.991.
/// - The scenes made of held-apart faces (tests/data/bench_faces.toml), on which no setting of
///   veil was chosen: how the defaults carry over to other faces. Every face is covered (a
///   three-quarter profile 6.4 px wide at 10 px high was missed before face models looked at
///   the picture mirrored); on the frames up to 1080p two 20 px plates on the edge-cut frames
///   are not.
/// - The scenes mirrored left to right ([`Camera::Mirrored`]): the same objects and
///   backgrounds, each seen the other way round, each edge-cut object cut by the other edge.
///   Every face is covered (with one look per picture the defaults covered 90/92, 90/90,
///   88/90, 90/91 faces here: a profile scored 0.26 one way and 0.06 the other); the 720p
///   edge-cut frame's two 20 px plates cut along their length, and two 40 px plates, are not.
/// - The scenes as a camera records them ([`Camera::Soft`]: blurred, JPEG), on the frames up
///   to 1080p: the guarantee holds from 12 px faces and 28 px plates within an object or so,
///   not at its limit. Seven of the 76 soft 10 px faces are missed, four of them cut by the
///   frame, each scored under the tiny faces' 0.06; ten of the 174 soft 20 px plates; and one
///   face each at 12 and 16 px, cut by the frame.
const SHORT_OF_GOAL: [(Faces, Camera, &str, u32); 8] = [
    (Faces::Known, Camera::Sharp, "face 12 px", 1),
    (Faces::HeldApart, Camera::Sharp, "plate 20 px", 2),
    (Faces::Known, Camera::Mirrored, "plate 20 px", 2),
    (Faces::Known, Camera::Mirrored, "plate 40 px", 2),
    (Faces::Known, Camera::Soft, "face 10 px", 7),
    (Faces::Known, Camera::Soft, "face 12 px", 1),
    (Faces::Known, Camera::Soft, "face 16 px", 1),
    (Faces::Known, Camera::Soft, "plate 20 px", 10),
];

/// The most objects of a bucket of `total` the default may miss on the set made of `faces` and
/// recorded by `camera`: those [`SHORT_OF_GOAL`] lists, else as many as [`GOAL`] allows.
fn misses_allowed(faces: Faces, camera: Camera, bucket: &str, total: u32) -> u32 {
    SHORT_OF_GOAL
        .iter()
        .find(|&&(f, c, b, _)| (f, c, b) == (faces, camera, bucket))
        .map_or(((1.0 - GOAL) * total as f64).floor() as u32, |s| s.3)
}

/// The share of pixels away from every object (outside each box grown to twice its size) that
/// the defaults may change on `frames`: what they were measured to change, plus a margin. Recall
/// bought with false detections shows here. The whole set as drawn was measured at 0.84 %
/// (README "Small objects"), its large frames' background weighing most; its frames up to
/// 1080p, where objects stand closer, at 1.82 % with held-apart faces and 2.56 % mirrored
/// (both measured before small faces were filled from their surroundings), and 1.88 % soft.
fn over_redaction_ceiling(frames: Frames) -> f64 {
    match frames {
        Frames::All => 0.014,
        Frames::UpTo1080p => 0.033,
    }
}

#[test]
fn every_size_bucket_is_covered_to_the_goal_or_as_measured_with_the_defaults() {
    covered_at_least(Faces::Known, Camera::Sharp, Frames::All);
}

#[test]
fn faces_veil_was_not_tuned_on_are_covered_to_the_goal_or_as_measured() {
    covered_at_least(Faces::HeldApart, Camera::Sharp, Frames::UpTo1080p);
}

#[test]
fn mirrored_scenes_are_covered_to_the_goal_or_as_measured() {
    covered_at_least(Faces::Known, Camera::Mirrored, Frames::UpTo1080p);
}

#[test]
fn soft_scenes_are_covered_to_the_goal_or_as_measured() {
    covered_at_least(Faces::Known, Camera::Soft, Frames::UpTo1080p);
}

/// Evaluates the default configuration on the `frames` of the set made of `faces` and recorded
/// by `camera`, prints what it covers, its misses and the re-check's share of the time, and
/// holds every bucket to the goal or to what it was measured to miss ([`misses_allowed`]) and
/// the over-redaction to its ceiling ([`over_redaction_ceiling`]). The set as drawn runs whole;
/// its variants run on the frames up to 1080p, whose objects are those of the larger frames at
/// the same sizes (the recall bench runs every set whole).
fn covered_at_least(faces: Faces, camera: Camera, frames: Frames) {
    let engine = config().engine().expect("models load");
    let eval = smallset::evaluate(&engine, 2, faces, camera, frames);
    let over_redacted = eval.over_redacted();
    let smallset::Evaluation {
        buckets,
        mut misses,
        seconds,
        ..
    } = eval;
    let mut table = String::new();
    for (bucket, (covered, total)) in &buckets {
        table += &format!(
            "{bucket:>14}: {covered}/{total} = {:.3}\n",
            *covered as f64 / *total as f64
        );
    }
    misses.sort();
    let (detect, verify) = seconds
        .iter()
        .fold((0.0, 0.0), |(d, v), (_, _, dm, vm)| (d + dm, v + vm));
    eprintln!(
        "{faces:?} faces, {camera:?}\n{table}over-redaction {:.4} of the pixels away from every object\n\
         detection {:.1} s, re-check of redacted regions {:.1} s ({:.0} % of detection)\n\
         not covered: {misses:#?}",
        over_redacted,
        detect / 1e3,
        verify / 1e3,
        100.0 * verify / detect
    );
    let ceiling = over_redaction_ceiling(frames);
    assert!(
        over_redacted <= ceiling,
        "over-redaction {over_redacted:.4} above {ceiling}"
    );
    let sizes = smallset::FACE_HEIGHTS.len() + smallset::PLATE_WIDTHS.len();
    assert_eq!(buckets.len(), sizes, "{table}");
    for (bucket, &(covered, total)) in &buckets {
        let allowed = misses_allowed(faces, camera, bucket, total);
        assert!(
            total - covered <= allowed,
            "{bucket}: {covered}/{total} covered, more than {allowed} missed\n{table}"
        );
    }
}
