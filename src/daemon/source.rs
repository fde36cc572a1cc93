//! The raw side, in the ingest account: reading a raw object (within the byte limit) and, once
//! every destination holds its copy, deleting or tagging it.

use aws_sdk_s3::types::{Tag, Tagging};

use crate::daemon::aws;
use crate::daemon::config::{Disposition, RawConfig};
use crate::daemon::events::ObjectRef;
use crate::daemon::logkeys::LoggedKey;

/// A raw object read into memory.
pub struct Fetched {
    pub bytes: Vec<u8>,
    /// The ETag read (else, from a store that gives none, the version): with bucket and key, it
    /// identifies exactly these bytes, so copies of them get the same destination keys on every
    /// retry. Every S3 event carries the ETag too, with or without a version id, so a later event
    /// for the same object names the same revision (see [`ObjectRef::revision`]).
    pub revision: String,
    pub version_id: Option<String>,
    /// The ETag read, without quotes: on an unversioned bucket the delete is conditional on it.
    pub etag: Option<String>,
}

/// What became of the raw object after its copies were written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposed {
    /// Deleted, tagged or kept, as configured (or already deleted by an earlier attempt).
    Done,
    /// The key now holds newer bytes (overwritten after veil read it): they are left for their
    /// own notification, not deleted unread.
    Superseded,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The object no longer exists (already processed and deleted, or removed by its owner).
    #[error("s3://{bucket}/{} no longer exists", LoggedKey(.key))]
    Gone { bucket: String, key: String },
    #[error("s3://{bucket}/{} has {size} bytes, over limits.max_bytes ({limit})", LoggedKey(.key))]
    TooLarge {
        bucket: String,
        key: String,
        size: u64,
        limit: u64,
    },
    #[error("cannot {action} s3://{bucket}/{}: {message}", LoggedKey(.key))]
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
    let etag = response.e_tag().map(|t| t.trim_matches('"').to_string());
    let revision = etag
        .clone()
        .or_else(|| version_id.clone())
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
        etag,
    })
}

/// Deletes or tags the version that was anonymised, as configured.
///
/// On a versioned bucket the delete names the version read. On an unversioned one it is
/// conditional on the ETag read (`If-Match`): if the key was overwritten since, S3 refuses
/// (412) and the newer object stays for its own notification; one already gone (404) counts as
/// deleted.
pub async fn dispose(
    s3: &aws_sdk_s3::Client,
    o: &ObjectRef,
    fetched: &Fetched,
    raw: &RawConfig,
) -> Result<Disposed, SourceError> {
    let version_id = fetched.version_id.as_deref();
    match raw.disposition {
        Disposition::Keep => Ok(Disposed::Done),
        Disposition::Delete => {
            let if_match = match version_id {
                Some(_) => None,
                None => fetched.etag.as_ref().map(|t| format!("\"{t}\"")),
            };
            let result = s3
                .delete_object()
                .bucket(&o.bucket)
                .key(&o.key)
                .set_version_id(version_id.map(str::to_string))
                .set_if_match(if_match)
                .send()
                .await;
            match result {
                Ok(_) => Ok(Disposed::Done),
                Err(e) if aws::status(&e) == Some(412) => Ok(Disposed::Superseded),
                Err(e) if aws::status(&e) == Some(404) && aws::error_code(&e) != "NoSuchBucket" => {
                    Ok(Disposed::Done)
                }
                Err(e) => Err(SourceError::call("delete", o, &e)),
            }
        }
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
                .map(|_| Disposed::Done)
                .map_err(|e| SourceError::call("tag", o, &e))
        }
    }
}
