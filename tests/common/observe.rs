//! What the daemon tests read back: metrics samples, queue depths, the copies in each
//! destination account and the audit records, with bounded waits on each.

use std::time::Duration;

use super::cloud::{Daemon, Emulator, get, keys, queue_counts, queue_depth, wait_for};
use super::{jpeg, photo, rgb};

pub const DESTINATIONS: [&str; 3] = ["training", "inference", "analytics"];
pub const LIMIT: Duration = Duration::from_secs(180);

/// A sample name as `/metrics` shows it; labels are listed in alphabetical order.
pub fn sample(name: &str, labels: &str) -> String {
    format!("veil_{name}{{{labels}}}")
}

pub async fn wait_metric(daemon: &Daemon, sample: &str, at_least: f64) {
    wait_for(&format!("{sample} >= {at_least}"), LIMIT, || async {
        (daemon.metric_if_exported(sample)? >= at_least).then_some(())
    })
    .await;
}

/// (visible, in flight) messages of the queue the seed names (`/queue_url`, `/dlq_url`).
pub async fn queue_counts_of(moto: &Emulator, queue: &str) -> (u64, u64) {
    queue_counts(&moto.sqs(moto.who("ingest")), &moto.str(queue)).await
}

/// Visible plus in-flight messages of the queue the seed names.
pub async fn queue_depth_of(moto: &Emulator, queue: &str) -> u64 {
    queue_depth(&moto.sqs(moto.who("ingest")), &moto.str(queue)).await
}

/// Waits until the queue the seed names (`/queue_url`, `/dlq_url`) holds `depth` messages.
pub async fn wait_depth(moto: &Emulator, queue: &str, depth: u64) {
    let sqs = moto.sqs(moto.who("ingest"));
    let url = moto.str(queue);
    wait_for(&format!("{depth} messages in {queue}"), LIMIT, || {
        let (sqs, url) = (sqs.clone(), url.clone());
        async move { (queue_depth(&sqs, &url).await == depth).then_some(()) }
    })
    .await;
}

pub async fn wait_anonymised(daemon: &Daemon, objects: f64) {
    wait_metric(
        daemon,
        &sample("objects_total", "outcome=\"anonymised\""),
        objects,
    )
    .await;
}

/// One destination with its copies: (destination, [(key, bytes)]).
pub type Copies = (String, Vec<(String, Vec<u8>)>);

/// The copies in each destination bucket, read with that account's admin.
pub async fn copies(moto: &Emulator) -> Vec<Copies> {
    let mut all = Vec::new();
    for d in DESTINATIONS {
        let s3 = moto.s3(moto.who(d));
        let bucket = format!("veil-{d}");
        let mut objects = Vec::new();
        for k in keys(&s3, &bucket, "").await {
            let bytes = get(&s3, &bucket, &k).await;
            objects.push((k, bytes));
        }
        all.push((d.to_string(), objects));
    }
    all
}

pub async fn raw_versions(moto: &Emulator) -> usize {
    let s3 = moto.s3(moto.who("ingest"));
    let out = s3
        .list_object_versions()
        .bucket("veil-raw")
        .send()
        .await
        .unwrap();
    out.versions().len()
}

/// Every audit record: (key, JSON).
pub async fn audit_records(moto: &Emulator) -> Vec<(String, serde_json::Value)> {
    let ingest = moto.s3(moto.who("ingest"));
    let mut records = Vec::new();
    for k in keys(&ingest, "veil-audit", "veil-audit/").await {
        let bytes = get(&ingest, "veil-audit", &k).await;
        records.push((k, serde_json::from_slice(&bytes).unwrap()));
    }
    records
}

/// A JPEG of t1.jpg's six faces at 1600×1108: over ten seconds of detection with the default
/// guarantee (20 px plates are looked for on a 2.8× upscale).
pub fn big_photo() -> Vec<u8> {
    let big = image::DynamicImage::ImageRgb8(rgb(&photo("t1.jpg"))).resize_exact(
        1600,
        1108,
        image::imageops::FilterType::Triangle,
    );
    jpeg(&big.to_rgb8(), 90)
}

/// Asserts that `copy` shows none of `faces` (boxes in `source` pixels): each is covered by the
/// coverage rule against the source resized to the copy's size.
pub fn assert_faces_covered(source: &image::RgbImage, copy: &[u8], faces: &[[f32; 4]], what: &str) {
    use super::smallset::{Plane, coverage};
    let copy = rgb(copy);
    let scale = copy.width() as f32 / source.width() as f32;
    let reference = image::imageops::resize(
        source,
        copy.width(),
        copy.height(),
        image::imageops::FilterType::Triangle,
    );
    let (before, after) = (Plane::new(&reference), Plane::new(&copy));
    for f in faces {
        let b = veil::geometry::BoxF::from(f.map(|v| v * scale));
        let c = coverage(&before, &after, &b).expect("a face has detail");
        assert!(
            c.covered(),
            "{what}: face {f:?} not covered ({:.2} obscured, {:.2} of its detail gone)",
            c.obscured,
            c.energy_gone
        );
    }
}

/// Asserts that every object was handled exactly once: for each of `objects` raw uploads of
/// `source` (whose known faces are `faces`), one copy in each destination with those faces
/// covered, one complete audit record, no raw object left, and the queue and the dead-letter
/// queue empty.
pub async fn assert_all_accounted_for(
    moto: &Emulator,
    objects: usize,
    source: &[u8],
    faces: &[[f32; 4]],
) {
    wait_depth(moto, "/queue_url", 0).await;
    assert_eq!(
        queue_depth_of(moto, "/dlq_url").await,
        0,
        "messages in the DLQ"
    );
    let source = rgb(source);
    for (d, copies) in copies(moto).await {
        assert_eq!(copies.len(), objects, "{d}: copies");
        for (k, bytes) in copies {
            assert_faces_covered(&source, &bytes, faces, &format!("{d}/{k}"));
        }
    }
    let records = audit_records(moto).await;
    let complete = records
        .iter()
        .filter(|(_, r)| r["complete"] == true)
        .count();
    assert_eq!(complete, objects, "complete audit records");
    assert_eq!(raw_versions(moto).await, 0, "raw objects left");
}

/// Sends message bodies to the queue, as S3 (or anything else) would.
pub async fn send(moto: &Emulator, bodies: &[String]) {
    let sqs = moto.sqs(moto.who("ingest"));
    for body in bodies {
        sqs.send_message()
            .queue_url(moto.str("/queue_url"))
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
}
