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


def test_a_rebuild_stopped_at_any_step_leaves_the_database_it_had(sim, sim_cli, library: Path,
                                                                  monkeypatch) -> None:
    """Ctrl-C while the files are read, or while the new database is written: the old database
    stays in place, and the next rebuild starts over from the files."""
    import pytest

    from archiver import rebuild as rebuild_module
    from archiver.store import Store

    for source in ("mountsea", "acedata"):
        sim_cli("add", source, sim.add_task(source, steps=0))
    assert sim_cli("sync", "--now").exit_code == 0
    before = snapshot(sim_cli)
    db = library / "archiver.db"

    def stop(*_args, **_kwargs):
        raise KeyboardInterrupt

    for target, name in ((rebuild_module, "sha256_file"), (Store, "apply"), (rebuild_module.os, "replace")):
        with monkeypatch.context() as patch:
            patch.setattr(target, name, stop)
            with pytest.raises(KeyboardInterrupt):
                rebuild_module.rebuild(library, f"sqlite:///{db}", force=True)
        assert snapshot(sim_cli) == before, name
        assert bool(list(library.glob("archiver.db.damaged-*"))) == (name == "replace"), name
    assert (library / "archiver.db.rebuilding").exists()  # what the stopped write left: not the database
    assert sim_cli("sync", "--now", "--json").exit_code == 0  # not a file of the library either

    rebuilt = sim_cli("rebuild", "--force")
    assert rebuilt.exit_code == 0, rebuilt.output
    assert snapshot(sim_cli) == before
    assert not list(library.glob("archiver.db.rebuilding*"))


def test_a_stale_wal_beside_the_database_never_joins_the_rebuilt_one(sim, sim_cli, library: Path) -> None:
    """The WAL of a lost database, left beside it, would be replayed into a new file renamed to
    its name: it is kept with the old database's copy instead."""
    import sqlite3

    for source in ("mountsea", "acedata"):
        sim_cli("add", source, sim.add_task(source, steps=0))
    assert sim_cli("sync", "--now").exit_code == 0
    before = snapshot(sim_cli)
    db = library / "archiver.db"
    holder = sqlite3.connect(db)  # a reader keeps the WAL from being checkpointed away
    holder.execute("SELECT count(*) FROM clips").fetchone()
    writer = sqlite3.connect(db)
    with writer:
        writer.execute("UPDATE clips SET title = title || ' (edited)'")
    stale = (library / "archiver.db-wal").read_bytes()
    writer.close()
    holder.close()
    assert len(stale) > 0
    db.unlink()
    for extra in library.glob("archiver.db-*"):
        extra.unlink()
    (library / "archiver.db-wal").write_bytes(stale)  # what a crash can leave: a WAL without its database

    assert sim_cli("rebuild").exit_code == 0
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    assert snapshot(sim_cli) == before
    kept = list(library.glob("archiver.db.damaged-*-wal"))
    assert len(kept) == 1 and kept[0].read_bytes() == stale
