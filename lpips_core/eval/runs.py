"""Evaluation runs: score metrics on 2AFC and JND judgments and write the reports.

:func:`evaluate` (``lpips-core evaluate``) writes ``results.json`` and ``results.md``
(metric x subset, with intervals) and ``distances_2afc.csv``; :func:`compare_models`
(``lpips-core compare-models``) adds every architecture, the "net" baselines, the
traditional metrics, the paper's published numbers, paired tests and figures.
Both collect through :mod:`.collect`, score through :mod:`.scores` and write through
:mod:`.reports` and :mod:`lpips_core.files`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from ..data import DataError, JNDDataset, TwoAFCDataset
from ..files import write_json, write_text
from ..model import WeightsError
from . import plots
from .collect import TwoAFCDistances, as_functions, collect_2afc, collect_jnd
from .distances import DistanceFunction, make_distance
from .registry import METRIC_SETS
from .reports import (
    PAPER_2AFC,
    PAPER_CITATION,
    correlation_table,
    judgment_note,
    markdown_table,
    paired_table,
    signature_lines,
    write_distances_csv,
)
from .scores import judgment_correlations, paired_tests, score_2afc_results, score_jnd_results

DEFAULT_METRICS = METRIC_SETS["evaluate"]
COMPARE_METRICS = METRIC_SETS["compare"]


def open_datasets(
    data: str | Path, load_size: int = 64, subsets: Sequence[str] | None = None, split: str = "val"
) -> dict:
    """The 2AFC and/or JND datasets under ``data`` (BAPPS layout, a split folder, or a table).

    Returns:
        {'2afc': TwoAFCDataset, 'jnd': JNDDataset}, whichever exist.
    """
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


def evaluate(
    data,
    out_dir,
    metrics: Sequence[str] = DEFAULT_METRICS,
    model: str = "official",
    net: str = "alex",
    version: str = "0.1",
    batch_size: int = 50,
    n_resamples: int = 1000,
    load_size: int = 64,
    subsets: Sequence[str] | None = None,
    device: str = "cpu",
    progress: bool = True,
    datasets: Mapping | None = None,
    verbose: bool = True,
) -> dict:
    """Score metrics on a 2AFC (and JND, when present) dataset; write results.json and results.md.

    Args:
        data: dataset folder (see :func:`open_datasets`); ignored when ``datasets`` is given.
        out_dir: where results.json, results.md and distances_2afc.csv go.
        metrics: specs for :func:`make_distance`; 'lpips' stands for ``model``.
        model: 'official' (shipped weights of ``net``) or a trained checkpoint path.
        load_size: side images are resized to; None keeps each at full size (one triplet per batch).
        datasets: {'2afc': dataset, 'jnd': dataset} to use instead of reading ``data``.
    Returns:
        the results dict written to results.json.
    """
    out_dir = Path(out_dir)
    datasets = dict(datasets) if datasets is not None else open_datasets(data, load_size, subsets)
    if not datasets:
        raise FileNotFoundError(f"{data}: no 2AFC or JND data")
    if load_size is None:
        batch_size = 1  # full-size images differ in size between references, so they cannot share a batch
    fns = as_functions(
        [make_distance(s, net=net, version=version, device=device) for s in _metric_specs(model, net, metrics)]
    )
    note = judgment_note(data)
    results: dict = {
        "data": str(data) if data is not None else None,
        "judgments": note,
        "metrics": {
            k: {"kind": f.kind, "label": f.label, "signature": _signature(f, load_size)} for k, f in fns.items()
        },
        "n_resamples": n_resamples,
    }
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
    md.append(signature_lines(results["metrics"]))
    text = "\n".join(md)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "results.json", {k: v for k, v in results.items() if not k.startswith("_")})
    write_text(out_dir / "results.md", text)
    if verbose:
        print(text)
    return results


def _signature(fn, load_size: int) -> str | None:
    """The metric's signature at the evaluation's patch size (None for plain callables)."""
    sig = getattr(fn, "signature", None)
    return sig(load_size) if callable(sig) else None


# --------------------------------------------------------------------------- compare-models
def _group(fn: DistanceFunction) -> str:
    """Architecture group for the speed/accuracy plot."""
    if fn.kind in ("lpips", "net", "checkpoint"):
        return fn.name.split("-")[-1] if fn.kind != "checkpoint" else f"trained ({fn.name.split('-')[-1]})"
    return "DISTS (VGG16)" if fn.name == "dists" else "traditional"


def build_metrics(
    specs: Sequence[str], device: str = "cpu", net: str = "alex", skip_unavailable: bool = True
) -> tuple[dict[str, DistanceFunction], dict[str, str]]:
    """Distance functions for ``specs``; those whose weights cannot be had are skipped with the reason."""
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


def write_2afc_plots(
    out_dir: Path,
    res: TwoAFCDistances,
    scores: dict,
    corrs: dict,
    groups: Mapping[str, str],
    note: str,
    speed: Mapping[str, float] | None = None,
) -> list[Path]:
    """The compare-models figures: bars with CIs, difference scatter, distributions, correlations, speed."""
    out_dir = Path(out_dir)
    paths = [
        out_dir / n
        for n in (
            "2afc_bars.png",
            "difference_vs_judgment.png",
            "distance_distributions.png",
            "correlations.png",
            "speed_vs_accuracy.png",
        )
    ]
    plots.plot_2afc_bars(scores, paths[0], title="2AFC agreement per subset (95% bootstrap CI)", note=note)
    plots.plot_difference_scatter({m: res.d0[m] - res.d1[m] for m in res.metrics}, res.judge, paths[1], note=note)
    plots.plot_distance_distributions({m: np.r_[res.d0[m], res.d1[m]] for m in res.metrics}, paths[2], note=note)
    plots.plot_correlation_bars(corrs, paths[3], note=note)
    speed = speed if speed is not None else {m: res.pairs_per_second(m) for m in res.metrics}
    points = [
        {
            "name": m,
            "pairs_per_second": speed[m],
            "score": scores[m]["mean"]["score"],
            "ci": scores[m]["mean"]["ci"],
            "group": groups[m],
        }
        for m in res.metrics
        if speed.get(m)
    ]
    plots.plot_speed_accuracy(points, paths[4], note=note)
    return paths


def compare_models(
    data,
    out_dir,
    metrics: Sequence[str] = COMPARE_METRICS,
    extra: Sequence[str] = (),
    batch_size: int = 50,
    n_resamples: int = 1000,
    load_size: int = 64,
    subsets: Sequence[str] | None = None,
    device: str = "cpu",
    progress: bool = True,
    datasets: Mapping | None = None,
    fns: Mapping[str, DistanceFunction] | None = None,
    baseline: str = "lpips-alex",
    verbose: bool = True,
    title: str | None = None,
) -> dict:
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
    if load_size is None:
        batch_size = 1  # full-size images differ in size between references
    skipped: dict[str, str] = {}
    if fns is None:
        fns, skipped = build_metrics(list(metrics) + list(extra), device=device)
    fns = dict(fns)
    res = collect_2afc(fns, datasets["2afc"], batch_size=batch_size, device=device, progress=progress)
    jnd = None
    if "jnd" in datasets:
        jres = collect_jnd(fns, datasets["jnd"], batch_size=batch_size, device=device, progress=progress)
        jnd = score_jnd_results(jres, n_resamples=min(n_resamples, 500))
    meta = {
        k: {"kind": f.kind, "label": f.label, "group": _group(f), "signature": _signature(f, load_size)}
        for k, f in fns.items()
    }
    return compare_report(
        res,
        out_dir,
        meta,
        data=data,
        jnd_scores=jnd,
        skipped=skipped,
        n_resamples=n_resamples,
        baseline=baseline,
        title=title,
        verbose=verbose,
    )


def compare_report(
    res: TwoAFCDistances,
    out_dir,
    meta: Mapping[str, Mapping[str, str]],
    data=None,
    jnd_scores: dict | None = None,
    skipped: Mapping[str, str] | None = None,
    n_resamples: int = 1000,
    baseline: str = "lpips-alex",
    title: str | None = None,
    speed: Mapping[str, float] | None = None,
    verbose: bool = True,
) -> dict:
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
    results: dict = {
        "data": str(data) if data is not None else None,
        "judgments": note,
        "paper": {"values": PAPER_2AFC, "citation": PAPER_CITATION},
        "metrics": {k: dict(meta[k]) for k in res.metrics},
        "skipped": skipped,
        "n_triplets": int(len(res.judge)),
        "subsets": {s: int(np.sum(res.subset == s)) for s in dict.fromkeys(res.subset.tolist())},
        "2afc": scores,
        "pairs_per_second": speed,
        "correlations": corrs,
        "paired_tests": {"baseline": base, "tests": tests},
        "n_resamples": n_resamples,
    }
    md = [f"# {title or 'Model comparison'} on {data}", "", f"> {note}", ""]
    md.append(markdown_table(scores, "2AFC agreement (%), 95% bootstrap CI", paper=PAPER_2AFC, speed=speed))
    md.append(
        "Pairs/s: distances per second on this machine (features included, data loading excluded), "
        "measured in this run.\n"
    )
    md.append(correlation_table(corrs))
    md.append(
        paired_table(
            {f"{m} - {base}": t for m, t in tests.items()},
            f"Paired bootstrap test against {base} (same triplets), 2AFC points",
        )
    )
    if jnd_scores is not None:
        results["jnd"] = jnd_scores
        md.append(markdown_table(jnd_scores, "JND mAP (%), 95% bootstrap CI"))
    if skipped:
        md.append("Skipped (weights unavailable): " + "; ".join(f"{k}: {v}" for k, v in skipped.items()) + "\n")
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = write_2afc_plots(
        out_dir, res, scores, corrs, {m: meta[m]["group"] for m in res.metrics}, note, speed=speed
    )
    results["figures"] = [p.name for p in figures]
    md.append("Figures: " + ", ".join(f"[{p.name}]({p.name})" for p in figures) + "\n")
    md.append(signature_lines(results["metrics"]))
    text = "\n".join(md)
    write_json(out_dir / "results.json", results)
    write_distances_csv(out_dir / "distances_2afc.csv", res)
    write_text(out_dir / "results.md", text)
    if verbose:
        print(text)
    results["_2afc_distances"] = res
    return results
