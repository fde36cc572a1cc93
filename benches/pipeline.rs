//! Detection latency per model and tile plan, and the whole `anonymise` per image, on t1.jpg
//! (six faces) resized to 720p and 1080p. Needs the runtime, models and photos that
//! scripts/setup.sh and scripts/fetch_test_images.py install; scripts/bench.sh runs it. Larger
//! frames (3840×2160, 4000×3000) are timed by the recall bench, image by image: with the default
//! guarantee one 12 MP frame takes over a minute, too long for criterion's ten samples.
//!
//! Each pipeline runs single-threaded inference (`intra_threads = 1`), as veil's workers do.

#[path = "../tests/common/mod.rs"]
mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use image::imageops::FilterType;
use veil::config::{DetectorConfig, RecallConfig};
use veil::rendition::Rendition;

const SIZES: [(&str, u32, u32); 2] = [("720p", 1280, 720), ("1080p", 1920, 1080)];

/// The frame sizes to run: both under `cargo bench`, the smaller alone in test mode
/// ([`common::benching`]).
fn sizes() -> &'static [(&'static str, u32, u32)] {
    if common::benching() {
        &SIZES
    } else {
        &SIZES[..1]
    }
}

fn photo_at(w: u32, h: u32) -> (image::RgbImage, Vec<u8>) {
    let t1 = image::load_from_memory(&common::photo("t1.jpg")).unwrap();
    let rgb = t1.resize_exact(w, h, FilterType::Lanczos3).to_rgb8();
    let mut jpeg = Vec::new();
    jpeg_encoder::Encoder::new(&mut jpeg, 90)
        .encode(
            rgb.as_raw(),
            w as u16,
            h as u16,
            jpeg_encoder::ColorType::Rgb,
        )
        .unwrap();
    (rgb, jpeg)
}

fn detection(c: &mut Criterion) {
    let mut group = c.benchmark_group("detect");
    group.sample_size(10);
    for model in [
        "yunet",
        "centerface",
        "centerface-int8",
        "platedet",
        "platedet-int8",
    ] {
        // "planned": the default guarantee (faces 10 px, plates 20 px); "whole": one pass over
        // the whole image at the model's `whole_size`, as if only objects large enough to be
        // seen there mattered (the guarantee set to the size that pass shows at `min_object`).
        let manifest = veil::manifest::Manifest::load(&common::config().runtime.models_dir)
            .expect("models are set up (scripts/setup.sh)");
        let tiling = manifest.get(model).unwrap().defaults().tiling;
        for &(size, w, h) in sizes() {
            let (rgb, _) = photo_at(w, h);
            let whole = tiling.min_object * w.max(h) as f32 / tiling.whole_size as f32;
            for (plan, smallest) in [("planned", None), ("whole", Some(whole))] {
                let mut config = common::config();
                config.detectors = vec![DetectorConfig {
                    model: model.into(),
                    ..Default::default()
                }];
                if let Some(px) = smallest {
                    config.recall = RecallConfig {
                        face_min_px: px,
                        plate_min_px: px,
                    };
                }
                let mut pipeline = common::pipeline_with(&config);
                group.bench_function(format!("{model}/{plan}/{size}"), |b| {
                    b.iter(|| pipeline.detect(&rgb).unwrap())
                });
            }
        }
    }
    group.finish();
}

fn anonymise(c: &mut Criterion) {
    let mut group = c.benchmark_group("anonymise");
    group.sample_size(10);
    for (name, detectors) in [
        ("default", vec!["centerface-int8", "platedet-int8"]),
        ("float_faces", vec!["centerface", "platedet-int8"]),
        ("faces_only", vec!["centerface-int8"]),
    ] {
        let mut config = common::config();
        config.detectors = detectors
            .into_iter()
            .map(|m| DetectorConfig {
                model: m.into(),
                ..Default::default()
            })
            .collect();
        let mut pipeline = common::pipeline_with(&config);
        for &(size, w, h) in sizes() {
            let (_, jpeg) = photo_at(w, h);
            let renditions = [Rendition::default()];
            group.bench_function(format!("{name}/{size}"), |b| {
                b.iter(|| pipeline.anonymise(&jpeg, &renditions).unwrap())
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(4));
    targets = detection, anonymise
}
criterion_main!(benches);
