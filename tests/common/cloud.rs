//! Real emulators and a real daemon for the end-to-end tests: a moto server (IAM enforced) or
//! LocalStack (AWS-faithful event bodies) on a free port of 127.0.0.1, given the four-account
//! layout of deploy/cloudformation/*.yaml by scripts/seed_emulator.py (LocalStack deploys the
//! templates, moto gets their policies through its APIs), and the `veil` binary running
//! `config/local.toml`, or configured as the service template configures it, against it. All
//! are stopped by PID when dropped; every wait is bounded.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use serde_json::Value;

use super::root;

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `check` every 100 ms until it returns `Some`, for at most `limit`.
pub async fn wait_for<T, F: Future<Output = Option<T>>>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> F,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A process killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn venv_bin(venv: &str, bin: &str) -> PathBuf {
    let path = root().join(".cache").join(venv).join("bin").join(bin);
    assert!(
        path.exists(),
        "{} is missing: run scripts/emulators.sh (scripts/test.sh does)",
        path.display()
    );
    path
}

pub struct Emulator {
    _process: Process,
    _data: Option<tempfile::TempDir>,
    pub endpoint: String,
    /// What scripts/seed_emulator.py created: credentials, queue URLs, buckets, roles.
    pub seed: Value,
}

impl Emulator {
    /// Starts moto and seeds it; IAM enforcement is on when this returns.
    pub fn moto() -> Self {
        Self::moto_seeded(&[])
    }

    /// Starts moto and seeds it with extra seed_emulator.py flags (`--unversioned-raw`).
    pub fn moto_seeded(seed_args: &[&str]) -> Self {
        let port = free_port();
        let mut command = Command::new(venv_bin("moto-venv", "moto_server"));
        command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        Self::start(command, port, None, seed_args)
    }

    /// Starts LocalStack (S3, SQS, STS, IAM, EventBridge, CloudFormation, KMS, Logs, CloudWatch)
    /// and deploys the templates of deploy/cloudformation to it. No IAM enforcement.
    pub fn localstack() -> Self {
        let port = free_port();
        let data = tempfile::tempdir().unwrap();
        let mut command = Command::new(venv_bin("localstack-venv", "python"));
        command
            .args(["-m", "localstack.runtime.main"])
            .env("GATEWAY_SERVER", "hypercorn")
            .env("GATEWAY_LISTEN", format!("127.0.0.1:{port}"))
            .env("LOCALSTACK_HOST", format!("127.0.0.1:{port}"))
            .env(
                "SERVICES",
                "s3,sqs,sts,iam,events,cloudformation,kms,logs,cloudwatch",
            )
            .env("CFN_IGNORE_UNSUPPORTED_RESOURCE_TYPES", "1")
            .env("DNS_ADDRESS", "0")
            .env("DISABLE_EVENTS", "1")
            .env("SQS_ENDPOINT_STRATEGY", "path")
            .env("LOCALSTACK_VOLUME_DIR", data.path());
        Self::start(command, port, Some(data), &["--localstack"])
    }

    fn start(
        mut command: Command,
        port: u16,
        data: Option<tempfile::TempDir>,
        seed_args: &[&str],
    ) -> Self {
        let log = std::fs::File::create(std::env::temp_dir().join(format!("emulator-{port}.log")))
            .unwrap();
        let child = command
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("the emulator starts");
        let process = Process(child);
        let endpoint = format!("http://127.0.0.1:{port}");
        let start = Instant::now();
        // moto answers /moto-api/, LocalStack its health page; both 200 once ready.
        let ready = |path: &str| {
            http_get(&format!("{endpoint}{path}")).is_some_and(|(code, _)| code == 200)
        };
        while !ready("/moto-api/") && !ready("/_localstack/health") {
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "the emulator did not start"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let out = Command::new(venv_bin("moto-venv", "python"))
            .arg(root().join("scripts/seed_emulator.py"))
            .arg(&endpoint)
            .args(seed_args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "seeding failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self {
            _process: process,
            _data: data,
            endpoint,
            seed: serde_json::from_slice(&out.stdout).unwrap(),
        }
    }

    /// Every AssumeRole call moto served, as it recorded them (role ARN, session name, external
    /// id, session policy), from its state dump.
    pub fn assumed_roles(&self) -> Vec<Value> {
        let (code, body) = http_get(&format!("{}/moto-api/data.json", self.endpoint))
            .expect("moto answers /moto-api/data.json");
        assert_eq!(code, 200);
        let data: Value = serde_json::from_str(&body).unwrap();
        data["sts"]["AssumedRole"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Switches IAM enforcement off (`false`) or on, server-wide.
    pub fn enforce(&self, on: bool) {
        let status = Command::new("curl")
            .args(["-sf", "-XPOST", "-H", "Content-Type: text/plain", "--data"])
            .arg(if on { "0" } else { "inf" })
            .arg(format!("{}/moto-api/reset-auth", self.endpoint))
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn credentials(&self, who: &Value) -> Credentials {
        Credentials::new(
            who["access_key_id"].as_str().unwrap(),
            who["secret_access_key"].as_str().unwrap(),
            None,
            None,
            "test",
        )
    }

    /// Credentials of the ingest account's admin, of a destination account's admin
    /// ("training", …) or of the user veil runs as ("veil").
    pub fn who(&self, name: &str) -> Credentials {
        let who = match name {
            "ingest" => &self.seed["ingest_admin"],
            "veil" => &self.seed["veil"],
            d => &self.seed["destinations"][d]["admin"],
        };
        self.credentials(who)
    }

    pub fn s3(&self, credentials: Credentials) -> aws_sdk_s3::Client {
        s3_at(&self.endpoint, credentials)
    }

    pub fn sqs(&self, credentials: Credentials) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&sdk(&self.endpoint, credentials))
    }

    pub fn sts(&self, credentials: Credentials) -> aws_sdk_sts::Client {
        aws_sdk_sts::Client::new(&sdk(&self.endpoint, credentials))
    }

    /// The environment deploy/cloudformation/service.yaml gives veil's container for this
    /// layout (without the `VEIL__` prefix), as the seed resolved it from the templates.
    pub fn service_env(&self) -> Vec<(String, String)> {
        self.seed["service_env"]
            .as_object()
            .expect("the seed resolves service.yaml's environment")
            .iter()
            .map(|(k, v)| {
                let k = k.strip_prefix("VEIL__").expect("a VEIL__ variable");
                (k.to_string(), v.as_str().unwrap().to_string())
            })
            .collect()
    }

    pub fn str(&self, pointer: &str) -> String {
        self.seed
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("seed has no {pointer}"))
            .to_string()
    }

    /// Runs the seed's Python with boto3 against this server (for IAM and KMS, which veil's
    /// dependencies have no client for). `script` gets `endpoint`, `seed` and `client(service,
    /// account)` (a boto3 client acting in that account: moto reads the header while its
    /// enforcement is off, LocalStack the access key id).
    /// Returns what it printed.
    pub fn python(&self, script: &str) -> String {
        let prelude = format!(
            "import json, boto3\nendpoint = {:?}\nseed = json.loads({:?})\n\
             def client(service, account):\n\
             \x20   c = boto3.client(service, endpoint_url=endpoint, region_name='us-east-1', \
             aws_access_key_id=account, aws_secret_access_key='test')\n\
             \x20   c.meta.events.register('before-sign.*.*', lambda request, **_: \
             request.headers.__setitem__('x-moto-account-id', account))\n\
             \x20   return c\n",
            self.endpoint,
            self.seed.to_string()
        );
        let out = Command::new(venv_bin("moto-venv", "python"))
            .arg("-c")
            .arg(prelude + script)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "python failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

fn sdk(endpoint: &str, credentials: Credentials) -> aws_config::SdkConfig {
    let http = aws_smithy_http_client::Builder::new().build_http();
    aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .http_client(http)
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(credentials),
        )
        .build()
}

/// An S3 client for any S3 endpoint (path-style).
pub fn s3_at(endpoint: &str, credentials: Credentials) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(&sdk(endpoint, credentials))
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// SeaweedFS's S3 gateway: an S3-compatible store that is not AWS (no notifications, no STS),
/// started without credentials, so it accepts any signature.
pub struct SeaweedFs {
    _process: Process,
    _data: tempfile::TempDir,
    pub endpoint: String,
}

impl SeaweedFs {
    pub fn start() -> Self {
        let data = tempfile::tempdir().unwrap();
        let s3 = free_port();
        let port = |name: &str| format!("-{name}={}", free_port());
        let log = std::fs::File::create(std::env::temp_dir().join(format!("seaweedfs-{s3}.log")))
            .unwrap();
        let child = Command::new(venv_bin("seaweedfs-venv", "weed"))
            .arg("mini")
            .arg(format!("-dir={}", data.path().display()))
            .args([
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                "-webdav=false",
                "-admin.ui=false",
            ])
            .arg(format!("-s3.port={s3}"))
            .args([port("master.port"), port("volume.port"), port("filer.port")])
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("weed starts");
        let process = Process(child);
        let endpoint = format!("http://127.0.0.1:{s3}");
        let start = Instant::now();
        while http_get(&endpoint).is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "SeaweedFS did not start"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        Self {
            _process: process,
            _data: data,
            endpoint,
        }
    }

    pub fn s3(&self) -> aws_sdk_s3::Client {
        s3_at(
            &self.endpoint,
            Credentials::new("any", "any", None, None, "test"),
        )
    }
}

/// The `veil run` process.
pub struct Daemon {
    process: Option<Process>,
    pub metrics_url: String,
    pub log: PathBuf,
}

impl Daemon {
    /// Starts `veil run --config config/local.toml` against the emulator, as the ingest account's
    /// `veil` user, with `overrides` (`("WORKER__RETRY_DELAY_S", "5")`) on top.
    pub fn start(emulator: &Emulator, overrides: &[(&str, &str)]) -> Self {
        let mut env = Vec::new();
        if let Some(lib) = std::env::var_os("ORT_DYLIB_PATH") {
            env.push(("RUNTIME__LIBRARY".into(), lib.to_string_lossy().into()));
        }
        let mut command = Command::new(env!("CARGO_BIN_EXE_veil"));
        command.current_dir(root()).args([
            "--config",
            "config/local.toml",
            "--log-format",
            "json",
            "run",
        ]);
        Self::launch(emulator, command, env, overrides)
    }

    /// Starts veil configured as deploy/cloudformation/service.yaml configures it in ECS: the
    /// image's config (config/veil.example.toml) under the task definition's environment,
    /// resolved for the emulator's layout by the seed, with this machine's runtime and models.
    pub fn deployed(emulator: &Emulator, overrides: &[(&str, &str)]) -> Self {
        let mut env = emulator.service_env();
        env.push((
            "RUNTIME__LIBRARY".into(),
            super::config()
                .runtime
                .library
                .unwrap()
                .to_string_lossy()
                .into(),
        ));
        env.push((
            "RUNTIME__MODELS_DIR".into(),
            root().join("models").to_string_lossy().into(),
        ));
        let mut command = Command::new(env!("CARGO_BIN_EXE_veil"));
        command
            .arg("--config")
            .arg(root().join("config/veil.example.toml"))
            .args(["--log-format", "json", "run"]);
        Self::launch(emulator, command, env, overrides)
    }

    /// Runs `command` (`veil … --log-format json run`) as the `veil` user against the emulator,
    /// with `settings` (`("WORKER__PIPELINES", "1")`, without the `VEIL__` prefix), then the
    /// emulator's endpoint and a free metrics port, then `overrides`.
    pub fn launch(
        emulator: &Emulator,
        mut command: Command,
        settings: Vec<(String, String)>,
        overrides: &[(&str, &str)],
    ) -> Self {
        let port = free_port();
        let log = std::env::temp_dir().join(format!("veil-daemon-{port}.log"));
        let veil = emulator.who("veil");
        command
            .env("VEIL_LOG", "info")
            .env("AWS_ACCESS_KEY_ID", veil.access_key_id())
            .env("AWS_SECRET_ACCESS_KEY", veil.secret_access_key())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        let harness = [
            ("INGEST__ENDPOINT_URL", emulator.endpoint.clone()),
            ("INGEST__QUEUE_URL", emulator.str("/queue_url")),
            ("METRICS__LISTEN", format!("127.0.0.1:{port}")),
            ("WORKER__PIPELINES", "1".into()),
            ("WORKER__IN_FLIGHT", "2".into()),
        ];
        let harness = harness.into_iter().map(|(k, v)| (k.to_string(), v));
        let overrides = overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()));
        for (k, v) in settings.into_iter().chain(harness).chain(overrides) {
            command.env(format!("VEIL__{k}"), v);
        }
        let process = Process(command.spawn().expect("veil starts"));
        Self {
            process: Some(process),
            metrics_url: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.process.as_ref().unwrap().0.id()
    }

    /// The HTTP status of one of the daemon's endpoints (`/readyz`), if it answers.
    pub fn status(&self, path: &str) -> Option<u16> {
        http_get(&format!("{}{path}", self.metrics_url)).map(|(code, _)| code)
    }

    /// Waits until `/readyz` answers 200 (models loaded, queue reachable).
    pub async fn ready(&self) {
        wait_for(
            "the daemon to be ready",
            Duration::from_secs(90),
            || async { (self.status("/readyz") == Some(200)).then_some(()) },
        )
        .await;
    }

    /// The value of one sample of `/metrics` (`name{labels}` exactly as exposed). Fails when
    /// the daemon does not export it: a misspelt name must not read as 0.
    pub fn metric(&self, sample: &str) -> f64 {
        self.metric_if_exported(sample)
            .unwrap_or_else(|| panic!("the daemon exports no sample {sample}"))
    }

    /// The value of one sample, if the daemon answers and exports it (for waits).
    pub fn metric_if_exported(&self, sample: &str) -> Option<f64> {
        let (_, body) = http_get(&format!("{}/metrics", self.metrics_url))?;
        body.lines()
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
    }

    /// Sends SIGTERM and waits (bounded) for the exit.
    pub fn terminate(&mut self, limit: Duration) -> ExitStatus {
        let mut process = self.process.take().unwrap();
        let pid = process.0.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = process.0.try_wait().unwrap() {
                std::mem::forget(process);
                return status;
            }
            assert!(
                start.elapsed() < limit,
                "veil did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A GET with curl: (status, body), or None if nothing answered.
fn http_get(url: &str) -> Option<(u16, String)> {
    let out = Command::new("curl")
        .args(["-s", "-m", "5", "-w", "\n%{http_code}", url])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n')?;
    Some((code.parse().ok().filter(|&c| c != 0)?, body.to_string()))
}

/// Every key in `bucket` (under `prefix`), all pages.
pub async fn keys(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.unwrap_or_else(|e| {
            panic!(
                "list {bucket}: {}",
                aws_sdk_s3::error::DisplayErrorContext(&e)
            )
        });
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string)),
        );
    }
    keys
}

pub async fn get(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "get {bucket}/{key}: {}",
                aws_sdk_s3::error::DisplayErrorContext(&e)
            )
        });
    out.body.collect().await.unwrap().into_bytes().to_vec()
}

/// PUTs an object; returns its ETag (without quotes), as S3 events carry it.
pub async fn put(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, bytes: Vec<u8>) -> String {
    let out = s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(bytes.into())
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "put {bucket}/{key}: {}",
                aws_sdk_s3::error::DisplayErrorContext(&e)
            )
        });
    out.e_tag()
        .unwrap_or_default()
        .trim_matches('"')
        .to_string()
}

/// (visible, in flight) messages of a queue.
pub async fn queue_counts(sqs: &aws_sdk_sqs::Client, url: &str) -> (u64, u64) {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap();
    let attrs = out.attributes().unwrap();
    let count = |a: A| attrs[&a].parse().unwrap();
    (
        count(A::ApproximateNumberOfMessages),
        count(A::ApproximateNumberOfMessagesNotVisible),
    )
}

/// Visible plus in-flight messages of a queue.
pub async fn queue_depth(sqs: &aws_sdk_sqs::Client, url: &str) -> u64 {
    let (visible, in_flight) = queue_counts(sqs, url).await;
    visible + in_flight
}
