//! The short run of the fuzzing in CI: the inputs of the fuzz targets (fuzz/src/bin/) replayed
//! without instrumentation — every seed (fuzz/seeds/, the shipped config files, the real test
//! photos), every truncation of it, and a fixed set of random byte mutations — through the same
//! entry points. Each must end in a value or an error, never a panic. The coverage-guided run is
//! `scripts/fuzz.sh`.

mod common;

use std::path::Path;

use common::*;

/// The seed, its truncations (all of them for small seeds, 64 spread over large ones), and
/// `mutations` copies with a few bytes flipped, inserted or removed.
fn variants(seed: &[u8], mutations: usize) -> Vec<Vec<u8>> {
    let mut out = vec![seed.to_vec()];
    let step = (seed.len() / 64).max(1);
    out.extend((0..seed.len()).step_by(step).map(|n| seed[..n].to_vec()));
    let mut rng = Lcg(seed.len() as u64);
    for _ in 0..mutations {
        let mut m = seed.to_vec();
        for _ in 0..1 + rng.below(4) {
            if m.is_empty() {
                m.push(rng.below(256) as u8);
                continue;
            }
            let at = rng.below(m.len() as u64) as usize;
            match rng.below(4) {
                0 => m[at] ^= 1 << rng.below(8),
                1 => m[at] = [0, 0xFF, b'"', b'{', b'%', b'\\'][rng.below(6) as usize],
                2 => m.insert(at, rng.below(256) as u8),
                _ => {
                    m.remove(at);
                }
            }
        }
        out.push(m);
    }
    out
}

fn files(dir: &Path) -> Vec<Vec<u8>> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

#[test]
fn notification_bodies_never_panic_the_parser() {
    let mut seen = 0;
    for seed in files(&root().join("fuzz/seeds/notification")) {
        for body in variants(&seed, 20_000) {
            if let Ok(text) = std::str::from_utf8(&body) {
                let _ = veil::daemon::events::parse(text);
                seen += 1;
            }
        }
    }
    assert!(seen > 40_000, "{seen} bodies");
}

#[test]
fn configuration_files_never_panic_the_loader() {
    let mut seen = 0;
    for name in ["veil.toml", "veil.example.toml", "local.toml"] {
        let seed = std::fs::read(root().join("config").join(name)).unwrap();
        for text in variants(&seed, 3000) {
            if let Ok(text) = std::str::from_utf8(&text)
                && let Ok(config) = veil::config::Config::parse(text)
            {
                let _ = config.validate();
                let _ = veil::daemon::config::DaemonConfig::from_config(&config);
                seen += 1;
            }
        }
    }
    assert!(seen > 100, "{seen} configurations parsed");
}

#[test]
fn image_bytes_never_panic_the_decoders() {
    let limits = veil::codec::Limits {
        max_bytes: 1 << 20,
        max_pixels: 1 << 20,
    };
    let mut seeds = files(&root().join("fuzz/seeds/decode"));
    // Real photos too: their headers (EXIF, ICC, progressive JPEG, 16-bit PNG) are richer.
    for name in ["t1.jpg", "astronaut.png", "camera.png"] {
        seeds.push(photo(name));
    }
    let mut decoded = 0;
    for seed in seeds {
        // Mutations of a large photo mostly land in pixel data: keep them to the header.
        let (head, _) = seed.split_at(seed.len().min(4096));
        for bytes in variants(head, 2000) {
            decoded += usize::from(veil::codec::decode(&bytes, &limits).is_ok());
        }
    }
    assert!(
        decoded > 0,
        "no variant decoded at all: the seeds are not images"
    );
}
