"""The course's helpers that the chapters share (lpips_core.course): photographs, clocks, quizzes."""

from __future__ import annotations

import builtins
import random
import time

import numpy as np
import pytest
from PIL import Image

from lpips_core.course import (
    agreement_table,
    available_models,
    bapps_layout,
    distance_table,
    interleaved_ms,
    item_summary,
    max_abs_diff,
    median_ms,
    paired_tests_frame,
    photo,
    precision_errors,
    quiz,
    reference_lpips,
    speedup_table,
    timed_results,
)

QUESTIONS = [
    {
        "question": "2 + 2?",
        "type": "numeric",
        "precision": 1,
        "answers": [
            {"type": "value", "value": 4, "correct": True, "feedback": "yes"},
            {"type": "default", "feedback": "no"},
        ],
    },
    {
        "question": "Pick A",
        "type": "multiple_choice",
        "answers": [
            {"answer": "A", "correct": True, "feedback": "yes"},
            {"answer": "B", "correct": False, "feedback": "no"},
        ],
    },
]


def test_photo_is_the_centre_square_resized():
    """The same pixels as cropping the centre square by hand and resizing it with Lanczos."""
    import skimage.data

    img = skimage.data.chelsea()  # (300, 451, 3)
    h, w = img.shape[:2]
    top, left = (h - min(h, w)) // 2, (w - min(h, w)) // 2
    crop = img[top : top + min(h, w), left : left + min(h, w)]
    expected = np.asarray(Image.fromarray(crop).resize((96, 96), Image.LANCZOS))
    out = photo("chelsea", 96)
    assert out.shape == (96, 96, 3) and out.dtype == np.uint8
    assert np.array_equal(out, expected)


def test_photo_of_a_grey_picture_is_rgb():
    out = photo("camera", 32)
    assert out.shape == (32, 32, 3)
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])


def test_clocks_measure_milliseconds():
    calls = []

    def nap():
        calls.append(1)
        time.sleep(0.01)

    assert 8 <= median_ms(nap, reps=3, warmup=1) < 200
    assert len(calls) == 4  # one warm-up, three timed
    fast, slow = interleaved_ms(lambda: None, nap, reps=3)
    assert fast < slow and 8 <= slow < 200


def test_quiz_keeps_the_global_random_state():
    pytest.importorskip("jupyterquiz")
    random.seed(123)
    before = random.getstate()
    quiz(QUESTIONS)  # outside IPython, display() prints the objects' reprs
    assert random.getstate() == before


def test_quiz_without_jupyterquiz_prints_the_questions(monkeypatch, capsys):
    real_import = builtins.__import__

    def no_jupyterquiz(name, *args, **kwargs):
        if name.startswith("jupyterquiz"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_jupyterquiz)
    quiz(QUESTIONS)
    out = capsys.readouterr().out
    assert "Q1. 2 + 2?" in out and "Q2. Pick A" in out and "   - A" in out and "install jupyterquiz" in out


def test_reference_lpips_is_the_reference_with_our_trunk():
    """The chapters' oracle: the lpips package's model, same trunk weights, same distances (1e-5)."""
    import lpips
    import torch

    import lpips_core

    ours = lpips_core.LPIPS(net="alex")
    ref = reference_lpips("alex", like=ours)
    assert isinstance(ref, lpips.LPIPS) and not ref.training
    for a, b in zip(ref.net.state_dict().values(), ours.net.state_dict().values()):
        assert torch.equal(a, b)
    g = torch.Generator().manual_seed(0)
    x, y = (torch.rand(2, 3, 64, 64, generator=g) * 2 - 1 for _ in range(2))
    with torch.no_grad():
        assert (ref(x, y) - ours(x, y)).abs().max().item() <= 1e-5


def test_available_models_skips_a_net_it_cannot_build(capsys):
    models = available_models(("alex", "no-such-net"), lpips=False)
    assert list(models) == ["alex"]
    assert models["alex"].pnet_type == "alex" and not models["alex"].lpips  # the keyword reached LPIPS
    assert "skipping no-such-net" in capsys.readouterr().out


def test_bapps_layout_counts_the_judgment_files(tmp_path):
    """A hand-made tree: 2afc/train/trad with 3 judgments, 2afc/val/cnn with 1, jnd/val/trad with 2."""
    for kind, split, subset, roles, value, n in (
        ("2afc", "train", "trad", ("ref", "p0", "p1"), "judge", 3),
        ("2afc", "val", "cnn", ("ref", "p0", "p1"), "judge", 1),
        ("jnd", "val", "trad", ("p0", "p1"), "same", 2),
    ):
        folder = tmp_path / kind / split / subset
        for role in (*roles, value):
            (folder / role).mkdir(parents=True)
        for i in range(n):
            np.save(folder / value / f"{i:06d}.npy", np.array([0.5]))
    (tmp_path / "2afc" / "train" / "trad" / "judge" / "notes.txt").write_text("not a judgment")
    table = bapps_layout(tmp_path)
    assert table.to_dict("records") == [
        {"kind": "2afc", "split": "train", "subset": "trad", "folders": "judge p0 p1 ref", "items": 3},
        {"kind": "2afc", "split": "val", "subset": "cnn", "folders": "judge p0 p1 ref", "items": 1},
        {"kind": "jnd", "split": "val", "subset": "trad", "folders": "p0 p1 same", "items": 2},
    ]


def test_item_summary_of_an_item_and_of_a_batch():
    import torch

    item = {
        "ref": torch.tensor([[[-1.0, 0.5]]]),  # (1, 1, 2)
        "judge": np.array([0.4]),
        "id": "000007",
        "names": ["a", "b", "c"],
    }
    table = item_summary(item)
    assert list(table.index) == ["ref", "judge", "id", "names"]
    assert table.loc["ref", "shape"] == (1, 1, 2) and table.loc["ref", "dtype"] == "torch.float32"
    assert (table.loc["ref", "min"], table.loc["ref", "max"]) == (-1.0, 0.5)
    assert table.loc["judge", "dtype"] == "float64" and table.loc["judge", "max"] == 0.4
    assert table.loc["id", "shape"] == () and table.loc["id", "dtype"] == "str"
    assert table.loc["names", "shape"] == (3,) and table.loc["names", "dtype"] == "str"
    assert np.isnan(table.loc["names", "min"])


def test_agreement_table_means_and_intervals():
    table = agreement_table({"half": [1, 0, 1, 0], "all": [1.0, 1.0, 1.0]})
    assert list(table.index) == ["half", "all"] and list(table.columns) == ["mean", "low", "high"]
    assert table.loc["half", "mean"] == pytest.approx(50.0)
    assert 0.0 <= table.loc["half", "low"] < 50.0 < table.loc["half", "high"] <= 100.0
    assert tuple(table.loc["all"]) == (100.0, 100.0, 100.0)  # a constant sample: a zero-width interval
    assert agreement_table({"x": [0.25, 0.75]}, scale=1.0).loc["x", "mean"] == pytest.approx(0.5)


def test_paired_tests_frame_scales_the_difference_and_formats_p():
    tests = {
        "a - b": {"difference": 0.03, "ci": (0.01, 0.05), "p_value": 0.2, "n_resamples": 1000},
        "a - c": {"difference": -0.5, "ci": (-0.6, -0.4), "p_value": 1 / 1001, "n_resamples": 1000},
    }
    table = paired_tests_frame(tests)
    assert list(table.columns) == ["difference", "low", "high", "p"]
    assert table.loc["a - b", ["difference", "low", "high"]].tolist() == pytest.approx([3.0, 1.0, 5.0])
    assert table.loc["a - b", "p"] == "p = 0.20"
    assert table.loc["a - c", "difference"] == pytest.approx(-50.0)
    assert table.loc["a - c", "p"] == "p < 0.001"  # at the floor of 1000 resamples


def test_max_abs_diff_of_tensors_and_arrays():
    """Hand-computed: |1 - 1.5| = 0.5, |2 - 1| = 1, |-3 - 0| = 3."""
    import torch

    a, b = [1.0, 2.0, -3.0], [1.5, 1.0, 0.0]
    assert max_abs_diff(torch.tensor(a), torch.tensor(b)) == 3.0
    assert max_abs_diff(np.array(a), np.array(b)) == 3.0
    assert max_abs_diff(torch.zeros(2, 1, 1, 1), torch.zeros(2, 1, 1, 1)) == 0.0
    assert isinstance(max_abs_diff(np.array(a), np.array(b)), float)
    # a (1,) against a (2, 1) broadcasts: |[[0.25 - 1], [0.25 - (-1)]]| -> 1.25
    assert max_abs_diff(torch.tensor([0.25]), torch.tensor([[1.0], [-1.0]])) == 1.25


def test_timed_results_keeps_results_and_milliseconds():
    calls = []

    def nap():
        calls.append("nap")
        time.sleep(0.02)
        return "slept"

    results, ms = timed_results({"nap": nap, "answer": lambda: 42}, warmup=2)
    assert results == {"nap": "slept", "answer": 42}
    assert list(ms) == ["nap", "answer"]
    assert len(calls) == 3  # two warm-ups, one timed call
    assert 18 <= ms["nap"] < 500 and ms["answer"] < ms["nap"]


def test_speedup_table_by_hand():
    """120 ms as the baseline: 30 ms is 4x faster, 240 ms is 0.5x."""
    table = speedup_table({"loop": 120.0, "batched": 30.0, "slow": 240.0}, baseline="loop")
    assert list(table.index) == ["loop", "batched", "slow"]
    assert list(table.columns) == ["ms", "speed-up"]
    assert table["ms"].tolist() == [120.0, 30.0, 240.0]
    assert table["speed-up"].tolist() == [1.0, 4.0, 0.5]


def test_precision_errors_by_hand():
    """exact (1, 2, 4), approx (1.1, 2, 3): errors (0.1, 0, 1), relative (0.1, 0, 0.25); same order."""
    out = precision_errors(np.array([1.0, 2.0, 4.0]), np.array([1.1, 2.0, 3.0]))
    assert out["max |err|"] == pytest.approx(1.0)
    assert out["median rel"] == pytest.approx(0.1)
    assert out["max rel"] == pytest.approx(0.25)
    assert out["Spearman"] == pytest.approx(1.0) and out["Kendall"] == pytest.approx(1.0)
    # the order of two of four pairs swapped: ranks (1, 2, 3, 4) against (1, 3, 2, 4):
    # Spearman 1 - 6 * (0 + 1 + 1 + 0) / (4 * 15) = 0.8; Kendall (5 concordant - 1 discordant) / 6
    swapped = precision_errors(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 3.0, 2.0, 4.0]))
    assert swapped["Spearman"] == pytest.approx(0.8) and swapped["Kendall"] == pytest.approx(4 / 6)
    with pytest.raises(ValueError, match="same length"):
        precision_errors(np.ones(3), np.ones(2))


def test_distance_table_is_one_row_per_image_one_column_per_metric():
    """Hand-computed distances of constant images to a constant reference, in the given order."""
    import torch

    reference = torch.zeros(1, 3, 4, 4)
    images = {"half": torch.full((1, 3, 4, 4), 0.5), "minus one": torch.full((1, 3, 4, 4), -1.0)}
    calls = []

    def max_abs(a, b):
        calls.append((a is reference, float(b.mean())))
        return (a - b).abs().max().reshape(1, 1, 1, 1)  # the shape an LPIPS model returns

    def mean_square(a, b):
        assert not torch.is_grad_enabled()
        return (a - b).pow(2).mean().reshape(1)

    table = distance_table(images, reference, {"max |d|": max_abs, "mse": mean_square})
    assert list(table.index) == ["half", "minus one"] and list(table.columns) == ["max |d|", "mse"]
    assert table.loc["half", "max |d|"] == 0.5 and table.loc["half", "mse"] == 0.25
    assert table.loc["minus one", "max |d|"] == 1.0 and table.loc["minus one", "mse"] == 1.0
    assert table.dtypes.tolist() == [np.float64, np.float64]
    assert calls == [(True, 0.5), (True, -1.0)]  # fn(reference, image), rows in order
