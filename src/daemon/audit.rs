//! The audit record of one anonymised object: what was found, by which models, and where each
//! copy went with its hash — never pixels, and the source key only as a hash (keys can hold
//! names or plates). Written to the ingest account's audit bucket, create-only, before the raw
//! object is disposed of.

use std::collections::BTreeMap;

use aws_sdk_s3::primitives::ByteStream;
use serde::Serialize;

use crate::daemon::aws;
use crate::detect::Detection;
use crate::report::{ModelInfo, Report, Timings};

#[derive(Debug, Serialize)]
pub struct AuditRecord {
    pub veil_version: &'static str,
    /// Seconds since the Unix epoch when the record was written.
    pub written_at: u64,
    pub source: AuditSource,
    /// Hash of veil's version, the models and the settings (see `Engine::fingerprint`).
    pub pipeline: String,
    pub image: AuditImage,
    pub detections_by_class: BTreeMap<String, usize>,
    pub detections: Vec<Detection>,
    pub models: Vec<ModelInfo>,
    pub destinations: Vec<AuditCopy>,
    pub timings: AuditTimings,
}

#[derive(Debug, Serialize)]
pub struct AuditSource {
    pub bucket: String,
    pub key_sha256: String,
    pub version_id: Option<String>,
    /// Version id or ETag: what the destination keys were derived from.
    pub revision: String,
    pub bytes: usize,
}

#[derive(Debug, Serialize)]
pub struct AuditImage {
    pub format: crate::codec::Format,
    pub width: u32,
    pub height: u32,
    pub orientation: u8,
}

#[derive(Debug, Serialize)]
pub struct AuditCopy {
    pub destination: String,
    pub account_id: String,
    pub bucket: String,
    pub key: String,
    pub sha256: String,
    pub bytes: usize,
    pub format: crate::codec::Format,
    pub width: u32,
    pub height: u32,
    /// "created", or "already_present" when an earlier attempt had written it.
    pub result: &'static str,
}

#[derive(Debug, Serialize)]
pub struct AuditTimings {
    pub download_ms: f64,
    #[serde(flatten)]
    pub pipeline: Timings,
    pub upload_ms: f64,
}

impl AuditRecord {
    pub fn image(report: &Report) -> AuditImage {
        AuditImage {
            format: report.format,
            width: report.width,
            height: report.height,
            orientation: report.orientation,
        }
    }

    pub fn by_class(detections: &[Detection]) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for d in detections {
            *counts.entry(d.class.as_str().to_string()).or_default() += 1;
        }
        counts
    }
}

/// Writes `record` at `key`, create-only: a record already there (from an attempt whose later
/// steps failed) is kept.
pub async fn write(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    record: &AuditRecord,
) -> Result<(), AuditError> {
    let body = serde_json::to_vec_pretty(record).expect("audit records serialise");
    let request = s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type("application/json")
        .body(ByteStream::from(body));
    aws::put_if_absent(request)
        .await
        .map(|_| ())
        .map_err(|e| AuditError {
            bucket: bucket.to_string(),
            key: key.to_string(),
            message: aws::describe(&e),
        })
}

#[derive(Debug, thiserror::Error)]
#[error("cannot write the audit record s3://{bucket}/{key}: {message}")]
pub struct AuditError {
    pub bucket: String,
    pub key: String,
    pub message: String,
}
