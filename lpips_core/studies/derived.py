"""2AFC on triplets derived from DMOS ratings, scored from per-image distances.

``d(ref, p)`` does not depend on the other image of a triplet, so the distances an
``evaluate-mos`` run stored for every rated image score every triplet built from
those images (:mod:`lpips_core.data.live_2afc`) without touching a pixel; the
scores go through :func:`~lpips_core.eval.scores.score_2afc_results` like every
other 2AFC number. ``lpips-core evaluate --load-size 0`` on the built folder
computes the same distances from the images (full size).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..data.judgments import twoafc_scores
from ..data.live_2afc import CROSS, read_manifest
from ..eval import plots
from ..eval.collect import TwoAFCDistances
from ..eval.reports import markdown_table
from ..eval.scores import score_2afc_results
from ..eval.stats import cluster_bootstrap_test, format_p
from ..files import write_json, write_text
from .published import JUDGE_AGREEMENT, ORACLE_BOUND, reference_rows

NOTE = (
    "Judgments DERIVED FROM HUMAN DMOS RATINGS (LIVE IQA Release 2) by a psychometric model "
    "(Thurstone case III with LIVE's per-image std); no person made these 2AFC choices."
)
LABELS = {"h": "Thurstone h", "h_majority": "majority label"}


def distances_from_mos(manifest: list[dict], mos_results: dict, label: str = "h") -> TwoAFCDistances:
    """Triplets of ``manifest`` with each metric's d0/d1 looked up in an evaluate-mos results dict.

    Args:
        label: 'h' (the model's soft judgment) or 'h_majority' (the hard label).
    Raises:
        KeyError naming an image of the manifest that the MOS run did not score.
    """
    dist = mos_results["distances"]
    index = {name: i for i, name in enumerate(dist["ids"])}
    missing = sorted({r[k] for r in manifest for k in ("p0", "p1")} - set(index))
    if missing:
        raise KeyError(
            f"the MOS results have no distance for {missing[0]} ({len(missing)} images missing); "
            f"score the same table with evaluate-mos first"
        )
    i0 = np.array([index[r["p0"]] for r in manifest])
    i1 = np.array([index[r["p1"]] for r in manifest])
    res = TwoAFCDistances(
        judge=np.array([r[label] for r in manifest]),
        subset=np.array([r["subset"] for r in manifest]),
        ids=[f"{r['subset']}/{r['id']}" for r in manifest],
    )
    for m in mos_results["metrics"]:
        d = np.asarray(dist[m], dtype=np.float64)
        res.d0[m], res.d1[m] = d[i0], d[i1]
    return res


def scene_tests(
    res: TwoAFCDistances, scenes, kinds: dict[str, str], subset: str = CROSS, n_resamples: int = 10000, seed: int = 0
) -> dict:
    """Paired 2AFC differences on one subset, resampling reference scenes (cluster bootstrap).

    Every deep metric (kind 'lpips', 'net' or 'learned') against every traditional one, and each
    LPIPS metric against its untrained "net" twin (``lpips-alex`` vs ``net-alex``). Triplets built
    from one photograph are not independent, so whole scenes are resampled.

    Args:
        res: the triplets' distances and judgments; scenes: (N,) reference scene of each triplet.
        kinds: {metric: kind} ('traditional' for pixel metrics).
    Returns:
        {a: {b: {'difference', 'ci', 'p_value', 'n_resamples', 'n', 'clusters'}}}: a - b in [-1, 1].
    """
    m = res.subset == subset
    scenes = np.asarray(scenes)[m]
    agree = {k: twoafc_scores(res.d0[k][m], res.d1[k][m], res.judge[m]) for k in res.metrics}
    trad = [k for k in res.metrics if kinds.get(k) == "traditional"]
    out: dict = {}
    for a in res.metrics:
        if kinds.get(a) == "traditional":
            continue
        twin = "net-" + a.removeprefix("lpips-") if a.startswith("lpips-") and "v0.0" not in a else None
        against = trad + ([twin] if twin in agree else [])
        out[a] = {
            b: cluster_bootstrap_test(agree[a], agree[b], scenes, n_resamples=n_resamples, seed=seed) for b in against
        }
    return out


def _kinds(mos_results: dict) -> dict[str, str]:
    """{metric: kind} as the MOS run recorded it; older files without kinds: by name."""
    pixel = {"psnr", "ssim", "ms_ssim", "l2_lab", "l2", "l1"}
    return {
        m: r.get("kind") or ("traditional" if m in pixel else "net" if m.startswith("net-") else "lpips")
        for m, r in mos_results["metrics"].items()
    }


def scene_tests_markdown(tests: dict, n_scenes: int, subset: str = CROSS) -> list[str]:
    lines = [
        f"## Paired differences on the {subset} triplets, {n_scenes} reference scenes resampled",
        "",
        "| metric | vs | difference (points) [95% CI] | p |",
        "|---|---|---|---|",
    ]
    for a, row in tests.items():
        for b, t in row.items():
            lo, hi = t["ci"]
            lines.append(
                f"| {a} | {b} | {100 * t['difference']:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}] | "
                f"{format_p(t['p_value'], t['n_resamples'])} |"
            )
    return lines + [
        "",
        "Cluster bootstrap: each resample draws the scenes with replacement and keeps all their "
        "triplets; an interval that contains 0 means the data cannot tell the two apart.",
        "",
    ]


def score_from_mos(
    manifest_csv: str | Path,
    mos_results_json: str | Path,
    out_dir: str | Path | None = None,
    n_resamples: int = 1000,
    verbose: bool = True,
) -> dict:
    """Every metric of a stored evaluate-mos run scored on derived triplets, under h and the majority label.

    Writes results.json, results.md and live_2afc_bars.png to ``out_dir`` (when given).

    Returns:
        {'2afc': {'h': scores, 'h_majority': scores}, 'reference_rows': {'h': {name: scores}},
        'scene_tests': {'h': ..., 'h_majority': ...} (:func:`scene_tests` on the cross-type triplets),
        'scenes': (N,) reference of each triplet, 'subsets', ...} (scores as :func:`score_2afc_results`,
        in [0, 1]).
    """
    manifest = read_manifest(manifest_csv)
    mos_results = json.loads(Path(mos_results_json).read_text())
    scenes = [r["reference"] for r in manifest]
    kinds = _kinds(mos_results)
    results: dict = {
        "triplets": str(manifest_csv),
        "mos_results": str(mos_results_json),
        "note": NOTE,
        "n_triplets": len(manifest),
        "n_resamples": n_resamples,
        "2afc": {},
        "reference_rows": {},
        "scene_tests": {},
        "scenes": scenes,
        # how sharp the model's judgments are: the share of near-certain triplets
        "h_sharp": float(np.mean([r["h"] < 0.05 or r["h"] > 0.95 for r in manifest])),
        "n_scenes": {
            s: len({r["reference"] for r in manifest if r["subset"] == s})
            for s in dict.fromkeys(r["subset"] for r in manifest)
        },
    }
    md = [f"# 2AFC on LIVE triplets derived from DMOS ({len(manifest)} triplets)", "", f"> {NOTE}", ""]
    for label in ("h", "h_majority"):
        res = distances_from_mos(manifest, mos_results, label)
        results["subsets"] = {s: int(np.sum(res.subset == s)) for s in dict.fromkeys(res.subset.tolist())}
        scores = score_2afc_results(res, n_resamples=n_resamples, clusters=scenes)
        rows = reference_rows(res.judge, res.subset, n_resamples=n_resamples, clusters=scenes)
        results["2afc"][label], results["reference_rows"][label] = scores, rows
        tests = scene_tests(res, scenes, kinds, n_resamples=10 * n_resamples)
        results["scene_tests"][label] = tests
        table = {**scores, **rows}
        md.append(
            markdown_table(
                table, f"2AFC agreement (%) with the {LABELS[label]}, 95% bootstrap CI (reference scenes resampled)"
            )
        )
        md += scene_tests_markdown(tests, results["n_scenes"][CROSS])
        if out_dir is not None and label == "h":
            plots.plot_2afc_bars(
                table,
                Path(out_dir) / "live_2afc_bars.png",
                title="2AFC on LIVE triplets derived from DMOS (Thurstone h, 95% CI)",
                note=NOTE,
            )
    md += [
        f"'{JUDGE_AGREEMENT}' = mean(h^2 + (1-h)^2), how often one observer drawn from the psychometric model "
        f"sides with h (not a ceiling); '{ORACLE_BOUND}' = mean(max(h, 1-h)), the most any metric can score. "
        "With the majority label both are 100%. 'cross' = the two distorted images are of different types.",
        "",
    ]
    text = "\n".join(md)
    if out_dir is not None:
        write_json(Path(out_dir) / "results.json", results)
        write_text(Path(out_dir) / "results.md", text)
    if verbose:
        print(text)
    return results
