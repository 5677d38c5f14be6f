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

from ..data.live_2afc import read_manifest
from ..files import write_json, write_text
from . import plots
from .collect import TwoAFCDistances
from .published import human_ceiling
from .reports import markdown_table
from .scores import score_2afc_results

NOTE = ("Judgments DERIVED FROM HUMAN DMOS RATINGS (LIVE IQA Release 2) by a psychometric model "
        "(Thurstone case III with LIVE's per-image std); no person made these 2AFC choices.")
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
        raise KeyError(f"the MOS results have no distance for {missing[0]} ({len(missing)} images missing); "
                       f"score the same table with evaluate-mos first")
    i0 = np.array([index[r["p0"]] for r in manifest])
    i1 = np.array([index[r["p1"]] for r in manifest])
    res = TwoAFCDistances(judge=np.array([r[label] for r in manifest]), subset=np.array([r["subset"] for r in manifest]),
                          ids=[f"{r['subset']}/{r['id']}" for r in manifest])
    for m in mos_results["metrics"]:
        d = np.asarray(dist[m], dtype=np.float64)
        res.d0[m], res.d1[m] = d[i0], d[i1]
    return res


def score_from_mos(manifest_csv: str | Path, mos_results_json: str | Path, out_dir: str | Path | None = None,
                   n_resamples: int = 1000, verbose: bool = True) -> dict:
    """Every metric of a stored evaluate-mos run scored on derived triplets, under h and the majority label.

    Writes results.json, results.md and live_2afc_bars.png to ``out_dir`` (when given).

    Returns:
        {'2afc': {'h': scores, 'h_majority': scores}, 'ceiling': {'h': ...}, 'subsets', ...}
        (scores as :func:`score_2afc_results`, in [0, 1]).
    """
    manifest = read_manifest(manifest_csv)
    mos_results = json.loads(Path(mos_results_json).read_text())
    results: dict = {"triplets": str(manifest_csv), "mos_results": str(mos_results_json), "note": NOTE,
                     "n_triplets": len(manifest), "n_resamples": n_resamples, "2afc": {}, "ceiling": {}}
    md = [f"# 2AFC on LIVE triplets derived from DMOS ({len(manifest)} triplets)", "", f"> {NOTE}", ""]
    for label in ("h", "h_majority"):
        res = distances_from_mos(manifest, mos_results, label)
        results["subsets"] = {s: int(np.sum(res.subset == s)) for s in dict.fromkeys(res.subset.tolist())}
        scores = score_2afc_results(res, n_resamples=n_resamples)
        ceiling = human_ceiling(res.judge, res.subset, n_resamples=n_resamples)
        results["2afc"][label], results["ceiling"][label] = scores, ceiling
        table = dict(scores)
        table["model ceiling"] = ceiling
        md.append(markdown_table(table, f"2AFC agreement (%) with the {LABELS[label]}, 95% bootstrap CI"))
        if out_dir is not None and label == "h":
            plots.plot_2afc_bars(table, Path(out_dir) / "live_2afc_bars.png",
                                 title="2AFC on LIVE triplets derived from DMOS (Thurstone h, 95% CI)", note=NOTE)
    md += ["'model ceiling' = mean(h^2 + (1-h)^2), the agreement of an observer drawn from the model; with the "
           "majority label it is 100%. 'cross' = the two distorted images are of different types.", ""]
    text = "\n".join(md)
    if out_dir is not None:
        write_json(Path(out_dir) / "results.json", results)
        write_text(Path(out_dir) / "results.md", text)
    if verbose:
        print(text)
    return results
