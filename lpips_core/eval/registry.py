"""The metric registry: one record per metric, read by the command line, evaluation, reports and the course.

Every metric the package scores has one :class:`MetricInfo` here: its name, the label
its axis and tables use, its kind, and whether its *raw* value rises with similarity
(PSNR, SSIM) or with difference (L2, LPIPS). Evaluation always scores a *distance*
(lower = more similar: -PSNR, 1 - SSIM), built by :func:`lpips_core.eval.distances.make_metric`.

Named sets (:data:`METRIC_SETS`) are the metric lists the commands use by default.

This module imports nothing heavy, so the command line can offer the names without
loading the metrics themselves.

Example:
    >>> from lpips_core.eval.registry import list_metrics, metric_info
    >>> list_metrics("traditional")
    ['l1', 'l2', 'l2_lab', 'ms_ssim', 'psnr', 'ssim']
    >>> metric_info("psnr").label
    '-PSNR (dB)'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..model.versions import VERSIONS

KINDS = ("lpips", "net", "traditional", "learned", "checkpoint")


@dataclass(frozen=True)
class MetricInfo:
    """What the package knows about one metric.

    Attributes:
        name: the id used on the command line and in tables ('psnr', 'lpips-alex', ...).
        label: how axes and tables name its distance ('-PSNR (dB)', '1 - SSIM', ...).
        kind: 'lpips' (calibrated), 'net' (ImageNet features, every weight 1), 'traditional'
            (pixel metrics), 'learned' (another learned metric, DISTS), 'checkpoint' (a trained file).
        higher_is_better: True when the metric's own value rises with similarity (PSNR, SSIM);
            its distance is then the negation or the complement.
        description: one line for help texts and the course.
    """

    name: str
    label: str
    kind: str
    higher_is_better: bool
    description: str


def _lpips(net: str, lin: bool, version: str = "0.1") -> MetricInfo:
    kind = "lpips" if lin else "net"
    name = f"{kind}-{net}" + ("" if version == "0.1" else f"-v{version}")
    what = (
        f"LPIPS, {net} trunk, official v{version} linear weights"
        if lin
        else f"{net} ImageNet features, unit-normalised, every channel weight 1 (the paper's 'net')"
    )
    return MetricInfo(name, name, kind, False, what)


#: The one table of metrics.
METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in [
        *(
            _lpips(net, lin, v)
            for lin in (True, False)
            for net in ("alex", "vgg", "squeeze")
            for v in (VERSIONS if lin else VERSIONS[:1])
        ),
        MetricInfo("l2", "L2 (RGB, RMSE)", "traditional", False, "root mean squared RGB difference, images in [0, 1]"),
        MetricInfo("l2_lab", "L2 (Lab)", "traditional", False, "the paper's L2 baseline: 0.5 * mean((dLab / 100)^2)"),
        MetricInfo("l1", "L1 (RGB)", "traditional", False, "mean absolute RGB difference, images in [0, 1]"),
        MetricInfo("ssim", "1 - SSIM", "traditional", True, "SSIM (Gaussian 11x11 window, sigma 1.5; torchmetrics)"),
        MetricInfo("ms_ssim", "1 - MS-SSIM", "traditional", True, "MS-SSIM (torchmetrics; sides >= 176 px)"),
        MetricInfo("psnr", "-PSNR (dB)", "traditional", True, "PSNR in dB (torchmetrics, data_range 1)"),
        MetricInfo(
            "dists", "DISTS", "learned", False, "DISTS (Ding et al. 2022), piq's model with the authors' weights"
        ),
    ]
}

#: The correlations with subjective scores that :func:`~lpips_core.eval.stats.mos_correlations`
#: computes and ``lpips-core evaluate-mos`` reports, in their order (PLCC: after a 4-parameter logistic fit).
MOS_STATISTICS = ("srocc", "krocc", "plcc")


def check_statistics(statistics: Sequence[str]) -> tuple[str, ...]:
    """``statistics`` as a tuple, if it is a list of one or more of :data:`MOS_STATISTICS`.

    Raises:
        ValueError naming the value and the choices (a single string is refused: "srocc,plcc"
        would otherwise be one unknown name).
    """
    if isinstance(statistics, str) or not statistics or any(s not in MOS_STATISTICS for s in statistics):
        raise ValueError(f"statistics={statistics!r}: give a list of one or more of {', '.join(MOS_STATISTICS)}")
    return tuple(statistics)


#: The metric lists the commands use by default.
METRIC_SETS: dict[str, tuple[str, ...]] = {
    # lpips-core evaluate: 'lpips' is the official weights of --net
    "evaluate": ("lpips", "l2_lab", "ssim", "psnr"),
    # lpips-core compare-models: the paper's three trunks, calibrated and not, and the baselines
    "compare": (
        "lpips-alex",
        "lpips-vgg",
        "lpips-squeeze",
        "net-alex",
        "net-vgg",
        "net-squeeze",
        "l2_lab",
        "l2",
        "l1",
        "ssim",
        "psnr",
        "dists",
    ),
    # lpips-core evaluate-mos
    "mos": ("lpips-alex", "lpips-vgg", "lpips-squeeze", "psnr", "ssim", "ms_ssim", "dists", "l2_lab"),
    # lpips-core evaluate-mos --metrics all (the three-type LIVE table)
    "mos_all": (
        "lpips-alex",
        "lpips-vgg",
        "lpips-squeeze",
        "lpips-alex-v0.0",
        "lpips-vgg-v0.0",
        "lpips-squeeze-v0.0",
        "net-alex",
        "net-vgg",
        "net-squeeze",
        "psnr",
        "ssim",
        "ms_ssim",
        "dists",
        "l2_lab",
    ),
}


def list_metrics(kind: str | None = None) -> list[str]:
    """Names of the registered metrics, sorted (only those of ``kind`` when given)."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind={kind!r}: choose one of {', '.join(KINDS)}")
    return sorted(m.name for m in METRICS.values() if kind is None or m.kind == kind)


def metric_info(name: str) -> MetricInfo:
    """The record of a registered metric.

    Raises:
        KeyError naming the metric and the registered ones.
    """
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; registered: {', '.join(list_metrics())}") from None
