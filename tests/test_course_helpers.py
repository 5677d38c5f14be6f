"""The course's helpers that the chapters share (lpips_core.course): photographs, clocks, quizzes."""

from __future__ import annotations

import builtins
import random
import time

import numpy as np
import pytest
from PIL import Image

from lpips_core.course import distance_table, interleaved_ms, median_ms, photo, quiz, reference_lpips

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
