"""Why LPIPS numbers differ between papers: other implementations and protocol choices, measured.

Two questions, on the same images (course photographs from ``skimage.data``, each
against distorted versions made by :mod:`lpips_core.data.distortions`):

1. **Implementations** at their documented defaults, each fed the way its
   documentation says, against the reference ``lpips`` package (alex and vgg,
   v0.1) on the same pairs: ``lpips_core``, torchmetrics'
   ``LearnedPerceptualImagePatchSimilarity``, piq's ``LPIPS``; pyiqa is reported,
   not run (see :data:`PYIQA_NOTE`). Where an implementation would download
   weights, it is built offline with the same trunk weights (and, for piq, the
   reference's v0.1 VGG linear weights), and the report says so.
2. **Protocol choices** that papers rarely state, each changed alone from the
   reference protocol (alex, v0.1, [-1, 1] inputs, native size): resizing to
   256x256, [0, 1] images passed as [-1, 1], vgg instead of alex, v0.0 instead of
   v0.1, the batch mean instead of per-image distances.

:func:`run_audit` (``lpips-core audit``) writes ``audit.json``, ``audit.md`` and
``audit.png`` and returns an :class:`AuditResult`; :func:`zero_one_heuristic_rates`
measures how often the [0, 1] warning of :mod:`lpips_core.model.checks` fires on real
[-1, 1] photographs.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..data.distortions import apply
from ..data.photos import TRAIN_PHOTOS, VAL_PHOTOS, load_photo
from ..data.textfiles import read_csv_rows
from ..files import pyplot, save_figure, write_json, write_text
from ..model import LPIPS
from ..model.safe_load import weights_only_loads
from ..progress import progress_bar
from ..version import __version__

#: pyiqa was not installed: ``pip install --dry-run pyiqa`` (0.1.16) changes no pinned
#: package but adds 40 (transformers, opencv-python, bitsandbytes, numba, datasets, timm, ...)
#: to the environment, and its LPIPS fetches its weights from the network when built.
PYIQA_NOTE = (
    "not run: pyiqa 0.1.16 would install cleanly (pip --dry-run changes no pinned "
    "package) but adds 40 packages (transformers, opencv-python, bitsandbytes, numba, "
    "datasets, timm, ...) to this environment and downloads its weights when built; "
    "not installed here"
)

#: Distortions applied to every photograph (name, strength in [0, 1]).
DISTORTIONS = (("jpeg", 0.7), ("gaussian_blur", 0.4), ("gaussian_noise", 0.3), ("contrast", 0.5))


# --------------------------------------------------------------------------- images
def audit_pairs(n_photos: int = 8, side: int = 320, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Reference/distorted pairs: centre crops of course photographs and their distortions.

    Args:
        n_photos: how many of the course's photographs (validation ones first; those
            smaller than ``side`` are skipped).
        side: crop side in pixels (the "native" size of the audit).
    Returns:
        (P, 3, side, side) references and distorted images in [0, 1] (float32), and the
        P labels 'photo/distortion'.
    """
    rng = np.random.default_rng(seed)
    refs, dists, labels = [], [], []
    photos = [(name, load_photo(name)) for name in VAL_PHOTOS + TRAIN_PHOTOS]
    photos = [(name, img) for name, img in photos if min(img.shape[:2]) >= side][:n_photos]
    if not photos:
        raise ValueError(f"no course photograph is {side}x{side} or larger; use a smaller side")
    for name, img in photos:
        h, w = img.shape[:2]
        crop = np.ascontiguousarray(
            img[(h - side) // 2 : (h - side) // 2 + side, (w - side) // 2 : (w - side) // 2 + side]
        )
        for dist, strength in DISTORTIONS:
            refs.append(crop)
            dists.append(apply(crop, [(dist, strength)], rng))
            labels.append(f"{name}/{dist}")

    def stack(images):
        return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0

    return stack(refs), stack(dists), labels


# --------------------------------------------------------------------------- implementations
def _reference(net: str, version: str = "0.1"):
    """The reference ``lpips.LPIPS`` with lpips_core's trunk weights (its own download avoided)."""
    import warnings

    import lpips

    with warnings.catch_warnings(), weights_only_loads():  # its linear weights: a .pth it torch.loads
        warnings.simplefilter("ignore")
        ref = lpips.LPIPS(net=net, version=version, pnet_rand=True, verbose=False)
    ref.net.load_state_dict(LPIPS(net=net, version=version).net.state_dict())
    return ref.eval()


def _torchmetrics_per_image(net: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """torchmetrics' LPIPS at its defaults (normalize=False: [-1, 1] inputs), per image.

    Its constructor downloads torchvision's ImageNet trunk; here the same module
    (``_NoTrainLpips``) is built with a random trunk and given lpips_core's trunk
    weights, then called through torchmetrics' own update function (what
    ``LearnedPerceptualImagePatchSimilarity.update`` calls; ``compute`` then takes the mean).
    """
    from torchmetrics.functional.image.lpips import _lpips_update, _NoTrainLpips

    with weights_only_loads():  # its linear weights: a .pth it torch.loads
        module = _NoTrainLpips(net=net, pnet_rand=True)
    module.net.load_state_dict(LPIPS(net=net).net.state_dict())
    return lambda x, y: _lpips_update(x, y, net=module, normalize=False).reshape(-1)


def _piq_vgg(reduction: str = "mean") -> torch.nn.Module:
    """piq's LPIPS (VGG16 only) at its defaults: [0, 1] inputs, ImageNet mean/std, reduction='mean'.

    piq's constructor downloads its trunk and its linear weights; here the same module
    is built with lpips_core's VGG16 trunk and the reference package's v0.1 VGG linear weights.
    """
    import piq
    from piq.perceptual import VGG16_LAYERS

    from ..eval.baselines import vgg16_features

    lins = LPIPS(net="vgg").linear_state_dict()
    weights = [lins[f"lin{k}.model.1.weight"].view(1, -1, 1, 1) for k in range(5)]
    model = piq.LPIPS.__new__(piq.LPIPS)
    piq.ContentLoss.__init__(
        model,
        feature_extractor=vgg16_features(),
        layers=[VGG16_LAYERS[t] for t in ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")],
        weights=weights,
        replace_pooling=False,
        distance="mse",
        reduction=reduction,
        normalize_features=True,
    )
    return model.eval()


def _per_image(model) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    return lambda x, y: model(x, y).reshape(-1)


def implementation_rows(
    refs01: torch.Tensor,
    dists01: torch.Tensor,
    batch: int = 4,
    progress: bool = True,
    nets: Sequence[str] = ("alex", "vgg"),
) -> list[dict]:
    """Each implementation at its defaults against the reference on the same pairs.

    Args:
        refs01, dists01: (P, 3, H, W) pairs in [0, 1].
        nets: which trunks to audit (piq has vgg only).
    Returns:
        one dict per implementation: name, net, fed (what range it was given),
        batch_mean (what it returns for a batch), max_abs_diff and mean_abs_diff to
        the reference's per-image distances, cause, notes.
    """
    x, y = refs01 * 2 - 1, dists01 * 2 - 1  # the reference convention, [-1, 1]
    rows = []
    specs = [
        (
            "lpips_core",
            "alex",
            "[-1, 1]",
            lambda: _per_image(LPIPS(net="alex", input_range="-1,1")),
            False,
            "same computation (exact re-implementation)",
            "",
        ),
        (
            "lpips_core",
            "vgg",
            "[-1, 1]",
            lambda: _per_image(LPIPS(net="vgg", input_range="-1,1")),
            False,
            "same computation (exact re-implementation)",
            "",
        ),
        (
            "torchmetrics 1.9 LearnedPerceptualImagePatchSimilarity",
            "alex",
            "[-1, 1]",
            lambda: _torchmetrics_per_image("alex"),
            True,
            "eps 1e-8 inside the sqrt of the unit normalisation (reference: 1e-10 outside); "
            "returns the batch mean by default (reduction='mean')",
            "built offline: its trunk download replaced by the same ImageNet weights",
        ),
        (
            "torchmetrics 1.9 LearnedPerceptualImagePatchSimilarity",
            "vgg",
            "[-1, 1]",
            lambda: _torchmetrics_per_image("vgg"),
            True,
            "eps 1e-8 inside the sqrt of the unit normalisation (reference: 1e-10 outside); "
            "returns the batch mean by default (reduction='mean')",
            "built offline: its trunk download replaced by the same ImageNet weights",
        ),
        (
            "piq 0.8 LPIPS",
            "vgg",
            "[0, 1]",
            lambda: _per_image(_piq_vgg("none")),
            True,
            "ImageNet mean/std on [0, 1] inputs (the same affine map as the reference's scaling "
            "layer); vgg only; returns the batch mean by default",
            "needs download (trunk and linear weights); run offline with the same trunk and the "
            "reference's v0.1 vgg linear weights in their place",
        ),
    ]
    specs = [s for s in specs if s[1] in nets]
    it = progress_bar(specs, len(specs), "implementations", unit="impl", enabled=progress)
    baselines = {}
    for name, net, fed, build, batch_mean, cause, notes in it:
        if net not in baselines:
            baselines[net] = _batched(_per_image(_reference(net)), x, y, batch)
        fn = build()
        inputs = (refs01, dists01) if fed == "[0, 1]" else (x, y)
        got = _batched(fn, *inputs, batch)
        diff = (got.double() - baselines[net].double()).abs()
        rows.append(
            {
                "implementation": name,
                "net": net,
                "fed": fed,
                "batch_mean": batch_mean,
                "max_abs_diff": float(diff.max()),
                "mean_abs_diff": float(diff.mean()),
                "mean_distance": float(got.mean()),
                "cause": cause,
                "notes": notes,
            }
        )
    rows.append(
        {
            "implementation": "pyiqa",
            "net": "-",
            "fed": "-",
            "batch_mean": None,
            "max_abs_diff": None,
            "mean_abs_diff": None,
            "mean_distance": None,
            "cause": "-",
            "notes": PYIQA_NOTE,
        }
    )
    return rows


def _batched(fn, x: torch.Tensor, y: torch.Tensor, batch: int) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat(
            [fn(x[i : i + batch], y[i : i + batch]).reshape(-1).float() for i in range(0, x.shape[0], batch)]
        )


# --------------------------------------------------------------------------- protocol choices
def _resize(x: torch.Tensor, side: int) -> torch.Tensor:
    return F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False, antialias=True)


def protocol_rows(
    refs01: torch.Tensor, dists01: torch.Tensor, batch: int = 4, progress: bool = True, skip: Sequence[str] = ()
) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Each common protocol choice alone, against the reference protocol (alex v0.1, [-1, 1], native).

    ``skip``: names of choices to leave out (tests skip the slow vgg one).

    Returns:
        (rows: choice, signature, mean distance, mean and max |change|, mean relative
        change, Spearman correlation with the baseline; {choice: (P,) distances}).
    """
    import warnings

    from scipy.stats import spearmanr

    x, y = refs01 * 2 - 1, dists01 * 2 - 1
    alex = LPIPS(net="alex", input_range="-1,1")
    side = x.shape[-1]
    choices = {
        "reference protocol": (alex, x, y, "native", "-1,1"),
        "resized to 256x256": (alex, _resize(x, 256), _resize(y, 256), 256, "-1,1"),
        "resized to 64x64": (alex, _resize(x, 64), _resize(y, 64), 64, "-1,1"),
        "[0, 1] images passed as [-1, 1]": (alex, refs01, dists01, "native", "0,1 as -1,1"),
        "vgg instead of alex": (None, x, y, "native", "-1,1"),  # built only when not skipped
        "v0.0 instead of v0.1": (LPIPS(net="alex", version="0.0", input_range="-1,1"), x, y, "native", "-1,1"),
    }
    choices = {k: v for k, v in choices.items() if k not in skip}
    if "vgg instead of alex" in choices:
        choices["vgg instead of alex"] = (LPIPS(net="vgg", input_range="-1,1"),) + choices["vgg instead of alex"][1:]
    values = {}
    sigs = {}
    it = progress_bar(choices.items(), len(choices), "protocols", unit="choice", enabled=progress)
    for name, (model, a, b, size, rng) in it:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values[name] = _batched(_per_image(model), a, b, batch).numpy()
        sig = model.signature(size=size)
        sigs[name] = sig.replace("range:-1,1", "range:0,1-passed-as--1,1") if rng != "-1,1" else sig
    base = values["reference protocol"]
    rows = []
    for name, v in values.items():
        change = v - base
        rows.append(
            {
                "choice": name,
                "signature": sigs[name],
                "mean_distance": float(v.mean()),
                "mean_abs_change": float(np.abs(change).mean()),
                "max_abs_change": float(np.abs(change).max()),
                "mean_relative_change": float(np.mean(change / base)),
                "spearman_vs_reference": float(spearmanr(v, base)[0]) if len(v) > 2 else None,
            }
        )
    rows.append(
        {
            "choice": "batch mean instead of per-image (torchmetrics/piq default)",
            "signature": sigs["reference protocol"] + " (reduced)",
            "mean_distance": float(base.mean()),
            "mean_abs_change": float(np.abs(base.mean() - base).mean()),
            "max_abs_change": float(np.abs(base.mean() - base).max()),
            "mean_relative_change": float(np.mean((base.mean() - base) / base)),
            "spearman_vs_reference": None,
        }
    )
    values["native size, side"] = np.array([side])
    return rows, values


# --------------------------------------------------------------------------- the [0, 1] heuristic
def _min_uint8(path: str | os.PathLike) -> int:
    from ..data.images import load_image

    return int(load_image(path).min())


def zero_one_heuristic_rates(
    mini_bapps: str | os.PathLike | None = "data/mini_bapps", live: Sequence[str | os.PathLike] = ()
) -> dict:
    """How often real [-1, 1] photographs look like [0, 1] images to the warning's test.

    An 8-bit image mapped to [-1, 1] (``x / 127.5 - 1``) has no negative value iff
    its smallest channel value is >= 128; a pair warns when both images do.

    Args:
        mini_bapps: the mini set's folder (its 64x64 2AFC patches), or None.
        live: LIVE folders holding ``dmos.csv`` (distorted,reference,...).
    Returns:
        {source: {'images', 'nonneg_images', 'pairs', 'nonneg_pairs'}} (pairs absent for
        whole photographs).
    """
    out = {}
    photos = [load_photo(n) for n in VAL_PHOTOS + TRAIN_PHOTOS]
    out["course photographs (skimage.data, full size)"] = {
        "images": len(photos),
        "nonneg_images": sum(int(p.min()) >= 128 for p in photos),
    }
    if mini_bapps is not None and Path(mini_bapps, "2afc").is_dir():
        mins = {}
        for ref in sorted(Path(mini_bapps, "2afc").glob("*/*/ref/*.png")):
            for k in ("ref", "p0", "p1"):
                p = ref.parent.parent / k / ref.name
                mins[p] = _min_uint8(p)
        pairs = [(r, r.parent.parent / k / r.name) for r in mins if r.parent.name == "ref" for k in ("p0", "p1")]
        out["mini_bapps 2AFC patches (64x64, from the course photographs)"] = {
            "images": len(mins),
            "nonneg_images": sum(v >= 128 for v in mins.values()),
            "pairs": len(pairs),
            "nonneg_pairs": sum(mins[a] >= 128 and mins[b] >= 128 for a, b in pairs),
        }
    for root in live:
        table = Path(root) / "dmos.csv"
        if not table.is_file():
            continue
        rows = [r.values for r in read_csv_rows(table, ValueError)[1]]
        mins = {}
        for r in rows:
            for k in ("distorted", "reference"):
                if r[k] not in mins:
                    mins[r[k]] = _min_uint8(Path(root) / r[k])
        out[Path(root).name] = {
            "images": len(mins),
            "nonneg_images": sum(v >= 128 for v in mins.values()),
            "pairs": len(rows),
            "nonneg_pairs": sum(mins[r["distorted"]] >= 128 and mins[r["reference"]] >= 128 for r in rows),
        }
    return out


# --------------------------------------------------------------------------- report
def _fmt(v, spec: str = ".2e") -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return format(v, spec) if isinstance(v, float) else str(v)


def audit_markdown(result: dict) -> str:
    """The audit as a markdown page (tables of both parts and the heuristic's rates)."""
    lines = [
        "# LPIPS audit: implementations and protocol choices",
        "",
        f"{result['n_pairs']} pairs: {result['n_photos']} course photographs (skimage.data, centre "
        f"crops of {result['side']}x{result['side']}) x {len(DISTORTIONS)} distortions "
        f"({', '.join(f'{d} {s}' for d, s in DISTORTIONS)}). Machine: {result['machine']}. "
        f"lpips_core {result['lpips_core']}.",
        "",
        "## Implementations at their defaults, against the reference `lpips` 0.1.4",
        "",
        "| implementation | net | fed | returns batch mean | max abs diff | mean abs diff | cause | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["implementations"]:
        lines.append(
            f"| {r['implementation']} | {r['net']} | {r['fed']} | {_fmt(r['batch_mean'])} | "
            f"{_fmt(r['max_abs_diff'])} | {_fmt(r['mean_abs_diff'])} | {r['cause']} | {r['notes']} |"
        )
    lines += [
        "",
        "Differences are per image (each implementation's reduction turned off), so they "
        "show the computation; a caller who keeps the default reduction gets one batch mean.",
        "",
        "## Protocol choices, each alone, against the reference protocol",
        "",
        "| choice | signature | mean distance | mean abs change | max abs change | mean relative change "
        "| Spearman vs reference |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["protocols"]:
        sig = r["signature"].replace("|", "\\|")  # a pipe inside a table cell must be escaped
        lines.append(
            f"| {r['choice']} | `{sig}` | {_fmt(r['mean_distance'], '.4f')} | "
            f"{_fmt(r['mean_abs_change'], '.4f')} | {_fmt(r['max_abs_change'], '.4f')} | "
            f"{_fmt(r['mean_relative_change'], '+.1%')} | {_fmt(r['spearman_vs_reference'], '.3f')} |"
        )
    if result.get("heuristic"):
        lines += [
            "",
            "## How often the [0, 1] warning fires on real [-1, 1] photographs",
            "",
            "| source | images | all values >= 0 | pairs | both >= 0 |",
            "|---|---|---|---|---|",
        ]
        for src, r in result["heuristic"].items():
            lines.append(
                f"| {src} | {r['images']} | {r['nonneg_images']} ({r['nonneg_images'] / r['images']:.2%}) | "
                f"{r.get('pairs', '-')} | "
                + (f"{r['nonneg_pairs']} ({r['nonneg_pairs'] / r['pairs']:.2%})" if "pairs" in r else "-")
                + " |"
            )
    return "\n".join(lines) + "\n"


def plot_protocols(values: dict[str, np.ndarray], path: str | os.PathLike) -> Path:
    """Scatter of each protocol choice's distances against the reference protocol's."""
    plt = pyplot()
    base = values["reference protocol"]
    names = [n for n in values if n not in ("reference protocol", "native size, side")]
    fig, axes = plt.subplots(1, len(names), figsize=(3.0 * len(names), 3.2), squeeze=False)
    hi = max(float(np.max(values[n])) for n in names + ["reference protocol"]) * 1.05
    for ax, name in zip(axes[0], names):
        ax.scatter(base, values[name], s=10)
        ax.plot([0, hi], [0, hi], color="grey", lw=0.8)
        ax.set_xlim(0, hi)
        ax.set_ylim(0, hi)
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("reference protocol", fontsize=8)
    axes[0][0].set_ylabel("with the choice", fontsize=8)
    fig.suptitle("LPIPS of the same pairs under common protocol choices (alex v0.1 native = x axis)", fontsize=9)
    fig.tight_layout()
    out = save_figure(fig, path)
    plt.close(fig)
    return out


@dataclass
class AuditResult:
    """What :func:`run_audit` measured; :meth:`to_dict` is its audit.json.

    Attributes:
        lpips_core: the package version. machine: CPU and torch version.
        n_photos, side, n_pairs: the image set (photographs, crop side in pixels, pairs).
        implementations: one row per implementation and net (:func:`implementation_rows`).
        protocols: one row per protocol choice (:func:`protocol_rows`).
        heuristic: how often the [0, 1] warning fires, per source (:func:`zero_one_heuristic_rates`).
        pairs: the pairs' labels, in order.
        distances: {protocol choice: per-pair distances (a list)}.
    """

    lpips_core: str
    n_photos: int
    side: int
    n_pairs: int
    machine: str
    implementations: list[dict]
    protocols: list[dict]
    heuristic: dict
    pairs: list[str]
    distances: dict[str, list[float]]

    @property
    def signatures(self) -> list[str]:
        """The protocol choices' signatures, sorted, once each."""
        return sorted({r["signature"] for r in self.protocols})

    def to_dict(self) -> dict:
        """The audit.json content: the fields above, with the signatures after the protocols."""
        return {
            "lpips_core": self.lpips_core,
            "n_photos": self.n_photos,
            "side": self.side,
            "n_pairs": self.n_pairs,
            "machine": self.machine,
            "implementations": self.implementations,
            "protocols": self.protocols,
            "signatures": self.signatures,
            "heuristic": self.heuristic,
            "pairs": self.pairs,
            "distances": self.distances,
        }


def run_audit(
    output: str | os.PathLike,
    n_photos: int = 8,
    side: int = 320,
    live: Sequence[str | os.PathLike] = (),
    mini_bapps: str | os.PathLike | None = "data/mini_bapps",
    progress: bool = True,
) -> AuditResult:
    """Run both parts of the audit and the heuristic's rates; write audit.json, audit.md, audit.png.

    Args:
        output: folder to write into (:func:`write_audit_report`).
        n_photos, side: the image set (see :func:`audit_pairs`).
        live, mini_bapps: sources for :func:`zero_one_heuristic_rates` (missing ones are skipped).
        progress: progress bars on stderr.
    """
    refs, dists, labels = audit_pairs(n_photos, side)
    impl = implementation_rows(refs, dists, progress=progress)
    protocols, values = protocol_rows(refs, dists, progress=progress)
    result = AuditResult(
        lpips_core=__version__,
        n_photos=len(labels) // len(DISTORTIONS),
        side=side,
        n_pairs=len(labels),
        machine=f"{platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}",
        implementations=impl,
        protocols=protocols,
        heuristic=zero_one_heuristic_rates(mini_bapps, live),
        pairs=labels,
        distances={k: v.tolist() for k, v in values.items()},
    )
    write_audit_report(result, output)
    return result


def write_audit_report(result: AuditResult, output: str | os.PathLike) -> None:
    """Write audit.json, audit.md and audit.png (each protocol choice against the reference) into ``output``."""
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "audit.json", result.to_dict())
    write_text(out / "audit.md", audit_markdown(result.to_dict()))
    plot_protocols({k: np.array(v) for k, v in result.distances.items()}, out / "audit.png")
