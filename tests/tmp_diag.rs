mod common;
use common::smallset::{self, Camera, Faces, Variant};
use common::*;

#[test]
#[ignore]
fn diag() {
    let mut c = config();
    c.redaction.verify_passes = 0;
    c.detectors.truncate(1);
    let t = 0.005;
    c.detectors[0].threshold = Some(t);
    c.detectors[0].small_threshold = Some(t);
    c.detectors[0].tiny_threshold = Some(t);
    c.detectors[0].cut_threshold = Some(t);
    let mut p = pipeline_with(&c);
    for camera in [Camera::Sharp, Camera::Mirrored] {
        for (index, canvas) in [(4usize, (1280u32, 720u32)), (5, (1920, 1080))] {
            let case = smallset::case(index, canvas, Variant::EdgeCut, Faces::Known, camera);
            let out = p
                .anonymise(&case.bytes, &[veil::rendition::Rendition::default()])
                .unwrap();
            for tr in case
                .truth
                .iter()
                .filter(|tr| tr.origin.starts_with("camera") || tr.origin.starts_with("t1.jpg #2"))
            {
                let best = out
                    .report
                    .detections
                    .iter()
                    .filter(|d| d.class == tr.class)
                    .map(|d| (d.bbox.iou(&tr.bbox), d.score, d.bbox))
                    .filter(|x| x.0 > 0.1)
                    .fold(Vec::new(), |mut v, x| {
                        v.push(x);
                        v
                    });
                let mut best = best;
                best.sort_by(|a, b| b.1.total_cmp(&a.1));
                best.truncate(3);
                eprintln!(
                    "{} {} {} truth {:?}: {:?}",
                    case.name,
                    tr.bucket,
                    tr.origin,
                    tr.bbox,
                    best.iter()
                        .map(|(i, s, b)| (format!("{i:.2}"), format!("{s:.3}"), *b))
                        .collect::<Vec<_>>()
                );
            }
        }
    }
}
