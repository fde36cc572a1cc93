//! The daemon's part of the configuration: where raw objects come from, where clean copies go,
//! what happens to the raw object afterwards, and how hard the worker pool works.
//!
//! These sections are optional in the file (the one-shot CLI needs none of them); `veil run` and
//! `veil check-config` require them through [`DaemonConfig::from_config`], which reports every
//! problem at once, each naming its key.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::daemon::destination::KeyTemplate;
use crate::rendition::Rendition;

/// The ingest account: the queue veil drains and the raw buckets it may read.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// URL of the SQS queue that receives the raw buckets' notifications.
    pub queue_url: String,
    pub region: String,
    /// Endpoint for every AWS call (S3, SQS, STS): set only for emulators such as moto or
    /// LocalStack. S3 then uses path-style addressing.
    pub endpoint_url: Option<String>,
    /// Per-service endpoints, over `endpoint_url`: e.g. S3 on MinIO, SQS and STS on LocalStack.
    #[serde(default)]
    pub endpoints: ServiceEndpoints,
    /// The raw buckets and key prefixes veil may read. A notification for any other object is
    /// refused (published nowhere, left for the dead-letter queue).
    pub sources: Vec<SourceRule>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceEndpoints {
    pub s3: Option<String>,
    pub sqs: Option<String>,
    pub sts: Option<String>,
}

impl IngestConfig {
    /// The endpoint each service uses: its own if set, else `endpoint_url`, else AWS's.
    pub fn endpoints(&self) -> ServiceEndpoints {
        let pick = |own: &Option<String>| own.clone().or_else(|| self.endpoint_url.clone());
        ServiceEndpoints {
            s3: pick(&self.endpoints.s3),
            sqs: pick(&self.endpoints.sqs),
            sts: pick(&self.endpoints.sts),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceRule {
    pub bucket: String,
    #[serde(default)]
    pub prefix: String,
}

impl SourceRule {
    pub fn allows(&self, bucket: &str, key: &str) -> bool {
        self.bucket == bucket && key.starts_with(&self.prefix)
    }
}

/// One downstream account and the copy it receives.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationConfig {
    /// Short name used in logs, metrics and the audit record (e.g. "training").
    pub name: String,
    /// Twelve digits. Written as a number (an environment override, or a file without quotes), it
    /// is read as its digits.
    #[serde(deserialize_with = "digits")]
    pub account_id: String,
    /// The writer role in the destination account; veil assumes it for every PUT.
    pub role_arn: String,
    /// The external id the role's trust policy requires (guards against confused deputies).
    pub external_id: Option<String>,
    pub bucket: String,
    /// Region of the destination bucket; defaults to the ingest region.
    pub region: Option<String>,
    /// Destination key; see [`KeyTemplate`] for the placeholders.
    #[serde(default = "default_key_template")]
    pub key_template: String,
    #[serde(default)]
    pub rendition: Rendition,
    /// Full ARN of the KMS key for SSE-KMS (an alias would resolve in the wrong account).
    pub sse_kms_key_arn: Option<String>,
}

/// A string, or an integer read as its decimal digits.
fn digits<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Digits {
        Text(String),
        Number(u64),
    }
    Ok(match Digits::deserialize(d)? {
        Digits::Text(t) => t,
        Digits::Number(n) => n.to_string(),
    })
}

fn default_key_template() -> String {
    "anonymised/{pipeline}/{id}.{ext}".into()
}

/// What happens to the raw object once every destination holds its copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Disposition {
    /// Delete the processed version (lifecycle expiry can lag by days).
    #[default]
    Delete,
    /// Add a tag (for a lifecycle rule or a later sweep).
    Tag,
    Keep,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub disposition: Disposition,
    pub tag_key: String,
    pub tag_value: String,
}

impl Default for RawConfig {
    fn default() -> Self {
        Self {
            disposition: Disposition::Delete,
            tag_key: "veil".into(),
            tag_value: "anonymised".into(),
        }
    }
}

/// Where the audit records go: a bucket in the ingest account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    pub bucket: String,
    #[serde(default = "default_audit_prefix")]
    pub prefix: String,
}

fn default_audit_prefix() -> String {
    "veil-audit/".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// Images anonymised at once (one pipeline, with its own model sessions, each). Default: the
    /// number of CPU cores.
    pub pipelines: Option<usize>,
    /// Objects in flight (downloading, waiting for a pipeline, uploading). Memory is bounded by
    /// this times `limits.max_pixels` × about 6 bytes. Default: twice the pipelines.
    pub in_flight: Option<usize>,
    /// Visibility timeout veil sets on a message it works on, renewed every `heartbeat_s`.
    pub visibility_timeout_s: u64,
    pub heartbeat_s: u64,
    /// After the first failure, the message becomes visible again this much later; each further
    /// failure of the same message doubles the delay (from its receive count), up to
    /// `retry_max_delay_s`, so that a downstream outage of minutes does not exhaust the queue's
    /// maxReceiveCount and push every message into the dead-letter queue.
    pub retry_delay_s: u64,
    pub retry_max_delay_s: u64,
    /// Long-poll wait of each receive (at most 20).
    pub receive_wait_s: u64,
    /// On SIGTERM/SIGINT, how long in-flight objects may take to finish. Keep it below the
    /// container's stop timeout (ECS: 30 s by default).
    pub shutdown_grace_s: u64,
    /// Seconds an assumed-role session lasts: 900 to 43200 (STS's bounds, and the writer role's
    /// MaxSessionDuration). When veil's own credentials are an assumed role (an ECS task role),
    /// STS caps chained sessions at 3600.
    pub role_session_s: u64,
    /// Timeout of every AWS call, in seconds.
    pub aws_timeout_s: u64,
    /// Show object keys as they are in logs and error messages. Off by default: keys can hold
    /// names or plates, and logs usually leave the account; keys are then shown hashed.
    pub log_raw_keys: bool,
}

impl WorkerConfig {
    /// The visibility delay after the `receive_count`-th failed receive of a message:
    /// `retry_delay_s`, doubled for each earlier receive, at most `retry_max_delay_s`.
    pub fn retry_delay(&self, receive_count: u32) -> std::time::Duration {
        let doublings = receive_count.saturating_sub(1).min(16);
        let delay = self.retry_delay_s.saturating_mul(1 << doublings);
        std::time::Duration::from_secs(delay.min(self.retry_max_delay_s))
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            pipelines: None,
            in_flight: None,
            visibility_timeout_s: 300,
            heartbeat_s: 60,
            retry_delay_s: 30,
            retry_max_delay_s: 900,
            receive_wait_s: 20,
            shutdown_grace_s: 25,
            role_session_s: 3600,
            aws_timeout_s: 60,
            log_raw_keys: false,
        }
    }
}

impl WorkerConfig {
    pub fn pipelines(&self) -> usize {
        self.pipelines.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.unwrap_or(2 * self.pipelines())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address of the `/metrics`, `/healthz` and `/readyz` endpoints.
    pub listen: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:9464".into(),
        }
    }
}

/// The daemon's settings, checked: every field `veil run` needs is present and coherent.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub ingest: IngestConfig,
    pub destinations: Vec<(DestinationConfig, KeyTemplate)>,
    pub raw: RawConfig,
    pub audit: AuditConfig,
    pub worker: WorkerConfig,
    pub metrics_listen: SocketAddr,
}

impl DaemonConfig {
    /// The daemon sections of `config`, or every problem with them, each naming its key.
    pub fn from_config(config: &Config) -> Result<Self, Vec<String>> {
        let mut errors = Vec::new();
        let ingest = config.ingest.clone();
        match &ingest {
            None => errors.push("ingest: section required to run the daemon".into()),
            Some(i) => errors.extend(validate_ingest(i)),
        }
        let audit = config.audit.clone();
        match &audit {
            None => errors.push("audit: section required to run the daemon".into()),
            Some(a) if !valid_bucket(&a.bucket) => {
                errors.push(format!("audit.bucket: invalid bucket name {:?}", a.bucket))
            }
            Some(_) => {}
        }
        if config.destinations.is_empty() {
            errors.push("destinations: at least one destination is required".into());
        }
        let sources = ingest.as_ref().map_or(&[][..], |i| &i.sources[..]);
        let mut destinations = Vec::new();
        for (i, d) in config.destinations.iter().enumerate() {
            let key = format!("destinations[{i}] ({})", d.name);
            errors.extend(validate_destination(&key, d, sources));
            if config.destinations[..i].iter().any(|o| o.name == d.name) {
                errors.push(format!("{key}.name: used by another destination"));
            }
            match KeyTemplate::parse(&d.key_template) {
                Ok(t) => destinations.push((d.clone(), t)),
                Err(e) => errors.push(format!("{key}.key_template: {e}")),
            }
        }
        let custom_sts = ingest.as_ref().is_some_and(|i| i.endpoints().sts.is_some());
        errors.extend(validate_worker(&config.worker, custom_sts));
        let metrics_listen = config.metrics.listen.parse::<SocketAddr>();
        if metrics_listen.is_err() {
            errors.push(format!(
                "metrics.listen: {:?} is not an address such as 0.0.0.0:9464",
                config.metrics.listen
            ));
        }
        match (ingest, audit, metrics_listen) {
            (Some(ingest), Some(audit), Ok(metrics_listen)) if errors.is_empty() => Ok(Self {
                ingest,
                destinations,
                raw: config.raw.clone(),
                audit,
                worker: config.worker.clone(),
                metrics_listen,
            }),
            _ => Err(errors),
        }
    }
}

fn validate_ingest(i: &IngestConfig) -> Vec<String> {
    let mut errors = Vec::new();
    if !(i.queue_url.starts_with("https://") || i.queue_url.starts_with("http://")) {
        errors.push(format!(
            "ingest.queue_url: {:?} is not a queue URL",
            i.queue_url
        ));
    }
    let e = i.endpoints();
    for (key, url) in [
        ("endpoint_url", &i.endpoint_url),
        ("endpoints.s3", &e.s3),
        ("endpoints.sqs", &e.sqs),
        ("endpoints.sts", &e.sts),
    ] {
        if let Some(u) = url.as_deref().filter(|u| !u.starts_with("http")) {
            errors.push(format!("ingest.{key}: {u:?} is not an http(s) URL"));
        }
    }
    if i.region.is_empty() {
        errors.push("ingest.region: must not be empty".into());
    }
    if i.sources.is_empty() {
        errors.push("ingest.sources: at least one raw bucket is required".into());
    }
    for (n, s) in i.sources.iter().enumerate() {
        if !valid_bucket(&s.bucket) {
            errors.push(format!(
                "ingest.sources[{n}].bucket: invalid bucket name {:?}",
                s.bucket
            ));
        }
    }
    errors
}

fn validate_destination(key: &str, d: &DestinationConfig, sources: &[SourceRule]) -> Vec<String> {
    let mut errors = d.rendition.validate(&format!("{key}.rendition"));
    if d.name.is_empty()
        || !d
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        errors.push(format!(
            "{key}.name: use letters, digits, '-' and '_' only (it becomes a metric label)"
        ));
    }
    if d.account_id.len() != 12 || !d.account_id.chars().all(|c| c.is_ascii_digit()) {
        errors.push(format!(
            "{key}.account_id: {:?} is not a 12-digit account id",
            d.account_id
        ));
    }
    let role_of_account = partition(&d.role_arn).is_some_and(|p| {
        let prefix = format!("arn:{p}:iam::{}:role/", d.account_id);
        d.role_arn.starts_with(&prefix) && d.role_arn.len() > prefix.len()
    });
    if !role_of_account {
        errors.push(format!(
            "{key}.role_arn: {:?} is not a role of account {} (arn:PARTITION:iam::ACCOUNT:role/NAME)",
            d.role_arn, d.account_id
        ));
    }
    if !valid_bucket(&d.bucket) {
        errors.push(format!("{key}.bucket: invalid bucket name {:?}", d.bucket));
    }
    if sources.iter().any(|s| s.bucket == d.bucket) {
        errors.push(format!(
            "{key}.bucket: {} is a raw bucket; anonymised copies must go to another account's bucket",
            d.bucket
        ));
    }
    if let Some(k) = &d.sse_kms_key_arn
        && !partition(k)
            .is_some_and(|p| k.starts_with(&format!("arn:{p}:kms:")) && k.contains(":key/"))
    {
        errors.push(format!(
            "{key}.sse_kms_key_arn: {k:?} is not a full key ARN (arn:PARTITION:kms:REGION:ACCOUNT:key/ID); an alias would resolve in the ingest account"
        ));
    }
    if let (Some(role), Some(k)) = (
        partition(&d.role_arn),
        d.sse_kms_key_arn.as_deref().and_then(partition),
    ) && role != k
    {
        errors.push(format!(
            "{key}.sse_kms_key_arn: partition {k} differs from the role's ({role})"
        ));
    }
    errors
}

fn validate_worker(w: &WorkerConfig, custom_sts: bool) -> Vec<String> {
    let mut errors = Vec::new();
    if w.pipelines == Some(0) || w.in_flight == Some(0) {
        errors.push("worker.pipelines and worker.in_flight must be at least 1".into());
    }
    if !(1..=43_200).contains(&w.visibility_timeout_s) {
        errors.push("worker.visibility_timeout_s must be in 1..=43200 (SQS's limit)".into());
    }
    if w.heartbeat_s == 0 || w.heartbeat_s >= w.visibility_timeout_s {
        errors.push(format!(
            "worker.heartbeat_s must be positive and below visibility_timeout_s ({})",
            w.visibility_timeout_s
        ));
    }
    if w.retry_delay_s > w.retry_max_delay_s || w.retry_max_delay_s > 43_200 {
        errors.push(
            "worker.retry_delay_s must be at most retry_max_delay_s, and that at most 43200 (SQS's limit)"
                .into(),
        );
    }
    if w.receive_wait_s > 20 {
        errors.push("worker.receive_wait_s must be at most 20 (SQS's limit)".into());
    }
    // STS refuses sessions under 15 minutes; an emulator (a custom STS endpoint) may allow them.
    let shortest = if custom_sts { 1 } else { 900 };
    if !(shortest..=43_200).contains(&w.role_session_s) {
        errors.push(format!(
            "worker.role_session_s must be in {shortest}..=43200 (STS's limits)"
        ));
    }
    if w.aws_timeout_s <= w.receive_wait_s {
        errors.push(format!(
            "worker.aws_timeout_s must exceed receive_wait_s ({}), or every long poll would time out",
            w.receive_wait_s
        ));
    }
    errors
}

/// The AWS partitions veil knows: commercial, China, GovCloud, and the isolated regions.
const PARTITIONS: [&str; 5] = ["aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b"];

/// The partition of an ARN, if it is one of [`PARTITIONS`].
fn partition(arn: &str) -> Option<&'static str> {
    let p = arn.strip_prefix("arn:")?.split(':').next()?;
    PARTITIONS.iter().copied().find(|&known| known == p)
}

/// S3's bucket naming rules, enough to catch typos and ARNs pasted in place of names.
fn valid_bucket(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && b.starts_with(|c: char| c.is_ascii_alphanumeric())
        && b.ends_with(|c: char| c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn load(name: &str) -> Config {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("config")
            .join(name);
        Config::load(Some(&path)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn the_shipped_daemon_configs_are_valid() {
        for name in ["veil.example.toml", "local.toml"] {
            let c = load(name);
            let d = DaemonConfig::from_config(&c).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert_eq!(d.destinations.len(), 3, "{name}");
        }
    }

    #[test]
    fn every_daemon_problem_is_reported_at_once_with_its_key() {
        let mut c = load("veil.example.toml");
        c.ingest.as_mut().unwrap().queue_url = "veil-raw-events".into();
        c.destinations[0].account_id = "2222".into();
        c.destinations[1].bucket = "acme-ingest-raw".into();
        c.destinations[1].name = "training".into();
        c.destinations[2].sse_kms_key_arn = Some("alias/veil".into());
        c.destinations[2].key_template = "anonymised/{pipeline}.{ext}".into();
        c.worker.heartbeat_s = 600;
        c.metrics.listen = "everywhere".into();
        c.audit = None;
        let errors = DaemonConfig::from_config(&c).unwrap_err().join("\n");
        for key in [
            "ingest.queue_url",
            "destinations[0] (training).account_id",
            "destinations[0] (training).role_arn",
            "destinations[1] (training).bucket",
            "destinations[1] (training).name",
            "destinations[2] (analytics).sse_kms_key_arn",
            "destinations[2] (analytics).key_template",
            "worker.heartbeat_s",
            "metrics.listen",
            "audit:",
        ] {
            assert!(errors.contains(key), "{key} missing from:\n{errors}");
        }
    }

    #[test]
    fn role_sessions_follow_sts_limits_unless_sts_is_an_emulator() {
        let mut c = load("veil.example.toml");
        for (session, ok) in [
            (899, false),
            (900, true),
            (3600, true),
            (43_200, true),
            (43_201, false),
        ] {
            c.worker.role_session_s = session;
            let result = DaemonConfig::from_config(&c);
            assert_eq!(result.is_ok(), ok, "{session}: {result:?}");
        }
        let mut local = load("local.toml");
        local.worker.role_session_s = 4;
        assert!(DaemonConfig::from_config(&local).is_ok());
    }

    #[test]
    fn arns_of_every_partition_are_accepted_and_mixed_partitions_refused() {
        let mut c = load("veil.example.toml");
        for p in ["aws", "aws-cn", "aws-us-gov"] {
            let d = &mut c.destinations[0];
            d.role_arn = format!("arn:{p}:iam::{}:role/veil-writer", d.account_id);
            d.sse_kms_key_arn = Some(format!(
                "arn:{p}:kms:cn-north-1:{}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                d.account_id
            ));
            let result = DaemonConfig::from_config(&c);
            assert!(result.is_ok(), "{p}: {result:?}");
        }
        c.destinations[0].role_arn = format!(
            "arn:aws:iam::{}:role/veil-writer",
            c.destinations[0].account_id
        );
        let errors = DaemonConfig::from_config(&c).unwrap_err().join("\n");
        assert!(errors.contains("partition aws-us-gov differs"), "{errors}");
        c.destinations[0].role_arn = "arn:aws-moon:iam::222222222222:role/w".into();
        let errors = DaemonConfig::from_config(&c).unwrap_err().join("\n");
        assert!(errors.contains("role_arn"), "{errors}");
    }

    #[test]
    fn retries_back_off_exponentially_from_the_receive_count() {
        let w = WorkerConfig {
            retry_delay_s: 30,
            retry_max_delay_s: 900,
            ..WorkerConfig::default()
        };
        let delays: Vec<u64> = (1..=7).map(|n| w.retry_delay(n).as_secs()).collect();
        assert_eq!(delays, [30, 60, 120, 240, 480, 900, 900]);
        assert_eq!(w.retry_delay(u32::MAX).as_secs(), 900);
        // With maxReceiveCount 5, a message waits 450 s before the dead-letter queue: a
        // two-minute outage downstream no longer sends it there.
        assert!(delays[..4].iter().sum::<u64>() > 120);
        let bad = WorkerConfig {
            retry_delay_s: 1000,
            ..w
        };
        assert!(!validate_worker(&bad, false).is_empty());
    }

    #[test]
    fn service_endpoints_fall_back_to_the_shared_one() {
        let mut i = load("local.toml").ingest.unwrap();
        i.endpoints.s3 = Some("http://minio:9000".into());
        let e = i.endpoints();
        assert_eq!(e.s3.as_deref(), Some("http://minio:9000"));
        assert_eq!(e.sqs.as_deref(), Some("http://127.0.0.1:5123"));
        assert_eq!(e.sts.as_deref(), Some("http://127.0.0.1:5123"));
        i.endpoint_url = None;
        assert_eq!(i.endpoints().sqs, None);
        i.endpoints.sqs = Some("localstack:4566".into());
        let errors = validate_ingest(&i).join("\n");
        assert!(errors.contains("ingest.endpoints.sqs"), "{errors}");
    }

    #[test]
    fn the_pipeline_sections_alone_are_not_enough_to_run() {
        let errors = DaemonConfig::from_config(&Config::default()).unwrap_err();
        assert!(
            errors.iter().any(|e| e.starts_with("ingest:")),
            "{errors:?}"
        );
        assert!(
            errors.iter().any(|e| e.starts_with("destinations:")),
            "{errors:?}"
        );
    }
}
