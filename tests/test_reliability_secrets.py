"""Issue #7, part 5: API tokens never leak.

Real-looking tokens go through every command, at every verbosity, under faults (401, 500,
resets, stalls, a provider echoing the token back, a cross-origin redirect) and with
ARCHIVER_DEBUG=1; then every place a token could end up is searched: stdout, stderr, log records
of every library at DEBUG, exception text, the database and its WAL (on PostgreSQL: every row of
the catalog, and nothing says the catalog's password either), every archived file (tags included)
and the payloads `show` prints. A config file holding tokens that others can read gets a warning.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import traceback
from pathlib import Path
from typing import Any, Iterator

import pytest
from archiver.testkit import BLANK, SYNC_ARGS, Lib, Loopback, spawn
from archiver.testkit.postgres import PASSWORD

from archiver.config import load_config
from archiver.errors import ArchiverError
from archiver.providers import get_source
from archiver.providers.http import ApiClient, Counters, RetryBudget, RetryPolicy
from archiver.simulator import PROVIDERS, SOURCES, Simulator

TOKENS = {name: f"sk-live-{name}-{secrets.token_hex(16)}" for name in PROVIDERS}
WRONG = f"sk-wrong-{secrets.token_hex(16)}"
SECRETS = [*TOKENS.values(), WRONG]


class Capture(logging.Handler):
    """Every log record of every library, formatted, at DEBUG."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def logs() -> Iterator[Capture]:
    capture = Capture()
    capture.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    try:
        yield capture
    finally:
        root.removeHandler(capture)
        root.setLevel(level)


def leaks(where: str, text: str | bytes) -> list[str]:
    found = []
    for token in SECRETS:
        needle: Any = token.encode() if isinstance(text, bytes) else token
        if needle in text:
            found.append(f"{where} holds {token[:12]}...")
        middle: Any = token[8:24]  # a fragment, in case something cut or reformatted it
        if (middle.encode() if isinstance(text, bytes) else middle) in text:
            found.append(f"{where} holds a fragment of {token[:12]}...")
    return sorted(set(found))


def test_tokens_never_leak_anywhere(tmp_path: Path, logs: Capture, pg_catalog: str | None) -> None:
    with Simulator(tokens=TOKENS) as sim, Loopback() as echo, Loopback() as elsewhere:
        lib = Lib.create(sim, tmp_path / "secrets", "connect_timeout = 2\nread_timeout = 1\nretry_budget = 30\n",
                         pg_catalog)
        for source in SOURCES:
            assert lib.cli("add", source, sim.add_task(source, steps=1)).exit_code == 0
        faults: list[tuple[str, dict[str, Any]]] = [
            ("500", {"times": 2}), ("reset", {}), ("429", {"retry_after": 1}), ("stall", {"delay": 1.5}),
            ("malformed", {}), ("html200", {}), ("503", {})]
        for kind, options in faults:
            sim.inject(kind, target="api", **options)
        for kind in ("reset", "drop", "500", "html200", "expire"):
            sim.inject(kind, target="media")
        lib.sync()
        lib.sync("--quiet", env={"ARCHIVER_DEBUG": "1"})
        lib.cli("sync", "--now")  # the plain, human output
        lib.cli("sync", "--now", "--quiet")
        assert lib.cli("add", "mountsea", sim.add_task("mountsea")).exit_code == 0
        lib.cli("sync", "--now", env={"ARCHIVER_MOUNTSEA_TOKEN": WRONG})  # 401: "mountsea rejected the token"
        assert any("mountsea rejected the token" in out for out in lib.outputs)

        # A provider that echoes the Authorization header into its error, and one that redirects
        # to another origin (httpx must drop the header there).
        echo.routes["/api/producer/tasks"] = lambda h: h.reply(400, json.dumps({
            "error": {"code": "bad_request", "message": f"bad request from {h.headers['Authorization']}"},
            "echo": h.headers["Authorization"]}).encode(), "application/json")
        echo.routes["/moved/producer/tasks"] = lambda h: h.reply(
            307, b"", "text/plain", {"Location": elsewhere.url("/producer/tasks")})
        elsewhere.routes["/producer/tasks"] = lambda h: h.reply(200, b'{"id": "x"}', "application/json")
        assert lib.cli("add", "acedata", "t-echo").exit_code == 0
        lib.cli("sync", "--now", env={"ARCHIVER_ACEDATA_BASE_URL": echo.url("/api/")})
        assert any("bad request from Bearer <redacted>" in out for out in lib.outputs)
        lib.cli("sync", "--now", "--json", env={"ARCHIVER_ACEDATA_BASE_URL": echo.url("/moved/")})
        assert elsewhere.seen and all("authorization" not in headers for _m, _p, headers, _b in elsewhere.seen)

        # Not --quiet: everything it says, over a few passes; t-echo stays unknown to the simulator,
        # so the run ends at its timeout.
        debug = spawn(lib, *SYNC_ARGS[:-3], "--timeout", "3", env={"ARCHIVER_DEBUG": "1"})
        debug_out, debug_err = debug.communicate(timeout=120)
        assert "timeout reached" in debug_out + debug_err, debug_out + debug_err
        reading = [("ls",), ("ls", "--format", "json"), ("tasks", "--format", "json"), ("stats", "--format", "json"),
                   ("config",), ("config", "--format", "json"), ("export", "json"), ("verify",), ("search", "a")]
        for args in reading:
            lib.cli(*args)
        for row in lib.query("SELECT task_id FROM tasks"):
            lib.cli("show", row["task_id"], "--format", "json")

        found: list[str] = []
        for number, out in enumerate(lib.outputs):
            found += leaks(f"output #{number}", out)
        found += leaks("subprocess stdout", debug_out) + leaks("subprocess stderr", debug_err)
        found += leaks("log records", "\n".join(logs.lines))
        found += leaks("tracebacks", "\n".join(lib.crashes))
        for path in sorted(p for p in lib.root.rglob("*") if p.is_file()):
            found += leaks(str(path.relative_to(lib.root)), path.read_bytes())
        found += leaks("the catalog", lib.catalog.text())
        if pg_catalog:
            said = [*lib.outputs, debug_out, debug_err, *logs.lines, *lib.crashes]
            found += [f"something said the catalog's password: {text[:80]!r}" for text in said if PASSWORD in text]
        assert found == []
        assert logs.lines  # the libraries did log (at DEBUG), and nothing they logged held a token
        assert any(r.status == 401 for r in sim.requests)

        for record in sim.requests:  # each token went to its own provider, and nowhere else
            auth = record.headers.get("authorization")
            if record.target == "media":
                assert auth is None
            elif record.status != 401 and record.provider is not None:
                assert auth == f"Bearer {TOKENS[record.provider]}"


@pytest.mark.parametrize("fault", ["401", "500", "reset", "echo", "stall"])
def test_exception_text_never_holds_the_token(fault: str) -> None:
    """The errors themselves (message, repr, traceback, cause chain) as the API client raises them."""
    token = TOKENS["acedata"]
    with Simulator(tokens={"acedata": token}) as sim, Loopback() as echo:
        task_id = sim.add_task("acedata", steps=0)
        base = sim.provider_url("acedata")
        if fault == "401":
            sim.tokens["acedata"] = "sk-someone-else"
        elif fault == "echo":
            echo.routes["/producer/tasks"] = lambda h: h.reply(
                400, json.dumps({"message": f"invalid key {h.headers['Authorization']}"}).encode(), "application/json")
            base = echo.url("/")
        else:
            sim.inject(fault, target="api", times=-1, delay=2.0)
        settings = load_config(env={"ARCHIVER_ACEDATA_TOKEN": token, "ARCHIVER_ACEDATA_BASE_URL": base},
                               overrides={"library": "/nonexistent"}).provider("acedata")

        async def fetch() -> Any:
            async with ApiClient(settings, connect_timeout=1, read_timeout=0.5, budget=RetryBudget(2),
                                 counters=Counters(), policy=RetryPolicy(attempts=2, initial=0.01)) as client:
                return await client.fetch(get_source("acedata"), [task_id])

        with pytest.raises(ArchiverError) as info:
            asyncio.run(fetch())
        text = "".join(traceback.format_exception(info.value)) + repr(info.value) + repr(settings)
        assert token not in text and token[8:24] not in text


@pytest.mark.parametrize("mode, warned", [(0o644, True), (0o640, True), (0o604, True), (0o600, False), (0o400, False)])
def test_config_with_tokens_readable_by_others_is_warned_about(tmp_path: Path, mode: int, warned: bool) -> None:
    cfg = tmp_path / "config.toml"
    token = TOKENS["ccapi"]
    cfg.write_text(f'[providers.ccapi]\ntoken = "{token}"\n', encoding="utf-8")
    cfg.chmod(mode)
    from click.testing import CliRunner

    from archiver.cli import cli

    def run() -> Any:
        return CliRunner().invoke(cli, ["--config", str(cfg), "--library", str(tmp_path / "lib"), "config"],
                                  env=BLANK)

    result = run()
    assert result.exit_code == 0, result.output
    assert ("readable by other users" in result.stderr) is warned
    assert token not in result.output
    cfg.chmod(0o644)
    cfg.write_text("jobs = 2\n", encoding="utf-8")  # no token in it: nothing to warn about
    assert "readable by other users" not in run().stderr
