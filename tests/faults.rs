//! The fault suite: the daemon against moto with a fault-injecting proxy between veil and one
//! service (S3, SQS or STS). Each case injects faults while objects are in flight, then lets the
//! service recover, and asserts that nothing was lost (every object anonymised, the queue and
//! the dead-letter queue empty), nothing un-anonymised was published (every known face covered in
//! every copy), nothing was duplicated (one copy per destination, one complete audit record), and
//! that the metrics saw the faults.
//!
//! For the outages the seeded queue allows 10 receives before the dead-letter queue, so that the
//! retries of a whole fault sequence fit, and `worker.aws_timeout_s` is short, so that a stalled
//! call fails fast. Not covered here: restarting the emulator mid-flight (moto keeps its state in
//! memory, so a restart loses the buckets and the queue themselves), and an object overwritten
//! while it is processed (tests/daemon.rs).

mod common;

use std::time::Duration;

use common::cloud::{Daemon, Emulator, put};
use common::observe::*;
use common::proxy::{Fault, Proxy};
use common::*;

const OBJECTS: usize = 3;

/// moto allowing 10 receives, a fault proxy in front of it, and veil calling one `service`
/// (`S3`, `SQS`, `STS`) through the proxy, with a 5 s AWS timeout, a 1 s retry delay and
/// `overrides` on top.
async fn behind_proxy(service: &str, overrides: &[(&str, &str)]) -> (Emulator, Proxy, Daemon) {
    let moto = Emulator::moto_seeded(&["--max-receive-count", "10"]);
    let proxy = Proxy::start(&moto.endpoint).await;
    let endpoint = format!("INGEST__ENDPOINTS__{service}");
    let mut all = vec![
        ("WORKER__AWS_TIMEOUT_S", "5"),
        ("WORKER__RETRY_DELAY_S", "1"),
        (endpoint.as_str(), proxy.endpoint.as_str()),
    ];
    all.extend_from_slice(overrides);
    let daemon = Daemon::start(&moto, &all);
    (moto, proxy, daemon)
}

async fn upload(moto: &Emulator, prefix: &str, n: usize) {
    let ingest = moto.s3(moto.who("ingest"));
    for i in 0..n {
        put(
            &ingest,
            "veil-raw",
            &format!("{prefix}/{i}.jpg"),
            photo("t1.jpg"),
        )
        .await;
    }
}

/// Sum of `veil_messages_failed_total` over the given reasons.
fn failures(daemon: &Daemon, reasons: &[&str]) -> f64 {
    reasons
        .iter()
        .map(|r| daemon.metric(&sample("messages_failed_total", &format!("reason=\"{r}\""))))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_refusing_hanging_and_cutting_connections_then_recovering_loses_and_duplicates_nothing()
{
    // Every S3 call (raw reads, copies, audit records, deletes) goes through the proxy. The
    // faults last 17 s: objects must reach S3 again within that time, so the pipeline looks
    // only for objects of 32 px and more (t1's faces are ~100 px), a second or two per photo
    // instead of the default guarantee's ten.
    let (moto, proxy, daemon) = behind_proxy(
        "S3",
        &[
            ("RECALL__FACE_MIN_PX", "32"),
            ("RECALL__PLATE_MIN_PX", "56"),
        ],
    )
    .await;
    daemon.ready().await;
    upload(&moto, "s3-faults", OBJECTS).await;
    wait_metric(
        &daemon,
        &sample("stage_seconds_count", "stage=\"download\""),
        1.0,
    )
    .await;
    for (fault, seconds) in [
        (Fault::Refuse, 3),
        (Fault::Stall, 7),
        (Fault::Cut(2048), 4),
        (Fault::Slow(5), 3),
    ] {
        proxy.set(fault);
        tokio::time::sleep(Duration::from_secs(seconds)).await;
    }
    proxy.set(Fault::Pass);
    wait_anonymised(&daemon, OBJECTS as f64).await;
    assert_all_accounted_for(&moto, OBJECTS, &photo("t1.jpg"), &known_faces_of("t1.jpg")).await;
    let failed = failures(&daemon, &["source", "destination", "audit", "dispose"]);
    assert!(failed >= 1.0, "no failure was counted: the faults missed");
    assert_eq!(
        failures(&daemon, &["pipeline", "rejected_input", "missing"]),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_throttling_with_slow_down_responses_is_retried_until_it_passes() {
    let (moto, proxy, daemon) = behind_proxy("S3", &[]).await;
    daemon.ready().await;
    proxy.set(Fault::SlowDown);
    upload(&moto, "throttled", OBJECTS).await;
    // Throttled long enough for the SDK's own attempts to give up at least once.
    wait_metric(
        &daemon,
        &sample("messages_failed_total", "reason=\"source\""),
        1.0,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.set(Fault::Pass);
    wait_anonymised(&daemon, OBJECTS as f64).await;
    assert_all_accounted_for(&moto, OBJECTS, &photo("t1.jpg"), &known_faces_of("t1.jpg")).await;
    assert!(
        daemon.log_text().contains("SlowDown"),
        "the throttling was not seen"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_unreachable_while_objects_are_processed_expires_their_visibility_without_duplicates() {
    // A short visibility timeout: while SQS is unreachable the heartbeats fail, the messages
    // reappear and are received again while (or after) their first handling finishes.
    let (moto, proxy, daemon) = behind_proxy(
        "SQS",
        &[
            ("WORKER__AWS_TIMEOUT_S", "3"),
            ("WORKER__VISIBILITY_TIMEOUT_S", "4"),
            ("WORKER__HEARTBEAT_S", "1"),
        ],
    )
    .await;
    daemon.ready().await;
    let ingest = moto.s3(moto.who("ingest"));
    put(&ingest, "veil-raw", "slow/big.jpg", big_photo()).await;
    upload(&moto, "sqs-faults", OBJECTS - 1).await;
    wait_metric(
        &daemon,
        &sample("stage_seconds_count", "stage=\"download\""),
        1.0,
    )
    .await;
    proxy.set(Fault::Refuse);
    tokio::time::sleep(Duration::from_secs(8)).await;
    proxy.set(Fault::Pass);

    wait_metric(&daemon, "veil_messages_deleted_total", OBJECTS as f64).await;
    wait_depth(&moto, "/queue_url", 0).await;
    let sqs_errors: f64 = [
        "veil_receive_errors_total",
        "veil_heartbeat_errors_total",
        "veil_message_delete_errors_total",
    ]
    .iter()
    .map(|m| daemon.metric(m))
    .sum();
    assert!(
        sqs_errors >= 1.0,
        "no SQS error was counted: the fault missed"
    );
    assert!(daemon.metric("veil_heartbeat_errors_total") >= 1.0);
    // The big photo and the others: each anonymised once, whatever was redelivered.
    let copies = copies(&moto).await;
    for (d, objects) in &copies {
        assert_eq!(objects.len(), OBJECTS, "{d}: copies");
    }
    let complete = audit_records(&moto)
        .await
        .iter()
        .filter(|(_, r)| r["complete"] == true)
        .count();
    assert_eq!(complete, OBJECTS);
    assert_eq!(raw_versions(&moto).await, 0);
    let created = |d: &str| {
        daemon.metric(&sample(
            "puts_total",
            &format!("destination=\"{d}\",result=\"created\""),
        ))
    };
    for d in DESTINATIONS {
        assert_eq!(created(d), OBJECTS as f64, "{d}: copies created");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sts_unreachable_when_writer_sessions_expire_delays_copies_until_it_is_back() {
    // 4 s sessions (the emulator allows them): the second batch needs new ones.
    let (moto, proxy, daemon) = behind_proxy("STS", &[("WORKER__ROLE_SESSION_S", "4")]).await;
    daemon.ready().await;
    upload(&moto, "first", 1).await;
    wait_anonymised(&daemon, 1.0).await;
    proxy.set(Fault::Refuse);
    tokio::time::sleep(Duration::from_secs(5)).await;
    upload(&moto, "second", OBJECTS - 1).await;
    wait_metric(
        &daemon,
        &sample("messages_failed_total", "reason=\"destination\""),
        1.0,
    )
    .await;
    proxy.set(Fault::Pass);
    wait_anonymised(&daemon, OBJECTS as f64).await;
    assert_all_accounted_for(&moto, OBJECTS, &photo("t1.jpg"), &known_faces_of("t1.jpg")).await;
    for d in DESTINATIONS {
        let refreshes = daemon.metric(&sample(
            "credential_refreshes_total",
            &format!("destination=\"{d}\""),
        ));
        assert!(refreshes >= 2.0, "{d}: {refreshes} sessions");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_among_good_ones_goes_to_the_dlq_alone() {
    // The default three receives before the dead-letter queue.
    let moto = Emulator::moto();
    let daemon = Daemon::start(&moto, &[("WORKER__RETRY_DELAY_S", "1")]);
    daemon.ready().await;
    send(
        &moto,
        &["{\"Records\": [{\"eventVersion\": \"2.1\"".to_string()],
    )
    .await;
    upload(&moto, "beside-poison", OBJECTS).await;
    wait_anonymised(&daemon, OBJECTS as f64).await;
    wait_depth(&moto, "/dlq_url", 1).await;
    let s3 = moto.s3(moto.who("ingest"));
    let source = rgb(&photo("t1.jpg"));
    for (d, objects) in copies(&moto).await {
        assert_eq!(objects.len(), OBJECTS, "{d}");
        for (k, bytes) in objects {
            assert_faces_covered(
                &source,
                &bytes,
                &known_faces_of("t1.jpg"),
                &format!("{d}/{k}"),
            );
        }
    }
    assert!(common::cloud::keys(&s3, "veil-raw", "").await.is_empty());
    assert_eq!(
        daemon.metric(&sample("messages_failed_total", "reason=\"unreadable\"")),
        3.0,
        "one failure per receive until maxReceiveCount"
    );
}
