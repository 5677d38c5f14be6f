"""The evaluation layer: distance functions, collection, scores with intervals, reports, plots.

Modules, in the order results flow through them::

    registry               one record per metric (name, label, kind, direction): list_metrics, metric_info
    baselines, distances   traditional metrics, DISTS and LPIPS behind one DistanceFunction; make_metric
    collect                every metric's distances on a 2AFC / JND set, one pass over the data
    stats, scores          bootstrap intervals, paired tests, correlations; 2AFC / JND scores
    reports, plots         Markdown tables, the paper's numbers, distance files, figures
    runs, mos, mos_cache   ``lpips-core evaluate`` / ``compare-models`` / ``evaluate-mos`` (per-image cache)

The studies built on it (the audit, the published BAPPS judgments, 2AFC derived from DMOS)
are in :mod:`lpips_core.studies`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

#: Public name -> the module that defines it; loaded on first use (see lpips_core._lazy).
_EXPORTS = {
    "score_2afc": "..data.judgments",
    "score_jnd": "..data.judgments",
    "twoafc_scores": "..data.judgments",
    "TraditionalMetrics": ".baselines",
    "JNDDistances": ".collect",
    "TwoAFCDistances": ".collect",
    "collect_2afc": ".collect",
    "collect_jnd": ".collect",
    "DISTSDistance": ".distances",
    "DistanceFunction": ".distances",
    "LPIPSDistance": ".distances",
    "PixelDistance": ".distances",
    "make_distance": ".distances",
    "split_features": ".distances",
    "PAPER_2AFC": ".reports",
    "PAPER_CITATION": ".reports",
    "correlation_table": ".reports",
    "judgment_note": ".reports",
    "markdown_table": ".reports",
    "paired_table": ".reports",
    "read_distances_csv": ".reports",
    "write_distances_csv": ".reports",
    "COMPARE_METRICS": ".runs",
    "DEFAULT_METRICS": ".runs",
    "CompareConfig": ".runs",
    "CompareResult": ".runs",
    "EvalConfig": ".runs",
    "EvalResult": ".runs",
    "ScoringOptions": ".runs",
    "build_metrics": ".runs",
    "compare_distances": ".runs",
    "compare_models": ".runs",
    "evaluate": ".runs",
    "open_datasets": ".runs",
    "write_compare_report": ".runs",
    "write_eval_report": ".runs",
    "GROUPS": ".scores",
    "judgment_correlations": ".scores",
    "paired_tests": ".scores",
    "score_2afc_results": ".scores",
    "score_jnd_results": ".scores",
    "METRICS": ".registry",
    "METRIC_SETS": ".registry",
    "MetricInfo": ".registry",
    "list_metrics": ".registry",
    "make_metric": ".distances",
    "metric_info": ".registry",
}

__all__ = [
    "score_2afc",
    "score_jnd",
    "twoafc_scores",
    "TraditionalMetrics",
    "JNDDistances",
    "TwoAFCDistances",
    "collect_2afc",
    "collect_jnd",
    "DISTSDistance",
    "DistanceFunction",
    "LPIPSDistance",
    "PixelDistance",
    "make_distance",
    "split_features",
    "PAPER_2AFC",
    "PAPER_CITATION",
    "correlation_table",
    "judgment_note",
    "markdown_table",
    "paired_table",
    "read_distances_csv",
    "write_distances_csv",
    "COMPARE_METRICS",
    "DEFAULT_METRICS",
    "CompareConfig",
    "CompareResult",
    "EvalConfig",
    "EvalResult",
    "ScoringOptions",
    "build_metrics",
    "compare_distances",
    "compare_models",
    "evaluate",
    "open_datasets",
    "write_compare_report",
    "write_eval_report",
    "GROUPS",
    "judgment_correlations",
    "paired_tests",
    "score_2afc_results",
    "score_jnd_results",
    "METRICS",
    "METRIC_SETS",
    "MetricInfo",
    "list_metrics",
    "make_metric",
    "metric_info",
]

if TYPE_CHECKING:  # what static tools see
    from ..data.judgments import score_2afc, score_jnd, twoafc_scores
    from .baselines import TraditionalMetrics
    from .collect import JNDDistances, TwoAFCDistances, collect_2afc, collect_jnd
    from .distances import (
        DistanceFunction,
        DISTSDistance,
        LPIPSDistance,
        PixelDistance,
        make_distance,
        make_metric,
        split_features,
    )
    from .registry import METRIC_SETS, METRICS, MetricInfo, list_metrics, metric_info
    from .reports import (
        PAPER_2AFC,
        PAPER_CITATION,
        correlation_table,
        judgment_note,
        markdown_table,
        paired_table,
        read_distances_csv,
        write_distances_csv,
    )
    from .runs import (
        COMPARE_METRICS,
        DEFAULT_METRICS,
        CompareConfig,
        CompareResult,
        EvalConfig,
        EvalResult,
        build_metrics,
        compare_distances,
        compare_models,
        evaluate,
        open_datasets,
        write_compare_report,
        write_eval_report,
    )
    from .scores import GROUPS, judgment_correlations, paired_tests, score_2afc_results, score_jnd_results

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
