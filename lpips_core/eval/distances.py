"""The one interface every distance is scored through.

:class:`DistanceFunction` and :func:`make_distance`: LPIPS (official weights, the
"net" baseline, a trained checkpoint), traditional metrics and DISTS behind
``features(x)`` + ``from_features(f0, f1)``, so evaluation computes each image's
features once (:mod:`.collect`, :mod:`.mos`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..model import LPIPS, NETS, canonical_net, load_lpips_checkpoint
from ..model.ranges import parse_input_range
from ..version import __version__
from . import baselines
from .registry import list_metrics, metric_info


# --------------------------------------------------------------------------- distance functions
class DistanceFunction:
    """One interface for everything that can be scored: LPIPS, the "net" baseline,
    a trained checkpoint, traditional metrics and DISTS.

    A distance function splits into two steps so evaluation can compute each
    image's representation once and reuse it in every pair it appears in (the
    reference patch of a 2AFC triplet feeds both d0 and d1; a LIVE reference
    feeds all its JPEG versions):

    * ``features(x)``: (N, 3, H, W) images in [-1, 1] -> a list of tensors whose
      first dimension is N (LPIPS: unit-normalised trunk taps; pixel metrics:
      the images themselves);
    * ``from_features(f0, f1)``: -> (N,) distances, lower = more similar
      (PSNR is turned into -PSNR, SSIM into 1 - SSIM).

    ``fn(x0, x1)`` does both. Attributes: ``name`` (short id used in tables),
    ``label`` (axis label) and ``kind`` ('lpips', 'net', 'checkpoint',
    'traditional' or 'learned').
    """

    name: str = "distance"
    label: str = "distance"
    kind: str = "traditional"

    def __init__(self, device: str | torch.device = "cpu"):
        self.device = torch.device(device)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [x.to(self.device)]

    def from_features(self, f0: list[torch.Tensor], f1: list[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def feature_key(self):
        """Functions with equal (non-None) keys compute identical features, so an evaluation
        can compute them once for all (e.g. 'lpips-alex', 'net-alex' and a lin-trained alex
        share the ImageNet AlexNet taps)."""
        return None

    def __call__(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        """(N,) distances between two (N, 3, H, W) batches in [-1, 1]."""
        return self.from_features(self.features(x0), self.features(x1))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    def signature(self, size: str | int = "native") -> str:
        """How this metric's numbers were computed (see :meth:`lpips_core.model.LPIPS.signature`)."""
        return f"{self.name}|range:-1,1|size:{size}|lpips_core:{__version__}"


def split_features(feats: list[torch.Tensor], sizes: list[int]) -> list[list[torch.Tensor]]:
    """Split a features list computed on a concatenated batch back into its parts."""
    parts = [t.split(sizes) for t in feats]
    return [[p[i] for p in parts] for i in range(len(sizes))]


class LPIPSDistance(DistanceFunction):
    """An ``lpips_core.LPIPS`` model (official, "net" baseline or trained) as a distance function.

    Args:
        model: the model; moved to ``device`` and put in eval mode.
        freeze: also stop its parameters requiring gradients (False for a model that is
            still being trained, e.g. the trainer's validation; collection runs without
            gradients either way).
    """

    def __init__(
        self,
        model: LPIPS,
        name: str | None = None,
        kind: str | None = None,
        device: str | torch.device = "cpu",
        freeze: bool = True,
    ):
        super().__init__(device)
        if model.spatial:
            raise ValueError("evaluation needs a model with spatial=False")
        self.model = model.to(self.device).eval()
        # evaluation feeds images decoded from files, [-1, 1] for sure: no [0, 1] heuristic
        self.model.input_range = parse_input_range("-1,1")
        if freeze:
            self.model.requires_grad_(False)
        self.kind = kind or ("lpips" if model.lpips else "net")
        self.name = name or f"{'lpips' if model.lpips else 'net'}-{model.pnet_type}"
        self.label = f"{self.name} distance"

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.model.features(x.to(self.device))

    def from_features(self, f0, f1) -> torch.Tensor:
        return self.model.distance_from_features(f0, f1).flatten()

    def signature(self, size: str | int = "native") -> str:
        return self.model.signature(size=size)

    def feature_key(self):
        if self.model.pnet_rand or self.model.pnet_tune:  # a trunk of its own
            return None
        return ("imagenet-trunk", self.model.pnet_type, self.model.version, str(self.device))


class PixelDistance(DistanceFunction):
    """A traditional metric from :mod:`.baselines` (psnr, ssim, ms_ssim, l1, l2, l2_lab)."""

    LABELS = {name: metric_info(name).label for name in list_metrics("traditional")}

    def __init__(self, name: str, device: str | torch.device = "cpu"):
        if name not in self.LABELS:
            raise ValueError(f"unknown traditional metric {name!r}; choose from {sorted(self.LABELS)}")
        super().__init__(device)
        self.name, self.label, self.kind = name, self.LABELS[name], "traditional"
        self._fn = baselines.METRIC_FUNCTIONS[name]

    def from_features(self, f0, f1) -> torch.Tensor:
        return baselines.as_distance(self.name, self._fn(f0[0], f1[0])).flatten()

    def feature_key(self):
        return ("pixels", str(self.device))


class DISTSDistance(DistanceFunction):
    """DISTS (piq, offline weights) as a distance function; VGG16 features computed once per image."""

    name, label, kind = "dists", "DISTS", "learned"

    def __init__(self, device: str | torch.device = "cpu"):
        super().__init__(device)
        self.model = baselines.load_dists(str(self.device))

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return baselines.dists_features(self.model, x.to(self.device))

    def from_features(self, f0, f1) -> torch.Tensor:
        return baselines.dists_from_features(self.model, f0, f1).flatten()


TRADITIONAL = tuple(list_metrics("traditional"))


def make_metric(
    name: str, net: str = "alex", version: str = "0.1", device: str | torch.device = "cpu"
) -> DistanceFunction:
    """The distance function of a metric in :func:`~lpips_core.eval.registry.list_metrics` (or 'lpips' /
    'net' for ``net``, or a checkpoint path): the registry's public name for :func:`make_distance`.
    """
    return make_distance(name, net=net, version=version, device=device)


def make_distance(
    spec: str, net: str = "alex", version: str = "0.1", device: str | torch.device = "cpu"
) -> DistanceFunction:
    """Build a distance function from a short name.

    Args:
        spec: 'lpips' (official weights of ``net``), 'lpips-<net>' / 'lin-<net>'
            (a '-v0.0' / '-v0.1' suffix picks the linear-weight version),
            'net' / 'net-<net>' (untrained baseline, all channel weights 1),
            'l2' (RGB), 'l2_lab' (the paper's L2), 'l1', 'ssim', 'ms_ssim', 'psnr',
            'dists', or a path to a trained checkpoint / linear-weights file.
        net, version: trunk and linear-weight version for the LPIPS specs.
    Returns:
        a :class:`DistanceFunction`.
    """
    s = spec.strip()
    low = s.lower()
    if low in TRADITIONAL:
        return PixelDistance(low, device)
    if low == "dists":
        return DISTSDistance(device)
    head, _, tail = low.partition("-")
    for suffix in ("-v0.0", "-v0.1"):  # 'lpips-vgg-v0.0': the version in the name
        if tail.endswith(suffix):
            tail, version = tail[: -len(suffix)], suffix[2:]
    if head in ("lpips", "lin", "net") and (tail in ("", *NETS, "alexnet", "vgg16", "squeezenet")):
        n = canonical_net(tail or net)
        lin = head != "net"
        name = f"{'lpips' if lin else 'net'}-{n}" + ("" if version == "0.1" else f"-v{version}")
        return LPIPSDistance(LPIPS(net=n, version=version, lpips=lin), name=name, device=device)
    if Path(s).suffix in (".pth", ".pt", ".safetensors", ".ckpt") or Path(s).exists():
        model = load_lpips_checkpoint(s)
        return LPIPSDistance(model, name=f"trained-{model.pnet_type}", kind="checkpoint", device=device)
    raise ValueError(
        f"unknown metric {spec!r}; use lpips[-alex|-vgg|-squeeze], net[-<net>], "
        f"{', '.join(TRADITIONAL)}, dists, or a checkpoint path"
    )
