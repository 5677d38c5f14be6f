#!/usr/bin/env python
"""Build 2AFC triplets (BAPPS layout) whose judgments are derived from LIVE's human DMOS ratings.

Usage: python data_scripts/make_live_2afc.py [--table ../shared/data/live_three_types.csv] [--out data/live_2afc]
       [--std-scale 1.0] [--copy] [--score-from results/live_three_types/results.json --results results/live_2afc]

Every pair of distorted versions of one LIVE reference becomes a triplet; pairs of different distortion
types form the subset 'cross'. h = Phi((DMOS_0 - DMOS_1) / sqrt(std_0^2 + std_1^2)) (Thurstone case III,
LIVE's per-image std); the hard majority label is stored too (judge_majority/). The set is derived from
human DMOS ratings: no person made these 2AFC choices. Images are symbolic links to the table's files.
With --score-from, every metric of a stored evaluate-mos run is scored on the triplets from its per-image
distances (d(ref, p) does not depend on the other image) and written to --results.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from lpips_core.data import DataError
from lpips_core.data.live_2afc import derive_triplets, read_rated_table, write_bapps_layout

DEFAULT_TABLE = Path(os.environ.get("LPIPS_CORE_HUMAN_DATA", "../shared/data")) / "live_three_types.csv"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--table",
        default=str(DEFAULT_TABLE),
        help="DMOS table with distortion and dmos_std columns (default: $LPIPS_CORE_HUMAN_DATA/"
        "live_three_types.csv, $LPIPS_CORE_HUMAN_DATA defaulting to ../shared/data)",
    )
    parser.add_argument("--out", default="data/live_2afc", help="dataset folder (default: data/live_2afc)")
    parser.add_argument("--std-scale", type=float, default=1.0, help="multiply LIVE's per-image std (default 1)")
    parser.add_argument("--copy", action="store_true", help="copy the images instead of linking them")
    parser.add_argument(
        "--score-from",
        default=None,
        metavar="RESULTS_JSON",
        help="score every metric of this evaluate-mos run on the triplets",
    )
    parser.add_argument("--results", default="results/live_2afc", help="where --score-from writes")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    args = parser.parse_args(argv)
    try:
        images = read_rated_table(args.table)
        triplets = derive_triplets(images, std_scale=args.std_scale)
        out = write_bapps_layout(triplets, args.out, copy=args.copy, source=args.table, std_scale=args.std_scale)
        counts = {}
        for t in triplets:
            counts[t.subset] = counts.get(t.subset, 0) + 1
        print(
            f"make_live_2afc: {len(triplets)} triplets ({', '.join(f'{k} {v}' for k, v in counts.items())}) in {out}",
            file=sys.stderr,
        )
        if args.score_from:
            from lpips_core.studies.derived import score_from_mos

            score_from_mos(out / "triplets.csv", args.score_from, args.results, n_resamples=args.resamples)
    except (DataError, FileNotFoundError, ValueError) as exc:
        print(f"make_live_2afc: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
