"""The `archiver` command line: parse options, build a Config, call library code, map errors.

`group` holds the click group, `context` what commands share at run time, `options` the options
they share; the command modules import only those three and register on the group. Heavy
libraries (sqlalchemy, httpx, mutagen) are imported inside the commands that need them so that
`archiver --help` and `archiver --version` start fast.
"""

from __future__ import annotations

import gc

from . import library_cmds, maintenance, serve_cmds, sync_cmds  # noqa: F401  (each registers its commands)
from .group import cli


def main() -> None:
    try:
        cli(prog_name="archiver")
    finally:
        # Everything alive now lives until the process ends: frozen, the interpreter's last
        # collections skip it. They otherwise walk every object the libraries made (a quarter
        # of a second after a sync has printed its result); memory is the kernel's to free.
        gc.freeze()


__all__ = ["cli", "main"]
