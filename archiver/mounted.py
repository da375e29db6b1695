"""Whether the library is there at all: an unmounted disk is not an empty library to refill.

Its own small module so that `sync` can ask before polling without loading the download side
(`archive` and its libraries), which then loads in a thread while the poll waits on the network.
"""

from __future__ import annotations

from pathlib import Path

from .errors import LibraryAbsent
from .fs import holds_a_file


def check_present(root: Path, recorded: int, on_disk: set[str] | None = None) -> None:
    """Refuse to work on a library whose `recorded` files (how many the database says are archived)
    are all gone (an unmounted disk, a wrong `--library`): re-fetching them would fail on expired
    links and mark every song failed."""
    if not recorded or (holds_a_file(root) if on_disk is None else on_disk):
        return
    state = "missing" if not root.exists() else "empty"
    raise LibraryAbsent(
        f"the library {root} is {state} but the database records {recorded} file(s) in it; "
        "is its disk mounted? Nothing was changed. To fetch them all again on purpose, run "
        "`archiver verify --repair`")
