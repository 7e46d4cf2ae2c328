"""The dashboard in a real headless browser: `streamlit run` on loopback, Debian's Chromium via Playwright."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "test-output"
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited early: {proc.stdout.read() if proc.stdout else ''}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer in {seconds}s")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed and could not be "
                    "(scripts/install-chromium.sh installs it where apt-get works)")
def test_recommendation_renders_in_chromium() -> None:
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extra")
    port = _free_port()
    env = {**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    env.pop("ADVISOR_DB", None)
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless",
                             "true", "--server.port", str(port), "--server.address", "127.0.0.1"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/_stcore/health", proc)
        with playwright.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded")
            page.get_by_text("Expected cost").first.wait_for(timeout=180_000)
            page.get_by_text("Alternatives considered").first.wait_for(timeout=60_000)
            page.locator("[data-testid='stDataFrame'] canvas").first.wait_for(timeout=60_000)
            page.locator(".js-plotly-plot .main-svg").first.wait_for(timeout=60_000)
            page.wait_for_timeout(2000)  # let the grid and charts paint before the screenshot
            body = page.inner_text("body")
            OUT.mkdir(exist_ok=True)
            page.screenshot(path=str(OUT / "dashboard.png"), full_page=True)
            browser.close()
        assert "P(meet deadline)" in body and "Saving vs on-demand" in body
        assert re.search(r"Expected cost\s*\$[\d,]+", body), body[:500]
        assert re.search(r"P\(meet deadline\)\s*\d+\.\d%", body)
        assert "Traceback" not in body
        assert (OUT / "dashboard.png").stat().st_size > 10_000
    finally:
        proc.terminate()
        proc.wait(timeout=20)
