#!/usr/bin/env python
"""Download BAPPS (2AFC train/val and JND) from the official tarballs into a dataset folder.

Usage: python data_scripts/download_bapps.py [--out data/bapps] [--val-only] [--base-url URL] [--keep-archives]
Interrupted downloads resume; archives unpack into a temporary folder renamed into place when complete.
Sizes: JND 0.2 GB, 2AFC val 1.1 GB, 2AFC train 5.3 GB. Needs internet.
"""

from __future__ import annotations

import argparse
import sys

from lpips_core.data.download import ARCHIVES, BASE_URL, VAL_ONLY, DownloadError, download_bapps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data/bapps", help="dataset folder (default: data/bapps)")
    parser.add_argument("--val-only", action="store_true", help="only JND and 2AFC val (1.3 GB)")
    parser.add_argument("--part", action="append", choices=sorted(ARCHIVES), help="only this archive (repeatable)")
    parser.add_argument("--base-url", default=BASE_URL, help=f"where the tarballs are (default: {BASE_URL})")
    parser.add_argument("--keep-archives", action="store_true", help="keep the .tar.gz files")
    parser.add_argument("--retries", type=int, default=3, help="resumed attempts per archive (default: 3)")
    args = parser.parse_args(argv)
    parts = args.part or (list(VAL_ONLY) if args.val_only else list(ARCHIVES))
    try:
        out = download_bapps(
            args.out, parts, base_url=args.base_url, keep_archives=args.keep_archives, retries=args.retries
        )
    except DownloadError as exc:
        print(f"download_bapps: error: {exc}", file=sys.stderr)
        return 2
    print(f"BAPPS ({', '.join(parts)}) ready in {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
