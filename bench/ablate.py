"""`archiver sync` with parts of its per-file work switched off: a diagnostic, not a user mode.

    python bench/ablate.py WHAT ARCHIVER-ARGS...     # WHAT: nofsync | nofsync-notag

run.py times it beside the real `archiver sync` (item 1) to show what durability (the fsync of
each file and of its folder after the rename) and tagging (building an MP3's tags as it arrives,
tagging any other file in place) cost on this machine. Everything else
is the installed code, unchanged.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> None:
    what, args = argv[0], argv[1:]
    import archiver.download as download
    import archiver.finishing as finishing
    import archiver.fs as fs

    if what not in ("nofsync", "nofsync-notag"):
        raise SystemExit(f"unknown ablation {what!r}")
    patched = [(download, "fsync_fd"), (download, "start_writeback"), (finishing, "sync_file"), (fs, "fsync_path"),
               (fs, "fsync_fd")] + (
        [(finishing, "tag_file"), (finishing, "id3_prelude")] if what == "nofsync-notag" else [])
    gone = [f"{module.__name__}.{name}" for module, name in patched if not hasattr(module, name)]
    if gone:  # patching a name the code no longer calls would measure nothing, silently
        raise SystemExit(f"ablation {what!r} no longer applies: the code has no {', '.join(gone)}")
    finishing.sync_file = lambda part: None
    fs.fsync_path = lambda path: None  # the directory fsync after each rename
    fs.fsync_fd = download.fsync_fd = lambda fd: None  # an MP3 written tags first; a cover as it lands
    download.start_writeback = lambda fd: None  # nor is the disk asked to start early
    if what == "nofsync-notag":
        from archiver.tagging import TagOutcome

        finishing.tag_file = lambda *a, **k: TagOutcome(format="mp3", tagged=True)
        # an MP3 keeps the source's own tag in front: written once as usual, with no tags built
        finishing.id3_prelude = lambda lead, extent, *a, **k: (lead[:extent], TagOutcome(format="mp3", tagged=True))
    from archiver.cli import cli

    cli(args, prog_name="archiver")


if __name__ == "__main__":
    main(sys.argv[1:])
