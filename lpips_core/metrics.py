"""The paper's scores (2AFC agreement, JND mean average precision) and the one
interface every distance is scored through.

* :func:`score_2afc`, :func:`twoafc_scores`, :func:`score_jnd`: from distances
  already computed (numpy arrays or tensors), exactly as ``lpips/trainer.py``.
* :class:`DistanceFunction` and :func:`make_distance`: LPIPS (official weights,
  the "net" baseline, a trained checkpoint), traditional metrics and DISTS behind
  ``features(x)`` + ``from_features(f0, f1)``, so evaluation computes each image's
  features once (:mod:`lpips_core.evaluate`, :mod:`lpips_core.mos`).
"""
from __future__ import annotations

import numpy as np
import torch

ArrayLike = "np.ndarray | torch.Tensor | list[float]"


def _flat(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64).reshape(-1)


def twoafc_scores(d0, d1, judge) -> np.ndarray:
    """Per-triplet 2AFC agreement with the judges.

    Args:
        d0, d1: (N,) distances from the reference to p0 and to p1.
        judge: (N,) fraction of judges who preferred p1 (found it closer), in [0, 1].
    Returns:
        (N,) agreement in [0, 1]: ``(d0<d1)(1-h) + (d1<d0)h + 0.5(d0==d1)``.
    """
    d0, d1, h = _flat(d0), _flat(d1), _flat(judge)
    if not (d0.shape == d1.shape == h.shape):
        raise ValueError(f"d0, d1 and judge must have the same length, got {d0.size}, {d1.size}, {h.size}")
    return (d0 < d1) * (1.0 - h) + (d1 < d0) * h + (d0 == d1) * 0.5


def score_2afc(d0, d1, judge) -> float:
    """2AFC score: mean agreement of a distance with the judges (the paper's Table 3 metric)."""
    return float(np.mean(twoafc_scores(d0, d1, judge)))


def voc_ap(rec: np.ndarray, prec: np.ndarray) -> float:
    """Area under the precision-recall curve, VOC style (precision envelope, no 11-point sampling)."""
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # precision envelope
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def score_jnd(ds, sames) -> float:
    """JND score: average precision of ranking pairs by ascending distance, "same" as soft positive.

    Args:
        ds: (N,) distances between the two patches of each pair.
        sames: (N,) fraction of judges who said the two patches look the same, in [0, 1].
    Returns:
        mAP in [0, 1].
    """
    ds, sames = _flat(ds), _flat(sames)
    if ds.shape != sames.shape:
        raise ValueError(f"ds and sames must have the same length, got {ds.size} and {sames.size}")
    order = np.argsort(ds, kind="stable")
    s = sames[order]
    tps = np.cumsum(s)
    fps = np.cumsum(1.0 - s)
    fns = np.sum(s) - tps
    with np.errstate(invalid="ignore", divide="ignore"):
        precs = tps / (tps + fps)
        recs = tps / (tps + fns)
    return voc_ap(recs, precs)


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


def split_features(feats: list[torch.Tensor], sizes: list[int]) -> list[list[torch.Tensor]]:
    """Split a features list computed on a concatenated batch back into its parts."""
    parts = [t.split(sizes) for t in feats]
    return [[p[i] for p in parts] for i in range(len(sizes))]


class LPIPSDistance(DistanceFunction):
    """An ``lpips_core.LPIPS`` model (official, "net" baseline or trained) as a distance function."""

    def __init__(self, model, name: str | None = None, kind: str | None = None,
                 device: str | torch.device = "cpu"):
        super().__init__(device)
        if getattr(model, "spatial", False):
            raise ValueError("evaluation needs a model with spatial=False")
        self.model = model.to(self.device).eval().requires_grad_(False)
        self.kind = kind or ("lpips" if model.lpips else "net")
        self.name = name or f"{'lpips' if model.lpips else 'net'}-{model.pnet_type}"
        self.label = f"{self.name} distance"

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.model.features(x.to(self.device))

    def from_features(self, f0, f1) -> torch.Tensor:
        return self.model.distance_from_features(f0, f1).flatten()

    def feature_key(self):
        if self.model.pnet_rand or self.model.pnet_tune:  # a trunk of its own
            return None
        return ("imagenet-trunk", self.model.pnet_type, self.model.version, str(self.device))


class PixelDistance(DistanceFunction):
    """A traditional metric from ``lpips_core.baselines`` (psnr, ssim, ms_ssim, l1, l2, l2_lab)."""

    LABELS = {"psnr": "-PSNR (dB)", "ssim": "1 - SSIM", "ms_ssim": "1 - MS-SSIM", "l1": "L1 (RGB)",
              "l2": "L2 (RGB, RMSE)", "l2_lab": "L2 (Lab)"}

    def __init__(self, name: str, device: str | torch.device = "cpu"):
        from . import baselines

        if name not in self.LABELS:
            raise ValueError(f"unknown traditional metric {name!r}; choose from {sorted(self.LABELS)}")
        super().__init__(device)
        self.name, self.label, self.kind = name, self.LABELS[name], "traditional"
        self._fn = baselines.METRIC_FUNCTIONS[name]
        self._as_distance = baselines.as_distance

    def from_features(self, f0, f1) -> torch.Tensor:
        return self._as_distance(self.name, self._fn(f0[0], f1[0])).flatten()

    def feature_key(self):
        return ("pixels", str(self.device))


class DISTSDistance(DistanceFunction):
    """DISTS (piq, offline weights) as a distance function; VGG16 features computed once per image."""

    name, label, kind = "dists", "DISTS", "learned"

    def __init__(self, device: str | torch.device = "cpu"):
        from . import baselines

        super().__init__(device)
        self._b = baselines
        self.model = baselines.load_dists(str(self.device))

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self._b.dists_features(self.model, x.to(self.device))

    def from_features(self, f0, f1) -> torch.Tensor:
        return self._b.dists_from_features(self.model, f0, f1).flatten()


TRADITIONAL = ("l2", "l2_lab", "l1", "ssim", "ms_ssim", "psnr")
NETS = ("alex", "vgg", "squeeze")


def _infer_net(state: dict) -> str:
    """alex / vgg / squeeze from the linear layers' input channels."""
    chans = []
    for k in range(7):
        key = next((c for c in (f"lin{k}.model.1.weight", f"lin{k}.model.0.weight") if c in state), None)
        if key is None:
            break
        chans.append(int(state[key].shape[1]))
    for name, expected in (("alex", [64, 192, 384, 256, 256]), ("vgg", [64, 128, 256, 512, 512]),
                           ("squeeze", [64, 128, 256, 384, 384, 512, 512])):
        if chans == expected:
            return name
    raise ValueError(f"linear layers with input channels {chans} match no trunk (alex, vgg, squeeze)")


def load_lpips_checkpoint(path, net: str | None = None, version: str | None = None):
    """An ``LPIPS`` model from a trained checkpoint or a linear-weights file.

    Accepts the reference's linear-weights ``.pth`` / ``.safetensors`` (keys
    ``lin<k>.model.1.weight``) and checkpoints that nest a model state dict
    (under 'model', 'state_dict', 'lpips', ...). The trunk is read from the
    layer widths (and must agree with ``net`` and any 'net' / 'pnet_type' entry);
    the version from a 'version' entry (e.g. the training config), else ``version``,
    else '0.1'. Training checkpoints of :mod:`lpips_core.train` (``config`` + ``model``) load as is. A state dict that carries trunk weights (``net.slice*``:
    'tune' or 'scratch' training) has them loaded too.

    Raises:
        FileNotFoundError, or ValueError naming the file when it holds no LPIPS weights.
    """
    from pathlib import Path

    from .backbones import canonical_net
    from .model import LPIPS

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(path))
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unreadable or not a tensor file
        raise ValueError(f"{path}: not a readable checkpoint ({exc})") from exc
    meta_net, meta_version, state, queue = None, None, None, [obj]
    while queue and state is None:  # breadth-first search for the dict holding lin0.*
        cur = queue.pop(0)
        if not isinstance(cur, dict):
            continue
        for key in ("net", "pnet_type", "arch"):
            if meta_net is None and isinstance(cur.get(key), str):
                meta_net = cur[key]
        if meta_version is None and isinstance(cur.get("version"), (str, float)):
            meta_version = str(cur["version"]).lstrip("v")
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
    trunk = {k[len("net."):]: v for k, v in state.items() if k.startswith("net.")}
    version = meta_version or version or "0.1"
    model = LPIPS(net=net, version=version, pretrained=False, pnet_rand=bool(trunk))
    if trunk:
        model.net.load_state_dict(trunk)
    for k, lin in enumerate(model.lins):
        key = next((c for c in (f"lin{k}.model.1.weight", f"lin{k}.model.0.weight") if c in state), None)
        if key is None or state[key].shape != lin.conv.weight.shape:
            raise ValueError(f"{path}: layer {k} weights missing or of the wrong shape for net='{net}'")
        with torch.no_grad():
            lin.conv.weight.copy_(state[key])
    return model.eval()


def make_distance(spec: str, net: str = "alex", version: str = "0.1",
                  device: str | torch.device = "cpu") -> DistanceFunction:
    """Build a distance function from a short name.

    Args:
        spec: 'lpips' (official weights of ``net``), 'lpips-<net>' / 'lin-<net>',
            'net' / 'net-<net>' (untrained baseline, all channel weights 1),
            'l2' (RGB), 'l2_lab' (the paper's L2), 'l1', 'ssim', 'ms_ssim', 'psnr',
            'dists', or a path to a trained checkpoint / linear-weights file.
        net, version: trunk and linear-weight version for the LPIPS specs.
    Returns:
        a :class:`DistanceFunction`.
    """
    from pathlib import Path

    from .model import LPIPS

    s = spec.strip()
    low = s.lower()
    if low in TRADITIONAL:
        return PixelDistance(low, device)
    if low == "dists":
        return DISTSDistance(device)
    head, _, tail = low.partition("-")
    if head in ("lpips", "lin", "net") and (tail in ("", *NETS, "alexnet", "vgg16", "squeezenet")):
        from .backbones import canonical_net

        n = canonical_net(tail or net)
        lin = head != "net"
        name = f"{'lpips' if lin else 'net'}-{n}" + ("" if version == "0.1" else f"-v{version}")
        return LPIPSDistance(LPIPS(net=n, version=version, lpips=lin), name=name, device=device)
    if Path(s).suffix in (".pth", ".pt", ".safetensors", ".ckpt") or Path(s).exists():
        model = load_lpips_checkpoint(s)
        return LPIPSDistance(model, name=f"trained-{model.pnet_type}", kind="checkpoint", device=device)
    raise ValueError(f"unknown metric {spec!r}; use lpips[-alex|-vgg|-squeeze], net[-<net>], "
                     f"{', '.join(TRADITIONAL)}, dists, or a checkpoint path")
