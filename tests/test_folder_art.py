"""Folder covers: a task's own folder gets `cover.<ext>`, written through fs, never over the
user's art, never through a link, never in a folder shared with another task."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import zlib
from pathlib import Path

import pytest

from archiver.folder_art import gives_task_folder, is_cover_name
from archiver.paths import DEFAULT_TEMPLATE
from archiver.simulator_media import StaticBlob
from archiver.testkit.library import sim_clips
from conftest import sync_now

TASK_FOLDERS = 'path_template = "{source}/{task_id}/{title} [{clip_id:.8}].{ext}"\n'


@pytest.mark.parametrize("template, own", [
    ("{source}/{task_id}/{title} [{clip_id:.8}].{ext}", True),
    ("{task_id}/{title}.{ext}", True),
    ("{source}/{created:%Y}/{task_id} - {style}/{title}.{ext}", True),
    ("{source}/{task_id!s}/{title}", True),
    (DEFAULT_TEMPLATE, False),
    ("{source}/{task_id:.8}/{title}.{ext}", False),  # a cut id may be shared by two tasks
    ("{source}/{task_id} {title}.{ext}", False),  # the id is in the file name only
    ("{source}/{created:%Y}/{title} [{task_id}].{ext}", False),
])
def test_which_templates_give_a_task_its_own_folder(template: str, own: bool) -> None:
    assert gives_task_folder(template) is own


def test_cover_names() -> None:
    assert all(is_cover_name(n) for n in ("cover.jpg", "Folder.PNG", "cover.jpeg", "folder.webp"))
    assert not any(is_cover_name(n) for n in ("cover.mp3", "covers.jpg", "album.jpg", "cover"))


def distinct(sim, source: str, task_id: str) -> str:
    """Give every clip of a task a cover of its own (the simulator serves one picture to all):
    a JPEG comment naming the clip, or a PNG text chunk after the header."""
    for clip in sim_clips(sim, source, task_id):
        data, mark = clip.image.data, clip.clip_id.encode()
        if clip.image_ext == "jpg":
            data = data[:2] + b"\xff\xfe" + (len(mark) + 2).to_bytes(2, "big") + mark + data[2:]
        else:
            chunk = b"tEXt" + b"clip\0" + mark
            data = data[:33] + (len(chunk) - 4).to_bytes(4, "big") + chunk + zlib.crc32(chunk).to_bytes(4, "big") \
                + data[33:]
        clip.image = StaticBlob(data, clip.image.content_type, None)
    return task_id


def first_covers(library: Path) -> dict[str, tuple[str, bytes]]:
    """Task id -> (its folder, the bytes of its first clip's cover), from the database."""
    con = sqlite3.connect(library / "archiver.db")
    rows = con.execute("""SELECT t.task_id, au.path, im.path FROM clips c JOIN tasks t ON t.id = c.task_pk
                          JOIN assets au ON au.clip_pk = c.id AND au.kind = 'audio'
                          JOIN assets im ON im.clip_pk = c.id AND im.kind = 'image' ORDER BY c.id""").fetchall()
    con.close()
    found: dict[str, tuple[str, bytes]] = {}
    for task_id, audio, image in rows:
        found.setdefault(task_id, (str(Path(audio).parent), (library / image).read_bytes()))
    return found


def add_and_sync(sim, sim_cli, ids: list[str], config: str, source: str = "acedata") -> None:
    assert sim_cli("add", source, *ids).exit_code == 0
    code, summary = sync_now(sim_cli, extra_config=config)
    assert code == 0, json.dumps(summary)


def verify(sim_cli, config: str) -> tuple[int, dict]:
    result = sim_cli("verify", "--json", extra_config=config)
    return result.exit_code, json.loads(result.output.strip().splitlines()[-1])


def test_each_task_folder_gets_its_first_clips_cover(sim, sim_cli, library: Path) -> None:
    ids = [distinct(sim, "acedata", sim.add_task("acedata", clips=2, steps=0)),
           distinct(sim, "acedata", sim.add_task("acedata", clips=3, steps=0, image_format="png"))]
    add_and_sync(sim, sim_cli, ids, TASK_FOLDERS)
    covers = first_covers(library)
    assert set(covers) == set(ids)
    for task_id, (folder, data) in covers.items():
        assert folder == f"acedata/{task_id}"
        ext = "png" if task_id == ids[1] else "jpg"
        assert [p.name for p in (library / folder).iterdir() if is_cover_name(p.name)] == [f"cover.{ext}"]
        assert (library / folder / f"cover.{ext}").read_bytes() == data
    assert len({data for _folder, data in covers.values()}) == 2
    assert not list(library.rglob("*.part"))
    assert verify(sim_cli, TASK_FOLDERS) == (0, {"checked": 10, "missing": [], "changed": [], "orphans": [],
                                                 "links": []})


def test_no_folder_cover_for_shared_folders_or_when_turned_off(sim, sim_cli, library: Path) -> None:
    add_and_sync(sim, sim_cli, [sim.add_task("acedata", clips=2, steps=0)], "")  # the default template
    off = sim.add_task("acedata", clips=2, steps=0)
    add_and_sync(sim, sim_cli, [off], TASK_FOLDERS + "folder_cover = false\n")
    assert (library / "acedata" / off).is_dir()
    assert [p for p in library.rglob("*") if is_cover_name(p.name)] == []


def test_the_users_folder_art_and_links_are_left_alone(sim, sim_cli, library: Path, tmp_path: Path) -> None:
    mine, linked, folder_jpg = (sim.add_task("acedata", clips=2, steps=0) for _ in range(3))
    (library / "acedata" / mine).mkdir(parents=True)
    (library / "acedata" / mine / "cover.jpg").write_bytes(b"\xff\xd8\xff my own art")
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(b"not the library's")
    (library / "acedata" / linked).mkdir()
    (library / "acedata" / linked / "cover.jpg").symlink_to(outside)
    (library / "acedata" / folder_jpg).mkdir()
    (library / "acedata" / folder_jpg / "Folder.jpg").write_bytes(b"\xff\xd8\xff scanned booklet")
    add_and_sync(sim, sim_cli, [mine, linked, folder_jpg], TASK_FOLDERS)
    assert (library / "acedata" / mine / "cover.jpg").read_bytes() == b"\xff\xd8\xff my own art"
    assert (library / "acedata" / linked / "cover.jpg").is_symlink() and outside.read_bytes() == b"not the library's"
    assert sorted(p.name for p in (library / "acedata" / folder_jpg).iterdir() if is_cover_name(p.name)) == \
        ["Folder.jpg"]
    code, report = verify(sim_cli, TASK_FOLDERS)  # the user's art is listed, not damage
    assert code == 0
    assert report["orphans"] == sorted([f"acedata/{mine}/cover.jpg", f"acedata/{linked}/cover.jpg",
                                        f"acedata/{folder_jpg}/Folder.jpg"])


def test_a_cover_of_ours_is_brought_up_to_date(sim, sim_cli, library: Path) -> None:
    first, second = (distinct(sim, "acedata", sim.add_task("acedata", clips=2, steps=0)) for _ in range(2))
    add_and_sync(sim, sim_cli, [first, second], TASK_FOLDERS)
    covers = first_covers(library)
    target = library / covers[first][0] / "cover.jpg"
    target.write_bytes(covers[second][1])  # archiver's bytes (another task's cover), but not this task's
    con = sqlite3.connect(library / "archiver.db")
    (audio,) = con.execute("""SELECT au.path FROM assets au JOIN clips c ON c.id = au.clip_pk
                              JOIN tasks t ON t.id = c.task_pk
                              WHERE t.task_id = ? AND au.kind = 'audio' ORDER BY c.id LIMIT 1""", (first,)).fetchone()
    con.close()
    (library / audio).unlink()  # the repair's run touches this task again
    repaired = sim_cli("verify", "--repair", extra_config=TASK_FOLDERS)
    assert repaired.exit_code == 0, repaired.output
    assert target.read_bytes() == covers[first][1]
    assert verify(sim_cli, TASK_FOLDERS)[1]["orphans"] == []


def test_a_folder_shared_with_another_task_gets_no_cover(sim, sim_cli, library: Path) -> None:
    """The database is the last word: a folder holding another task's files is not this task's."""
    first = sim.add_task("acedata", clips=1, steps=0)
    add_and_sync(sim, sim_cli, [first], "")
    con = sqlite3.connect(library / "archiver.db")
    (audio,) = con.execute("SELECT path FROM assets WHERE kind = 'audio'").fetchone()
    con.close()
    folder = Path(audio).parent.as_posix()
    # a template naming folders by a fixed text plus the task id: this task's folder is the old one
    template = f'path_template = "{folder.split("/")[0]}/{{task_id}}/{{title}} [{{clip_id:.8}}].{{ext}}"\n'
    second = sim.add_task("acedata", task_id=folder.split("/")[1], clips=1, steps=0)
    add_and_sync(sim, sim_cli, [second], template)
    assert [p for p in library.rglob("*") if is_cover_name(p.name)] == []


def test_a_clip_titled_cover_keeps_its_own_archived_cover(sim, sim_cli, library: Path) -> None:
    config = 'path_template = "{source}/{task_id}/{title}.{ext}"\n'
    task = distinct(sim, "acedata", sim.add_task("acedata", clips=2, steps=0, titles=["Alpha", "cover"]))
    add_and_sync(sim, sim_cli, [task], config)
    con = sqlite3.connect(library / "archiver.db")
    (path, digest), = con.execute("""SELECT a.path, a.sha256 FROM assets a JOIN clips c ON c.id = a.clip_pk
                                     WHERE c.title = 'cover' AND a.kind = 'image'""").fetchall()
    con.close()
    assert path == f"acedata/{task}/cover.jpg"
    assert hashlib.sha256((library / path).read_bytes()).hexdigest() == digest
    code, summary = sync_now(sim_cli, extra_config=config)  # a second run leaves it alone too
    assert code == 0 and hashlib.sha256((library / path).read_bytes()).hexdigest() == digest
    assert verify(sim_cli, config)[0] == 0
