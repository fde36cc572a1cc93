#!/usr/bin/env bash
# veil end to end on this machine: four emulated AWS accounts in moto (ingest, training,
# inference, analytics) with IAM enforced, the daemon draining the raw bucket's notifications,
# and the sample photos uploaded as raw images. Prints where each anonymised copy landed and a
# metrics summary, then stops everything. Installs what it needs; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/prepare.sh
cargo build --release --quiet

PORT=5123            # config/local.toml expects moto here
METRICS=127.0.0.1:9464
OUT=out/demo
PY=.cache/moto-venv/bin/python
rm -rf "$OUT" && mkdir -p "$OUT"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

if curl -s "http://127.0.0.1:$PORT" >/dev/null; then
  echo "port $PORT is in use; stop what listens there first" >&2
  exit 1
fi
.cache/moto-venv/bin/moto_server -H 127.0.0.1 -p "$PORT" >"$OUT/moto.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/moto-api/" >/dev/null && break; sleep 0.2; done
"$PY" scripts/seed_emulator.py "http://127.0.0.1:$PORT" >"$OUT/accounts.json"
echo "moto on 127.0.0.1:$PORT: 4 accounts, buckets, queue + DLQ, notification, writer roles; IAM enforced"

creds() { "$PY" -c "import json; print(json.load(open('$OUT/accounts.json'))['veil']['$1'])"; }
AWS_ACCESS_KEY_ID=$(creds access_key_id) AWS_SECRET_ACCESS_KEY=$(creds secret_access_key) \
  AWS_EC2_METADATA_DISABLED=true VEIL_LOG=info VEIL__METRICS__LISTEN=$METRICS \
  target/release/veil --config config/local.toml --log-format json run 2>"$OUT/veil.log" &
daemon=$!
pids+=("$daemon")
for _ in $(seq 600); do curl -sf "http://$METRICS/readyz" >/dev/null && break; sleep 0.2; done
curl -sf "http://$METRICS/readyz" >/dev/null || { echo "veil did not become ready; see $OUT/veil.log" >&2; exit 1; }
echo "veil running (pid $daemon), metrics on http://$METRICS/metrics, log in $OUT/veil.log"

"$PY" scripts/demo.py upload "$OUT/accounts.json" .cache/testdata
"$PY" scripts/demo.py wait "$OUT/accounts.json" "http://$METRICS/metrics"
"$PY" scripts/demo.py report "$OUT/accounts.json" "http://$METRICS/metrics"

kill -TERM "$daemon"
wait "$daemon" && echo "veil stopped cleanly (exit 0)"
