//! Recall on the small-object set (tests/common/smallset.rs): faces of 10–24 px and plates of
//! 20–40 px in 720p to 12 MP frames, cut by the frame, grayscale, drawn in the alpha plane and
//! stored sideways; the same scenes up to 1080p made of held-apart faces, and mirrored. The default
//! configuration is held, per size bucket, to what it was measured to cover by the coverage rule
//! (the goal is ≥ 0.99 everywhere), and the rule itself is checked against its calibration points.

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

/// What the default configuration covers per size bucket, less a margin of about one object: a
/// guard against regressions, on each set (measured: README "Small objects"). The goal is 0.99
/// everywhere.
/// - The scenes as drawn: faces of 24 px and plates of 20, 28 and 40 px reach it. Faces of 10,
///   12 and 16 px miss one each (0.989), all cut by the frame and never found by detection:
///   camera.png's 10 px face on the 1080p edge-cut frame (7 × 5 px of it inside the frame),
///   t1.jpg's second face on the 720p one, and camera.png's 16 px profile cut by its right
///   edge (found while the passes at 1× looked at the picture mirrored too). The two 20 px
///   plates missed are cut by the frame along their length, to 2.5 and 3.8 px of their height.
/// - The scenes made of held-apart faces (tests/data/bench_faces.toml), on which no setting of
///   veil was chosen: how the defaults carry over to other faces. Every face is covered; before
///   face models also looked at the picture mirrored, a three-quarter profile 6.4 px wide at
///   10 px high was missed on the grayscale 1080p frame.
/// - The scenes mirrored left to right ([`Camera::Mirrored`]): the same objects and
///   backgrounds, each seen the other way round, each edge-cut object cut by the other edge.
///   Every face but camera.png's 16 px profile cut by a side edge (as above) is covered; with
///   one look per picture the defaults covered 90/92, 90/90, 88/90, 90/91 faces here (a profile
///   scored 0.26 one way and 0.06 the other).
const FLOORS: [(&str, f64); 7] = [
    ("face 10 px", 0.98),
    ("face 12 px", 0.98),
    ("face 16 px", 0.98),
    ("face 24 px", 0.98),
    ("plate 20 px", 0.98),
    ("plate 28 px", 0.98),
    ("plate 40 px", 0.98),
];

/// The share of pixels away from every object (outside each box grown to twice its size) that
/// the defaults may change on `frames`: what they were measured to change, plus a margin. Recall
/// bought with false detections shows here. The whole set as drawn was measured at 0.83 %
/// (README "Small objects"), its large frames' background weighing most; its frames up to
/// 1080p, where objects stand closer, at 1.82 % with held-apart faces and 2.56 % mirrored
/// (both measured before small faces were filled from their surroundings).
fn over_redaction_ceiling(frames: Frames) -> f64 {
    match frames {
        Frames::All => 0.014,
        Frames::UpTo1080p => 0.033,
    }
}

#[test]
fn every_size_bucket_is_covered_at_least_as_well_as_measured_with_the_defaults() {
    covered_at_least(Faces::Known, Camera::Sharp, Frames::All);
}

#[test]
fn faces_veil_was_not_tuned_on_are_covered_at_least_as_well_as_measured() {
    covered_at_least(Faces::HeldApart, Camera::Sharp, Frames::UpTo1080p);
}

#[test]
fn mirrored_scenes_are_covered_at_least_as_well_as_measured() {
    covered_at_least(Faces::Known, Camera::Mirrored, Frames::UpTo1080p);
}

/// Evaluates the default configuration on the `frames` of the set made of `faces` and recorded
/// by `camera`, prints what it covers, its misses and the re-check's share of the time, and
/// holds every bucket to its floor ([`FLOORS`]) and the over-redaction to its ceiling
/// ([`over_redaction_ceiling`]). The set as drawn runs whole; its variants run on the frames up
/// to 1080p, whose objects are those of the larger frames at the same sizes (the recall bench
/// runs every set whole).
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
    assert_eq!(buckets.len(), FLOORS.len());
    for &(bucket, floor) in &FLOORS {
        let (covered, total) = buckets[bucket];
        assert!(
            covered as f64 >= floor * total as f64,
            "{bucket}: {covered}/{total} covered, below {floor}\n{table}"
        );
    }
}
