"""The design document's API (issue 9): each row of its table runs as the seed wrote it.

One test per row. Each runs the snippet (apart from imports) and checks the
result against something computed independently: the reference ``lpips``
package (``conftest.reference``, ``lpips.trainer.score_2afc_dataset``,
``lpips.BCERankingLoss``), scikit-image / scipy / numpy, or files read by hand.
The judgments of the small data set come from a simulated pixel observer
(``tests/train_helpers.TripletSet``), never from people.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import forked
import numpy as np
import pytest
import torch
from conftest import REPO, photo, photo_pairs, reference, require_backbone
from PIL import Image
from tolerances import PARITY_TOL, assert_parity, assert_paths_agree
from torch.utils.data import DataLoader
from train_helpers import TripletSet, write_bapps

import lpips_core
from lpips_core import design_api
from lpips_core.design_api import (
    JNDDataset,
    LPIPSDataModule,
    LPIPSEvaluator,
    LPIPSFeatureExtractor,
    LPIPSLinearLayers,
    LPIPSLoss,
    LPIPSTrainer,
    LPIPSVisualizer,
    ProductionLPIPS,
    TraditionalMetrics,
    create_lpips_model,
    create_lpips_trainer,
)

N_TRAIN, N_VAL = 40, 24


# --------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A BAPPS-layout folder: 2afc/train (40 triplets), 2afc/val (24), jnd/val (6 pairs)."""
    root = tmp_path_factory.mktemp("design") / "bapps"
    write_bapps(root, {"train": TripletSet(N_TRAIN, 32, seed=0), "val": TripletSet(N_VAL, 32, seed=1)})
    jnd = root / "jnd" / "val" / "photos"
    for k in ("p0", "p1", "same"):
        (jnd / k).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(6):
        for k in ("p0", "p1"):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(jnd / k / f"{i:03d}.png")
        np.save(jnd / "same" / f"{i:03d}.npy", np.array([i / 5], dtype=np.float32))
    return root


class _RefLoader:
    """The reference trainer's loader interface (``load_data()`` yields batches)."""

    def __init__(self, loader):
        self.loader = loader

    def load_data(self):
        return iter(self.loader)


def _reference_2afc(ref_model, dataset) -> tuple[float, dict]:
    """2AFC score by ``lpips/trainer.py`` with the reference model, over ``dataset``."""
    from lpips.trainer import score_2afc_dataset

    with torch.no_grad():
        return score_2afc_dataset(_RefLoader(DataLoader(dataset, batch_size=8)), ref_model.forward)


def _reference_with(model) -> torch.nn.Module:
    """The reference ``lpips.LPIPS`` holding ``model``'s trunk and linear weights (loaded by the reference)."""
    import tempfile

    import lpips as reference_package

    from lpips_core.train import export_linear_weights

    with tempfile.TemporaryDirectory() as tmp:
        path = export_linear_weights(model, Path(tmp) / "w.pth")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = reference_package.LPIPS(net=model.pnet_type, model_path=str(path), pnet_rand=True, verbose=False)
    ref.net.load_state_dict(model.net.state_dict())
    return ref.eval()


def _read_patch(path: Path, size: int = 64) -> torch.Tensor:
    """The reference BAPPS loader's recipe by hand: PIL bilinear resize, then uint8 -> [-1, 1]."""
    img = Image.open(path).convert("RGB").resize((size, size), Image.BILINEAR)
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255 * 2 - 1).permute(2, 0, 1)


# --------------------------------------------------------------------------- row 1
def test_create_lpips_model_with_every_backbone_name_gives_the_reference_distance():
    img1, img2 = photo_pairs(size=(64, 80))
    img1, img2 = img1[:3], img2[:3]
    for backbone, net in (
        ("alexnet", "alex"),
        ("vgg", "vgg"),
        ("squeezenet", "squeeze"),
        ("alex", "alex"),
        ("vgg16", "vgg"),
        ("squeeze", "squeeze"),
    ):
        require_backbone(net)
        model = create_lpips_model(backbone, pretrained=True)
        distance = model(img1, img2)  # [-1, 1] images
        distance01 = model((img1 + 1) / 2, (img2 + 1) / 2, normalize=True)  # [0, 1] images
        with torch.no_grad():
            expected = reference(net)(img1, img2)
        assert isinstance(model, lpips_core.LPIPS) and model.pnet_type == net
        assert distance.shape == (3, 1, 1, 1)
        assert torch.allclose(distance, expected, atol=1e-5), backbone
        assert torch.allclose(distance01, expected, atol=1e-5), backbone
    # pretrained=False: ImageNet trunk, linear layers not yet trained (the reference's lpips.LPIPS(pretrained=False))
    untrained = create_lpips_model("alexnet", pretrained=False)
    assert torch.equal(untrained.net.slice1[0].weight, create_lpips_model("alex").net.slice1[0].weight)
    assert not torch.equal(untrained.lins[0].conv.weight, create_lpips_model("alex").lins[0].conv.weight)
    with pytest.raises(ValueError, match="not supported"):
        create_lpips_model("resnet50")


# --------------------------------------------------------------------------- row 2
def test_model_pieces_compose_to_the_reference_distance_and_loss():
    require_backbone("alex")
    import lpips as reference_package

    from lpips_core.model import ScalingLayer, normalize_tensor

    x, y = photo_pairs(size=(64, 64))
    # the model
    model = design_api.LPIPS(net="alex")
    assert design_api.LPIPS is lpips_core.LPIPS
    # the pieces, composed by hand: trunk taps -> unit features -> squared difference -> 1x1 weights -> mean -> sum
    extractor = LPIPSFeatureExtractor("alexnet")
    linear = LPIPSLinearLayers.pretrained("alexnet").eval()
    scale = ScalingLayer()
    with torch.no_grad():
        f0 = [normalize_tensor(t) for t in extractor(scale(x))]
        f1 = [normalize_tensor(t) for t in extractor(scale(y))]
        maps = linear([(a - b) ** 2 for a, b in zip(f0, f1)])
        composed = sum(m.mean([2, 3], keepdim=True) for m in maps)
        expected = reference("alex")(x, y)
    assert extractor.channels == [64, 192, 384, 256, 256] and len(linear) == 5
    assert torch.allclose(composed, expected, atol=1e-5)
    assert torch.allclose(model(x, y), expected, atol=1e-5)
    # the linear layers of a model are shared, non-negative after clamp_
    shared = LPIPSLinearLayers.from_model(model)
    assert shared[0] is model.lins[0]
    fresh = LPIPSLinearLayers(extractor.channels)
    assert any((w < 0).any() for w in fresh.weights)  # PyTorch's default init has negative weights
    assert all((w >= 0).all() for w in fresh.clamp_().weights)
    # the 2AFC loss: the reference's BCERankingLoss with the same weights, judge h in [0, 1] (reference: 2h - 1)
    loss = LPIPSLoss()
    ref_loss = reference_package.BCERankingLoss()
    ref_loss.net.load_state_dict(loss.net.state_dict())
    d0, d1 = torch.rand(6, 1, 1, 1), torch.rand(6, 1, 1, 1)
    h = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0, 0.4]).view(6, 1, 1, 1)
    assert loss(d0, d1, h).item() == pytest.approx(ref_loss(d0, d1, 2 * h - 1).item(), abs=1e-6)


# --------------------------------------------------------------------------- row 3
def test_seed_jnd_dataset_is_the_triplet_set_and_data_module_splits_as_documented(data_dir):
    dataset = JNDDataset(data_dir, split="train")
    item = dataset[3]
    assert isinstance(dataset, lpips_core.TwoAFCDataset) and len(dataset) == N_TRAIN
    folder = data_dir / "2afc" / "train" / "photos"
    for k in ("ref", "p0", "p1"):
        assert torch.allclose(item[k], _read_patch(folder / k / f"{item['id']}.png"), atol=1e-6)
    assert item["judge"].item() == pytest.approx(float(np.load(folder / "judge" / f"{item['id']}.npy")[0]))
    # the package's JNDDataset is still BAPPS's JND set (pairs and "same")
    real = lpips_core.JNDDataset(data_dir)
    assert len(real) == 6 and set(real[5]) >= {"p0", "p1", "same"} and real[5]["same"].item() == pytest.approx(1.0)

    # official train/val folders: test = official val; train : val = 0.8 : 0.2 of the official train split
    dm = LPIPSDataModule(data_dir, batch_size=8, train_split=0.8, val_split=0.2, augment_training=True)
    dm.setup()
    assert (len(dm.train_dataset), len(dm.val_dataset), len(dm.test_dataset)) == (32, 8, N_VAL)
    assert isinstance(dm.train_dataset, lpips_core.data.FlipAugment)
    batch = next(iter(dm.train_dataloader()))
    assert batch["ref"].shape == (8, 3, 64, 64) and batch["judge"].shape == (8, 1)
    # one split folder: fractions of its items, the rest is the test set
    dm = LPIPSDataModule(
        data_dir / "2afc" / "train", batch_size=4, train_split=0.5, val_split=0.25, augment_training=False
    ).setup()
    ids = [[ds.dataset.records[i].id for i in ds.indices] for ds in (dm.train_dataset, dm.val_dataset, dm.test_dataset)]
    assert [len(i) for i in ids] == [20, 10, 10]
    assert sorted(sum(ids, [])) == sorted(r.id for r in dataset.records)
    with pytest.raises(ValueError, match="together at most 1"):
        LPIPSDataModule(data_dir, batch_size=4, train_split=0.9, val_split=0.2, augment_training=False)


# --------------------------------------------------------------------------- row 4
def test_trainer_names_train_evaluate_and_match_the_reference_scores(data_dir, tmp_path):
    require_backbone("alex")
    trainer = create_lpips_trainer(
        backbone="alexnet",
        data_dir=data_dir,
        batch_size=8,
        learning_rate=1e-3,
        experiment_name="seed_run",
        runs_dir=tmp_path / "runs",
        cache_dir=tmp_path / "cache",
        progress=False,
    )
    start = [w.clone() for w in LPIPSLinearLayers.from_model(trainer.model).weights]
    history = trainer.train(num_epochs=2, validate_every=1, save_every=1, early_stopping_patience=3)
    results = trainer.evaluate()

    assert history["epoch"] == [1, 2] and len(history["train_loss"]) == 2
    weights = LPIPSLinearLayers.from_model(trainer.model).weights
    assert all((w >= 0).all() for w in weights) and not all(torch.equal(a, b) for a, b in zip(start, weights))
    run = tmp_path / "runs" / "seed_run"
    assert (run / "latest.pt").is_file() and (run / "best.pt").is_file()
    # the reference package with the trained weights scores the same triplets identically
    ref = _reference_with(trainer.model)
    dm = trainer.data_module
    assert history["val_accuracy"][-1] == pytest.approx(_reference_2afc(ref, dm.val_dataset)[0], abs=1e-9)
    expected, out = _reference_2afc(ref, dm.test_dataset)
    assert results["split"] == "test" and results["n_triplets"] == N_VAL
    assert results["accuracy"] == pytest.approx(expected, abs=1e-9)
    assert np.allclose(results["d0"], out["d0s"], atol=1e-5)

    # LPIPSTrainer on a given model: learning rate 0 keeps the official weights, so the scores are the official ones
    model = create_lpips_model("alexnet", pretrained=True)
    data_module = LPIPSDataModule(data_dir, batch_size=8, train_split=0.8, val_split=0.2, augment_training=False)
    trainer = LPIPSTrainer(
        model,
        data_module,
        learning_rate=0.0,
        weight_decay=1e-4,
        optimizer_type="adamw",
        scheduler_type="cosine",
        cache_dir=tmp_path / "cache",
        progress=False,
    )
    history = trainer.train(num_epochs=1, validate_every=1, save_every=1, early_stopping_patience=None)
    assert isinstance(trainer.trainer.optimizer, torch.optim.AdamW)
    assert trainer.trainer.optimizer.param_groups[0]["weight_decay"] == 1e-4
    assert isinstance(trainer.trainer.scheduler, torch.optim.lr_scheduler.CosineAnnealingLR)
    assert torch.equal(model.lins[2].conv.weight, create_lpips_model("alex").lins[2].conv.weight)
    assert history["val_accuracy"][0] == pytest.approx(
        _reference_2afc(reference("alex"), data_module.val_dataset)[0], abs=1e-9
    )
    assert trainer.evaluate()["accuracy"] == pytest.approx(
        _reference_2afc(reference("alex"), data_module.test_dataset)[0], abs=1e-9
    )


# --------------------------------------------------------------------------- row 5
def test_evaluator_and_visualizer_match_the_reference_trainer_and_scipy(data_dir, tmp_path, monkeypatch):
    require_backbone("alex")
    from scipy import stats

    from lpips_core.eval import plots

    model = create_lpips_model("alexnet")
    model.lins.requires_grad_(True)
    loader = DataLoader(JNDDataset(data_dir, split="val"), batch_size=8)
    evaluator = LPIPSEvaluator(model)
    results = evaluator.evaluate_2afc_dataset(loader)
    accuracy, pearson = results["accuracy"], results["correlations"]["lpips"]["pearson_r"]

    expected, out = _reference_2afc(reference("alex"), loader.dataset)
    assert accuracy == pytest.approx(expected, abs=1e-9)
    assert pearson == pytest.approx(stats.pearsonr(out["d0s"] - out["d1s"], out["gts"]).statistic, abs=1e-5)
    assert results["correlations"]["lpips"]["spearman_r"] == pytest.approx(
        stats.spearmanr(out["d0s"] - out["d1s"], out["gts"]).statistic, abs=1e-5
    )
    # the other metrics: L2 (RMSE on [0, 1] RGB) by hand
    items = [loader.dataset[i] for i in range(len(loader.dataset))]
    rmse = lambda a, b: ((a - b) / 2).pow(2).mean().sqrt().item()  # noqa: E731  (both in [-1, 1])
    l2_0 = np.array([rmse(it["ref"], it["p0"]) for it in items])
    l2_1 = np.array([rmse(it["ref"], it["p1"]) for it in items])
    assert results["correlations"]["l2"]["pearson_r"] == pytest.approx(
        stats.pearsonr(l2_0 - l2_1, out["gts"]).statistic, abs=1e-5
    )
    assert set(results["correlations"]) == {"lpips", "l2", "l1", "ssim", "psnr"}
    assert results["accuracy_ci"][0] <= accuracy <= results["accuracy_ci"][1]
    assert model.lins[0].conv.weight.requires_grad and not model.training  # the model is left as it was

    drawn = {}
    save_figure = plots.save_figure

    def capture(fig, path, dpi=120):
        drawn["heights"] = [bar.get_height() for bar in fig.axes[0].patches]
        return save_figure(fig, path, dpi)

    monkeypatch.setattr(plots, "save_figure", capture)
    path = LPIPSVisualizer().plot_correlation_comparison(results, save_path=tmp_path / "corr.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pearson_bars = drawn["heights"][: len(results["correlations"])]  # first group of bars: Pearson per metric
    assert pearson_bars == pytest.approx([c["pearson_r"] for c in results["correlations"].values()])


# --------------------------------------------------------------------------- row 6
def test_traditional_metrics_on_single_images_match_scikit_image_and_numpy():
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    ref = photo("astronaut")[100:400, 150:450]
    noisy = np.clip(ref + np.random.default_rng(0).normal(0, 15, ref.shape), 0, 255).astype(np.uint8)
    img1 = torch.from_numpy(ref).permute(2, 0, 1).float() / 127.5 - 1  # (3, H, W) in [-1, 1]
    img2 = torch.from_numpy(noisy).permute(2, 0, 1).float() / 127.5 - 1

    metrics = TraditionalMetrics()
    psnr = metrics.psnr(img1, img2)
    ssim = metrics.ssim(img1, img2)
    l1 = metrics.lpnorm(img1, img2, p=1)
    l2 = metrics.lpnorm(img1, img2, p=2)
    all_metrics = metrics.compute_all_metrics(img1, img2)

    a, b = ref / 255.0, noisy / 255.0
    assert psnr == pytest.approx(peak_signal_noise_ratio(ref, noisy, data_range=255), abs=1e-3)
    assert ssim == pytest.approx(
        structural_similarity(
            a, b, data_range=1.0, channel_axis=2, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
        ),
        abs=5e-4,
    )
    assert l1 == pytest.approx(np.abs(a - b).mean(), rel=1e-5)
    assert l2 == pytest.approx(np.sqrt(((a - b) ** 2).mean()), rel=1e-5)
    assert {"psnr", "ssim", "l1", "l2"} <= set(all_metrics)
    assert [all_metrics[k] for k in ("psnr", "ssim", "l1", "l2")] == pytest.approx([psnr, ssim, l1, l2])
    # the design document's class, fenced in design_api: the core class plus class-level calls
    assert issubclass(TraditionalMetrics, lpips_core.TraditionalMetrics)
    with pytest.raises(TypeError):  # the core class keeps no design-document behaviour
        lpips_core.TraditionalMetrics.psnr(img1, img2)


# --------------------------------------------------------------------------- row 7
def test_production_torchscript_and_onnx_give_the_reference_distances_linear_quantize_is_a_no_op(tmp_path):
    require_backbone("alex")
    import onnxruntime as ort

    from lpips_core.model.export import quantize_dynamic as export_quantize_dynamic
    from lpips_core.train import export_linear_weights

    x, y = photo_pairs(size=(64, 64))
    x, y = x[:2], y[:2]
    # a trained-looking linear-weights file: the official weights, reweighted
    model = create_lpips_model("alexnet")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for lin in model.lins:
            lin.conv.weight.mul_(torch.rand(lin.conv.weight.shape, generator=g) * 2)
    model_path = export_linear_weights(model, tmp_path / "trained.pth")
    ref = _reference_with(model)
    with torch.no_grad():
        expected = ref(x, y)

    metric = ProductionLPIPS(model_path=model_path, device="cpu")
    assert torch.allclose(metric(x, y), expected.flatten(), atol=1e-5)
    assert metric(x[0], y[0]) == pytest.approx(expected[0].item(), abs=1e-5)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch marks TorchScript deprecated; it still works
        scripted = torch.jit.script(model)
    with torch.no_grad():
        # two of our own float32 paths: their rounding order is CPU-dependent (tests/tolerances.py)
        assert_paths_agree(scripted(x, y), model(x, y), "alex", "scripted vs eager")
        assert_parity(scripted(x, y), expected, "scripted vs reference")

    # LPIPS has no nn.Linear (its linear layers are 1x1 convolutions), so this call is a
    # no-op by construction: it swaps no module and the distances stay the reference's
    assert not any(isinstance(m, torch.nn.Linear) for m in model.modules())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        quantized = torch.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    assert [type(m) for m in quantized.modules()] == [type(m) for m in model.modules()]
    with torch.no_grad():
        assert torch.equal(quantized(x, y), model(x, y))
        assert_parity(quantized(x, y), expected, "quantize_dynamic({nn.Linear}) vs reference")
        # the quantisation the row stands for, lpips_core.model.export.quantize_dynamic (int8 trunk
        # convolutions), really moves the distances, and keeps them near the reference's
        xs, ys = photo_pairs(size=(64, 64))  # all six pairs, so that their order can be compared
        exact = ref(xs, ys).flatten()
        approx = export_quantize_dynamic(model)(xs, ys).flatten()
    err = (approx - exact).abs().max().item()
    assert err > 100 * PARITY_TOL  # quantised for real: far beyond float rounding
    assert err < 0.25 * exact.max().item()  # int8 moves these distances by ~10% of their scale
    order_agree = ((approx[:, None] < approx[None, :]) == (exact[:, None] < exact[None, :])).float().mean()
    assert order_agree >= 0.9

    path = tmp_path / "lpips.onnx"
    torch.onnx.export(model, (x, y), str(path), opset_version=18)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    got = session.run(None, {names[0]: x.numpy(), names[1]: y.numpy()})[0]
    # onnxruntime runs its own kernels (not a reordering of ours), so it keeps the ONNX bound
    # the performance issue states, 1e-4, rather than PARITY_TOL or the float32 path bound
    assert np.abs(got - expected.numpy()).max() <= 1e-4


# --------------------------------------------------------------------------- row 8
def _run_main(*args: str, log: Path, env_extra: dict | None = None) -> tuple[int, str, str]:
    """``python main.py *args`` in a process of its own (forked: tests/forked.py): (returncode, stdout, stderr)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", **(env_extra or {}))
    path = str(REPO / "main.py")
    script = f"import runpy, sys; sys.argv[0] = {path!r}; runpy.run_path({path!r}, run_name='__main__')"
    return forked.run(script, *args, env=env, log=log, cwd=REPO)


@pytest.mark.slow
def test_main_py_forwards_every_mode_to_lpips_core(data_dir, tmp_path, capsys):
    require_backbone("alex")
    from lpips_core.cli import build_parser, cmd_analyze, cmd_compare_models, cmd_demo

    # a fresh cache (no stored features), seeded with the converted trunk that the session
    # already checked: converting it again costs about 5 s and is test_weights' subject
    from lpips_core.model.weights import converted_path

    cache = tmp_path / "cache"
    cache.mkdir()
    if converted_path("alexnet").exists():
        shutil.copyfile(converted_path("alexnet"), cache / converted_path("alexnet").name)
    out = tmp_path / "train"
    rc, _, stderr = _run_main(
        "--mode",
        "train",
        "--data_dir",
        str(data_dir),
        "--backbone",
        "alexnet",
        "--epochs",
        "1",
        "--batch_size",
        "8",
        "--output_dir",
        str(out),
        "-q",
        "--no-baselines",
        log=tmp_path / "train-log",
        env_extra={"LPIPS_CORE_CACHE": str(cache)},
    )
    assert rc == 0, stderr[-2000:]
    assert "lpips-core train --data" in stderr
    summary = json.loads((out / "summary.json").read_text())
    trained = out / "alex_lin.pth"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import lpips as reference_package

        ref = reference_package.LPIPS(net="alex", model_path=str(trained), pnet_rand=True, verbose=False)
    ref.net.load_state_dict(reference("alex").net.state_dict())
    val = lpips_core.TwoAFCDataset(data_dir, split="val")
    assert summary["val_2afc"]["trained-alex_lin"] == pytest.approx(_reference_2afc(ref.eval(), val)[0], abs=1e-9)

    ev = tmp_path / "eval"
    rc, _, stderr = _run_main(
        "--mode",
        "evaluate",
        "--data_dir",
        str(data_dir),
        "--backbone",
        "alexnet",
        "--model_path",
        str(trained),
        "--output_dir",
        str(ev),
        "-q",
        "--resamples",
        "50",
        log=tmp_path / "eval-log",
    )
    assert rc == 0, stderr[-2000:]
    scores = json.loads((ev / "results.json").read_text())["2afc"]
    assert scores["trained-alex"]["photos"]["score"] == pytest.approx(_reference_2afc(ref, val)[0], abs=1e-9)

    # the other modes: the translated command line is one lpips-core accepts, for the right command
    parser = build_parser()
    for argv, func in (
        (["--mode", "compare", "--data_dir", "d", "--model_path", "m.pth"], cmd_compare_models),
        (["--mode", "demo", "--backbone", "squeezenet", "--epochs", "2"], cmd_demo),
        (["--mode", "analyze", "--data_dir", "d", "--output_dir", "o"], cmd_analyze),
    ):
        args = parser.parse_args(design_api.main_argv(argv))
        assert args.func is func
    assert design_api.main_argv(["--mode", "demo", "--backbone", "squeezenet", "--epochs", "2"]) == [
        "demo",
        "-o",
        "demo_results",
        "--net",
        "squeeze",
        "--epochs",
        "2",
    ]
    # a bad command line: argparse's status and message (main.py only calls main; run in-process)
    with pytest.raises(SystemExit) as bad:
        design_api.main(["--mode", "evaluate"])
    assert bad.value.code == 2 and "needs --data_dir" in capsys.readouterr().err
