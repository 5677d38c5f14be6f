"""The feature-cached fast path: exact distances, exact training, a cache that is never stale."""

from __future__ import annotations

import os
import time

import pytest
import torch
from conftest import ours, photo_pairs, reference, require_backbone
from train_helpers import TripletSet

from lpips_core.train import TrainConfig, Trainer, epoch_order, fastpath


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny 32x32 batches gain nothing from threads, and OpenMP threads on shared cores can
    slow down a hundredfold; one thread keeps these tests quick and their floats stable."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def triplets():
    return TripletSet(n=20, size=32, seed=4)


def lin_weights(model) -> torch.Tensor:
    return torch.cat([lin.conv.weight.detach().flatten() for lin in model.lins])


@pytest.mark.parametrize("net", ["alex", "squeeze"])
def test_cached_means_give_the_reference_distance(net):
    """<means, w> equals the reference lpips.LPIPS distance (pretrained v0.1 weights, real photographs)."""
    require_backbone(net)
    x, y = photo_pairs(size=(64, 64))
    model = ours(net)
    with torch.no_grad():
        m0, m1 = fastpath.triplet_means(model, x, y, x)
        expected = reference(net)(x, y).flatten()
        fast = fastpath.cached_distance(model, m0).flatten()
        assert m0.shape == (6, sum(model.chns))
        assert (fast - expected).abs().max() < 1e-5
        assert fastpath.cached_distance(model, m1).abs().max() < 1e-6  # ref vs itself
        # the "net" baseline (all weights 1) is the plain sum of the means
        net_model = ours(net, lpips=False)
        baseline = reference(net, lpips=False)(x, y).flatten()
        assert (fastpath.cached_distance(net_model, m0).flatten() - baseline).abs().max() < 1e-5


def test_cache_width_is_the_sum_of_tap_widths():
    """alex: 64 + 192 + 384 + 256 + 256 = 1152 means per pair; vgg: 64 + 128 + 256 + 512 + 512 = 1472."""
    assert fastpath.layer_slices([64, 192, 384, 256, 256]) == [
        slice(0, 64),
        slice(64, 256),
        slice(256, 640),
        slice(640, 896),
        slice(896, 1152),
    ]
    assert sum(ours("alex").chns) == 1152
    assert fastpath.layer_slices([64, 128, 256, 512, 512])[-1].stop == 1472


@pytest.mark.parametrize("flip", [False, True])
def test_fast_training_equals_standard_training(tmp_path, triplets, flip):
    """Without dropout and with the same data order (and flips), fast == standard after 12 Adam steps."""
    require_backbone("alex")

    def train(fast: bool, flip: bool):
        cfg = TrainConfig(
            net="alex",
            batch_size=5,
            epochs=3,
            use_dropout=False,
            lr=1e-3,
            fast=fast,
            flip=flip,
            cache_dir=str(tmp_path / "cache"),
            progress=False,
        )
        trainer = Trainer(cfg, triplets)
        trainer.fit()
        return (lin_weights(trainer.model), torch.cat([p.detach().flatten() for p in trainer.rank_loss.parameters()]))

    weights, ranks = {}, {}
    for fast in (False, True):
        weights[fast], ranks[fast] = train(fast, flip)
    assert weights[False].abs().max() > 0
    assert (weights[True] - weights[False]).abs().max() <= 1e-5
    assert (ranks[True] - ranks[False]).abs().max() <= 1e-5
    if flip:  # both orientations are cached and the epoch's coins pick one
        _, flips = epoch_order(len(triplets), 0, 0)
        assert 0 < int(flips.sum()) < len(triplets)
        # and flipping is really applied: the standard path without flips learns other
        # weights (else both paths could ignore ``flip`` and still agree above)
        unflipped, _ = train(False, False)
        assert (weights[False] - unflipped).abs().max() > 100 * 1e-5


def test_dropout_expectation_is_what_the_fast_path_uses(triplets):
    """Averaged over dropout masks, the train-mode distance converges to the cached (no-dropout) distance."""
    require_backbone("alex")
    cfg = TrainConfig(net="alex", init="v0.1", use_dropout=True, progress=False)
    trainer = Trainer(cfg, triplets)
    model = trainer.model
    items = [triplets[i] for i in range(4)]
    ref, p0 = (torch.stack([it[k] for it in items]) for k in ("ref", "p0"))
    with torch.no_grad():
        m0, _ = fastpath.triplet_means(model, ref, p0, p0)
        expected = fastpath.cached_distance(model, m0).flatten()
        model.train()
        f_ref, f_p0 = model.features(ref), model.features(p0)
        draws = torch.stack([model.distance_from_features(f_ref, f_p0).flatten() for _ in range(200)])
    assert draws.std(0).min() > 0  # dropout is really active
    sem = draws.std(0) / 200**0.5
    assert ((draws.mean(0) - expected).abs() < 4 * sem + 1e-6).all()


class FolderSet(torch.utils.data.Dataset):
    """A dataset on disk with a ``root`` attribute (the fingerprint uses file names, sizes, times)."""

    def __init__(self, root, items):
        self.root = root
        self.items = items
        for i, it in enumerate(items):
            torch.save(it["judge"], os.path.join(root, f"{i}.pt"))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def test_cache_is_reused_and_never_stale(tmp_path, triplets, monkeypatch):
    require_backbone("alex")
    model = ours("alex")
    cache_dir = tmp_path / "cache"
    first = fastpath.load_or_build(model, triplets, cache_dir, progress=False)
    files = list(cache_dir.iterdir())
    assert len(files) == 1 and files[0].name == f"{first.key}.pt"

    def no_extraction(*a, **k):
        raise AssertionError("the cache should have been used")

    real_extract = fastpath.extract
    monkeypatch.setattr(fastpath, "extract", no_extraction)
    again = fastpath.load_or_build(model, triplets, cache_dir, progress=False)
    assert torch.equal(again.m0, first.m0) and again.key == first.key
    monkeypatch.setattr(fastpath, "extract", real_extract)

    # anything the means depend on changes the key
    keys = {fastpath.cache_key(triplets, model, flip=False)}
    keys.add(fastpath.cache_key(triplets, model, flip=True))
    keys.add(fastpath.cache_key(triplets, ours("alex", version="0.0"), flip=False))
    keys.add(fastpath.cache_key(triplets, ours("squeeze"), flip=False))
    changed = TripletSet(n=20, size=32, seed=4)
    changed.items[7]["p1"] = changed.items[7]["p1"].clone()
    changed.items[7]["p1"][0, 0, 0] += 0.01
    keys.add(fastpath.cache_key(changed, model, flip=False))
    assert len(keys) == 5

    # datasets on disk: touching a file changes the key
    root = tmp_path / "folder"
    root.mkdir()
    folder = FolderSet(str(root), triplets.items[:4])
    k1 = fastpath.cache_key(folder, model, flip=False)
    time.sleep(0.01)
    os.utime(root / "2.pt")
    assert fastpath.cache_key(folder, model, flip=False) != k1

    # a damaged cache file is rebuilt (with a warning), never half-used
    files[0].write_bytes(b"not a cache")
    with pytest.warns(UserWarning, match="unreadable"):
        rebuilt = fastpath.load_or_build(model, triplets, cache_dir, progress=False)
    assert torch.equal(rebuilt.m0, first.m0)
    assert not [p for p in cache_dir.iterdir() if p.suffix == ".tmp"]


def test_fast_path_refuses_what_it_cannot_cache(triplets):
    with pytest.raises(ValueError, match="frozen trunk"):
        TrainConfig(mode="scratch", fast=True)
    from lpips_core.data import FlipAugment

    with pytest.raises(ValueError, match="TrainConfig.flip"):
        fastpath.load_or_build(ours("alex"), FlipAugment(triplets), progress=False)


def test_fast_validation_equals_standard_validation(tmp_path, triplets):
    """Validation from the cache gives the same 2AFC score and distances as running the model."""
    require_backbone("alex")
    val = TripletSet(n=10, size=32, seed=5)
    cfg = TrainConfig(net="alex", init="v0.1", fast=True, cache_dir=str(tmp_path), progress=False)
    trainer = Trainer(cfg, triplets, val)
    fast = trainer.evaluate()
    slow = trainer.evaluate(TripletSet(n=10, size=32, seed=5))  # another object: goes through the images
    assert fast["score"] == pytest.approx(slow["score"])
    assert abs(fast["d0"] - slow["d0"]).max() < 1e-5
