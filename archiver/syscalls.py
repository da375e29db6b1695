"""The kernel calls `fs` needs that Python's `os` has no name for, through ctypes.

Each is looked up once, and is None (or does nothing) where this system or its C library lacks
it; `fs` then takes its slower portable path. ctypes is imported here only, when one is first
asked for, so commands that never write media (an idle sync, the read commands) never load it.
"""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable

# fallocate(2) mode that shifts a file's data up from an offset by whole blocks (ext4, XFS).
_INSERT_RANGE = 0x20
# renameat2(2) and renamex_np(2) flags: fail with EEXIST rather than replace the target.
_RENAME_NOREPLACE, _RENAME_EXCL, _AT_FDCWD = 1, 4, -100
# sync_file_range(2) flag: start writing the range's dirty pages to disk, without waiting.
_SYNC_FILE_RANGE_WRITE = 2


@functools.cache
def libc() -> Any:
    """The C library (None where it cannot be loaded)."""
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True)
    except (OSError, TypeError):  # TypeError: Windows has no process-wide C library to name
        return None


@functools.cache
def insert_range() -> Callable[[int, int], int] | None:
    """fallocate(fd, FALLOC_FL_INSERT_RANGE, 0, n) on Linux: 0, or its errno."""
    import ctypes

    c = libc() if sys.platform.startswith("linux") else None
    if c is None:
        return None
    # fallocate64 takes 64-bit offsets everywhere; plain fallocate only where off_t is that wide.
    call = getattr(c, "fallocate64", None) or (getattr(c, "fallocate", None)
                                               if ctypes.sizeof(ctypes.c_long) == 8 else None)
    if call is None:
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    return lambda fd, length: 0 if call(fd, _INSERT_RANGE, 0, length) == 0 else ctypes.get_errno()


@functools.cache
def rename_noreplace() -> Callable[[bytes, bytes], int] | None:
    """The atomic rename that refuses an existing target (Linux's renameat2, macOS's
    renamex_np): 0, or the errno of its failure."""
    import ctypes

    c = libc()
    if c is None:
        return None
    if sys.platform.startswith("linux") and hasattr(c, "renameat2"):
        linux = c.renameat2
        linux.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        return lambda src, dst: 0 if linux(_AT_FDCWD, src, _AT_FDCWD, dst, _RENAME_NOREPLACE) == 0 \
            else ctypes.get_errno()
    if sys.platform == "darwin" and hasattr(c, "renamex_np"):
        mac = c.renamex_np
        mac.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint]
        return lambda src, dst: 0 if mac(src, dst, _RENAME_EXCL) == 0 else ctypes.get_errno()
    return None


@functools.cache
def start_writeback() -> Callable[[int], object] | None:
    """sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE) on Linux: the disk starts writing the
    file's dirty pages, and the call returns without waiting for them."""
    import ctypes

    c = libc() if sys.platform.startswith("linux") else None
    call = getattr(c, "sync_file_range", None) if c is not None else None
    if call is None:
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    return lambda fd: call(fd, 0, 0, _SYNC_FILE_RANGE_WRITE)
