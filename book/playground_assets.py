"""Build-time assets of the book's in-browser playground (book/playground.md).

Nothing here is committed: ``make playground`` writes them under
``_build/playground`` and ``make book`` copies them into the built site
(``_build/html/_static/playground/``), next to the committed page script
``book/_static/playground/playground.js``:

* ``ort/``: onnxruntime-web's WebAssembly build, one pinned version fetched with
  ``npm pack`` from the npm registry and checked against a pinned sha256;
* ``models/``: the fp32 ONNX graphs (distance and spatial map from one pass),
  exported from the package's own weights by
  :func:`lpips_core.model.export.export_browser_models`;
* ``examples/``: 256x256 crops of scikit-image photographs (the course's
  photographs) and distorted versions from :mod:`lpips_core.data.distortions`.

Usage::

    python book/playground_assets.py _build/playground            # build all three
    python book/playground_assets.py --install _build/playground _build/html
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

#: onnxruntime-web, pinned: version and sha256 of the registry's tarball (``npm pack``).
ORT_VERSION = "1.30.0"
ORT_SHA256 = "d2228df7e4616bc3348bf504ee888f3bec43789a273f0a63f3e68d203ce3bf71"
#: The WebAssembly-only build: loader, its module script and the SIMD binary (threads optional).
ORT_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
#: (photograph, distortion, strength) of the example pairs; the crop is the photo's centre.
EXAMPLES = (
    ("chelsea", "gaussian_blur", 0.4),
    ("chelsea", "jpeg", 0.8),
    ("astronaut", "gaussian_noise", 0.3),
    ("coffee", "jpeg", 0.9),
    ("coffee", "contrast", 0.6),
    ("astronaut", "translation", 0.5),
)
EXAMPLE_SIDE = 256


def fetch_ort(dest: Path, cache: Path) -> Path:
    """``npm pack onnxruntime-web@ORT_VERSION`` (cached in ``cache``, sha256 checked); ORT_FILES into ``dest``."""
    from lpips_core.model.weights import sha256_of

    tgz = cache / f"onnxruntime-web-{ORT_VERSION}.tgz"
    if not tgz.is_file() or sha256_of(tgz) != ORT_SHA256:
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            if shutil.which("npm") is None:
                sys.exit("playground: npm is missing (apt-get install npm): it fetches onnxruntime-web")
            subprocess.run(
                ["npm", "pack", f"onnxruntime-web@{ORT_VERSION}", "--pack-destination", tmp, "--silent"],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            got = Path(tmp) / tgz.name
            digest = sha256_of(got)
            if digest != ORT_SHA256:
                sys.exit(
                    f"playground: {got.name} has sha256 {digest}, expected {ORT_SHA256} "
                    "(book/playground_assets.py pins it): refusing to vendor it"
                )
            got.replace(tgz)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tgz) as tar:
        for name in ORT_FILES:
            member = tar.getmember(f"package/dist/{name}")
            with tar.extractfile(member) as src, open(dest / name, "wb") as out:
                shutil.copyfileobj(src, out)
    (dest / "SOURCE.txt").write_text(
        f"onnxruntime-web {ORT_VERSION} (MIT licence, Microsoft), from the npm registry with\n"
        f"`npm pack onnxruntime-web@{ORT_VERSION}`; tarball sha256 {ORT_SHA256}.\n"
        f"Files: {', '.join(ORT_FILES)} (package/dist/).\n"
    )
    return dest


def write_examples(dest: Path) -> list[dict]:
    """Example pairs as PNGs plus ``examples.json``: [{"name", "a", "b"}] (paths relative to dest)."""
    import numpy as np
    import skimage.data
    from PIL import Image

    from lpips_core.data import distortions

    dest.mkdir(parents=True, exist_ok=True)
    pairs = []
    for i, (photo, kind, strength) in enumerate(EXAMPLES):
        img = getattr(skimage.data, photo)()[..., :3]
        y, x = (img.shape[0] - EXAMPLE_SIDE) // 2, (img.shape[1] - EXAMPLE_SIDE) // 2
        crop = np.ascontiguousarray(img[y : y + EXAMPLE_SIDE, x : x + EXAMPLE_SIDE])
        dist = getattr(distortions, kind)(crop, strength, np.random.default_rng(i))
        a, b = f"{photo}.png", f"{photo}_{kind}.png"
        Image.fromarray(crop).save(dest / a)
        Image.fromarray(dist).save(dest / b)
        pairs.append({"name": f"{photo}: {kind.replace('_', ' ')} {strength}", "a": a, "b": b})
    (dest / "examples.json").write_text(json.dumps(pairs, indent=1) + "\n")
    return pairs


def build(out: Path, nets: tuple[str, ...]) -> None:
    from lpips_core.model.export import export_browser_models

    fetch_ort(out / "ort", out.parent / "npm")
    manifest = export_browser_models(out / "models", nets)
    for net, why in manifest["missing"].items():
        print(f"playground: no {net} model ({why})", file=sys.stderr)
    write_examples(out / "examples")
    (out / ".complete").touch()


def install(src: Path, html: Path) -> Path:
    """Copy the built assets into a built site's ``_static/playground/``."""
    if not (src / ".complete").is_file():
        sys.exit(f"playground: {src} is not built: run `make playground`")
    target = html / "_static" / "playground"
    for part in ("ort", "models", "examples"):
        shutil.copytree(src / part, target / part, dirs_exist_ok=True)
    return target


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", type=Path, help="assets folder (e.g. _build/playground)")
    p.add_argument("html", type=Path, nargs="?", help="with --install: the built site (_build/html)")
    p.add_argument("--install", action="store_true", help="copy the built assets into HTML/_static/playground")
    p.add_argument("--nets", default="alex,squeeze", help="trunks to export (comma-separated)")
    args = p.parse_args(argv)
    if args.install:
        if args.html is None:
            p.error("--install needs the built site's folder, e.g. _build/html")
        print(f"playground assets copied to {install(args.out, args.html)}")
    else:
        build(args.out, tuple(n for n in args.nets.split(",") if n))


if __name__ == "__main__":
    main()
