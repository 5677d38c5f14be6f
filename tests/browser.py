"""Headless Chromium for the browser checks (tests/test_book.py, tests/test_playground.py,
benchmarks/bench_browser_int8.py): Debian's chromium and chromedriver (`make browser`), and the
local web server the pages are opened from."""

from __future__ import annotations

import contextlib
import functools
import http.server
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def headless_chromium(profile_prefix: str, *, window_size: str | None = None, performance_log: bool = False):
    """A Chrome WebDriver on headless Chromium with a fresh profile; returns (driver, profile folder).

    Any host but this machine fails at once (the Colab badge, CDNs): nothing leaves the machine
    and no page waits on a network time-out. The browser console is logged (``get_log('browser')``),
    and with ``performance_log`` the network events too. The caller quits the driver and removes
    the profile.
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix=profile_prefix)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    arguments = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-quic",
        "--no-first-run",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    ]
    if window_size:
        arguments.append(f"--window-size={window_size}")
    for arg in arguments:
        options.add_argument(arg)
    logs = {"browser": "ALL", "performance": "ALL"} if performance_log else {"browser": "ALL"}
    options.set_capability("goog:loggingPrefs", logs)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options), profile


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files without logging each request; knows the playground's WebAssembly and module types."""

    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".wasm": "application/wasm",
        ".mjs": "text/javascript",
    }

    def log_message(self, *args):  # keep pytest's output clean
        pass


class _IsolatedHandler(_QuietHandler):
    """Adds the two headers that make a page cross-origin isolated (SharedArrayBuffer, threads)."""

    def end_headers(self):
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()


@contextlib.contextmanager
def local_server(directory: Path, *, isolated: bool = False) -> Iterator[str]:
    """Serve ``directory`` on 127.0.0.1 at a free port, in a thread; yields its base URL.

    ``isolated``: send the cross-origin isolation headers (the playground's threaded WebAssembly).
    """
    handler = _IsolatedHandler if isolated else _QuietHandler
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(directory)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
