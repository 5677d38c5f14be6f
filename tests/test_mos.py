"""Mean-opinion-score evaluation: table reading, correlations against scipy, reports, LIVE JPEG."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from conftest import SHARED, needs_shared, photo, require_backbone
from scipy import stats as sps

from lpips_core.cli import main
from lpips_core.eval import mos

LIVE = SHARED / "data" / "live_jpeg"


@pytest.fixture(scope="module")
def jpeg_table(tmp_path_factory):
    """Two photographs, each JPEG-compressed at 5 qualities; 'score' = a made-up DMOS (100 - quality)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("mos")
    (root / "refs").mkdir()
    (root / "dist").mkdir()
    rows = []
    for name in ("astronaut", "coffee"):
        img = photo(name)[:96, :128]
        Image.fromarray(img).save(root / "refs" / f"{name}.png")
        for q in (5, 15, 30, 60, 90):
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="JPEG", quality=q)
            Image.open(buf).convert("RGB").save(root / "dist" / f"{name}_{q}.png")
            rows.append([f"dist/{name}_{q}.png", f"refs/{name}.png", 100 - q + (3 if name == "coffee" else 0)])
    with open(root / "scores.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["distorted", "reference", "score"])
        w.writerows(rows)
    return root


def test_read_mos_csv_errors_name_the_file_and_line(tmp_path, jpeg_table):
    rows = mos.read_mos_csv(jpeg_table / "scores.csv")
    assert len(rows) == 10 and rows[0].row == 2 and rows[0].distorted.is_file()
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "distorted,reference,score\n"
        f"{jpeg_table}/dist/astronaut_5.png,{jpeg_table}/refs/astronaut.png,abc\n"
        f"{jpeg_table}/dist/nope.png,{jpeg_table}/refs/astronaut.png,3\n"
    )
    with pytest.raises(
        mos.MOSDataError, match=r"bad.csv: line 2: score='abc' is not a number; line 3: missing .*nope.png"
    ):
        mos.read_mos_csv(bad)
    bad.write_text("image,score\na.png,1\n")
    with pytest.raises(mos.MOSDataError, match="no 'distorted' column"):
        mos.read_mos_csv(bad)
    bad.write_text("distorted,reference,quality\na.png,b.png,1\n")
    with pytest.raises(mos.MOSDataError, match="no score column; name one with --score-column"):
        mos.read_mos_csv(bad)
    with pytest.raises(mos.MOSDataError, match="no column 'dmos'"):
        mos.read_mos_csv(jpeg_table / "scores.csv", score_column="dmos")


def test_evaluate_mos_reports_correlations_equal_to_scipy(jpeg_table, tmp_path):
    require_backbone("alex")
    out = tmp_path / "out"
    config = mos.MosConfig(
        jpeg_table, out, metrics=["lpips-alex", "psnr", "ssim"], n_resamples=100, progress=False, verbose=False
    )
    res = mos.evaluate_mos(config)
    score = np.array(res.distances["score"])
    for m in ("lpips-alex", "psnr", "ssim"):
        d = np.array(res.distances[m])
        r = res.metrics[m]
        assert r["srocc"]["value"] == pytest.approx(sps.spearmanr(d, score).statistic)
        assert r["krocc"]["value"] == pytest.approx(sps.kendalltau(d, score).statistic)
        lo, hi = r["srocc"]["ci"]
        assert lo <= r["srocc"]["value"] <= hi
        # lower JPEG quality = larger distance and larger made-up DMOS
        assert r["srocc"]["value"] > 0.8, m
    # PSNR enters as -PSNR: check against scikit-image's PSNR of one pair
    from skimage.metrics import peak_signal_noise_ratio

    from lpips_core.data.images import load_image

    first = mos.read_mos_csv(jpeg_table / "scores.csv")[0]
    assert res.distances["psnr"][0] == pytest.approx(
        -peak_signal_noise_ratio(load_image(first.reference), load_image(first.distorted)), abs=1e-3
    )
    saved = json.loads((out / "results.json").read_text())
    assert saved["score_column"] == "score" and saved["n"] == 10
    assert (out / "mos_scatter.png").stat().st_size > 5000
    assert "| lpips-alex |" in (out / "results.md").read_text()
    sig = saved["metrics"]["lpips-alex"]["signature"]  # how the number was computed (issue 14)
    assert (
        sig.startswith("lpips|net:alex|v:0.1|range:-1,1|size:native|")
        and f"`{sig}`" in (out / "results.md").read_text()
    )


def test_mos_config_names_a_bad_value_and_the_json_is_the_result(jpeg_table, tmp_path):
    """MosConfig checks its options on construction; results.json is MosResult.to_dict(), in the
    key order it always had."""
    from lpips_core.files import write_json

    with pytest.raises(ValueError, match="resample='clusters': use 'scenes' or 'images'"):
        mos.MosConfig(jpeg_table, resample="clusters")
    config = mos.MosConfig(jpeg_table, tmp_path / "o", metrics=["psnr"], n_resamples=20, progress=False, verbose=False)
    res = mos.evaluate_mos(config)
    written = (tmp_path / "o" / "results.json").read_bytes()
    assert written == write_json(tmp_path / "again.json", res.to_dict()).read_bytes()
    assert list(json.loads(written)) == [
        "table",
        "score_column",
        "n",
        "max_side",
        "note",
        "direction",
        "n_resamples",
        "resampled",
        "n_scenes",
        "skipped",
        "metrics",
        "seconds_total",
        "group_column",
        "group_n",
        "groups",
        "paired_tests",
        "distances",
    ]
    assert (tmp_path / "o" / "results.md").read_text() == res.markdown()


def test_fewer_statistics_are_the_full_runs_numbers_and_the_report_says_which(jpeg_table, tmp_path, capsys):
    """statistics=['srocc']: the same SROCC and interval as the run with all three (each statistic
    is resampled with the same seed), the value scipy's; no PLCC refit; the report and the plot
    say "not computed" instead of failing; a bad name is refused naming the option."""
    with pytest.raises(ValueError, match=r"statistics=\['srcc'\]: give a list of one or more of srocc, krocc, plcc"):
        mos.MosConfig(jpeg_table, statistics=["srcc"])
    with pytest.raises(ValueError, match="statistics='srocc'"):
        mos.MosConfig(jpeg_table, statistics="srocc")
    common = dict(metrics=["psnr", "l2_lab"], n_resamples=60, progress=False, verbose=False)
    full = mos.evaluate_mos(mos.MosConfig(jpeg_table, **common))
    quick = mos.evaluate_mos(mos.MosConfig(jpeg_table, tmp_path / "o", statistics=["srocc"], **common))
    score = np.array(quick.distances["score"])
    for m in ("psnr", "l2_lab"):
        assert set(quick.metrics[m]) & {"srocc", "krocc", "plcc", "logistic"} == {"srocc"}
        assert quick.metrics[m]["srocc"] == full.metrics[m]["srocc"]
        d = np.array(quick.distances[m])
        assert quick.metrics[m]["srocc"]["value"] == pytest.approx(sps.spearmanr(d, score).statistic)
    assert quick.paired_tests == full.paired_tests == {}  # no LPIPS metric here
    md = (tmp_path / "o" / "results.md").read_text()
    assert "| psnr | " in md and "not computed" in md
    assert (tmp_path / "o" / "mos_scatter.png").stat().st_size > 5000
    assert "not computed" in mos.summary_table(quick.to_dict())
    rc = main(
        ["evaluate-mos", "--data", str(jpeg_table), "--metrics", "psnr", "--resamples", "20"]
        + ["--statistics", "srocc,krocc", "-o", str(tmp_path / "cli"), "-q"]
    )
    assert rc == 0
    saved = json.loads((tmp_path / "cli" / "results.json").read_text())
    assert {"srocc", "krocc"} <= set(saved["metrics"]["psnr"]) and "plcc" not in saved["metrics"]["psnr"]
    assert main(["evaluate-mos", "--data", str(jpeg_table), "--statistics", "r2", "-o", str(tmp_path / "x")]) == 2
    assert "statistics=['r2']" in capsys.readouterr().err


def test_reference_features_are_computed_once_per_reference(jpeg_table):
    require_backbone("alex")
    from lpips_core.eval import make_distance

    fn = make_distance("lpips-alex")
    calls = []
    inner = fn.features
    fn.features = lambda x: calls.append(x.shape[0]) or inner(x)
    rows = mos.read_mos_csv(jpeg_table / "scores.csv")
    mos.compute_mos_distances(rows, {"a": fn}, progress=False)
    assert len(calls) == 10 + 2  # ten distorted images, two references


def _downscaled(path, longer: int) -> np.ndarray:
    """The image at ``path`` shrunk so its longer side is ``longer``, the way results.json states:
    PIL's area (box) filter, sizes rounded."""
    from PIL import Image

    img = Image.open(path).convert("RGB")
    scale = longer / max(img.size)
    return np.asarray(img.resize((round(img.width * scale), round(img.height * scale)), Image.BOX))


def test_evaluate_mos_cli_and_downscaling(jpeg_table, tmp_path, capsys):
    """--max-side 64: the distances are those of the images box-downscaled to 64x48 (reference
    LPIPS, scikit-image PSNR and Lab), and the correlations are scipy's on those distances."""
    import torch
    from conftest import backbone_available, reference
    from PIL import Image
    from scipy.optimize import curve_fit
    from skimage.color import rgb2lab
    from skimage.metrics import peak_signal_noise_ratio
    from tolerances import F32_EPS, PARITY_TOL, SAFETY

    metrics = ["psnr", "l2_lab"] + (["lpips-alex"] if backbone_available("alex") else [])
    rc = main(
        [
            "evaluate-mos",
            "--data",
            str(jpeg_table / "scores.csv"),
            "--metrics",
            ",".join(metrics),
            "--max-side",
            "64",
            "--resamples",
            "50",
            "-o",
            str(tmp_path / "o"),
            "-q",
        ]
    )
    assert rc == 0
    assert "SROCC" in capsys.readouterr().out
    saved = json.loads((tmp_path / "o" / "results.json").read_text())
    assert saved["max_side"] == 64 and "downscaled to a longer side of 64 px" in saved["note"]
    assert main(["evaluate-mos", "--data", str(tmp_path / "nothing"), "-o", str(tmp_path / "x")]) == 2

    # the expected distances, from images downscaled here (128x96 -> 64x48)
    with open(jpeg_table / "scores.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert saved["distances"]["ids"] == [r["distorted"] for r in table]
    pairs = [
        (_downscaled(jpeg_table / r["reference"], 64), _downscaled(jpeg_table / r["distorted"], 64)) for r in table
    ]
    for ref_img, dist_img in pairs:
        assert ref_img.shape == dist_img.shape == (48, 64, 3)
    # the area filter at an exact 2x: each pixel is its 2x2 block's mean (PIL rounds after each
    # of its two separable passes, so to within one grey level)
    block = np.asarray(photo("astronaut")[:96, :128], dtype=np.float64).reshape(48, 2, 64, 2, 3).mean((1, 3))
    assert np.abs(pairs[0][0] - block).max() <= 1.0

    def tensor(img):
        return torch.from_numpy(img.astype(np.float32) / 127.5 - 1).permute(2, 0, 1)[None]

    def logistic(x, c1, c2, c3, c4):  # VQEG 4-parameter logistic
        return (c1 - c2) / (1 + np.exp(np.clip(-(x - c3) / abs(c4), -500, 500))) + c2

    n = 3 * 48 * 64
    rel = SAFETY * F32_EPS * np.sqrt(n)  # float32 mean of n terms vs float64 (see test_metrics)
    expected = {
        "psnr": np.array([-peak_signal_noise_ratio(a, b, data_range=255) for a, b in pairs]),
        "l2_lab": np.array([0.5 * np.mean(((rgb2lab(a) - rgb2lab(b)) / 100.0) ** 2) for a, b in pairs]),
    }
    tol = {"psnr": 10 / np.log(10) * rel, "l2_lab": rel * expected["l2_lab"], "lpips-alex": PARITY_TOL}
    if "lpips-alex" in metrics:
        with torch.no_grad():
            expected["lpips-alex"] = np.array([reference("alex")(tensor(a), tensor(b)).item() for a, b in pairs])
    score = np.array([float(r["score"]) for r in table])
    assert saved["distances"]["score"] == score.tolist()
    for m in metrics:
        got = np.array(saved["distances"][m])
        assert np.all(np.abs(got - expected[m]) <= tol[m]), (m, got - expected[m])
        # no two distances so close that rounding could reorder them
        assert np.diff(np.sort(expected[m])).min() > 2 * np.max(tol[m]), m
        r = saved["metrics"][m]
        assert r["srocc"]["value"] == pytest.approx(sps.spearmanr(expected[m], score).statistic, abs=1e-12), m
        assert r["krocc"]["value"] == pytest.approx(sps.kendalltau(expected[m], score).statistic, abs=1e-12), m
        # PLCC: Pearson of the score with the reported 4-parameter logistic (VQEG form) of the distances
        fitted = logistic(expected[m], *r["logistic"])
        # (abs 1e-6: the distances used here differ from the reported ones by <= tol, ~1e-8 in PLCC)
        assert r["plcc"]["value"] == pytest.approx(sps.pearsonr(fitted, score).statistic, abs=1e-6), m
        # ... and that logistic is a least-squares fit: scipy, started there, finds no better one
        better, _ = curve_fit(logistic, expected[m], score, p0=r["logistic"], maxfev=20000)
        sse, best = (np.sum((logistic(expected[m], *p) - score) ** 2) for p in (r["logistic"], better))
        assert sse <= best * (1 + 1e-4) + 1e-9, (m, sse, best)
    # full-size images give other distances: the downscaling is what was measured
    full = -peak_signal_noise_ratio(
        *(np.asarray(Image.open(jpeg_table / table[0][k]).convert("RGB")) for k in ("reference", "distorted")),
        data_range=255,
    )
    assert abs(full - expected["psnr"][0]) > 100 * tol["psnr"]


@needs_shared
@pytest.mark.slow
def test_live_jpeg_two_references_downscaled(tmp_path):
    """Real human ratings: 14 JPEG versions of two LIVE photographs (downscaled to keep it cheap)."""
    require_backbone("alex")
    rows = [
        r for r in csv.DictReader(open(LIVE / "dmos.csv")) if r["reference"] in ("refs/ocean.png", "refs/bikes.png")
    ]
    table = tmp_path / "sub.csv"
    with open(table, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["distorted", "reference", "dmos", "dmos_realigned"])
        w.writerows([[LIVE / r["distorted"], LIVE / r["reference"], r["dmos"], r["dmos_realigned"]] for r in rows])
    config = mos.MosConfig(
        table,
        None,
        metrics=["lpips-alex", "psnr"],
        score_column="dmos_realigned",
        max_side=256,
        n_resamples=100,
        progress=False,
        verbose=False,
    )
    res = mos.evaluate_mos(config)
    assert res.n == 14 and "DMOS: higher = worse" in res.direction
    # JPEG artefacts of one photograph: more distortion, higher DMOS; both metrics rank that way
    assert res.metrics["lpips-alex"]["srocc"]["value"] > 0.8
    assert res.metrics["psnr"]["srocc"]["value"] > 0.6
