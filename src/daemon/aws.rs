//! The AWS SDK set-up shared by every client: one HTTP stack (hyper + rustls with ring), the
//! ingest region, timeouts on every call, capped retries, and optional endpoints for emulators
//! or S3-compatible stores.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls;

use crate::daemon::config::{IngestConfig, ServiceEndpoints};

/// Attempts per AWS call (the first try included) before veil gives up on it.
const MAX_ATTEMPTS: u32 = 3;

/// The ingest account's AWS set-up: credentials from the default chain (environment, ECS task
/// role, instance profile), the ingest region, and each service's endpoint when it is not AWS.
pub struct Aws {
    sdk: SdkConfig,
    endpoints: ServiceEndpoints,
}

impl Aws {
    pub async fn new(ingest: &IngestConfig, timeout: Duration) -> Self {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(ingest.region.clone()))
            .http_client(http)
            .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10).min(timeout))
                    .operation_attempt_timeout(timeout)
                    .operation_timeout(timeout * MAX_ATTEMPTS)
                    .build(),
            )
            .load()
            .await;
        Self {
            sdk,
            endpoints: ingest.endpoints(),
        }
    }

    /// S3 settings, in `region` if given (else the ingest region); path-style addressing when
    /// S3 is an emulator or another S3-compatible store.
    pub fn s3(&self, region: Option<&str>) -> aws_sdk_s3::config::Builder {
        let mut builder = aws_sdk_s3::config::Builder::from(&self.sdk);
        if let Some(url) = &self.endpoints.s3 {
            builder = builder.endpoint_url(url).force_path_style(true);
        }
        if let Some(r) = region {
            builder = builder.region(Region::new(r.to_string()));
        }
        builder
    }

    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        let mut builder = aws_sdk_sqs::config::Builder::from(&self.sdk);
        if let Some(url) = &self.endpoints.sqs {
            builder = builder.endpoint_url(url);
        }
        aws_sdk_sqs::Client::from_conf(builder.build())
    }

    /// The settings AssumeRole calls use: the ingest credentials, with the STS endpoint.
    pub fn sts(&self) -> SdkConfig {
        match &self.endpoints.sts {
            Some(url) => self.sdk.to_builder().endpoint_url(url).build(),
            None => self.sdk.clone(),
        }
    }
}

/// A short, stable name for an SDK error, for metric labels: the service's error code
/// (`AccessDenied`, `NoSuchBucket`), else the kind of failure (`Timeout`, `Dispatch`).
pub fn error_code<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> String {
    match e {
        SdkError::ServiceError(s) => s.err().code().unwrap_or("Unknown").to_string(),
        SdkError::TimeoutError(_) => "Timeout".into(),
        SdkError::DispatchFailure(_) => "Dispatch".into(),
        SdkError::ResponseError(_) => "Response".into(),
        SdkError::ConstructionFailure(_) => "Construction".into(),
        _ => "Unknown".into(),
    }
}

/// Sends a PUT made create-only (`If-None-Match: *`): `Ok(false)` when the key already held an
/// object (HTTP 412), which for veil's deterministic keys means the work was done before.
pub async fn put_if_absent(
    request: aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder,
) -> Result<bool, SdkError<aws_sdk_s3::operation::put_object::PutObjectError, HttpResponse>> {
    match request.if_none_match("*").send().await {
        Ok(_) => Ok(true),
        Err(e) if status(&e) == Some(412) => Ok(false),
        Err(e) => Err(e),
    }
}

/// HTTP status of a service error, when the service answered.
pub fn status<E>(e: &SdkError<E, HttpResponse>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

/// One line about an SDK error: the service's code and message when it answered, else the
/// chain of causes (the SDK's `Display` shows only "service error" or "dispatch failure").
pub fn describe<E: ProvideErrorMetadata + std::error::Error + 'static>(
    e: &SdkError<E, HttpResponse>,
) -> String {
    match e {
        SdkError::ServiceError(s) => {
            let err = s.err();
            format!(
                "{} (HTTP {}){}",
                err.code().unwrap_or("error"),
                s.raw().status().as_u16(),
                err.message().map(|m| format!(": {m}")).unwrap_or_default()
            )
        }
        other => chain(other),
    }
}

/// An error and its causes, each once, joined with ": ".
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    parts.join(": ")
}
