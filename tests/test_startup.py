"""Start-up and exit: `--help` and `--version` import no heavy library, and the collector neither walks
the libraries a command loads nor what is alive when it ends."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HEAVY = ("sqlalchemy", "sqlmodel", "httpx", "pycurl", "mutagen", "aiofiles", "rich")

PROBE = """
import json, sys
args, heavy = json.loads(sys.argv[1]), json.loads(sys.argv[2])
sys.argv = ["archiver", *args]
from archiver import cli
try:
    cli.main()
except SystemExit:
    pass
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in heavy)))
"""


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["sync", "--help"], ["ls", "--help"]])
def test_help_and_version_import_nothing_heavy(args: list[str]) -> None:
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args), json.dumps(HEAVY)],
                         capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == [], f"{args} imported {loaded}"


def test_python_dash_m_works() -> None:
    out = subprocess.run([sys.executable, "-m", "archiver", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("archiver, version ")


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["show", "--help"]])
def test_help_and_version_load_no_configuration_or_provider(args: list[str]) -> None:
    """Help reads no config file, so neither the config module nor the provider registry loads."""
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args), json.dumps(["archiver"])],
                         capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert "archiver.cli" in loaded
    assert not loaded & {"archiver.config", "archiver.providers", "archiver.records"}, loaded


EXIT_PROBE = """
import atexit, gc, json, sys
atexit.register(lambda: print("frozen", gc.get_freeze_count()))  # the last handler to run
sys.argv = ["archiver", *json.loads(sys.argv[1])]
from archiver import cli
cli.main()
"""


@pytest.mark.parametrize("args", [["--version"], ["ls", "--no-such-option"]])
def test_objects_alive_at_exit_are_left_to_the_kernel(args: list[str]) -> None:
    """The interpreter's last collections would walk every object the command's libraries made;
    frozen ones they skip, after a command that succeeded or failed alike."""
    out = subprocess.run([sys.executable, "-c", EXIT_PROBE, json.dumps(args)], capture_output=True, text=True)
    assert out.returncode in (0, 2), out.stderr
    frozen = int(out.stdout.rsplit("frozen", 1)[1])
    assert frozen > 1000, out.stdout


GC_PROBE = """
import gc, json, sys
watched, defined, args = json.loads(sys.argv[1])
seen = {"while_loading": 0, "frozen_after": None}

def collection(phase, info):  # counts the collections that start while `watched` is being imported
    module = sys.modules.get(watched)
    if phase != "start" or module is None:
        return
    if not hasattr(module, defined):
        seen["while_loading"] += 1
    elif seen["frozen_after"] is None:
        seen["frozen_after"] = gc.get_freeze_count()

gc.callbacks.append(collection)
if args:
    sys.argv = ["archiver", *args]
    from archiver import cli
    try:
        cli.main()
    except SystemExit:
        pass
else:
    __import__(watched)
    gc.collect()
print(json.dumps(seen))
"""


def _collections(watched: str, defined: str, args: list[str], env: dict[str, str]) -> dict[str, int | None]:
    out = subprocess.run([sys.executable, "-c", GC_PROBE, json.dumps([watched, defined, args])],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("args", [["add", "ccapi-suno", "task-1"], ["sync", "--no-download", "--json"]])
def test_no_collection_runs_while_a_command_loads_its_libraries(sim: Any, tmp_path: Path, args: list[str]) -> None:
    """SQLAlchemy, SQLModel and httpx make tens of thousands of objects that live as long as
    the process: the collector pauses while they load, then they are frozen out of its walks."""
    import os

    env = {**os.environ, **sim.env(), "ARCHIVER_LIBRARY": str(tmp_path / "lib")}
    subprocess.run([sys.executable, "-m", "archiver", "add", "ccapi-suno", sim.add_task("ccapi-suno", clips=2)],
                   env=env, check=True, capture_output=True, timeout=120)
    seen = _collections("archiver.sync", "add_tasks" if args[0] == "add" else "run_sync", args, env)
    assert seen["while_loading"] == 0, seen
    assert (seen["frozen_after"] or 0) > 20_000, seen  # collecting again afterwards, past what was loaded
    control = _collections("archiver.sync", "run_sync", [], env)  # the same import without the pause
    assert control["while_loading"] > 0, control


def test_a_sync_without_a_terminal_loads_no_terminal_library(sim: Any, tmp_path: Path) -> None:
    """rich draws progress on a terminal only; httpx would load it (and pygments) for a command-line
    client of its own that archiver never runs."""
    import os

    env = {**os.environ, **sim.env(), "ARCHIVER_LIBRARY": str(tmp_path / "lib")}
    subprocess.run([sys.executable, "-m", "archiver", "add", "ccapi-suno", sim.add_task("ccapi-suno", clips=2)],
                   env=env, check=True, capture_output=True, timeout=120)
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(["sync", "--json"]),
                          json.dumps(["httpx", "rich", "pygments"])],
                         capture_output=True, text=True, env=env, check=True, timeout=120)
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert "httpx" in loaded, loaded  # the sync did poll
    assert not loaded & {"rich", "pygments"}, loaded


IMPORTER_PROBE = """
import json, sys, threading
args, watched = json.loads(sys.argv[1]), json.loads(sys.argv[2])
seen = {}
def hook(event, details):
    if event == "import" and details[0] in watched and details[0] not in seen:
        seen[details[0]] = threading.current_thread().name
sys.addaudithook(hook)
sys.argv = ["archiver", *args]
from archiver import cli
try:
    cli.main()
except SystemExit:
    pass
print(json.dumps(seen))
"""


@pytest.mark.parametrize("download", [True, False])
def test_a_sync_loads_the_download_side_in_a_thread_while_it_polls(sim: Any, tmp_path: Path, download: bool) -> None:
    """pycurl, mutagen and the rest of `archive` load beside the first poll, not before it; a sync
    that downloads nothing does not load them at all."""
    import os

    env = {**os.environ, **sim.env(), "ARCHIVER_LIBRARY": str(tmp_path / "lib")}
    task = sim.add_task("ccapi-suno", clips=1, steps=0)
    subprocess.run([sys.executable, "-m", "archiver", "add", "ccapi-suno", task],
                   env=env, check=True, capture_output=True, timeout=120)
    args = ["sync", "--json", *([] if download else ["--no-download"])]
    out = subprocess.run([sys.executable, "-c", IMPORTER_PROBE, json.dumps(args),
                          json.dumps(["archiver.download", "pycurl", "mutagen", "httpx"])],
                         capture_output=True, text=True, env=env, check=True, timeout=120)
    lines = out.stdout.strip().splitlines()
    report, importers = json.loads(lines[-2]), json.loads(lines[-1])
    assert report["tasks_polled"] == 1, report
    assert importers.get("httpx") == "MainThread", importers
    if download:
        assert report["files_downloaded"] == 2, report
        assert importers.get("archiver.download") == "archiver-preload", importers
        assert importers.get("pycurl") == importers.get("mutagen") == "archiver-preload", importers
    else:
        assert not {"archiver.download", "pycurl", "mutagen"} & set(importers), importers
