"""Files the user names for a command's output (`export -o`): written into or replaced whole.

Unlike the library's files these are the user's: a device or a descriptor is the user's choice
of destination and is written into, a regular file is replaced atomically, and nothing is
refused but what would destroy something (a block device, a link to a regular file).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from .errors import UnsafePath
from .fs import atomic_write


def streams_into(path: Path) -> bool:
    """Whether a file the user named for a command's output is written into rather than replaced:
    anything but a regular file (a terminal, a FIFO, /dev/null: replacing it would destroy it), and
    a name leading through links to a descriptor (/dev/stdout, /proc/self/fd/1: the shell's target,
    whatever it is). A block device is refused; a regular file gets `atomic_write`."""
    current = str(path)
    for _hop in range(40):
        if current.startswith(("/dev/fd/", "/proc/")) or current in ("/dev/stdout", "/dev/stderr"):
            return True
        if not os.path.islink(current):
            break
        current = os.path.join(os.path.dirname(current), os.readlink(current))
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return False
    if stat.S_ISBLK(mode):
        raise UnsafePath(f"refusing to write over the block device {path}")
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    return not stat.S_ISREG(mode)


def write_output(path: Path, data: bytes, *, into: bool) -> None:
    """`data` as the whole of a user-named output: written `into` it (see `streams_into`), or
    atomically, so a reader never sees half a playlist (a link to a regular file is refused)."""
    if into:
        with open(path, "wb") as fh:
            fh.write(data)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, data)
