#!/usr/bin/env python
"""Build the mini-BAPPS set (real photographs, SIMULATED judges) into data/mini_bapps.

Usage: python data_scripts/make_mini_bapps.py [--out DIR] [--observer lpips-vgg|lab-l2] [--seed N] [--force]
The set is cached: a complete build of the same configuration and builder code is kept.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

from lpips_core.data.mini_bapps import OBSERVERS, MiniBappsConfig, build_mini_bapps, default_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help=f"target folder (default: {default_dir()})")
    parser.add_argument(
        "--observer", default="lpips-vgg", choices=sorted(OBSERVERS), help="simulated observer (default: lpips-vgg)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="rebuild even if a complete build exists")
    args = parser.parse_args(argv)
    config = dataclasses.replace(MiniBappsConfig(), observer=args.observer, seed=args.seed)
    start = time.perf_counter()
    out = build_mini_bapps(args.out, config, force=args.force)
    marker = json.loads((out / ".complete").read_text())
    print(
        f"mini-BAPPS in {out} ({time.perf_counter() - start:.1f} s now; built in "
        f"{marker['seconds']['total']} s): " + ", ".join(f"{k} {v}" for k, v in marker["sizes"].items()),
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
