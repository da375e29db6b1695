"""A provider is one class plus one registry line: a sixth one, defined only here, works end to end.

`Tunebox` states its facts (names, settings section, base URL, poll interval, batch size), builds
its requests, normalizes and detects its bodies and tells the simulator how to imitate it. The
fixture adds it to `archiver.providers.SOURCES` (the one registry line) and removes it after;
nothing else in the package is told about it. Then `add`, `sync` (against the simulator on
127.0.0.1, files downloaded), `tasks --source`, `config`, `import` and `demo` must know it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Iterator, Mapping, Sequence

import mutagen
import pytest

from archiver import providers
from archiver.errors import PayloadError
from archiver.providers.base import BaseSource, Request
from archiver.providers.simulated import SimCall, SimTask, UrlFor
from archiver.records import Status, TaskRecord, clip_from, text
from conftest import sync_json

PHASES = {"queued": Status.PENDING, "working": Status.RUNNING, "done": Status.SUCCEEDED, "broken": Status.FAILED}


class Tunebox(BaseSource):
    """A made-up batch API: `POST /v2/lookup {"refs": [...]}` -> `{"tunebox": [{"ref", "phase", "songs"}]}`."""

    name: ClassVar[str] = "tunebox"
    provider: ClassVar[str] = "tunebox"
    base_url: ClassVar[str] = "https://api.tunebox.example/"
    batch: ClassVar[bool] = True
    batch_size: ClassVar[int] = 3
    interval: ClassVar[float] = 7.0
    sim_audio: ClassVar[str] = "flac"
    sim_demo: ClassVar[tuple[str, ...]] = ("succeeded", "failed")

    def request_for(self, ids: Sequence[str]) -> Request:
        return Request("POST", "v2/lookup", json={"refs": list(ids)})

    def detect(self, payload: Any) -> bool:
        return isinstance(payload, Mapping) and isinstance(payload.get("tunebox"), list)

    def normalize(self, payload: Any, *, task_id: str | None = None) -> list[TaskRecord]:
        body = self._require_mapping(payload)
        if not isinstance(body.get("tunebox"), list):
            raise PayloadError(self.name, "no 'tunebox' list")
        records = []
        for item in body["tunebox"]:
            phase = text(item.get("phase")) or "?"
            songs = tuple(c for c in (clip_from(s) for s in item.get("songs") or []) if c is not None)
            status = PHASES.get(phase, Status.RUNNING)
            records.append(TaskRecord(self.name, str(item["ref"]), status, provider_status=phase,
                                      error=text(item.get("why")), clips=songs, raw=dict(item)))
        return records

    def sim_route(self, method: str, path: list[str], query: Mapping[str, str],
                  body: Mapping[str, Any]) -> SimCall | None:
        return SimCall(body.get("refs"), single=False) if (method, path) == ("POST", ["v2", "lookup"]) else None

    def sim_batch(self, records: list[Any]) -> Any:
        return {"tunebox": records}

    def sim_render(self, task: SimTask, url: UrlFor, weird: str | None) -> Any:
        stage, _ = task.stage()
        phase = weird or ("working" if stage is not None else "done" if task.succeeded else "broken")
        item: dict[str, Any] = {"ref": task.task_id, "phase": phase}
        if phase == "done":
            item["songs"] = [{"clip_id": c.clip_id, "title": c.title, "duration": c.duration,
                              "audio_url": url(c, c.audio_ext), "image_url": url(c, c.image_ext)}
                             for c in task.clips]
        elif phase == "broken":
            item["why"] = "the box jammed"
        return item


@pytest.fixture
def tunebox() -> Iterator[Tunebox]:
    """The registry line, undone after the test so no other test sees a sixth provider."""
    source = Tunebox()
    providers.SOURCES[source.name] = source
    try:
        yield source
    finally:
        del providers.SOURCES[source.name]


def cli_json(run: Any, *args: str) -> Any:
    result = run(*args, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_sixth_provider_adds_syncs_downloads_and_lists(tunebox: Tunebox, sim: Any, sim_cli: Any,
                                                       library: Path) -> None:
    done = [sim.add_task("tunebox", titles=[f"box song {n}a", f"box song {n}b"]) for n in range(4)]
    broken = sim.add_task("tunebox", outcome="failed")
    other = sim.add_task("acedata")
    added = sim_cli("add", "tunebox", *done, broken)
    assert added.exit_code == 0 and "5 new" in added.output, added.output
    assert sim_cli("add", "acedata", other).exit_code == 0

    code, summary = sync_json(sim_cli, "--source", "tunebox", "--until-done", "--interval", "0.05",
                              "--timeout", "60")
    assert code == 0 and summary["errors"] == [], summary

    calls = [r for r in sim.requests if r.target == "api" and r.provider == "tunebox"]
    assert calls and all(r.method == "POST" and r.path == "/tunebox/v2/lookup" for r in calls)
    sizes = [len(r.json["refs"]) for r in calls]
    assert max(sizes) == Tunebox.batch_size and sum(sizes[:2]) == 5, sizes  # the source's batch size
    assert not any(r.provider == "acedata" for r in sim.requests), "--source tunebox polled acedata"

    tasks = {t["task_id"]: t for t in cli_json(sim_cli, "tasks", "--source", "tunebox")}
    assert set(tasks) == {*done, broken}
    assert all(tasks[t]["status"] == "succeeded" for t in done)
    assert tasks[broken]["status"] == "failed" and "jammed" in tasks[broken]["error"]
    everything = {t["task_id"] for t in cli_json(sim_cli, "tasks")}
    assert other in everything and other not in tasks

    clips = [c for c in cli_json(sim_cli, "ls") if c["source"] == "tunebox"]
    assert sorted(c["title"] for c in clips) == sorted(f"box song {n}{s}" for n in range(4) for s in "ab")
    for clip in clips:  # the covers byte for byte, the audio a playable FLAC of the served length
        assert (library / clip["image_path"]).read_bytes() == sim.media_bytes(clip["image_url"])
        audio = library / clip["audio_path"]
        assert audio.suffix == ".flac" and audio.read_bytes()[:4] == b"fLaC", clip
        assert mutagen.File(audio).info.length == pytest.approx(clip["duration"], abs=0.05)


def test_sixth_provider_has_a_config_section_with_its_defaults(tunebox: Tunebox, run_cli: Any,
                                                              tmp_path: Path) -> None:
    shown = cli_json(run_cli, "config")["providers"]["tunebox"]
    assert shown["base_url"] == {"value": Tunebox.base_url, "from": "default"}
    assert shown["batch_size"] == {"value": Tunebox.batch_size, "from": "default"}
    table = run_cli("config")
    assert table.exit_code == 0 and "providers.tunebox.base_url" in table.output
    assert Tunebox.base_url in table.output

    cfg = tmp_path / "box.toml"
    cfg.write_text('[providers.tunebox]\nbase_url = "http://127.0.0.1:9/box/"\nbatch_size = 2\n')
    cfg.chmod(0o600)
    shown = cli_json(run_cli, "--config", str(cfg), "config")["providers"]["tunebox"]
    assert shown["base_url"]["value"] == "http://127.0.0.1:9/box/" and shown["batch_size"]["value"] == 2


def test_unregistered_provider_is_unknown_everywhere(run_cli: Any, tmp_path: Path) -> None:
    """The fixture's line is the only thing that makes `tunebox` known: without it, all refuse it."""
    assert "tunebox" not in providers.SOURCES
    assert run_cli("add", "tunebox", "x").exit_code == 2
    cfg = tmp_path / "box.toml"
    cfg.write_text("[providers.tunebox]\nbatch_size = 2\n")
    result = run_cli("--config", str(cfg), "config")
    assert result.exit_code != 0 and "providers.tunebox" in result.output


def test_import_detects_the_sixth_providers_bodies(tunebox: Tunebox, run_cli: Any, tmp_path: Path) -> None:
    saved = tmp_path / "box.json"
    saved.write_text(json.dumps({"tunebox": [{"ref": "box-1", "phase": "done", "songs": [
        {"clip_id": "c-1", "title": "Saved Song", "audio_url": "http://127.0.0.1:9/c-1.flac"}]}]}))
    result = run_cli("import", str(saved))
    assert result.exit_code == 0, result.output
    tasks = cli_json(run_cli, "tasks", "--source", "tunebox")
    assert [(t["task_id"], t["status"]) for t in tasks] == [("box-1", "succeeded")]


def test_demo_includes_the_sixth_provider(tunebox: Tunebox, run_cli: Any, tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    result = run_cli("demo", "--dir", str(folder))
    assert result.exit_code == 0, result.output
    assert "across 6 sources" in result.output
    box = [line for line in result.output.splitlines() if line.startswith("tunebox\t")]
    assert box and all(line.endswith(".flac") for line in box), result.output
    assert all((folder / line.split("\t")[-1]).is_file() for line in box)
