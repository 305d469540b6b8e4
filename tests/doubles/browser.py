"""Headless Chromium for the inspector's browser test and its screenshot in docs/: Debian's ``chromium`` driven by
Playwright (a dev dependency) through ``executable_path``, so no browser is ever downloaded.

>>> reason = why_no_browser()          # None when a page can be opened
>>> with chromium_page() as page:      # doctest: +SKIP
...     page.goto("http://127.0.0.1:8080/ui")
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from contextlib import contextmanager
from typing import Iterator

__all__ = ["CHROMIUM_FLAGS", "chromium_path", "why_no_browser", "chromium_page"]

# Flags that work on the project's machines (containers, no GPU, no network but loopback): no sandbox (root),
# no GPU process, and nothing that calls home (component updates, sync, background networking, QUIC probes).
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def why_no_browser() -> str | None:
    """Why no page can be opened here (a sentence), or None."""
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed (it comes with the dev extras: pip install -e '.[dev]')"
    if chromium_path() is None:
        return "no chromium executable on PATH (Debian: apt-get install -y chromium; .ci/run installs it)"
    return None


@contextmanager
def chromium_page(width: int = 1280, height: int = 900) -> Iterator:
    """A Playwright page in a fresh headless Chromium with a fresh profile (``--user-data-dir``), closed after."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright, tempfile.TemporaryDirectory(prefix="redline-chromium-") as profile:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": width, "height": height})
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()
