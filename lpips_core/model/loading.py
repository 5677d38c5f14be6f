"""An LPIPS model from a file: trained checkpoints and linear-weights files of any of the usual layouts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import cast

import torch
from safetensors.torch import load_file

from .lpips import LPIPS, NetLinLayer
from .nets import canonical_net, net_with_channels

_LAYER_KEYS = ("lin{k}.model.1.weight", "lin{k}.model.0.weight")


def _layer_key(state: dict[str, torch.Tensor], k: int) -> str | None:
    return next((key.format(k=k) for key in _LAYER_KEYS if key.format(k=k) in state), None)


def _infer_net(state: dict[str, torch.Tensor]) -> str:
    """alex / vgg / squeeze from the linear layers' input channels."""
    chans = []
    for k in range(7):
        key = _layer_key(state, k)
        if key is None:
            break
        chans.append(int(state[key].shape[1]))
    return net_with_channels(chans)


def load_lpips_checkpoint(path: str | os.PathLike[str], net: str | None = None, version: str | None = None) -> LPIPS:
    """An ``LPIPS`` model from a trained checkpoint or a linear-weights file.

    Accepts the reference's linear-weights ``.pth`` / ``.safetensors`` (keys
    ``lin<k>.model.1.weight``) and checkpoints that nest a model state dict
    (under 'model', 'state_dict', 'lpips', ...). The trunk is read from the
    layer widths (and must agree with ``net`` and any 'net' / 'pnet_type' entry);
    the version from a 'version' entry (e.g. the training config), else ``version``,
    else '0.1'. Training checkpoints of :mod:`lpips_core.train` (``config`` + ``model``)
    load as is. A state dict that carries trunk weights (``net.slice*``: 'tune' or
    'scratch' training) has them loaded too.

    Returns:
        the model in eval mode.
    Raises:
        FileNotFoundError, or ValueError naming the file when it holds no LPIPS weights.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    try:
        obj = (
            load_file(str(path))
            if path.suffix == ".safetensors"
            else torch.load(path, map_location="cpu", weights_only=True)
        )
    except Exception as exc:  # unreadable or not a tensor file
        raise ValueError(f"{path}: not a readable checkpoint ({exc})") from exc
    meta_net: str | None = None  # what the file says of itself, if anything
    meta_version: str | None = None
    state: dict[str, torch.Tensor] | None = None  # the dict holding lin0.*
    queue: list[object] = [obj]
    while queue and state is None:  # breadth-first search for the dict holding lin0.*
        cur = queue.pop(0)
        if not isinstance(cur, dict):
            continue
        for field in ("net", "pnet_type", "arch"):
            if meta_net is None and isinstance(cur.get(field), str):
                meta_net = cur[field]
        if meta_version is None and isinstance(cur.get("version"), (str, float)):
            meta_version = str(cur["version"])  # LPIPS() reads the spelling (model.versions)
        if any(isinstance(k, str) and k.startswith("lin0.") for k in cur):
            state = cur
        else:
            queue.extend(v for v in cur.values() if isinstance(v, dict))
    if state is None:
        raise ValueError(f"{path}: no LPIPS linear weights found (expected keys like 'lin0.model.1.weight')")
    inferred = _infer_net(state)
    for claimed in (meta_net, net):
        if claimed is not None and canonical_net(claimed) != inferred:
            raise ValueError(f"{path}: holds {inferred} linear weights, not {canonical_net(claimed)}")
    net = inferred
    trunk = {k[len("net.") :]: v for k, v in state.items() if k.startswith("net.")}
    version = meta_version or version or "0.1"
    model = LPIPS(net=net, version=version, pretrained=False, pnet_rand=bool(trunk))
    model.weights_source = os.path.basename(str(path))  # for model.signature()
    if trunk:
        model.net.load_state_dict(trunk)
        model.trunk_source = model.weights_source
    for k, lin in enumerate(model.lins):
        conv = cast(NetLinLayer, lin).conv  # an nn.ModuleList types its items as Module
        key = _layer_key(state, k)
        if key is None or state[key].shape != conv.weight.shape:
            raise ValueError(f"{path}: layer {k} weights missing or of the wrong shape for net='{net}'")
        with torch.no_grad():
            conv.weight.copy_(state[key])
    return model.eval()
