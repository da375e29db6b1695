"""`archiver verify` over a real synced library: exit 1 is damage to archived files only; the
user's own files are none of its business; orphan media is listed without failing."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from conftest import sync_now


def archived(library: Path) -> list[tuple[str, str]]:
    con = sqlite3.connect(library / "archiver.db")
    try:
        return [(kind, path) for kind, path in con.execute(
            "SELECT kind, path FROM assets WHERE state = 'downloaded' ORDER BY id")]
    finally:
        con.close()


def synced(sim, sim_cli, library: Path, tasks: int = 1) -> list[tuple[str, str]]:
    ids = [sim.add_task("acedata", clips=2, steps=0) for _ in range(tasks)]
    assert sim_cli("add", "acedata", *ids).exit_code == 0
    assert sync_now(sim_cli)[0] == 0
    return archived(library)


def verify_json(sim_cli) -> tuple[int, dict]:
    result = sim_cli("verify", "--json")
    return result.exit_code, json.loads(result.output.strip().splitlines()[-1])


def test_a_playlist_saved_in_the_library_is_not_an_orphan(sim, sim_cli, library: Path) -> None:
    synced(sim, sim_cli, library)
    exported = sim_cli("export", "m3u", "-o", str(library / "all.m3u"))
    assert exported.exit_code == 0, exported.output
    assert (library / "all.m3u").read_text(encoding="utf-8").startswith("#EXTM3U")
    (library / "notes").mkdir()
    (library / "notes" / "todo.txt").write_text("listen again\n", encoding="utf-8")
    (library / "notes" / "README").write_bytes(b"plain words, no media\n")
    (library / "playlists.json").write_text("[]", encoding="utf-8")
    result = sim_cli("verify")
    assert result.exit_code == 0, result.output
    assert "orphan" not in result.output.replace("0 orphan(s)", "")
    assert "0 missing, 0 changed, 0 orphan(s)" in result.output
    code, report = verify_json(sim_cli)
    assert code == 0 and report["orphans"] == [] and report["checked"] == 4


def test_orphan_media_is_listed_but_is_not_damage(sim, sim_cli, library: Path, tmp_path: Path) -> None:
    files = synced(sim, sim_cli, library)
    audio = next(path for kind, path in files if kind == "audio")
    cover = next(path for kind, path in files if kind == "image")
    song = (library / audio).read_bytes()
    (library / "kept.mp3").write_bytes(song)  # media by its extension, even if it were not
    (library / "drafts").mkdir()
    (library / "drafts" / "untitled").write_bytes(song)  # no extension: media by its first bytes
    (library / "drafts" / "scan.PNG").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 32)
    (library / "drafts" / "cover.jpg").write_bytes((library / cover).read_bytes()[:-1])  # someone's art
    (library / "drafts" / "lyrics.txt").write_bytes(song[:64])  # sniffs as mp3, but named text: sniffed
    outside = tmp_path / "elsewhere.mp3"
    outside.write_bytes(song)
    (library / "linked.mp3").symlink_to(outside)  # listed, never followed
    (library / "linked.txt").symlink_to(outside)  # not media by name; links are never read
    expected = ["drafts/cover.jpg", "drafts/lyrics.txt", "drafts/scan.PNG", "drafts/untitled", "kept.mp3",
                "linked.mp3"]
    code, report = verify_json(sim_cli)
    assert code == 0, report
    assert report["orphans"] == expected
    assert report["missing"] == report["changed"] == report["links"] == []
    text = sim_cli("verify")
    assert text.exit_code == 0
    assert [line for line in text.output.splitlines() if line.startswith("orphan: ")] == \
        [f"orphan: {path}" for path in expected]
    assert "6 orphan(s)" in text.output


def test_exit_1_means_an_archived_file_is_missing_or_changed(sim, sim_cli, library: Path) -> None:
    files = synced(sim, sim_cli, library)
    (library / "all.m3u").write_text("#EXTM3U\n", encoding="utf-8")
    (library / "stray.mp3").write_bytes(b"ID3" + b"\0" * 64)
    cover = next(path for kind, path in files if kind == "image")
    audio = next(path for kind, path in files if kind == "audio")
    data = (library / cover).read_bytes()
    (library / cover).write_bytes(data[:-4] + b"XXXX")
    (library / audio).unlink()
    code, report = verify_json(sim_cli)
    assert code == 1
    assert report["changed"] == [cover] and report["missing"] == [audio]
    assert report["orphans"] == ["stray.mp3"]
    repaired = sim_cli("verify", "--repair")
    assert repaired.exit_code == 0, repaired.output  # an orphan left behind is not a failed repair
    assert (library / cover).read_bytes() == data and (library / audio).is_file()
    code, report = verify_json(sim_cli)
    assert code == 0 and report["orphans"] == ["stray.mp3"]
    assert (library / "all.m3u").read_text(encoding="utf-8") == "#EXTM3U\n"


def test_an_orphan_name_is_printed_as_inert_text(sim, sim_cli, library: Path) -> None:
    synced(sim, sim_cli, library)
    (library / "evil\x1b[2Jname\n.mp3").write_bytes(b"ID3" + b"\0" * 64)
    result = sim_cli("verify")
    assert result.exit_code == 0
    (line,) = [line for line in result.output.splitlines() if line.startswith("orphan: ")]
    assert "\x1b" not in result.output and line.endswith(".mp3")
