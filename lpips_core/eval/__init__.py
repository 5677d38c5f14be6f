"""The evaluation layer: distance functions, collection, scores with intervals, reports, plots.

Modules, in the order results flow through them::

    baselines, distances   traditional metrics, DISTS and LPIPS behind one DistanceFunction
    collect                every metric's distances on a 2AFC / JND set, one pass over the data
    stats, scores          bootstrap intervals, paired tests, correlations; 2AFC / JND scores
    reports, plots         Markdown tables, the paper's numbers, distance files, figures
    runs, mos, mos_cache   ``lpips-core evaluate`` / ``compare-models`` / ``evaluate-mos`` (per-image cache)
    published, derived     ``score-published`` (real BAPPS judgments, no images); 2AFC derived from DMOS
"""
from ..data.judgments import score_2afc, score_jnd, twoafc_scores
from .baselines import TraditionalMetrics
from .collect import JNDDistances, TwoAFCDistances, collect_2afc, collect_jnd
from .distances import (DISTSDistance, DistanceFunction, LPIPSDistance, PixelDistance, make_distance,
                        split_features)
from .reports import (PAPER_2AFC, PAPER_CITATION, correlation_table, judgment_note, markdown_table,
                      paired_table, read_distances_csv, write_distances_csv)
from .runs import (COMPARE_METRICS, DEFAULT_METRICS, build_metrics, compare_models, compare_report, evaluate,
                   open_datasets)
from .scores import GROUPS, judgment_correlations, paired_tests, score_2afc_results, score_jnd_results

__all__ = ["score_2afc", "score_jnd", "twoafc_scores", "TraditionalMetrics", "JNDDistances", "TwoAFCDistances",
           "collect_2afc", "collect_jnd", "DISTSDistance", "DistanceFunction", "LPIPSDistance", "PixelDistance",
           "make_distance", "split_features", "PAPER_2AFC", "PAPER_CITATION", "correlation_table",
           "judgment_note", "markdown_table", "paired_table", "read_distances_csv", "write_distances_csv", "COMPARE_METRICS",
           "DEFAULT_METRICS", "build_metrics", "compare_models", "compare_report", "evaluate", "open_datasets",
           "GROUPS", "judgment_correlations", "paired_tests", "score_2afc_results", "score_jnd_results"]
