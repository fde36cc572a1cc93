//! Pipeline-only throughput: the images of a folder, each anonymised into every destination's
//! rendition of config/local.toml (as the daemon does), on 1 and 2 threads with one pipeline
//! each. scripts/bench_daemon.py compares the daemon's end-to-end rate with this one.
//!
//! `cargo bench --bench throughput` prints one JSON line per thread count. Settings come from
//! the environment: VEIL_BENCH_IMAGES (folder, default .cache/testdata), VEIL_BENCH_REPEAT
//! (passes over the folder, default 3), VEIL_BENCH_THREADS (default "1,2"). Run as a test
//! (`cargo test --benches`), it anonymises one image once.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use veil::config::Config;

fn images(dir: &Path) -> Vec<Vec<u8>> {
    let mut paths: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .map(|e| e.into_path())
        .filter(|p| {
            p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                ["jpg", "jpeg", "png", "webp"].contains(&e.to_ascii_lowercase().as_str())
            })
        })
        .collect();
    paths.sort();
    paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

fn main() {
    let full = common::benching();
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    let config = Config::load(Some(Path::new("config/local.toml"))).unwrap();
    let renditions: Vec<_> = config
        .destinations
        .iter()
        .map(|d| d.rendition.clone())
        .collect();
    let engine = config.engine().unwrap();
    let dir = env("VEIL_BENCH_IMAGES", ".cache/testdata");
    let mut work = images(Path::new(&dir));
    assert!(
        !work.is_empty(),
        "no images in {dir}: run scripts/prepare.sh, or set VEIL_BENCH_IMAGES"
    );
    let (repeat, threads): (usize, Vec<usize>) = if full {
        (
            env("VEIL_BENCH_REPEAT", "3").parse().unwrap(),
            env("VEIL_BENCH_THREADS", "1,2")
                .split(',')
                .map(|t| t.parse().unwrap())
                .collect(),
        )
    } else {
        work.truncate(1);
        (1, vec![1])
    };
    let jobs: Vec<&Vec<u8>> = (0..repeat).flat_map(|_| work.iter()).collect();
    for t in threads {
        let mut pipelines: Vec<_> = (0..t).map(|_| engine.pipeline().unwrap()).collect();
        let next = AtomicUsize::new(0);
        let start = Instant::now();
        std::thread::scope(|s| {
            for p in &mut pipelines {
                let (next, jobs, renditions) = (&next, &jobs, &renditions);
                s.spawn(move || {
                    while let Some(bytes) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) {
                        p.anonymise(bytes, renditions).unwrap();
                    }
                });
            }
        });
        let seconds = start.elapsed().as_secs_f64();
        println!(
            "{}",
            serde_json::json!({"threads": t, "images": jobs.len(), "seconds": seconds,
                "images_per_s": jobs.len() as f64 / seconds})
        );
    }
}
