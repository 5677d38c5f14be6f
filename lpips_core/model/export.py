"""Deployment formats for an LPIPS model: TorchScript, ONNX, dynamic int8.

* ``torch.jit.script(model)`` works on an :class:`~lpips_core.LPIPS` instance:
  ``LPIPS.__prepare_scriptable__`` hands TorchScript
  :class:`~lpips_core.model.scriptable.ScriptableLPIPS`, a twin that shares the
  model's weights and computes the same distances. ``torch.jit.trace(model, (x, y))``
  traces the ordinary forward (value checks are skipped while tracing).
* :func:`export_onnx` writes an ONNX graph with a dynamic batch size and image
  size; :func:`onnx_session` / :func:`onnx_distance` run it with onnxruntime.
* :func:`export_browser_models` writes the graphs the book's in-browser
  playground runs with onnxruntime-web: :class:`DistanceAndMap` gives the
  distance and the spatial map from one trunk pass.
* :func:`quantize_dynamic` quantises the trunk's convolutions to int8 weights
  with int8 activations quantised on the fly (PyTorch); :func:`quantize_onnx`
  does the same to an ONNX file with onnxruntime. The error each costs is
  measured in benchmarks/bench_inference.py and tests/test_export.py.

Note: ``torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, ...)``
runs on an LPIPS model but changes nothing: LPIPS has no ``nn.Linear`` (its
"linear" layers are 1x1 convolutions, and they are <0.1% of the work). Use
:func:`quantize_dynamic` here instead.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..files import atomic_path
from .lpips import LPIPS
from .nets import MIN_INPUT_SIZE

# --------------------------------------------------------------------------- ONNX
# optimize=False in both exports: onnxscript's optimizer folds ``norm + 1e-10`` to ``norm``
# (the constant is "close to 0"), and a zero feature vector then gives 0/0 = NaN in
# onnxruntime (alex at 200x200 did; tests/test_playground.py checks that size).


def export_onnx(
    model: LPIPS,
    path: str | os.PathLike[str],
    example_size: tuple[int, int] = (64, 64),
    opset_version: int = 18,
    dynamic: bool = True,
) -> Path:
    """Write ``model``'s forward as an ONNX graph (inputs ``in0``, ``in1``; output ``distance``).

    Args:
        model: an LPIPS model (exported in eval mode; value checks are not part of the graph).
        path: destination ``.onnx`` file, written atomically (temporary file, then rename).
        example_size: (H, W) of the example inputs used for tracing.
        opset_version: ONNX opset.
        dynamic: batch size, height and width are free dimensions (the two inputs
            share them); otherwise the graph is fixed to batch 2 at ``example_size``.
    Returns:
        the path written.
    """
    path = Path(path)
    was_training = model.training
    model.eval()
    h, w = example_size
    x0, x1 = torch.rand(2, 3, h, w) * 2 - 1, torch.rand(2, 3, h, w) * 2 - 1
    dynamic_shapes = None
    if dynamic:
        low = MIN_INPUT_SIZE[model.pnet_type]
        batch = torch.export.Dim("batch", min=1, max=4096)
        height = torch.export.Dim("height", min=low, max=8192)
        width = torch.export.Dim("width", min=low, max=8192)
        axes = {0: batch, 2: height, 3: width}
        dynamic_shapes = {"in0": axes, "in1": axes}
    try:
        with atomic_path(path) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (x0, x1),
                str(tmp),
                input_names=["in0", "in1"],
                output_names=["distance"],
                opset_version=opset_version,
                dynamo=True,
                dynamic_shapes=dynamic_shapes,
                external_data=False,
                verbose=False,
                optimize=False,
            )
    finally:
        model.train(was_training)
    return path


class DistanceAndMap(nn.Module):
    """An LPIPS model's distance and spatial map from one trunk pass (the playground's graph).

    ``forward(in0, in1)`` takes two (N, 3, H, W) float32 batches in [-1, 1] and
    returns ``distance`` (N, 1, 1, 1), equal to ``model(in0, in1)``, and ``map``
    (N, 1, H, W), equal to the reference's ``spatial=True`` output: each layer's
    1x1-weighted squared differences, bilinearly resized to (H, W) and added.
    The map's mean is close to, not exactly, the distance (bilinear resizing
    moves weight at the borders).
    """

    def __init__(self, model: LPIPS):
        super().__init__()
        self.model = model.eval()

    def forward(self, in0: torch.Tensor, in1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, h, w = in0.shape[0], in0.shape[2], in0.shape[3]
        feats = self.model.features(torch.cat([in0, in1]))  # one trunk call, unit features
        distance: torch.Tensor | None = None
        spatial: torch.Tensor | None = None
        for k, f in enumerate(feats):
            weights = self.model.channel_weights(k, f).view(1, -1, 1, 1)
            layer = ((f[:n] - f[n:]).square() * weights).sum(1, keepdim=True)  # (N, 1, h_k, w_k)
            mean = layer.mean((2, 3), keepdim=True)
            up = F.interpolate(layer, size=(h, w), mode="bilinear", align_corners=False)
            distance = mean if distance is None else distance + mean
            spatial = up if spatial is None else spatial + up
        assert distance is not None and spatial is not None  # every trunk has taps
        return distance, spatial


def export_distance_and_map(model: LPIPS, path: str | os.PathLike[str], opset_version: int = 18) -> Path:
    """Write :class:`DistanceAndMap` of ``model`` as ONNX (inputs ``in0``, ``in1``; outputs
    ``distance`` (N, 1, 1, 1) and ``map`` (N, 1, H, W)); batch, height and width are free.

    Returns:
        the path written (atomically).
    """
    path = Path(path)
    graph = DistanceAndMap(model)
    low = MIN_INPUT_SIZE[model.pnet_type]
    size = max(low, 64)
    x0, x1 = torch.rand(1, 3, size, size) * 2 - 1, torch.rand(1, 3, size, size) * 2 - 1
    axes = {
        0: torch.export.Dim("batch", min=1, max=64),
        2: torch.export.Dim("height", min=low, max=8192),
        3: torch.export.Dim("width", min=low, max=8192),
    }
    with atomic_path(path, suffix=".onnx") as tmp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph,
            (x0, x1),
            str(tmp),
            input_names=["in0", "in1"],
            output_names=["distance", "map"],
            opset_version=opset_version,
            dynamo=True,
            dynamic_shapes={"in0": axes, "in1": axes},
            external_data=False,
            verbose=False,
            optimize=False,
        )
    return path


#: Largest image side the playground accepts: a 1024x1024 alex comparison keeps
#: onnxruntime-web's WebAssembly heap well under its 4 GiB limit.
BROWSER_MAX_SIDE = 1024


def export_browser_models(
    out_dir: str | os.PathLike[str],
    nets: tuple[str, ...] = ("alex", "squeeze"),
    version: str = "0.1",
    int8: bool = False,
) -> dict[str, Any]:
    """Export the playground's fp32 graphs and a manifest (``models.json``) into ``out_dir``.

    With ``int8``, each trunk also gets a calibrated static int8 graph (:func:`quantize_onnx_static`)
    listed as ``<net>-int8`` (the page offers it like another trunk); its error and speed in
    the browser are measured by ``benchmarks/bench_browser_int8.py``.

    A trunk whose pretrained weights are not available here is left out of the
    manifest with the reason (the page then offers only the others).

    Returns:
        the manifest: ``{"version", "max_side", "max_pixels" (the page's pixel budget, checked
        from each file's header before decoding), "nets": {net: {"file", "min_side", "bytes"}},
        "missing": {net: reason}}``.
    """
    from .weights import WeightsError

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {
        "version": version,
        "max_side": BROWSER_MAX_SIDE,
        "max_pixels": BROWSER_MAX_SIDE**2,
        "nets": {},
        "missing": {},
    }
    for net in nets:
        try:
            model = LPIPS(net=net, version=version, verbose=False)
        except WeightsError as err:
            manifest["missing"][net] = str(err).splitlines()[0]
            continue
        path = export_distance_and_map(model, out / f"lpips_{net}.onnx")
        manifest["nets"][net] = {"file": path.name, "min_side": MIN_INPUT_SIZE[net], "bytes": path.stat().st_size}
        if int8:
            qpath = quantize_onnx_static(path, out / f"lpips_{net}_int8.onnx")
            manifest["nets"][f"{net}-int8"] = {
                "file": qpath.name,
                "min_side": MIN_INPUT_SIZE[net],
                "bytes": qpath.stat().st_size,
                "precision": "int8",
            }
    with atomic_path(out / "models.json") as tmp:
        tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def onnx_session(path: str | os.PathLike[str], threads: int | None = None) -> Any:
    """An onnxruntime CPU session for an exported LPIPS graph.

    Args:
        threads: intra-op threads (None: onnxruntime's default).
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    # no busy-waiting between calls: spinning threads would steal the CPU from whatever runs next
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads is not None:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def onnx_distance(session: Any, in0: torch.Tensor, in1: torch.Tensor) -> torch.Tensor:
    """Run an exported LPIPS graph: (N, 3, H, W) float32 tensors in [-1, 1] -> (N, 1, 1, 1)."""
    feeds = {
        "in0": in0.detach().float().contiguous().cpu().numpy(),
        "in1": in1.detach().float().contiguous().cpu().numpy(),
    }
    return torch.from_numpy(session.run(None, feeds)[0])


def quantize_onnx(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> Path:
    """Dynamic int8 quantisation of an exported LPIPS graph with onnxruntime.

    Convolution and MatMul weights become int8 constants; activations are
    quantised per call from their observed range (no calibration data).

    Returns:
        the path written (atomically).
    """
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize_dynamic as ort_quantize_dynamic

    dst = Path(dst)
    hint = _DropOrtPreprocessHint()
    logging.getLogger().addFilter(hint)
    try:
        with atomic_path(dst, suffix=".onnx") as tmp:
            ort_quantize_dynamic(str(src), str(tmp), weight_type=QuantType.QUInt8)
    finally:
        logging.getLogger().removeFilter(hint)
    return dst


def quantize_onnx_static(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    n_images: int = 32,
    size: int = 128,
    keep_first_conv: bool = True,
) -> Path:
    """Calibrated static int8 quantisation of an exported LPIPS graph with onnxruntime (QDQ format).

    The same recipe as :class:`~lpips_core.model.precision.Int8Trunk`: int8 weights with one scale
    per output channel, uint8 activations with ranges observed on
    :func:`~lpips_core.data.photos.calibration_images` (pairs: a crop and its distorted
    version), only the convolutions quantised, the first convolution left float32
    (``keep_first_conv``), and no requantisation of a convolution's output, so the taps reach
    the float32 normalisation unrounded. Works on graphs with inputs ``in0``, ``in1``
    (:func:`export_onnx`, :func:`export_distance_and_map`).

    Returns:
        the path written (atomically).
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    from ..data.photos import calibration_images  # the layer contract's exception: data

    images = calibration_images(n_images, size).numpy()

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(
                [{"in0": images[i : i + 1], "in1": images[i + 1 : i + 2]} for i in range(0, len(images) - 1, 2)]
            )

        def get_next(self) -> dict[str, Any] | None:
            return next(self.items, None)

    graph = onnx.load(str(src), load_external_data=False).graph
    convs = [node.name for node in graph.node if node.op_type == "Conv"]
    dst = Path(dst)
    hint = _DropOrtPreprocessHint()
    logging.getLogger().addFilter(hint)
    try:
        with atomic_path(dst, suffix=".onnx") as tmp:
            quantize_static(
                str(src),
                str(tmp),
                Reader(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                op_types_to_quantize=["Conv"],
                calibrate_method=CalibrationMethod.MinMax,
                nodes_to_exclude=convs[:1] if keep_first_conv else [],
                extra_options={"OpTypesToExcludeOutputQuantization": ["Conv"]},
            )
    finally:
        logging.getLogger().removeFilter(hint)
    return dst


class _DropOrtPreprocessHint(logging.Filter):
    """onnxruntime logs "Please consider to run pre-processing before quantization" on the
    root logger for every graph; shape inference adds nothing to LPIPS' convolutions."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


# --------------------------------------------------------------------------- int8 (PyTorch)
def quantize_dynamic(model: LPIPS, dtype: torch.dtype = torch.qint8) -> LPIPS:
    """A copy of ``model`` whose trunk convolutions run in int8 (dynamic quantisation).

    Weights are quantised once; activations are quantised on the fly from their
    range, so no calibration data is needed. The 1x1 linear weights, the
    normalisation and the reduction stay float32. Inference only, CPU (fbgemm).
    PyTorch marks this API deprecated and warns that dynamic int8 convolution
    is not very accurate; its warnings are silenced here and the error it costs
    is measured instead (benchmarks/bench_inference.py).

    Args:
        model: a float LPIPS model (left unchanged).
        dtype: torch.qint8.
    Returns:
        a new LPIPS model in eval mode.
    """
    from torch.ao.nn.quantized import dynamic as nnqd
    from torch.ao.quantization import default_dynamic_qconfig
    from torch.ao.quantization import quantize_dynamic as ao_quantize_dynamic

    qmodel = copy.deepcopy(model).eval().cpu()
    qmodel.channels_last = False  # quantized convolutions take NCHW float input
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qmodel.net = ao_quantize_dynamic(  # type: ignore[no-untyped-call]  # unannotated in torch
            qmodel.net, {nn.Conv2d: default_dynamic_qconfig}, dtype=dtype, mapping={nn.Conv2d: nnqd.Conv2d}
        )
    return qmodel
