"""The LPIPS metric: a drop-in replacement for the reference ``lpips.LPIPS``.

Data flow (one pair)::

    images in [-1, 1]           (N, 3, H, W)
    -> ScalingLayer (v0.1)      (N, 3, H, W)
    -> trunk taps               [(N, C_k, H_k, W_k)] k = 1..L
    -> unit-normalise channels  each feature vector scaled to length 1
    -> squared difference       (N, C_k, H_k, W_k)
    -> linear 1x1 weights >= 0  (N, 1, H_k, W_k)
    -> spatial mean             (N, 1, 1, 1)
    -> sum over the L layers    (N, 1, 1, 1)   the distance
"""
from __future__ import annotations

import functools
import os
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import checks
from .backbones import Trunk, canonical_net
from .weights import linear_weights_path, load_linear_state

EPS = 1e-10


def normalize_tensor(feat: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Scale each spatial position's channel vector to unit length.

    Same forward values as the reference ``x / (sqrt(sum x^2) + eps)``, but the
    norm comes from ``torch.linalg.vector_norm``, whose gradient at a zero vector
    is 0 instead of NaN (d sqrt(s)/ds is infinite at 0 and 0 * inf = NaN). Zero
    feature vectors are common deep in a trunk for dark or flat images.

    Args:
        feat: (N, C, H, W) features.
    Returns:
        (N, C, H, W), each (n, :, h, w) vector of norm ~1 (or 0 where it was 0).
    """
    norm = torch.linalg.vector_norm(feat, dim=1, keepdim=True)  # (N, 1, H, W)
    return feat / (norm + eps)


def spatial_average(x: torch.Tensor, keepdim: bool = True) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, 1, 1) mean over the image plane."""
    return x.mean([2, 3], keepdim=keepdim)


def upsample(x: torch.Tensor, out_hw: Sequence[int]) -> torch.Tensor:
    """Bilinear resize of a (N, C, h, w) map to ``out_hw`` (as the reference)."""
    return F.interpolate(x, size=tuple(out_hw), mode="bilinear", align_corners=False)


class ScalingLayer(nn.Module):
    """Map [-1, 1] images to the statistics the ImageNet trunks were trained on (v0.1)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188])[None, :, None, None])
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450])[None, :, None, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.shift) / self.scale


class NetLinLayer(nn.Module):
    """Learned non-negative per-channel weights: dropout (training only) then a 1x1 conv to 1 channel."""

    def __init__(self, chn_in: int, chn_out: int = 1, use_dropout: bool = False):
        super().__init__()
        layers: list[nn.Module] = [nn.Dropout()] if use_dropout else []
        layers.append(nn.Conv2d(chn_in, chn_out, 1, stride=1, padding=0, bias=False))
        self.model = nn.Sequential(*layers)

    @property
    def conv(self) -> nn.Conv2d:
        return self.model[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class LPIPS(nn.Module):
    """Learned Perceptual Image Patch Similarity (Zhang et al., CVPR 2018).

    Same constructor and ``forward`` as ``lpips.LPIPS`` 0.1.4, same state-dict
    keys, same outputs (within 1e-5), but: weights load without internet,
    gradients stay finite on all-zero features, inputs are checked, and the
    per-layer weighting is fused into a weighted channel mean when no dropout
    is active (exact: the 1x1 conv has no bias, so it commutes with the mean).

    Args:
        pretrained: load the calibrated linear weights (v``version``) or ``model_path``.
        net: 'alex', 'vgg' or 'squeeze' (also 'alexnet', 'vgg16', 'squeezenet').
        version: '0.1' (current) or '0.0' (first release, no input scaling).
        lpips: True for learned linear weights; False for the "net" baseline
            (every channel weighted 1).
        spatial: return a (N, 1, H, W) distance map instead of (N, 1, 1, 1).
        pnet_rand: random trunk instead of ImageNet weights.
        pnet_tune: make the trunk trainable.
        use_dropout: dropout before each linear layer (active in train mode only).
        model_path: linear weights to load instead of the shipped ones
            (reference ``.pth`` format, or ``.safetensors``).
        eval_mode: put the model in eval mode.
        verbose: print a one-line summary, as the reference does.

    Example:
        >>> import torch, lpips_core
        >>> model = lpips_core.LPIPS(net='alex')
        >>> x, y = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
        >>> model(x, y).shape
        torch.Size([2, 1, 1, 1])
    """

    def __init__(self, pretrained: bool = True, net: str = "alex", version: str = "0.1",
                 lpips: bool = True, spatial: bool = False, pnet_rand: bool = False,
                 pnet_tune: bool = False, use_dropout: bool = True,
                 model_path: str | os.PathLike | None = None, eval_mode: bool = True,
                 verbose: bool = False):
        super().__init__()
        self.pnet_type = canonical_net(net)
        version = str(version).lstrip("v")
        if version not in ("0.0", "0.1"):
            raise ValueError(f"version={version!r} is not supported; choose '0.1' or '0.0'")
        self.version = version
        self.pnet_tune = pnet_tune
        self.pnet_rand = pnet_rand
        self.spatial = spatial
        self.lpips = lpips
        self.scaling_layer = ScalingLayer()
        self.net = Trunk(self.pnet_type, pretrained=not pnet_rand, requires_grad=pnet_tune)
        self.chns = self.net.channels
        self.L = len(self.chns)
        self._range_warned = False
        if verbose:
            print(f"Setting up [{'LPIPS' if lpips else 'baseline'}] perceptual loss: trunk "
                  f"[{self.pnet_type}], v[{version}], spatial [{'on' if spatial else 'off'}]")

        if lpips:
            lins = [NetLinLayer(c, use_dropout=use_dropout) for c in self.chns]
            for k, lin in enumerate(lins):
                self.add_module(f"lin{k}", lin)
            self.lins = nn.ModuleList(lins)  # registered twice, as in the reference's state dict
            if pretrained:
                path = model_path if model_path is not None else linear_weights_path(self.pnet_type, version)
                if verbose:
                    print(f"Loading model from: {path}")
                self.load_linear_weights(path)
        if eval_mode:
            self.eval()

    # ------------------------------------------------------------------ weights
    def load_linear_weights(self, path: str | os.PathLike) -> None:
        """Load linear weights in the reference format (keys ``lin<k>.model.<i>.weight``).

        Unlike the reference (``strict=False``), a file that does not provide
        every layer with the right shape is an error naming the file.
        """
        state = load_linear_state(path)
        for k, lin in enumerate(self.lins):
            candidates = [f"lin{k}.model.1.weight", f"lin{k}.model.0.weight",
                          f"lins.{k}.model.1.weight", f"lins.{k}.model.0.weight"]
            key = next((c for c in candidates if c in state), None)
            if key is None:
                raise ValueError(f"{path}: no weights for layer {k} (expected key 'lin{k}.model.1.weight'); "
                                 f"is this an LPIPS linear-weights file for net='{self.pnet_type}'?")
            weight = state[key]
            if weight.shape != lin.conv.weight.shape:
                raise ValueError(f"{path}: layer {k} weights have shape {tuple(weight.shape)}, "
                                 f"net='{self.pnet_type}' needs {tuple(lin.conv.weight.shape)}")
            with torch.no_grad():
                lin.conv.weight.copy_(weight)

    def linear_state_dict(self) -> dict[str, torch.Tensor]:
        """The linear weights under the reference's keys (``lin<k>.model.1.weight``)."""
        return {f"lin{k}.model.1.weight": lin.conv.weight.detach().clone()
                for k, lin in enumerate(self.lins)}

    # ------------------------------------------------------------------ forward
    def _check_one(self, x: torch.Tensor, name: str, normalize: bool) -> torch.Tensor:
        x = checks.as_image_batch(x, name)
        if not self._range_warned and checks.out_of_range(x, normalize):
            checks.warn_range(normalize, float(x.min()), float(x.max()))
            self._range_warned = True
        return x

    def _scale(self, x: torch.Tensor, normalize: bool) -> torch.Tensor:
        """Checked images -> trunk input: dtype, [0,1]->[-1,1] if ``normalize``, v0.1 scaling."""
        x = x.to(self.scaling_layer.shift.dtype)
        if normalize:  # [0, 1] -> [-1, 1]
            x = 2 * x - 1
        return self.scaling_layer(x) if self.version == "0.1" else x

    def _trunk_pair(self, in0: torch.Tensor, in1: torch.Tensor):
        """Run both inputs through the trunk, in one call when their batches match."""
        if in0.shape[0] == in1.shape[0] and in0.shape[0] > 0:
            taps = self.net(torch.cat([in0, in1]))
            n = in0.shape[0]
            return [t[:n] for t in taps], [t[n:] for t in taps]
        return self.net(in0), self.net(in1)

    def _dropout_active(self) -> bool:
        return self.lpips and self.training and any(
            isinstance(m, nn.Dropout) and m.p > 0 for lin in self.lins for m in lin.model)

    # ------------------------------------------------------------------ feature API
    def features(self, x: torch.Tensor, normalize: bool = False) -> list[torch.Tensor]:
        """Unit-normalised trunk features of one image batch, for reuse across comparisons.

        Args:
            x: (N, 3, H, W) or (3, H, W) images in [-1, 1] ([0, 1] with ``normalize``).
        Returns:
            one (N, C_k, H_k, W_k) tensor per tap, each channel vector of unit length.
        """
        x = self._check_one(x, "x", normalize)
        checks.check_pair(x, x, self.pnet_type)
        return [normalize_tensor(t) for t in self.net(self._scale(x, normalize))]

    def distance_from_features(self, feats0: list[torch.Tensor], feats1: list[torch.Tensor],
                               out_hw: Sequence[int] | None = None,
                               retPerLayer: bool = False):
        """Distance between two sets of ``features()`` outputs (batches broadcast as in ``forward``).

        Args:
            feats0, feats1: lists from :meth:`features`.
            out_hw: image size, needed only when ``spatial=True``.
        Returns:
            (N, 1, 1, 1) distances ((N, 1, H, W) with ``spatial``); with
            ``retPerLayer`` the tuple (total, [per-layer]).
        """
        if self.spatial and out_hw is None:
            raise ValueError("distance_from_features needs out_hw=(H, W) when spatial=True")
        res = self._layer_distances(feats0, feats1, out_hw)
        val = res[0]
        for r in res[1:]:
            val = val + r
        return (val, res) if retPerLayer else val

    def _layer_distances(self, feats0: list[torch.Tensor], feats1: list[torch.Tensor],
                         out_hw: Sequence[int] | None) -> list[torch.Tensor]:
        """Per-layer distances from normalised features: (N, 1, 1, 1) each, or (N, 1, H, W) if spatial."""
        res = []
        fused = not self.spatial and not self._dropout_active()
        for k in range(self.L):
            diff = (feats0[k] - feats1[k]) ** 2  # (N, C, h, w)
            if self.lpips and fused:
                w = self.lins[k].conv.weight.view(1, -1)  # (1, C)
                res.append((spatial_average(diff, keepdim=False) * w).sum(1).view(-1, 1, 1, 1))
            elif self.lpips:
                weighted = self.lins[k](diff)  # (N, 1, h, w)
                res.append(upsample(weighted, out_hw) if self.spatial else spatial_average(weighted))
            else:
                summed = diff.sum(dim=1, keepdim=True)
                res.append(upsample(summed, out_hw) if self.spatial else spatial_average(summed))
        return res

    # ------------------------------------------------------------------ forward
    def forward(self, in0: torch.Tensor, in1: torch.Tensor, retPerLayer: bool = False,
                normalize: bool = False):
        """Distance between two image batches.

        Args:
            in0, in1: (N, 3, H, W) or (3, H, W) images in [-1, 1] ([0, 1] with
                ``normalize=True``); 1-channel images are repeated to RGB.
            retPerLayer: also return the list of per-layer distances.
            normalize: inputs are in [0, 1].
        Returns:
            (N, 1, 1, 1) distances ((N, 1, H, W) maps with ``spatial=True``),
            and with ``retPerLayer`` the tuple (total, [per-layer]).
        """
        in0 = self._check_one(in0, "in0", normalize)
        in1 = self._check_one(in1, "in1", normalize)
        checks.check_pair(in0, in1, self.pnet_type)
        taps0, taps1 = self._trunk_pair(self._scale(in0, normalize), self._scale(in1, normalize))
        feats0 = [normalize_tensor(t) for t in taps0]
        feats1 = [normalize_tensor(t) for t in taps1]
        return self.distance_from_features(feats0, feats1, in0.shape[2:], retPerLayer)


@functools.lru_cache(maxsize=8)
def _cached_model(net: str, version: str, device: str) -> LPIPS:
    return LPIPS(net=net, version=version).to(device).eval().requires_grad_(False)


def distance(img0: torch.Tensor, img1: torch.Tensor, net: str = "alex", version: str = "0.1",
             normalize: bool = False, device: str | torch.device | None = None) -> torch.Tensor:
    """Functional LPIPS: ``(N,)`` distances between two image batches.

    The model is built once per (net, version, device) and reused; its weights
    are frozen, so gradients flow only to inputs that require them.

    Args:
        img0, img1: (N, 3, H, W) or (3, H, W) images in [-1, 1] ([0, 1] with ``normalize``).
        net: 'alex', 'vgg' or 'squeeze'.
        device: where to run; defaults to ``img0``'s device.
    Returns:
        (N,) tensor of distances.
    """
    device = torch.device(device) if device is not None else img0.device
    model = _cached_model(canonical_net(net), str(version).lstrip("v"), str(device))
    return model(img0.to(device), img1.to(device), normalize=normalize).flatten()
