"""Give a running emulator veil's four-account layout, from the templates in deploy/.

LocalStack (--localstack) deploys the templates themselves: one writer stack per downstream
account (writer.yaml), then the ingest data plane (ingest.yaml), then the service (service.yaml,
whose ECS and autoscaling resources LocalStack only stubs: start it with
CFN_IGNORE_UNSUPPORTED_RESOURCE_TYPES=1); an access key id is its account and no IAM is
enforced. moto cannot deploy them faithfully (it ignores notifications, versioning and bucket
policies in templates, and a role whose inline policy came from CloudFormation breaks S3), so on
moto the same layout is made through the APIs, with the trust and permission policies read from
the templates, and IAM enforcement is then switched on. veil runs as the user `veil`
with the task role's policy.

ingest (111111111111): raw bucket (versioned) -> S3 notification -> SQS queue (+ DLQ after 3
receives), audit bucket, and an admin user for uploads and checks. training / inference /
analytics (222.../333.../444...): one bucket each and a writer role that may only s3:PutObject
under anonymised/ in that bucket, assumable with an external id.

Usage: seed_emulator.py ENDPOINT [--localstack] [--no-enforce] [--unversioned-raw]
[--max-receive-count N] [--veil-config FILE]. Prints a JSON description on stdout (endpoint,
credentials, queue URLs, buckets, and `service_env`: the environment service.yaml gives veil's
container for this layout). --veil-config also writes that environment as a veil config file
for the container image, with ENDPOINT as its AWS endpoint (deploy/compose.yaml runs it so).
Needs boto3 and PyYAML.
"""

import json
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cfn_template  # noqa: E402

DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "cloudformation"
REGION = "us-east-1"
INGEST = "111111111111"
DOWNSTREAM = {"training": "222222222222", "inference": "333333333333", "analytics": "444444444444"}
# The renditions of config/local.toml, so that either emulator's copies look alike.
RENDITIONS = {
    "training": "{ jpeg_quality = 95 }",
    "inference": '{ max_width = 1280, max_height = 1280, format = "jpeg", jpeg_quality = 85 }',
    "analytics": '{ max_width = 640, max_height = 640, format = "jpeg", jpeg_quality = 80 }',
}
RAW_BUCKET = "veil-raw"
AUDIT_BUCKET = "veil-audit"
QUEUE = "veil-raw-events"
INGEST_STACK = "veil-ingest"
EXTERNAL_ID = "veil-ingest-local"
MAX_RECEIVE_COUNT = (
    int(sys.argv[sys.argv.index("--max-receive-count") + 1]) if "--max-receive-count" in sys.argv else 3
)
LOCALSTACK = "--localstack" in sys.argv


def ingest_parameters(writer_role_arns):
    return {"RawBucketName": RAW_BUCKET, "AuditBucketName": AUDIT_BUCKET, "QueueName": QUEUE,
            "VisibilityTimeoutSeconds": "60", "MaxReceiveCount": str(MAX_RECEIVE_COUNT),
            "WriterRoleArns": ",".join(writer_role_arns)}


def writer_parameters(name, create_bucket):
    return {"DestinationName": name, "IngestAccountId": INGEST, "ExternalId": EXTERNAL_ID,
            "BucketName": f"veil-{name}", "CreateBucket": create_bucket, "Rendition": RENDITIONS[name]}


def service_parameters(destinations):
    """`destinations`: veil's destinations, a TOML list (the writer stacks' outputs)."""
    return {"Image": "veil", "Subnets": "subnet-1", "SecurityGroups": "sg-1", "Destinations": destinations}


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


def service_env(writer_destinations, exports):
    """The environment service.yaml's task definition gives veil's container, for this layout."""
    template = cfn_template.load(DEPLOY / "service.yaml")
    resolver = cfn_template.Resolver(
        template, service_parameters("[" + ", ".join(writer_destinations) + "]"),
        account=INGEST, region=REGION, stack="veil-service", imports=exports,
        resources={"Cluster": "veil", "MetricsLogGroup": "metrics"})
    container = template["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"][0]
    return {e["Name"]: str(e["Value"]) for e in resolver.resolve(container["Environment"])}


def deploy(cfn, stack, template, parameters):
    cfn.create_stack(StackName=stack, TemplateBody=(DEPLOY / template).read_text(),
                     Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
                     Capabilities=["CAPABILITY_NAMED_IAM"])
    deadline = time.monotonic() + 120
    while True:
        description = cfn.describe_stacks(StackName=stack)["Stacks"][0]
        status = description["StackStatus"]
        if status == "CREATE_COMPLETE":
            return {o["OutputKey"]: o["OutputValue"] for o in description.get("Outputs", [])}
        if status.endswith("FAILED") or status.startswith("ROLLBACK") or time.monotonic() > deadline:
            events = cfn.describe_stack_events(StackName=stack)["StackEvents"]
            reasons = [f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason')}" for e in events
                       if "FAILED" in e["ResourceStatus"]]
            sys.exit(f"stack {stack} ended {status}: {reasons}")
        time.sleep(0.5)


def seed_localstack(endpoint):
    """Deploys the writer stacks, then the ingest stack, as a user would in AWS."""
    destinations, writer_outputs = {}, []
    for name, account in DOWNSTREAM.items():
        out = deploy(client(endpoint, "cloudformation", account), f"veil-writer-{name}", "writer.yaml",
                     writer_parameters(name, "true"))
        writer_outputs.append(out["Destination"])
        destinations[name] = {"account_id": account, "role_arn": out["RoleArn"], "bucket": out["BucketName"],
                              "admin": {"access_key_id": account, "secret_access_key": "test"}}
    roles = [d["role_arn"] for d in destinations.values()]
    cfn = client(endpoint, "cloudformation", INGEST)
    out = deploy(cfn, INGEST_STACK, "ingest.yaml", ingest_parameters(roles))
    exports = {e["Name"]: e["Value"] for e in cfn.list_exports()["Exports"]}
    env = service_env(writer_outputs, exports)
    # LocalStack only stubs ECS and autoscaling; the alarms, log group and the sidecar's policy
    # on the task role are real. The daemon runs with the environment the task would get.
    deploy(cfn, "veil-service", "service.yaml", service_parameters(env["VEIL__DESTINATIONS"]))
    ingest = {"access_key_id": INGEST, "secret_access_key": "test"}
    return {
        "queue_url": out["QueueUrl"], "dlq_url": out["DeadLetterQueueUrl"], "raw_bucket": out["RawBucket"],
        "audit_bucket": out["AuditBucket"], "veil": ingest, "ingest_admin": ingest,
        "destinations": destinations, "service_env": env,
    }


def seed_moto(endpoint):
    """The same layout through the APIs, with the templates' policy documents."""
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

    writer = cfn_template.load(DEPLOY / "writer.yaml")
    destinations, writer_outputs = {}, []
    for name, account in DOWNSTREAM.items():
        bucket = f"veil-{name}"
        client(endpoint, "s3", account).create_bucket(Bucket=bucket)
        d_iam = client(endpoint, "iam", account)
        role_arn = f"arn:aws:iam::{account}:role/veil-writer"
        resolver = cfn_template.Resolver(writer, writer_parameters(name, "false"), account=account,
                                         attributes={"WriterRole.Arn": role_arn})
        role = resolver.resource("WriterRole")
        d_iam.create_role(RoleName=role["RoleName"],
                          AssumeRolePolicyDocument=json.dumps(role["AssumeRolePolicyDocument"]))
        policy = role["Policies"][0]
        d_iam.put_role_policy(RoleName=role["RoleName"], PolicyName=policy["PolicyName"],
                              PolicyDocument=json.dumps(policy["PolicyDocument"]))
        writer_outputs.append(resolver.resolve(writer["Outputs"]["Destination"]["Value"]))
        destinations[name] = {"account_id": account, "role_arn": role_arn, "bucket": bucket,
                              "admin": user_with_policy(d_iam, account, "admin", ADMIN)}

    ingest = cfn_template.load(DEPLOY / "ingest.yaml")
    resolver = cfn_template.Resolver(
        ingest, ingest_parameters([d["role_arn"] for d in destinations.values()]), account=INGEST,
        stack=INGEST_STACK,
        resources={"Queue": queue_url, "DeadLetterQueue": dlq_url, "RawBucket": RAW_BUCKET,
                   "AuditBucket": AUDIT_BUCKET, "TaskRole": "veil-task", "LogGroup": "/veil/veil-ingest"},
        attributes={"Queue.Arn": queue_arn, "Queue.QueueName": QUEUE,
                    "DeadLetterQueue.QueueName": f"{QUEUE}-dlq",
                    # No bucket is KMS-encrypted on moto; the statement names a key that is not there.
                    "Key.Arn": f"arn:aws:kms:{REGION}:{INGEST}:key/00000000-0000-0000-0000-000000000000",
                    "TaskRole.Arn": f"arn:aws:iam::{INGEST}:role/veil-task",
                    "ExecutionRole.Arn": f"arn:aws:iam::{INGEST}:role/veil-execution"})
    veil_policy = resolver.resource("TaskRole")["Policies"][0]["PolicyDocument"]
    # AWS authorises the batch calls by the single-message actions; moto by their own names.
    for statement in veil_policy["Statement"]:
        if statement.get("Sid") == "Queue":
            statement["Action"] += ["sqs:DeleteMessageBatch", "sqs:ChangeMessageVisibilityBatch"]
    exports = {resolver.resolve(o["Export"]["Name"]): str(resolver.resolve(o["Value"]))
               for o in ingest["Outputs"].values() if "Export" in o}
    return {
        "queue_url": queue_url, "dlq_url": dlq_url, "raw_bucket": RAW_BUCKET, "audit_bucket": AUDIT_BUCKET,
        "veil": user_with_policy(iam, INGEST, "veil", veil_policy),
        "ingest_admin": user_with_policy(iam, INGEST, "admin", ADMIN),
        "destinations": destinations,
        "service_env": service_env(writer_outputs, exports),
    }


def veil_config(env, endpoint):
    """`env` (VEIL__SECTION__KEY -> TOML value or bare text, as veil reads it) as a config file
    for the image, whose runtime and models are under /opt/veil."""
    sections = {"runtime": {"library": '"/opt/veil/onnxruntime/libonnxruntime.so"',
                            "models_dir": '"/opt/veil/models"'},
                "ingest": {"endpoint_url": json.dumps(endpoint)}}
    top = {}
    for name, raw in env.items():
        path = name.removeprefix("VEIL__").lower().split("__")
        try:
            tomllib.loads(f"v = {raw}")
            value = raw
        except tomllib.TOMLDecodeError:
            value = json.dumps(raw)
        if len(path) == 1:
            top[path[0]] = value
        else:
            sections.setdefault(path[0], {})[path[1]] = value
    lines = ["# Written by scripts/seed_emulator.py from deploy/cloudformation/service.yaml's environment."]
    lines += [f"{k} = {v}" for k, v in top.items()]
    for section, keys in sections.items():
        lines += ["", f"[{section}]"] + [f"{k} = {v}" for k, v in keys.items()]
    return "\n".join(lines) + "\n"


def enforce(endpoint):
    request = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth", data=b"0", method="POST",
        headers={"Content-Type": "text/plain"})
    urllib.request.urlopen(request, timeout=10).read()


if __name__ == "__main__":
    endpoint = sys.argv[1].rstrip("/")
    description = {"endpoint": endpoint, "region": REGION, "accounts": {"ingest": INGEST, **DOWNSTREAM},
                   "external_id": EXTERNAL_ID, "max_receive_count": MAX_RECEIVE_COUNT}
    description.update(seed_localstack(endpoint) if LOCALSTACK else seed_moto(endpoint))
    if not LOCALSTACK and "--no-enforce" not in sys.argv:
        enforce(endpoint)
    if "--veil-config" in sys.argv:
        path = Path(sys.argv[sys.argv.index("--veil-config") + 1])
        path.write_text(veil_config(description["service_env"], endpoint))
    json.dump(description, sys.stdout, indent=2)
    print()
