//! The AWS SDK set-up shared by every client: one HTTP stack (hyper + rustls with ring), the
//! ingest region, timeouts on every call, capped retries, and an optional emulator endpoint.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls;

/// Attempts per AWS call (the first try included) before veil gives up on it.
const MAX_ATTEMPTS: u32 = 3;

/// The ingest account's configuration: credentials from the default chain (environment, ECS task
/// role, instance profile), `region`, and `endpoint_url` when talking to an emulator.
pub async fn sdk_config(region: &str, endpoint_url: Option<&str>, timeout: Duration) -> SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .http_client(http)
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(10).min(timeout))
                .operation_attempt_timeout(timeout)
                .operation_timeout(timeout * MAX_ATTEMPTS)
                .build(),
        );
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// S3 settings from `config`, in `region` if given; path-style addressing when an emulator
/// endpoint is set.
pub fn s3_config(config: &SdkConfig, region: Option<&str>) -> aws_sdk_s3::config::Builder {
    let mut builder = aws_sdk_s3::config::Builder::from(config);
    if config.endpoint_url().is_some() {
        builder = builder.force_path_style(true);
    }
    if let Some(r) = region {
        builder = builder.region(Region::new(r.to_string()));
    }
    builder
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
