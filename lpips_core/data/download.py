"""Download and unpack BAPPS (Zhang et al. 2018) from its official tarballs.

The three archives and where they go (as the reference's ``scripts/download_dataset.sh``)::

    jnd.tar.gz           (0.2 GB)  -> <out>/jnd/val/...
    twoafc_val.tar.gz    (1.1 GB)  -> <out>/2afc/val/...
    twoafc_train.tar.gz  (5.3 GB)  -> <out>/2afc/train/...

Each archive is fetched into ``<out>/.downloads/<name>.part`` with a progress bar; an
interrupted download resumes from where it stopped (HTTP Range), both within one call
(``retries``) and on the next call. A download counts as complete only when its length
is known (the server's ``Content-Length``/``Content-Range``, or a pinned size) and every
byte of it arrived; a connection that drops is never taken for the end of the file.
A complete archive is then checked against its sha256 before anything reads it:

* pinned in :data:`ARCHIVES` (see each entry for where the value comes from); or
* unpinned (``jnd.tar.gz``): trust on first use. The first download's sha256 is printed
  and recorded in ``<cache>/bapps_archives.json`` (:func:`lpips_core.files.cache_root`);
  every later download must match it.

A mismatch deletes the download and fails. The archive is unpacked into a temporary
folder beside its destination and renamed into place only when every member is out, so
a damaged archive leaves no partial dataset behind. Without internet every function
fails with a one-line :class:`DownloadError`.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import socket
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

BASE_URL = "https://perceptual-similarity.s3.us-west-2.amazonaws.com/dataset"
CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A download or an extraction failed; the message is one line saying what to do."""


class _Timeout(DownloadError):
    """The server accepted the connection but did not answer in time (retried)."""


@dataclass(frozen=True)
class Archive:
    """One official tarball: its file name, the folder it unpacks into, its top folder, its sha256.

    ``sha256`` None means unpinned: trust on first use (see the module docstring).
    """

    name: str
    parent: str  # relative to the dataset folder
    top: str  # the single top-level folder inside the archive
    size_gb: float
    sha256: str | None = None


#: The sha256 of the two 2AFC archives at BASE_URL, as pinned (and checked on every download)
#: by sileod/tasksource, scripts/repackage_dataset/regions.py (commit 6db3ccb6), which fetches
#: the same official files. The BAPPS authors publish no checksums, and this machine cannot
#: reach the files to compute them: the values are that third party's, not measured here.
#: jnd.tar.gz has no published value anywhere we found: it is trusted on first use.
ARCHIVES: dict[str, Archive] = {
    "jnd": Archive("jnd.tar.gz", ".", "jnd", 0.2),
    "twoafc_val": Archive(
        "twoafc_val.tar.gz", "2afc", "val", 1.1, "41486671b06de923e7ba277c4797d4d9d86d609863ba35ecdb576133f8b9d859"
    ),
    "twoafc_train": Archive(
        "twoafc_train.tar.gz", "2afc", "train", 5.3, "b4f5c772c7cd88ac44bcb4ff0741745d434c05f0094f2bfb262ddcd0055bf393"
    ),
}
#: Where first-use sha256 values of unpinned archives are kept, under :func:`lpips_core.files.cache_root`.
TOFU_FILE = "bapps_archives.json"
VAL_ONLY = ("jnd", "twoafc_val")


def _open(url: str, start: int, timeout: float):
    request = urllib.request.Request(url, headers={"User-Agent": "lpips-core"})
    if start:
        request.add_header("Range", f"bytes={start}-")
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start:  # asked past the end: the part file may already be whole
            return exc
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}; check the address (--base-url)") from None
    except (urllib.error.URLError, socket.timeout, ConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, (socket.timeout, TimeoutError)):
            raise _Timeout(f"no answer from the server within {timeout:g} s") from None
        raise DownloadError(
            f"cannot reach {url} ({reason}); BAPPS needs internet: run this where there is "
            f"a connection, or use the mini set (data_scripts/make_mini_bapps.py)"
        ) from None


def _total_from_content_range(value: str | None) -> int | None:
    """'bytes 100-199/200' or 'bytes */200' -> 200."""
    if not value or "/" not in value:
        return None
    tail = value.rsplit("/", 1)[1].strip()
    return int(tail) if tail.isdigit() else None


def download_file(
    url: str,
    dest: str | os.PathLike,
    retries: int = 3,
    timeout: float = 60.0,
    progress: bool = True,
    size: int | None = None,
) -> Path:
    """Fetch ``url`` to ``dest`` through ``dest + '.part'``, resuming with HTTP Range.

    Args:
        url: http(s) address.
        dest: final file; it appears only when the download is complete: every byte of
            a known length (``size``, or what the server announces) arrived.
        retries: extra attempts, each resuming where the previous one stopped.
        timeout: seconds without data before an attempt fails.
        progress: show a tqdm bar (bytes) on stderr.
        size: the file's size in bytes when known beforehand (a server announcing
            another one is refused).
    Returns:
        ``dest``.
    Raises:
        DownloadError: offline, HTTP error, a server that does not say how long the file
            is (and no ``size``), or still incomplete after the retries (the ``.part``
            file is kept, so the next call resumes).
    """
    from tqdm.auto import tqdm

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last_problem = ""
    for _attempt in range(retries + 1):
        start = part.stat().st_size if part.exists() else 0
        try:
            response = _open(url, start, timeout)
        except _Timeout as exc:  # a stalled server: try again, then give up with a one-line error
            last_problem = str(exc)
            continue
        with response:
            status = getattr(response, "status", None) or response.getcode()
            if status == 416:
                total = _total_from_content_range(response.headers.get("Content-Range"))
                if total is not None and total == start:
                    os.replace(part, dest)
                    return dest
                part.unlink()  # the part file is longer than the file: start again
                last_problem = "server refused the resume range"
                continue
            if start and status != 206:  # the server ignored the Range header: start again
                start = 0
            length = response.headers.get("Content-Length")
            total = start + int(length) if length is not None and length.isdigit() else None
            if status == 206:
                total = _total_from_content_range(response.headers.get("Content-Range")) or total
            if size is not None and total is not None and total != size:
                raise DownloadError(
                    f"{url}: the server announces {total} bytes, but the file is known to have "
                    f"{size}; not downloaded (check --base-url)"
                )
            total = size if total is None else total
            if total is None:  # then a dropped connection would look like the end of the file
                raise DownloadError(
                    f"{url}: the server does not say how long the file is (no Content-Length), "
                    f"so a complete download cannot be told from a cut one; not downloaded"
                )
            cut = False
            received = start
            bar = tqdm(
                total=total,
                initial=start,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=dest.name,
                file=sys.stderr,
                disable=not progress,
                leave=False,
            )
            try:
                with open(part, "ab" if start else "wb") as f:
                    while True:
                        try:
                            chunk = response.read1(CHUNK)  # what has arrived; read() would drop it on a timeout
                        except (OSError, socket.timeout, ConnectionError, http.client.HTTPException) as exc:
                            last_problem, cut = f"connection lost ({exc})", True
                            break
                        if not chunk:
                            break
                        f.write(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
            finally:
                bar.close()
        if received == total and not cut:
            os.replace(part, dest)
            return dest
        if received > total:
            part.unlink()
            last_problem = f"received {received} bytes, more than the {total} announced"
            continue
        last_problem = last_problem or f"stopped after {received} of {total} bytes"
    raise DownloadError(f"{url}: download incomplete ({last_problem}); run again to resume from {part}")


def extract_archive(archive: str | os.PathLike, parent: str | os.PathLike, top: str) -> Path:
    """Unpack ``archive`` (a tar.gz with one top folder ``top``) to ``parent/top``, atomically.

    Members are extracted with tarfile's ``data`` filter (no absolute paths, no links out of
    the folder) into a temporary folder in ``parent``; only a complete extraction is renamed
    into place, replacing an earlier ``parent/top``.

    Raises:
        DownloadError: the archive is damaged or does not hold ``top``; nothing is left behind.
    """
    archive, parent = Path(archive), Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{top}.extracting-", dir=parent))
    try:
        try:
            with tarfile.open(archive, "r:*") as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
            raise DownloadError(
                f"{archive}: damaged archive ({type(exc).__name__}: {exc}); delete it and download again"
            ) from None
        found = sorted(p.name for p in tmp.iterdir())
        if found != [top]:
            raise DownloadError(
                f"{archive}: expected a single top folder {top!r}, found {found or 'nothing'}; is this the right file?"
            )
        target = parent / top
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{top}.old-", dir=parent))
            os.replace(target, old / top)
            os.replace(tmp / top, target)
            shutil.rmtree(old)
        else:
            os.replace(tmp / top, target)
        return target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def tofu_path() -> Path:
    """The file recording the first-use sha256 of unpinned archives."""
    from ..files import cache_root

    return cache_root() / TOFU_FILE


def verify_archive(archive: Path, info: Archive) -> str | None:
    """Check a downloaded archive's sha256 before anything reads it.

    Pinned (``info.sha256``) or recorded at its first download (:func:`tofu_path`): it must
    match, else the download is deleted.

    Returns:
        None when it matched; the sha256 to record (:func:`record_first_use`) when there is
        nothing to compare it with yet (recorded only once the archive unpacked whole).
    Raises:
        DownloadError: the sha256 differs (the file was deleted).
    """
    digest = _sha256(archive)
    expected, source = info.sha256, "pinned in lpips_core.data.download.ARCHIVES"
    if expected is None:
        expected = (_records().get(info.name) or {}).get("sha256")
        source = f"recorded in {tofu_path()} at its first download"
    if expected is None:
        return digest
    if digest != expected:
        archive.unlink()
        raise DownloadError(
            f"{archive}: sha256 {digest} is not the {expected} {source}; the file was deleted. "
            f"It was changed on the server or on the way: check --base-url (if the official file "
            f"really changed, delete the record to accept the new one)"
        )
    return None


def _records() -> dict:
    from .textfiles import read_json

    path = tofu_path()
    records = read_json(path, DownloadError) if path.is_file() else {}
    if not isinstance(records, dict):
        raise DownloadError(f"{path}: not a table of recorded sha256 values; delete it")
    return records


def record_first_use(info: Archive, digest: str, size: int) -> None:
    """Record (and print) the sha256 of an unpinned archive's first good download: later ones must match."""
    from ..files import write_json

    records = _records()
    records[info.name] = {"sha256": digest, "bytes": size, "first_download": time.strftime("%Y-%m-%d")}
    write_json(tofu_path(), records)
    print(
        f"{info.name}: sha256 {digest} ({size} bytes). No published checksum: recorded in {tofu_path()}; "
        f"every later download must match it",
        file=sys.stderr,
    )


def download_bapps(
    out_dir: str | os.PathLike,
    parts: Sequence[str] = tuple(ARCHIVES),
    base_url: str = BASE_URL,
    keep_archives: bool = False,
    retries: int = 3,
    timeout: float = 60.0,
    progress: bool = True,
) -> Path:
    """Download and unpack the chosen BAPPS archives into ``out_dir`` (BAPPS layout).

    An archive whose folder is already complete (marker ``.complete-<part>``) is skipped.
    A damaged archive is deleted, so the next call downloads it afresh.

    Args:
        out_dir: dataset folder; gets ``jnd/`` and ``2afc/{val,train}/``.
        parts: keys of :data:`ARCHIVES` ('jnd', 'twoafc_val', 'twoafc_train').
        base_url: where the ``*.tar.gz`` files are (default: the official bucket).
        keep_archives: keep the ``.tar.gz`` files in ``out_dir/.downloads``.
    Returns:
        ``out_dir``.
    """
    out_dir = Path(out_dir)
    unknown = [p for p in parts if p not in ARCHIVES]
    if unknown:
        raise DownloadError(f"unknown BAPPS part(s) {', '.join(unknown)}; choose from {', '.join(ARCHIVES)}")
    downloads = out_dir / ".downloads"
    for key in parts:
        info = ARCHIVES[key]
        marker = out_dir / f".complete-{key}"
        if marker.is_file() and (out_dir / info.parent / info.top).is_dir():
            print(f"{key}: already complete in {out_dir / info.parent / info.top}", file=sys.stderr)
            continue
        archive = download_file(
            f"{base_url.rstrip('/')}/{info.name}",
            downloads / info.name,
            retries=retries,
            timeout=timeout,
            progress=progress,
        )
        first_use = verify_archive(archive, info)  # before tarfile reads a byte of it
        try:
            extract_archive(archive, out_dir / info.parent, info.top)
        except DownloadError:
            archive.unlink(missing_ok=True)
            raise
        if first_use is not None:
            record_first_use(info, first_use, archive.stat().st_size)
        marker.write_text(f"{info.name}\n")
        if not keep_archives:
            archive.unlink()
    if downloads.is_dir() and not any(downloads.iterdir()):
        downloads.rmdir()
    return out_dir
