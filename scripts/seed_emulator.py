"""Seed a running emulator with veil's four-account layout: moto (then switch IAM enforcement
on), or LocalStack with --localstack (no IAM enforcement; an access key id is its account).

ingest (111111111111): raw bucket (versioned) -> S3 notification -> SQS queue (+ DLQ after 3
receives), audit bucket, the IAM user veil runs as, and an admin user for uploads and checks.
training / inference / analytics (222.../333.../444...): one bucket each and a writer role that
may only s3:PutObject under anonymised/ in that bucket, assumable with an external id.

Usage: seed_emulator.py ENDPOINT [--localstack] [--no-enforce] [--unversioned-raw]
[--max-receive-count N]. Prints a JSON description
(endpoint, credentials, queue URLs, buckets) on stdout. Only boto3 is needed.
"""

import json
import sys
import urllib.request

import boto3

REGION = "us-east-1"
INGEST = "111111111111"
DOWNSTREAM = {"training": "222222222222", "inference": "333333333333", "analytics": "444444444444"}
RAW_BUCKET = "veil-raw"
AUDIT_BUCKET = "veil-audit"
QUEUE = "veil-raw-events"
EXTERNAL_ID = "veil-ingest-local"
MAX_RECEIVE_COUNT = (
    int(sys.argv[sys.argv.index("--max-receive-count") + 1]) if "--max-receive-count" in sys.argv else 3
)
LOCALSTACK = "--localstack" in sys.argv


def client(endpoint, service, account):
    """A client whose calls land in `account`: moto picks it from the x-moto-account-id header
    (while enforcement is off), LocalStack from the access key id."""
    c = boto3.client(service, endpoint_url=endpoint, region_name=REGION,
                     aws_access_key_id=account, aws_secret_access_key="test")

    def pick_account(request, **_):
        request.headers["x-moto-account-id"] = account

    c.meta.events.register("before-sign.*.*", pick_account)
    return c


def user_with_policy(iam, account, name, policy):
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName=f"{name}-policy", PolicyDocument=json.dumps(policy))
    if LOCALSTACK:
        return {"access_key_id": account, "secret_access_key": "test"}
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}


ADMIN = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


def seed(endpoint):
    out = {"endpoint": endpoint, "region": REGION, "accounts": {"ingest": INGEST, **DOWNSTREAM}}
    iam = client(endpoint, "iam", INGEST)
    s3 = client(endpoint, "s3", INGEST)
    sqs = client(endpoint, "sqs", INGEST)

    dlq_url = sqs.create_queue(QueueName=f"{QUEUE}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue_url = sqs.create_queue(
        QueueName=QUEUE,
        Attributes={
            "VisibilityTimeout": "60",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)}),
        },
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    s3.create_bucket(Bucket=RAW_BUCKET)
    if "--unversioned-raw" not in sys.argv:
        s3.put_bucket_versioning(Bucket=RAW_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    s3.create_bucket(Bucket=AUDIT_BUCKET)
    s3.put_bucket_notification_configuration(
        Bucket=RAW_BUCKET,
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}]
        },
    )

    roles = {}
    writers_policy = {}
    for name, account in DOWNSTREAM.items():
        bucket = f"veil-{name}"
        client(endpoint, "s3", account).create_bucket(Bucket=bucket)
        d_iam = client(endpoint, "iam", account)
        trust = {
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{INGEST}:user/veil"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}},
            }],
        }
        role = d_iam.create_role(RoleName="veil-writer", AssumeRolePolicyDocument=json.dumps(trust))["Role"]
        writers_policy[name] = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:PutObject",
                           "Resource": f"arn:aws:s3:::{bucket}/anonymised/*"}],
        }
        d_iam.put_role_policy(RoleName="veil-writer", PolicyName="put-anonymised-only",
                              PolicyDocument=json.dumps(writers_policy[name]))
        roles[name] = {"account_id": account, "role_arn": role["Arn"], "bucket": bucket,
                       "admin": user_with_policy(d_iam, account, "admin", ADMIN)}

    veil_policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow",
             # AWS authorises the batch calls by the single-message actions; moto by their own names.
             "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
                        "sqs:GetQueueAttributes", "sqs:DeleteMessageBatch",
                        "sqs:ChangeMessageVisibilityBatch"],
             "Resource": queue_arn},
            {"Effect": "Allow",
             "Action": ["s3:GetObject", "s3:GetObjectVersion", "s3:DeleteObject", "s3:DeleteObjectVersion",
                        "s3:GetObjectTagging", "s3:GetObjectVersionTagging", "s3:PutObjectTagging",
                        "s3:PutObjectVersionTagging"],
             "Resource": f"arn:aws:s3:::{RAW_BUCKET}/*"},
            # Lets S3 answer 404 (not 403) for an object that is gone, and check-config reach it.
            {"Effect": "Allow", "Action": "s3:ListBucket",
             "Resource": [f"arn:aws:s3:::{RAW_BUCKET}", f"arn:aws:s3:::{AUDIT_BUCKET}"]},
            # Records are written create-only and read back to find what an earlier attempt stored.
            {"Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject"],
             "Resource": f"arn:aws:s3:::{AUDIT_BUCKET}/*"},
            {"Effect": "Allow", "Action": "sts:AssumeRole",
             "Resource": [r["role_arn"] for r in roles.values()]},
        ],
    }
    out.update({
        "queue_url": queue_url,
        "dlq_url": dlq_url,
        "raw_bucket": RAW_BUCKET,
        "audit_bucket": AUDIT_BUCKET,
        "external_id": EXTERNAL_ID,
        "max_receive_count": MAX_RECEIVE_COUNT,
        "veil": user_with_policy(iam, INGEST, "veil", veil_policy),
        "ingest_admin": user_with_policy(iam, INGEST, "admin", ADMIN),
        "destinations": roles,
        "writer_policies": writers_policy,
    })
    return out


def enforce(endpoint):
    request = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth", data=b"0", method="POST",
        headers={"Content-Type": "text/plain"})
    urllib.request.urlopen(request, timeout=10).read()


if __name__ == "__main__":
    endpoint = sys.argv[1].rstrip("/")
    description = seed(endpoint)
    if not LOCALSTACK and "--no-enforce" not in sys.argv:
        enforce(endpoint)
    json.dump(description, sys.stdout, indent=2)
    print()
