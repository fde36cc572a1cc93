#!/usr/bin/env bash
# veil end to end on sample photos: install the runtime and models, fetch real photos with faces
# and licence plates, build veil, anonymise them into out/anonymised with a JSON-lines report,
# and print what was found. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
.venv/bin/python scripts/fetch_test_images.py
cargo build --release --quiet

rm -rf out/anonymised
target/release/veil --config config/veil.toml anonymise .cache/testdata \
  --out out/anonymised --report out/anonymised/report.jsonl || status=$?

.venv/bin/python - <<'PY'
import json
rows = [json.loads(l) for l in open("out/anonymised/report.jsonl")]
print(f"\n{'image':<40} {'faces':>5} {'plates':>6}  output")
for r in rows:
    if "error" in r:
        print(f"{r['input'][-40:]:<40} {'-':>5} {'-':>6}  FAILED: {r['error']}")
        continue
    faces = sum(d["class"] == "face" for d in r["detections"])
    plates = sum(d["class"] == "plate" for d in r["detections"])
    print(f"{r['input'][-40:]:<40} {faces:>5} {plates:>6}  {r['output']}")
PY
exit "${status:-0}"
