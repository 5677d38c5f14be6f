"""Training under DistributedDataParallel (2 CPU processes, gloo) equals one process with the same global batch."""

from __future__ import annotations

import pytest
import torch
import torch.multiprocessing as mp
from conftest import require_backbone
from train_helpers import TripletSet, ddp_worker, free_port

from lpips_core.train import TrainConfig, Trainer
from lpips_core.train import distributed as ddp

#: Max abs difference allowed between 2-process and 1-process weights. Only the
#: order of float32 additions differs (each rank sums half the batch, then gloo
#: adds the halves), so differences are ~1e-8 after a few Adam steps.
TOLERANCE = 1e-6


def test_two_processes_match_one(tmp_path):
    require_backbone("alex")
    n_train, n_val = 20, 7  # 4 global batches of 6, 6, 6, 2: every rank gets items; val shards are uneven
    base = dict(
        net="alex",
        batch_size=6,
        epochs=2,
        use_dropout=False,
        lr=1e-3,
        progress=False,
        cache_dir=str(tmp_path / "cache"),
    )
    configs = [dict(base, fast=False), dict(base, fast=True, flip=True)]
    result_path = tmp_path / "ddp.pt"
    mp.spawn(
        ddp_worker,
        nprocs=2,
        join=True,
        args=(2, free_port(), configs, n_train, n_val, str(tmp_path / "ddp"), str(result_path)),
    )
    ddp_results = torch.load(result_path, weights_only=True)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _compare(tmp_path, configs, ddp_results, n_train, n_val)
    finally:
        torch.set_num_threads(threads)


def _compare(tmp_path, configs, ddp_results, n_train, n_val):
    for i, cfg in enumerate(configs):
        single = Trainer(
            TrainConfig(**cfg), TripletSet(n_train, 32, 0), TripletSet(n_val, 32, 1), out_dir=tmp_path / f"single{i}"
        )
        single.fit()
        got = ddp_results[i]
        lin = torch.cat([lin.conv.weight.detach().flatten() for lin in single.model.lins])
        rank = torch.cat([p.detach().flatten() for p in single.rank_loss.parameters()])
        print(
            f"config {i}: max |ddp - single| lin {(got['lin'] - lin).abs().max():.2e}, "
            f"rank net {(got['rank'] - rank).abs().max():.2e}"
        )
        assert (got["lin"] - lin).abs().max() <= TOLERANCE
        assert (got["rank"] - rank).abs().max() <= TOLERANCE
        for a, b in zip(got["history"], single.history):  # gathered validation = single-process validation
            assert a["val_2afc"] == pytest.approx(b["val_2afc"], abs=1e-12)
            assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-6)
        if cfg["fast"]:  # features extracted by two ranks and gathered = one process's features
            assert (got["cache"] - single.train_cache.m0).abs().max() <= 1e-6
        # only rank 0 wrote checkpoints, once per name
        files = sorted(p.name for p in (tmp_path / "ddp" / f"run{i}").glob("*.pt"))
        assert files == ["best.pt", "latest.prev.pt", "latest.pt"]  # latest keeps the one it replaced
        ckpt = torch.load(tmp_path / "ddp" / f"run{i}" / "latest.pt", weights_only=True)
        assert ckpt["world_size"] == 2 and len(ckpt["ranks"]) == 2


def test_helpers_without_a_process_group():
    assert ddp.rank() == 0 and ddp.world_size() == 1 and ddp.is_main()
    assert ddp.all_gather_object({"a": 1}) == [{"a": 1}]
    assert ddp.broadcast_object(3) == 3
    assert ddp.all_reduce_sum([1.0, 2.5]) == [1.0, 2.5]
    assert ddp.default_backend("cpu") == "gloo" and ddp.default_backend("cuda") == "nccl"


def test_init_from_env_explains_missing_variables(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    for var in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(RuntimeError, match="torchrun"):
        ddp.init_from_env()
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert ddp.init_from_env() is False
