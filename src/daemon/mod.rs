//! The daemon (`veil run`): drains S3 notifications from SQS, anonymises each new raw object and
//! writes a clean copy into every downstream account.
//!
//! Data flow, module by module: [`queue`] (receive, heartbeat, delete) → [`events`] (which
//! objects) → [`worker`] (one object's steps): [`source`] (GET the raw bytes) → [`pool`] (the
//! pure anonymisation pipeline, off the async threads) → [`destination`] (PUT through each
//! assumed role) → [`audit`] → [`source`] (delete or tag the raw object) → message deleted.
//! [`metrics`] counts all of it; [`config`] holds the settings and [`aws`] the SDK set-up.
//!
//! Concurrency is bounded by `worker.in_flight` (messages being handled, each holding a permit)
//! and `worker.pipelines` (images being anonymised). Shutdown stops receiving, lets in-flight
//! messages finish within the grace period, then makes the rest visible again.

pub mod audit;
pub mod aws;
pub mod config;
pub mod destination;
pub mod events;
pub mod logkeys;
pub mod metrics;
pub mod pool;
pub mod queue;
pub mod source;
pub mod worker;

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::config::{Config, ConfigError};
use crate::daemon::aws::Aws;
use crate::daemon::config::DaemonConfig;
use crate::daemon::destination::Destination;
use crate::daemon::metrics::{Metrics, QUEUE_STATES, Readiness};
use crate::daemon::pool::PipelinePool;
use crate::daemon::queue::{MAX_BATCH, Queue, Received};
use crate::daemon::worker::Worker;

/// A started daemon: models loaded, clients built, endpoints serving.
pub struct Daemon {
    worker: Arc<Worker>,
    queue: Queue,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot listen on {addr} for metrics: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

impl Daemon {
    /// Loads and verifies the models, builds one pipeline per `worker.pipelines`, the AWS
    /// clients and the metrics endpoint. Fails (and veil exits) on any problem.
    pub async fn start(
        config: &Config,
        settings: DaemonConfig,
        stop_endpoints: impl Future<Output = ()> + Send + 'static,
    ) -> Result<Self, StartError> {
        logkeys::show_raw_keys(settings.worker.log_raw_keys);
        let metrics = Arc::new(Metrics::new());
        let readiness = Arc::new(Readiness::default());
        metrics::serve(
            settings.metrics_listen,
            metrics.clone(),
            readiness.clone(),
            stop_endpoints,
        )
        .await
        .map_err(|source| StartError::Listen {
            addr: settings.metrics_listen,
            source,
        })?;

        let pipelines = settings.worker.pipelines();
        let engine_config = config.clone();
        let pool = tokio::task::spawn_blocking(move || {
            let engine = Arc::new(engine_config.engine()?);
            PipelinePool::new(engine, pipelines).map_err(ConfigError::from)
        })
        .await
        .expect("model loading does not panic");
        let pool = pool?;
        let fingerprint = pool.fingerprint.clone();
        readiness.models_loaded.store(true, Ordering::Relaxed);

        let aws = Aws::new(
            &settings.ingest,
            Duration::from_secs(settings.worker.aws_timeout_s),
        )
        .await;
        let mut destinations = Vec::with_capacity(settings.destinations.len());
        for (d, template) in &settings.destinations {
            metrics.add_destination(&d.name);
            let refreshes = metrics
                .credential_refreshes
                .with_label_values(&[d.name.as_str()]);
            destinations.push(
                Destination::new(
                    d.clone(),
                    template.clone(),
                    &aws,
                    Duration::from_secs(settings.worker.role_session_s),
                    refreshes,
                )
                .await,
            );
        }
        let queue = Queue::new(aws.sqs(), settings.ingest.queue_url.clone());
        let s3 = aws_sdk_s3::Client::from_conf(aws.s3(None).build());
        let worker = Worker::new(
            settings,
            s3,
            pool,
            destinations,
            metrics.clone(),
            config.limits.max_bytes,
            fingerprint,
        );
        tracing::info!(
            pipelines,
            in_flight = worker.config.worker.in_flight(),
            destinations = worker.destinations.len(),
            queue = queue.url(),
            "veil daemon started"
        );
        Ok(Self {
            worker: Arc::new(worker),
            queue,
            metrics,
            readiness,
        })
    }

    /// Drains the queue until `shutdown` resolves, then finishes or releases in-flight messages.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let w = &self.worker.config.worker;
        let wait = Duration::from_secs(w.receive_wait_s);
        let visibility = Duration::from_secs(w.visibility_timeout_s);
        let grace = Duration::from_secs(w.shutdown_grace_s);
        let permits = Arc::new(Semaphore::new(w.in_flight()));
        let unfinished = Arc::new(Mutex::new(HashSet::<String>::new()));
        let (delete_tx, delete_rx) = mpsc::unbounded_channel();
        let deleter = tokio::spawn(delete_loop(
            self.queue.clone(),
            delete_rx,
            self.metrics.clone(),
        ));
        let depth = tokio::spawn(depth_loop(self.queue.clone(), self.metrics.clone()));
        let mut tasks = JoinSet::new();
        let mut backoff = Duration::from_millis(250);
        tokio::pin!(shutdown);
        loop {
            while let Some(done) = tasks.try_join_next() {
                if let Err(e) = done {
                    // A bug, not bad input: its message stays invisible, then is retried.
                    tracing::error!(error = %e, "a message task crashed");
                }
            }
            let first = tokio::select! {
                biased;
                () = &mut shutdown => break,
                p = permits.clone().acquire_owned() => p.expect("never closed"),
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match permits.clone().try_acquire_owned() {
                    Ok(p) => batch.push(p),
                    Err(_) => break,
                }
            }
            // Dropping a receive in flight loses nothing: its messages reappear after the timeout.
            let received = tokio::select! {
                biased;
                () = &mut shutdown => break,
                r = self.queue.receive(batch.len(), wait, visibility) => r,
            };
            let messages = match received {
                Ok(m) => m,
                Err(e) => {
                    self.readiness
                        .queue_reachable
                        .store(false, Ordering::Relaxed);
                    self.metrics.receive_errors.inc();
                    tracing::error!(error = %e, code = %e.code, retry_in_ms = backoff.as_millis() as u64, "cannot receive from the queue");
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    continue;
                }
            };
            self.readiness
                .queue_reachable
                .store(true, Ordering::Relaxed);
            backoff = Duration::from_millis(250);
            self.metrics.messages_received.inc_by(messages.len() as u64);
            for (message, permit) in messages.into_iter().zip(batch) {
                unfinished
                    .lock()
                    .expect("lock")
                    .insert(message.receipt.clone());
                let task = MessageTask {
                    worker: self.worker.clone(),
                    queue: self.queue.clone(),
                    unfinished: unfinished.clone(),
                    delete: delete_tx.clone(),
                };
                tasks.spawn(async move {
                    task.run(message).await;
                    drop(permit);
                });
            }
        }

        tracing::info!(
            in_flight = tasks.len(),
            grace_s = grace.as_secs(),
            "stopping: no more receives"
        );
        let finished =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if finished.is_err() {
            tracing::warn!(
                unfinished = tasks.len(),
                "grace period over; abandoning unfinished messages"
            );
            tasks.shutdown().await;
        }
        let receipts: Vec<String> = unfinished.lock().expect("lock").drain().collect();
        if !receipts.is_empty() {
            let failed = self.queue.release_now(&receipts).await;
            tracing::info!(
                released = receipts.len() - failed,
                failed,
                "unfinished messages made visible again"
            );
        }
        depth.abort();
        drop(delete_tx);
        deleter.await.expect("the delete loop does not panic");
        tracing::info!("veil daemon stopped");
    }
}

/// How often `veil_queue_messages` is refreshed: one GetQueueAttributes per task and period.
const DEPTH_POLL: Duration = Duration::from_secs(15);

/// Every DEPTH_POLL, the queue's visible and in-flight messages into `veil_queue_messages`,
/// so the backlog is on veil's own dashboard and alerts (CloudWatch has it too, in AWS).
async fn depth_loop(queue: Queue, metrics: Arc<Metrics>) {
    loop {
        match queue.depth().await {
            Ok((visible, in_flight)) => {
                for (state, n) in QUEUE_STATES.into_iter().zip([visible, in_flight]) {
                    metrics.queue_messages.with_label_values(&[state]).set(n);
                }
            }
            // Receive errors are counted and logged by the receive loop.
            Err(e) => tracing::debug!(error = %e, "cannot read the queue's depth"),
        }
        tokio::time::sleep(DEPTH_POLL).await;
    }
}

/// One message's handling, with its heartbeat.
struct MessageTask {
    worker: Arc<Worker>,
    queue: Queue,
    /// Receipts of messages not yet finished, released at shutdown if still there.
    unfinished: Arc<Mutex<HashSet<String>>>,
    delete: mpsc::UnboundedSender<String>,
}

impl MessageTask {
    async fn run(self, message: Received) {
        let span = tracing::info_span!("message", message_id = %message.id, receive_count = message.receive_count);
        async {
            let w = &self.worker.config.worker;
            let beat = Duration::from_secs(w.heartbeat_s);
            let visibility = Duration::from_secs(w.visibility_timeout_s);
            let heartbeat = async {
                let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + beat, beat);
                loop {
                    tick.tick().await;
                    if let Err(e) = self.queue.set_visibility(&message.receipt, visibility).await {
                        self.worker.metrics.heartbeat_errors.inc();
                        tracing::warn!(error = %e, "heartbeat failed; the message may be delivered again");
                    }
                }
            };
            let result = tokio::select! {
                r = self.worker.handle(&message) => r,
                never = heartbeat => never,
            };
            self.unfinished.lock().expect("lock").remove(&message.receipt);
            match result {
                Ok(()) => {
                    // The delete loop owns it now: at shutdown it is flushed, not released.
                    let _ = self.delete.send(message.receipt);
                }
                Err(e) => {
                    self.worker
                        .metrics
                        .messages_failed
                        .with_label_values(&[e.reason()])
                        .inc();
                    tracing::warn!(error = %e, reason = e.reason(), "message left for retry");
                    let delay = w.retry_delay(message.receive_count);
                    if let Err(e) = self.queue.set_visibility(&message.receipt, delay).await {
                        tracing::warn!(error = %e, "cannot set the retry delay");
                    }
                }
            }
        }
        .instrument(span)
        .await;
    }
}

/// Deletes finished messages in batches of up to 10, gathering for at most 50 ms.
async fn delete_loop(queue: Queue, mut rx: mpsc::UnboundedReceiver<String>, metrics: Arc<Metrics>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let gather = tokio::time::sleep(Duration::from_millis(50));
        tokio::pin!(gather);
        while batch.len() < MAX_BATCH {
            tokio::select! {
                r = rx.recv() => match r {
                    Some(receipt) => batch.push(receipt),
                    None => break,
                },
                () = &mut gather => break,
            }
        }
        let failed = queue.delete_batch(&batch).await;
        metrics
            .messages_deleted
            .inc_by((batch.len() - failed.len()) as u64);
        for (_, reason) in &failed {
            metrics.message_delete_errors.inc();
            tracing::warn!(reason = %reason, "cannot delete a finished message; it will be delivered again and found done");
        }
    }
}
