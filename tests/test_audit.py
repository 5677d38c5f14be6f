"""The audit of other LPIPS implementations and of protocol choices (small subsets: 2 pairs, 64 px).

Oracles: the reference ``lpips`` package (the audit's baseline is recomputed
here independently), hand-made images for the heuristic's counts.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from lpips_core.studies import audit
from tests.conftest import reference
from tests.tolerances import PARITY_TOL


@pytest.fixture(scope="module")
def pairs():
    refs, dists, labels = audit.audit_pairs(n_photos=1, side=64)
    return refs[:2], dists[:2], labels[:2]


def test_implementations_agree_with_the_reference_per_image(pairs):
    refs, dists, _ = pairs
    rows = audit.implementation_rows(refs, dists, progress=False, nets=("alex",))
    by_name = {r["implementation"].split()[0]: r for r in rows}
    assert set(by_name) == {"lpips_core", "torchmetrics", "pyiqa"}
    for name in ("lpips_core", "torchmetrics"):
        assert by_name[name]["max_abs_diff"] <= PARITY_TOL, by_name[name]
    with torch.no_grad():
        expected = reference("alex")(refs * 2 - 1, dists * 2 - 1).flatten()
    assert by_name["lpips_core"]["mean_distance"] == pytest.approx(float(expected.mean()), abs=PARITY_TOL)
    assert by_name["torchmetrics"]["batch_mean"] is True
    assert "not run" in by_name["pyiqa"]["notes"]


def test_protocol_choices_change_the_numbers(pairs):
    refs, dists, _ = pairs
    rows, values = audit.protocol_rows(refs, dists, progress=False, skip=("vgg instead of alex",))
    by = {r["choice"]: r for r in rows}
    with torch.no_grad():
        misuse = reference("alex")(refs, dists).flatten().numpy()  # [0, 1] passed as [-1, 1]
        v00 = reference("alex", "0.0")(refs * 2 - 1, dists * 2 - 1).flatten().numpy()
    assert np.abs(values["[0, 1] images passed as [-1, 1]"] - misuse).max() <= PARITY_TOL
    assert np.abs(values["v0.0 instead of v0.1"] - v00).max() <= PARITY_TOL
    assert by["reference protocol"]["max_abs_change"] == 0.0
    assert by["resized to 256x256"]["signature"].startswith("lpips|net:alex|v:0.1|range:-1,1|size:256|")
    assert by["[0, 1] images passed as [-1, 1]"]["mean_abs_change"] > 1e-3


def test_heuristic_rates_count_non_negative_images(tmp_path):
    root = tmp_path / "live"
    (root / "refs").mkdir(parents=True)
    bright = np.full((8, 8, 3), 200, np.uint8)
    dark = bright.copy()
    dark[0, 0, 0] = 127  # 127 / 127.5 - 1 < 0
    Image.fromarray(bright).save(root / "refs" / "a.png")
    Image.fromarray(dark).save(root / "refs" / "b.png")
    (root / "dmos.csv").write_text("distorted,reference,dmos\nrefs/a.png,refs/a.png,1\nrefs/a.png,refs/b.png,2\n")
    rates = audit.zero_one_heuristic_rates(mini_bapps=None, live=[root])
    assert rates["live"] == {"images": 2, "nonneg_images": 1, "pairs": 2, "nonneg_pairs": 1}
    assert rates["course photographs (skimage.data, full size)"]["images"] == 15


def test_markdown_and_plot(tmp_path, pairs):
    refs, dists, _ = pairs
    rows, values = audit.protocol_rows(refs, dists, progress=False, skip=("vgg instead of alex",))
    result = {
        "n_pairs": 2,
        "n_photos": 1,
        "side": 64,
        "machine": "test",
        "lpips_core": "0",
        "implementations": [],
        "protocols": rows,
        "heuristic": {},
    }
    md = audit.audit_markdown(result)
    assert "| resized to 256x256 | `lpips\\|net:alex\\|v:0.1\\|range:-1,1\\|size:256\\|" in md
    assert audit.plot_protocols(values, tmp_path / "audit.png").stat().st_size > 1000
    json.dumps(result)  # what run_audit stores must be JSON


def test_audit_result_is_audit_json(tmp_path, pairs):
    """run_audit's AuditResult: to_dict() is audit.json (the keys in the order it always had, the
    signatures derived from the protocol rows) and write_audit_report writes the three files."""
    refs, dists, labels = pairs
    rows, values = audit.protocol_rows(refs, dists, progress=False, skip=("vgg instead of alex",))
    result = audit.AuditResult(
        lpips_core="0",
        n_photos=1,
        side=64,
        n_pairs=len(labels),
        machine="test",
        implementations=[],
        protocols=rows,
        heuristic={},
        pairs=labels,
        distances={k: v.tolist() for k, v in values.items()},
    )
    audit.write_audit_report(result, tmp_path / "audit")
    saved = json.loads((tmp_path / "audit" / "audit.json").read_text())
    assert saved == json.loads(json.dumps(result.to_dict()))
    assert list(saved) == [
        "lpips_core",
        "n_photos",
        "side",
        "n_pairs",
        "machine",
        "implementations",
        "protocols",
        "signatures",
        "heuristic",
        "pairs",
        "distances",
    ]
    assert saved["signatures"] == sorted({r["signature"] for r in rows})
    assert (tmp_path / "audit" / "audit.md").read_text() == audit.audit_markdown(saved)
    assert (tmp_path / "audit" / "audit.png").stat().st_size > 1000
