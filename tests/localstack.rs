//! The daemon against LocalStack with the CloudFormation templates of deploy/ deployed to it
//! (three writer stacks, the ingest stack, the service stack: the bucket notification, queue
//! policy, redrive, roles and alarms are the templates'), configured as the service template
//! configures it in ECS.
//! LocalStack's S3 notifications look like AWS's (keys URL-encoded with `+` for spaces,
//! `sequencer`, `userIdentity`, multipart as one CompleteMultipartUpload); they go directly to
//! SQS and then through an EventBridge rule, and the destination roles are assumed across
//! accounts. LocalStack enforces no IAM; moto's tests do, with the templates' policies.

mod common;

use std::time::Duration;

use common::cloud::{Daemon, Emulator, get, keys, put, queue_depth, wait_for};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deployed_templates_carry_s3_and_eventbridge_notifications_of_unusual_keys_to_three_accounts()
 {
    let ls = Emulator::localstack();
    let ingest = ls.s3(ls.who("ingest"));
    let keys_in = ["cam 1/Zoë + Ana.jpg", "cam 1/ünïcode plate (1).png"];
    put(&ingest, "veil-raw", keys_in[0], photo("t1.jpg")).await;
    put(&ingest, "veil-raw", keys_in[1], photo("fast_alpr_car.png")).await;

    // The service stack's alarms and the metrics sidecar's permission are in place (its ECS
    // resources are stubs on LocalStack).
    let deployed = ls.python(
        "alarms = client('cloudwatch', '111111111111').describe_alarms()['MetricAlarms']\n\
         print(sorted(a['AlarmName'].split('-')[2] for a in alarms))\n\
         print(client('iam', '111111111111').list_role_policies(RoleName='veil-task')['PolicyNames'])",
    );
    assert_eq!(
        deployed,
        "['DeadLetterAlarm', 'ErrorRateAlarm', 'NoReceiveAlarm', 'OldestMessageAlarm']\n\
         ['veil-daemon', 'veil-metrics-sidecar']"
    );
    let daemon = Daemon::deployed(&ls, &[]);
    daemon.ready().await;
    let limit = Duration::from_secs(180);
    wait_for("both objects anonymised", limit, || async {
        (daemon.metric("veil_objects_total{outcome=\"anonymised\"}") >= 2.0).then_some(())
    })
    .await;
    wait_for("the queue to drain", limit, || {
        let sqs = ls.sqs(ls.who("ingest"));
        let url = ls.str("/queue_url");
        async move { (queue_depth(&sqs, &url).await == 0).then_some(()) }
    })
    .await;

    for d in ["training", "inference", "analytics"] {
        let s3 = ls.s3(ls.who(d));
        let bucket = format!("veil-{d}");
        let copies = keys(&s3, &bucket, "anonymised/").await;
        assert_eq!(copies.len(), 2, "{d}: {copies:?}");
        for k in copies {
            // Encrypted with the key the writer stack made (its Destination output names it).
            let head = s3
                .head_object()
                .bucket(&bucket)
                .key(&k)
                .send()
                .await
                .unwrap();
            assert_eq!(
                head.server_side_encryption().map(|e| e.as_str()),
                Some("aws:kms"),
                "{d}/{k}"
            );
            let key = head.ssekms_key_id().unwrap_or_default();
            assert!(
                key.contains(&format!(":{}:key/", ls.str(&format!("/accounts/{d}")))),
                "{d}/{k}: {key}"
            );
            let bytes = get(&s3, &bucket, &k).await;
            veil::codec::decode(&bytes, &Default::default())
                .unwrap_or_else(|e| panic!("{d}/{k}: {e}"));
        }
    }
    assert!(keys(&ingest, "veil-raw", "").await.is_empty());
    let audit = keys(&ingest, "veil-audit", "veil-audit/").await;
    assert_eq!(audit.len(), 2, "{audit:?}");

    // The same bucket now notifies through EventBridge: a rule sends its "Object Created"
    // events to the queue, in EventBridge's own shape.
    ls.python(
        "s3 = client('s3', '111111111111')\n\
         s3.put_bucket_notification_configuration(Bucket='veil-raw', \
         NotificationConfiguration={'EventBridgeConfiguration': {}})\n\
         events = client('events', '111111111111')\n\
         events.put_rule(Name='veil-raw-created', EventPattern=json.dumps(\
         {'source': ['aws.s3'], 'detail-type': ['Object Created'], \
         'detail': {'bucket': {'name': ['veil-raw']}}}))\n\
         sqs = client('sqs', '111111111111')\n\
         arn = sqs.get_queue_attributes(QueueUrl=seed['queue_url'], \
         AttributeNames=['QueueArn'])['Attributes']['QueueArn']\n\
         events.put_targets(Rule='veil-raw-created', Targets=[{'Id': 'veil', 'Arn': arn}])\n",
    );
    put(
        &ingest,
        "veil-raw",
        "street/frame 002 é+ü.jpg",
        photo("astronaut.png"),
    )
    .await;
    wait_for("the EventBridge object anonymised", limit, || async {
        (daemon.metric("veil_objects_total{outcome=\"anonymised\"}") >= 3.0).then_some(())
    })
    .await;
    for d in ["training", "inference", "analytics"] {
        let s3 = ls.s3(ls.who(d));
        assert_eq!(
            keys(&s3, &format!("veil-{d}"), "anonymised/").await.len(),
            3,
            "{d}"
        );
    }
    assert!(keys(&ingest, "veil-raw", "").await.is_empty());
    assert_eq!(
        daemon.metric("veil_messages_failed_total{reason=\"unreadable\"}"),
        0.0
    );
}
