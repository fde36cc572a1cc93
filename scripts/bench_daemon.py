"""End-to-end throughput of the daemon against moto, beside pipeline-only throughput.

For each in-flight limit (1, 2, 4): a fresh moto with the four-account layout and IAM enforced,
N real photos uploaded to the raw bucket (their notifications queue up), then `veil run`
(release build, 2 pipelines) drains them; objects/s is measured from the first receive to the
last object, with the daemon's CPU time and peak RSS from /proc. Pipeline-only throughput on
the same images and renditions comes from `cargo bench --bench throughput`.

Run by scripts/bench_daemon.sh (which installs everything first). Prints a Markdown table.
"""

import json
import os
import pathlib
import socket
import subprocess
import sys
import time
import urllib.request

import boto3

ROOT = pathlib.Path(__file__).resolve().parent.parent
IMAGES = pathlib.Path(os.environ.get("VEIL_BENCH_IMAGES", ROOT / ".cache/testdata"))
REPEAT = int(os.environ.get("VEIL_BENCH_REPEAT", "3"))
IN_FLIGHT = [int(x) for x in os.environ.get("VEIL_BENCH_IN_FLIGHT", "1,2,4").split(",")]
PIPELINES = 2
PY = ROOT / ".cache/moto-venv/bin/python"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except Exception:
        return None, ""


def metric(url, name):
    _, body = get(url)
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def wait(what, check, limit=600):
    deadline = time.time() + limit
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    sys.exit(f"timed out waiting for {what}")


def cpu_seconds(pid):
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pipeline_only():
    env = dict(os.environ, VEIL_BENCH_IMAGES=str(IMAGES), VEIL_BENCH_REPEAT=str(REPEAT),
               VEIL_BENCH_THREADS="1,2")
    out = subprocess.run(["cargo", "bench", "--quiet", "--bench", "throughput"], cwd=ROOT, env=env,
                         check=True, capture_output=True, text=True).stdout
    rows = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    return {r["threads"]: r for r in rows}


def daemon_run(in_flight, files):
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    moto = subprocess.Popen([str(ROOT / ".cache/moto-venv/bin/moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    daemon = None
    try:
        wait("moto", lambda: get(f"{endpoint}/moto-api/")[0] == 200, 30)
        seed = json.loads(subprocess.run([str(PY), str(ROOT / "scripts/seed_emulator.py"), endpoint],
                                         check=True, capture_output=True, text=True).stdout)
        admin = seed["ingest_admin"]
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id=admin["access_key_id"],
                          aws_secret_access_key=admin["secret_access_key"])
        n = 0
        for r in range(REPEAT):
            for f in files:
                s3.put_object(Bucket="veil-raw", Key=f"bench/{r}/{f.name}", Body=f.read_bytes())
                n += 1
        metrics_port = free_port()
        murl = f"http://127.0.0.1:{metrics_port}/metrics"
        env = dict(os.environ,
                   AWS_ACCESS_KEY_ID=seed["veil"]["access_key_id"],
                   AWS_SECRET_ACCESS_KEY=seed["veil"]["secret_access_key"],
                   AWS_EC2_METADATA_DISABLED="true",
                   VEIL__INGEST__ENDPOINT_URL=endpoint,
                   VEIL__INGEST__QUEUE_URL=seed["queue_url"],
                   VEIL__METRICS__LISTEN=f"127.0.0.1:{metrics_port}",
                   VEIL__WORKER__PIPELINES=str(PIPELINES),
                   VEIL__WORKER__IN_FLIGHT=str(in_flight),
                   VEIL_LOG="warn")
        daemon = subprocess.Popen([str(ROOT / "target/release/veil"), "--config", "config/local.toml", "run"],
                                  cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait("the first receive", lambda: metric(murl, "veil_messages_received_total") > 0, 120)
        t0, cpu0 = time.time(), cpu_seconds(daemon.pid)
        wait("every object", lambda: metric(murl, 'veil_objects_total{outcome="anonymised"}') >= n)
        seconds, cpu = time.time() - t0, cpu_seconds(daemon.pid) - cpu0
        rss = peak_rss_mb(daemon.pid)
        daemon.terminate()
        daemon.wait(timeout=60)
        return {"in_flight": in_flight, "objects": n, "seconds": seconds, "per_s": n / seconds,
                "cpu_cores": cpu / seconds, "peak_rss_mb": rss}
    finally:
        if daemon and daemon.poll() is None:
            daemon.kill()
        moto.kill()
        moto.wait()


def main():
    files = sorted(p for p in IMAGES.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp"})
    base = pipeline_only()
    runs = [daemon_run(k, files) for k in IN_FLIGHT]
    best = max(r["per_s"] for r in runs)
    ref = base[PIPELINES]["images_per_s"]
    print(f"\n{len(files)} photos x {REPEAT} = {len(files) * REPEAT} objects, 3 renditions each, "
          f"{PIPELINES} pipelines, {os.cpu_count()} cores")
    print("\n| run | objects/s | vs pipeline-only (2 threads) | CPU (cores) | peak RSS (MB) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for t in sorted(base):
        r = base[t]
        print(f"| pipeline only, {t} thread(s) | {r['images_per_s']:.2f} | {r['images_per_s'] / ref:.0%} | | |")
    for r in runs:
        print(f"| daemon, in_flight={r['in_flight']} | {r['per_s']:.2f} | {r['per_s'] / ref:.0%} | "
              f"{r['cpu_cores']:.2f} | {r['peak_rss_mb']:.0f} |")
    print(f"\nbest daemon / pipeline-only: {best / ref:.0%}")


if __name__ == "__main__":
    main()
