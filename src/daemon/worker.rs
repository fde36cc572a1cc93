//! What happens to one message: for each object it names, read the raw bytes, anonymise them
//! into every destination's rendition, write each copy through its destination's role, write the
//! audit record, dispose of the raw object — in that order, so that a failure at any step leaves
//! the message for a retry that finds the earlier steps done.

use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;

use crate::daemon::audit::{
    AuditCopy, AuditError, AuditFailure, AuditFolder, AuditRecord, AuditSource, AuditTimings,
};
use crate::daemon::config::DaemonConfig;
use crate::daemon::destination::{Destination, DestinationError, KeyValues, Put};
use crate::daemon::events::{self, EventError, Notice, ObjectRef};
use crate::daemon::logkeys::LoggedKey;
use crate::daemon::metrics::Metrics;
use crate::daemon::pool::{PipelinePool, PoolError};
use crate::daemon::queue::Received;
use crate::daemon::source::{self, Disposed, SourceError};
use crate::manifest::sha256_hex;
use crate::pipeline::PipelineError;
use crate::rendition::Rendition;

/// Why an object was not (fully) handled; the message is left for retry and the DLQ.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("s3://{bucket}/{} is outside ingest.sources; refusing to read it", LoggedKey(.key))]
    NotAllowed { bucket: String, key: String },
    #[error(transparent)]
    Source(SourceError),
    /// The object is gone and no audit record says it was anonymised: it was deleted or
    /// overwritten before veil read it. Left for the dead-letter queue, where an operator sees it.
    #[error(
        "s3://{bucket}/{} is gone and was never anonymised (deleted or overwritten before it was read)",
        LoggedKey(.key)
    )]
    Missing { bucket: String, key: String },
    #[error("s3://{bucket}/{}: {error}", LoggedKey(.key))]
    Pipeline {
        bucket: String,
        key: String,
        error: PoolError,
    },
    #[error("{} of {} destinations failed: {}", .0.len(), .1, join(.0))]
    Destinations(Vec<DestinationError>, usize),
    #[error(transparent)]
    Audit(AuditError),
    #[error("copies and audit record written, but the raw object was not disposed of: {0}")]
    Dispose(SourceError),
}

fn join(errors: &[DestinationError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl ObjectError {
    /// The `reason` label of `veil_messages_failed_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            ObjectError::NotAllowed { .. } => "not_allowed",
            ObjectError::Source(SourceError::TooLarge { .. }) => "rejected_input",
            ObjectError::Source(_) => "source",
            ObjectError::Missing { .. } => "missing",
            ObjectError::Pipeline {
                error: PoolError::Pipeline(PipelineError::Input(_)),
                ..
            } => "rejected_input",
            ObjectError::Pipeline { .. } => "pipeline",
            ObjectError::Destinations(..) => "destination",
            ObjectError::Audit(_) => "audit",
            ObjectError::Dispose(_) => "dispose",
        }
    }
}

/// Why a whole message was not deleted.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error(transparent)]
    Unreadable(#[from] EventError),
    #[error(transparent)]
    Object(#[from] ObjectError),
}

impl MessageError {
    pub fn reason(&self) -> &'static str {
        match self {
            MessageError::Unreadable(_) => "unreadable",
            MessageError::Object(e) => e.reason(),
        }
    }
}

/// Everything needed to handle messages; shared by all message tasks.
pub struct Worker {
    pub config: DaemonConfig,
    s3: aws_sdk_s3::Client,
    pool: PipelinePool,
    pub destinations: Vec<Destination>,
    pub metrics: Arc<Metrics>,
    max_bytes: u64,
    /// One rendition per destination, in the same order.
    renditions: Arc<Vec<Rendition>>,
    /// `{pipeline}` of each destination's keys: the engine's fingerprint with its rendition.
    pipeline_ids: Vec<String>,
    engine_fingerprint: String,
}

impl Worker {
    pub fn new(
        config: DaemonConfig,
        s3: aws_sdk_s3::Client,
        pool: PipelinePool,
        destinations: Vec<Destination>,
        metrics: Arc<Metrics>,
        max_bytes: u64,
        engine_fingerprint: String,
    ) -> Self {
        let renditions = Arc::new(
            destinations
                .iter()
                .map(|d| d.rendition().clone())
                .collect::<Vec<_>>(),
        );
        let pipeline_ids = renditions
            .iter()
            .map(|r| {
                let text = format!("{engine_fingerprint} {r:?}");
                sha256_hex(text.as_bytes())[..12].to_string()
            })
            .collect();
        Self {
            config,
            s3,
            pool,
            destinations,
            metrics,
            max_bytes,
            renditions,
            pipeline_ids,
            engine_fingerprint,
        }
    }

    /// Handles every object a message names. `Ok` means the message may be deleted.
    pub async fn handle(&self, message: &Received) -> Result<(), MessageError> {
        let objects = match events::parse(&message.body)? {
            Notice::Ignore(why) => {
                tracing::info!(reason = %why, "acknowledging a notification with nothing to do");
                return Ok(());
            }
            Notice::Created(objects) => objects,
        };
        // Every object gets its attempt, even after one fails; the message is deleted only if
        // all succeeded, and its retry finds the finished ones done.
        let mut first_error = None;
        for o in &objects {
            let span = tracing::info_span!("object", bucket = %o.bucket, key = %LoggedKey(&o.key), version = ?o.version_id);
            if let Err(e) = self.handle_object(o).instrument(span).await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), |e| Err(e.into()))
    }

    async fn handle_object(&self, o: &ObjectRef) -> Result<(), ObjectError> {
        self.metrics.in_flight.inc();
        let result = self.process(o).await;
        self.metrics.in_flight.dec();
        let outcome = match &result {
            Ok(outcome) => outcome,
            Err(e) if e.reason() == "rejected_input" => "rejected",
            Err(_) => "failed",
        };
        self.metrics.objects.with_label_values(&[outcome]).inc();
        match &result {
            Ok(outcome) => tracing::info!(outcome, "object done"),
            Err(e) => {
                tracing::warn!(error = %e, reason = e.reason(), "object failed; its message is left for retry")
            }
        }
        result.map(|_| ())
    }

    /// The steps, in order. Returns the outcome label.
    async fn process(&self, o: &ObjectRef) -> Result<&'static str, ObjectError> {
        if !self
            .config
            .ingest
            .sources
            .iter()
            .any(|s| s.allows(&o.bucket, &o.key))
        {
            return Err(ObjectError::NotAllowed {
                bucket: o.bucket.clone(),
                key: o.key.clone(),
            });
        }
        let started = Instant::now();
        let mut fetched = match source::fetch(&self.s3, o, self.max_bytes).await {
            Ok(f) => f,
            Err(SourceError::Gone { bucket, key }) => {
                return match o.revision() {
                    Some(revision)
                        if self
                            .audit(o, revision)
                            .is_done()
                            .await
                            .map_err(ObjectError::Audit)? =>
                    {
                        tracing::info!("raw object already anonymised and disposed of");
                        Ok("already_done")
                    }
                    _ => Err(ObjectError::Missing { bucket, key }),
                };
            }
            Err(e) => return Err(ObjectError::Source(e)),
        };
        let download_s = started.elapsed().as_secs_f64();
        self.metrics.observe("download", download_s);
        // The pipeline takes the raw bytes; the rest of `fetched` names the revision to dispose of.
        let source_bytes = fetched.bytes.len();
        self.metrics.bytes_in.inc_by(source_bytes as u64);

        let anonymised = self
            .pool
            .anonymise(
                Arc::new(std::mem::take(&mut fetched.bytes)),
                self.renditions.clone(),
            )
            .await
            .map_err(|error| ObjectError::Pipeline {
                bucket: o.bucket.clone(),
                key: o.key.clone(),
                error,
            })?;
        let report = &anonymised.report;
        let t = &report.timings;
        for (stage, ms) in [
            ("decode", t.decode_ms),
            ("detect", t.detect_ms),
            ("redact", t.redact_ms),
            ("verify", t.verify_ms),
            ("encode", t.encode_ms),
        ] {
            self.metrics.observe(stage, ms / 1000.0);
        }
        for d in &report.detections {
            self.metrics
                .detections
                .with_label_values(&[d.class.as_str()])
                .inc();
        }

        let id = object_id(&o.bucket, &o.key, &fetched.revision);
        let audit = self.audit(o, &fetched.revision);
        let upload_started = Instant::now();
        let (mut copies, failed) = self.write_copies(o, &id, anonymised.outputs).await;
        let upload_s = upload_started.elapsed().as_secs_f64();
        self.metrics.observe("upload", upload_s);

        let complete = failed.is_empty();
        if complete && copies.iter().any(|c| c.sha256.is_none()) {
            // Copies an earlier attempt wrote: record what that attempt stored.
            let earlier = audit.created_earlier().await.map_err(ObjectError::Audit)?;
            for c in copies.iter_mut().filter(|c| c.sha256.is_none()) {
                if let Some((sha256, bytes)) = earlier.get(&c.key) {
                    c.sha256 = Some(sha256.clone());
                    c.bytes = Some(*bytes);
                }
            }
        }
        let record = AuditRecord {
            complete,
            veil_version: env!("CARGO_PKG_VERSION"),
            written_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            source: AuditSource {
                bucket: o.bucket.clone(),
                key_sha256: sha256_hex(o.key.as_bytes()),
                version_id: fetched.version_id.clone(),
                revision: fetched.revision.clone(),
                bytes: source_bytes,
            },
            pipeline: self.engine_fingerprint.clone(),
            image: AuditRecord::image(report),
            detections_by_class: AuditRecord::by_class(&report.detections),
            detections: report.detections.clone(),
            models: report.models.clone(),
            destinations: copies,
            failed: failed
                .iter()
                .map(|e| AuditFailure {
                    destination: e.destination.clone(),
                    account_id: self.account_of(&e.destination),
                    bucket: e.bucket.clone(),
                    key: e.key.clone(),
                    code: e.code.clone(),
                })
                .collect(),
            timings: AuditTimings {
                download_ms: download_s * 1000.0,
                pipeline: report.timings.clone(),
                upload_ms: upload_s * 1000.0,
            },
        };
        if !complete {
            // Only copies need a record: an attempt that wrote none leaves nothing to account for.
            if !record.destinations.is_empty()
                && let Err(e) = audit.write(&record).await
            {
                tracing::warn!(error = %e, "the record of this incomplete attempt was not written");
            }
            return Err(ObjectError::Destinations(failed, self.destinations.len()));
        }
        audit.write(&record).await.map_err(ObjectError::Audit)?;
        match source::dispose(&self.s3, o, &fetched, &self.config.raw)
            .await
            .map_err(ObjectError::Dispose)?
        {
            Disposed::Done => Ok("anonymised"),
            Disposed::Superseded => {
                tracing::info!(
                    "the key was overwritten while veil worked: the newer object is left for its own notification"
                );
                Ok("anonymised")
            }
        }
    }

    /// The audit folder of one revision of an object.
    fn audit(&self, o: &ObjectRef, revision: &str) -> AuditFolder<'_> {
        AuditFolder::new(
            &self.s3,
            &self.config.audit.bucket,
            &self.config.audit.prefix,
            &object_id(&o.bucket, &o.key, revision),
        )
    }

    fn account_of(&self, destination: &str) -> String {
        self.destinations
            .iter()
            .find(|d| d.name() == destination)
            .map(|d| d.config.account_id.clone())
            .unwrap_or_default()
    }

    /// PUTs every copy, all destinations concurrently. Returns the copies now stored and the
    /// destinations that failed (the copies that landed stay, and the retry finds them present).
    /// A copy found already present has no hash yet: the caller looks it up.
    async fn write_copies(
        &self,
        o: &ObjectRef,
        id: &str,
        outputs: Vec<crate::pipeline::Output>,
    ) -> (Vec<AuditCopy>, Vec<DestinationError>) {
        let puts = self
            .destinations
            .iter()
            .zip(outputs)
            .zip(&self.pipeline_ids)
            .map(|((d, output), pipeline)| async move {
                let ext = output.info.format.extension();
                let key = d.template.render(&KeyValues {
                    id,
                    pipeline,
                    ext,
                    destination: d.name(),
                    key: &o.key,
                });
                let size = output.bytes.len();
                let result = d
                    .put(
                        &key,
                        output.bytes,
                        &output.info.sha256,
                        output.info.format,
                        &[("veil-id", id), ("veil-pipeline", pipeline)],
                    )
                    .await;
                (d, key, output.info, size, result)
            });
        let mut copies = Vec::new();
        let mut errors = Vec::new();
        for (d, key, info, size, result) in futures_util::future::join_all(puts).await {
            match result {
                Ok(put) => {
                    self.metrics
                        .puts
                        .with_label_values(&[d.name(), put.as_str()])
                        .inc();
                    if put == Put::Created {
                        self.metrics
                            .bytes_out
                            .with_label_values(&[d.name()])
                            .inc_by(size as u64);
                    }
                    tracing::info!(destination = d.name(), dest_key = %d.logged(&key), result = put.as_str(), "copy written");
                    let created = put == Put::Created;
                    copies.push(AuditCopy {
                        destination: d.name().to_string(),
                        account_id: d.config.account_id.clone(),
                        bucket: d.config.bucket.clone(),
                        key,
                        sha256: created.then_some(info.sha256),
                        bytes: created.then_some(info.bytes),
                        format: info.format,
                        width: info.width,
                        height: info.height,
                        result: put.as_str(),
                    });
                }
                Err(e) => {
                    self.metrics
                        .destination_errors
                        .with_label_values(&[d.name(), &e.code])
                        .inc();
                    tracing::warn!(destination = d.name(), code = %e.code, error = %e, "copy not written");
                    errors.push(e);
                }
            }
        }
        (copies, errors)
    }
}

/// The `{id}` of an object's copies: bucket, key and revision (ETag, or version id), hashed.
pub fn object_id(bucket: &str, key: &str, revision: &str) -> String {
    sha256_hex(format!("{bucket}\0{key}\0{revision}").as_bytes())[..32].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::metrics::FAILURE_REASONS;

    #[test]
    fn every_failure_reason_is_exported_from_the_start() {
        let gone = || SourceError::Gone {
            bucket: "b".into(),
            key: "k".into(),
        };
        let errors = [
            MessageError::Unreadable(EventError::NotJson("x".into())),
            ObjectError::NotAllowed {
                bucket: "b".into(),
                key: "k".into(),
            }
            .into(),
            ObjectError::Source(gone()).into(),
            ObjectError::Missing {
                bucket: "b".into(),
                key: "k".into(),
            }
            .into(),
            ObjectError::Pipeline {
                bucket: "b".into(),
                key: "k".into(),
                error: PoolError::Crashed,
            }
            .into(),
            ObjectError::Destinations(Vec::new(), 3).into(),
            ObjectError::Audit(AuditError {
                bucket: "b".into(),
                key: "k".into(),
                message: "m".into(),
            })
            .into(),
            ObjectError::Dispose(gone()).into(),
        ];
        for e in errors {
            assert!(FAILURE_REASONS.contains(&e.reason()), "{}", e.reason());
        }
    }
}
