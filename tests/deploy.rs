//! What the deployment promises that no emulator here checks, asserted on the files themselves:
//! the CloudFormation templates resolved for given parameters (by scripts/cfn_template.py, the
//! reader the emulator seed uses), the alert rules, the dashboard and the compose stack.
//! LocalStack applies the templates' notifications, queue policy, redrive and roles (tests/
//! localstack.rs) and moto enforces their policies (tests/daemon.rs); neither applies bucket
//! encryption, lifecycle rules, public access blocks or trust conditions, which are checked here.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::root;
use serde_json::{Value, json};

/// The template `name` (deploy/cloudformation/NAME.yaml) resolved for `parameters`: resources
/// whose condition is false left out, other resources named by logical id ("Queue.Arn").
fn template(name: &str, parameters: Value) -> Value {
    let out = Command::new(root().join(".cache/moto-venv/bin/python"))
        .arg(root().join("scripts/cfn_template.py"))
        .arg(root().join(format!("deploy/cloudformation/{name}.yaml")))
        .arg(parameters.to_string())
        .output()
        .expect("the moto venv's python runs (scripts/emulators.sh installs it)");
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn ingest() -> Value {
    template(
        "ingest",
        json!({"RawBucketName": "acme-raw", "RawPrefix": "cameras/", "AuditBucketName": "acme-audit",
               "WriterRoleArns": "arn:aws:iam::222222222222:role/veil-writer,arn:aws:iam::333333333333:role/veil-writer"}),
    )
}

fn properties<'a>(t: &'a Value, resource: &str) -> &'a Value {
    let r = &t["Resources"][resource]["Properties"];
    assert!(!r.is_null(), "no resource {resource}");
    r
}

/// A policy's statements as (effect, actions, resources) with single values made lists.
fn statements(policy: &Value) -> Vec<(String, Vec<String>, Vec<String>)> {
    let list = |v: &Value| match v {
        Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_string()).collect(),
        Value::String(s) => vec![s.clone()],
        _ => vec![],
    };
    policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["Effect"].as_str().unwrap().to_string(),
                list(&s["Action"]),
                list(&s["Resource"]),
            )
        })
        .collect()
}

fn assert_private_and_encrypted(bucket: &Value, key: &str) {
    let sse = &bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0];
    assert_eq!(
        sse["ServerSideEncryptionByDefault"],
        json!({"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key})
    );
    assert_eq!(sse["BucketKeyEnabled"], true);
    assert_eq!(
        bucket["PublicAccessBlockConfiguration"],
        json!({"BlockPublicAcls": true, "BlockPublicPolicy": true, "IgnorePublicAcls": true,
               "RestrictPublicBuckets": true})
    );
    assert_eq!(bucket["VersioningConfiguration"]["Status"], "Enabled");
}

fn assert_tls_only(policy: &Value, bucket: &str) {
    let deny = &policy["PolicyDocument"]["Statement"][0];
    assert_eq!(deny["Effect"], "Deny");
    assert_eq!(deny["Principal"], "*");
    assert_eq!(deny["Action"], "s3:*");
    assert_eq!(
        deny["Resource"],
        json!([format!("{bucket}.Arn"), format!("{bucket}.Arn/*")])
    );
    assert_eq!(
        deny["Condition"],
        json!({"Bool": {"aws:SecureTransport": "false"}})
    );
}

#[test]
fn the_raw_bucket_is_versioned_encrypted_private_tls_only_notifies_the_queue_and_expires_its_objects()
 {
    let t = ingest();
    let raw = properties(&t, "RawBucket");
    assert_private_and_encrypted(raw, "Key.Arn");
    assert_tls_only(properties(&t, "RawBucketPolicy"), "RawBucket");
    let rules = raw["LifecycleConfiguration"]["Rules"].as_array().unwrap();
    let purge = &rules[0];
    assert_eq!(purge["Status"], "Enabled");
    assert_eq!(purge["ExpirationInDays"], "14", "the default retention");
    assert_eq!(purge["NoncurrentVersionExpiration"]["NoncurrentDays"], 1);
    assert_eq!(
        purge["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"],
        1
    );
    assert!(rules.iter().any(|r| r["ExpiredObjectDeleteMarker"] == true));
    let notification = &raw["NotificationConfiguration"]["QueueConfigurations"];
    assert_eq!(
        notification,
        &json!([{"Event": "s3:ObjectCreated:*", "Queue": "Queue.Arn",
                 "Filter": {"S3Key": {"Rules": [{"Name": "prefix", "Value": "cameras/"}]}}}])
    );
    // The whole bucket when no prefix is given: no filter at all.
    let whole = template(
        "ingest",
        json!({"RawBucketName": "r", "AuditBucketName": "a", "WriterRoleArns": "x"}),
    );
    let q = &properties(&whole, "RawBucket")["NotificationConfiguration"]["QueueConfigurations"][0];
    assert!(q.get("Filter").is_none(), "{q}");

    let audit = properties(&t, "AuditBucket");
    assert_private_and_encrypted(audit, "Key.Arn");
    assert_tls_only(properties(&t, "AuditBucketPolicy"), "AuditBucket");
    assert!(
        audit.get("LifecycleConfiguration").is_none(),
        "audit records are kept"
    );
    assert_eq!(properties(&t, "Key")["EnableKeyRotation"], true);
}

#[test]
fn the_queue_admits_only_the_raw_bucket_over_tls_and_dead_letters_after_max_receives() {
    let t = ingest();
    let queue = properties(&t, "Queue");
    assert_eq!(
        queue["RedrivePolicy"],
        json!({"deadLetterTargetArn": "DeadLetterQueue.Arn", "maxReceiveCount": "5"})
    );
    assert_eq!(queue["SqsManagedSseEnabled"], true);
    assert_eq!(queue["VisibilityTimeout"], "300");
    let policy = &properties(&t, "QueuePolicy")["PolicyDocument"]["Statement"];
    assert_eq!(
        policy[0],
        json!({"Sid": "RawBucketNotifies", "Effect": "Allow",
               "Principal": {"Service": "s3.amazonaws.com"}, "Action": "sqs:SendMessage",
               "Resource": "Queue.Arn",
               "Condition": {"ArnEquals": {"aws:SourceArn": "arn:aws:s3:::acme-raw"},
                             "StringEquals": {"aws:SourceAccount": "111111111111"}}})
    );
    assert_eq!(policy[1]["Effect"], "Deny");
    assert_eq!(
        policy[1]["Condition"],
        json!({"Bool": {"aws:SecureTransport": "false"}})
    );
    assert_eq!(policy.as_array().unwrap().len(), 2);
}

#[test]
fn the_task_role_may_do_exactly_what_the_daemon_calls_on_exactly_its_resources() {
    let t = ingest();
    let role = properties(&t, "TaskRole");
    let trust = &role["AssumeRolePolicyDocument"]["Statement"][0];
    assert_eq!(
        trust["Principal"],
        json!({"Service": "ecs-tasks.amazonaws.com"})
    );
    assert_eq!(
        trust["Condition"],
        json!({"StringEquals": {"aws:SourceAccount": "111111111111"}})
    );
    let policies = role["Policies"].as_array().unwrap();
    assert_eq!(policies.len(), 1);
    let granted: BTreeSet<(String, String)> = statements(&policies[0]["PolicyDocument"])
        .into_iter()
        .flat_map(|(effect, actions, resources)| {
            assert_eq!(effect, "Allow");
            actions
                .into_iter()
                .flat_map(move |a| resources.clone().into_iter().map(move |r| (a.clone(), r)))
        })
        .collect();
    let raw = "arn:aws:s3:::acme-raw/cameras/*";
    let audit = "arn:aws:s3:::acme-audit/veil-audit/*";
    let mut expected: BTreeSet<(String, String)> = BTreeSet::new();
    let mut allow = |actions: &[&str], resource: &str| {
        for a in actions {
            expected.insert((a.to_string(), resource.to_string()));
        }
    };
    allow(
        &[
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:ChangeMessageVisibility",
            "sqs:GetQueueAttributes",
        ],
        "Queue.Arn",
    );
    allow(
        &[
            "s3:GetObject",
            "s3:GetObjectVersion",
            "s3:DeleteObject",
            "s3:DeleteObjectVersion",
            "s3:GetObjectTagging",
            "s3:GetObjectVersionTagging",
            "s3:PutObjectTagging",
            "s3:PutObjectVersionTagging",
        ],
        raw,
    );
    allow(&["s3:ListBucket"], "arn:aws:s3:::acme-raw");
    allow(&["s3:ListBucket"], "arn:aws:s3:::acme-audit");
    allow(&["s3:PutObject", "s3:GetObject"], audit);
    allow(&["kms:Decrypt", "kms:GenerateDataKey"], "Key.Arn");
    allow(
        &["sts:AssumeRole"],
        "arn:aws:iam::222222222222:role/veil-writer",
    );
    allow(
        &["sts:AssumeRole"],
        "arn:aws:iam::333333333333:role/veil-writer",
    );
    assert_eq!(granted, expected);
}

fn writer(extra: Value) -> Value {
    let mut parameters = json!({"DestinationName": "training", "IngestAccountId": "111111111111",
                                "ExternalId": "acme-veil-training", "BucketName": "acme-training"});
    parameters
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    template("writer", parameters)
}

#[test]
fn a_writer_role_trusts_only_the_task_role_with_the_external_id_and_may_only_put_under_its_prefix()
{
    let t = writer(json!({}));
    let role = properties(&t, "WriterRole");
    let trust = &role["AssumeRolePolicyDocument"]["Statement"];
    assert_eq!(
        trust,
        &json!([{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111111111111:root"},
                 "Action": "sts:AssumeRole",
                 "Condition": {"StringEquals": {"sts:ExternalId": "acme-veil-training"},
                               "ArnEquals": {"aws:PrincipalArn": "arn:aws:iam::111111111111:role/veil-task"}}}])
    );
    assert_eq!(role["MaxSessionDuration"], 3600);
    let policy = &role["Policies"][0]["PolicyDocument"];
    assert_eq!(
        statements(policy),
        [
            (
                "Allow".into(),
                vec!["s3:PutObject".into()],
                vec!["arn:aws:s3:::acme-training/anonymised/*".into()]
            ),
            (
                "Allow".into(),
                vec!["kms:GenerateDataKey".into()],
                vec!["Key.Arn".into()]
            ),
        ]
    );
    assert_private_and_encrypted(properties(&t, "Bucket"), "Key.Arn");
    assert_tls_only(properties(&t, "BucketPolicy"), "Bucket");
    let destination = t["Outputs"]["Destination"].as_str().unwrap();
    assert!(
        destination.contains(r#"key_template = "anonymised/{pipeline}/{id}.{ext}""#)
            && destination.contains(r#"sse_kms_key_arn = "Key.Arn""#),
        "{destination}"
    );

    // An existing bucket without SSE-KMS: no bucket, no key, and no KMS permission.
    let existing = writer(json!({"CreateBucket": "false", "KeyPrefix": "veil/"}));
    for absent in ["Bucket", "BucketPolicy", "Key"] {
        assert!(existing["Resources"].get(absent).is_none(), "{absent}");
    }
    let policy = &properties(&existing, "WriterRole")["Policies"][0]["PolicyDocument"];
    assert_eq!(
        statements(policy),
        [(
            "Allow".into(),
            vec!["s3:PutObject".into()],
            vec!["arn:aws:s3:::acme-training/veil/*".into()]
        )]
    );
    let destination = existing["Outputs"]["Destination"].as_str().unwrap();
    assert!(!destination.contains("sse_kms_key_arn"), "{destination}");
    // An existing bucket with its own key: the writer may use that key.
    let key = "arn:aws:kms:eu-west-1:222222222222:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let keyed = writer(json!({"CreateBucket": "false", "ExistingKmsKeyArn": key}));
    let policy = &properties(&keyed, "WriterRole")["Policies"][0]["PolicyDocument"];
    assert_eq!(statements(policy)[1].2, [key]);
}

fn service(host: &str) -> Value {
    template(
        "service",
        json!({"Image": "veil:1", "HostType": host, "GpuCapacityProvider": "gpu",
               "Subnets": "subnet-1", "SecurityGroups": "sg-1", "Destinations": "[]"}),
    )
}

fn container_env(container: &Value) -> Vec<(String, String)> {
    container["Environment"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["Name"].as_str().unwrap().to_string(),
                e["Value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn the_service_drains_before_it_is_killed_checks_health_and_scales_on_backlog_per_task() {
    let spec = common::root().join("deploy/cloudformation/service.yaml");
    let raw = std::fs::read_to_string(spec).unwrap();
    assert!(raw.contains("ShutdownGraceSeconds:"));
    let t = service("cpu");
    let task = properties(&t, "TaskDefinition");
    assert_eq!(task["RequiresCompatibilities"], json!(["FARGATE"]));
    let veil = &task["ContainerDefinitions"][0];
    let env = container_env(veil);
    let grace: u64 = env
        .iter()
        .find(|(k, _)| k == "VEIL__WORKER__SHUTDOWN_GRACE_S")
        .unwrap()
        .1
        .parse()
        .unwrap();
    let stop = veil["StopTimeout"].as_u64().unwrap();
    assert!(
        stop >= grace + 20 && stop <= 120,
        "stopTimeout {stop} for a grace of {grace}"
    );
    // The largest grace the parameter allows still leaves 20 s.
    assert!(raw.contains("MaxValue: 100"));
    assert_eq!(
        veil["HealthCheck"]["Command"],
        json!(["CMD", "veil", "health"])
    );
    assert_eq!(veil["User"], "10001:10001");
    assert_eq!(veil["ReadonlyRootFilesystem"], true);
    assert_eq!(veil["LogConfiguration"]["LogDriver"], "awslogs");
    assert!(env.contains(&("VEIL__RUNTIME__DEVICE".into(), "cpu".into())));
    assert_eq!(
        properties(&t, "Cluster")["ClusterSettings"],
        json!([{"Name": "containerInsights", "Value": "enabled"}])
    );

    let scaling =
        &properties(&t, "BacklogPerTaskScaling")["TargetTrackingScalingPolicyConfiguration"];
    let metrics = scaling["CustomizedMetricSpecification"]["Metrics"]
        .as_array()
        .unwrap();
    let stat = |id: &str| {
        let m = metrics.iter().find(|m| m["Id"] == id).unwrap();
        let metric = &m["MetricStat"]["Metric"];
        (
            metric["Namespace"].as_str().unwrap().to_string(),
            metric["MetricName"].as_str().unwrap().to_string(),
        )
    };
    assert_eq!(
        stat("visible"),
        (
            "AWS/SQS".into(),
            "ApproximateNumberOfMessagesVisible".into()
        )
    );
    assert_eq!(
        stat("tasks"),
        ("ECS/ContainerInsights".into(), "RunningTaskCount".into())
    );
    let returned: Vec<&Value> = metrics.iter().filter(|m| m["ReturnData"] == true).collect();
    assert_eq!(returned.len(), 1);
    assert_eq!(returned[0]["Expression"], "visible / MAX([tasks, 1])");
    let target = properties(&t, "ScalableTarget");
    assert_eq!(target["MinCapacity"], "1");

    let alarms: BTreeSet<&str> = t["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::CloudWatch::Alarm")
        .map(|(id, _)| id.as_str())
        .collect();
    assert_eq!(
        alarms,
        BTreeSet::from([
            "DeadLetterAlarm",
            "ErrorRateAlarm",
            "NoReceiveAlarm",
            "OldestMessageAlarm"
        ])
    );

    // The one permission the service adds to the task role: the sidecar's metrics log group.
    let sidecar = properties(&t, "MetricsPolicy");
    assert_eq!(sidecar["Roles"], json!(["import:veil-ingest-TaskRoleName"]));
    assert_eq!(
        statements(&sidecar["PolicyDocument"]),
        [(
            "Allow".into(),
            vec![
                "logs:CreateLogStream".into(),
                "logs:PutLogEvents".into(),
                "logs:DescribeLogStreams".into()
            ],
            vec!["MetricsLogGroup.Arn".into()]
        )]
    );

    let gpu = service("gpu");
    let task = properties(&gpu, "TaskDefinition");
    assert_eq!(task["RequiresCompatibilities"], json!(["EC2"]));
    let veil = &task["ContainerDefinitions"][0];
    assert_eq!(
        veil["ResourceRequirements"],
        json!([{"Type": "GPU", "Value": "1"}])
    );
    assert!(container_env(veil).contains(&("VEIL__RUNTIME__DEVICE".into(), "cuda".into())));
    let s = properties(&gpu, "Service");
    assert!(s.get("LaunchType").is_none());
    assert_eq!(s["CapacityProviderStrategy"][0]["CapacityProvider"], "gpu");
}

/// The `veil_*` names in `text`, histogram series reduced to their metric.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("veil_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let name = name.strip_suffix("_bucket").unwrap_or(name);
        names.insert(name.to_string());
        rest = &tail[end..];
    }
    names
}

#[test]
fn the_dashboard_alerts_and_alarms_read_only_metrics_that_veil_exports() {
    let metrics = veil::daemon::metrics::Metrics::new();
    metrics.add_destination("training");
    // Exported from the first error on (its codes are not known in advance).
    metrics
        .destination_errors
        .with_label_values(&["training", "AccessDenied"])
        .inc();
    let exported: BTreeSet<String> = metrics
        .render()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    for file in [
        "deploy/grafana/veil.json",
        "deploy/prometheus/alerts.yaml",
        "deploy/cloudformation/service.yaml",
    ] {
        let text = std::fs::read_to_string(root().join(file)).unwrap();
        let used = metric_names(&text);
        assert!(!used.is_empty(), "{file} reads no veil metric");
        let unknown: Vec<&String> = used.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "{file} reads metrics veil does not export: {unknown:?}"
        );
    }
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("deploy/grafana/veil.json")).unwrap(),
    )
    .unwrap();
    let titles: Vec<&str> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    for topic in [
        "outcome",
        "Backlog",
        "latency",
        "Detections",
        "Destination errors",
        "dead-lettered",
    ] {
        assert!(
            titles.iter().any(|t| t.contains(topic)),
            "no panel on {topic}: {titles:?}"
        );
    }
}

#[test]
fn the_compose_stack_mounts_files_that_exist_and_builds_the_dockerfile() {
    let compose = std::fs::read_to_string(root().join("deploy/compose.yaml")).unwrap();
    let mut mounted = 0;
    for line in compose.lines() {
        let Some(source) = line
            .trim()
            .strip_prefix("- ")
            .and_then(|m| m.split(':').next())
        else {
            continue;
        };
        if source.starts_with('.') {
            let path = root().join("deploy").join(source);
            assert!(
                path.exists(),
                "compose mounts {source}, which does not exist"
            );
            mounted += 1;
        }
    }
    assert!(mounted >= 5, "{mounted} mounts");
    assert!(compose.contains("build: { context: .., target: cpu }"));
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    assert!(dockerfile.contains("AS cpu") && dockerfile.contains("AS cuda"));
}
