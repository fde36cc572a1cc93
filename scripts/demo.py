"""Helpers of scripts/demo.sh, run with the emulator venv's boto3.

upload ACCOUNTS DIR     put every image under DIR into the raw bucket as the ingest admin
wait ACCOUNTS METRICS   wait (bounded) until veil has handled every uploaded object
report ACCOUNTS METRICS print where each copy landed, what the audit says, and the metrics
"""

import json
import pathlib
import sys
import time
import urllib.request

import boto3

IMAGES = {".jpg", ".jpeg", ".png", ".webp"}


def s3(accounts, who):
    creds = accounts["ingest_admin"] if who == "ingest" else accounts["destinations"][who]["admin"]
    return boto3.client("s3", endpoint_url=accounts["endpoint"], region_name=accounts["region"],
                        aws_access_key_id=creds["access_key_id"],
                        aws_secret_access_key=creds["secret_access_key"])


def metrics(url):
    values = {}
    for line in urllib.request.urlopen(url, timeout=5).read().decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def upload(accounts, folder):
    client = s3(accounts, "ingest")
    files = sorted(p for p in pathlib.Path(folder).rglob("*") if p.suffix.lower() in IMAGES)
    for p in files:
        client.upload_file(str(p), accounts["raw_bucket"], f"cameras/{p.relative_to(folder)}")
    (pathlib.Path("out/demo/uploaded")).write_text(str(len(files)))
    print(f"uploaded {len(files)} raw images to s3://{accounts['raw_bucket']}/cameras/")


def wait(accounts, url):
    expected = int(pathlib.Path("out/demo/uploaded").read_text())
    deadline = time.time() + 900
    done = -1
    while time.time() < deadline:
        m = metrics(url)
        now = sum(v for k, v in m.items() if k.startswith("veil_objects_total"))
        if now != done:
            done = now
            print(f"  {int(done)}/{expected} objects handled", flush=True)
        if done >= expected:
            return
        time.sleep(1)
    sys.exit("veil did not handle every object in 15 minutes")


def report(accounts, url):
    ingest = s3(accounts, "ingest")
    records = []
    for page in ingest.get_paginator("list_objects_v2").paginate(Bucket=accounts["audit_bucket"]):
        for o in page.get("Contents", []):
            body = ingest.get_object(Bucket=accounts["audit_bucket"], Key=o["Key"])["Body"].read()
            records.append(json.loads(body))
    attempts = [r for r in records if not r.get("complete")]
    records = [r for r in records if r.get("complete")]
    print(f"\n{'source (key sha256)':<20} {'faces':>5} {'plates':>6}  copies (account/bucket/key, bytes)")
    for r in sorted(records, key=lambda r: r["source"]["key_sha256"]):
        counts = r["detections_by_class"]
        first = True
        for c in r["destinations"]:
            left = f"{r['source']['key_sha256'][:16]:<20} {counts.get('face', 0):>5} {counts.get('plate', 0):>6}" \
                if first else " " * 33
            print(f"{left}  {c['account_id']}/{c['bucket']}/{c['key']} {c['width']}x{c['height']} {c['bytes']}")
            first = False
    if attempts:
        print(f"({len(attempts)} records of attempts that wrote only some copies, retried since)")
    print()
    for d, info in accounts["destinations"].items():
        n = sum(len(p.get("Contents", [])) for p in
                s3(accounts, d).get_paginator("list_objects_v2").paginate(Bucket=info["bucket"]))
        print(f"{d:<10} account {info['account_id']}: {n} anonymised copies in s3://{info['bucket']}")
    left = ingest.list_object_versions(Bucket=accounts["raw_bucket"]).get("Versions", [])
    print(f"raw bucket: {len(left)} object versions left (rejected inputs stay for inspection)")
    m = metrics(url)
    print("\nmetrics (http://.../metrics):")
    for k, v in sorted(m.items()):
        if k.startswith(("veil_objects_total", "veil_messages_", "veil_detections_total", "veil_puts_total",
                         "veil_destination_errors_total", "veil_credential_refreshes_total", "veil_bytes_")) \
                and v:
            print(f"  {k} {v:g}")
    for stage in ["download", "decode", "detect", "verify", "redact", "encode", "upload"]:
        count = m.get(f'veil_stage_seconds_count{{stage="{stage}"}}', 0)
        total = m.get(f'veil_stage_seconds_sum{{stage="{stage}"}}', 0)
        if count:
            print(f"  mean {stage:<8} {1000 * total / count:8.1f} ms")


if __name__ == "__main__":
    command, accounts = sys.argv[1], json.load(open(sys.argv[2]))
    {"upload": upload, "wait": wait, "report": report}[command](accounts, sys.argv[3])
