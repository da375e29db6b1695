"""Take the screenshots in docs/serve.md from the demo library, in headless Chromium.

    python docs/screenshots.py              # writes docs/serve-library.png, serve-clip.png, serve-stats.png

Needs the test extra (Playwright) and Debian's chromium (/usr/bin/chromium); no browser download.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

DOCS = Path(__file__).resolve().parent
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--autoplay-policy=no-user-gesture-required", "--hide-scrollbars"]


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="archiver-shots-") as tmp:
        library = Path(tmp) / "demo"
        subprocess.run([sys.executable, "-m", "archiver", "demo", "--dir", str(library)], check=True,
                       stdout=subprocess.DEVNULL)
        server = subprocess.Popen([sys.executable, "-m", "archiver", "--library", str(library), "serve", "--port", "0"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            assert server.stdout is not None
            url = next(w for w in server.stdout.readline().split() if w.startswith("http://"))
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
                page = browser.new_page(base_url=url, viewport={"width": 1280, "height": 860})
                page.goto("/?sort=title")
                first = page.locator("ol.results button.play").first
                first.click()
                deadline = time.monotonic() + 10
                while page.evaluate("document.getElementById('audio').currentTime") < 1.5:
                    assert time.monotonic() < deadline, "the demo song did not play"
                    time.sleep(0.05)
                page.evaluate("document.getElementById('audio').pause()")
                page.screenshot(path=DOCS / "serve-library.png")
                page.locator("ol.results a.title").nth(1).click()
                page.get_by_role("heading", name="Lyrics").wait_for()
                page.screenshot(path=DOCS / "serve-clip.png")
                page.goto("/stats")
                page.screenshot(path=DOCS / "serve-stats.png")
                page.goto("/?mode=text&q=rain&view=list")
                page.screenshot(path=DOCS / "serve-search.png")
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=10)
    print("wrote", ", ".join(f"docs/serve-{name}.png" for name in ("library", "clip", "stats", "search")))


if __name__ == "__main__":
    main()
