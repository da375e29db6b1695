"""A lost or damaged database is recreated from the archived files' tags: no clip is lost."""

from __future__ import annotations

import json
import shutil
from pathlib import Path


def snapshot(sim_cli) -> dict[str, dict]:
    result = sim_cli("ls", "--format", "json")
    assert result.exit_code == 0, result.output
    keep = ("source", "task_id", "clip_id", "title", "lyrics", "audio_path", "image_path", "model", "seed")
    return {c["clip_id"]: {k: c[k] for k in keep} | {"duration": round(c["duration"], 2)}
            for c in json.loads(result.output)}


def test_rebuild_after_loss_and_damage(sim, sim_cli, library: Path) -> None:
    for source in ("ccapi-suno", "ccapi-producer", "mountsea", "acedata", "aimusicapi"):
        sim_cli("add", source, sim.add_task(source, steps=0))
    assert sim_cli("sync", "--now").exit_code == 0
    before = snapshot(sim_cli)
    assert len(before) == 9

    refused = sim_cli("rebuild")
    assert refused.exit_code != 0 and "--force" in refused.output

    db = library / "archiver.db"
    for extra in library.glob("archiver.db-*"):
        extra.unlink()
    db.write_bytes(b"\x00garbage" * 512)
    damaged = sim_cli("ls")
    assert damaged.exit_code != 0 and "damaged" in damaged.output and "Traceback" not in damaged.output

    rebuilt = sim_cli("rebuild")
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "from 9 audio file(s)" in rebuilt.output
    assert list(library.glob("archiver.db.damaged-*"))  # kept, not deleted
    assert snapshot(sim_cli) == before
    assert sim_cli("verify").exit_code == 0
    assert sim_cli("sync", "--now", "--json").exit_code == 0  # nothing to fetch again
    assert snapshot(sim_cli) == before

    shutil.move(str(db), str(library.parent / "lost.db"))
    for extra in library.glob("archiver.db-*"):
        extra.unlink()
    assert sim_cli("rebuild").exit_code == 0
    assert snapshot(sim_cli) == before
