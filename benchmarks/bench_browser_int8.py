"""The playground's int8 graphs against its fp32 graphs, in headless Chromium (onnxruntime-web).

Builds a site as tests/test_playground.py does (the committed page script, the vendored
onnxruntime-web, graphs exported afresh: fp32 and calibrated static int8 from
:func:`lpips_core.model.export.quantize_onnx_static`), serves it on 127.0.0.1 and measures in
the page, one thread (as on GitHub Pages):

* download size of each graph;
* time per comparison at 256x256 (median of ``--reps`` after one warm-up), fp32 and int8
  alternately;
* the error of int8 against fp32 *as computed in the page*: on the mini set's val triplets
  (``--triplets``, 64x64; relative error, SROCC vs fp32, flipped choices, 2AFC change) and
  on LIVE pairs at full size (``--live``, every n-th of the 237; served from
  ``$LPIPS_CORE_HUMAN_DATA`` through symbolic links in a temporary folder, never copied).

Writes ``results/precision/browser.{json,md}``.

Usage::

    python benchmarks/bench_browser_int8.py                 # alex and squeeze
    python benchmarks/bench_browser_int8.py --nets alex --triplets 300 --live 8
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # the browser set-up the tests use
from browser import headless_chromium, local_server  # noqa: E402

HUMAN = Path(os.environ.get("LPIPS_CORE_HUMAN_DATA", REPO.parent / "shared" / "data"))


def ort_folder() -> Path:
    for cand in (REPO / "_build" / "playground" / "ort", REPO.parent / "main" / "_build" / "playground" / "ort"):
        if (cand / "ort.wasm.min.js").is_file():
            return cand
    import importlib.util

    spec = importlib.util.spec_from_file_location("playground_assets", REPO / "book" / "playground_assets.py")
    assets = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(assets)
    return assets.fetch_ort(REPO / "_build" / "playground" / "ort", REPO / "_build" / "npm")


def build_site(root: Path, nets: tuple[str, ...], n_triplets: int, live_every: int) -> dict:
    from PIL import Image

    from lpips_core.data import TwoAFCDataset
    from lpips_core.model.export import export_browser_models

    static = root / "_static" / "playground"
    static.mkdir(parents=True)
    shutil.copy(REPO / "book" / "_static" / "playground" / "playground.js", static)
    shutil.copytree(ort_folder(), static / "ort")
    manifest = export_browser_models(static / "models", nets, int8=True)
    (root / "index.html").write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>int8 benchmark</title></head>"
        "<body><script src='_static/playground/playground.js'></script></body></html>"
    )
    pairs = root / "pairs"
    pairs.mkdir()
    # timing pair: 256x256 crop of a photograph and a noisy copy (as the playground test)
    import skimage.data

    rng = np.random.default_rng(0)
    crop = skimage.data.chelsea()[:256, :256]
    Image.fromarray(crop).save(pairs / "t0.png")
    Image.fromarray(np.clip(crop + rng.normal(0, 15, crop.shape), 0, 255).astype(np.uint8)).save(pairs / "t1.png")
    trip = []
    mini = REPO / "data" / "mini_bapps"
    if (mini / ".complete").exists() and n_triplets:
        ds = TwoAFCDataset(str(mini), split="val")
        step = max(1, len(ds) // n_triplets)
        for i in range(0, len(ds), step)[:n_triplets]:
            p = ds.paths[i] if hasattr(ds, "paths") else None
            item = ds[i]
            names = []
            for key in ("ref", "p0", "p1"):
                name = f"m{i}_{key}.png"
                arr = ((item[key].permute(1, 2, 0).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
                Image.fromarray(arr).save(pairs / name)
                names.append(name)
            trip.append({"names": names, "h": float(item["judge"])})
            del p
    live = []
    table = HUMAN / "live_three_types.csv"
    if table.is_file() and live_every:
        from lpips_core.data.live_2afc import read_rated_table

        for j, r in enumerate(read_rated_table(table)[::live_every]):
            a, b = pairs / f"l{j}_d{r.distorted.suffix}", pairs / f"l{j}_r{r.reference.suffix}"
            a.symlink_to(r.distorted.resolve())
            b.symlink_to(r.reference.resolve())
            live.append([a.name, b.name])
    return {"manifest": manifest, "triplets": trip, "live": live}


def start_browser(url: str):
    driver, profile = headless_chromium("lpips-int8-chromium-")
    driver.set_script_timeout(1200)
    driver.get(f"{url}/index.html")
    info = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "window.lpipsPlayground.ready.then(i => done(i), e => done({error: e.message}));"
    )
    if "error" in info:
        raise SystemExit(f"the page did not start: {info}")
    return driver, profile


def compare_many(driver, url: str, pairs: list[list[str]], net: str) -> list[dict]:
    return driver.execute_async_script(
        """
        const [base, pairs, net, done] = arguments;
        (async () => {
            const out = [];
            for (const [a, b] of pairs) {
                const t0 = performance.now();
                const r = await window.lpipsPlayground.compare(`${base}/pairs/${a}`, `${base}/pairs/${b}`, {net});
                out.push({distance: r.distance, ms: performance.now() - t0});
            }
            return out;
        })().then(done, e => done([{error: e.message}]));""",
        url,
        pairs,
        net,
    )


def metrics(d: np.ndarray, f: np.ndarray) -> dict:
    from scipy import stats

    rel = np.abs(d - f) / np.maximum(f, 1e-12)
    return {
        "median_rel_err": float(np.median(rel)),
        "max_rel_err": float(rel.max()),
        "max_abs_err": float(np.abs(d - f).max()),
        "srocc_vs_fp32": float(stats.spearmanr(d, f).statistic),
        "n": int(d.size),
    }


def measure_net(driver, url: str, site: dict, net: str, reps: int) -> dict:
    """One trunk's fp32 and int8 graphs in the page: sizes, first and 256x256 timings, and the
    int8 errors on the mini set's triplets and the LIVE pairs (when the site has them)."""
    from lpips_core.data.judgments import score_2afc

    q = f"{net}-int8"
    files = site["manifest"]["nets"]
    row: dict = {"bytes_fp32": files[net]["bytes"], "bytes_int8": files[q]["bytes"]}
    one_pair = [["t0.png", "t1.png"]]
    for m in (net, q):  # first comparison: session creation (download, compile)
        row[f"first_ms_{'int8' if m == q else 'fp32'}"] = compare_many(driver, url, one_pair, m)[0]["ms"]
    times: dict[str, list[float]] = {"fp32": [], "int8": []}
    for i in range(reps):  # alternate, ratio per repetition
        for m in (net, q) if i % 2 == 0 else (q, net):
            times["int8" if m == q else "fp32"].append(compare_many(driver, url, one_pair, m)[0]["ms"])
    row["ms_256_fp32"] = statistics.median(times["fp32"])
    row["ms_256_int8"] = statistics.median(times["int8"])
    row["speedup_256"] = statistics.median(a / b for a, b in zip(times["fp32"], times["int8"]))
    if site["triplets"]:
        pairs = [[t["names"][0], t["names"][k]] for t in site["triplets"] for k in (1, 2)]
        f = np.array([r["distance"] for r in compare_many(driver, url, pairs, net)])
        d = np.array([r["distance"] for r in compare_many(driver, url, pairs, q)])
        h = np.array([t["h"] for t in site["triplets"]])
        f0, f1, d0, d1 = f[0::2], f[1::2], d[0::2], d[1::2]
        flipped = np.sign(d0 - d1) != np.sign(f0 - f1)
        row["mini"] = {
            **metrics(d, f),
            "flipped": float(flipped.mean()),
            "n_triplets": int(h.size),
            "twoafc_change": 100 * (score_2afc(d0, d1, h) - score_2afc(f0, f1, h)),
        }
    if site["live"]:
        f_live = compare_many(driver, url, site["live"], net)
        d_live = compare_many(driver, url, site["live"], q)
        row["live"] = {
            **metrics(np.array([r["distance"] for r in d_live]), np.array([r["distance"] for r in f_live])),
            "ms_fp32": statistics.median(r["ms"] for r in f_live),
            "ms_int8": statistics.median(r["ms"] for r in d_live),
        }
    return row


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", default="alex,squeeze")
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--triplets", type=int, default=400, help="mini val triplets compared in the page")
    ap.add_argument("--live", type=int, default=10, help="every n-th LIVE pair at full size (0: none)")
    ap.add_argument("--out", type=Path, default=REPO / "results" / "precision")
    args = ap.parse_args(argv)
    nets = tuple(args.nets.split(","))
    root = Path(tempfile.mkdtemp(prefix="lpips-int8-site-"))
    site = build_site(root, nets, args.triplets, args.live)
    results: dict = {
        "nets": {},
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_before": os.getloadavg()[0],
        "cpu": next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?"),
        "threads": 1,
    }
    try:
        with local_server(root) as url:
            driver, profile = start_browser(url)
            try:
                for net in (n for n in nets if n in site["manifest"]["nets"]):
                    results["nets"][net] = measure_net(driver, url, site, net, args.reps)
                    print(net, json.dumps(results["nets"][net]), file=sys.stderr)
            finally:
                driver.quit()
                shutil.rmtree(profile, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    results["load_after"] = os.getloadavg()[0]
    from lpips_core.files import write_json, write_text

    write_json(args.out / "browser.json", results)
    lines = [
        f"Playground int8 vs fp32 graphs in headless Chromium (onnxruntime-web, WebAssembly, 1 thread), "
        f"{results['date']}, {results['cpu']}, load {results['load_before']:.1f} -> {results['load_after']:.1f}",
        "",
        "| trunk | download fp32 / int8 | ms per 256x256 comparison fp32 / int8 | speed-up | first comparison "
        "fp32 / int8 ms | mini: median / max rel. err, SROCC vs fp32, flipped, 2AFC change | LIVE (full size): "
        "median / max rel. err, SROCC, ms fp32 / int8 |",
        "|---|---|---|---|---|---|---|",
    ]
    for net, r in results["nets"].items():
        mini = r.get("mini")
        live = r.get("live")
        lines.append(
            f"| {net} | {r['bytes_fp32'] / 2**20:.1f} / {r['bytes_int8'] / 2**20:.1f} MB | {r['ms_256_fp32']:.0f} / "
            f"{r['ms_256_int8']:.0f} | {r['speedup_256']:.2f}x | {r['first_ms_fp32']:.0f} / {r['first_ms_int8']:.0f} | "
            + (
                f"{mini['median_rel_err']:.2%} / {mini['max_rel_err']:.0%}, {mini['srocc_vs_fp32']:.5f}, "
                f"{mini['flipped']:.2%} of {mini['n_triplets']}, {mini['twoafc_change']:+.2f} |"
                if mini
                else "- |"
            )
            + (
                f" {live['median_rel_err']:.2%} / {live['max_rel_err']:.1%}, {live['srocc_vs_fp32']:.5f}, "
                f"{live['ms_fp32']:.0f} / {live['ms_int8']:.0f} ({live['n']} pairs) |"
                if live
                else " - |"
            )
        )
    text = "\n".join(lines) + "\n"
    write_text(args.out / "browser.md", text)
    print(text)


if __name__ == "__main__":
    main()
