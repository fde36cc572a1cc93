//! Writing anonymised copies into downstream accounts, each through its own assumed role.
//!
//! Every destination has an S3 client whose credentials come from STS AssumeRole on that
//! destination's writer role, with its external id and a session policy that allows only
//! `s3:PutObject` under the destination's bucket and key prefix — so even a mistake in veil
//! cannot make one destination's credentials read, list or write anything else. Credentials are
//! cached and re-assumed before they expire (role chaining caps a session at one hour).
//!
//! Writes are create-only (`If-None-Match: *`) to deterministic keys: a retry or a duplicate
//! notification finds the copy already there (HTTP 412) and counts it as done.

use std::time::Duration;

use aws_config::identity::IdentityCache;
use aws_config::sts::AssumeRoleProvider;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use prometheus::IntCounter;

use crate::codec::Format;
use crate::daemon::aws::{self, Aws};
use crate::daemon::config::DestinationConfig;
use crate::daemon::logkeys::LoggedKey;
use crate::rendition::Rendition;

/// A destination key with placeholders:
/// `{id}` (a hash of the source bucket, key and ETag — required, it makes keys unique and
/// deterministic), `{pipeline}` (a hash of veil's version, the models, settings and this
/// destination's rendition), `{ext}` (the output's extension), `{destination}` (its name) and
/// `{key}` (the source key: only if the destination may see it, as keys can hold names or plates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTemplate(Vec<Part>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Id,
    Pipeline,
    Ext,
    Destination,
    Key,
}

/// The values a key is built from.
pub struct KeyValues<'a> {
    pub id: &'a str,
    pub pipeline: &'a str,
    pub ext: &'a str,
    pub destination: &'a str,
    pub key: &'a str,
}

impl KeyTemplate {
    pub fn parse(template: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("unclosed '{{' in {template:?}"))?;
            parts.push(match &rest[open + 1..open + close] {
                "id" => Part::Id,
                "pipeline" => Part::Pipeline,
                "ext" => Part::Ext,
                "destination" => Part::Destination,
                "key" => Part::Key,
                other => {
                    return Err(format!(
                        "unknown placeholder {{{other}}} (use {{id}}, {{pipeline}}, {{ext}}, {{destination}}, {{key}})"
                    ));
                }
            });
            rest = &rest[open + close + 1..];
        }
        if rest.contains('}') {
            return Err(format!("unmatched '}}' in {template:?}"));
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        if !parts.contains(&Part::Id) {
            return Err("must contain {id}, or copies of different objects would collide".into());
        }
        if template.starts_with('/') {
            return Err("must not start with '/'".into());
        }
        Ok(Self(parts))
    }

    /// Whether keys hold the source key (`{key}`), which logs must then not show as it is.
    pub fn holds_source_key(&self) -> bool {
        self.0.contains(&Part::Key)
    }

    /// The fixed text before the first placeholder: the prefix the writer role is confined to.
    pub fn prefix(&self) -> &str {
        match self.0.first() {
            Some(Part::Text(t)) => t,
            _ => "",
        }
    }

    pub fn render(&self, v: &KeyValues) -> String {
        self.0
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.as_str(),
                Part::Id => v.id,
                Part::Pipeline => v.pipeline,
                Part::Ext => v.ext,
                Part::Destination => v.destination,
                Part::Key => v.key,
            })
            .collect()
    }
}

/// The session policy veil passes to AssumeRole: the intersection with the role's own policy is
/// what the session may do, so this is the narrowest grant whatever the role allows.
pub fn session_policy(d: &DestinationConfig, template: &KeyTemplate) -> serde_json::Value {
    let partition = d.role_arn.split(':').nth(1).unwrap_or("aws");
    let mut statements = vec![serde_json::json!({
        "Sid": "PutAnonymisedCopiesOnly",
        "Effect": "Allow",
        "Action": "s3:PutObject",
        "Resource": format!("arn:{partition}:s3:::{}/{}*", d.bucket, template.prefix()),
    })];
    if let Some(key) = &d.sse_kms_key_arn {
        statements.push(serde_json::json!({
            "Sid": "EncryptWithTheDestinationKey",
            "Effect": "Allow",
            "Action": "kms:GenerateDataKey",
            "Resource": key,
        }));
    }
    serde_json::json!({"Version": "2012-10-17", "Statement": statements})
}

/// The outcome of one create-only PUT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    Created,
    /// The key already held a copy (a retry, or a duplicate notification).
    AlreadyPresent,
}

impl Put {
    pub fn as_str(self) -> &'static str {
        match self {
            Put::Created => "created",
            Put::AlreadyPresent => "already_present",
        }
    }
}

/// A PUT that failed; the object's message is left for retry.
#[derive(Debug, thiserror::Error)]
#[error("cannot write s3://{bucket}/{shown_key} for destination {destination}: {message}")]
pub struct DestinationError {
    pub destination: String,
    pub bucket: String,
    pub key: String,
    /// The key as logs show it (see [`Destination::logged`]).
    pub shown_key: String,
    /// Short code for metrics (`AccessDenied`, `Timeout`, ...).
    pub code: String,
    pub message: String,
}

/// One downstream bucket and the role that writes it.
pub struct Destination {
    pub config: DestinationConfig,
    pub template: KeyTemplate,
    client: aws_sdk_s3::Client,
    credentials: SharedCredentialsProvider,
}

impl Destination {
    /// Builds the destination's client. Nothing is called yet: the role is first assumed on
    /// the first PUT (or by [`Destination::probe`]).
    pub async fn new(
        config: DestinationConfig,
        template: KeyTemplate,
        aws: &Aws,
        session: Duration,
        refreshes: IntCounter,
    ) -> Self {
        let policy = session_policy(&config, &template).to_string();
        let mut role = AssumeRoleProvider::builder(config.role_arn.clone())
            .session_name(format!("veil-{}", config.name))
            .policy(policy)
            .session_length(session)
            .configure(&aws.sts());
        if let Some(id) = &config.external_id {
            role = role.external_id(id.clone());
        }
        let provider = CountingProvider {
            inner: role.build().await,
            refreshes,
        };
        // Re-assume a while before expiry, so no PUT ever signs with a dying session.
        let buffer = (session / 5).min(Duration::from_secs(300));
        let credentials = SharedCredentialsProvider::new(provider);
        let s3_config = aws
            .s3(config.region.as_deref())
            .credentials_provider(credentials.clone())
            .identity_cache(IdentityCache::lazy().buffer_time(buffer).build())
            .build();
        Self {
            client: aws_sdk_s3::Client::from_conf(s3_config),
            credentials,
            config,
            template,
        }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn rendition(&self) -> &Rendition {
        &self.config.rendition
    }

    /// Writes `bytes` at `key` unless a copy is already there. S3 checks the upload against
    /// `sha256_hex` (the copy's SHA-256) and stores it as the object's checksum.
    pub async fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        sha256_hex: &str,
        format: Format,
        metadata: &[(&str, &str)],
    ) -> Result<Put, DestinationError> {
        let digest = hex::decode(sha256_hex).expect("a SHA-256 in hex");
        let mut request = self
            .client
            .put_object()
            .bucket(&self.config.bucket)
            .key(key)
            .content_type(format.content_type())
            .checksum_sha256(aws_smithy_types::base64::encode(digest))
            .body(ByteStream::from(bytes));
        for (k, v) in metadata {
            request = request.metadata(*k, *v);
        }
        if let Some(kms) = &self.config.sse_kms_key_arn {
            request = request
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(kms);
        }
        match aws::put_if_absent(request).await {
            Ok(true) => Ok(Put::Created),
            Ok(false) => Ok(Put::AlreadyPresent),
            Err(e) => Err(self.error(key, aws::error_code(&e), aws::describe(&e))),
        }
    }

    /// Checks that the role can be assumed (the only call a writer can make without writing).
    pub async fn probe(&self) -> Result<(), DestinationError> {
        self.credentials
            .provide_credentials()
            .await
            .map(|_| ())
            .map_err(|e| self.error("", "AssumeRole".into(), aws::chain(&e)))
    }

    /// A destination key as logs show it: as it is, unless it holds the source key.
    pub fn logged(&self, key: &str) -> String {
        if self.template.holds_source_key() {
            LoggedKey(key).to_string()
        } else {
            key.to_string()
        }
    }

    fn error(&self, key: &str, code: String, message: String) -> DestinationError {
        DestinationError {
            destination: self.config.name.clone(),
            bucket: self.config.bucket.clone(),
            key: key.to_string(),
            shown_key: self.logged(key),
            code,
            message,
        }
    }
}

/// The assume-role provider, counting each time the identity cache asks it for fresh
/// credentials.
#[derive(Debug)]
struct CountingProvider {
    inner: AssumeRoleProvider,
    refreshes: IntCounter,
}

impl ProvideCredentials for CountingProvider {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            let credentials = self.inner.provide_credentials().await;
            if credentials.is_ok() {
                self.refreshes.inc();
            }
            credentials
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn destination(template: &str, kms: Option<&str>) -> (DestinationConfig, KeyTemplate) {
        let d = DestinationConfig {
            name: "training".into(),
            account_id: "222222222222".into(),
            role_arn: "arn:aws:iam::222222222222:role/veil-writer".into(),
            external_id: Some("veil-ingest".into()),
            bucket: "training-anonymised".into(),
            region: None,
            key_template: template.into(),
            rendition: Rendition::default(),
            sse_kms_key_arn: kms.map(Into::into),
        };
        let t = KeyTemplate::parse(template).unwrap();
        (d, t)
    }

    #[test]
    fn the_session_policy_allows_only_put_object_under_the_prefix() {
        let (d, t) = destination("anonymised/{pipeline}/{id}.{ext}", None);
        let policy = session_policy(&d, &t);
        assert_eq!(
            policy,
            serde_json::json!({"Version": "2012-10-17", "Statement": [{
                "Sid": "PutAnonymisedCopiesOnly", "Effect": "Allow", "Action": "s3:PutObject",
                "Resource": "arn:aws:s3:::training-anonymised/anonymised/*"}]})
        );
    }

    #[test]
    fn the_session_policy_grants_the_kms_key_only_when_configured() {
        let key = "arn:aws:kms:eu-west-1:222222222222:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        let (d, t) = destination("{id}.{ext}", Some(key));
        let policy = session_policy(&d, &t);
        let statements = policy["Statement"].as_array().unwrap();
        assert_eq!(statements.len(), 2);
        assert_eq!(
            statements[0]["Resource"],
            "arn:aws:s3:::training-anonymised/*"
        );
        assert_eq!(statements[1]["Action"], "kms:GenerateDataKey");
        assert_eq!(statements[1]["Resource"], key);
        for s in statements {
            assert_eq!(s["Effect"], "Allow");
            let action = s["Action"].as_str().unwrap();
            assert!(!action.contains('*'), "wildcard action {action}");
        }
    }

    #[test]
    fn the_session_policy_follows_the_role_partition() {
        let (mut d, t) = destination("{id}", None);
        d.role_arn = "arn:aws-cn:iam::222222222222:role/w".into();
        assert_eq!(
            session_policy(&d, &t)["Statement"][0]["Resource"],
            "arn:aws-cn:s3:::training-anonymised/*"
        );
    }

    #[test]
    fn key_templates_render_and_refuse_mistakes() {
        let t = KeyTemplate::parse("copies/{destination}/{pipeline}/{id}.{ext}").unwrap();
        assert_eq!(t.prefix(), "copies/");
        let v = KeyValues {
            id: "abc",
            pipeline: "p1",
            ext: "jpg",
            destination: "training",
            key: "cam/1.jpg",
        };
        assert_eq!(t.render(&v), "copies/training/p1/abc.jpg");
        assert_eq!(
            KeyTemplate::parse("{key}-{id}").unwrap().render(&v),
            "cam/1.jpg-abc"
        );
        for bad in ["{pipeline}.{ext}", "a/{id", "a/{id}}", "{idx}", "/{id}"] {
            assert!(KeyTemplate::parse(bad).is_err(), "{bad} accepted");
        }
    }
}
