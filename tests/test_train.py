"""2AFC training: the reference trainer (lpips/trainer.py, official train.py) as the oracle.

Covers the ranking loss, the clamp, the LR schedule and whole optimisation
steps against the reference; checkpoints, a SIGKILLed and resumed run, early
stopping, clipping, schedules, logs, and the exported weights loading in both
the reference and lpips_core.
"""

from __future__ import annotations

import math
import os
import signal
import time
import warnings
from pathlib import Path

import forked
import numpy as np
import pytest
import torch
from conftest import REPO, ours, photo_pairs, require_backbone
from train_helpers import TripletSet

from lpips_core import LPIPS
from lpips_core.train import (
    BCERankingLoss,
    Dist2LogitLayer,
    LogisticRankingLoss,
    TrainConfig,
    Trainer,
    build_optimizer,
    build_scheduler,
    clamp_linear_weights,
    epoch_order,
    export_linear_weights,
    linear_decay_factor,
)

TESTS = Path(__file__).resolve().parent


def reference_trainer(net: str = "alex", lr: float = 1e-4):
    """The reference ``lpips.Trainer`` in training mode, with our (pretrained) trunk weights."""
    import lpips

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = lpips.Trainer()
        t.initialize(model="lpips", net=net, pnet_rand=True, use_gpu=False, is_train=True, lr=lr)
    t.net.net.load_state_dict(ours(net).net.state_dict())
    return t


def lin_weights(model) -> torch.Tensor:
    return torch.cat([lin.conv.weight.detach().flatten() for lin in model.lins])


def small_config(**kw) -> TrainConfig:
    base = dict(net="alex", batch_size=6, epochs=2, progress=False, use_dropout=False, lr=1e-3)
    base.update(kw)
    return TrainConfig(**base)


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
    return TripletSet(n=24, size=32, seed=0)


@pytest.fixture(scope="module")
def val_triplets():
    return TripletSet(n=12, size=32, seed=1)


# --------------------------------------------------------------------------- ranking losses
def test_ranking_loss_matches_reference():
    """Same value and gradients as lpips.BCERankingLoss given the reference's judge encoding (2h - 1)."""
    import lpips

    torch.manual_seed(1)
    ref_loss = lpips.BCERankingLoss()
    our_loss = BCERankingLoss()
    our_loss.load_state_dict(ref_loss.state_dict())  # same keys: net.model.{0,2,4}.{weight,bias}
    d0 = torch.rand(16, 1, 1, 1, requires_grad=True)
    d1 = torch.rand(16, 1, 1, 1, requires_grad=True)
    h = torch.tensor([0, 0.2, 0.4, 0.5, 0.6, 0.8, 1, 1, 0, 0.5, 0.25, 0.75, 1, 0, 0.4, 0.6]).view(16, 1, 1, 1)
    v_ref = ref_loss(d0, d1, h * 2 - 1)
    g_ref = torch.autograd.grad(v_ref, [d0, d1] + list(ref_loss.parameters()))
    v_ours = our_loss(d0, d1, h.view(16, 1))  # h in [0, 1], any shape with N values
    g_ours = torch.autograd.grad(v_ours, [d0, d1] + list(our_loss.parameters()))
    assert torch.allclose(v_ref, v_ours, atol=1e-7)
    for a, b in zip(g_ref, g_ours):
        assert torch.allclose(a, b, atol=1e-7)


def test_dist2logit_structure_matches_reference():
    import lpips

    ref = lpips.Dist2LogitLayer()
    mine = Dist2LogitLayer()
    assert list(ref.state_dict()) == list(mine.state_dict())
    mine.load_state_dict(ref.state_dict())
    d0, d1 = torch.rand(5, 1, 1, 1), torch.rand(5, 1, 1, 1)
    assert torch.allclose(ref(d0, d1), mine(d0, d1), atol=1e-7)


def test_logistic_loss_by_hand():
    """BCE of sigmoid(s (d0 - d1)) against h, computed by hand in float64."""
    loss = LogisticRankingLoss(scale=7.0)
    d0 = torch.tensor([0.30, 0.10, 0.25]).view(3, 1, 1, 1)
    d1 = torch.tensor([0.10, 0.30, 0.25]).view(3, 1, 1, 1)
    h = torch.tensor([1.0, 0.2, 0.5])
    z = 7.0 * (np.array([0.30, 0.10, 0.25]) - np.array([0.10, 0.30, 0.25]))
    p = 1 / (1 + np.exp(-z))
    hand = -(h.numpy() * np.log(p) + (1 - h.numpy()) * np.log(1 - p)).mean()
    assert loss(d0, d1, h).item() == pytest.approx(hand, abs=1e-6)
    probs = loss.probability(d0, d1).detach().view(-1)
    assert probs[0] > 0.5 > probs[1] and probs[2] == pytest.approx(0.5)  # closer p1 -> p1 preferred


# --------------------------------------------------------------------------- clamp and schedule
@pytest.mark.parametrize("net", ["alex", "squeeze"])
def test_clamp_matches_reference_on_linear_layers(net):
    """Linear weights are clamped as the reference's clamp_weights does; trunk 1x1 convs are left alone."""
    ref = reference_trainer(net)
    torch.manual_seed(0)
    model = LPIPS(pretrained=False, net=net, pnet_rand=True, pnet_tune=True)
    with torch.no_grad():
        for lin, rlin in zip(model.lins, ref.net.lins):
            lin.conv.weight.normal_()
            rlin.model[-1].weight.copy_(lin.conv.weight)
    trunk_before = {k: v.clone() for k, v in model.net.state_dict().items()}
    clamp_linear_weights(model)
    ref.clamp_weights()
    for lin, rlin in zip(model.lins, ref.net.lins):
        assert torch.equal(lin.conv.weight, rlin.model[-1].weight)
        assert lin.conv.weight.min() >= 0
    for k, v in model.net.state_dict().items():  # ours never touches the trunk
        assert torch.equal(v, trunk_before[k])
    if net == "squeeze":  # documented difference: the reference also clamps SqueezeNet's own 1x1 convs
        ref_trunk = [
            m.weight for m in ref.net.net.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1)
        ]
        assert ref_trunk and all(w.min() >= 0 for w in ref_trunk)


@pytest.mark.parametrize("nepoch,nepoch_decay", [(5, 5), (3, 2)])
def test_linear_schedule_matches_reference(nepoch, nepoch_decay):
    """LR per epoch = reference: update_learning_rate(nepoch_decay) after every epoch > nepoch (train.py)."""
    ref = reference_trainer()
    expected = []
    for epoch in range(1, nepoch + nepoch_decay + 1):  # the loop of the official train.py
        expected.append(ref.optimizer_net.param_groups[0]["lr"])
        if epoch > nepoch:
            ref.update_learning_rate(nepoch_decay)
    cfg = TrainConfig(epochs=nepoch + nepoch_decay, decay_epochs=nepoch_decay, progress=False)
    opt = build_optimizer(cfg, [torch.nn.Parameter(torch.zeros(1))])
    sched = build_scheduler(cfg, opt)
    got = []
    for _ in range(cfg.epochs):
        got.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert got == pytest.approx(expected, abs=1e-12)
    assert ref.old_lr == pytest.approx(cfg.lr * linear_decay_factor(cfg.epochs, cfg.epochs, nepoch_decay), abs=1e-12)


def test_other_schedules_follow_their_formulas():
    p = [torch.nn.Parameter(torch.zeros(1))]
    lrs = {}
    for name in ("cosine", "step", "constant"):
        cfg = TrainConfig(epochs=6, schedule=name, step_size=2, gamma=0.5, lr=1e-2, progress=False)
        opt = build_optimizer(cfg, p)
        sched = build_scheduler(cfg, opt)
        lrs[name] = []
        for _ in range(6):
            lrs[name].append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
    assert lrs["cosine"] == pytest.approx([1e-2 * (1 + math.cos(math.pi * e / 6)) / 2 for e in range(6)])
    assert lrs["step"] == pytest.approx([1e-2, 1e-2, 5e-3, 5e-3, 2.5e-3, 2.5e-3])
    assert lrs["constant"] == pytest.approx([1e-2] * 6)


# --------------------------------------------------------------------------- whole steps vs the reference
def test_training_steps_match_reference_trainer(triplets):
    """Three steps from the reference initialisation give the reference trainer's weights.

    Dropout is disabled in both (p=0), since the two draw their masks in the
    same order only by implementation detail; everything else (Adam lr 1e-4,
    betas (0.5, 0.999), BCE ranking loss through G, clamp) is the reference's.
    """
    require_backbone("alex")
    cfg = TrainConfig(net="alex", batch_size=8, epochs=1, progress=False, use_dropout=False, lr=1e-4)
    trainer = Trainer(cfg, triplets)
    ref = reference_trainer("alex")
    for m in ref.net.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    with torch.no_grad():  # same starting point: our reference-style random init and G weights
        for lin, rlin in zip(trainer.model.lins, ref.net.lins):
            rlin.model[-1].weight.copy_(lin.conv.weight)
    ref.rankLoss.net.load_state_dict(trainer.rank_loss.net.state_dict())
    assert lin_weights(trainer.model).min() < 0  # really the raw conv init, clamped only after a step

    trainer.fit()  # one epoch = 3 steps of 8 in epoch_order's order
    perm, _ = epoch_order(len(triplets), cfg.seed, 0)
    for batch_idx in torch.split(perm, 8):
        items = [triplets[i] for i in batch_idx.tolist()]
        ref.set_input({k: torch.stack([it[k] for it in items]) for k in ("ref", "p0", "p1", "judge")})
        ref.optimize_parameters()
    ref_w = torch.cat([rlin.model[-1].weight.detach().flatten() for rlin in ref.net.lins])
    assert (lin_weights(trainer.model) - ref_w).abs().max() < 1e-6
    for a, b in zip(trainer.rank_loss.net.parameters(), ref.rankLoss.net.parameters()):
        assert (a.detach() - b.detach()).abs().max() < 1e-6
    assert lin_weights(trainer.model).min() >= 0


# --------------------------------------------------------------------------- checkpoints, resume, logs
def test_checkpoints_are_complete_and_load_weights_only(tmp_path, triplets, val_triplets):
    trainer = Trainer(small_config(epochs=2), triplets, val_triplets, out_dir=tmp_path)
    history = trainer.fit()
    for name in ("latest.pt", "best.pt"):
        ckpt = torch.load(tmp_path / name, map_location="cpu", weights_only=True)
        assert {"config", "model", "rank_loss", "optimizer", "scheduler", "state", "history", "ranks"} <= set(ckpt)
        assert set(ckpt["ranks"][0]["rng"]) >= {"torch", "numpy", "python"}
    latest = torch.load(tmp_path / "latest.pt", weights_only=True)
    assert latest["state"]["epoch"] == 2 and latest["state"]["step_in_epoch"] == 0
    assert latest["config"]["net"] == "alex" and len(latest["history"]) == 2
    assert torch.equal(latest["model"]["lin0.model.1.weight"], trainer.model.lins[0].conv.weight)
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))

    # CSV history and TensorBoard scalars agree with the returned history
    import csv

    rows = list(csv.DictReader(open(tmp_path / "history.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert float(rows[1]["val_2afc"]) == pytest.approx(history[1]["val_2afc"])
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    val = acc.Scalars("epoch/val_2afc")
    assert [round(v.value, 6) for v in val] == [round(r["val_2afc"], 6) for r in history]
    assert (tmp_path / "history.png").stat().st_size > 0

    # resuming a finished run does nothing more
    again = Trainer(small_config(epochs=2), triplets, val_triplets, out_dir=tmp_path)
    assert again.fit(resume=True) == history
    # a checkpoint from another configuration is refused with the field named
    other = Trainer(small_config(epochs=2, batch_size=4), triplets, val_triplets, out_dir=tmp_path)
    with pytest.raises(ValueError, match="batch_size"):
        other.fit(resume=True)


KILL_SCRIPT = """
import sys
import torch
torch.set_num_threads(1)
sys.path.insert(0, {tests!r})
from train_helpers import TripletSet
from lpips_core.train import TrainConfig, Trainer
cfg = TrainConfig(**{cfg!r})
Trainer(cfg, TripletSet(24, 32, 0, delay=0.03), TripletSet(8, 32, 1), out_dir={out!r}).fit(resume=True)
"""


def test_killed_run_resumes_to_the_same_weights(tmp_path):
    """SIGKILL a training process after a mid-epoch checkpoint; resuming ends where an uninterrupted run does.

    Dropout is on, so this also checks that RNG states come back: the data
    order, the dropout masks, Adam's moments and the schedule all continue.
    """
    cfg = dict(
        net="alex", batch_size=4, epochs=2, checkpoint_every=2, seed=3, progress=False, use_dropout=True, lr=1e-3
    )
    out = tmp_path / "killed"
    script = KILL_SCRIPT.format(tests=str(TESTS), cfg=cfg, out=str(out))
    proc = forked.ForkedProcess(script, env=dict(os.environ, PYTHONPATH=str(REPO)), log=tmp_path / "child")
    latest, deadline = out / "latest.pt", time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None:
            if latest.is_file():
                state = torch.load(latest, weights_only=True)["state"]
                if state["step_in_epoch"] > 0:
                    os.kill(proc.pid, signal.SIGKILL)
                    break
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            proc.kill()
        output = "".join(proc.communicate())
    assert proc.returncode == -signal.SIGKILL, f"training ended before it was killed:\n{output}"
    state = torch.load(latest, weights_only=True)["state"]
    assert state["epoch"] < 2, "the kill came too late to interrupt the run"

    resumed = Trainer(TrainConfig(**cfg), TripletSet(24, 32, 0), TripletSet(8, 32, 1), out_dir=out)
    resumed.fit(resume=True)
    straight = Trainer(TrainConfig(**cfg), TripletSet(24, 32, 0), TripletSet(8, 32, 1), out_dir=tmp_path / "straight")
    straight.fit()
    assert (lin_weights(resumed.model) - lin_weights(straight.model)).abs().max() <= 1e-6
    for a, b in zip(resumed.rank_loss.parameters(), straight.rank_loss.parameters()):
        assert (a - b).abs().max() <= 1e-6
    for r, s in zip(resumed.history, straight.history):
        assert r["train_loss"] == pytest.approx(s["train_loss"], abs=1e-6)
        assert r["val_2afc"] == pytest.approx(s["val_2afc"], abs=1e-9)
        assert r["lr"] == s["lr"]


# --------------------------------------------------------------------------- options
def test_early_stopping_with_patience(tmp_path, triplets, val_triplets):
    """With lr = 0 the validation score never improves, so training stops after `patience` epochs."""
    trainer = Trainer(
        small_config(epochs=10, lr=0.0, patience=2, init="v0.1"), triplets, val_triplets, out_dir=tmp_path
    )
    history = trainer.fit()
    assert len(history) == 3  # best at epoch 1, no improvement in epochs 2 and 3
    assert trainer.state["stopped_early"] and trainer.state["best_epoch"] == 1


def test_gradient_clipping_bounds_the_sgd_step(triplets):
    """SGD without momentum moves the parameters by exactly lr * clip when the gradient norm exceeds clip."""
    # init="ones": no weight is near 0, so the clamp cannot shorten the step
    cfg = small_config(epochs=1, optimizer="sgd", momentum=0.0, lr=0.1, grad_clip=1e-2, init="ones", batch_size=24)
    trainer = Trainer(cfg, triplets)
    before = torch.cat([p.detach().flatten().clone() for p in trainer.params]).double()
    trainer.fit()
    after = torch.cat([p.detach().flatten() for p in trainer.params]).double()
    assert (after - before).norm().item() == pytest.approx(0.1 * 1e-2, rel=1e-3)


def _plateau_by_hand(
    lr: float, scores: list[float], factor: float, patience: int, threshold: float = 1e-4
) -> list[float]:
    """LR in each epoch of a 'max' plateau schedule stepped with each epoch's validation score.

    The rule of ReduceLROnPlateau(mode='max', threshold_mode='rel', cooldown=0): a score is an
    improvement when it beats the best by a relative ``threshold``; after more than
    ``patience`` epochs in a row without one, the rate is multiplied by ``factor``.
    """
    lrs, best, bad = [], -math.inf, 0
    for v in scores:
        lrs.append(lr)
        if v > best * (1 + threshold):
            best, bad = v, 0
        else:
            bad += 1
        if bad > patience:
            lr, bad = lr * factor, 0
    return lrs


def test_optimizer_and_schedule_choices(triplets, val_triplets):
    """Each optimiser is built with its class and hyper-parameters, and a whole training run
    trains at the hand-computed rate in every epoch for each schedule."""
    lr = 1e-3
    # plateau: validation scores are scripted so that a decay must happen (and where):
    # 0.6 best; 0.7 better; 0.7 not (1 bad); 0.65 not (2 bad > patience 1: halve); 0.8 better; 0.8 not
    scripted = [0.60, 0.70, 0.70, 0.65, 0.80, 0.80]
    cases = {
        ("adamw", "cosine"): [lr * (1 + math.cos(math.pi * e / 5)) / 2 for e in range(5)],
        ("sgd", "step"): [lr, lr, lr / 2, lr / 2, lr / 4],  # step_size 2, gamma 0.5
        ("adam", "linear"): [lr, lr, lr, lr * 2 / 3, lr / 3],  # 2 epochs at lr, then 3 of linear decay
        ("adam", "plateau"): [lr, lr, lr, lr, lr / 2, lr / 2],
    }
    assert cases[("adam", "plateau")] == pytest.approx(_plateau_by_hand(lr, scripted, 0.5, 1))
    classes = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
    for (opt, sched), expected_lrs in cases.items():
        epochs = len(expected_lrs)
        cfg = small_config(
            epochs=epochs,
            optimizer=opt,
            schedule=sched,
            weight_decay=1e-4,
            lr=lr,
            step_size=2,
            gamma=0.5,
            plateau_patience=1,
            decay_epochs=3,
        )
        trainer = Trainer(cfg, triplets, val_triplets)
        optim = trainer.optimizer
        assert type(optim) is classes[opt] and type(optim).__name__.lower() == opt
        group = optim.param_groups[0]
        assert group["lr"] == lr and group["weight_decay"] == 1e-4
        if opt == "sgd":
            assert group["momentum"] == 0.9 and group["dampening"] == 0 and not group["nesterov"]
        else:
            assert group["betas"] == (0.5, 0.999) and group["eps"] == 1e-8 and not group["amsgrad"]
            if "decoupled_weight_decay" in group:  # torch >= 2.5: AdamW = Adam with decoupled decay
                assert group["decoupled_weight_decay"] == (opt == "adamw")
        assert {id(p) for g in optim.param_groups for p in g["params"]} == {id(p) for p in trainer.params}
        if sched == "plateau":
            scores = iter(scripted)
            real_evaluate = trainer.evaluate
            trainer.evaluate = lambda *a, scores=scores, real=real_evaluate, **k: {
                **real(*a, **k),  # noqa: E731
                "score": next(scores),
            }
        history = trainer.fit()
        assert len(history) == epochs and all(np.isfinite(r["train_loss"]) for r in history)
        assert [r["lr"] for r in history] == pytest.approx(expected_lrs, rel=1e-12, abs=0), (opt, sched)
        if sched == "plateau":
            assert [r["val_2afc"] for r in history] == scripted


def test_bad_configuration_is_named():
    with pytest.raises(ValueError, match="mode"):
        TrainConfig(mode="finetune")
    with pytest.raises(ValueError, match="fast"):
        TrainConfig(mode="tune", fast=True)
    with pytest.raises(ValueError, match="init"):
        TrainConfig(init="/no/such/file.pth")
    with pytest.raises(ValueError, match="validation set"):
        Trainer(small_config(patience=2), TripletSet(n=6, size=32))


def test_tune_mode_trains_the_trunk(triplets):
    cfg = small_config(mode="tune", epochs=1, batch_size=12)
    trainer = Trainer(cfg, triplets)
    before = trainer.model.net.slice1[0].weight.detach().clone()
    trainer.fit()
    assert not torch.equal(before, trainer.model.net.slice1[0].weight)


def test_logistic_loss_trains(triplets):
    trainer = Trainer(small_config(loss="logistic", epochs=3, lr=1e-2), triplets)
    history = trainer.fit()
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert trainer.rank_loss.log_scale.grad is not None


# --------------------------------------------------------------------------- export
def test_exported_weights_load_in_reference_and_lpips_core(tmp_path, triplets):
    require_backbone("alex")
    trainer = Trainer(small_config(epochs=1, init="v0.1", lr=1e-2), triplets)
    trainer.fit()
    trained = trainer.model.eval()
    x, y = photo_pairs(size=(64, 64))
    with torch.no_grad():
        expected = trained(x, y).flatten()
        v01 = LPIPS(net="alex")(x, y).flatten()
    assert (expected - v01).abs().max() > 1e-3  # training changed the distances
    pth = export_linear_weights(trained, tmp_path / "alex_trained.pth")
    st = trainer.export(tmp_path / "alex_trained.safetensors")

    import lpips

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = lpips.LPIPS(net="alex", model_path=str(pth), pnet_rand=True, verbose=False)
    ref.net.load_state_dict(ours("alex").net.state_dict())
    with torch.no_grad():
        assert (ref(x, y).flatten() - expected).abs().max() < 1e-5
        for path in (pth, st):
            assert (LPIPS(net="alex", model_path=path)(x, y).flatten() - expected).abs().max() < 1e-6
    with pytest.raises(ValueError, match="safetensors"):
        export_linear_weights(trained, tmp_path / "weights.bin")


def test_lin_training_improves_agreement(triplets):
    """From the reference initialisation, lin training raises 2AFC agreement on the (simulated) judgments."""
    require_backbone("alex")
    trainer = Trainer(small_config(epochs=6, lr=1e-2, fast=True, batch_size=8), triplets, triplets)
    before = trainer.evaluate(triplets)["score"]
    history = trainer.fit()
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["val_2afc"] > before


# --------------------------------------------------------------------------- command line
def test_cli_train_on_a_bapps_folder(tmp_path):
    """`lpips-core train` reads a BAPPS-style folder, trains, exports, and compares with the baselines."""
    import json

    from train_helpers import write_bapps

    from lpips_core.cli import main

    require_backbone("alex")
    data = tmp_path / "bapps"
    write_bapps(data, {"train": TripletSet(n=16, size=32, seed=0), "val": TripletSet(n=8, size=32, seed=1)})
    out = tmp_path / "run"
    argv = [
        "train",
        "--data",
        str(data),
        "--out",
        str(out),
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--lr",
        "1e-3",
        "--load-size",
        "32",
        "--cache-dir",
        str(tmp_path / "cache"),
        "-q",
    ]
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["train_triplets"] == 16 and summary["val_triplets"] == 8 and summary["epochs_run"] == 2
    assert summary["config"]["fast"] is True  # default in lin mode
    assert set(summary["val_2afc"]) == {"trained-alex_lin", "net-alex", "l2_lab", "lpips-alex"}
    for name in ("latest.pt", "best.pt", "history.csv", "alex_lin.pth", "alex_lin.safetensors"):
        assert (out / name).is_file(), name
    # the exported weights are the best checkpoint's
    best = torch.load(out / "best.pt", weights_only=True)["model"]
    exported = torch.load(out / "alex_lin.pth", weights_only=True)
    assert all(torch.equal(best[k], exported[k]) for k in exported)
    # resuming a finished run trains nothing more and reports the same scores
    assert main(argv + ["--resume", "--no-baselines"]) == 0
    assert json.loads((out / "summary.json").read_text())["epochs_run"] == 2


def test_cli_train_errors_name_the_problem(tmp_path, capsys):
    from lpips_core.cli import main

    assert main(["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "no such dataset folder" in capsys.readouterr().err
    (tmp_path / "flat").mkdir()
    assert main(["train", "--data", str(tmp_path / "flat"), "--out", str(tmp_path / "o")]) == 2
    assert "2afc" in capsys.readouterr().err
    assert (
        main(["train", "--data", str(tmp_path / "flat"), "--out", str(tmp_path / "o"), "--mode", "tune", "--fast"]) == 2
    )
    assert "frozen trunk" in capsys.readouterr().err
