#!/usr/bin/env python3
"""Print one table of veil's benchmark figures from criterion's results and the deface run.

Reads target/criterion/<group>/<bench>/new/{estimates,benchmark}.json (written by
`cargo bench --bench redact --bench pipeline`) and .cache/bench/deface.json (written by
scripts/bench_deface.py). Throughput benches are shown in MP/s, the others in milliseconds.
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CRITERION = ROOT / "target" / "criterion"


def rows():
    for est in sorted(CRITERION.glob("**/new/estimates.json")):
        bench = json.loads((est.parent / "benchmark.json").read_text())
        mean_ns = json.loads(est.read_text())["mean"]["point_estimate"]
        name = bench["full_id"]
        throughput = bench.get("throughput") or {}
        if "Elements" in throughput:
            yield name, f"{throughput['Elements'] / mean_ns * 1e3:.0f} MP/s"
        else:
            yield name, f"{mean_ns / 1e6:.1f} ms"


def print_deface(d: dict) -> None:
    """The veil-versus-deface table from the figures scripts/bench_deface.py writes."""
    base = d["tools"]["deface"]["images_per_s"]
    print(f"faces only, CenterFace, {d['images']} images with {d['faces']} known faces:")
    print(f"| {'tool':<41} | images/s | vs deface | recall |")
    print(f"| {'-' * 41} | -------- | --------- | ------ |")
    names = {"deface": "deface 1.5.0", "veil": "veil, defaults (faces from 10 px)",
             "veil_one_look": "veil, defaults, mirrored = false",
             "veil_40px": "veil, faces from 40 px", "veil_40px_no_verify": "veil, 40 px, verify_passes = 0",
             "veil_40px_float": "veil, 40 px, float CenterFace",
             "veil_40px_float_no_verify": "veil, 40 px, float, no verify"}
    for label, t in d["tools"].items():
        print(f"| {names.get(label, label):<41} | {t['images_per_s']:8.2f} | {t['images_per_s'] / base:8.2f}x | {t['recall']:.3f}  |")


def main() -> int:
    table = list(rows())
    if not table:
        print("no criterion results: run scripts/bench.sh", file=sys.stderr)
        return 1
    width = max(len(n) for n, _ in table)
    print(f"| {'benchmark':<{width}} | result |")
    print(f"| {'-' * width} | ------ |")
    for name, value in table:
        print(f"| {name:<{width}} | {value} |")
    deface = ROOT / ".cache" / "bench" / "deface.json"
    if deface.exists():
        print()
        print_deface(json.loads(deface.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
