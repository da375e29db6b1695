"""The CLI's shape: one package without import cycles, source choices read from the provider
registry when a command line is parsed, and `verify` free of HTTP code."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
from click.testing import Result

from archiver.providers import SOURCES
from archiver.providers.ccapi_suno import CcapiSuno
from archiver.records import Status
from conftest import PAYLOADS

PACKAGE = Path(__file__).resolve().parent.parent / "archiver"
HTTP = ("httpx", "pycurl")

PROBE = """
import json, sys
args, roots = json.loads(sys.argv[1]), json.loads(sys.argv[2])
sys.argv = ["archiver", *args]
from archiver.cli import main
code = None
try:
    main()
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "loaded": sorted(m for m in sys.modules if m.split(".")[0] in roots)}))
"""


def _probe(args: list[str]) -> tuple[str, dict[str, object]]:
    """Run `archiver ARGS` in a fresh interpreter: its output and which HTTP modules it loaded."""
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args), json.dumps(HTTP)],
                         capture_output=True, text=True, check=True, cwd=PACKAGE.parent)
    *lines, last = out.stdout.strip().splitlines()
    return "\n".join(lines), json.loads(last)


@pytest.fixture
def filled(run_cli: Callable[..., Result], library: Path) -> Path:
    """A library with one imported task and clip, nothing downloaded."""
    imported = run_cli("import", str(PAYLOADS / "acedata_single.json"))
    assert imported.exit_code == 0, imported.output
    return library


def test_verify_imports_no_http_code(filled: Path) -> None:
    output, result = _probe(["--library", str(filled), "verify"])
    assert result["code"] == 0 and "checked 0 file(s)" in output, output
    assert result["loaded"] == [], f"archiver verify imported {result['loaded']}"


@pytest.mark.parametrize("args", [["verify", "--help"], ["verify", "--json"], ["rebuild", "--help"],
                                  ["rebuild", "--force"]])
def test_verify_and_rebuild_import_no_http_code(args: list[str], filled: Path) -> None:
    output, result = _probe(["--library", str(filled), *args])
    assert result["code"] == 0, output
    assert result["loaded"] == [], f"archiver {' '.join(args)} imported {result['loaded']}"


def _cli_modules() -> dict[str, Path]:
    """Every module of the command line: the `archiver.cli` package or `cli*.py` files."""
    found: dict[str, Path] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[1].startswith("cli"):
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The known modules that `name` imports anywhere in its text (lazy imports count)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    edges: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            edges.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            base = f"{base}.{node.module}" if node.level and node.module else (node.module or base)
            for alias in node.names:
                if f"{base}.{alias.name}" in known:
                    edges.add(f"{base}.{alias.name}")
                elif base in known:
                    edges.add(base)
    edges.discard(name)
    return edges


def test_cli_modules_import_each_other_without_a_cycle() -> None:
    modules = _cli_modules()
    graph = {name: _imports(name, path, set(modules)) for name, path in modules.items()}
    assert "archiver.cli" in graph and len(graph) > 1, graph

    def walk(node: str, trail: list[str]) -> None:
        for nxt in sorted(graph[node]):
            assert nxt not in trail, f"import cycle: {' -> '.join(trail[trail.index(nxt):] + [node, nxt])}"
            walk(nxt, trail + [node])

    for start in graph:
        walk(start, [])


def test_cli_modules_stay_small() -> None:
    for name, path in _cli_modules().items():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        assert lines <= 500, f"{name} has {lines} lines"


@pytest.fixture
def extra_source(monkeypatch: pytest.MonkeyPatch) -> str:
    """A provider registered at run time, as a test or a plugin would."""
    monkeypatch.setitem(SOURCES, "extra-suno", CcapiSuno())
    return "extra-suno"


@pytest.mark.parametrize("command", [["tasks"], ["ls"], ["export", "json"]])
def test_read_commands_accept_a_source_registered_at_run_time(
        run_cli: Callable[..., Result], filled: Path, extra_source: str, command: list[str]) -> None:
    result = run_cli(*command, "--source", extra_source, "--source", "acedata")
    assert result.exit_code == 0, result.output
    refused = run_cli(*command, "--source", "no-such-source")
    assert refused.exit_code == 2 and "no-such-source" in refused.output, refused.output


def test_help_lists_a_source_registered_at_run_time(run_cli: Callable[..., Result], extra_source: str) -> None:
    for command in ("tasks", "ls", "export", "sync", "import"):
        result = run_cli(command, "--help")
        assert result.exit_code == 0 and extra_source in result.output, (command, result.output)
    add_help = run_cli("add", "--help")
    assert extra_source in add_help.output and "acedata" in add_help.output, add_help.output


def test_sync_and_import_parse_a_source_registered_at_run_time(run_cli: Callable[..., Result],
                                                               extra_source: str) -> None:
    for args in (["sync", "--source", extra_source, "--no-download", "--json"],
                 ["import", "--source", extra_source, str(PAYLOADS / "ccapi_suno_batch.json")]):
        result = run_cli(*args)
        assert "Invalid value for '--source'" not in result.output, (args, result.output)
    imported = run_cli("import", "--source", extra_source, str(PAYLOADS / "ccapi_suno_batch.json"))
    assert imported.exit_code == 0, imported.output


def test_add_accepts_a_source_registered_at_run_time(run_cli: Callable[..., Result], extra_source: str) -> None:
    result = run_cli("add", extra_source, "task-one", "task-two")
    assert result.exit_code == 0 and f"2 new task(s) added to {extra_source}" in result.output, result.output
    listed = run_cli("tasks", "--source", extra_source, "--format", "json")
    assert sorted(t["task_id"] for t in json.loads(listed.output)) == ["task-one", "task-two"]


def test_status_choices_are_the_record_statuses(run_cli: Callable[..., Result], filled: Path) -> None:
    help_text = run_cli("tasks", "--help").output
    for status in Status:
        assert status.value in help_text
        assert run_cli("tasks", "--status", status.value).exit_code == 0
    assert run_cli("tasks", "--status", "nearly").exit_code == 2
