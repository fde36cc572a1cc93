//! Recall per size bucket on the small-object set (tests/common/smallset.rs), and the time each
//! configuration takes for it, side by side in one run: the default (centerface-int8 +
//! platedet-int8, planned from `[recall]`, small and cut objects held to lower thresholds), the
//! float CenterFace in int8's place (the previous release's default), the float platedet in
//! int8's place, the default models with larger objects guaranteed (faces from 16 px and plates
//! from 28 px, faces from 24 px and plates from 40 px), and the plan of earlier releases
//! (objects assumed to be at least 48 px: a whole pass and few tiles); then the default again
//! on the set made of held-apart faces (tests/data/bench_faces.toml), on which no setting of
//! veil was chosen, on the set as a camera records it (blurred and stored as JPEG:
//! `Camera::Soft`), and on the scenes mirrored left to right (`Camera::Mirrored`). Prints a
//! table; scripts/bench.sh runs it. For the default on every set (known faces, held-apart faces,
//! soft frames, mirrored scenes) it also counts the objects that full detection (the re-check
//! off) still finds in its outputs.
//! `RECALL_ONLY=float` runs only the configurations whose name contains it (`RECALL_ONLY=default`
//! the default alone: a name equal to it wins); `RECALL_SWEEP=1`
//! runs each detector alone at several thresholds instead, the measurements behind the default
//! thresholds. Needs the runtime, models and photos of scripts/prepare.sh.
//!
//! `cargo bench --bench recall`. In test mode (`cargo test --benches`) it does nothing: the same
//! evaluation of the default configuration runs in tests/small_objects.rs.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use common::smallset::{self, Camera, Faces, Frames};
use veil::config::{Config, RecallConfig};

/// The most objects not covered that a configuration's table lists one by one.
const MISSES_LISTED: usize = 40;

/// The name given to the default's run on the held-apart faces.
const HELD_APART: &str = "default, held-apart faces";

/// The name given to the default's run on the set as a camera records it ([`Camera::Soft`]).
const SOFT: &str = "default, soft frames";

/// The name given to the default's run on the scenes mirrored left to right
/// ([`Camera::Mirrored`]).
const MIRRORED: &str = "default, mirrored scenes";

fn configs() -> Vec<(String, Config)> {
    let mut list = if std::env::var_os("RECALL_SWEEP").is_some() {
        sweep()
    } else {
        side_by_side()
    };
    let only = std::env::var("RECALL_ONLY").unwrap_or_default();
    if list.iter().any(|(name, _)| *name == only) {
        list.retain(|(name, _)| *name == only);
    } else {
        list.retain(|(name, _)| name.contains(&only));
    }
    list
}

/// The default beside the alternatives it was chosen over.
fn side_by_side() -> Vec<(String, Config)> {
    let mut list = vec![("default", common::config())];
    {
        let mut float_faces = common::config();
        float_faces.detectors[0].model = "centerface".into();
        list.push((
            "previous default: float centerface instead of centerface-int8",
            float_faces,
        ));
        let mut float_plates = common::config();
        float_plates.detectors[1].model = "platedet".into();
        list.push(("float platedet instead of platedet-int8", float_plates));
        // What a deployment that can promise less pays: the guarantee raised, each detector's
        // finest pass a quarter of the default's cost or less per doubling of its size.
        for (name, face_min_px, plate_min_px) in [
            (
                "default models, faces from 16 px, plates from 28 px",
                16.0,
                28.0,
            ),
            (
                "default models, faces from 24 px, plates from 40 px",
                24.0,
                40.0,
            ),
            ("default models, 48 px plan", 48.0, 48.0),
        ] {
            let mut raised = common::config();
            raised.recall = RecallConfig {
                face_min_px,
                plate_min_px,
            };
            list.push((name, raised));
        }
        list.push((HELD_APART, common::config()));
        list.push((SOFT, common::config()));
        list.push((MIRRORED, common::config()));
    }
    list.into_iter().map(|(n, c)| (n.to_string(), c)).collect()
}

/// Each detector of the default alone (and the float models), at several thresholds:
/// per model, its index in the default and triples of (threshold, small-object threshold,
/// threshold for objects cut by the frame). Recall per bucket against over-redaction.
fn sweep() -> Vec<(String, Config)> {
    let faces = [0.2, 0.15, 0.1].map(|t| [t; 3]).into_iter();
    let faces = faces.chain([[0.15, 0.1, 0.1], [0.15, 0.1, 0.05]]);
    let faces_int8 = [[0.15, 0.1, 0.1], [0.15, 0.08, 0.1], [0.12, 0.08, 0.08]];
    let int8 = [
        [0.2; 3],
        [0.1; 3],
        [0.1, 0.05, 0.05],
        [0.1, 0.03, 0.03],
        [0.1, 0.05, 0.01],
    ];
    let float = [[0.1; 3], [0.1, 0.05, 0.01]];
    let runs = faces
        .map(|t| (0, "centerface", t))
        .chain(faces_int8.map(|t| (0, "centerface-int8", t)))
        .chain(int8.map(|t| (1, "platedet-int8", t)))
        .chain(float.map(|t| (1, "platedet", t)));
    runs.map(|(index, model, [threshold, small, cut])| {
        let mut config = common::config();
        let mut detector = config.detectors.swap_remove(index);
        detector.model = model.into();
        detector.threshold = Some(threshold);
        detector.small_threshold = Some(small);
        detector.cut_threshold = Some(cut);
        config.detectors = vec![detector];
        let name = format!("{model} alone, thresholds {threshold} / small {small} / cut {cut}");
        (name, config)
    })
    .collect()
}

fn main() {
    if !common::benching() {
        println!("recall: run with `cargo bench --bench recall`");
        return;
    }
    let threads = 2;
    for (name, config) in configs() {
        let engine = config
            .engine()
            .expect("models load (run scripts/prepare.sh)");
        let t = Instant::now();
        let faces = if name == HELD_APART {
            Faces::HeldApart
        } else {
            Faces::Known
        };
        let camera = match name.as_str() {
            SOFT => Camera::Soft,
            MIRRORED => Camera::Mirrored,
            _ => Camera::Sharp,
        };
        let eval = smallset::evaluate(&engine, threads, faces, camera, Frames::All);
        let wall = t.elapsed().as_secs_f64();
        assert!(
            !eval.buckets.is_empty(),
            "the set is empty: test photos missing?"
        );
        println!(
            "\nrecall on the small-object set: {name} ({threads} workers, {wall:.1} s wall, \
             over-redaction {:.4})",
            eval.over_redacted()
        );
        // The default's outputs go through full detection again (its re-check off): the
        // objects it still finds, which the re-check is meant to leave at none.
        let again = ["default", HELD_APART, SOFT, MIRRORED]
            .contains(&name.as_str())
            .then(|| {
                let mut plain = config.clone();
                plain.redaction.verify_passes = 0;
                let engine = plain.engine().expect("models load");
                smallset::found_again(&engine, &eval, threads)
            });
        println!("| bucket | covered | recall | found again |\n| --- | --- | --- | --- |");
        for (bucket, (covered, total)) in &eval.buckets {
            let again = again.as_ref().map_or("not measured".to_string(), |a| {
                a.get(bucket).copied().unwrap_or(0).to_string()
            });
            println!(
                "| {bucket} | {covered}/{total} | {:.3} | {again} |",
                *covered as f64 / *total as f64
            );
        }
        let mut misses = eval.misses;
        misses.sort();
        println!("objects not covered: {}", misses.len());
        if misses.len() <= MISSES_LISTED {
            for m in &misses {
                println!("- {m}");
            }
        }
        let mut seconds = eval.seconds;
        seconds.sort_by(|a, b| a.0.cmp(&b.0));
        println!("| image | anonymise s | detect ms | re-check ms |\n| --- | --- | --- | --- |");
        for (case, s, detect, verify) in seconds {
            println!("| {case} | {s:.2} | {detect:.0} | {verify:.0} |");
        }
    }
}
