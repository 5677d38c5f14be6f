"""Evaluate distance functions on 2AFC and JND judgments: scores, intervals, reports, plots.

The flow::

    dataset items (ref, p0, p1, judge)  --collect_2afc-->  d0, d1 per metric
                                        --score_2afc_results-->  2AFC per subset, 95% CI
    dataset items (p0, p1, same)        --collect_jnd-->   d per metric  --> JND mAP

Collection is batched and computes every image's features once per metric:
the triplet's three images go through the trunk in one call and the reference
patch's features feed both d0 and d1. Metrics that share a trunk ('lpips-alex',
'net-alex', a lin-trained alex) share its features. All metrics are computed in
one pass over the data, so each image is also read from disk once.

:func:`evaluate` writes ``results.json`` and ``results.md`` (metric x subset,
with intervals); :func:`compare_models` adds every architecture, the "net"
baselines, the traditional metrics, the paper's published numbers and plots.
"""
from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import torch

from .metrics import DistanceFunction, make_distance, score_jnd, split_features, twoafc_scores

#: The paper's 2AFC agreement (%), poster table; DESIGN.md section 3. Cited, not reproduced.
PAPER_2AFC = {
    "human": {"trad_cnn": 82.6, "real_algs": 69.5},
    "l2_lab": {"trad_cnn": 68.9}, "ssim": {"trad_cnn": 69.7}, "fsimc": {"trad_cnn": 70.0},
    "net-squeeze": {"trad_cnn": 78.0, "real_algs": 64.0}, "lpips-squeeze": {"trad_cnn": 79.8, "real_algs": 65.1},
    "tune-squeeze": {"trad_cnn": 79.9, "real_algs": 64.5},
    "net-alex": {"trad_cnn": 76.8, "real_algs": 65.0}, "lpips-alex": {"trad_cnn": 78.7, "real_algs": 65.3},
    "tune-alex": {"trad_cnn": 80.6, "real_algs": 64.3},
    "net-vgg": {"trad_cnn": 75.7, "real_algs": 62.6}, "lpips-vgg": {"trad_cnn": 79.4, "real_algs": 64.1},
    "tune-vgg": {"trad_cnn": 81.4, "real_algs": 64.0},
}
PAPER_CITATION = ("Zhang et al., CVPR 2018, 2AFC agreement on BAPPS val with human judgments "
                  "(the paper's numbers, not measured here)")

#: Subset groups the paper averages over.
GROUPS = {"trad_cnn": ("traditional", "cnn"), "real_algs": ("superres", "deblur", "color", "frameinterp")}

DEFAULT_METRICS = ("lpips", "l2_lab", "ssim", "psnr")
COMPARE_METRICS = ("lpips-alex", "lpips-vgg", "lpips-squeeze", "net-alex", "net-vgg", "net-squeeze",
                   "l2_lab", "l2", "l1", "ssim", "psnr", "dists")


def _progress(iterable, total: int | None, desc: str, enabled: bool = True, unit: str = "batch"):
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, disable=not enabled,
                dynamic_ncols=True)


def _loader(dataset, batch_size: int, num_workers: int):
    from torch.utils.data import DataLoader

    if isinstance(dataset, DataLoader):
        return dataset
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)


def _as_functions(metrics: Mapping[str, DistanceFunction] | Sequence, device="cpu") -> dict[str, DistanceFunction]:
    if isinstance(metrics, Mapping):
        return dict(metrics)
    out: dict[str, DistanceFunction] = {}
    for m in metrics:
        fn = make_distance(m, device=device) if isinstance(m, str) else m
        out[fn.name] = fn
    return out


# --------------------------------------------------------------------------- collection
@dataclass
class TwoAFCDistances:
    """Distances of every metric on every triplet of a 2AFC set, in dataset order."""

    judge: np.ndarray                      # (N,) fraction of judges preferring p1
    subset: np.ndarray                     # (N,) subset name
    ids: list[str]
    d0: dict[str, np.ndarray] = field(default_factory=dict)   # metric -> (N,) d(ref, p0)
    d1: dict[str, np.ndarray] = field(default_factory=dict)   # metric -> (N,) d(ref, p1)
    seconds: dict[str, float] = field(default_factory=dict)   # metric -> compute time of timed batches
    timed: int = 0                                            # triplets in the timed batches

    @property
    def metrics(self) -> list[str]:
        return list(self.d0)

    def pairs_per_second(self, metric: str) -> float:
        """Distances per second (two per triplet), features included, data loading excluded.

        The first batch is a warm-up (lazy initialisation, allocator) and is not timed
        when there are more batches.
        """
        return 2 * self.timed / max(self.seconds[metric], 1e-9)


@dataclass
class JNDDistances:
    same: np.ndarray
    subset: np.ndarray
    ids: list[str]
    d: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    timed: int = 0

    @property
    def metrics(self) -> list[str]:
        return list(self.d)


class _SharedFeatures:
    """Features of one batch, computed once per ``feature_key`` (and timed once)."""

    def __init__(self):
        self.cache: dict = {}

    def get(self, fn: DistanceFunction, images: torch.Tensor) -> tuple[list[torch.Tensor], float]:
        """(features, seconds it took to compute them); metrics sharing a key are each
        charged the full feature time, so pairs/s stays each metric's stand-alone speed."""
        key = fn.feature_key()
        if key is not None and key in self.cache:
            return self.cache[key]
        t0 = time.perf_counter()
        out = (fn.features(images), 0.0)
        out = (out[0], time.perf_counter() - t0)
        if key is not None:
            self.cache[key] = out
        return out


def _strings(batch_value, n: int) -> list[str]:
    if isinstance(batch_value, (list, tuple)):
        return [str(v) for v in batch_value]
    return [str(batch_value)] * n


def collect_2afc(metrics, dataset, batch_size: int = 50, num_workers: int = 0, device="cpu",
                 progress: bool = True, desc: str = "2AFC") -> TwoAFCDistances:
    """Distances d(ref, p0) and d(ref, p1) of each metric on each triplet.

    Args:
        metrics: {name: DistanceFunction}, or a list of specs for :func:`make_distance`.
        dataset: a dataset of 2AFC items (``{'ref','p0','p1','judge','subset','id'}``,
            images (3, H, W) in [-1, 1]), a list of such dicts, or a DataLoader.
        batch_size: triplets per batch (each metric sees 3 x batch_size images at once).
    Returns:
        :class:`TwoAFCDistances`.
    """
    fns = _as_functions(metrics, device)
    loader = _loader(dataset, batch_size, num_workers)
    d0 = {k: [] for k in fns}
    d1 = {k: [] for k in fns}
    seconds = dict.fromkeys(fns, 0.0)
    judge, subset, ids = [], [], []
    timed, n_batches = 0, len(loader)
    with torch.inference_mode():
        for b, batch in enumerate(_progress(loader, n_batches, desc, progress)):
            ref, p0, p1 = batch["ref"], batch["p0"], batch["p1"]  # (B, 3, H, W) each
            n = ref.shape[0]
            images = torch.cat([ref, p0, p1])  # (3B, 3, H, W): one trunk call per metric
            timing = b > 0 or n_batches == 1
            timed += n if timing else 0
            shared = _SharedFeatures()
            for name, fn in fns.items():
                feats, t_feat = shared.get(fn, images)
                t0 = time.perf_counter()
                fr, f0, f1 = split_features(feats, [n, n, n])
                d0[name].append(fn.from_features(fr, f0).float().cpu())
                d1[name].append(fn.from_features(fr, f1).float().cpu())
                seconds[name] += (t_feat + time.perf_counter() - t0) if timing else 0.0
            judge.append(batch["judge"].reshape(-1).double())
            subset += _strings(batch.get("subset", "all"), n)
            ids += _strings(batch.get("id", ""), n)
    if not judge:
        raise ValueError("the 2AFC dataset is empty")
    return TwoAFCDistances(judge=torch.cat(judge).numpy(), subset=np.asarray(subset), ids=ids,
                           d0={k: torch.cat(v).double().numpy() for k, v in d0.items()},
                           d1={k: torch.cat(v).double().numpy() for k, v in d1.items()},
                           seconds=seconds, timed=timed)


def collect_jnd(metrics, dataset, batch_size: int = 50, num_workers: int = 0, device="cpu",
                progress: bool = True, desc: str = "JND") -> JNDDistances:
    """Distances d(p0, p1) of each metric on each JND pair (both images in one trunk call)."""
    fns = _as_functions(metrics, device)
    loader = _loader(dataset, batch_size, num_workers)
    ds = {k: [] for k in fns}
    seconds = dict.fromkeys(fns, 0.0)
    same, subset, ids = [], [], []
    timed, n_batches = 0, len(loader)
    with torch.inference_mode():
        for b, batch in enumerate(_progress(loader, n_batches, desc, progress)):
            p0, p1 = batch["p0"], batch["p1"]
            n = p0.shape[0]
            images = torch.cat([p0, p1])
            timing = b > 0 or n_batches == 1
            timed += n if timing else 0
            shared = _SharedFeatures()
            for name, fn in fns.items():
                feats, t_feat = shared.get(fn, images)
                t0 = time.perf_counter()
                f0, f1 = split_features(feats, [n, n])
                ds[name].append(fn.from_features(f0, f1).float().cpu())
                seconds[name] += (t_feat + time.perf_counter() - t0) if timing else 0.0
            same.append(batch["same"].reshape(-1).double())
            subset += _strings(batch.get("subset", "all"), n)
            ids += _strings(batch.get("id", ""), n)
    if not same:
        raise ValueError("the JND dataset is empty")
    return JNDDistances(same=torch.cat(same).numpy(), subset=np.asarray(subset), ids=ids,
                        d={k: torch.cat(v).double().numpy() for k, v in ds.items()}, seconds=seconds,
                        timed=timed)


# --------------------------------------------------------------------------- scoring
def _cell(value: float, ci: tuple[float, float], n: int) -> dict:
    return {"score": float(value), "ci": [float(ci[0]), float(ci[1])], "n": int(n)}


def score_2afc_results(res: TwoAFCDistances, n_resamples: int = 1000, seed: int = 0,
                       level: float = 0.95) -> dict:
    """2AFC score per metric and subset with bootstrap intervals, plus subset averages.

    Returns:
        {metric: {subset: {'score', 'ci', 'n'}, 'mean': ..., 'trad_cnn': ..., 'real_algs': ...}}
        where 'mean' averages all subsets' scores (each subset weighs the same, as in the paper)
        and the group keys appear when all their subsets are present.
    """
    from .stats import bootstrap_ci, stratified_bootstrap_ci

    subsets = list(dict.fromkeys(res.subset.tolist()))
    out: dict = {}
    for m in res.metrics:
        per = twoafc_scores(res.d0[m], res.d1[m], res.judge)  # (N,) agreement per triplet
        row: dict = {}
        for s in subsets:
            mask = res.subset == s
            row[s] = _cell(per[mask].mean(), bootstrap_ci(per[mask], level=level, n_resamples=n_resamples,
                                                          seed=seed), mask.sum())
        groups = {"mean": tuple(subsets)}
        groups.update({g: members for g, members in GROUPS.items() if all(x in subsets for x in members)})
        for g, members in groups.items():
            if g == "mean" and len(subsets) == 1:
                row[g] = row[subsets[0]]
                continue
            mask = np.isin(res.subset, members)
            value = float(np.mean([row[x]["score"] for x in members]))
            row[g] = _cell(value, stratified_bootstrap_ci(per[mask], res.subset[mask], level=level,
                                                          n_resamples=n_resamples, seed=seed), mask.sum())
        out[m] = row
    return out


def score_jnd_results(res: JNDDistances, n_resamples: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """JND mAP per metric and subset with percentile-bootstrap intervals (pairs resampled)."""
    subsets = list(dict.fromkeys(res.subset.tolist()))
    rng = np.random.default_rng(seed)
    out: dict = {}
    alpha = (1 - level) / 2
    for m in res.metrics:
        row = {}
        for s in subsets:
            mask = res.subset == s
            d, same = res.d[m][mask], res.same[mask]
            boot = [score_jnd(d[i], same[i]) for i in rng.integers(0, d.size, size=(n_resamples, d.size))]
            boot = np.asarray(boot)[np.isfinite(boot)]
            ci = (np.quantile(boot, alpha), np.quantile(boot, 1 - alpha)) if boot.size else (np.nan, np.nan)
            row[s] = _cell(score_jnd(d, same), ci, mask.sum())
        if len(subsets) > 1:
            vals = [row[s]["score"] for s in subsets]
            row["mean"] = {"score": float(np.mean(vals)), "ci": [float("nan")] * 2, "n": int(len(res.same))}
        out[m] = row
    return out


def judgment_correlations(res: TwoAFCDistances) -> dict:
    """Per metric: Pearson/Spearman/Kendall between ``d0 - d1`` and the judgment ``h``.

    A positive correlation is right: when p0 is farther than p1, more judges prefer p1.
    """
    from .stats import correlations

    return {m: correlations(res.d0[m] - res.d1[m], res.judge) for m in res.metrics}


def paired_tests(res: TwoAFCDistances, baseline: str, n_resamples: int = 2000, seed: int = 0) -> dict:
    """Paired bootstrap test of every metric against ``baseline`` on the same triplets."""
    from .stats import paired_bootstrap_test

    base = twoafc_scores(res.d0[baseline], res.d1[baseline], res.judge)
    out = {}
    for m in res.metrics:
        if m != baseline:
            out[m] = paired_bootstrap_test(twoafc_scores(res.d0[m], res.d1[m], res.judge), base,
                                           n_resamples=n_resamples, seed=seed)
    return out


# --------------------------------------------------------------------------- data and notes
def _dataset_root(path: Path) -> Path:
    """The folder holding ``2afc/`` or ``jnd/`` above ``path`` (or ``path``'s own folder)."""
    start = path if path.is_dir() else path.parent
    for folder in [start, *list(start.parents)[:3]]:
        if (folder / "2afc").is_dir() or (folder / "jnd").is_dir():
            return folder
    return start


def judgment_note(data: str | Path | None) -> str:
    """Where the judgments come from, for every report: the mini set's are simulated.

    Reads the data card (``README.md``) of the dataset root; a card that says
    "simulated" (the mini set's does) gives the simulated-observer warning, naming the
    observer when the card does (a metric equal to the observer wins by construction).
    """
    import re

    if data is None:
        return "Judgments: supplied in memory (source unknown)."
    root = _dataset_root(Path(data))
    card = root / "README.md"
    text = card.read_text(errors="replace") if card.is_file() else ""
    if "simulated" in text.lower() or root.name == "mini_bapps":
        observer = re.search(r"observer\s+`([^`]+)`", text)
        who = f" ({observer.group(1)})" if observer else ""
        return (f"Judgments come from a SIMULATED observer{who} (see {card}), not from people; scores here "
                f"are agreement with that simulation, not with human perception"
                + (", and the metric the observer uses is favoured by construction." if who else "."))
    return f"Judgments: as stored in {root}."


def open_datasets(data: str | Path, load_size: int = 64, subsets: Sequence[str] | None = None,
                  split: str = "val") -> dict:
    """The 2AFC and/or JND datasets under ``data`` (BAPPS layout, a split folder, or a table).

    Returns:
        {'2afc': TwoAFCDataset, 'jnd': JNDDataset}, whichever exist.
    """
    from .data import DataError, JNDDataset, TwoAFCDataset

    root = Path(data)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such dataset folder or file")
    out = {}
    if root.is_dir() and ((root / "2afc").is_dir() or (root / "jnd").is_dir()):
        if (root / "2afc").is_dir():
            out["2afc"] = TwoAFCDataset(root, subsets=subsets, load_size=load_size, split=split)
        if (root / "jnd").is_dir() and any((root / "jnd").iterdir()):
            out["jnd"] = JNDDataset(root, subsets=subsets, load_size=load_size, split=split)
        return out
    errors = []
    for key, cls in (("2afc", TwoAFCDataset), ("jnd", JNDDataset)):
        try:
            out[key] = cls(root, subsets=subsets, load_size=load_size)
            return out
        except DataError as exc:
            errors.append(str(exc))
    raise FileNotFoundError(f"{root}: no 2AFC or JND data found ({'; '.join(errors)})")


# --------------------------------------------------------------------------- tables
def _pct(x: float) -> str:
    return "-" if x is None or not np.isfinite(x) else f"{100 * x:.1f}"


def markdown_table(scores: dict, title: str = "2AFC agreement (%)", note: str = "",
                   paper: Mapping[str, Mapping[str, float]] | None = None,
                   speed: Mapping[str, float] | None = None) -> str:
    """Metric x subset table, each cell ``score [low, high]`` in percent.

    Args:
        scores: output of :func:`score_2afc_results` (or the JND scorer).
        paper: optional {metric: {'trad_cnn': %, 'real_algs': %}} shown in extra columns.
        speed: optional {metric: pairs/s}.
    """
    metrics = list(scores)
    if not metrics:
        return f"### {title}\n\n(no results)\n"
    cols = [c for c in next(iter(scores.values())) if c not in ("mean", *GROUPS)]
    cols += [c for c in ("trad_cnn", "real_algs", "mean") if c in next(iter(scores.values()))]
    header = ["metric"] + [{"trad_cnn": "Trad+CNN avg", "real_algs": "real algs avg",
                            "mean": "mean of subsets"}.get(c, c) for c in cols]
    if paper is not None:
        header += ["paper Trad+CNN", "paper real algs"]
    if speed is not None:
        header += ["pairs/s"]
    lines = [f"### {title}", ""]
    if note:
        lines += [f"> {note}", ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for m in metrics:
        cells = [m]
        for c in cols:
            cell = scores[m].get(c)
            if cell is None:
                cells.append("-")
            else:
                lo, hi = (np.nan if v is None else v for v in (cell.get("ci") or [None, None]))
                ci = "" if not (np.isfinite(lo) and np.isfinite(hi)) else f" [{_pct(lo)}, {_pct(hi)}]"
                cells.append(f"{_pct(cell['score'])}{ci}")
        if paper is not None:
            ref = paper.get(m, {})
            cells += [f"{ref['trad_cnn']:.1f}" if "trad_cnn" in ref else "-",
                      f"{ref['real_algs']:.1f}" if "real_algs" in ref else "-"]
        if speed is not None:
            cells.append(f"{speed[m]:.0f}" if m in speed else "-")
        lines.append("| " + " | ".join(cells) + " |")
    if paper is not None:
        lines += ["", f"Paper columns: {PAPER_CITATION}; human agreement there: "
                      f"{PAPER_2AFC['human']['trad_cnn']} (Trad+CNN), {PAPER_2AFC['human']['real_algs']} (real algs)."]
    lines.append("")
    return "\n".join(lines)


def _p(p: float) -> str:
    """A p-value for a table: doubles underflow to 0 below ~1e-308."""
    if p is None or not np.isfinite(p):
        return "-"
    return "<1e-300" if p < 1e-300 else f"{p:.1e}"


def correlation_table(corrs: dict, note: str = "") -> str:
    """Markdown: Pearson / Spearman / Kendall of (d0 - d1) with the judgment, with p-values."""
    lines = ["### Correlation of distance difference (d0 - d1) with the judgment", ""]
    if note:
        lines += [f"> {note}", ""]
    lines += ["| metric | Pearson r (p) | Spearman rho (p) | Kendall tau (p) |", "|---|---|---|---|"]
    for m, c in corrs.items():
        cells = [f"{c[k]['r']:.3f} ({_p(c[k]['p'])})" for k in ("pearson", "spearman", "kendall")]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _clean(o):
    """Replace NaN/inf by None so the JSON is standard."""
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, (np.floating,)):
        return _clean(float(o))
    return o


def write_json(path: str | Path, obj) -> None:
    from .atomic import atomic_write_text

    atomic_write_text(path, json.dumps(_clean(obj), indent=2, default=_json_default) + "\n")


def write_distances_csv(path: str | Path, res: TwoAFCDistances) -> None:
    """Per-triplet distances of every metric (id, subset, judge, <metric>_d0, <metric>_d1)."""
    from .cli import write_csv

    header = ["id", "subset", "judge"] + [f"{m}_{k}" for m in res.metrics for k in ("d0", "d1")]
    rows = ([res.ids[i], res.subset[i], f"{res.judge[i]:.6g}"]
            + [f"{getattr(res, k)[m][i]:.8g}" for m in res.metrics for k in ("d0", "d1")]
            for i in range(len(res.judge)))
    write_csv(path, header, rows)


# --------------------------------------------------------------------------- runners
def _metric_specs(model: str | None, net: str, metrics: Iterable[str]) -> list[str]:
    """'lpips' in ``metrics`` means: the model chosen by ``model`` ('official' or a checkpoint path)."""
    specs = []
    for m in metrics:
        m = m.strip()
        if not m:
            continue
        if m.lower() == "lpips":
            specs.append(f"lpips-{net}" if model in (None, "official") else str(model))
        else:
            specs.append(m)
    return specs


def evaluate(data, out_dir, metrics: Sequence[str] = DEFAULT_METRICS, model: str = "official",
             net: str = "alex", version: str = "0.1", batch_size: int = 50, n_resamples: int = 1000,
             load_size: int = 64, subsets: Sequence[str] | None = None, device: str = "cpu",
             progress: bool = True, datasets: Mapping | None = None, verbose: bool = True) -> dict:
    """Score metrics on a 2AFC (and JND, when present) dataset; write results.json and results.md.

    Args:
        data: dataset folder (see :func:`open_datasets`); ignored when ``datasets`` is given.
        out_dir: where results.json, results.md and distances_2afc.csv go.
        metrics: specs for :func:`make_distance`; 'lpips' stands for ``model``.
        model: 'official' (shipped weights of ``net``) or a trained checkpoint path.
        datasets: {'2afc': dataset, 'jnd': dataset} to use instead of reading ``data``.
    Returns:
        the results dict written to results.json.
    """
    out_dir = Path(out_dir)
    datasets = dict(datasets) if datasets is not None else open_datasets(data, load_size, subsets)
    if not datasets:
        raise FileNotFoundError(f"{data}: no 2AFC or JND data")
    fns = _as_functions([make_distance(s, net=net, version=version, device=device)
                         for s in _metric_specs(model, net, metrics)])
    note = judgment_note(data)
    results: dict = {"data": str(data) if data is not None else None, "judgments": note,
                     "metrics": {k: {"kind": f.kind, "label": f.label} for k, f in fns.items()},
                     "n_resamples": n_resamples}
    md = [f"# Evaluation on {data}", "", f"> {note}", ""]
    if "2afc" in datasets:
        res = collect_2afc(fns, datasets["2afc"], batch_size=batch_size, device=device, progress=progress)
        scores = score_2afc_results(res, n_resamples=n_resamples)
        speed = {m: res.pairs_per_second(m) for m in res.metrics}
        results["2afc"] = scores
        results["n_triplets"] = int(len(res.judge))
        results["pairs_per_second"] = speed
        results["correlations"] = judgment_correlations(res)
        md.append(markdown_table(scores, "2AFC agreement (%), 95% bootstrap CI", speed=speed))
        md.append(correlation_table(results["correlations"]))
        write_distances_csv(out_dir / "distances_2afc.csv", res)
        results["_2afc_distances"] = res
    if "jnd" in datasets:
        jres = collect_jnd(fns, datasets["jnd"], batch_size=batch_size, device=device, progress=progress)
        results["jnd"] = score_jnd_results(jres, n_resamples=min(n_resamples, 500))
        md.append(markdown_table(results["jnd"], "JND mAP (%), 95% bootstrap CI"))
        results["_jnd_distances"] = jres
    text = "\n".join(md)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "results.json", {k: v for k, v in results.items() if not k.startswith("_")})
    from .atomic import atomic_write_text

    atomic_write_text(out_dir / "results.md", text)
    if verbose:
        print(text)
    return results


# --------------------------------------------------------------------------- compare-models
def _group(fn: DistanceFunction) -> str:
    """Architecture group for the speed/accuracy plot."""
    if fn.kind in ("lpips", "net", "checkpoint"):
        return fn.name.split("-")[-1] if fn.kind != "checkpoint" else f"trained ({fn.name.split('-')[-1]})"
    return "DISTS (VGG16)" if fn.name == "dists" else "traditional"


def build_metrics(specs: Sequence[str], device: str = "cpu", net: str = "alex",
                  skip_unavailable: bool = True) -> tuple[dict[str, DistanceFunction], dict[str, str]]:
    """Distance functions for ``specs``; those whose weights cannot be had are skipped with the reason."""
    from .weights import WeightsError

    fns, skipped = {}, {}
    for spec in specs:
        try:
            fn = make_distance(spec, net=net, device=device)
        except (WeightsError, RuntimeError) as exc:
            if not skip_unavailable:
                raise
            skipped[spec] = str(exc).splitlines()[0]
            print(f"lpips-core: skipping {spec}: {skipped[spec]}", file=sys.stderr)
            continue
        fns[fn.name] = fn
    return fns, skipped


def _paired_table(tests: dict, baseline: str) -> str:
    lines = [f"### Paired bootstrap test against {baseline} (same triplets)", "",
             "| metric | difference (points) | 95% CI | p-value |", "|---|---|---|---|"]
    for m, t in tests.items():
        lines.append(f"| {m} | {100 * t['difference']:+.1f} | [{100 * t['ci'][0]:+.1f}, {100 * t['ci'][1]:+.1f}] "
                     f"| {t['p_value']:.3g} |")
    lines.append("")
    return "\n".join(lines)


def write_2afc_plots(out_dir: Path, res: TwoAFCDistances, scores: dict, corrs: dict,
                     groups: Mapping[str, str], note: str, speed: Mapping[str, float] | None = None) -> list[Path]:
    """The compare-models figures: bars with CIs, difference scatter, distributions, correlations, speed."""
    from . import plots

    out_dir = Path(out_dir)
    paths = [out_dir / n for n in ("2afc_bars.png", "difference_vs_judgment.png", "distance_distributions.png",
                                   "correlations.png", "speed_vs_accuracy.png")]
    plots.plot_2afc_bars(scores, paths[0], title="2AFC agreement per subset (95% bootstrap CI)", note=note)
    plots.plot_difference_scatter({m: res.d0[m] - res.d1[m] for m in res.metrics}, res.judge, paths[1], note=note)
    plots.plot_distance_distributions({m: np.r_[res.d0[m], res.d1[m]] for m in res.metrics}, paths[2], note=note)
    plots.plot_correlation_bars(corrs, paths[3], note=note)
    speed = speed if speed is not None else {m: res.pairs_per_second(m) for m in res.metrics}
    points = [{"name": m, "pairs_per_second": speed[m], "score": scores[m]["mean"]["score"],
               "ci": scores[m]["mean"]["ci"], "group": groups[m]} for m in res.metrics if speed.get(m)]
    plots.plot_speed_accuracy(points, paths[4], note=note)
    return paths


def compare_models(data, out_dir, metrics: Sequence[str] = COMPARE_METRICS, extra: Sequence[str] = (),
                   batch_size: int = 50, n_resamples: int = 1000, load_size: int = 64,
                   subsets: Sequence[str] | None = None, device: str = "cpu", progress: bool = True,
                   datasets: Mapping | None = None, fns: Mapping[str, DistanceFunction] | None = None,
                   baseline: str = "lpips-alex", verbose: bool = True, title: str | None = None) -> dict:
    """alex/vgg/squeeze x (net, lin), traditional metrics and DISTS, side by side with the paper.

    Writes to ``out_dir``: results.json, results.md (2AFC table with CIs, the paper's
    published averages, pairs/s; correlations; paired tests; JND), distances_2afc.csv and
    the figures 2afc_bars.png, difference_vs_judgment.png, distance_distributions.png,
    correlations.png, speed_vs_accuracy.png.

    Args:
        metrics: specs for :func:`make_distance`; ``extra`` adds more (e.g. checkpoints).
        fns: ready distance functions to use instead of ``metrics``.
        baseline: metric the paired bootstrap tests compare against.
    Returns:
        the results dict (as written to results.json).
    """
    out_dir = Path(out_dir)
    datasets = dict(datasets) if datasets is not None else open_datasets(data, load_size, subsets)
    if "2afc" not in datasets:
        raise FileNotFoundError(f"{data}: compare-models needs 2AFC data")
    skipped: dict[str, str] = {}
    if fns is None:
        fns, skipped = build_metrics(list(metrics) + list(extra), device=device)
    fns = dict(fns)
    res = collect_2afc(fns, datasets["2afc"], batch_size=batch_size, device=device, progress=progress)
    jnd = None
    if "jnd" in datasets:
        jres = collect_jnd(fns, datasets["jnd"], batch_size=batch_size, device=device, progress=progress)
        jnd = score_jnd_results(jres, n_resamples=min(n_resamples, 500))
    meta = {k: {"kind": f.kind, "label": f.label, "group": _group(f)} for k, f in fns.items()}
    return compare_report(res, out_dir, meta, data=data, jnd_scores=jnd, skipped=skipped,
                          n_resamples=n_resamples, baseline=baseline, title=title, verbose=verbose)


def compare_report(res: TwoAFCDistances, out_dir, meta: Mapping[str, Mapping[str, str]], data=None,
                   jnd_scores: dict | None = None, skipped: Mapping[str, str] | None = None,
                   n_resamples: int = 1000, baseline: str = "lpips-alex", title: str | None = None,
                   speed: Mapping[str, float] | None = None, verbose: bool = True) -> dict:
    """Scores, intervals, tests, tables and figures of :func:`compare_models` from collected distances.

    Args:
        res: distances of every metric (:func:`collect_2afc`, or :func:`read_distances_csv`).
        meta: {metric: {'kind', 'label', 'group'}}.
        jnd_scores: output of :func:`score_jnd_results`, if any.
        speed: pairs/s per metric; default: measured in ``res``.
    """
    out_dir = Path(out_dir)
    skipped = dict(skipped or {})
    note = judgment_note(data)
    scores = score_2afc_results(res, n_resamples=n_resamples)
    corrs = judgment_correlations(res)
    speed = dict(speed) if speed is not None else {m: res.pairs_per_second(m) for m in res.metrics}
    base = baseline if baseline in res.metrics else res.metrics[0]
    tests = paired_tests(res, base)
    results: dict = {"data": str(data) if data is not None else None, "judgments": note,
                     "paper": {"values": PAPER_2AFC, "citation": PAPER_CITATION},
                     "metrics": {k: dict(meta[k]) for k in res.metrics},
                     "skipped": skipped, "n_triplets": int(len(res.judge)),
                     "subsets": {s: int(np.sum(res.subset == s)) for s in dict.fromkeys(res.subset.tolist())},
                     "2afc": scores, "pairs_per_second": speed, "correlations": corrs,
                     "paired_tests": {"baseline": base, "tests": tests}, "n_resamples": n_resamples}
    md = [f"# {title or 'Model comparison'} on {data}", "", f"> {note}", ""]
    md.append(markdown_table(scores, "2AFC agreement (%), 95% bootstrap CI", paper=PAPER_2AFC, speed=speed))
    md.append("Pairs/s: distances per second on this machine (features included, data loading excluded), "
              "measured in this run.\n")
    md.append(correlation_table(corrs))
    md.append(_paired_table(tests, base))
    if jnd_scores is not None:
        results["jnd"] = jnd_scores
        md.append(markdown_table(jnd_scores, "JND mAP (%), 95% bootstrap CI"))
    if skipped:
        md.append("Skipped (weights unavailable): " + "; ".join(f"{k}: {v}" for k, v in skipped.items()) + "\n")
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = write_2afc_plots(out_dir, res, scores, corrs, {m: meta[m]["group"] for m in res.metrics}, note,
                               speed=speed)
    results["figures"] = [p.name for p in figures]
    md.append("Figures: " + ", ".join(f"[{p.name}]({p.name})" for p in figures) + "\n")
    text = "\n".join(md)
    write_json(out_dir / "results.json", results)
    write_distances_csv(out_dir / "distances_2afc.csv", res)
    from .atomic import atomic_write_text

    atomic_write_text(out_dir / "results.md", text)
    if verbose:
        print(text)
    results["_2afc_distances"] = res
    return results


def read_distances_csv(path: str | Path) -> TwoAFCDistances:
    """Read back :func:`write_distances_csv` (timings are not stored: ``seconds`` is empty)."""
    import csv

    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    if header[:3] != ["id", "subset", "judge"] or (len(header) - 3) % 2:
        raise ValueError(f"{path}: not a distances_2afc.csv (header {','.join(header[:5])}...)")
    cols = list(zip(*body)) if body else [[] for _ in header]
    metrics = [h[:-3] for h in header[3::2]]
    return TwoAFCDistances(judge=np.array(cols[2], dtype=float), subset=np.array(cols[1]), ids=list(cols[0]),
                           d0={m: np.array(cols[3 + 2 * i], dtype=float) for i, m in enumerate(metrics)},
                           d1={m: np.array(cols[4 + 2 * i], dtype=float) for i, m in enumerate(metrics)})


# --------------------------------------------------------------------------- demo
DEMO_BASELINES = ("lpips-alex", "net-alex", "lpips-squeeze", "l2_lab", "ssim", "psnr")


def run_demo(out_dir: str | Path = "demo_results", data: str | Path | None = None, net: str = "alex",
             epochs: int = 5, n_resamples: int = 1000, batch_size: int = 50, device: str = "cpu",
             baselines: Sequence[str] = DEMO_BASELINES, progress: bool = True, verbose: bool = True) -> dict:
    """The whole course in one command: data -> training -> evaluation -> tables and plots.

    1. builds the mini set (``lpips_core.mini_bapps``) unless ``data`` is given or it exists;
    2. trains a ``lin`` model on its 2afc/train split (feature-cached fast path);
    3. compares it on 2afc/val and jnd/val with the official weights, the "net"
       baseline and the traditional metrics (:func:`compare_models`).

    Writes ``out_dir/train/`` (checkpoints, history, exported weights) and
    ``out_dir/`` results.json, results.md and the figures. About 5-10 minutes on 2 CPU
    cores, most of it building the mini set the first time.

    Returns:
        the comparison results, with 'training' (the training summary) added.
    """
    from .metrics import LPIPSDistance

    t_start = time.perf_counter()
    out_dir = Path(out_dir)
    try:
        from . import mini_bapps
    except ImportError as exc:  # pragma: no cover - the module ships with the package
        raise RuntimeError("lpips_core.mini_bapps is missing; cannot build the demo data") from exc
    try:
        from .train import TrainConfig, run_training
    except ImportError as exc:  # pragma: no cover
        raise RuntimeError("lpips_core.train is missing; cannot train the demo model") from exc

    if data is None:
        print("[demo 1/3] mini-BAPPS (simulated observer): building or reusing data/mini_bapps", file=sys.stderr)
        data = mini_bapps.ensure_mini_bapps()
    data = Path(data)
    print(f"[demo 2/3] training a lin {net} model on {data}/2afc/train ({epochs} epochs, fast path)",
          file=sys.stderr)
    config = TrainConfig(net=net, mode="lin", epochs=epochs, fast=True, device=device, progress=progress,
                         batch_size=batch_size)
    summary = run_training(data, out_dir / "train", config, baselines=False)
    trained_path = next(p for p in summary["exported"] if p.endswith(".pth"))
    print(f"[demo 3/3] evaluating {trained_path} against the official weights and traditional metrics",
          file=sys.stderr)
    from .metrics import load_lpips_checkpoint

    fns: dict[str, DistanceFunction] = {
        f"trained-{net}": LPIPSDistance(load_lpips_checkpoint(trained_path), name=f"trained-{net}",
                                        kind="checkpoint", device=device)}
    more, _ = build_metrics(baselines, device=device)
    fns.update(more)
    results = compare_models(data, out_dir, fns=fns, n_resamples=n_resamples, batch_size=batch_size,
                             device=device, progress=progress, baseline=f"lpips-{net}", verbose=verbose,
                             title=f"Demo: a lin {net} model trained for {epochs} epochs")
    results["training"] = summary
    results["demo_seconds"] = time.perf_counter() - t_start
    write_json(out_dir / "results.json", {k: v for k, v in results.items() if not k.startswith("_")})
    print(f"demo finished in {results['demo_seconds']:.0f} s; results in {out_dir}", file=sys.stderr)
    return results
