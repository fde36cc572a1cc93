#!/usr/bin/env python3
"""How much of a portrait or group photo veil changes, whether its faces are covered and whether
they can be found again; and how its faces fare shrunk to the smallest sizes veil guarantees.

The small-object set measures recall on small objects; this measures the other side on photos
whose faces are large: the share of pixels changed, in all and away from the known faces
(outside each face box grown to twice its size), the known faces covered by the coverage rule
of tests/small_objects.rs, and what full detection still finds over a known face in the output.
Images: the known-face photos of tests/data/known_faces.toml (t1, astronaut, camera), two
upscaled copies (astronaut x3, camera x2.8, Lanczos), so that the large-face passes and the
re-check of large regions are exercised at portrait sizes, and the photos of
tests/data/bench_faces.toml, on which no setting of veil was chosen (portraits up to
1434 x 2333, a face cut by the frame, an opaque RGBA copy, a street photo, two faces in profile).

Each configuration (the defaults, and the defaults without the re-check) anonymises every image
with `veil anonymise -w 2`; each output is then run through full detection with the same models
and thresholds and `verify_passes = 0`, and finds with IoU > 0.1 over a known face are listed.
A pixel counts as changed when, after a 2 px box blur of both images (JPEG noise), one of its
channels moved by more than 6.

Then every known face of both files, cut out of its photo with two face heights around it (a
photo's faces together), is shrunk so that its faces are about 10, 12, 16 and 24 px high and
pasted over a face-free photo in a 1280 x 720 frame, one frame per size; the defaults anonymise
the frames and the faces covered are counted per size.

Last, close-ups: every whole known face and four held-apart ones, each as tall as in a selfie
(900, 1 400 and 2 000 px in a 1434 x 2333 frame), covered or not, per size (`close_ups`).

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
RUNTIME = ROOT / ".cache/onnxruntime/libonnxruntime.so"
VEIL = [str(ROOT / "target/release/veil"), "-c", str(ROOT / "config/veil.toml"), "anonymise"]
CONFIGS = [("default", {}), ("no re-check", {"VEIL__REDACTION__VERIFY_PASSES": "0"})]
UPSCALED = [("astronaut.png", 3.0), ("camera.png", 2.8)]


def known_faces(file="known_faces.toml", copies=True):
    """{photo: face boxes} of a face list; `copies=False` leaves out a photo that copies another."""
    data = tomllib.loads((ROOT / "tests/data" / file).read_text())
    return {p["file"]: p["faces"] for p in data["photo"] if copies or "copy_of" not in p}


def images():
    """(path, known face boxes) for every image, the upscaled copies written on first use."""
    known = known_faces()
    WORK.mkdir(parents=True, exist_ok=True)
    out = [(TESTDATA / name, boxes) for name, boxes in known.items()]
    out += [(TESTDATA / name, boxes) for name, boxes in known_faces("bench_faces.toml").items()]
    for name, k in UPSCALED:
        path = WORK / f"{Path(name).stem}_x{k}.png"
        if not path.exists():
            img = Image.open(TESTDATA / name)
            img.resize((round(img.width * k), round(img.height * k)), Image.LANCZOS).save(path)
        out.append((path, [[v * k for v in b] for b in known[name]]))
    return out


def veil(paths, out_dir, report, settings=None):
    """Runs the release build's `anonymise` on `paths` with the setup's ONNX Runtime and the
    `VEIL__…` overrides of `settings`; returns {input file name: its report line}. Runs in the
    repository root, where config/veil.toml's relative paths (`models_dir`) lead, whatever the
    caller's working directory."""
    shutil.rmtree(out_dir, ignore_errors=True)
    report = Path(report).resolve()
    subprocess.run(
        VEIL + ["-w", "2", "-o", str(Path(out_dir).resolve()), "--report", str(report)]
        + [str(Path(p).resolve()) for p in paths],
        cwd=ROOT,
        env={**os.environ, "ORT_DYLIB_PATH": str(RUNTIME), **(settings or {})},
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


def displayed(path):
    """The image as a viewer sees it: EXIF orientation applied, RGB."""
    return ImageOps.exif_transpose(Image.open(path)).convert("RGB")


def pixels(path):
    return np.asarray(displayed(path).filter(ImageFilter.BoxBlur(2)), dtype=np.float32)


def luminance(path):
    rgb = np.asarray(displayed(path), dtype=np.uint32)
    return ((77 * rgb[..., 0] + 150 * rgb[..., 1] + 29 * rgb[..., 2]) >> 8).astype(np.float32)


def gaussian(plane, sigma):
    """A Gaussian blur of sigma, the kernel renormalised at the plane's edges."""
    r = int(np.ceil(3 * sigma)) + 1
    kernel = np.exp(-np.arange(-r, r + 1) ** 2 / (2 * sigma * sigma))

    def along(a, axis):
        conv = lambda v: np.convolve(v, kernel)[r : r + len(v)]  # noqa: E731
        weight = np.apply_along_axis(conv, axis, np.ones_like(a))
        return np.apply_along_axis(conv, axis, a) / weight

    return along(along(plane, 1), 0)


def covered(before, after, box):
    """The coverage rule of tests/common/smallset.rs: at least 90 % of the box's detailed pixels
    keep at most half their detail and at least 80 % of its detail energy is gone (detail:
    luminance minus its Gaussian blur of sigma = short side / 16, inside the box)."""
    h, w = before.shape
    x1, y1 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    x2, y2 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
    if x2 <= x1 or y2 <= y1:
        return True
    sigma = max(min(box[2] - box[0], box[3] - box[1]) / 16, 0.5)
    d0, d1 = (p[y1:y2, x1:x2] - gaussian(p[y1:y2, x1:x2], sigma) for p in (before, after))
    e0 = float((d0 * d0).sum())
    if e0 < 1e-3 * d0.size:
        return True
    detailed = np.abs(d0) >= 0.5 * np.sqrt(e0 / d0.size)
    obscured = (np.abs(d1) <= 0.5 * np.abs(d0))[detailed].mean()
    return obscured >= 0.9 and 1 - min(float((d1 * d1).sum()) / e0, 1.0) >= 0.8


def changed(before, after, faces):
    """Share of all pixels changed, and of those outside every face box grown to twice its size."""
    moved = np.abs(pixels(before) - pixels(after)).max(axis=2) > 6
    away = np.ones(moved.shape, bool)
    for x1, y1, x2, y2 in faces:
        cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
        away[max(0, int(cy - h)) : int(cy + h), max(0, int(cx - w)) : int(cx + w)] = False
    return 100 * moved.mean(), 100 * moved[away].mean()


def main():
    todo = images()
    paths = [p for p, _ in todo]
    print("| configuration | image | pixels changed | away from the faces | faces covered | "
          "known faces found again | detect + re-check s |")
    print("| --- | --- | ---: | ---: | ---: | --- | ---: |")
    for label, extra in CONFIGS:
        tag = label.replace(" ", "_")
        report = veil(paths, WORK / tag, WORK / f"{tag}.jsonl", extra)
        outputs = [WORK / tag / p.name for p in paths]
        again = veil(outputs, WORK / f"{tag}_again", WORK / f"{tag}_again.jsonl",
                     {"VEIL__REDACTION__VERIFY_PASSES": "0"})
        totals = []
        for (path, faces), output in zip(todo, outputs):
            everywhere, away = changed(path, output, faces)
            lum = luminance(path), luminance(output)
            cover = sum(covered(*lum, f) for f in faces)
            found = sorted(
                (round(d["score"], 2) for d in again[output.name]["detections"]
                 if d["class"] == "face" and any(iou(d["box"], f) > 0.1 for f in faces)),
                reverse=True,
            )
            t = report[path.name]["timings"]
            seconds = (t["detect_ms"] + t["verify_ms"]) / 1e3
            totals.append((everywhere, away, len(found), cover, len(faces)))
            print(f"| {label} | {path.name} | {everywhere:.1f} % | {away:.1f} % | "
                  f"{cover}/{len(faces)} | {len(found)} {found or ''} | {seconds:.1f} |")
        mean = np.mean([t[:2] for t in totals], axis=0)
        print(f"| {label} | **mean** | {mean[0]:.1f} % | {mean[1]:.1f} % | "
              f"{sum(t[3] for t in totals)}/{sum(t[4] for t in totals)} | "
              f"{sum(t[2] for t in totals)} | |")
    print()
    small_faces()


def small_faces():
    """Every known face shrunk to the smallest sizes and pasted over a face-free photo."""
    faces_of = {**known_faces(), **known_faces("bench_faces.toml")}
    photos = [(displayed(TESTDATA / name), faces) for name, faces in sorted(faces_of.items())]
    backgrounds = ["coffee.png", "rocket.jpg", "ihc.png", "motorcycle_left.png"]
    frames, truth = [], []
    rng = np.random.default_rng(1)
    (WORK / "small").mkdir(parents=True, exist_ok=True)
    for n, size in enumerate([10, 12, 16, 24]):
        back = Image.open(TESTDATA / backgrounds[n]).convert("RGB")
        frame = ImageOps.fit(back, (1280, 720), Image.LANCZOS)
        cols, rows = 5, 4
        cell = (1280 // cols, 720 // rows)
        boxes = []
        for i, (img, faces) in enumerate(photos):
            high = np.mean([f[3] - f[1] for f in faces])
            k = size / high
            margin = 2 * high
            crop = [max(0, int(min(f[0] for f in faces) - margin)),
                    max(0, int(min(f[1] for f in faces) - margin)),
                    min(img.width, int(max(f[2] for f in faces) + margin)),
                    min(img.height, int(max(f[3] for f in faces) + margin))]
            part = img.crop(crop)
            part = part.resize((max(1, round(part.width * k)), max(1, round(part.height * k))),
                               Image.LANCZOS)
            x = (i % cols) * cell[0] + int(rng.integers(0, max(1, cell[0] - part.width)))
            y = (i // cols) * cell[1] + int(rng.integers(0, max(1, cell[1] - part.height)))
            frame.paste(part, (x, y))
            boxes += [[x + (f[0] - crop[0]) * k, y + (f[1] - crop[1]) * k,
                       x + (f[2] - crop[0]) * k, y + (f[3] - crop[1]) * k] for f in faces]
        path = WORK / "small" / f"faces_{size}px.png"
        frame.save(path)
        frames.append((size, path))
        truth.append(boxes)
    veil([p for _, p in frames], WORK / "small_out", WORK / "small.jsonl")
    print("| faces shrunk to | covered (defaults) |")
    print("| --- | ---: |")
    for (size, path), boxes in zip(frames, truth):
        lum = luminance(path), luminance(WORK / "small_out" / path.name)
        print(f"| {size} px | {sum(covered(*lum, b) for b in boxes)}/{len(boxes)} |")


CLOSE_UP = (1434, 2333)
# The close-ups study the passes for large faces alone: faces and plates from 40 px leave the
# whole and large-object passes as the defaults plan them (the mirrored border around the
# picture, twice the largest guaranteed size, is 80 px instead of 40) at a tenth of the cost.
CLOSE_UP_SETTINGS = {"VEIL__RECALL__FACE_MIN_PX": "40", "VEIL__RECALL__PLATE_MIN_PX": "40"}


def close_ups(settings=None):
    """Every whole known face, and the held-apart single faces, each scaled so that the face is
    900, 1 400 or 2 000 px high in a 1434 x 2333 frame (centred across, its centre at 45 % of
    the height, grey beyond the photo): faces as tall as a selfie's. Prints per size the faces
    covered and the share of the frame changed (the face fills most of it)."""
    held_apart = {n: f for n, f in known_faces("bench_faces.toml").items()
                  if n in ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg")}
    sets = [("known", known_faces(copies=False)), ("held-apart", held_apart)]
    (WORK / "close").mkdir(parents=True, exist_ok=True)
    todo = []
    for label, faces_of in sets:
        for name, faces in sorted(faces_of.items()):
            img = displayed(TESTDATA / name)
            for i, f in enumerate(faces):
                for size in (900, 1400, 2000):
                    k = size / (f[3] - f[1])
                    big = img.resize((round(img.width * k), round(img.height * k)), Image.LANCZOS)
                    ox = round((f[0] + f[2]) / 2 * k - CLOSE_UP[0] / 2)
                    oy = round((f[1] + f[3]) / 2 * k - 0.45 * CLOSE_UP[1])
                    frame = Image.new("RGB", CLOSE_UP, (128, 128, 128))
                    frame.paste(big, (-ox, -oy))
                    box = [f[0] * k - ox, f[1] * k - oy, f[2] * k - ox, f[3] * k - oy]
                    path = WORK / "close" / f"{Path(name).stem}_{i}_{size}.png"
                    frame.save(path)
                    todo.append((label, size, path, box))
    veil([p for _, _, p, _ in todo], WORK / "close_out", WORK / "close.jsonl",
         {**CLOSE_UP_SETTINGS, **(settings or {})})
    print("| face height | known faces covered | held-apart faces covered | frame changed |")
    print("| ---: | ---: | ---: | ---: |")
    for size in (900, 1400, 2000):
        counts, shares = {}, []
        for label, s, path, box in todo:
            if s != size:
                continue
            out = WORK / "close_out" / path.name
            ok = covered(luminance(path), luminance(out), box)
            hit, total = counts.get(label, (0, 0))
            counts[label] = (hit + ok, total + 1)
            shares.append(changed(path, out, [])[0])
        cells = " | ".join(f"{h}/{t}" for h, t in (counts[label] for label, _ in sets))
        print(f"| {size} px | {cells} | {np.mean(shares):.1f} % |")


if __name__ == "__main__":
    main()
    print()
    close_ups()
