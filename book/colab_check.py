"""Run the chapters as on Colab: an empty folder, the installed wheel, no results/, data/ or ../shared.

``make colab-check`` (opt-in, not part of ``make test``: it runs every notebook a
second time, about as long as the notebooks' share of the suite). Steps:

1. ``python -m build --wheel`` (no isolation, nothing downloaded);
2. a fresh virtual environment whose dependencies come from this ``.venv``
   through a ``.pth`` line (torch is not downloaded again), the wheel installed
   with ``pip --no-deps``: no editable install, no repository on the path;
3. the notebooks copied into an empty temporary folder and run there under
   nbval (``--nbval-lax --nbval-current-env``) with that environment's Python,
   ``$LPIPS_CORE_WEIGHTS`` unset (no ../shared). Stored results come through
   :func:`lpips_core.files.stored_file` (fetched from the repository address;
   offline, the cells print where to get them); the mini set is the one
   ``make mini-bapps`` built (``$LPIPS_CORE_MINI_BAPPS``), as Colab would build
   it on first use.

Usage: ``python book/colab_check.py [notebooks/01_deep_features.ipynb ...]``
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> int:
    notebooks = [Path(a).resolve() for a in argv] or sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    with tempfile.TemporaryDirectory(prefix="lpips-colab-check-") as tmp:
        tmp = Path(tmp)
        src = tmp / "src"
        top = {".venv", "_build", "data", ".git", "runs", "demo_results", ".pytest_cache", ".hypothesis"}
        shutil.copytree(
            REPO,
            src,
            ignore=lambda d, names: (
                set(names) & top
                if Path(d) == REPO
                else {n for n in names if n.endswith(".egg-info") or n == "__pycache__"}
            ),
        )
        subprocess.run(
            [sys.executable, "-m", "build", "--no-isolation", "--wheel", "--outdir", str(tmp / "dist"), str(src)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        venv = tmp / "venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        vpy = venv / "bin" / "python"
        purelib = subprocess.run(
            [str(vpy), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        Path(purelib, "_lpips_core_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        wheel = next((tmp / "dist").glob("*.whl"))
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "--python",
                str(vpy),
                "install",
                "--quiet",
                "--no-deps",
                "--no-index",
                "--disable-pip-version-check",
                str(wheel),
            ],
            check=True,
        )
        work = tmp / "work"
        work.mkdir()
        for nb in notebooks:
            shutil.copy(nb, work / nb.name)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "LPIPS_CORE_WEIGHTS")}
        env.setdefault("LPIPS_CORE_MINI_BAPPS", str(REPO / "data" / "mini_bapps"))
        cmd = [
            str(vpy),
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "-q",
            "--rootdir",
            str(work),
            "--nbval-lax",
            "--nbval-current-env",
            "--nbval-cell-timeout=600",
            *[nb.name for nb in notebooks],
        ]
        print(f"colab-check: {len(notebooks)} notebook(s) in {work} against {wheel.name}", flush=True)
        return subprocess.run(cmd, cwd=work, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
