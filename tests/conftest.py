"""Shared fixtures: an isolated environment per test, saved provider bodies, a CLI runner."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest
from click.testing import CliRunner, Result

FIXTURES = Path(__file__).parent / "fixtures"
PAYLOADS = FIXTURES / "payloads"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may read the developer's real config, library or tokens."""
    for name in list(__import__("os").environ):
        if name.startswith("ARCHIVER_"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_MUSIC_DIR", str(tmp_path / "music"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.fixture
def library(tmp_path: Path) -> Path:
    path = tmp_path / "library"
    path.mkdir()
    return path


def load_payload(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text(encoding="utf-8"))


@pytest.fixture
def payload() -> Callable[[str], Any]:
    return load_payload


@pytest.fixture
def run_cli(library: Path) -> Callable[..., Result]:
    """Invoke the real click CLI against the test library; returns click's Result."""
    from archiver.cli import cli

    def invoke(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        runner = CliRunner()
        return runner.invoke(cli, ["--library", str(library), *args], input=input, env=env,
                             catch_exceptions=False)

    return invoke
