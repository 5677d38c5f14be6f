"""Shared fixtures: paths to ../shared, real photographs, and the reference oracle."""

from __future__ import annotations

import contextlib
import functools
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared is absent (fresh clone elsewhere)")

NETS = ["alex", "vgg", "squeeze"]


def child_env(**extra) -> dict:
    """The environment of a test's Python subprocess: the repository and tests/ importable, one
    torch thread, plus ``extra`` (values as strings)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests")]), OMP_NUM_THREADS="1")
    env.update({k: str(v) for k, v in extra.items()})
    return env


@functools.cache
def backbone_available(net: str) -> bool:
    """True when pretrained weights for ``net`` can be had here (cache, $LPIPS_CORE_WEIGHTS, ...)."""
    from lpips_core.model.weights import WeightsError, load_backbone_state

    try:
        load_backbone_state(net)
        return True
    except WeightsError:
        return False


def require_backbone(net: str) -> None:
    if not backbone_available(net):
        pytest.skip(f"no pretrained {net} weights here (set LPIPS_CORE_WEIGHTS)")


@functools.cache
def ours(net: str = "alex", version: str = "0.1", lpips: bool = True, spatial: bool = False):
    """An lpips_core model; pretrained trunk when available, else a seeded random trunk."""
    import lpips_core

    # Cached for the whole session: never build it as inference tensors, even when
    # the first caller is inside torch.inference_mode (later callers need gradients).
    with torch.inference_mode(False):
        if backbone_available(net):
            return lpips_core.LPIPS(net=net, version=version, lpips=lpips, spatial=spatial)
        torch.manual_seed(0)
        return lpips_core.LPIPS(net=net, version=version, lpips=lpips, spatial=spatial, pnet_rand=True)


#: The torch.nn.init functions that torchvision's trunks and torch's layers call on construction.
RANDOM_INITS = ("normal_", "uniform_", "kaiming_normal_", "kaiming_uniform_", "constant_", "zeros_", "ones_")


@contextlib.contextmanager
def random_init_skipped():
    """Parameters constructed inside are left uninitialised instead of drawn at random.

    For building the reference model only: its random trunk (``pnet_rand=True``) is replaced by
    ours, strictly, and torchvision also draws the ImageNet classifier that the reference
    discards (about 2.5 s for VGG16's 120 M parameters). Every value the reference then uses is
    loaded (the trunk from ours, the linear layers from its own file); one that were not would
    show as a parity failure, as a random one would.
    """
    from unittest import mock

    keep = {name: (lambda tensor, *args, **kwargs: tensor) for name in RANDOM_INITS}
    with mock.patch.multiple(torch.nn.init, **keep):
        yield


@functools.cache
def reference(net: str = "alex", version: str = "0.1", lpips: bool = True, spatial: bool = False):  # noqa: A002
    """The reference ``lpips.LPIPS`` with the same trunk weights as ``ours(...)``.

    The reference's own linear weights are used (loaded by the reference code),
    so the linear layers, the scaling, the normalisation and the reduction are
    all checked independently; only the trunk weights are shared. Those are
    checked against their published sources in ``tests/test_trunk_weights.py``
    (alex and vgg need nothing from ``../shared``).
    """
    import lpips as reference_package

    from lpips_core.model.safe_load import weights_only_loads

    # cached: see ours(); its linear weights are a .pth it torch.loads: restricted, as SECURITY.md says
    with warnings.catch_warnings(), torch.inference_mode(False), weights_only_loads(), random_init_skipped():
        warnings.simplefilter("ignore")
        ref = reference_package.LPIPS(
            net=net, version=version, lpips=lpips, spatial=spatial, pnet_rand=True, verbose=False
        )
        ref.net.load_state_dict(ours(net, version, lpips, spatial).net.state_dict())
    return ref.eval()


@functools.cache
def photo(name: str) -> np.ndarray:
    """A real photograph shipped with scikit-image, (H, W, 3) uint8."""
    import skimage.data

    img = getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return img[:, :, :3]


def photo_pairs(size=(96, 128), seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Crops of real photographs and distorted versions (noise, blur, JPEG), in [-1, 1].

    Returns:
        two (6, 3, H, W) float32 tensors.
    """
    import io

    from PIL import Image, ImageFilter

    from lpips_core import im2tensor

    rng = np.random.default_rng(seed)
    h, w = size
    refs, dists = [], []
    for name in ("astronaut", "coffee", "chelsea"):
        img = photo(name)
        y, x = rng.integers(0, img.shape[0] - h), rng.integers(0, img.shape[1] - w)
        crop = img[y : y + h, x : x + w]
        noisy = np.clip(crop + rng.normal(0, 12, crop.shape), 0, 255).astype(np.uint8)
        blurred = np.asarray(Image.fromarray(crop).filter(ImageFilter.GaussianBlur(1.5)))
        buf = io.BytesIO()
        Image.fromarray(crop).save(buf, format="JPEG", quality=15)
        jpeg = np.asarray(Image.open(buf).convert("RGB"))
        for d in (noisy, blurred if name != "chelsea" else jpeg):
            refs.append(im2tensor(crop))
            dists.append(im2tensor(d))
    return torch.cat(refs), torch.cat(dists)


_PYTEST_START = time.time()
#: The whole of ``make test`` (setup, mini set, pytest with the notebooks and the browser
#: test) should stay within this many seconds on 2 cores of the slower machine (an AMD EPYC
#: with AVX2), from a fresh clone; 900 s is the hard limit.
MAKE_TEST_BUDGET_S = 720
MAKE_TEST_LIMIT_S = 900


#: Test modules that are slow as a whole (subprocesses, browsers, killed runs, builds); marked
#: ``slow`` here so that ``make check`` (``-m "not slow"``) leaves them, and the notebooks, to
#: ``make test``. Single slow tests elsewhere carry ``@pytest.mark.slow`` themselves.
SLOW_MODULES = {
    "test_book.py",
    "test_playground.py",
    "test_faults.py",
    "test_release.py",
    "test_distributed.py",
    "test_weights_concurrency.py",
    "test_hostile_inputs.py",
    "test_trunk_weights.py",
}


#: Single tests of several seconds each (subprocesses, exports, end-to-end commands) that
#: ``make check`` leaves to ``make test``, by ``module::name`` (any parametrisation).
SLOW_TESTS = {
    "test_train.py::test_killed_run_resumes_to_the_same_weights",
    "test_weights.py::test_damaged_cache_is_reported_and_recreated",
    "test_cli.py::test_compare_spatial_map",
    "test_cli.py::test_console_script_runs",
    "test_design_api.py::test_production_torchscript_and_onnx_give_the_reference_distances_linear_quantize_is_a_no_op",
    "test_evaluate.py::test_compare_models_table_plots_and_paper_columns",
    "test_export.py::test_onnx_export_has_dynamic_batch_and_size",
}
#: VGG is the slowest trunk (about 10x AlexNet's work): in these modules ``make check`` runs the
#: AlexNet and SqueezeNet cases and leaves VGG's to ``make test``.
VGG_SLOW_MODULES = {"test_parity.py", "test_fast.py", "test_mask.py", "test_precision.py", "test_gradients.py"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        name = f"{item.path.name}::{item.originalname}" if hasattr(item, "originalname") else ""
        vgg_case = item.path.name in VGG_SLOW_MODULES and "vgg" in item.name
        if item.path.name in SLOW_MODULES or item.path.suffix == ".ipynb" or name in SLOW_TESTS or vgg_case:
            item.add_marker(pytest.mark.slow)


def pytest_terminal_summary(terminalreporter):
    """Under ``make test``, show where the time budget went, above pytest's closing line."""
    start = os.environ.get("LPIPS_CORE_MAKE_START")
    if start and start.isdigit():
        now = time.time()
        terminalreporter.write_line(
            f"make test: setup {_PYTEST_START - int(start):.0f} s, pytest {now - _PYTEST_START:.0f} s, "
            f"total {now - int(start):.0f} s (budget {MAKE_TEST_BUDGET_S} s, limit {MAKE_TEST_LIMIT_S} s)"
        )


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module: small tensors gain nothing from threads on 2 shared
    cores, and one thread keeps float reductions in a fixed order."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def empty_weights_cache(tmp_path, monkeypatch) -> Path:
    """An empty converted-weights cache and no ``$LPIPS_CORE_WEIGHTS``: only the other sources are left."""
    monkeypatch.setenv("LPIPS_CORE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("LPIPS_CORE_WEIGHTS", raising=False)
    return tmp_path / "cache"
