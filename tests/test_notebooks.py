"""The course notebooks follow the book's rules (the notebooks themselves run under nbval).

`make test` executes every notebook with nbval (`--nbval-lax`, cells marked
`# NBVAL_CHECK_OUTPUT` compared with their stored output). These tests check,
without running a kernel, what nbval cannot: the structure every chapter
promises (what you will learn, a Colab badge, a guarded install cell, fixed
seeds, folded exercise solutions), that the stored outputs are complete and
error-free (the book is built from them), that the TOC and the notebooks agree,
and that the install cell does nothing where lpips_core is importable and
installs from the configured repository where it is not.
"""

from __future__ import annotations

import builtins
import json
import re
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CONFIG = yaml.safe_load((REPO / "_config.yml").read_text())
REPO_URL = CONFIG["repository"]["url"].rstrip("/")
BRANCH = CONFIG["repository"]["branch"]
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
#: What a tqdm bar prints: "  0%|", "| 3/10 [".
PROGRESS_BAR = re.compile(r"\d+%\||\|\s*\d+/\d+ \[")


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def source(cell: dict) -> str:
    return "".join(cell["source"])


def code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def toc_files() -> list[str]:
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    return [toc["root"]] + [ch["file"] for part in toc["parts"] for ch in part["chapters"]]


ids = [p.stem for p in NOTEBOOKS]


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks/NN_slug.ipynb found"


def test_toc_and_notebooks_agree():
    listed = toc_files()
    for doc in listed:
        assert (REPO / f"{doc}.ipynb").is_file() or (REPO / f"{doc}.md").is_file(), f"_toc.yml: {doc} does not exist"
    for path in NOTEBOOKS:
        assert f"notebooks/{path.stem}" in listed, f"{path.name} is not in _toc.yml"
    numbers = [int(p.name[:2]) for p in NOTEBOOKS]
    in_toc_order = [int(d.split("/")[-1][:2]) for d in listed if d.startswith("notebooks/")]
    assert in_toc_order == sorted(in_toc_order) == sorted(numbers), "chapters must appear in file-number order"


def test_config_matches_the_decisions():
    assert CONFIG["only_build_toc_files"] is True
    assert CONFIG["execute"]["execute_notebooks"] == "cache"
    assert CONFIG["execute"]["allow_errors"] is False
    assert CONFIG["sphinx"]["config"]["nb_execution_raise_on_error"] is True
    assert CONFIG["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert REPO_URL.startswith("https://github.com/")
    for path in CONFIG["sphinx"]["config"]["nb_ipywidgets_js"]:
        assert (REPO / "book" / "_static" / path).is_file(), f"widget script {path} is not vendored"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_opening_cell(path):
    nb = load(path)
    first = source(nb["cells"][0])
    assert nb["cells"][0]["cell_type"] == "markdown" and first.startswith("# "), "must open with a '# title'"
    assert "**You will learn**" in first, "must say what the reader will learn"
    assert "**You need first**" in first, "must say what the reader needs to know first"
    badge = f"https://colab.research.google.com/github/{REPO_URL.split('github.com/')[1]}/blob/{BRANCH}/notebooks/{path.name}"
    assert f"({badge})" in first and "colab-badge.svg" in first, f"Colab badge must link to {badge}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_guarded_install_cell(path):
    cell = code_cells(load(path))[0]
    src = source(cell)
    assert "import lpips_core" in src and "except ImportError" in src, "first code cell must be the guarded install"
    assert f"git+{REPO_URL}@{BRANCH}" in src, f"install cell must install from {REPO_URL} (as _config.yml)"
    assert not cell["outputs"], "the install cell printed something here, where it must do nothing"


def _run_install_cell(src: str, importable: bool) -> list:
    """Run the install cell as IPython would, recording the magics it calls."""
    from IPython.core.inputtransformer2 import TransformerManager

    calls = []

    class FakeShell:
        def run_line_magic(self, name, line, *args):
            # IPython expands {expr} in a magic's line from the caller's namespace (var_expand)
            caller = sys._getframe(1)
            calls.append((name, line.format_map({**caller.f_globals, **caller.f_locals})))

    real_import = builtins.__import__
    attempts = {"n": 0}

    def fake_import(name, *args, **kwargs):
        if name == "lpips_core":
            attempts["n"] += 1
            if not importable and attempts["n"] == 1:
                raise ImportError("No module named 'lpips_core'")
        return real_import(name, *args, **kwargs)

    code = TransformerManager().transform_cell(src)
    builtins.__import__ = fake_import
    try:
        exec(compile(code, "<install cell>", "exec"), {"get_ipython": lambda: FakeShell()})
    finally:
        builtins.__import__ = real_import
    return calls


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_install_cell_behaviour(path):
    src = source(code_cells(load(path))[0])
    assert _run_install_cell(src, importable=True) == [], "installs although lpips_core is importable"
    calls = _run_install_cell(src, importable=False)
    assert len(calls) == 1 and calls[0][0] == "pip", f"expected one %pip call, got {calls}"
    assert f"lpips_core[all] @ git+{REPO_URL}@{BRANCH}" in calls[0][1]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_seeds_and_package_use(path):
    code = "\n".join(source(c) for c in code_cells(load(path)))
    assert "torch.manual_seed(" in code, "random seeds must be fixed"
    assert re.search(r"^import lpips_core|^from lpips_core", code, flags=re.M)
    for name in (
        "def normalize_tensor",
        "class LPIPS",
        "class ScalingLayer",
        "class NetLinLayer",
        "def spatial_average",
        "def upsample",
    ):
        assert name not in code, f"the notebook re-implements {name!r}: import it from lpips_core"


#: An exercise's prompt: "**3.** ..." at the start of a line of the Exercises section.
EXERCISE = re.compile(r"^\*\*(\d+)\.\*\*(.*)$", flags=re.M)
#: A worked solution in Markdown, folded: a MyST dropdown titled "Show solution".
MD_SOLUTION = re.compile(r"^:{3,}\{dropdown\} Show solution", flags=re.M)


def exercises(nb: dict) -> list[dict]:
    """The Exercises section's questions in order: number, kind, and the solutions that follow each
    (folded code cells tagged hide-cell, or Markdown dropdowns), up to the next question."""
    out, started = [], False
    for cell in nb["cells"]:
        src = source(cell)
        if cell["cell_type"] == "markdown":
            if "## Exercises" in src:
                started = True
                src = src.split("## Exercises", 1)[1]
            if not started:
                continue
            # a cell may hold the end of one question's solution, then the next question
            for part in re.split(r"(?=^\*\*\d+\.\*\*)", src.split("## Further reading")[0], flags=re.M):
                m = EXERCISE.match(part)
                if m:
                    kind = "conceptual" if "*Conceptual.*" in m.group(2) else "coding"
                    out.append({"n": int(m.group(1)), "kind": kind, "solutions": 0})
                if out:
                    out[-1]["solutions"] += len(MD_SOLUTION.findall(part))
        elif started and out and "hide-cell" in cell["metadata"].get("tags", []):
            assert cell["metadata"].get("mystnb", {}).get("code_prompt_show") == "Show solution"
            out[-1]["solutions"] += 1
    return out


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_exercises_with_folded_solutions(path):
    """Every chapter keeps its coding exercises and has at least one conceptual one; every question is
    followed by a folded solution (a hide-cell code cell that nbval runs, or a Markdown dropdown)."""
    nb = load(path)
    found = exercises(nb)
    assert found, "no '## Exercises' section with numbered questions (**1.** ...)"
    assert [e["n"] for e in found] == list(range(1, len(found) + 1)), "questions must be numbered 1, 2, ..."
    assert 3 <= len(found) <= 5, f"{len(found)} exercises; chapters end with 3 to 5"
    assert any(e["kind"] == "conceptual" for e in found), "add a conceptual exercise (*Conceptual.*)"
    assert any(e["kind"] == "coding" for e in found), "keep at least one coding exercise"
    unsolved = [e["n"] for e in found if not e["solutions"]]
    assert not unsolved, f"exercises without a folded solution: {unsolved}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_further_reading(path):
    """Each chapter ends with further reading: papers of book/references.bib, a sentence each."""
    nb = load(path)
    text = "\n".join(source(c) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert "## Further reading" in text, "end the chapter with '## Further reading'"
    reading = text.split("## Further reading", 1)[1]
    keys = re.findall(r"\{cite:[tp]\}`([^`]+)`", reading)
    bib = (REPO / "book" / "references.bib").read_text()
    assert len(keys) >= 3, "list at least three papers"
    for key in (k.strip() for ks in keys for k in ks.split(",")):
        assert "{" + key + "," in bib, f"{key} is not in book/references.bib"


#: The longest code cell a reader sees unfolded: one idea (helpers, plotting, bookkeeping are folded
#: or live in lpips_core.course).
MAX_VISIBLE_LINES = 15
FOLDED = {"hide-input", "remove-input", "remove-cell", "hide-cell"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_visible_cells_are_short(path):
    long = [
        (i, source(c).count("\n") + 1)
        for i, c in enumerate(code_cells(load(path)))
        if not FOLDED & set(c["metadata"].get("tags", [])) and source(c).count("\n") + 1 > MAX_VISIBLE_LINES
    ]
    assert not long, (
        f"visible code cells over {MAX_VISIBLE_LINES} lines (index, lines): {long}; fold "
        "helpers and plotting (hide-input) or move them into the package"
    )


def test_notebook_code_is_formatted():
    """`ruff format --check notebooks` (66 columns, notebooks/ruff.toml): formatted by a tool, not by hand."""
    import shutil
    import subprocess

    # the environment's own ruff (pinned in the lock) before any other on PATH
    ruff = str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).exists():
        ruff = shutil.which("ruff") or ruff
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed (requirements.txt pins it)")
    proc = subprocess.run([ruff, "format", "--check", "notebooks"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


#: Cells that draw a self-check quiz (lpips_core.course.quiz): their code is hidden, the quiz shown.
@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_quizzes_show_only_the_quiz(path):
    for cell in code_cells(load(path)):
        if re.match(r"\s*quiz\(", source(cell)):
            assert "remove-input" in cell["metadata"].get("tags", []), "tag quiz cells remove-input"
            assert any("application/javascript" in o.get("data", {}) for o in cell["outputs"]), (
                "the quiz's stored output has no script (execute with jupyterquiz installed)"
            )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_stored_outputs_complete_and_clean(path):
    nb = load(path)
    cells = code_cells(nb)
    counts = [c["execution_count"] for c in cells]
    assert counts == list(range(1, len(cells) + 1)), "store the outputs of one clean top-to-bottom run"
    for i, cell in enumerate(cells):
        for out in cell["outputs"]:
            assert out["output_type"] != "error", f"code cell {i} stored an error"
            assert not (out["output_type"] == "stream" and out["name"] == "stderr"), (
                f"code cell {i} stored stderr output: {''.join(out['text'])[:200]!r}"
            )
            shown = "".join(out.get("data", {}).get("text/plain", "")) + "".join(out.get("text", ""))
            # A tqdm bar saved in a notebook renders as a frozen "0%|" in the book.
            assert not PROGRESS_BAR.search(shown), (
                f"code cell {i} stored a progress bar ({shown[:80]!r}): execute with TQDM_DISABLE=1"
            )
    checked = [c for c in cells if source(c).startswith("# NBVAL_CHECK_OUTPUT")]
    assert checked, "mark the cells whose printed numbers are stable with # NBVAL_CHECK_OUTPUT"
    for cell in checked:
        assert any(o["output_type"] == "stream" for o in cell["outputs"]), "a checked cell must print something"
    figures = sum(1 for c in cells for o in c["outputs"] if o.get("data", {}).keys() & {"image/png", "image/jpeg"})
    assert figures >= 2, "a chapter shows its results as figures"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_saved_widget_state_covers_every_widget(path):
    nb = load(path)
    views = [
        o["data"][WIDGET_VIEW]["model_id"]
        for c in code_cells(nb)
        for o in c["outputs"]
        if WIDGET_VIEW in o.get("data", {})
    ]
    if not views:
        pytest.skip("no widgets in this chapter")
    state = nb["metadata"].get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    missing = [v for v in views if v not in state]
    assert not missing, f"widget views without saved state (the book would show nothing): {missing}"


def test_interactive_chapter_has_its_controls():
    path = next((p for p in NOTEBOOKS if "interactive" in p.stem), None)
    if path is None:
        pytest.skip("no interactive chapter")
    state = load(path)["metadata"]["widgets"][WIDGET_STATE]["state"]
    models = [m["model_name"] for m in state.values()]
    for name in ("DropdownModel", "FloatSliderModel", "FileUploadModel", "OutputModel"):
        assert name in models, f"{path.name}: no {name} in the saved widget state"
    outputs = [m["state"].get("outputs", []) for m in state.values() if m["model_name"] == "OutputModel"]
    assert any(o.get("data", {}).keys() & {"image/png", "image/jpeg"} for outs in outputs for o in outs), (
        "the comparison figure drawn by the widget was not saved"
    )


def test_tqdm_disable_turns_the_package_bars_off(monkeypatch):
    """The book's notebooks are executed with TQDM_DISABLE=1 so no bar is stored in them;
    tqdm's notebook bar ignores that variable, the package's progress_bar must not."""
    from lpips_core.progress import progress_bar

    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert progress_bar(range(3), desc="x").disable
    monkeypatch.delenv("TQDM_DISABLE")
    bar = progress_bar(range(3), desc="x")
    assert not bar.disable
    bar.close()


def test_package_plots_keep_the_notebook_backend():
    """files.pyplot() must not switch a notebook's backend to Agg (its later inline
    figures would silently disappear); run in a fresh interpreter."""
    import subprocess
    import sys

    code = (
        "import matplotlib; matplotlib.use('svg'); import matplotlib.pyplot as plt; "
        "from lpips_core.files import pyplot; pyplot(); print(matplotlib.get_backend())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**__import__("os").environ, "MPLBACKEND": ""},
    )
    assert out.stdout.strip() == "svg", out.stdout + out.stderr
