#!/usr/bin/env python3
"""Faces cut by the frame: whether veil covers each face as far as it shows.

Every face of tests/data/known_faces.toml and tests/data/bench_faces.toml (a photo that copies
another one left out), its photo cropped so that one edge cuts 25, 50 or 70 % of the face (the
face's own box), on each of the four sides, at full and half size: 18 faces, 432 crops. veil
anonymises them all with its defaults (`veil anonymise -w 2`); each face counts as covered when
the part of its box inside the crop passes the coverage rule of scripts/bench_portraits.py (that
of tests/small_objects.rs). Also the pixels changed away from every face of the crop, as in
scripts/bench_portraits.py. The faces missed are listed with the best IoU of a face veil found.

`FRACS=0.5 SCALES=1` narrows the sweep.

Run after scripts/prepare.sh and a release build:
    .venv/bin/python scripts/bench_edge_cut.py
"""

import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

import bench_portraits as bp

WORK = bp.ROOT / ".cache/bench/edge_cut"
SIDES = "LRTB"


def crops(scales, fracs):
    """Writes every crop under WORK/in; returns {file: (visible face box, every face box)}."""
    truth = {}
    photos = {**bp.known_faces(), **bp.known_faces("bench_faces.toml", copies=False)}
    for name, boxes in photos.items():
        img = bp.displayed(bp.TESTDATA / name)
        for s in scales:
            im = img if s == 1 else img.resize(
                (round(img.width * s), round(img.height * s)), Image.LANCZOS)
            scaled = [[v * s for v in b] for b in boxes]
            for i, (x1, y1, x2, y2) in enumerate(scaled):
                w, h = x2 - x1, y2 - y1
                for side in SIDES:
                    for f in fracs:
                        left, top, right, bottom = 0, 0, im.width, im.height
                        if side == "L":
                            left = round(x1 + f * w)
                        elif side == "R":
                            right = round(x2 - f * w)
                        elif side == "T":
                            top = round(y1 + f * h)
                        else:
                            bottom = round(y2 - f * h)
                        key = f"{Path(name).stem}_{i}_{s}_{side}_{f}.png"
                        im.crop((left, top, right, bottom)).save(WORK / "in" / key)
                        visible = [max(x1 - left, 0), max(y1 - top, 0),
                                   min(x2 - left, right - left), min(y2 - top, bottom - top)]
                        shifted = [[b[0] - left, b[1] - top, b[2] - left, b[3] - top] for b in scaled]
                        truth[key] = (visible, shifted)
    return truth


def main():
    scales = [float(s) for s in os.environ.get("SCALES", "1,0.5").split(",")]
    fracs = [float(s) for s in os.environ.get("FRACS", "0.25,0.5,0.7").split(",")]
    shutil.rmtree(WORK, ignore_errors=True)
    (WORK / "in").mkdir(parents=True)
    truth = crops(scales, fracs)
    report = bp.veil([WORK / "in"], WORK / "out", WORK / "report.jsonl")
    found = {name: [d["box"] for d in r["detections"] if d["class"] == "face"]
             for name, r in report.items()}
    covered, away, missed = 0, [], []
    for key, (visible, faces) in sorted(truth.items()):
        before, after = WORK / "in" / key, WORK / "out" / key
        ok = bp.covered(bp.luminance(before), bp.luminance(after), visible)
        covered += ok
        if not ok:
            best = max((bp.iou(b, visible) for b in found.get(key, [])), default=0.0)
            missed.append(f"{key} (best IoU of a face found: {best:.2f})")
        away.append(bp.changed(before, after, faces)[1])
    print(f"faces cut by the frame: {covered}/{len(truth)} covered as far as they show; "
          f"{np.mean(away):.2f} % of the pixels away from the faces changed")
    for m in missed:
        print(f"- not covered: {m}")


if __name__ == "__main__":
    main()
