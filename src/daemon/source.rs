//! The raw side, in the ingest account: reading a raw object (within the byte limit) and, once
//! every destination holds its copy, deleting or tagging it.

use aws_sdk_s3::types::{Tag, Tagging};

use crate::daemon::aws;
use crate::daemon::config::{Disposition, RawConfig};
use crate::daemon::events::ObjectRef;

/// A raw object read into memory.
pub struct Fetched {
    pub bytes: Vec<u8>,
    /// The version read (versioned buckets), else its ETag: with bucket and key, it identifies
    /// exactly these bytes, so copies of them get the same destination keys on every retry.
    pub revision: String,
    pub version_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The object no longer exists (already processed and deleted, or removed by its owner).
    #[error("s3://{bucket}/{key} no longer exists")]
    Gone { bucket: String, key: String },
    #[error("s3://{bucket}/{key} has {size} bytes, over limits.max_bytes ({limit})")]
    TooLarge {
        bucket: String,
        key: String,
        size: u64,
        limit: u64,
    },
    #[error("cannot {action} s3://{bucket}/{key}: {message}")]
    Call {
        action: &'static str,
        bucket: String,
        key: String,
        code: String,
        message: String,
    },
}

impl SourceError {
    fn call<E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static>(
        action: &'static str,
        o: &ObjectRef,
        e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    ) -> Self {
        SourceError::Call {
            action,
            bucket: o.bucket.clone(),
            key: o.key.clone(),
            code: aws::error_code(e),
            message: aws::describe(e),
        }
    }
}

/// Reads the object the notification names (its exact version when the event gave one),
/// refusing it before download when S3 says it is larger than `max_bytes`, and while
/// downloading if it turns out to be.
pub async fn fetch(
    s3: &aws_sdk_s3::Client,
    o: &ObjectRef,
    max_bytes: u64,
) -> Result<Fetched, SourceError> {
    let too_large = |size| SourceError::TooLarge {
        bucket: o.bucket.clone(),
        key: o.key.clone(),
        size,
        limit: max_bytes,
    };
    if let Some(size) = o.size.filter(|&s| s > max_bytes) {
        return Err(too_large(size));
    }
    let response = s3
        .get_object()
        .bucket(&o.bucket)
        .key(&o.key)
        .set_version_id(o.version_id.clone())
        .send()
        .await;
    let response = match response {
        Ok(r) => r,
        // NoSuchKey, or NoSuchVersion for a version already deleted (not NoSuchBucket: that
        // is a configuration problem, not a finished object).
        Err(e) if aws::status(&e) == Some(404) && aws::error_code(&e) != "NoSuchBucket" => {
            return Err(SourceError::Gone {
                bucket: o.bucket.clone(),
                key: o.key.clone(),
            });
        }
        Err(e) => return Err(SourceError::call("read", o, &e)),
    };
    let length = response.content_length().unwrap_or(0).max(0) as u64;
    if length > max_bytes {
        return Err(too_large(length));
    }
    let version_id = response.version_id().map(str::to_string);
    let revision = version_id
        .clone()
        .or_else(|| response.e_tag().map(|t| t.trim_matches('"').to_string()))
        .unwrap_or_default();
    let mut body = response.body;
    let mut bytes = Vec::with_capacity(length as usize);
    while let Some(chunk) = body.try_next().await.map_err(|e| SourceError::Call {
        action: "read",
        bucket: o.bucket.clone(),
        key: o.key.clone(),
        code: "Body".into(),
        message: aws::chain(&e),
    })? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() as u64 > max_bytes {
            return Err(too_large(bytes.len() as u64));
        }
    }
    Ok(Fetched {
        bytes,
        revision,
        version_id,
    })
}

/// Deletes or tags the version that was anonymised, as configured.
pub async fn dispose(
    s3: &aws_sdk_s3::Client,
    o: &ObjectRef,
    version_id: Option<&str>,
    raw: &RawConfig,
) -> Result<(), SourceError> {
    match raw.disposition {
        Disposition::Keep => Ok(()),
        Disposition::Delete => s3
            .delete_object()
            .bucket(&o.bucket)
            .key(&o.key)
            .set_version_id(version_id.map(str::to_string))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| SourceError::call("delete", o, &e)),
        Disposition::Tag => {
            // PutObjectTagging replaces the whole set: keep the owner's other tags.
            let existing = s3
                .get_object_tagging()
                .bucket(&o.bucket)
                .key(&o.key)
                .set_version_id(version_id.map(str::to_string))
                .send()
                .await
                .map_err(|e| SourceError::call("read the tags of", o, &e))?;
            let mut tags: Vec<Tag> = existing
                .tag_set
                .into_iter()
                .filter(|t| t.key != raw.tag_key)
                .collect();
            tags.push(
                Tag::builder()
                    .key(&raw.tag_key)
                    .value(&raw.tag_value)
                    .build()
                    .expect("key and value are set"),
            );
            let tagging = Tagging::builder()
                .set_tag_set(Some(tags))
                .build()
                .expect("tag set is set");
            s3.put_object_tagging()
                .bucket(&o.bucket)
                .key(&o.key)
                .set_version_id(version_id.map(str::to_string))
                .tagging(tagging)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| SourceError::call("tag", o, &e))
        }
    }
}
