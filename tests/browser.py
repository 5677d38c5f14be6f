"""Headless Chromium for the browser checks (tests/test_book.py, tests/test_playground.py,
benchmarks/bench_browser_int8.py): Debian's chromium and chromedriver (`make browser`)."""

from __future__ import annotations

import tempfile
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
