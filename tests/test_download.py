"""The BAPPS downloader against a local HTTP server (127.0.0.1) started by the test.

The server serves small tarballs in the BAPPS layout, honours ``Range: bytes=N-``
(206 Partial Content), and can cut a response short to simulate a dropped connection.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lpips_core.data import JNDDataset, TwoAFCDataset
from lpips_core.data.download import DownloadError, download_bapps, download_file, extract_archive

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- archives in the BAPPS layout
def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _png_bytes(value: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _npy_bytes(value: float) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.array([value]))
    return buf.getvalue()


def _tarball(top: str, kind: str, n: int = 3) -> bytes:
    """``top/traditional/...`` with n items; kind '2afc' or 'jnd'. Incompressible padding makes it ~100 kB."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for i in range(n):
            stem = f"{i:06d}"
            keys = ("ref", "p0", "p1") if kind == "2afc" else ("p0", "p1")
            for j, key in enumerate(keys):
                _add(tar, f"{top}/traditional/{key}/{stem}.png", _png_bytes(20 * i + j))
            _add(tar, f"{top}/traditional/{'judge' if kind == '2afc' else 'same'}/{stem}.npy", _npy_bytes(i / n))
        _add(tar, f"{top}/padding.bin", np.random.default_rng(0).bytes(100_000))
    return buf.getvalue()


# --------------------------------------------------------------------------- the server
class _Server:
    """Serves ``files`` (name -> bytes) on 127.0.0.1; ``cut_next`` cuts that many responses in half."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.cut_next = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                name = self.path.rsplit("/", 1)[-1]
                rng = self.headers.get("Range")
                server.requests.append((self.path, rng))
                data = server.files.get(name)
                if data is None:
                    self.send_error(404, "Not Found")
                    return
                start = 0
                if rng and rng.startswith("bytes=") and rng.endswith("-"):
                    start = int(rng[len("bytes=") : -1])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                if server.cut_next > 0:
                    server.cut_next -= 1
                    self.wfile.write(body[: len(body) // 2])  # then drop the connection
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/dataset"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(tmp_path, monkeypatch):
    """The server, with the archives' pinned sha256 those of the files it serves (the official
    pins cannot match these small tarballs) and an empty first-use record."""
    import dataclasses
    import hashlib

    from lpips_core.data import download

    monkeypatch.setenv("LPIPS_CORE_CACHE", str(tmp_path / "cache"))
    with _Server() as s:
        s.files["jnd.tar.gz"] = _tarball("jnd/val", "jnd")
        s.files["twoafc_val.tar.gz"] = _tarball("val", "2afc")
        for key in ("jnd", "twoafc_val"):
            info = download.ARCHIVES[key]
            monkeypatch.setitem(
                download.ARCHIVES, key, dataclasses.replace(info, sha256=hashlib.sha256(s.files[info.name]).hexdigest())
            )
        yield s


def _leftovers(out: Path) -> list[str]:
    """Temporary folders or partial files anywhere under ``out``."""
    return sorted(
        str(p.relative_to(out))
        for p in out.rglob("*")
        if ".extracting-" in p.name or ".old-" in p.name or p.name.endswith(".part")
    )


# --------------------------------------------------------------------------- tests
def test_full_download_gives_a_readable_bapps_folder(server, tmp_path):
    out = download_bapps(tmp_path / "bapps", ["jnd", "twoafc_val"], base_url=server.url, progress=False)
    val = TwoAFCDataset(out, split="val", load_size=8)
    assert len(val) == 3 and val.subsets == ["traditional"]
    np.testing.assert_allclose(val.judges, [0, 1 / 3, 2 / 3])
    assert len(JNDDataset(out, load_size=8)) == 3
    assert not (out / ".downloads").exists() and not _leftovers(out)
    assert all(rng is None for _, rng in server.requests)  # nothing needed resuming

    # a second call finds both parts complete and downloads nothing
    n = len(server.requests)
    download_bapps(out, ["jnd", "twoafc_val"], base_url=server.url, progress=False)
    assert len(server.requests) == n


def test_interrupted_download_resumes_with_range(server, tmp_path):
    data = server.files["twoafc_val.tar.gz"]
    dest = tmp_path / "dl" / "twoafc_val.tar.gz"

    server.cut_next = 1
    with pytest.raises(DownloadError, match="incomplete.*run again to resume"):
        download_file(f"{server.url}/twoafc_val.tar.gz", dest, retries=0, progress=False)
    part = dest.with_name(dest.name + ".part")
    assert not dest.exists() and 0 < part.stat().st_size < len(data)
    half = part.stat().st_size

    download_file(f"{server.url}/twoafc_val.tar.gz", dest, retries=0, progress=False)  # the next call resumes
    assert dest.read_bytes() == data and not part.exists()
    assert server.requests[-1][1] == f"bytes={half}-"


def test_dropped_connection_is_resumed_within_one_call(server, tmp_path):
    server.cut_next = 2
    out = download_bapps(tmp_path / "bapps", ["twoafc_val"], base_url=server.url, retries=3, progress=False)
    assert len(TwoAFCDataset(out, split="val", load_size=8)) == 3
    ranges = [rng for _, rng in server.requests]
    assert ranges[0] is None and all(r and r.startswith("bytes=") for r in ranges[1:]) and len(ranges) == 3


def test_corrupt_archive_leaves_no_partial_dataset(server, tmp_path):
    good = server.files["twoafc_val.tar.gz"]
    server.files["twoafc_val.tar.gz"] = good[: len(good) // 2] + bytes(len(good) // 2)  # truncated, zero-filled
    out = tmp_path / "bapps"
    with pytest.raises(DownloadError, match="damaged archive|sha256"):  # refused by its sha256 first
        download_bapps(out, ["twoafc_val"], base_url=server.url, progress=False)
    assert not (out / "2afc" / "val").exists()
    assert not _leftovers(out)
    assert not list((out / ".downloads").glob("*.tar.gz"))  # deleted, so the next call starts afresh
    assert not (out / ".complete-twoafc_val").exists()

    server.files["twoafc_val.tar.gz"] = good
    download_bapps(out, ["twoafc_val"], base_url=server.url, progress=False)
    assert len(TwoAFCDataset(out, split="val", load_size=8)) == 3


def test_archive_with_the_wrong_layout_is_refused(tmp_path):
    archive = tmp_path / "twoafc_val.tar.gz"
    archive.write_bytes(_tarball("something_else", "2afc"))
    with pytest.raises(DownloadError, match="expected a single top folder 'val'"):
        extract_archive(archive, tmp_path / "2afc", "val")
    assert list((tmp_path / "2afc").iterdir()) == []


def test_missing_file_is_a_404_error(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404.*--base-url"):
        download_bapps(tmp_path / "bapps", ["twoafc_train"], base_url=server.url, progress=False)
    assert not (tmp_path / "bapps" / "2afc" / "train").exists()


def test_offline_script_fails_with_one_line(tmp_path):
    """Port 9 on 127.0.0.1 (discard) is closed: the same error as having no internet."""
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "data_scripts" / "download_bapps.py"),
            "--val-only",
            "--out",
            str(tmp_path / "b"),
            "--base-url",
            "http://127.0.0.1:9/dataset",
            "--retries",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("download_bapps: error: cannot reach"), proc.stderr
    assert "needs internet" in lines[0]
