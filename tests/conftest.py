"""Shared fixtures: an isolated environment per test, saved provider bodies, a CLI runner, and the
database engine a test runs on.

The CLI, sync and reliability modules listed in BOTH_ENGINES run each test that goes through the
CLI (`run_cli`, `sim_cli`, `engine`, `catalog`, `pg_catalog`) twice: on SQLite and on a PostgreSQL
catalog (a throwaway cluster for the session, a fresh database per test; skipped, with the reason,
where the server binaries are absent). Tests read and stage catalog rows through `catalog`
(archiver.testkit.Catalog), the same on both engines; a test about the SQLite file itself (its
WAL, its locks, its corruption) is marked `sqlite_only` and says why.
"""

from __future__ import annotations

import json
import os
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


# Modules whose CLI tests run on both engines: the ones that exercise the store through the CLI.
# The others fill or inspect the SQLite file directly (test_library, test_migrations, ...).
BOTH_ENGINES = frozenset({"test_core_cli", "test_sync", "test_reliability", "test_reliability_secrets2",
                          "test_reliability_files", "test_reliability_output", "test_postgres",
                          "test_reliability_state", "test_reliability_crash", "test_reliability_disk",
                          "test_reliability_hang", "test_reliability_concurrency",
                          "test_reliability_input", "test_reliability_secrets"})


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "engine" not in metafunc.fixturenames or _chooses_engine(metafunc):
        return
    module = metafunc.module.__name__.rsplit(".", 1)[-1]
    if module in BOTH_ENGINES and metafunc.definition.get_closest_marker("sqlite_only") is None:
        metafunc.parametrize("engine", ["sqlite", "postgresql"], indirect=True)


def _chooses_engine(metafunc: pytest.Metafunc) -> bool:
    """A slow test may name its own cases per engine: `parametrize("engine, ...", ..., indirect=["engine"])`."""
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0]
        if "engine" in ([n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)):
            return True
    return False


@pytest.fixture(scope="session")
def pg_cluster() -> Any:
    """A throwaway PostgreSQL server for the whole session (archiver/testkit/postgres.py)."""
    from archiver.testkit.postgres import Cluster, unavailable

    reason = unavailable()
    if reason:
        pytest.skip(reason)
    with Cluster() as cluster:
        yield cluster


@pytest.fixture
def pg_url(pg_cluster: Any) -> str:
    """A fresh database holding the current schema, for one test."""
    return str(pg_cluster.database())


@pytest.fixture
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """"sqlite" or "postgresql"; on PostgreSQL, ARCHIVER_DB points every command at a fresh database."""
    name = getattr(request, "param", "sqlite")
    if name == "postgresql":
        monkeypatch.setenv("ARCHIVER_DB", request.getfixturevalue("pg_url"))
    return str(name)


@pytest.fixture
def db_url(engine: str, library: Path) -> str:
    """The URL of the test library's database on the engine the test runs on."""
    if engine == "postgresql":
        return os.environ["ARCHIVER_DB"]
    return f"sqlite:///{library / 'archiver.db'}"


@pytest.fixture
def catalog(db_url: str) -> Any:
    """The test library's catalog, read and written as an independent client (testkit.Catalog)."""
    from archiver.testkit import Catalog

    return Catalog(db_url)


@pytest.fixture
def pg_catalog(engine: str) -> str | None:
    """For a testkit.Lib: the PostgreSQL catalog's URL on PostgreSQL, None on SQLite (its own file)."""
    return os.environ["ARCHIVER_DB"] if engine == "postgresql" else None


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
def run_cli(library: Path, engine: str) -> Callable[..., Result]:
    """Invoke the real click CLI against the test library; returns click's Result."""
    from archiver.cli import cli

    def invoke(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        runner = CliRunner()
        return runner.invoke(cli, ["--library", str(library), *args], input=input, env=env,
                             catch_exceptions=False)

    return invoke


@pytest.fixture
def sim():
    """A started provider simulator on 127.0.0.1 (a real HTTP server in a thread)."""
    from archiver.simulator import Simulator

    with Simulator() as simulator:
        yield simulator


@pytest.fixture
def sim_cli(library: Path, sim: Any, tmp_path: Path, engine: str) -> Callable[..., Result]:
    """Run the CLI against the simulator: its URLs and tokens in the environment.

    Short timeouts and retry pauses keep fault tests quick; `extra_config` adds TOML lines.
    """
    from archiver.cli import cli

    def invoke(*args: str, input: str | None = None, env: dict[str, str] | None = None,
               extra_config: str = "") -> Result:
        cfg = tmp_path / "sim-config.toml"
        cfg.write_text("connect_timeout = 2\nread_timeout = 2\n" + extra_config, encoding="utf-8")
        cfg.chmod(0o600)
        full_env = {**sim.env(), **(env or {})}
        runner = CliRunner()
        return runner.invoke(cli, ["--config", str(cfg), "--library", str(library), *args], input=input,
                             env=full_env, catch_exceptions=False)

    return invoke


def sync_json(sim_cli: Callable[..., Result], *args: str, **kw: Any) -> tuple[int, dict[str, Any]]:
    """`archiver sync --json ARGS`: its exit code and its summary object."""
    result = sim_cli("sync", "--json", *args, **kw)
    lines = [line for line in result.output.splitlines() if line.startswith("{")]
    assert lines, result.output
    return result.exit_code, json.loads(lines[-1])


def sync_now(sim_cli: Callable[..., Result], *args: str, **kw: Any) -> tuple[int, dict[str, Any]]:
    """The same, ignoring the poll schedule (`--now`)."""
    return sync_json(sim_cli, "--now", *args, **kw)


def answer_range(handler: Any, size: int) -> tuple[int, int]:
    """A test server's head for a body of `size` bytes: 206 for the Range asked (`bytes=a-` or
    `bytes=a-b`), else 200, with its length; the body's (start, end) to send."""
    wanted = handler.headers.get("Range", "")
    start, end = 0, size
    if wanted:
        first, _, last = wanted.removeprefix("bytes=").partition("-")
        start, end = int(first), int(last) + 1 if last else size
        handler.send_response(206)
        handler.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
    else:
        handler.send_response(200)
    handler.send_header("Content-Length", str(end - start))
    handler.end_headers()
    return start, end


@pytest.fixture
def loopback_certificate(tmp_path: Path) -> tuple[Path, Any]:
    """A self-signed certificate for 127.0.0.1 (its PEM file) and a server TLS context holding it."""
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("the openssl tool is needed to make the test server's certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return cert, context
