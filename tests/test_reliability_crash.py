"""Issue #7, part 2: a sync killed with SIGKILL at any moment loses nothing.

Each sync runs as `python -m archiver sync` in a subprocess (the simulator stays in this process).
Kills alternate between armed points, which provably land in one phase (database commit, mid
download, mid tagging, before and after the rename), and random moments after the run starts
talking to the simulator. After the kills, one clean sync must leave every file present once,
audio identical to the source, the database intact, no `.part` and no duplicate row. On a
PostgreSQL catalog the same holds, and a killed worker's claims are taken over by the next run
once their (short) lease lapses. The long version (20+ kills) is `bench/torture.py`.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import pytest
from mutagen.id3 import ID3, TIT2
from archiver.testkit import (
    KILL_POINTS,
    SYNC_ARGS,
    Lib,
    Loopback,
    check_library,
    crash_loop,
    point_kill,
    populate,
    spawn,
    strip_id3,
)

from archiver.simulator import Simulator

KILLS = int(os.environ.get("ARCHIVER_TORTURE_KILLS", "6"))
MEDIA = Path(__file__).parents[1] / "archiver" / "data" / "media"


def clean_sync(lib: Lib) -> tuple[int, str]:
    proc = spawn(lib, *SYNC_ARGS)
    _out, err = proc.communicate(timeout=300)
    return proc.returncode, err


def test_sigkill_at_random_moments_then_one_clean_sync(tmp_path: Path, pg_catalog: str | None) -> None:
    rng = random.Random(int(os.environ.get("ARCHIVER_TORTURE_SEED", "11")))
    with Simulator(seed=rng.randrange(1 << 30)) as sim:
        lib = Lib.create(sim, tmp_path / "crash", "connect_timeout = 2\nread_timeout = 2\n", pg_catalog)
        plan = populate(lib, rounds=4, rng=rng)
        kills = crash_loop(lib, plan, rng, KILLS)
        assert len(kills) >= KILLS and all(k.killed for k in kills)
        armed = {k.how for k in kills} & set(KILL_POINTS)
        assert len(armed) >= min(2, KILLS // 2) and any(k.how == "timed" for k in kills), kills
        assert not [k.stderr for k in kills if "Traceback" in k.stderr]
        code, err = clean_sync(lib)
        assert code == 0, err
        figures = check_library(lib, plan)
        assert figures.problems == []
        assert figures.clips >= 50 and figures.files >= 90


def padded_mp3(path: Path) -> bytes:
    """An MP3 whose encoder left a 200 kB padded ID3 tag: archiver's tags make it smaller."""
    shutil.copyfile(MEDIA / "sample.mp3", path)
    tags = ID3(path)
    tags.add(TIT2(encoding=3, text="from the encoder"))
    tags.save(path, padding=lambda _info: 200_000)
    return path.read_bytes()


@pytest.mark.parametrize("engine, point, nth", [
    ("sqlite", "before-rename", 2), ("sqlite", "mid-tag", 1), ("sqlite", "after-rename", 2),
    ("postgresql", "mid-tag", 1),  # the tagged `.part` again, under a claim the next run takes over
], indirect=["engine"])
def test_kill_around_tagging_never_resumes_into_a_tagged_file(tmp_path: Path, pg_catalog: str | None, point: str,
                                                             nth: int) -> None:
    """A `.part` already tagged is not a prefix of the source: resuming it with Range would splice
    the source's tail onto our tags and archive a corrupt song with a valid checksum."""
    source = padded_mp3(tmp_path / "source.mp3")
    with Simulator() as sim, Loopback() as loop:
        loop.routes["/song.mp3"] = lambda h: h.file(source, "audio/mpeg")
        loop.routes["/cover.jpg"] = lambda h: h.file((MEDIA / "cover.jpg").read_bytes(), "image/jpeg")
        lib = Lib.create(sim, tmp_path / "lib", "connect_timeout = 2\nread_timeout = 2\n", pg_catalog)
        body = tmp_path / "body.json"
        body.write_text(json.dumps({"code": 200, "data": [
            {"clip_id": "clip-padded", "title": "Padded", "state": "succeeded", "duration": 4.0,
             "audio_url": loop.url("/song.mp3"), "image_url": loop.url("/cover.jpg")}]}), encoding="utf-8")
        assert lib.cli("import", "--task-id", "t-padded", str(body)).exit_code == 0
        assert point_kill(lib, point, nth).killed  # the cover is renamed first, the audio second
        code, err = clean_sync(lib)
        assert code == 0, err
        (row,) = lib.query("SELECT a.path, a.size, a.sha256 FROM assets a WHERE a.kind = 'audio'")
        data = (lib.root / row["path"]).read_bytes()
        assert strip_id3(data) == strip_id3(source)
        assert len(data) == row["size"] and lib.integrity() == "ok"
        assert not list(lib.root.rglob("*.part"))
        assert sorted(p.suffix for p in lib.root.rglob("*") if p.is_file() and "Padded" in p.name) == [".jpg", ".mp3"]
