//! The audit record of one anonymised object: what was found, by which models, and where each
//! copy went with its hash — never pixels, and the source key only as a hash (keys can hold
//! names or plates). Written to the ingest account's audit bucket, create-only, before the raw
//! object is disposed of.
//!
//! Records of one object share a folder, `{prefix}{id}/`: `{pipeline}.json` once every copy is
//! written (its presence means the object is done), and `{pipeline}.attempt-{ms}.json` for each
//! attempt that wrote some copies but not all, so that no copy is ever left without a record,
//! even when its message ends in the dead-letter queue.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_s3::primitives::ByteStream;
use serde::Serialize;

use crate::daemon::aws;
use crate::detect::Detection;
use crate::report::{ModelInfo, Report, Timings};

#[derive(Debug, Serialize)]
pub struct AuditRecord {
    /// False for the record of an attempt that did not write every copy (see `failed`).
    pub complete: bool,
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
    /// Destinations this attempt could not write (only in incomplete records).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<AuditFailure>,
    pub timings: AuditTimings,
}

/// A copy that could not be written, and why.
#[derive(Debug, Serialize)]
pub struct AuditFailure {
    pub destination: String,
    pub account_id: String,
    pub bucket: String,
    pub key: String,
    /// The error code (`AccessDenied`, `Timeout`, ...).
    pub code: String,
}

#[derive(Debug, Serialize)]
pub struct AuditSource {
    pub bucket: String,
    pub key_sha256: String,
    pub version_id: Option<String>,
    /// ETag (or version id): what the destination keys were derived from.
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
    /// SHA-256 and size of the object stored at `key`. For a copy this attempt wrote, S3 checked
    /// the hash on upload; for one an earlier attempt wrote, they come from that attempt's
    /// record, and are absent if it has none (it stopped between the upload and its record).
    pub sha256: Option<String>,
    pub bytes: Option<usize>,
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

/// Where one object's audit records are kept.
pub struct AuditFolder<'a> {
    pub s3: &'a aws_sdk_s3::Client,
    pub bucket: &'a str,
    /// `{audit.prefix}{id}/`
    pub folder: String,
}

impl<'a> AuditFolder<'a> {
    pub fn new(s3: &'a aws_sdk_s3::Client, bucket: &'a str, prefix: &str, id: &str) -> Self {
        Self {
            s3,
            bucket,
            folder: format!("{prefix}{id}/"),
        }
    }

    fn error(&self, key: &str, message: String) -> AuditError {
        AuditError {
            bucket: self.bucket.to_string(),
            key: key.to_string(),
            message,
        }
    }

    /// Writes the record of a finished object at `{pipeline}.json`, or of an incomplete attempt at
    /// `{pipeline}.attempt-{ms}.json`; create-only, so a record already there (from an attempt
    /// whose later steps failed) is kept.
    pub async fn write(&self, record: &AuditRecord) -> Result<(), AuditError> {
        let key = if record.complete {
            format!("{}{}.json", self.folder, record.pipeline)
        } else {
            let ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            format!("{}{}.attempt-{ms}.json", self.folder, record.pipeline)
        };
        let body = serde_json::to_vec_pretty(record).expect("audit records serialise");
        let request = self
            .s3
            .put_object()
            .bucket(self.bucket)
            .key(&key)
            .content_type("application/json")
            .body(ByteStream::from(body));
        aws::put_if_absent(request)
            .await
            .map(|_| ())
            .map_err(|e| self.error(&key, aws::describe(&e)))
    }

    /// The keys of the records in this folder.
    async fn keys(&self) -> Result<Vec<String>, AuditError> {
        let mut keys = Vec::new();
        let mut pages = self
            .s3
            .list_objects_v2()
            .bucket(self.bucket)
            .prefix(&self.folder)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.error(&self.folder, aws::describe(&e)))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(String::from)),
            );
        }
        Ok(keys)
    }

    /// Whether a complete record exists, written by any pipeline: the object was anonymised.
    pub async fn is_done(&self) -> Result<bool, AuditError> {
        Ok(self.keys().await?.iter().any(|k| !k.contains(".attempt-")))
    }

    /// SHA-256 and size of the copies that earlier attempts recorded as created, by
    /// destination key.
    pub async fn created_earlier(&self) -> Result<HashMap<String, (String, usize)>, AuditError> {
        let mut created = HashMap::new();
        for key in self.keys().await? {
            let response = self
                .s3
                .get_object()
                .bucket(self.bucket)
                .key(&key)
                .send()
                .await
                .map_err(|e| self.error(&key, aws::describe(&e)))?;
            let body = response
                .body
                .collect()
                .await
                .map_err(|e| self.error(&key, aws::chain(&e)))?
                .into_bytes();
            let record: serde_json::Value = serde_json::from_slice(&body)
                .map_err(|e| self.error(&key, format!("not a JSON record: {e}")))?;
            for copy in record["destinations"].as_array().into_iter().flatten() {
                if let (Some("created"), Some(k), Some(sha), Some(bytes)) = (
                    copy["result"].as_str(),
                    copy["key"].as_str(),
                    copy["sha256"].as_str(),
                    copy["bytes"].as_u64(),
                ) {
                    created.insert(k.to_string(), (sha.to_string(), bytes as usize));
                }
            }
        }
        Ok(created)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot write the audit record s3://{bucket}/{key}: {message}")]
pub struct AuditError {
    pub bucket: String,
    pub key: String,
    pub message: String,
}
