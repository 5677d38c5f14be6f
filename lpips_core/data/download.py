"""Download and unpack BAPPS (Zhang et al. 2018) from its official tarballs.

The three archives and where they go (as the reference's ``scripts/download_dataset.sh``)::

    jnd.tar.gz           (0.2 GB)  -> <out>/jnd/val/...
    twoafc_val.tar.gz    (1.1 GB)  -> <out>/2afc/val/...
    twoafc_train.tar.gz  (5.3 GB)  -> <out>/2afc/train/...

Each archive is fetched into ``<out>/.downloads/<name>.part`` with a progress bar; an
interrupted download resumes from where it stopped (HTTP Range), both within one call
(``retries``) and on the next call. A complete archive is unpacked into a temporary
folder beside its destination and renamed into place only when every member is out, so
a damaged archive leaves no partial dataset behind. Without internet every function
fails with a one-line :class:`DownloadError`.
"""
from __future__ import annotations

import os
import shutil
import socket
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

BASE_URL = "https://perceptual-similarity.s3.us-west-2.amazonaws.com/dataset"
CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A download or an extraction failed; the message is one line saying what to do."""


class _Timeout(DownloadError):
    """The server accepted the connection but did not answer in time (retried)."""


@dataclass(frozen=True)
class Archive:
    """One official tarball: its file name, the folder it unpacks into, and its top folder."""

    name: str
    parent: str  # relative to the dataset folder
    top: str  # the single top-level folder inside the archive
    size_gb: float


ARCHIVES: dict[str, Archive] = {
    "jnd": Archive("jnd.tar.gz", ".", "jnd", 0.2),
    "twoafc_val": Archive("twoafc_val.tar.gz", "2afc", "val", 1.1),
    "twoafc_train": Archive("twoafc_train.tar.gz", "2afc", "train", 5.3),
}
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
        raise DownloadError(f"cannot reach {url} ({reason}); BAPPS needs internet: run this where there is "
                            f"a connection, or use the mini set (data_scripts/make_mini_bapps.py)") from None


def _total_from_content_range(value: str | None) -> int | None:
    """'bytes 100-199/200' or 'bytes */200' -> 200."""
    if not value or "/" not in value:
        return None
    tail = value.rsplit("/", 1)[1].strip()
    return int(tail) if tail.isdigit() else None


def download_file(url: str, dest: str | os.PathLike, retries: int = 3, timeout: float = 60.0,
                  progress: bool = True) -> Path:
    """Fetch ``url`` to ``dest`` through ``dest + '.part'``, resuming with HTTP Range.

    Args:
        url: http(s) address.
        dest: final file; it appears only when the download is complete.
        retries: extra attempts, each resuming where the previous one stopped.
        timeout: seconds without data before an attempt fails.
        progress: show a tqdm bar (bytes) on stderr.
    Returns:
        ``dest``.
    Raises:
        DownloadError: offline, HTTP error, or still incomplete after the retries
            (the ``.part`` file is kept, so the next call resumes).
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
            received = start
            bar = tqdm(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
                       desc=dest.name, file=sys.stderr, disable=not progress, leave=False)
            try:
                with open(part, "ab" if start else "wb") as f:
                    while True:
                        try:
                            chunk = response.read1(CHUNK)  # what has arrived; read() would drop it on a timeout
                        except (OSError, socket.timeout, ConnectionError) as exc:
                            last_problem = f"connection lost ({exc})"
                            break
                        if not chunk:
                            break
                        f.write(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
            finally:
                bar.close()
        if total is None or received == total:
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
            raise DownloadError(f"{archive}: damaged archive ({type(exc).__name__}: {exc}); "
                                f"delete it and download again") from None
        found = sorted(p.name for p in tmp.iterdir())
        if found != [top]:
            raise DownloadError(f"{archive}: expected a single top folder {top!r}, found {found or 'nothing'}; "
                                f"is this the right file?")
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


def download_bapps(out_dir: str | os.PathLike, parts: Sequence[str] = tuple(ARCHIVES),
                   base_url: str = BASE_URL, keep_archives: bool = False, retries: int = 3,
                   timeout: float = 60.0, progress: bool = True) -> Path:
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
        archive = download_file(f"{base_url.rstrip('/')}/{info.name}", downloads / info.name, retries=retries,
                                timeout=timeout, progress=progress)
        try:
            extract_archive(archive, out_dir / info.parent, info.top)
        except DownloadError:
            archive.unlink(missing_ok=True)
            raise
        marker.write_text(f"{info.name}\n")
        if not keep_archives:
            archive.unlink()
    if downloads.is_dir() and not any(downloads.iterdir()):
        downloads.rmdir()
    return out_dir
