"""`archiver serve` in headless Chromium (Debian's /usr/bin/chromium driven by Playwright), the way
a person uses it: search, filter, read a clip's lyrics, play, seek and go to the next song."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from archiver.simulator import Simulator
from serve_support import Library, build_library, serve

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("Debian's chromium is not installed (/usr/bin/chromium): apt-get install chromium",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install '.[test]')")

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--autoplay-policy=no-user-gesture-required"]
SONG = 300_000  # bytes of padded 48 kb/s MP3: about 50 s, room to seek


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Library]:
    with Simulator() as sim:
        yield build_library(sim, tmp_path_factory.mktemp("browser"), audio_bytes=SONG)


@pytest.fixture(scope="module")
def base(library: Library) -> Iterator[str]:
    with serve(library.root) as url:
        yield url


@pytest.fixture(scope="module")
def browser(base: str) -> Iterator[Any]:
    """After the library (its sync runs asyncio, which Playwright's running loop would refuse)."""
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, base: str) -> Iterator[Any]:
    context = browser.new_context(base_url=base, viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on("console", lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None)
    yield tab
    context.close()
    assert errors == []  # no script error, nothing the CSP had to block


def eventually(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    """Poll from Python: the CSP (rightly) forbids the string evaluation wait_for_function uses."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def shown_titles(page: Any) -> list[str]:
    return page.locator("ol.results a.title").all_inner_texts()


def audio(page: Any, prop: str) -> Any:
    return page.evaluate(f"document.getElementById('audio').{prop}")


def test_search_filter_and_open_a_clip_to_read_its_lyrics(page: Any) -> None:
    page.goto("/")
    assert len(shown_titles(page)) == 5
    search = page.get_by_role("searchbox", name="Search")
    search.fill("title:albatross")
    search.press("Enter")
    page.wait_for_url("**/?q=title*")
    assert shown_titles(page) == ["Albatross at Dawn"]
    page.get_by_role("combobox", name="Mode", exact=True).select_option("text")
    search.fill("harbour")
    page.get_by_role("button", name="Search", exact=True).click()
    page.wait_for_url("**mode=text**")
    assert shown_titles(page)[0] == "Harbour Lights"
    assert page.locator("ol.results mark").first.inner_text().lower() == "harbour"
    page.goto("/")
    page.get_by_role("combobox", name="Source", exact=True).select_option("mountsea")  # applies at once
    page.wait_for_url("**source=mountsea**")
    assert shown_titles(page) == ["Glass River"]
    page.goto("/")
    page.get_by_role("link", name="Albatross at Dawn").click()
    page.get_by_role("heading", name="Albatross at Dawn", level=1).wait_for()
    assert page.get_by_role("heading", name="Chorus", level=3).is_visible()
    assert page.get_by_text("Carry me home").is_visible()


def test_play_seek_and_next_from_the_queue(page: Any) -> None:
    page.goto("/?sort=title&source=ccapi-suno")
    assert shown_titles(page) == ["Albatross at Dawn", "Harbour Lights"]
    page.get_by_role("button", name="Play Albatross at Dawn").click()
    eventually(lambda: audio(page, "currentTime") > 0.3)
    assert audio(page, "paused") is False
    assert page.get_by_role("button", name="Pause", exact=True).is_visible()
    assert "Albatross at Dawn" in page.locator("#now").inner_text()
    assert audio(page, "duration") > 30
    page.locator("body").press("ArrowRight")  # seek 10 s ahead
    eventually(lambda: audio(page, "currentTime") > 10)
    seek = page.get_by_role("slider", name="Seek")
    seek.fill("25")  # the range input, as dragging it does
    eventually(lambda: 25 <= audio(page, "currentTime") < 35)
    page.get_by_role("button", name="Next", exact=True).click()
    eventually(lambda: "Harbour Lights" in page.locator("#now").inner_text())
    eventually(lambda: audio(page, "currentTime") > 0.3 and audio(page, "currentSrc").endswith(
        page.get_by_role("button", name="Play Harbour Lights").get_attribute("data-src")))
    page.locator("body").press(" ")  # space pauses
    eventually(lambda: audio(page, "paused"))
    # `paused` turns true at once; the "pause" event that relabels the button comes a task later
    eventually(lambda: page.get_by_role("button", name="Play", exact=True).is_visible())
    page.goto("/?sort=title&view=list")
    page.get_by_role("button", name="Play all").click()  # every result, in the page's order
    eventually(lambda: page.locator("#queue-info").inner_text() == "1 of 5")
    eventually(lambda: shown_titles(page)[0] in page.locator("#now").inner_text())
