"""The `archiver` command line: parse options, build a Config, call library code, map errors.

`group` holds the click group, `context` what commands share at run time, `options` the options
they share; the command modules import only those three and register on the group. Heavy
libraries (sqlalchemy, httpx, mutagen) are imported inside the commands that need them so that
`archiver --help` and `archiver --version` start fast.
"""

from __future__ import annotations

import gc
import os
import sys

from . import library_cmds, maintenance, serve_cmds, sync_cmds  # noqa: F401  (each registers its commands)
from .group import cli


def main() -> None:
    _standard_streams()
    try:
        cli(prog_name="archiver")
    finally:
        # Everything alive now lives until the process ends: frozen, the interpreter's last
        # collections skip it. They otherwise walk every object the libraries made (a quarter
        # of a second after a sync has printed its result); memory is the kernel's to free.
        gc.freeze()


def _standard_streams() -> None:
    """A command started with standard input, output or error closed (`archiver ls >&-`) would
    have the next file it opens (the database, a `.part`) take that descriptor, and its output
    land in that file. Each closed one is opened on /dev/null: the output is dropped, as Python
    drops it when it starts with that stream closed."""
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        try:
            os.fstat(fd)
            continue
        except OSError:
            pass
        null = os.open(os.devnull, os.O_RDONLY if fd == 0 else os.O_WRONLY)
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
        setattr(sys, name, open(fd, mode, encoding="utf-8", errors="backslashreplace", closefd=False))


__all__ = ["cli", "main"]
