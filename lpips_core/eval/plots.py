"""Figures of evaluations and training runs, shared by the command line, the benchmarks and the book.

Every figure is written atomically through :func:`lpips_core.files.save_figure`.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from ..files import printable, pyplot, save_figure
from . import stats


def save_distance_map(dmap: torch.Tensor, path: str | os.PathLike, title: str = "") -> None:
    """Save an (H, W) LPIPS spatial distance map as a heat-map PNG with a colour bar."""
    plt = pyplot()
    arr = np.asarray(dmap.detach().cpu().float())
    fig, ax = plt.subplots(figsize=(4, 4 * arr.shape[0] / max(arr.shape[1], 1) + 0.4))
    im = ax.imshow(arr, cmap="magma")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    save_figure(fig, path)
    plt.close(fig)


# --------------------------------------------------------------------------- evaluation figures
def _grid(n: int, width: float = 3.2, height: float = 2.8):
    plt = pyplot()
    cols = min(4, max(1, n))
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return plt, fig, list(axes.flat[:n])


def _footnote(fig, note: str) -> None:
    if note:
        fig.text(0.01, -0.02, note, fontsize=7, ha="left", va="top", wrap=True, style="italic")


def plot_2afc_bars(
    scores: dict, path, title: str = "2AFC agreement", note: str = "", columns: list[str] | None = None
) -> None:
    """Grouped bars: one group per subset (and average), one bar per metric, 95% CI as error bars.

    Args:
        scores: {metric: {subset: {'score', 'ci': [lo, hi]}}} (``evaluate.score_2afc_results``).
        note: printed under the figure (e.g. that judgments are simulated).
    """
    plt = pyplot()
    metrics = list(scores)
    if columns is None:
        columns = list(next(iter(scores.values())))
    width = 0.8 / max(len(metrics), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(columns) * max(1, len(metrics) / 4)), 4))
    cmap = plt.get_cmap("tab20")
    x = np.arange(len(columns))
    for i, m in enumerate(metrics):
        vals = np.array([100 * scores[m].get(c, {}).get("score", np.nan) for c in columns])
        lo = np.array([100 * (scores[m].get(c, {}).get("ci") or [np.nan, np.nan])[0] for c in columns])
        hi = np.array([100 * (scores[m].get(c, {}).get("ci") or [np.nan, np.nan])[1] for c in columns])
        err = np.vstack([np.clip(vals - lo, 0, None), np.clip(hi - vals, 0, None)])
        ax.bar(
            x + (i - (len(metrics) - 1) / 2) * width,
            vals,
            width,
            yerr=np.nan_to_num(err),
            label=m,
            color=cmap(i % 20),
            capsize=2,
            error_kw={"elinewidth": 0.8},
        )
    ax.set_xticks(x, columns, rotation=20)
    ax.set_ylabel("agreement (%)")
    finite = [
        100 * scores[m][c]["score"]
        for m in metrics
        for c in columns
        if c in scores[m] and np.isfinite(scores[m][c]["score"])
    ]
    if finite:
        ax.set_ylim(max(0, min(finite) - 10), min(100, max(finite) + 8))
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2, bbox_to_anchor=(1.01, 1), loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    _footnote(fig, note)
    save_figure(fig, path)
    plt.close(fig)


def plot_difference_scatter(
    diffs: dict, judge: np.ndarray, path, note: str = "", max_points: int = 3000, seed: int = 0
) -> None:
    """Per metric: distance difference d0 - d1 against the judgment h, with two trend lines.

    The points are jittered vertically (h takes few values); the trend lines are
    the least-squares line and the mean of h in ten quantile bins of d0 - d1.

    Args:
        diffs: {metric: (N,) d0 - d1}; judge: (N,) fraction preferring p1.
    """
    judge = np.asarray(judge, dtype=float)
    plt, fig, axes = _grid(len(diffs))
    rng = np.random.default_rng(seed)
    idx = rng.permutation(judge.size)[:max_points]
    for ax, (m, diff) in zip(axes, diffs.items()):
        diff = np.asarray(diff, dtype=float)
        ok = np.isfinite(diff)
        d, h = diff[ok], judge[ok]
        scale = np.std(d) or 1.0
        sel = idx[ok[idx]]
        ax.scatter(diff[sel] / scale, judge[sel] + rng.uniform(-0.03, 0.03, sel.size), s=3, alpha=0.25)
        if d.size > 2 and np.std(d) > 0:
            slope, icpt = np.polyfit(d / scale, h, 1)
            xs = np.linspace(np.percentile(d / scale, 1), np.percentile(d / scale, 99), 50)
            ax.plot(xs, slope * xs + icpt, color="C3", lw=1.2, label="least squares")
            edges = np.unique(np.quantile(d / scale, np.linspace(0, 1, 11)))
            if edges.size > 2:
                which = np.clip(np.digitize(d / scale, edges[1:-1]), 0, edges.size - 2)
                centers = [np.mean((d / scale)[which == k]) for k in range(edges.size - 1) if np.any(which == k)]
                means = [np.mean(h[which == k]) for k in range(edges.size - 1) if np.any(which == k)]
                ax.plot(centers, means, "o-", color="k", ms=3, lw=1, label="binned mean")
        ax.set_title(m, fontsize=9)
        ax.set_xlabel("(d0 - d1) / std", fontsize=8)
        ax.set_ylabel("h (fraction preferring p1)", fontsize=8)
        ax.set_ylim(-0.08, 1.08)
    axes[0].legend(fontsize=7, loc="upper left")
    fig.suptitle("Distance difference vs judgment", y=1.0)
    fig.tight_layout()
    _footnote(fig, note)
    save_figure(fig, path)
    plt.close(fig)


def plot_distance_distributions(distances: dict, path, note: str = "", bins: int = 40) -> None:
    """Histogram of every distance each metric produced (d0 and d1 pooled), one panel per metric."""
    plt, fig, axes = _grid(len(distances), height=2.4)
    for ax, (m, d) in zip(axes, distances.items()):
        d = np.asarray(d, dtype=float)
        d = d[np.isfinite(d)]
        ax.hist(d, bins=bins, color="C0", alpha=0.8)
        ax.set_title(m, fontsize=9)
        ax.tick_params(labelsize=7)
    fig.suptitle("Distribution of distances per metric", y=1.0)
    fig.tight_layout()
    _footnote(fig, note)
    save_figure(fig, path)
    plt.close(fig)


#: The PNG text chunk ``Software`` of the figures ``lpips-core dirs`` draws: a file without it
#: is not replaced (it is someone's image that happens to have the same name).
FOLDER_PLOT_SOFTWARE = "lpips-core dirs"


def is_folder_plot(path: str | os.PathLike) -> bool:
    """True when ``path`` is a PNG that :func:`plot_folder_distances` wrote (its ``Software`` text chunk)."""
    from ..data.images import ImageLoadError, open_image

    try:
        with open_image(path) as im:  # the header and the text chunks before the pixels only
            return im.format == "PNG" and im.info.get("Software") == FOLDER_PLOT_SOFTWARE
    except ImageLoadError:
        return False


def plot_folder_distances(distances, summary: dict, path, title: str = "", max_folders: int = 20) -> None:
    """``lpips-core dirs``: histogram of the pair distances with the mean and its interval, and
    (with several subfolders) the mean per subfolder, the ``max_folders`` largest ones.

    Args:
        distances: (N,) distances of the pairs.
        summary: :func:`lpips_core.eval.folders.summarize`'s dict.
    """
    plt = pyplot()
    folders = sorted(summary["by_folder"].items(), key=lambda kv: -kv[1]["n"])[:max_folders]
    two = len(folders) > 1
    fig, axes = plt.subplots(1, 2 if two else 1, figsize=(9 if two else 4.8, 3.2), squeeze=False)
    ax = axes[0, 0]
    d = np.asarray(distances, dtype=float)
    ax.hist(d, bins=min(50, max(5, d.size // 4)), color="C0", alpha=0.8)
    lo, hi = summary["ci95"]
    ax.axvspan(lo, hi, color="C1", alpha=0.25, label=f"{100 * summary['ci_level']:.0f}% CI of the mean")
    ax.axvline(summary["mean"], color="C1", label=f"mean {summary['mean']:.4f}")
    ax.set_xlabel("LPIPS distance")
    ax.set_ylabel("pairs")
    ax.legend(fontsize=7)
    if two:
        bx = axes[0, 1]
        names = [printable(k) for k, _ in folders][::-1]
        bx.barh(names, [v["mean"] for _, v in folders][::-1], color="C0")
        for i, (_, v) in enumerate(folders[::-1]):
            bx.text(v["mean"], i, f" n={v['n']}", va="center", fontsize=7)
        bx.set_xlim(0, max(v["mean"] for _, v in folders) * 1.2)  # room for the counts
        bx.set_xlabel("mean distance per subfolder")
        bx.tick_params(labelsize=7)
    fig.suptitle(printable(title) or f"{summary['n_pairs']} pairs", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, metadata={"Software": FOLDER_PLOT_SOFTWARE})
    plt.close(fig)


def plot_correlation_bars(
    corrs: dict, path, note: str = "", title: str = "Correlation of d0 - d1 with the judgment"
) -> None:
    """Pearson, Spearman and Kendall per metric as grouped bars.

    Args:
        corrs: {metric: {'pearson': {'r'}, 'spearman': {'r'}, 'kendall': {'r'}}}.
    """
    plt = pyplot()
    metrics = list(corrs)
    kinds = ["pearson", "spearman", "kendall"]
    x = np.arange(len(metrics))
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(metrics) + 2), 3.6))
    for i, k in enumerate(kinds):
        vals = [corrs[m][k]["r"] if corrs[m][k]["r"] is not None else np.nan for m in metrics]
        ax.bar(x + (i - 1) * 0.27, vals, 0.27, label=k.capitalize())
    ax.set_xticks(x, metrics, rotation=40, ha="right", fontsize=8)
    ax.set_ylabel("correlation")
    ax.axhline(0, color="k", lw=0.6)
    ax.legend(fontsize=8)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    _footnote(fig, note)
    save_figure(fig, path)
    plt.close(fig)


def plot_speed_accuracy(
    points: list[dict], path, note: str = "", ylabel: str = "2AFC agreement (%), mean of subsets"
) -> None:
    """Speed (pairs/s, log scale) against accuracy; one colour per architecture.

    Args:
        points: dicts with 'name', 'pairs_per_second', 'score' (0-1), optional 'ci' and 'group'.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    groups = list(dict.fromkeys(p.get("group", "other") for p in points))
    for gi, g in enumerate(groups):
        pts = [p for p in points if p.get("group", "other") == g]
        xs = [p["pairs_per_second"] for p in pts]
        ys = [100 * p["score"] for p in pts]
        errs = np.array(
            [[100 * (p["score"] - p["ci"][0]), 100 * (p["ci"][1] - p["score"])] if p.get("ci") else [0, 0] for p in pts]
        ).T
        ax.errorbar(xs, ys, yerr=np.clip(errs, 0, None), fmt="o", color=f"C{gi}", label=g, capsize=2)
        for p, x_, y_ in zip(pts, xs, ys):
            ax.annotate(p["name"], (x_, y_), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("pairs per second (log scale)")
    ax.set_ylabel(ylabel)
    ax.set_title("Speed vs accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _footnote(fig, note)
    save_figure(fig, path)
    plt.close(fig)


def plot_mos_scatter_grid(
    preds: dict,
    scores: np.ndarray,
    path,
    logistic: dict | None = None,
    labels: dict | None = None,
    stats_text: dict | None = None,
    ylabel: str = "DMOS (higher = worse)",
    title: str = "",
    groups: np.ndarray | None = None,
) -> None:
    """Per metric: metric value vs subjective score, with the fitted 4-parameter logistic.

    Args:
        preds: {metric: (N,) values}; scores: (N,) MOS/DMOS.
        logistic: {metric: [b1, b2, b3, b4]} from ``stats.fit_logistic4``.
        labels: {metric: x-axis label}; stats_text: {metric: text shown in the panel}.
        groups: (N,) group of each point (e.g. distortion type): one colour per group.
    """
    scores = np.asarray(scores, dtype=float)
    plt, fig, axes = _grid(len(preds))
    names = list(dict.fromkeys(np.asarray(groups).tolist())) if groups is not None else [None]
    for k, (ax, (m, x)) in enumerate(zip(axes, preds.items())):
        x = np.asarray(x, dtype=float)
        for j, g in enumerate(names):
            mask = np.ones(x.size, bool) if g is None else np.asarray(groups) == g
            ax.scatter(x[mask], scores[mask], s=8, alpha=0.6, color=f"C{j}", label=g)
        if logistic and m in logistic and logistic[m] is not None:
            xs = np.linspace(np.nanmin(x), np.nanmax(x), 200)
            ax.plot(xs, stats.logistic4(xs, *logistic[m]), color="k", lw=1.2, label="4-param logistic")
        ax.set_title(m, fontsize=9)
        ax.set_xlabel((labels or {}).get(m, m), fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        if stats_text and m in stats_text:
            ax.text(
                0.03,
                0.97,
                stats_text[m],
                transform=ax.transAxes,
                fontsize=7,
                va="top",
                bbox={"facecolor": "white", "alpha": 0.7, "lw": 0},
            )
        if groups is not None and k == 0:
            ax.legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title, y=1.0)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def plot_agreement_by_margin(margin: dict, path, note: str = "", subsets: list[str] | None = None) -> None:
    """People's agreement with a metric against the metric's relative margin, one panel per subset.

    Args:
        margin: {model: {subset: [bin rows]}} from :func:`lpips_core.studies.published.margin_tables`
            (rows with 'low', 'high', 'n', 'agreement', 'ci', 'oracle'; scores in [0, 1]).
        subsets: panels to draw (default: every subset, 'all' first).
    """
    models = list(margin)
    first = margin[models[0]]
    subsets = subsets or (["all"] + [s for s in first if s != "all"])
    plt, fig, axes = _grid(len(subsets), width=3.3, height=2.9)
    cmap = plt.get_cmap("tab10")
    for ax, s in zip(axes, subsets):
        for i, m in enumerate(models):
            rows = [r for r in margin[m][s] if r["n"]]
            x = np.array([(r["low"] + r["high"]) / 2 for r in rows])
            y = np.array([100 * r["agreement"] for r in rows])
            lo = np.array([100 * r["ci"][0] for r in rows])
            hi = np.array([100 * r["ci"][1] for r in rows])
            shift = (i - (len(models) - 1) / 2) * 0.008  # side by side, not on top of each other
            ax.errorbar(x + shift, y, yerr=[y - lo, hi - y], marker="o", ms=3, lw=1, capsize=2, color=cmap(i), label=m)
            if i == 0:
                ax.plot(x, [100 * r["oracle"] for r in rows], "k--", lw=0.8, label=f"oracle bound ({m}'s bins)")
        ax.axhline(50, color="grey", lw=0.5)
        ax.set(title=s, xlabel="|d0 - d1| / (d0 + d1)", ylim=(40, 100))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("people agreeing (%)")
    axes[0].legend(fontsize=6)
    fig.tight_layout()
    _footnote(fig, note)
    save_figure(fig, path)
    plt.close(fig)


def plot_paired_differences(
    tests: dict, path, title: str = "paired differences", note: str = "", scale: float = 100.0, unit: str = "points"
) -> None:
    """Forest plot of paired differences with their intervals, one panel per group of tests.

    Args:
        tests: {panel: {comparison: {'difference', 'ci': (low, high)}}} (e.g. from
            :func:`lpips_core.eval.stats.cluster_bootstrap_test`); values are multiplied by ``scale``.
    """
    plt = pyplot()
    panels = list(tests)
    rows = max(len(tests[p]) for p in panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 0.45 * rows + 1.2), squeeze=False, sharey=True)
    for ax, panel in zip(axes[0], panels):
        names = list(tests[panel])
        y = np.arange(len(names))[::-1]
        diff = np.array([scale * tests[panel][n]["difference"] for n in names])
        lo = np.array([scale * tests[panel][n]["ci"][0] for n in names])
        hi = np.array([scale * tests[panel][n]["ci"][1] for n in names])
        excludes = (lo > 0) | (hi < 0)
        ax.errorbar(diff, y, xerr=[diff - lo, hi - diff], fmt="none", ecolor="grey", capsize=3)
        ax.scatter(diff, y, c=np.where(excludes, "C3", "C0"), zorder=3, s=18)
        ax.axvline(0, color="k", lw=0.8)
        ax.set_yticks(y, names, fontsize=7)
        ax.set(title=panel, xlabel=f"difference ({unit})")
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    _footnote(fig, note)
    save_figure(fig, path)
    plt.close(fig)


def plot_training_history(history: list[dict], path: str | os.PathLike) -> None:
    """Loss, 2AFC agreement (train and validation) and learning rate per epoch, as three panels.

    Args:
        history: the trainer's rows ({'epoch', 'train_loss', 'train_2afc', 'val_2afc' (or None), 'lr', ...}).
    """
    plt = pyplot()
    ep = [r["epoch"] for r in history]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    axes[0].plot(ep, [r["train_loss"] for r in history], marker="o")
    axes[0].set(title="training loss", xlabel="epoch")
    axes[1].plot(ep, [100 * r["train_2afc"] for r in history], marker="o", label="train")
    val = [(r["epoch"], 100 * r["val_2afc"]) for r in history if r["val_2afc"] is not None]
    if val:
        axes[1].plot(*zip(*val), marker="o", label="validation")
    axes[1].set(title="2AFC agreement (%)", xlabel="epoch")
    axes[1].legend()
    axes[2].plot(ep, [r["lr"] for r in history], marker="o")
    axes[2].set(title="learning rate", xlabel="epoch")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
