#!/usr/bin/env python
"""Build the mini-BAPPS set (real photographs, SIMULATED judges) into data/mini_bapps.

Usage: python data_scripts/make_mini_bapps.py [--out DIR] [--observer lpips-vgg|lab-l2] [--seed N] [--force]
                                             [--write-observed]
The set is cached: a complete build of the same configuration and builder code is kept. The
default observer's distances for the default build ship with the package
(lpips_core/studies/mini_bapps_observed.npz); --write-observed rebuilds with the observer run live
and rewrites that file (after a change to the distortions or the pools).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

from lpips_core.studies.mini_bapps import OBSERVERS, MiniBappsConfig, build_mini_bapps, default_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help=f"target folder (default: {default_dir()})")
    parser.add_argument(
        "--observer", default="lpips-vgg", choices=sorted(OBSERVERS), help="simulated observer (default: lpips-vgg)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="rebuild even if a complete build exists")
    parser.add_argument(
        "--write-observed",
        action="store_true",
        help="run the observer live and write its distances into the package (implies --force)",
    )
    args = parser.parse_args(argv)
    config = dataclasses.replace(MiniBappsConfig(), observer=args.observer, seed=args.seed)
    start = time.perf_counter()
    out = build_mini_bapps(
        args.out, config, force=args.force or args.write_observed, write_observed=args.write_observed
    )
    marker = json.loads((out / ".complete").read_text())
    print(
        f"mini-BAPPS in {out} ({time.perf_counter() - start:.1f} s now; built in "
        f"{marker['seconds']['total']} s; observer distances {marker.get('observer_distances', 'computed')}): "
        + ", ".join(f"{k} {v}" for k, v in marker["sizes"].items()),
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
