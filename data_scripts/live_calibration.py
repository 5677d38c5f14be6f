"""LPIPS's linear layers calibrated on 2AFC triplets derived from LIVE's human DMOS, scenes held out.

Runs :func:`lpips_core.studies.calibration.calibrate_on_live` on the 237 LIVE images of
``$LPIPS_CORE_HUMAN_DATA/live_three_types.csv`` (default ``../shared/data``) and writes
``results/live_calibration/{results.json,results.md,paired.png}``: the folds (no reference
scene on both sides), the held-out 2AFC of the untrained "net", the official v0.1 weights
and each fit, and their paired differences with whole scenes resampled. Nothing trained
here is kept: LIVE's terms allow cross-validated experiments, not released weights.

    python data_scripts/live_calibration.py [--table CSV] [--net alex] [--folds 7] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lpips_core.data import DataError  # noqa: E402
from lpips_core.eval import plots  # noqa: E402
from lpips_core.eval.stats import format_p  # noqa: E402
from lpips_core.files import write_json, write_text  # noqa: E402
from lpips_core.studies.calibration import calibrate_on_live, summary  # noqa: E402

DEFAULT_TABLE = Path(os.environ.get("LPIPS_CORE_HUMAN_DATA", REPO.parent / "shared" / "data")) / "live_three_types.csv"


def markdown(s: dict) -> str:
    """results.md: folds, held-out scores and paired differences."""
    lines = [
        "# LPIPS calibrated on LIVE-derived 2AFC triplets, reference scenes held out",
        "",
        f"> {s['note']}",
        "",
        "## Folds (scenes held out)",
        "",
    ]
    lines += [f"{k}. {', '.join(scenes)}" for k, scenes in enumerate(s["folds"], start=1)]
    subsets = [k for k in next(iter(s["scores"].values())) if k != "mean"]
    lines += [
        "",
        "## Held-out 2AFC (%) under the Thurstone h, 95% CI resampling scenes",
        "",
        "| model | " + " | ".join(subsets) + " | mean |",
        "|---" * (len(subsets) + 2) + "|",
    ]
    for m, row in s["scores"].items():
        cells = [
            f"{100 * row[k]['score']:.1f} [{100 * row[k]['ci'][0]:.1f}, {100 * row[k]['ci'][1]:.1f}]"
            for k in subsets + ["mean"]
        ]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    for key, tests in s["paired"].items():
        lines += [
            "",
            f"## Paired differences ({key} triplets), scenes resampled",
            "",
            "| comparison | points [95% CI] | p |",
            "|---|---|---|",
        ]
        for name, t in tests.items():
            lo, hi = t["ci"]
            lines.append(
                f"| {name} | {100 * t['difference']:+.2f} [{100 * lo:+.2f}, {100 * hi:+.2f}] | "
                f"{format_p(t['p_value'], t['n_resamples'])} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default=str(DEFAULT_TABLE), help="LIVE DMOS table with distortion and dmos_std")
    parser.add_argument("--net", default="alex", help="trunk (default alex)")
    parser.add_argument("--folds", type=int, default=7, help="folds of reference scenes (default 7)")
    parser.add_argument("--out", default=str(REPO / "results" / "live_calibration"), help="output folder")
    args = parser.parse_args(argv)
    try:
        result = calibrate_on_live(args.table, net=args.net, n_folds=args.folds)
    except (DataError, FileNotFoundError, ValueError) as exc:
        print(f"live_calibration: error: {exc}", file=sys.stderr)
        return 2
    s = summary(result, args.table)
    out = Path(args.out)
    write_json(out / "results.json", s)
    text = markdown(s)
    write_text(out / "results.md", text)
    plots.plot_paired_differences(
        s["paired"],
        out / "paired.png",
        title="held-out 2AFC difference (points), LIVE scenes resampled",
        note=s["note"],
    )
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
