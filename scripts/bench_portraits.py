#!/usr/bin/env python3
"""How much of a portrait or group photo veil changes, and whether its faces can be found again.

The small-object set measures recall on small objects; this measures the other side on photos
whose faces are large: the share of pixels changed, in all and away from the known faces
(outside each face box grown to twice its size), and what full detection still finds over a
known face in the output. Images: the known-face photos of tests/data/known_faces.toml (t1,
astronaut, camera) and two upscaled copies (astronaut x3, camera x2.8, Lanczos), so that the
large-face passes and the re-check of large regions are exercised at portrait sizes.

Each configuration (the defaults, and the defaults without the re-check) anonymises every image
with `veil anonymise -w 2`; each output is then run through full detection with the same models
and thresholds and `verify_passes = 0`, and finds with IoU > 0.1 over a known face are listed.
A pixel counts as changed when, after a 2 px box blur of both images (JPEG noise), one of its
channels moved by more than 6.

Run after scripts/prepare.sh and a release build:
    .venv/bin/python scripts/bench_portraits.py
"""

import json
import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps

ROOT = Path(__file__).resolve().parent.parent
TESTDATA = ROOT / ".cache/testdata"
WORK = ROOT / ".cache/bench/portraits"
VEIL = [str(ROOT / "target/release/veil"), "-c", str(ROOT / "config/veil.toml"), "anonymise"]
CONFIGS = [("default", {}), ("no re-check", {"VEIL__REDACTION__VERIFY_PASSES": "0"})]
UPSCALED = [("astronaut.png", 3.0), ("camera.png", 2.8)]


def known_faces():
    data = tomllib.loads((ROOT / "tests/data/known_faces.toml").read_text())
    return {p["file"]: p["faces"] for p in data["photo"]}


def images():
    """(path, known face boxes) for every image, the upscaled copies written on first use."""
    known = known_faces()
    WORK.mkdir(parents=True, exist_ok=True)
    out = [(TESTDATA / name, boxes) for name, boxes in known.items()]
    for name, k in UPSCALED:
        path = WORK / f"{Path(name).stem}_x{k}.png"
        if not path.exists():
            img = Image.open(TESTDATA / name)
            img.resize((round(img.width * k), round(img.height * k)), Image.LANCZOS).save(path)
        out.append((path, [[v * k for v in b] for b in known[name]]))
    return out


def veil(paths, out_dir, report, env):
    shutil.rmtree(out_dir, ignore_errors=True)
    subprocess.run(
        VEIL + ["-w", "2", "-o", str(out_dir), "--report", str(report)] + [str(p) for p in paths],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
    )
    return {Path(json.loads(line)["input"]).name: json.loads(line) for line in open(report)}


def iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def pixels(path):
    img = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    return np.asarray(img.filter(ImageFilter.BoxBlur(2)), dtype=np.float32)


def changed(before, after, faces):
    """Share of all pixels changed, and of those outside every face box grown to twice its size."""
    moved = np.abs(pixels(before) - pixels(after)).max(axis=2) > 6
    away = np.ones(moved.shape, bool)
    for x1, y1, x2, y2 in faces:
        cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
        away[max(0, int(cy - h)) : int(cy + h), max(0, int(cx - w)) : int(cx + w)] = False
    return 100 * moved.mean(), 100 * moved[away].mean()


def main():
    env = {"ORT_DYLIB_PATH": str(ROOT / ".cache/onnxruntime/libonnxruntime.so")}
    todo = images()
    paths = [p for p, _ in todo]
    print("| configuration | image | pixels changed | away from the faces | "
          "known faces found again | detect + re-check s |")
    print("| --- | --- | ---: | ---: | --- | ---: |")
    for label, extra in CONFIGS:
        tag = label.replace(" ", "_")
        report = veil(paths, WORK / tag, WORK / f"{tag}.jsonl", {**env, **extra})
        outputs = [WORK / tag / p.name for p in paths]
        again = veil(outputs, WORK / f"{tag}_again", WORK / f"{tag}_again.jsonl",
                     {**env, "VEIL__REDACTION__VERIFY_PASSES": "0"})
        totals = []
        for (path, faces), output in zip(todo, outputs):
            everywhere, away = changed(path, output, faces)
            found = sorted(
                (round(d["score"], 2) for d in again[output.name]["detections"]
                 if d["class"] == "face" and any(iou(d["box"], f) > 0.1 for f in faces)),
                reverse=True,
            )
            t = report[path.name]["timings"]
            seconds = (t["detect_ms"] + t["verify_ms"]) / 1e3
            totals.append((everywhere, away, len(found)))
            print(f"| {label} | {path.name} | {everywhere:.1f} % | {away:.1f} % | "
                  f"{len(found)} {found or ''} | {seconds:.1f} |")
        mean = np.mean([t[:2] for t in totals], axis=0)
        print(f"| {label} | **mean** | {mean[0]:.1f} % | {mean[1]:.1f} % | "
              f"{sum(t[2] for t in totals)} | |")


if __name__ == "__main__":
    main()
