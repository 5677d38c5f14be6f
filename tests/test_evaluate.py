"""The evaluation runner: same scores as the reference's lpips/trainer.py on the same data,
features computed once per image, intervals, reports, CLI, compare-models and the demo wiring."""

from __future__ import annotations

import json
from unittest import mock

import numpy as np
import pytest
import torch
from conftest import photo, reference, require_backbone

import lpips_core.eval as E
from lpips_core import demo
from lpips_core.cli import main
from lpips_core.eval import DistanceFunction, make_distance, score_2afc

SIZE = 64


def _triplets(n: int, seed: int = 0, subsets=("traditional", "cnn")) -> list[dict]:
    """2AFC items (the dataset contract) cut from real photographs: p0 noisy, p1 blurred or shifted."""
    from PIL import Image, ImageFilter

    rng = np.random.default_rng(seed)
    img = photo("astronaut")
    items = []
    for i in range(n):
        y, x = rng.integers(0, img.shape[0] - SIZE - 4), rng.integers(0, img.shape[1] - SIZE - 4)
        ref = img[y : y + SIZE, x : x + SIZE]
        p0 = np.clip(ref + rng.normal(0, rng.uniform(5, 30), ref.shape), 0, 255).astype(np.uint8)
        p1 = (
            np.asarray(Image.fromarray(ref).filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.5))))
            if i % 2
            else img[y + 2 : y + 2 + SIZE, x + 2 : x + 2 + SIZE]
        )
        t = [torch.from_numpy(np.array(a, dtype=np.float32)).permute(2, 0, 1) / 127.5 - 1 for a in (ref, p0, p1)]
        items.append(
            {
                "ref": t[0],
                "p0": t[1],
                "p1": t[2],
                "judge": torch.tensor([rng.choice([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])], dtype=torch.float32),
                "subset": subsets[i % len(subsets)],
                "id": f"{i:03d}",
            }
        )
    return items


def _jnd(items, seed=1):
    rng = np.random.default_rng(seed)
    return [
        {
            "p0": it["ref"],
            "p1": it["p0"],
            "same": torch.tensor([rng.choice([0.0, 1 / 3, 2 / 3, 1.0])]),
            "subset": it["subset"],
            "id": it["id"],
        }
        for it in items
    ]


class _FakeLoader:
    def __init__(self, batches):
        self.batches = batches

    def load_data(self):
        return iter(self.batches)


def _batches(items, keys, b=4):
    return [{k: torch.stack([it[k] for it in items[i : i + b]]) for k in keys} for i in range(0, len(items), b)]


def test_runner_scores_equal_the_reference_trainer():
    require_backbone("alex")
    from lpips.trainer import score_2afc_dataset, score_jnd_dataset

    items = _triplets(14)
    ref_model = reference("alex")
    with torch.no_grad():
        expected, ref_out = score_2afc_dataset(
            _FakeLoader(_batches(items, ("ref", "p0", "p1", "judge"))), ref_model.forward
        )
    res = E.collect_2afc(["lpips-alex"], items, batch_size=5, progress=False)
    assert np.allclose(res.d0["lpips-alex"], ref_out["d0s"], atol=1e-5)
    assert np.allclose(res.d1["lpips-alex"], ref_out["d1s"], atol=1e-5)
    assert score_2afc(res.d0["lpips-alex"], res.d1["lpips-alex"], res.judge) == pytest.approx(expected)
    assert list(res.subset[:2]) == ["traditional", "cnn"] and res.ids[0] == "000"

    pairs = _jnd(items)
    with torch.no_grad():
        jexp, _ = score_jnd_dataset(
            _FakeLoader(_batches(pairs, ("p0", "p1", "same"))), lambda a, b: ref_model(a, b).flatten()
        )
    jres = E.collect_jnd(["lpips-alex"], pairs, batch_size=5, progress=False)
    from lpips_core.eval import score_jnd

    assert score_jnd(jres.d["lpips-alex"], jres.same) == pytest.approx(jexp, abs=1e-9)


class _Counting(DistanceFunction):
    """Wraps a distance function and counts the images pushed through ``features``."""

    def __init__(self, inner: DistanceFunction):
        super().__init__(inner.device)
        self.inner, self.name, self.kind, self.label = inner, inner.name, inner.kind, inner.label
        self.images = 0
        self.calls = 0

    def features(self, x):
        self.images += x.shape[0]
        self.calls += 1
        return self.inner.features(x)

    def from_features(self, f0, f1):
        return self.inner.from_features(f0, f1)


def test_each_image_goes_through_the_trunk_once():
    require_backbone("alex")
    items = _triplets(10)
    fn = _Counting(make_distance("lpips-alex"))
    E.collect_2afc({"x": fn}, items, batch_size=4, progress=False)
    assert fn.images == 3 * 10 and fn.calls == 3  # ref, p0, p1 once each; one trunk call per batch
    fn = _Counting(make_distance("lpips-alex"))
    E.collect_jnd({"x": fn}, _jnd(items), batch_size=4, progress=False)
    assert fn.images == 2 * 10 and fn.calls == 3
    # lpips-alex and net-alex share the ImageNet AlexNet: its features are computed once per batch
    lin, net = make_distance("lpips-alex"), make_distance("net-alex")
    assert lin.feature_key() == net.feature_key() is not None
    with (
        mock.patch.object(lin.model, "features", wraps=lin.model.features) as spy_lin,
        mock.patch.object(net.model, "features", wraps=net.model.features) as spy_net,
    ):
        res = E.collect_2afc({"lin": lin, "net": net}, items, batch_size=5, progress=False)
    assert spy_lin.call_count == 2 and spy_net.call_count == 0
    with torch.inference_mode():
        alone = net(torch.stack([it["ref"] for it in items]), torch.stack([it["p0"] for it in items]))
    assert np.allclose(res.d0["net"], alone.numpy(), atol=1e-5)


def test_scores_intervals_and_subset_groups():
    rng = np.random.default_rng(0)
    n = 400
    subset = np.array(["traditional", "cnn"] * (n // 2))
    judge = rng.choice([0.0, 1.0], n)
    d0 = rng.random(n)
    # metric "good" agrees with every judge; "bad" with none
    res = E.TwoAFCDistances(
        judge=judge,
        subset=subset,
        ids=[str(i) for i in range(n)],
        d0={"good": np.where(judge == 1, d0 + 1, d0), "bad": np.where(judge == 1, d0, d0 + 1)},
        d1={"good": d0 + 0.5, "bad": d0 + 0.5},
        seconds={"good": 1.0, "bad": 1.0},
        timed=n,
    )
    scores = E.score_2afc_results(res, n_resamples=200)
    assert scores["good"]["traditional"]["score"] == 1.0 and scores["bad"]["cnn"]["score"] == 0.0
    assert scores["good"]["trad_cnn"]["score"] == 1.0 and scores["good"]["trad_cnn"]["n"] == n
    assert "real_algs" not in scores["good"]
    # a metric that agrees with half: the interval is around 0.5 and has the binomial width
    half = E.TwoAFCDistances(
        judge=judge, subset=subset, ids=res.ids, d0={"h": d0}, d1={"h": d0[::-1].copy()}, seconds={"h": 1.0}, timed=n
    )
    cell = E.score_2afc_results(half, n_resamples=500)["h"]["mean"]
    lo, hi = cell["ci"]
    assert lo < cell["score"] < hi and 0.05 < hi - lo < 0.15
    assert res.pairs_per_second("good") == 2 * n
    corr = E.judgment_correlations(res)
    assert corr["good"]["spearman"]["r"] > 0.8 and corr["bad"]["spearman"]["r"] < -0.8
    tests = E.paired_tests(res, "good", n_resamples=500)
    assert tests["bad"]["difference"] == -1.0 and tests["bad"]["p_value"] < 0.01


def _write_bapps(root, items, pairs=None, split="val", card=None):
    """Write items in the BAPPS layout (PNG + .npy), the on-disk format the data loaders read."""
    from PIL import Image

    for it in items:
        folder = root / "2afc" / split / it["subset"]
        for key in ("ref", "p0", "p1"):
            (folder / key).mkdir(parents=True, exist_ok=True)
            arr = ((it[key].permute(1, 2, 0).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
            Image.fromarray(arr).save(folder / key / f"{it['id']}.png")
        (folder / "judge").mkdir(exist_ok=True)
        np.save(folder / "judge" / f"{it['id']}.npy", it["judge"].numpy())
    for it in pairs or []:
        folder = root / "jnd" / "val" / it["subset"]
        for key in ("p0", "p1"):
            (folder / key).mkdir(parents=True, exist_ok=True)
            arr = ((it[key].permute(1, 2, 0).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
            Image.fromarray(arr).save(folder / key / f"{it['id']}.png")
        (folder / "same").mkdir(exist_ok=True)
        np.save(folder / "same" / f"{it['id']}.npy", it["same"].numpy().astype(np.float32))
    if card:
        (root / "README.md").write_text(card)
    return root


@pytest.fixture(scope="module")
def disk_set(tmp_path_factory):
    items = _triplets(12)
    root = tmp_path_factory.mktemp("bapps")
    return _write_bapps(
        root, items, _jnd(items[:8]), card="# test set\nThese judgments come from a simulated observer.\n"
    )


def test_evaluate_cli_writes_json_and_markdown(disk_set, tmp_path, capsys):
    require_backbone("alex")
    out = tmp_path / "ev"
    rc = main(
        [
            "evaluate",
            "--data",
            str(disk_set),
            "--metrics",
            "lpips,l2_lab,ssim,psnr",
            "-o",
            str(out),
            "--resamples",
            "100",
            "-q",
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert set(results["2afc"]) == {"lpips-alex", "l2_lab", "ssim", "psnr"}
    cell = results["2afc"]["lpips-alex"]["traditional"]
    assert cell["n"] == 6 and cell["ci"][0] <= cell["score"] <= cell["ci"][1]
    assert set(results["jnd"]["psnr"]) >= {"traditional", "cnn"}
    assert "SIMULATED observer" in results["judgments"]
    md = (out / "results.md").read_text()
    assert "| lpips-alex |" in md and "SIMULATED observer" in md
    assert "| lpips-alex |" in printed  # the table is printed too
    # every number carries its signature (issue 14): in results.json and results.md
    sig = results["metrics"]["lpips-alex"]["signature"]
    assert sig.startswith("lpips|net:alex|v:0.1|range:-1,1|size:64|lpips_core:")
    assert f"`{sig}`" in md and results["metrics"]["psnr"]["signature"].startswith("psnr|range:-1,1|size:64|")
    assert (out / "distances_2afc.csv").read_text().startswith("id,subset,judge,lpips-alex_d0")


def _reference_with_weights(model_path):
    """The reference ``lpips.LPIPS(model_path=...)`` (our trunk weights, as ``reference()``)."""
    import warnings

    import lpips
    from conftest import ours

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = lpips.LPIPS(net="alex", model_path=str(model_path), pnet_rand=True, verbose=False)
    ref.net.load_state_dict(ours("alex").net.state_dict())
    return ref.eval()


def _disk_triplets(root, ids_subsets):
    """(ref, p0, p1) batches read back from the BAPPS PNGs with PIL, in [-1, 1]."""
    from PIL import Image

    def load(subset, key, i):
        arr = np.asarray(Image.open(root / "2afc" / "val" / subset / key / f"{i}.png").convert("RGB"))
        return torch.from_numpy(arr.astype(np.float32) / 127.5 - 1).permute(2, 0, 1)

    return [torch.stack([load(s, key, i) for i, s in ids_subsets]) for key in ("ref", "p0", "p1")]


def test_evaluate_a_trained_checkpoint(disk_set, tmp_path):
    """A checkpoint with its own (non-official) channel weights is evaluated with those weights:
    per-triplet d0/d1 equal the reference lpips.LPIPS(model_path=that file) on the same images."""
    require_backbone("alex")
    import os

    import lpips
    from tolerances import PARITY_TOL, assert_parity

    # the official v0.1 weights as the reference ships them, every channel rescaled by its own
    # factor in [0.1, 3]: a file in the reference .pth format that is not the official model
    official = torch.load(
        os.path.join(os.path.dirname(lpips.__file__), "weights", "v0.1", "alex.pth"),
        map_location="cpu",
        weights_only=True,
    )
    gen = torch.Generator().manual_seed(7)
    perturbed = {k: (v * (0.1 + 2.9 * torch.rand(v.shape, generator=gen))).contiguous() for k, v in official.items()}
    ckpt = tmp_path / "w.pth"
    torch.save(perturbed, ckpt)
    out = tmp_path / "ck"
    assert (
        main(
            [
                "evaluate",
                "--data",
                str(disk_set),
                "--model",
                str(ckpt),
                "--metrics",
                "lpips,lpips-alex",
                "-o",
                str(out),
                "--resamples",
                "50",
                "-q",
            ]
        )
        == 0
    )
    res = E.read_distances_csv(out / "distances_2afc.csv")
    assert set(res.metrics) == {"trained-alex", "lpips-alex"} and len(res.ids) == 12
    ref, p0, p1 = _disk_triplets(disk_set, list(zip(res.ids, res.subset)))
    with torch.no_grad():
        trained, official_ref = _reference_with_weights(ckpt), reference("alex")
        expected = {
            "trained-alex": (trained(ref, p0).flatten(), trained(ref, p1).flatten()),
            "lpips-alex": (official_ref(ref, p0).flatten(), official_ref(ref, p1).flatten()),
        }
    for m, (e0, e1) in expected.items():  # the CSV keeps 8 significant digits: ~1e-9 here
        assert_parity(torch.from_numpy(res.d0[m]), e0.double(), f"{m} d0")
        assert_parity(torch.from_numpy(res.d1[m]), e1.double(), f"{m} d1")
    # the reweighting matters: the trained model's distances are far from the official ones
    moved = np.abs(res.d0["trained-alex"] - res.d0["lpips-alex"]).max()
    assert moved > 100 * PARITY_TOL, moved
    # and the reported 2AFC score (mean of the subsets' scores) is the one of the reference's
    # distances with the judgments as stored (float32 .npy)
    r = json.loads((out / "results.json").read_text())["2afc"]
    e0, e1 = (t.double().numpy() for t in expected["trained-alex"])
    assert np.abs(e0 - e1).min() > 2 * PARITY_TOL  # no near-tie whose order rounding could flip
    judge = np.array(
        [np.load(disk_set / "2afc" / "val" / s / "judge" / f"{i}.npy").item() for i, s in zip(res.ids, res.subset)]
    )
    assert r["trained-alex"]["mean"]["score"] == pytest.approx(
        np.mean(
            [
                score_2afc(e0[res.subset == s], e1[res.subset == s], judge[res.subset == s])
                for s in ("traditional", "cnn")
            ]
        ),
        abs=1e-12,
    )


def test_evaluate_errors_are_one_line(tmp_path, capsys):
    def one_line_error(argv, expected: str) -> None:
        assert main(argv) == 2
        captured = capsys.readouterr()
        lines = captured.err.splitlines()
        assert len(lines) == 1, captured.err  # exactly one line: no traceback, no extra messages
        assert lines[0].startswith("lpips-core: error: ") and expected in lines[0], lines[0]
        assert captured.out == ""

    one_line_error(
        ["evaluate", "--data", str(tmp_path / "missing"), "-o", str(tmp_path / "o")], "missing: no such dataset"
    )
    (tmp_path / "empty").mkdir()
    one_line_error(
        ["evaluate", "--data", str(tmp_path / "empty"), "-o", str(tmp_path / "o")], "empty: no 2AFC or JND data found"
    )
    # an unknown metric on a readable data set (so the metric, not the data, is what fails)
    data = _write_bapps(tmp_path / "two", _triplets(2))
    one_line_error(
        ["evaluate", "--data", str(data), "--metrics", "fsim", "-o", str(tmp_path / "o")], "unknown metric 'fsim'"
    )
    assert not (tmp_path / "o").exists()


def test_compare_models_table_plots_and_paper_columns(disk_set, tmp_path, capsys):
    require_backbone("alex")
    out = tmp_path / "cmp"
    rc = main(
        [
            "compare-models",
            "--data",
            str(disk_set),
            "--metrics",
            "lpips-alex,net-alex,l2_lab,ssim,psnr",
            "-o",
            str(out),
            "--resamples",
            "100",
            "--batch-size",
            "5",
            "-q",
        ]
    )
    assert rc == 0
    results = json.loads((out / "results.json").read_text())
    for name in results["figures"]:
        assert (out / name).stat().st_size > 5000, name
    assert len(results["figures"]) == 5
    md = (out / "results.md").read_text()
    # the paper's published averages sit beside ours, cited as the paper's
    assert "| lpips-alex |" in md and "78.7" in md and "76.8" in md and "68.9" in md and "69.7" in md
    assert "the paper's numbers, not measured here" in md and "SIMULATED observer" in md
    assert results["paired_tests"]["baseline"] == "lpips-alex"
    assert results["metrics"]["net-alex"]["signature"].startswith("lpips|net:alex|v:0.1|range:-1,1|size:64|baseline|")
    assert "`lpips|net:alex|v:0.1|range:-1,1|size:64|baseline|" in md
    assert set(results["correlations"]["ssim"]) >= {"pearson", "spearman", "kendall"}
    assert all(v > 0 for v in results["pairs_per_second"].values())
    assert "jnd" in results
    # the stored per-triplet distances reproduce the report (same bootstrap seed, same numbers)
    res = E.read_distances_csv(out / "distances_2afc.csv")
    again = E.compare_distances(
        res, results["metrics"], data=disk_set, n_resamples=100, speed=results["pairs_per_second"]
    )
    E.write_compare_report(again, tmp_path / "again")
    for m, row in results["2afc"].items():
        for subset, cell in row.items():
            assert again.twoafc[m][subset]["score"] == pytest.approx(cell["score"], abs=1e-6), (m, subset)
            assert again.twoafc[m][subset]["ci"] == pytest.approx(cell["ci"], abs=1e-6), (m, subset)


def test_run_configs_name_a_bad_value_and_how_to_fix_it(tmp_path, capsys):
    """EvalConfig and CompareConfig check their numbers on construction, before any data is read."""
    with pytest.raises(ValueError, match=r"batch_size=0 \(--batch-size\); use 1 or more"):
        E.EvalConfig(tmp_path, tmp_path / "o", batch_size=0)
    with pytest.raises(ValueError, match=r"n_resamples=0 \(--resamples\); the bootstrap intervals need 1 or more"):
        E.CompareConfig(tmp_path, tmp_path / "o", n_resamples=0)
    with pytest.raises(ValueError, match=r"load_size=-1 \(--load-size\); use 1 or more pixels, or None"):
        E.EvalConfig(tmp_path, tmp_path / "o", load_size=-1)
    argv = ["evaluate", "--data", str(tmp_path / "missing"), "-o", str(tmp_path / "o"), "--batch-size", "0"]
    assert main(argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == ["lpips-core: error: batch_size=0 (--batch-size); use 1 or more triplets"]


def test_results_json_is_the_typed_result(disk_set, tmp_path):
    """evaluate and compare_models return typed results; results.json is their to_dict(), byte for
    byte, with the keys in the order the reports always had."""
    from lpips_core.files import write_json

    config = E.EvalConfig(
        disk_set, tmp_path / "ev", metrics=["psnr", "l2"], n_resamples=20, progress=False, verbose=False
    )
    res = E.evaluate(config)
    written = (tmp_path / "ev" / "results.json").read_bytes()
    assert written == write_json(tmp_path / "ev.json", res.to_dict()).read_bytes()
    assert list(json.loads(written)) == [
        "data",
        "judgments",
        "metrics",
        "n_resamples",
        "2afc",
        "n_triplets",
        "pairs_per_second",
        "correlations",
        "jnd",
    ]
    assert res.n_triplets == 12 and set(res.twoafc) == {"psnr", "l2"} and res.distances_2afc.metrics == ["psnr", "l2"]
    assert (tmp_path / "ev" / "results.md").read_text() == res.markdown()

    config = E.CompareConfig(
        disk_set, tmp_path / "cmp", metrics=["psnr", "l2"], baseline="l2", n_resamples=20, progress=False, verbose=False
    )
    cmp = E.compare_models(config)
    written = (tmp_path / "cmp" / "results.json").read_bytes()
    assert written == write_json(tmp_path / "cmp.json", cmp.to_dict()).read_bytes()
    assert list(json.loads(written)) == [
        "data",
        "judgments",
        "paper",
        "metrics",
        "skipped",
        "n_triplets",
        "subsets",
        "2afc",
        "pairs_per_second",
        "correlations",
        "paired_tests",
        "n_resamples",
        "jnd",
        "figures",
    ]
    assert set(cmp.paired_tests) == {"psnr"} and json.loads(written)["paired_tests"]["baseline"] == "l2"
    assert all((tmp_path / "cmp" / name).is_file() for name in cmp.figures)


def test_demo_wiring_on_a_tiny_set(tmp_path):
    """The demo trains briefly and compares the trained model (the real run uses data/mini_bapps)."""
    require_backbone("alex")
    items = _triplets(16, seed=5, subsets=("traditional",))
    root = _write_bapps(tmp_path / "tiny", items[:10], split="train")
    _write_bapps(root, items[10:], split="val")
    results = demo.run_demo(
        tmp_path / "demo",
        data=root,
        epochs=1,
        n_resamples=50,
        baselines=("lpips-alex", "l2_lab"),
        batch_size=5,
        progress=False,
        verbose=False,
    )
    assert set(results["2afc"]) == {"trained-alex", "lpips-alex", "l2_lab"}
    assert (tmp_path / "demo" / "results.md").is_file() and (tmp_path / "demo" / "2afc_bars.png").is_file()
    assert results["training"]["epochs_run"] == 1
