"""Trained versus randomly initialised trunks on real human ratings (LIVE, three distortion types).

The paper's headline finding is that perceptual similarity *emerges* in trained
networks, while random networks of the same architecture do much worse. This
script measures that on the one set of real human ratings here: the 237 LIVE
Release 2 images (JPEG, Gaussian blur, white noise) of
``../shared/data/live_three_types.csv``, realigned DMOS (higher = worse).

For AlexNet and SqueezeNet it scores, with every channel weight 1 (the paper's
"net" baseline, since the learned weights belong to the trained trunk):

* the ImageNet-trained trunk,
* the same architecture with PyTorch's default random initialisation, three seeds,

plus LPIPS v0.1 (the trained trunk with its learned weights), and reports the
Spearman correlation (SROCC) with DMOS pooled over all 237 images, with a 95%
interval that resamples whole reference scenes (29), per distortion type, and
paired tests (scenes resampled) of each trained trunk against its random ones
and against LPIPS. ``--rescore`` recomputes the statistics from the stored
distances without running a trunk. Writes
``results/random_trunks_live/{results.json,results.md,srocc.png}``.

Evaluation only: the ratings are never used to fit anything.

    python data_scripts/random_trunks_on_live.py [--data ../shared/data/live_three_types.csv]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
import torch
from scipy import stats

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import lpips_core  # noqa: E402
from lpips_core.eval.distances import LPIPSDistance  # noqa: E402
from lpips_core.eval.mos import compute_mos_distances, read_mos_csv, scene_of  # noqa: E402
from lpips_core.eval.stats import cluster_correlation_test, format_p, mos_correlations  # noqa: E402
from lpips_core.files import pyplot, save_figure, write_json, write_text  # noqa: E402

SEEDS = (0, 1, 2)


def metrics(nets: list[str]) -> dict[str, LPIPSDistance]:
    """name -> distance function; random trunks seeded so a rerun gives the same numbers."""
    out = {}
    for net in nets:
        out[f"{net} trained, LPIPS"] = LPIPSDistance(lpips_core.LPIPS(net=net), name=f"{net} trained, LPIPS")
        out[f"{net} trained, net"] = LPIPSDistance(lpips_core.LPIPS(net=net, lpips=False), name=f"{net} trained, net")
        for seed in SEEDS:
            torch.manual_seed(seed)
            model = lpips_core.LPIPS(net=net, lpips=False, pnet_rand=True)
            out[f"{net} random #{seed}, net"] = LPIPSDistance(model, name=f"{net} random #{seed}, net")
    return out


def score(
    distances: dict[str, np.ndarray], dmos: np.ndarray, types: np.ndarray, scenes: np.ndarray, nets: list[str]
) -> dict:
    """Pooled SROCC with scene-resampled intervals, per-type SROCC, and paired tests (scenes resampled):
    each trunk's trained "net" against each of its random trunks and against LPIPS."""
    out: dict = {"metrics": {}, "paired": {}}
    for name, d in distances.items():
        pooled = mos_correlations(d, dmos, clusters=scenes)["srocc"]
        per_type = {t: float(stats.spearmanr(d[types == t], dmos[types == t]).statistic) for t in sorted(set(types))}
        out["metrics"][name] = {
            "srocc": pooled["value"],
            "ci": pooled["ci"],
            "per_type": per_type,
            "distances": np.asarray(d).tolist(),
        }
    for net in nets:
        trained = f"{net} trained, net"
        for other in [f"{net} random #{s}, net" for s in SEEDS] + [f"{net} trained, LPIPS"]:
            out["paired"][f"{trained} - {other}"] = cluster_correlation_test(
                distances[trained], distances[other], dmos, scenes, n_resamples=2000
            )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "live_three_types.csv"))
    p.add_argument("--nets", default="alex,squeeze")
    p.add_argument("-o", "--output", default=str(REPO / "results" / "random_trunks_live"))
    p.add_argument(
        "--rescore",
        action="store_true",
        help="recompute the statistics from the distances stored in OUTPUT/results.json",
    )
    args = p.parse_args(argv)
    table = Path(args.data)
    rows = read_mos_csv(table, score_column="dmos_realigned")
    with open(table, newline="") as f:
        kind = {r["distorted"]: r["distortion"] for r in csv.DictReader(f)}
    types = np.array([kind[r.name] for r in rows])
    dmos = np.array([r.score for r in rows])
    scenes = np.array([scene_of(r) for r in rows])
    nets = args.nets.split(",")
    out = Path(args.output)
    if args.rescore:
        stored = json.loads((out / "results.json").read_text())
        if stored["images"] != [r.name for r in rows]:
            raise SystemExit(f"{out / 'results.json'} was computed on other images than {table}")
        distances = {n: np.asarray(m["distances"]) for n, m in stored["metrics"].items()}
        seconds = {n: m.get("seconds") for n, m in stored["metrics"].items()}
    else:
        distances, seconds = compute_mos_distances(rows, metrics(nets))
    scored = score(distances, dmos, types, scenes, nets)
    for name, m in scored["metrics"].items():
        m["seconds"] = seconds[name]
    results = {
        "data": f"LIVE Release 2: {len(rows)} of its 779 distorted images ({', '.join(sorted(set(types)))}) "
        f"from {len(set(scenes.tolist()))} scenes, realigned DMOS (real human ratings; evaluation "
        "only; not comparable with results on all of LIVE)",
        "command": "python data_scripts/random_trunks_on_live.py",
        "torch": torch.__version__,
        "resampled": f"whole reference scenes ({len(set(scenes.tolist()))})",
        **scored,
        "images": [r.name for r in rows],
        "scenes": scenes.tolist(),
    }
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", results)
    kinds = sorted(set(types))
    lines = [
        f"# Trained vs random trunks on LIVE ({len(rows)} images, real human DMOS)",
        "",
        f"Intervals resample {results['resampled']}.",
        "",
        "| metric | SROCC pooled [95% CI] | " + " | ".join(kinds) + " |",
        "|---|---|" + "---|" * len(kinds),
    ]
    for name, m in results["metrics"].items():
        lines.append(
            f"| {name} | {m['srocc']:.3f} [{m['ci'][0]:.3f}, {m['ci'][1]:.3f}] | "
            + " | ".join(f"{m['per_type'][k]:.3f}" for k in kinds)
            + " |"
        )
    lines += ["", "| paired SROCC difference | [95% CI] | p |", "|---|---|---|"]
    for name, t in results["paired"].items():
        lines.append(
            f"| {name} | {t['difference']:+.3f} [{t['ci'][0]:+.3f}, {t['ci'][1]:+.3f}] | "
            f"{format_p(t['p_value'], t['n_resamples'])} |"
        )
    write_text(out / "results.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(results, out / "srocc.png")
    return 0


def plot(results: dict, path: Path) -> None:
    """Horizontal bars of pooled SROCC with their intervals."""
    plt = pyplot()
    names = list(results["metrics"])
    vals = [results["metrics"][n]["srocc"] for n in names]
    err = np.array(
        [[v - results["metrics"][n]["ci"][0], results["metrics"][n]["ci"][1] - v] for n, v in zip(names, vals)]
    ).T
    colours = ["C3" if "random" in n else "C0" for n in names]
    fig, ax = plt.subplots(figsize=(6.5, 0.3 * len(names) + 1.2))
    ax.barh(names, vals, xerr=err, color=colours)
    ax.invert_yaxis()
    ax.set(
        xlabel="SROCC with DMOS, 237 LIVE images (95% CI, scenes resampled)",
        xlim=(0, 1),
        title="trained (blue) vs random (red) trunks, real human ratings",
    )
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
