//! Recall per size bucket on the small-object set (tests/common/smallset.rs), and the time each
//! configuration takes for it, side by side in one run: the default (CenterFace + platedet,
//! planned from `[recall]`), platedet quantised to int8 on the same plan, platedet on
//! the plan of the previous release (plates looked for at 20 px in its input, no upscaling),
//! YuNet instead of CenterFace, and the plan of earlier releases (objects assumed to be at least
//! 48 px: a whole pass and few tiles). Prints a table; scripts/bench.sh runs it.
//! `RECALL_ONLY=int8` runs only the configurations whose name contains it. Needs the runtime,
//! models and photos of scripts/prepare.sh.
//!
//! `cargo bench --bench recall`. In test mode (`cargo test --benches`) it does nothing: the same
//! evaluation of the default configuration runs in tests/small_objects.rs.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use common::smallset;
use veil::config::{Config, RecallConfig};

fn configs() -> Vec<(&'static str, Config)> {
    let mut list = vec![("default", common::config())];
    {
        let mut int8 = common::config();
        int8.detectors[1].model = "platedet-int8".into();
        list.push(("platedet-int8 instead of platedet", int8));
        let mut low = common::config();
        low.detectors[1].tiling.min_object = Some(20.0);
        list.push(("platedet, plates at 20 px in its input", low));
        let mut yunet = common::config();
        yunet.detectors[0].model = "yunet".into();
        list.push(("yunet instead of centerface", yunet));
        let mut coarse = common::config();
        coarse.recall = RecallConfig {
            face_min_px: 48.0,
            plate_min_px: 48.0,
        };
        list.push(("default models, 48 px plan", coarse));
    }
    let only = std::env::var("RECALL_ONLY").unwrap_or_default();
    list.retain(|(name, _)| name.contains(&only));
    list
}

fn main() {
    // criterion-style flag: `cargo bench` passes --bench; `cargo test --benches` does not
    if !std::env::args().any(|a| a == "--bench") {
        println!("recall: run with `cargo bench --bench recall`");
        return;
    }
    let threads = 2;
    for (name, config) in configs() {
        let engine = config
            .engine()
            .expect("models load (run scripts/prepare.sh)");
        let t = Instant::now();
        let eval = smallset::evaluate(&engine, threads);
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
        println!("| bucket | covered | recall |\n| --- | --- | --- |");
        for (bucket, (covered, total)) in &eval.buckets {
            println!(
                "| {bucket} | {covered}/{total} | {:.3} |",
                *covered as f64 / *total as f64
            );
        }
        let mut seconds = eval.seconds;
        seconds.sort_by(|a, b| a.0.cmp(&b.0));
        println!("| image | anonymise s | detect ms | re-check ms |\n| --- | --- | --- | --- |");
        for (case, s, detect, verify) in seconds {
            println!("| {case} | {s:.2} | {detect:.0} | {verify:.0} |");
        }
    }
}
