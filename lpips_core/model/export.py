"""Deployment formats for an LPIPS model: TorchScript, ONNX, dynamic int8.

* ``torch.jit.script(model)`` works on an :class:`~lpips_core.LPIPS` instance:
  ``LPIPS.__prepare_scriptable__`` hands TorchScript
  :class:`~lpips_core.model.scriptable.ScriptableLPIPS`, a twin that shares the
  model's weights and computes the same distances. ``torch.jit.trace(model, (x, y))``
  traces the ordinary forward (value checks are skipped while tracing).
* :func:`export_onnx` writes an ONNX graph with a dynamic batch size and image
  size; :func:`onnx_session` / :func:`onnx_distance` run it with onnxruntime.
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
import logging
import os
import warnings
from pathlib import Path
from typing import Optional, Tuple

import torch
import torch.nn as nn

from ..files import atomic_path
from .lpips import LPIPS
from .nets import MIN_INPUT_SIZE


# --------------------------------------------------------------------------- ONNX
def export_onnx(model: LPIPS, path: str | os.PathLike, example_size: Tuple[int, int] = (64, 64),
                opset_version: int = 18, dynamic: bool = True) -> Path:
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
            torch.onnx.export(model, (x0, x1), str(tmp), input_names=["in0", "in1"], output_names=["distance"],
                              opset_version=opset_version, dynamo=True, dynamic_shapes=dynamic_shapes,
                              external_data=False, verbose=False)
    finally:
        model.train(was_training)
    return path


def onnx_session(path: str | os.PathLike, threads: Optional[int] = None):
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


def onnx_distance(session, in0: torch.Tensor, in1: torch.Tensor) -> torch.Tensor:
    """Run an exported LPIPS graph: (N, 3, H, W) float32 tensors in [-1, 1] -> (N, 1, 1, 1)."""
    feeds = {"in0": in0.detach().float().contiguous().cpu().numpy(),
             "in1": in1.detach().float().contiguous().cpu().numpy()}
    return torch.from_numpy(session.run(None, feeds)[0])


def quantize_onnx(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
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
        qmodel.net = ao_quantize_dynamic(qmodel.net, {nn.Conv2d: default_dynamic_qconfig},
                                         dtype=dtype, mapping={nn.Conv2d: nnqd.Conv2d})
    return qmodel
