//! What the daemon counts, and the HTTP endpoints that expose it: `/metrics` (Prometheus text),
//! `/healthz` (the process is alive) and `/readyz` (models loaded and the queue reachable).
//!
//! The endpoint is reachable by anything on the task's network, so it is bounded: at most
//! [`MAX_CONNECTIONS`] at once (more are closed on accept), one request per connection, and
//! each connection closed after [`CONNECTION_LIMIT`] whatever the client does. Idle or
//! half-open connections can then never pile up and take the file descriptors S3 and SQS need.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Every metric veil exports, registered in one registry.
pub struct Metrics {
    registry: Registry,
    pub messages_received: IntCounter,
    pub messages_deleted: IntCounter,
    /// Messages left for retry (and, after maxReceiveCount, the DLQ), by reason.
    pub messages_failed: IntCounterVec,
    pub message_delete_errors: IntCounter,
    /// Objects by outcome: anonymised, already_done (gone, and its audit record exists), rejected,
    /// failed.
    pub objects: IntCounterVec,
    pub detections: IntCounterVec,
    /// Seconds per stage: download, decode, detect, verify, redact, encode, upload.
    pub stage_seconds: HistogramVec,
    pub bytes_in: IntCounter,
    pub bytes_out: IntCounterVec,
    pub in_flight: IntGauge,
    /// The queue's messages by state (visible, in_flight), polled: the backlog, seen by veil.
    pub queue_messages: IntGaugeVec,
    /// PUTs by destination and result (created, already_present).
    pub puts: IntCounterVec,
    pub destination_errors: IntCounterVec,
    pub credential_refreshes: IntCounterVec,
    pub receive_errors: IntCounter,
    /// Failed visibility extensions of messages being worked on (the message may come back).
    pub heartbeat_errors: IntCounter,
}

/// The `outcome` label values of `veil_objects_total`.
pub const OUTCOMES: [&str; 4] = ["anonymised", "already_done", "rejected", "failed"];
/// The `reason` label values of `veil_messages_failed_total` (see `MessageError::reason`).
pub const FAILURE_REASONS: [&str; 9] = [
    "unreadable",
    "not_allowed",
    "rejected_input",
    "source",
    "missing",
    "pipeline",
    "destination",
    "audit",
    "dispose",
];
/// The `stage` label values of `veil_stage_seconds`.
pub const STAGES: [&str; 7] = [
    "download", "decode", "detect", "redact", "verify", "encode", "upload",
];
/// The `state` label values of `veil_queue_messages`.
pub const QUEUE_STATES: [&str; 2] = ["visible", "in_flight"];
/// The `result` label values of `veil_puts_total`.
pub const PUT_RESULTS: [&str; 2] = ["created", "already_present"];

impl Metrics {
    /// Every series with a known label set is exported from the start, at 0, so that a
    /// dashboard or alert sees "none yet" rather than "no data".
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(format!("veil_{name}"), help).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("unique");
            c
        };
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(format!("veil_{name}"), help), labels)
                .expect("valid metric");
            registry.register(Box::new(c.clone())).expect("unique");
            c
        };
        let stage_seconds = HistogramVec::new(
            HistogramOpts::new("veil_stage_seconds", "Time spent per stage of one object").buckets(
                vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                ],
            ),
            &["stage"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(stage_seconds.clone()))
            .expect("unique");
        let in_flight = IntGauge::new("veil_in_flight", "Objects being processed").expect("valid");
        registry
            .register(Box::new(in_flight.clone()))
            .expect("unique");
        let queue_messages = IntGaugeVec::new(
            Opts::new(
                "veil_queue_messages",
                "Messages on the queue by state, as SQS approximates them (polled)",
            ),
            &["state"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(queue_messages.clone()))
            .expect("unique");
        let metrics = Self {
            messages_received: counter("messages_received_total", "SQS messages received"),
            messages_deleted: counter(
                "messages_deleted_total",
                "SQS messages deleted after all their effects were done",
            ),
            messages_failed: counter_vec(
                "messages_failed_total",
                "SQS messages left for retry (and the dead-letter queue)",
                &["reason"],
            ),
            message_delete_errors: counter(
                "message_delete_errors_total",
                "SQS messages whose delete failed (they will be delivered again)",
            ),
            objects: counter_vec("objects_total", "Objects by outcome", &["outcome"]),
            detections: counter_vec("detections_total", "Detections by class", &["class"]),
            bytes_in: counter("bytes_in_total", "Raw bytes downloaded"),
            bytes_out: counter_vec(
                "bytes_out_total",
                "Anonymised bytes written, by destination",
                &["destination"],
            ),
            puts: counter_vec(
                "puts_total",
                "Create-only PUTs by destination and result",
                &["destination", "result"],
            ),
            destination_errors: counter_vec(
                "destination_errors_total",
                "Failed writes by destination and error code",
                &["destination", "code"],
            ),
            credential_refreshes: counter_vec(
                "credential_refreshes_total",
                "Assumed-role sessions obtained, by destination",
                &["destination"],
            ),
            receive_errors: counter("receive_errors_total", "Failed SQS receives"),
            heartbeat_errors: counter(
                "heartbeat_errors_total",
                "Failed visibility extensions of messages being worked on",
            ),
            stage_seconds,
            in_flight,
            queue_messages,
            registry,
        };
        for outcome in OUTCOMES {
            metrics.objects.with_label_values(&[outcome]);
        }
        for reason in FAILURE_REASONS {
            metrics.messages_failed.with_label_values(&[reason]);
        }
        for stage in STAGES {
            metrics.stage_seconds.with_label_values(&[stage]);
        }
        for class in ["face", "plate"] {
            metrics.detections.with_label_values(&[class]);
        }
        for state in QUEUE_STATES {
            metrics.queue_messages.with_label_values(&[state]);
        }
        metrics
    }

    /// Exports the series of one destination at 0.
    pub fn add_destination(&self, name: &str) {
        for result in PUT_RESULTS {
            self.puts.with_label_values(&[name, result]);
        }
        self.bytes_out.with_label_values(&[name]);
        self.credential_refreshes.with_label_values(&[name]);
    }

    pub fn observe(&self, stage: &str, seconds: f64) {
        self.stage_seconds
            .with_label_values(&[stage])
            .observe(seconds);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding cannot fail");
        String::from_utf8(out).expect("exposition is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// What `/readyz` reports: ready once the models are loaded and while the queue answers.
#[derive(Default)]
pub struct Readiness {
    pub models_loaded: AtomicBool,
    pub queue_reachable: AtomicBool,
}

impl Readiness {
    fn ready(&self) -> bool {
        self.models_loaded.load(Ordering::Relaxed) && self.queue_reachable.load(Ordering::Relaxed)
    }
}

/// Connections served at once; a scrape or a health check needs one for a few milliseconds.
pub const MAX_CONNECTIONS: usize = 32;
/// Time a connection may take from accept to the end of its response (headers included).
pub const CONNECTION_LIMIT: Duration = Duration::from_secs(10);

/// Binds `addr` and serves the endpoints until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let app = Router::new()
        .route(
            "/metrics",
            get(|State((m, _)): AppState| async move { m.render() }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(|State((_, r)): AppState| async move {
                if r.ready() {
                    (StatusCode::OK, "ready\n")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
                }
            }),
        )
        .with_state((metrics, readiness));
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    Ok(tokio::spawn(async move {
        tokio::pin!(shutdown);
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of descriptors, most likely: wait instead of spinning.
                        tracing::warn!(error = %e, "metrics endpoint cannot accept");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                continue; // dropping the stream closes it
            };
            let service = hyper_util::service::TowerToHyperService::new(app.clone());
            tokio::spawn(async move {
                let connection = hyper::server::conn::http1::Builder::new()
                    .keep_alive(false)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                let _ = tokio::time::timeout(CONNECTION_LIMIT, connection).await;
                drop(slot);
            });
        }
    }))
}

type AppState = State<(Arc<Metrics>, Arc<Readiness>)>;
