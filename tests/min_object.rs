//! Measures a model's `min_object` (models/README.md): objects of the small-object set at N px,
//! the model run at exactly one scale so that they are N px in its input too. A measurement, not
//! a check, so it is ignored by default:
//!
//! `SIZES=16,20,24,32 MODEL=centerface cargo test --release --test min_object -- --ignored --nocapture`
//!
//! `SCALE=3.2` runs the model at that scale instead (upscaled objects); `THRESHOLD=0.1` overrides
//! its threshold; `FACES=held-apart` takes the faces of tests/data/bench_faces.toml instead of the
//! known faces. The objects not found are listed by the photo they come from.

mod common;

use common::smallset::{self, Faces};
use common::*;
use veil::config::{DetectorConfig, RecallConfig};
use veil::detect::Class;

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
#[ignore = "a measurement: run it by hand (see the module's doc)"]
fn objects_found_per_size_at_one_scale() {
    let model: String = env("MODEL").unwrap_or_else(|| "centerface".into());
    let sizes: Vec<u32> = std::env::var("SIZES")
        .unwrap_or_else(|_| "16,20,24,32".into())
        .split(',')
        .map(|s| s.trim().parse().expect("SIZES is a list of pixel sizes"))
        .collect();
    let scale: f32 = env("SCALE").unwrap_or(1.0);
    let class = if model.starts_with("platedet") {
        Class::Plate
    } else {
        Class::Face
    };
    for size in sizes {
        let (faces, plates): (&[u32], &[u32]) = match class {
            Class::Face => (&[size], &[]),
            Class::Plate => (&[], &[size]),
        };
        let source = match std::env::var("FACES").as_deref() {
            Ok("held-apart") => Faces::HeldApart,
            _ => Faces::Known,
        };
        let (img, truth) = smallset::scene_with(1, (1280, 720), false, source, faces, plates);
        let mut c = config();
        let seen = size as f32 * scale;
        c.detectors = vec![DetectorConfig {
            model: model.clone(),
            threshold: env("THRESHOLD"),
            ..Default::default()
        }];
        c.detectors[0].tiling.min_object = Some(seen);
        c.detectors[0].tiling.overlap = Some(((2.5 * seen) as u32).max(64));
        c.recall = RecallConfig {
            face_min_px: size as f32,
            plate_min_px: size as f32,
        };
        let found = pipeline_with(&c).detect(&img).unwrap();
        let (hits, missed): (Vec<_>, Vec<_>) = truth
            .iter()
            .partition(|t| found.iter().any(|d| d.bbox.iou(&t.bbox) > 0.3));
        let hits = hits.len();
        println!(
            "{model} {size} px at scale {scale}: {hits}/{} found ({} detections)",
            truth.len(),
            found.len()
        );
        for t in missed {
            println!("  not found: {}", t.origin);
        }
    }
}
