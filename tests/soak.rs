//! The soak run (`scripts/soak.sh`; ignored by `cargo test`): thousands of objects through the
//! daemon against moto, with faults injected at random between veil and S3 and between veil and
//! SQS, the daemon's resident memory sampled every second. At the end every object must be
//! accounted for: one copy in each destination and a complete audit record, or its message in
//! the dead-letter queue. Prints a table of the figures.
//!
//! `SOAK_OBJECTS` (default 2000) sets the number of objects.

mod common;

use std::time::{Duration, Instant};

use common::cloud::{Daemon, Emulator, put, wait_for};
use common::observe::*;
use common::proxy::{Fault, Proxy};
use common::*;
use image::RgbImage;

/// Small frames cut from the test photos, each a different image: objects, not repeats.
fn frames(n: usize) -> Vec<Vec<u8>> {
    let photos: Vec<RgbImage> = ["t1.jpg", "fast_alpr_car.png", "astronaut.png", "camera.png"]
        .iter()
        .map(|p| rgb(&photo(p)))
        .collect();
    (0..n)
        .map(|i| {
            let p = &photos[i % photos.len()];
            let (w, h) = (320.min(p.width()), 240.min(p.height()));
            let x = (i as u32 * 37) % (p.width() - w + 1);
            let y = (i as u32 * 23) % (p.height() - h + 1);
            jpeg(&image::imageops::crop_imm(p, x, y, w, h).to_image(), 90)
        })
        .collect()
}

/// Resident memory of a process, in MiB.
fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a long run: scripts/soak.sh"]
async fn soak() {
    let objects: usize = std::env::var("SOAK_OBJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let moto = Emulator::moto_seeded(&["--max-receive-count", "8"]);
    let s3_proxy = Proxy::start(&moto.endpoint).await;
    let sqs_proxy = Proxy::start(&moto.endpoint).await;
    let daemon = Daemon::start(
        &moto,
        &[
            ("WORKER__AWS_TIMEOUT_S", "5"),
            ("WORKER__RETRY_DELAY_S", "1"),
            ("WORKER__RETRY_MAX_DELAY_S", "20"),
            ("WORKER__IN_FLIGHT", "8"),
            ("INGEST__ENDPOINTS__S3", s3_proxy.endpoint.as_str()),
            ("INGEST__ENDPOINTS__SQS", sqs_proxy.endpoint.as_str()),
        ],
    );
    daemon.ready().await;
    let pid = daemon.pid();
    let started = Instant::now();

    // Upload in the background while faults come and go.
    let uploads = {
        let ingest = moto.s3(moto.who("ingest"));
        let frames = frames(objects);
        tokio::spawn(async move {
            for (i, f) in frames.into_iter().enumerate() {
                put(&ingest, "veil-raw", &format!("soak/{i:05}.jpg"), f).await;
            }
        })
    };
    let mut rng = Lcg(7);
    let mut rss = Vec::new();
    let mut faults = 0;
    let anonymised = sample("objects_total", "outcome=\"anonymised\"");
    while !uploads.is_finished() || finished(&moto, &daemon, &anonymised).await < objects {
        assert!(
            started.elapsed() < Duration::from_secs(3 * 3600),
            "the soak did not finish in 3 hours"
        );
        // Every few seconds, one of the faults for one to three seconds, on S3 or on SQS
        // (throttling responses only on S3, whose protocol they belong to).
        let pause = 3 + rng.below(8);
        for _ in 0..pause {
            tokio::time::sleep(Duration::from_secs(1)).await;
            rss.extend(rss_mib(pid));
        }
        let on_s3 = rng.below(2) == 0;
        let fault = match rng.below(if on_s3 { 5 } else { 4 }) {
            0 => Fault::Refuse,
            1 => Fault::Stall,
            2 => Fault::Cut(1024 + rng.below(8192) as usize),
            3 => Fault::Slow(2),
            _ => Fault::SlowDown,
        };
        let proxy = if on_s3 { &s3_proxy } else { &sqs_proxy };
        proxy.set(fault);
        faults += 1;
        tokio::time::sleep(Duration::from_secs(1 + rng.below(3))).await;
        proxy.set(Fault::Pass);
    }
    let elapsed = started.elapsed();

    // Accounting: copies + complete audit record, or the DLQ; nothing twice.
    wait_depth(&moto, "/queue_url", 0).await;
    let dlq = queue_depth_of(&moto, "/dlq_url").await as usize;
    let copies = copies(&moto).await;
    let records = audit_records(&moto).await;
    let complete = records
        .iter()
        .filter(|(_, r)| r["complete"] == true)
        .count();
    let per_destination: Vec<usize> = copies.iter().map(|(_, c)| c.len()).collect();
    let (first, last) = (
        rss[..rss.len().min(10)].to_vec(),
        rss[rss.len().saturating_sub(10)..].to_vec(),
    );
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let peak = rss.iter().cloned().fold(0.0, f64::max);
    println!(
        "| objects | faults injected | elapsed | anonymised (audit complete) | copies per destination | in DLQ | RSS first 10 s | RSS last 10 s | RSS peak |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {objects} | {faults} | {:.0} s | {complete} | {per_destination:?} | {dlq} | {:.0} MiB | {:.0} MiB | {peak:.0} MiB |",
        elapsed.as_secs_f64(),
        mean(&first),
        mean(&last)
    );
    for (d, n) in DESTINATIONS.iter().zip(&per_destination) {
        assert_eq!(
            *n, complete,
            "{d}: every anonymised object has exactly one copy"
        );
    }
    assert_eq!(complete + dlq, objects, "objects unaccounted for");
    wait_for("the daemon to be alive", LIMIT, || async {
        (daemon.status("/healthz") == Some(200)).then_some(())
    })
    .await;
}

/// Objects anonymised plus messages in the dead-letter queue.
async fn finished(moto: &Emulator, daemon: &Daemon, anonymised: &str) -> usize {
    let done = daemon.metric_if_exported(anonymised).unwrap_or(0.0) as usize;
    done + queue_depth_of(moto, "/dlq_url").await as usize
}
