"""TorchScript, ONNX and int8 versions of an LPIPS model give the eager model's (and the reference's) numbers.

Tolerances (tests/tolerances.py): TorchScript and trace against eager are two of
our own float32 paths (``assert_paths_agree``); anything against the reference
package is the product claim (``PARITY_TOL``); onnxruntime keeps its own 1e-4.
"""

import copy
import warnings

import pytest
import torch
from conftest import ours, photo_pairs, reference
from tolerances import PARITY_TOL, assert_parity, assert_paths_agree

from lpips_core.model import export as E


def _rand_pair(n=2, hw=(64, 64), seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 3, *hw, generator=gen) * 2 - 1, torch.rand(n, 3, *hw, generator=gen) * 2 - 1)


def _max_diff(a, b):
    return (a - b).abs().max().item()


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.* deprecation notices
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


# --------------------------------------------------------------------------- TorchScript
@pytest.mark.parametrize("cfg", [("alex", "0.1", True, False), ("squeeze", "0.0", False, True)])
def test_torch_jit_script_on_the_model_matches_eager(cfg, tmp_path):
    net = cfg[0]
    model = ours(*cfg)
    scripted = torch.jit.script(model)
    x, y = _rand_pair(2, (64, 72))
    with torch.no_grad():
        eager, eager_layers = model(x, y, retPerLayer=True)
        total, layers = scripted(x, y, True)
        # two of our float32 paths: oneDNN orders the roundings per CPU (tests/tolerances.py)
        assert_paths_agree(scripted(x, y), eager, net, "scripted vs eager")
        assert_paths_agree(total, eager, net, "scripted retPerLayer total vs eager")
        assert len(layers) == len(eager_layers)
        for k, (a, b) in enumerate(zip(layers, eager_layers)):
            assert_paths_agree(a, b, net, f"scripted vs eager, layer {k}")
        assert_paths_agree(scripted(x[0], y[:1]), eager[:1], net, "(3, H, W) input batched")
        assert_parity(scripted(x, y), reference(*cfg)(x, y), "scripted vs reference")
        path = tmp_path / "lpips.pt"
        scripted.save(str(path))
        assert_paths_agree(torch.jit.load(str(path))(x, y), eager, net, "saved and loaded script vs eager")


def test_scripted_model_checks_its_inputs():
    scripted = torch.jit.script(ours("alex"))
    x, y = _rand_pair(1, (64, 64))
    with pytest.raises(Exception, match="too small"):
        scripted(x[..., :20, :20], y[..., :20, :20])
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(Exception, match="NaN"):
        scripted(bad, y)


def test_torch_jit_trace_matches_eager_at_other_batch_sizes():
    model = ours("alex")
    x, y = _rand_pair(2)
    traced = torch.jit.trace(model, (x, y), check_trace=False)
    x5, y5 = _rand_pair(5, seed=1)
    with torch.no_grad():
        assert_paths_agree(traced(x5, y5), model(x5, y5), "alex", "traced vs eager")


# --------------------------------------------------------------------------- ONNX
@pytest.fixture(scope="module")
def alex_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "alex.onnx"
    return E.export_onnx(ours("alex"), path, example_size=(64, 64))


@pytest.mark.parametrize("shape", [(2, 64, 64), (5, 80, 96), (1, 64, 64)])
def test_onnx_export_has_dynamic_batch_and_size(alex_onnx, shape):
    session = E.onnx_session(alex_onnx, threads=2)
    n, h, w = shape
    x, y = _rand_pair(n, (h, w), seed=n)
    got = E.onnx_distance(session, x, y)
    # onnxruntime runs its own kernels (another convolution algorithm, fused ops), not a
    # reordering of ours: the product states 1e-4 for ONNX, not the float32 path bound
    with torch.no_grad():
        assert _max_diff(got, ours("alex")(x, y)) <= 1e-4
        assert _max_diff(got, reference("alex")(x, y)) <= 1e-4


def test_export_onnx_leaves_no_partial_file(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("export failed")

    monkeypatch.setattr(torch.onnx, "export", broken)
    with pytest.raises(RuntimeError, match="export failed"):
        E.export_onnx(ours("alex"), tmp_path / "x.onnx")
    assert list(tmp_path.iterdir()) == []


def test_onnx_int8_quantisation_error_is_small(alex_onnx, tmp_path):
    q = E.quantize_onnx(alex_onnx, tmp_path / "alex_int8.onnx")
    assert q.stat().st_size < alex_onnx.stat().st_size / 2  # int8 weights
    refs, dists = photo_pairs(size=(64, 64), seed=8)
    got = E.onnx_distance(E.onnx_session(q, threads=2), refs, dists)
    with torch.no_grad():
        exact = ours("alex")(refs, dists)
    rel = ((got - exact).abs() / exact).max().item()
    assert 0 < rel < 0.05


# --------------------------------------------------------------------------- int8 (PyTorch)
def test_torch_dynamic_int8_quantises_trunk_convolutions():
    from torch.ao.nn.quantized.dynamic import Conv2d as DynamicConv2d

    model = ours("alex")
    qmodel = E.quantize_dynamic(model)
    assert isinstance(qmodel.net.slice1[0], DynamicConv2d)
    assert isinstance(model.net.slice1[0], torch.nn.Conv2d)  # original untouched
    refs, dists = photo_pairs(size=(64, 64), seed=8)
    with torch.no_grad():
        approx, exact = qmodel(refs, dists).flatten(), model(refs, dists).flatten()
    assert not torch.equal(approx, exact)
    # int8 moves the values by tens of percent but keeps the ordering of distances
    order_agree = ((approx[:, None] < approx[None, :]) == (exact[:, None] < exact[None, :])).float().mean()
    assert order_agree >= 0.9


def test_readme_linear_quantize_dynamic_is_a_no_op_and_export_quantize_dynamic_is_not():
    """README: ``torch.ao.quantization.quantize_dynamic(model, {nn.Linear})`` runs but changes
    nothing, because LPIPS has no ``nn.Linear`` (its "linear" layers are 1x1 convolutions);
    ``export.quantize_dynamic`` is the call that really quantises (the trunk's convolutions)."""
    model = ours("alex")
    assert not any(isinstance(m, torch.nn.Linear) for m in model.modules())  # so the call below is a no-op
    q = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    assert q is not model and copy.deepcopy(q) is not None
    assert [type(m) for m in q.modules()] == [type(m) for m in model.modules()]  # nothing was swapped
    refs, dists = photo_pairs(size=(64, 64), seed=8)
    with torch.no_grad():
        same, eager, expected = q(refs, dists), model(refs, dists), reference("alex")(refs, dists)
    assert torch.equal(same, eager)
    assert_parity(same, expected, "quantize_dynamic({nn.Linear}) vs reference")
    # the real int8 model moves the distances, but stays near the reference's
    with torch.no_grad():
        approx = E.quantize_dynamic(model)(refs, dists)
    err = (approx - expected).abs().flatten()
    assert err.max().item() > 100 * PARITY_TOL  # quantised for real: far beyond float rounding
    assert err.max().item() < 0.25 * expected.max().item()  # int8 moves them by ~7% of their scale here
    a, e = approx.flatten(), expected.flatten()
    order_agree = ((a[:, None] < a[None, :]) == (e[:, None] < e[None, :])).float().mean()
    assert order_agree >= 0.9
