"""Evaluation runs: score metrics on 2AFC and JND judgments and write the reports.

:func:`evaluate` (``lpips-core evaluate``) writes ``results.json`` and ``results.md``
(metric x subset, with intervals) and ``distances_2afc.csv``; :func:`compare_models`
(``lpips-core compare-models``) adds every architecture, the "net" baselines, the
traditional metrics, the paper's published numbers, paired tests and figures.
Each run takes a config (:class:`EvalConfig`, :class:`CompareConfig`), computes a
typed result (:func:`score_eval`, :func:`score_comparison`: :class:`EvalResult`,
:class:`CompareResult`, whose ``to_dict()`` is results.json) and writes its report
(:func:`write_eval_report`, :func:`write_compare_report`). They collect through
:mod:`.collect`, score through :mod:`.scores` and write through :mod:`.reports` and
:mod:`lpips_core.files`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path

import numpy as np

from ..data import DataError, JNDDataset, TwoAFCDataset
from ..files import write_json, write_text
from ..model import WeightsError
from . import plots
from .collect import JNDDistances, TwoAFCDistances, as_functions, collect_2afc, collect_jnd
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

__all__ = [
    "DEFAULT_METRICS",
    "COMPARE_METRICS",
    "COMPARE_FIGURES",
    "ScoringOptions",
    "EvalConfig",
    "EvalResult",
    "CompareConfig",
    "CompareResult",
    "check_scoring_options",
    "open_datasets",
    "build_metrics",
    "score_eval",
    "write_eval_report",
    "evaluate",
    "score_comparison",
    "compare_distances",
    "write_compare_report",
    "write_2afc_plots",
    "compare_models",
]

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


def check_scoring_options(batch_size: int, n_resamples: int, load_size: int | None) -> None:
    """The numeric options of ``evaluate``/``compare-models``, checked before any data is read.

    Raises:
        ValueError: naming the option and the values it takes.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} (--batch-size); use 1 or more triplets")
    if n_resamples < 1:
        raise ValueError(
            f"n_resamples={n_resamples} (--resamples); the bootstrap intervals need 1 or more (1000 is the default)"
        )
    if load_size is not None and load_size < 1:
        raise ValueError(f"load_size={load_size} (--load-size); use 1 or more pixels, or None (0 on the command line)")


@dataclass
class ScoringOptions:
    """What ``lpips-core evaluate`` and ``compare-models`` share: the data, where reports go, how
    triplets are scored. Only ``data`` and ``out_dir`` are positional.

    Data and reports:
        data: dataset folder or table (see :func:`open_datasets`); ignored when the run is
            given ready ``datasets`` (None: supplied in memory).
        out_dir: where results.json, results.md, distances_2afc.csv and any figures go.
        load_size: side in pixels images are resized to; None keeps each at full size
            (then one triplet per batch). subsets: only these subsets (None: all).
    Scoring and running:
        batch_size: triplets per batch (>= 1). n_resamples: bootstrap resamples of the
        95% intervals (>= 1; JND uses at most 500). device: 'cpu', 'cuda', ...
        progress: progress bars on stderr. verbose: print the Markdown report.
    """

    data: str | Path | None
    out_dir: str | Path
    _: KW_ONLY
    batch_size: int = 50
    n_resamples: int = 1000
    load_size: int | None = 64
    subsets: Sequence[str] | None = None
    device: str = "cpu"
    progress: bool = True
    verbose: bool = True

    def __post_init__(self) -> None:
        check_scoring_options(self.batch_size, self.n_resamples, self.load_size)


@dataclass
class EvalConfig(ScoringOptions):
    """What ``lpips-core evaluate`` runs: the :class:`ScoringOptions` and which metrics.

    Metrics:
        metrics: specs for :func:`make_distance`; 'lpips' stands for ``model``.
        model: 'official' (shipped weights of ``net``) or a trained checkpoint path.
        net, version: trunk (alex | vgg | squeeze) and linear-weight version ('0.1' | '0.0').
    """

    metrics: Sequence[str] = DEFAULT_METRICS
    model: str = "official"
    net: str = "alex"
    version: str = "0.1"


@dataclass
class EvalResult:
    """What :func:`evaluate` computed; :meth:`to_dict` is its results.json.

    Attributes:
        data: the dataset as given (str), None for datasets supplied in memory.
        judgments: where the judgments come from (:func:`judgment_note`).
        metrics: {metric: {'kind', 'label', 'signature'}}.
        n_resamples: bootstrap resamples of the intervals.
        twoafc: 2AFC agreement {metric: {subset or group: {'score', 'ci', 'n'}}} (results.json's
            '2afc'); None without 2AFC data. So are the next three.
        n_triplets: 2AFC triplets scored.
        pairs_per_second: {metric: distances per second measured in this run}.
        correlations: {metric: correlations of d1 - d0 with the judgments}.
        jnd: JND mAP, laid out as ``twoafc``; None without JND data.
        distances_2afc, distances_jnd: every metric's distances (not in results.json).
    """

    data: str | None
    judgments: str
    metrics: dict
    n_resamples: int
    twoafc: dict | None = None
    n_triplets: int | None = None
    pairs_per_second: dict | None = None
    correlations: dict | None = None
    jnd: dict | None = None
    distances_2afc: TwoAFCDistances | None = None
    distances_jnd: JNDDistances | None = None

    def to_dict(self) -> dict:
        """The results.json content: the fields above without the distances, '2afc' for ``twoafc``."""
        out = {"data": self.data, "judgments": self.judgments, "metrics": self.metrics, "n_resamples": self.n_resamples}
        if self.twoafc is not None:
            out.update(
                {
                    "2afc": self.twoafc,
                    "n_triplets": self.n_triplets,
                    "pairs_per_second": self.pairs_per_second,
                    "correlations": self.correlations,
                }
            )
        if self.jnd is not None:
            out["jnd"] = self.jnd
        return out

    def markdown(self) -> str:
        """results.md: the 2AFC table with intervals and pairs/s, the correlations, JND, the signatures."""
        md = [f"# Evaluation on {self.data}", "", f"> {self.judgments}", ""]
        if self.twoafc is not None:
            md.append(markdown_table(self.twoafc, "2AFC agreement (%), 95% bootstrap CI", speed=self.pairs_per_second))
            md.append(correlation_table(self.correlations))
        if self.jnd is not None:
            md.append(markdown_table(self.jnd, "JND mAP (%), 95% bootstrap CI"))
        md.append(signature_lines(self.metrics))
        return "\n".join(md)


def score_eval(config: EvalConfig, *, datasets: Mapping | None = None) -> EvalResult:
    """The computing half of :func:`evaluate`: collect every metric's distances and score them.

    Args:
        datasets: {'2afc': dataset, 'jnd': dataset} to use instead of reading ``config.data``.
    """
    data, load_size = config.data, config.load_size
    datasets = dict(datasets) if datasets is not None else open_datasets(data, load_size, config.subsets)
    if not datasets:
        raise FileNotFoundError(f"{data}: no 2AFC or JND data")
    # full-size images differ in size between references, so they cannot share a batch
    batch_size = 1 if load_size is None else config.batch_size
    specs = _metric_specs(config.model, config.net, config.metrics)
    fns = as_functions([make_distance(s, net=config.net, version=config.version, device=config.device) for s in specs])
    result = EvalResult(
        data=str(data) if data is not None else None,
        judgments=judgment_note(data),
        metrics={k: {"kind": f.kind, "label": f.label, "signature": _signature(f, load_size)} for k, f in fns.items()},
        n_resamples=config.n_resamples,
    )
    run = {"batch_size": batch_size, "device": config.device, "progress": config.progress}
    if "2afc" in datasets:
        res = collect_2afc(fns, datasets["2afc"], **run)
        result.twoafc = score_2afc_results(res, n_resamples=config.n_resamples)
        result.n_triplets = int(len(res.judge))
        result.pairs_per_second = {m: res.pairs_per_second(m) for m in res.metrics}
        result.correlations = judgment_correlations(res)
        result.distances_2afc = res
    if "jnd" in datasets:
        jres = collect_jnd(fns, datasets["jnd"], **run)
        result.jnd = score_jnd_results(jres, n_resamples=min(config.n_resamples, 500))
        result.distances_jnd = jres
    return result


def write_eval_report(result: EvalResult, out_dir: str | Path) -> None:
    """Write results.json, results.md and (with 2AFC data) distances_2afc.csv into ``out_dir``."""
    out_dir = Path(out_dir)
    if result.distances_2afc is not None:
        write_distances_csv(out_dir / "distances_2afc.csv", result.distances_2afc)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "results.json", result.to_dict())
    write_text(out_dir / "results.md", result.markdown())


def evaluate(config: EvalConfig, *, datasets: Mapping | None = None) -> EvalResult:
    """Score metrics on a 2AFC (and JND, when present) dataset; write results.json and results.md.

    :func:`score_eval`, then :func:`write_eval_report` into ``config.out_dir``; the
    Markdown is printed when ``config.verbose``.

    Args:
        config: the run (see :class:`EvalConfig`).
        datasets: {'2afc': dataset, 'jnd': dataset} to use instead of reading ``config.data``.
    """
    result = score_eval(config, datasets=datasets)
    write_eval_report(result, config.out_dir)
    if config.verbose:
        print(result.markdown())
    return result


def _signature(fn, load_size: int | None) -> str | None:
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


#: The figures :func:`compare_models` draws, in order.
COMPARE_FIGURES = (
    "2afc_bars.png",
    "difference_vs_judgment.png",
    "distance_distributions.png",
    "correlations.png",
    "speed_vs_accuracy.png",
)


def write_2afc_plots(
    out_dir: Path,
    res: TwoAFCDistances,
    scores: dict,
    corrs: dict,
    groups: Mapping[str, str],
    note: str,
    speed: Mapping[str, float] | None = None,
) -> list[Path]:
    """The compare-models figures (:data:`COMPARE_FIGURES`): bars with CIs, difference scatter,
    distributions, correlations, speed."""
    out_dir = Path(out_dir)
    paths = [out_dir / n for n in COMPARE_FIGURES]
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


@dataclass
class CompareConfig(ScoringOptions):
    """What ``lpips-core compare-models`` runs: the :class:`ScoringOptions` (2AFC data in the
    BAPPS layout; ready ``datasets`` may replace ``data``) and the metrics to compare.

    Metrics:
        metrics: specs for :func:`make_distance` (default: :data:`COMPARE_METRICS`, every
            architecture as net and lin, the traditional metrics, DISTS); ``extra`` adds more
            (e.g. checkpoint paths). Ignored when :func:`compare_models` is given ready ``fns``.
        baseline: the metric the paired bootstrap tests compare against (the first metric
            when it is not scored).
        title: the report's heading (None: 'Model comparison').
    """

    metrics: Sequence[str] = COMPARE_METRICS
    extra: Sequence[str] = ()
    baseline: str = "lpips-alex"
    title: str | None = None


@dataclass
class CompareResult:
    """What :func:`compare_models` computed; :meth:`to_dict` is its results.json.

    Attributes:
        data: the dataset as given (str), or None.
        judgments: where the judgments come from (:func:`judgment_note`).
        metrics: {metric: {'kind', 'label', 'group', 'signature'}}, in the order scored.
        skipped: {metric spec: why its weights were unavailable}.
        n_triplets: 2AFC triplets scored. subsets: {subset: triplets}.
        twoafc: 2AFC agreement {metric: {subset or group: {'score', 'ci', 'n'}}} (results.json's '2afc').
        pairs_per_second: {metric: distances per second}.
        correlations: {metric: correlations of d1 - d0 with the judgments}.
        baseline, paired_tests: the metric tested against, {metric: paired bootstrap test}.
        n_resamples: bootstrap resamples of the intervals.
        jnd: JND mAP laid out as ``twoafc``, or None.
        figures: the figure files (:data:`COMPARE_FIGURES`).
        distances: every metric's 2AFC distances (not in results.json).
        title: the report's heading (None: 'Model comparison'; not in results.json).
    """

    data: str | None
    judgments: str
    metrics: dict
    skipped: dict
    n_triplets: int
    subsets: dict
    twoafc: dict
    pairs_per_second: dict
    correlations: dict
    baseline: str
    paired_tests: dict
    n_resamples: int
    distances: TwoAFCDistances
    jnd: dict | None = None
    figures: list[str] = field(default_factory=lambda: list(COMPARE_FIGURES))
    title: str | None = None

    def to_dict(self) -> dict:
        """The results.json content, with the paper's published numbers and their citation."""
        out = {
            "data": self.data,
            "judgments": self.judgments,
            "paper": {"values": PAPER_2AFC, "citation": PAPER_CITATION},
            "metrics": self.metrics,
            "skipped": self.skipped,
            "n_triplets": self.n_triplets,
            "subsets": self.subsets,
            "2afc": self.twoafc,
            "pairs_per_second": self.pairs_per_second,
            "correlations": self.correlations,
            "paired_tests": {"baseline": self.baseline, "tests": self.paired_tests},
            "n_resamples": self.n_resamples,
        }
        if self.jnd is not None:
            out["jnd"] = self.jnd
        out["figures"] = list(self.figures)
        return out

    def markdown(self) -> str:
        """results.md: 2AFC with CIs beside the paper's numbers, pairs/s, correlations, paired tests, JND."""
        base = self.baseline
        md = [f"# {self.title or 'Model comparison'} on {self.data}", "", f"> {self.judgments}", ""]
        md.append(
            markdown_table(
                self.twoafc, "2AFC agreement (%), 95% bootstrap CI", paper=PAPER_2AFC, speed=self.pairs_per_second
            )
        )
        md.append(
            "Pairs/s: distances per second on this machine (features included, data loading excluded), "
            "measured in this run.\n"
        )
        md.append(correlation_table(self.correlations))
        md.append(
            paired_table(
                {f"{m} - {base}": t for m, t in self.paired_tests.items()},
                f"Paired bootstrap test against {base} (same triplets), 2AFC points",
            )
        )
        if self.jnd is not None:
            md.append(markdown_table(self.jnd, "JND mAP (%), 95% bootstrap CI"))
        if self.skipped:
            md.append(
                "Skipped (weights unavailable): " + "; ".join(f"{k}: {v}" for k, v in self.skipped.items()) + "\n"
            )
        md.append("Figures: " + ", ".join(f"[{n}]({n})" for n in self.figures) + "\n")
        md.append(signature_lines(self.metrics))
        return "\n".join(md)


def score_comparison(
    config: CompareConfig,
    *,
    datasets: Mapping | None = None,
    fns: Mapping[str, DistanceFunction] | None = None,
) -> CompareResult:
    """The computing half of :func:`compare_models`: collect every metric's distances, score, test.

    Args:
        datasets: {'2afc': dataset[, 'jnd': dataset]} to use instead of reading ``config.data``.
        fns: ready distance functions to use instead of ``config.metrics`` and ``config.extra``.
    """
    data, load_size = config.data, config.load_size
    datasets = dict(datasets) if datasets is not None else open_datasets(data, load_size, config.subsets)
    if "2afc" not in datasets:
        raise FileNotFoundError(f"{data}: compare-models needs 2AFC data")
    # full-size images differ in size between references
    run = {"batch_size": 1 if load_size is None else config.batch_size, "device": config.device}
    skipped: dict[str, str] = {}
    if fns is None:
        fns, skipped = build_metrics(list(config.metrics) + list(config.extra), device=config.device)
    fns = dict(fns)
    res = collect_2afc(fns, datasets["2afc"], progress=config.progress, **run)
    jnd = None
    if "jnd" in datasets:
        jres = collect_jnd(fns, datasets["jnd"], progress=config.progress, **run)
        jnd = score_jnd_results(jres, n_resamples=min(config.n_resamples, 500))
    meta = {
        k: {"kind": f.kind, "label": f.label, "group": _group(f), "signature": _signature(f, load_size)}
        for k, f in fns.items()
    }
    return compare_distances(
        res,
        meta,
        data=data,
        jnd_scores=jnd,
        skipped=skipped,
        n_resamples=config.n_resamples,
        baseline=config.baseline,
        title=config.title,
    )


def compare_distances(
    res: TwoAFCDistances,
    meta: Mapping[str, Mapping[str, str]],
    *,
    data: str | Path | None = None,
    jnd_scores: dict | None = None,
    skipped: Mapping[str, str] | None = None,
    n_resamples: int = 1000,
    baseline: str = "lpips-alex",
    title: str | None = None,
    speed: Mapping[str, float] | None = None,
) -> CompareResult:
    """Scores, intervals and paired tests of :func:`compare_models` from collected distances.

    Args:
        res: distances of every metric (:func:`collect_2afc`, or :func:`read_distances_csv`).
        meta: {metric: {'kind', 'label', 'group'[, 'signature']}}.
        data: the dataset, for its judgment note and the report.
        jnd_scores: output of :func:`score_jnd_results`, if any.
        baseline: metric the paired tests compare against (the first metric when it is absent).
        speed: pairs/s per metric; default: measured in ``res``.
    """
    base = baseline if baseline in res.metrics else res.metrics[0]
    return CompareResult(
        data=str(data) if data is not None else None,
        judgments=judgment_note(data),
        metrics={k: dict(meta[k]) for k in res.metrics},
        skipped=dict(skipped or {}),
        n_triplets=int(len(res.judge)),
        subsets={s: int(np.sum(res.subset == s)) for s in dict.fromkeys(res.subset.tolist())},
        twoafc=score_2afc_results(res, n_resamples=n_resamples),
        pairs_per_second=dict(speed) if speed is not None else {m: res.pairs_per_second(m) for m in res.metrics},
        correlations=judgment_correlations(res),
        baseline=base,
        paired_tests=paired_tests(res, base),
        n_resamples=n_resamples,
        distances=res,
        jnd=jnd_scores,
        title=title,
    )


def write_compare_report(result: CompareResult, out_dir: str | Path) -> list[Path]:
    """Write the figures, results.json, distances_2afc.csv and results.md into ``out_dir``.

    Returns:
        the figures' paths.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    res = result.distances
    groups = {m: result.metrics[m]["group"] for m in res.metrics}
    figures = write_2afc_plots(
        out_dir, res, result.twoafc, result.correlations, groups, result.judgments, speed=result.pairs_per_second
    )
    write_json(out_dir / "results.json", result.to_dict())
    write_distances_csv(out_dir / "distances_2afc.csv", res)
    write_text(out_dir / "results.md", result.markdown())
    return figures


def compare_models(
    config: CompareConfig,
    *,
    datasets: Mapping | None = None,
    fns: Mapping[str, DistanceFunction] | None = None,
) -> CompareResult:
    """alex/vgg/squeeze x (net, lin), traditional metrics and DISTS, side by side with the paper.

    :func:`score_comparison`, then :func:`write_compare_report` into ``config.out_dir``:
    results.json, results.md (2AFC table with CIs, the paper's published averages, pairs/s;
    correlations; paired tests; JND), distances_2afc.csv and the figures 2afc_bars.png,
    difference_vs_judgment.png, distance_distributions.png, correlations.png,
    speed_vs_accuracy.png. The Markdown is printed when ``config.verbose``.

    Args:
        config: the run (see :class:`CompareConfig`).
        datasets: {'2afc': dataset[, 'jnd': dataset]} to use instead of reading ``config.data``.
        fns: ready distance functions to use instead of ``config.metrics`` and ``config.extra``.
    """
    result = score_comparison(config, datasets=datasets, fns=fns)
    write_compare_report(result, config.out_dir)
    if config.verbose:
        print(result.markdown())
    return result
