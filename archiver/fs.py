"""File-system primitives every write into the library goes through.

A hostile provider names files and a careless user (or another program) may have planted a
symbolic link where archiver is about to write. Temporary files are therefore created with
``O_CREAT | O_EXCL | O_NOFOLLOW`` (a link or a stranger's file is never opened for writing),
resumed ``.part`` files are opened with ``O_NOFOLLOW`` and must be regular files, reads of
archived files refuse links too, and a finished file reaches its final name only through
`place`, which never replaces a path the library does not own.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO, Callable, Iterable

from . import syscalls
from .errors import PartGone, StorageError, UnsafePath

PART = ".part"
# A verified download being tagged, named from the stem (names leave room for 5 more bytes
# only) with a character no URL-guessed extension has: never resumed, only removed.
TAGGING = ".~tag.part"
LOCK_NAME = ".archiver.lock"  # see `archiver.lock`
STAMP_NAME = ".archiver.stamp"  # see `archiver.dirstamp`
SKIP_NAMES = frozenset({LOCK_NAME, STAMP_NAME, STAMP_NAME + PART})
DB_NAME = "archiver.db"
DB_SUFFIXES = ("", "-wal", "-shm", "-journal")
REBUILDING = ".rebuilding"  # the database `rebuild` writes beside the old one, then renames over it
HASH_BLOCK = 1024 * 1024
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG})

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_BINARY = getattr(os, "O_BINARY", 0)


def _refused(path: Path, exc: OSError) -> UnsafePath:
    return UnsafePath(f"refusing to write through a symbolic link or special file at {path} "
                      f"({os.strerror(exc.errno) if exc.errno else exc})")


def new_fd(path: str | os.PathLike[str], _flags: int = 0) -> int:
    """A descriptor for a new file at `path`, opened for writing; whatever sat there before (a
    stale temporary file of ours, or a planted link) is unlinked first, never written through.

    Usable as ``open(..., opener=new_fd)`` (the flags open() asks for are replaced by ours).
    """
    try:
        if stat.S_ISDIR(os.lstat(path).st_mode):
            raise UnsafePath(f"refusing to replace a directory with a file: {os.fspath(path)}")
        os.unlink(path)  # removes a link itself, never its target
    except FileNotFoundError:
        pass
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC | _BINARY
    try:
        return os.open(path, flags, 0o644)
    except FileExistsError as exc:  # something appeared between the unlink and the open
        raise _refused(Path(path), exc) from None


def _regular_fd(path: str | os.PathLike[str], flags: int, link_error: Callable[[OSError], UnsafePath],
                verb: str, dir_fd: int | None = None) -> int:
    """A descriptor on an existing regular file, opened without following a final link (and
    without blocking: opening a FIFO waits for a writer, so the type is checked on the descriptor)."""
    try:
        fd = os.open(path, flags | _NOFOLLOW | _CLOEXEC | _BINARY | _NONBLOCK, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK):
            raise link_error(exc) from None
        if exc.errno == errno.ENXIO:  # a FIFO nobody reads, opened for writing
            raise UnsafePath(f"refusing to {verb} {os.fspath(path)}: not a regular file") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafePath(f"refusing to {verb} {os.fspath(path)}: not a regular file")
    if _NONBLOCK:
        os.set_blocking(fd, True)
    return fd


def read_fd_beneath(root: str | os.PathLike[str], relative: str) -> int:
    """`read_fd` of `relative` (a POSIX path) under `root`, each folder on the way opened from the
    one before without following a link: a folder swapped for a link while this runs is refused,
    not followed out of the library (a check of the path, then an open of it, could be raced)."""
    names = relative.split("/")
    if not relative or relative.startswith("/") or any(n in ("", ".", "..") for n in names):
        raise UnsafePath(f"refusing to read {relative!r}: not a path inside the library")
    folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC)
    try:
        for name in names[:-1]:
            try:
                inner = os.open(name, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW | _CLOEXEC, dir_fd=folder)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise UnsafePath(f"refusing to read {relative!r}: {name!r} is not a folder of the library"
                                     ) from None
                raise
            os.close(folder)
            folder = inner
        return _regular_fd(names[-1], os.O_RDONLY, lambda _exc: UnsafePath(
            f"refusing to read {relative!r}: it is a symbolic link"), "read", dir_fd=folder)
    finally:
        os.close(folder)


def append_fd(path: str | os.PathLike[str], _flags: int = 0) -> int:
    """A descriptor appending to an existing regular file (a resumed download); links refused."""
    return _regular_fd(path, os.O_WRONLY | os.O_APPEND, lambda exc: _refused(Path(path), exc), "write to")


def create_new(path: Path) -> BinaryIO:
    """`new_fd` as a file object."""
    return os.fdopen(new_fd(path), "wb")


def read_fd(path: str | os.PathLike[str], _flags: int = 0) -> int:
    """A descriptor reading a regular file, refusing a link (it could point out of the library)."""
    return _regular_fd(path, os.O_RDONLY,
                       lambda _exc: UnsafePath(f"refusing to read {os.fspath(path)}: it is a symbolic link"), "read")


def open_read(path: Path) -> BinaryIO:
    """`read_fd` as a file object."""
    return os.fdopen(read_fd(path), "rb")


def regular_size(path: Path) -> int | None:
    """Size of a `.part` file to resume (None when there is none); a link is UnsafePath.

    One that is also another name (`rename_new` linked it into place and died before unlinking
    it) is removed, never resumed: appending to it would write into the placed file.
    """
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(info.st_mode):
        raise UnsafePath(f"refusing to resume {path}: it is a symbolic link or special file")
    if info.st_nlink > 1:
        os.unlink(path)
        return None
    return info.st_size


def is_link(path: Path) -> bool:
    return os.path.islink(path)


def fsync_fd(fd: int) -> None:
    """The one fsync every durable write here ends with."""
    os.fsync(fd)


def start_writeback(fd: int) -> None:
    """Have the disk start writing what was written to `fd` and return at once (Linux; elsewhere
    nothing): work on the file before its fsync (hashing, tagging) then overlaps the disk's, and
    the fsync finds little left to wait for. A failure is the fsync's to report."""
    call = syscalls.start_writeback()
    if call is not None:
        call(fd)


def fsync_path(path: Path) -> None:
    """fsync a file or directory by name (a directory's fsync makes a rename in it durable)."""
    flags = os.O_RDONLY | _CLOEXEC | (0 if os.path.isdir(path) else _NOFOLLOW)
    fd = os.open(path, flags)
    try:
        fsync_fd(fd)
    finally:
        os.close(fd)


def sha256_file(path: Path) -> tuple[int, str]:
    """(size, hex sha256) of a regular file, read without following a link."""
    import hashlib  # OpenSSL's loading is a good part of an idle sync's start-up, which hashes nothing

    digest = hashlib.sha256()
    size = 0
    with open_read(path) as fh:
        while block := fh.read(HASH_BLOCK):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def write_all(fd: int, data: bytes, at: int | None = None) -> None:
    """Write all of `data` at the file's position (or at offset `at`): a regular file takes it in
    one call; a short write just goes on."""
    view, done = memoryview(data), 0
    while done < len(data):
        done += os.write(fd, view[done:]) if at is None else os.pwrite(fd, view[done:], at + done)


def write_joined(path: Path, head: bytes, source: Path, offset: int) -> int:
    """A new file at `path` holding `head` then `source` from `offset` on, fsynced; its size.

    The kernel copies the tail (copy_file_range), so the bytes never pass through Python.
    """
    with open_read(source) as src:
        fd = new_fd(path)
        try:
            write_all(fd, head)
            left = os.fstat(src.fileno()).st_size - offset
            size = len(head) + max(0, left)
            copy_range = getattr(os, "copy_file_range", None)  # Linux only
            while left > 0:
                if copy_range is not None:
                    try:
                        moved = copy_range(src.fileno(), fd, left, offset)
                    except OSError as exc:  # a file system or kernel without it: copy through a buffer
                        if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                            raise
                        copy_range = None
                        continue
                else:
                    src.seek(offset)
                    block = src.read(min(left, HASH_BLOCK))
                    moved = os.write(fd, block) if block else 0
                if moved == 0:
                    raise OSError(errno.EIO, f"{source} ended before its recorded size")
                offset, left = offset + moved, left - moved
            fsync_fd(fd)
        finally:
            os.close(fd)
    return size


GRAFT_MAX_BLOCK = 64 * 1024  # a file system with bigger blocks pads each tag too much: copy instead
# What a system or file system lacking a call (fallocate's insert, an atomic no-replace rename,
# hard links) answers.
_UNSUPPORTED = frozenset({errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM, errno.EMLINK})


def block_size(fd: int) -> int:
    """The file system's block: what `graft` can insert in front of a file, a multiple of it
    (0 where the system cannot say, or its blocks are too big to pad a tag to: no graft then)."""
    try:
        block = os.fstatvfs(fd).f_bsize
    except (OSError, AttributeError):  # AttributeError: a system without fstatvfs
        return 0
    return block if 0 < block <= GRAFT_MAX_BLOCK else 0


def graft(path: Path, head: bytes, skip: int) -> int | None:
    """Make the file at `path` start with `head` in place of its first `skip` bytes, fsynced;
    its new size. The file system moves the rest by whole blocks (no byte of it is copied), so
    `len(head) - skip` must be 0 or a multiple of the block. None, the file untouched, where
    the system or file system cannot do that; any other failure may leave it half done.
    """
    grow = len(head) - skip
    fd = _regular_fd(path, os.O_RDWR, lambda exc: _refused(path, exc), "write to")
    try:
        if grow:
            insert = syscalls.insert_range()
            block = block_size(fd)
            if insert is None or not block or grow < 0 or grow % block:
                return None
            before = os.fstat(fd).st_size
            failure = errno.EINTR
            while failure == errno.EINTR:  # ctypes does not retry an interrupted call as `os` does
                failure = insert(fd, grow)
            if failure in _UNSUPPORTED:
                return None
            if failure:
                raise OSError(failure, os.strerror(failure), os.fspath(path))
            after = os.fstat(fd).st_size
            if after != before + grow:  # a file system that said yes and did not (or did otherwise)
                if after == before:
                    return None
                raise OSError(errno.EIO, f"inserting {grow} bytes made {before} bytes {after}", os.fspath(path))
        write_all(fd, head, at=0)
        fsync_fd(fd)
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def read_bytes(path: Path) -> bytes:
    with open_read(path) as fh:
        return fh.read()


def storage_error(exc: OSError, path: Path) -> StorageError:
    """A full disk (or a read-only or failing one) as the error that stops every download."""
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    return StorageError(f"cannot write {path}: {reason}; downloads stopped (nothing half-written was recorded)")


def sync_file(part: Path) -> None:
    """Make a finished temporary file durable, after its last write and just before `place`
    (tagging rewrites audio: syncing when the transfer ends would write it to the disk twice)."""
    try:
        fsync_path(part)
    except OSError as exc:
        if exc.errno in STORAGE_ERRNOS:
            part.unlink(missing_ok=True)  # never resume from bytes the disk refused to keep
            raise storage_error(exc, part) from None
        raise


def place(part: Path, final: Path, *, owned: bool, durable: bool = True) -> None:
    """Move a finished temporary file to its final name and make the rename durable (with
    `durable` False the caller fsyncs the folder later, once for many files: `fsync_dirs`).

    `owned` says the database records `final` as this very file (a repair or a retag): only
    then may something already there be replaced. Anything else at `final` (a user's file, a
    file of another clip after a database loss, a link, one another fleet worker placed a moment
    ago) is never overwritten: the rename itself refuses an existing name (`rename_new`).
    """
    if os.path.lexists(final) and (not owned or os.path.islink(final)):
        raise _occupied(final)
    try:
        try:
            (os.replace if owned else rename_new)(part, final)
        except FileExistsError:
            raise _occupied(final) from None
        except FileNotFoundError:
            if os.path.lexists(part):
                raise
            raise part_gone(part) from None
        if durable:
            fsync_path(final.parent)
    except OSError as exc:
        if exc.errno in STORAGE_ERRNOS:
            raise storage_error(exc, final) from None
        raise


def _occupied(final: Path) -> UnsafePath:
    what = "a symbolic link" if os.path.islink(final) else "a file archiver does not own"
    return UnsafePath(f"refusing to replace {what} at {final}")


def part_gone(part: Path) -> PartGone:
    """A temporary file removed before it was placed: cleared by another fleet worker while this
    one was stalled past its lease (claims.Fleet.clear_parts), or removed by hand."""
    return PartGone(f"its temporary file {part.name} was removed before it was placed (a worker stalled "
                    "past its lease has its temporary files cleared by the others); will retry")


def removed_part(exc: BaseException) -> PartGone | None:
    """`part_gone` for an error that is (or wraps) a temporary file found missing: the clear
    message for it, whichever step of a download or tagging met the missing file."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, PartGone):
            return seen
        name = seen.filename if isinstance(seen, FileNotFoundError) else None
        if isinstance(name, (str, os.PathLike)) and str(name).endswith(PART) and not os.path.lexists(name):
            return part_gone(Path(name))
        seen = seen.__cause__ or seen.__context__
    return None


def rename_new(src: Path, dst: Path) -> None:
    """Rename `src` to `dst` only if nothing is at `dst` (FileExistsError otherwise), atomically:
    no other process can slip a file in between a check and the rename.

    Linux's renameat2(RENAME_NOREPLACE) or macOS's renamex_np(RENAME_EXCL); where the file system
    refuses those (NFS, say), a hard link to the new name then the unlink of the old one; where
    it has no hard links either, a check just before the rename (the one case that is not atomic).
    """
    if os.name == "nt":
        os.rename(src, dst)  # Windows' rename never replaces an existing file
        return
    call = syscalls.rename_noreplace()
    if call is not None:
        code = call(os.fsencode(src), os.fsencode(dst))
        if code == 0:
            return
        if code not in _UNSUPPORTED:
            raise OSError(code, os.strerror(code), os.fspath(src), None, os.fspath(dst))
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in _UNSUPPORTED:
            raise
    else:
        try:
            os.unlink(src)
        except OSError:
            os.unlink(dst)  # never one file under two names: a resumed `.part` would write into it
            raise
        return
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), os.fspath(dst))
    os.replace(src, dst)


def discard(paths: Iterable[Path]) -> None:
    """Remove files this process placed and must not keep (never a link or a folder at the name)."""
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISREG(os.lstat(path).st_mode):
                os.unlink(path)


def fsync_dirs(folders: set[Path]) -> None:
    """Make the renames of a batch of `place(durable=False)` calls durable: one fsync per folder."""
    for folder in sorted(folders):
        try:
            fsync_path(folder)
        except OSError as exc:
            if exc.errno in STORAGE_ERRNOS:
                raise storage_error(exc, folder) from None
            raise


NAME_MAX = 255  # bytes in one file name on the file systems a library lives on
_DIGEST_CHARS = 12  # of a long temporary name's digest


def temp_path(path: Path, base: str, tail: str) -> Path:
    """The temporary sibling of `path` named `base` + `tail` (a fleet worker's tag and a suffix
    such as `.part`), kept within NAME_MAX bytes: final names may use nearly all of them, so for a
    long one the head of `base` gives way to a digest of the whole, the same on every run (a
    download resumes it) and different for every `base`."""
    name = base + tail
    if len(name.encode("utf-8", "surrogateescape")) <= NAME_MAX:
        return path.with_name(name)
    import hashlib  # here: the idle run, which imports this module, never names a long file

    digest = hashlib.sha256(base.encode("utf-8", "surrogateescape")).hexdigest()[:_DIGEST_CHARS]
    room = NAME_MAX - len(tail.encode("utf-8")) - len(digest) - 1
    head = base.encode("utf-8", "surrogateescape")[:room].decode("utf-8", "ignore")
    return path.with_name(f"{head}~{digest}{tail}")


def shortened(base: str) -> bool:
    """Whether `base`, a temporary name without its tail, is one `temp_path` cut to fit."""
    _head, tilde, digest = base.rpartition("~")
    return bool(tilde) and len(digest) == _DIGEST_CHARS and all(c in "0123456789abcdef" for c in digest)


def atomic_write(path: Path, data: bytes, tag: str = "") -> None:
    """Write a small file whole or not at all: temporary file, fsync, rename, directory fsync.
    `tag`: a fleet worker's, in the temporary name, so two never share one (claims.part_tag)."""
    tmp = temp_path(path, path.name, tag + PART)
    try:
        with create_new(tmp) as fh:
            fh.write(data)
            fh.flush()
            fsync_fd(fh.fileno())
        if os.path.islink(path):
            raise UnsafePath(f"refusing to replace a symbolic link at {path}")
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
    fsync_path(path.parent)


Observer = Callable[[str, os.stat_result, list[os.DirEntry[str]]], None]


def walk_library(root: Path, observe: Observer | None = None) -> tuple[set[str], list[Path], set[str]]:
    """Every regular file under the root (relative POSIX paths), every `.part` file, and every
    symbolic link (relative paths), in one directory scan. Links are never followed. `observe`,
    when given, sees each folder as it is listed: its relative path ("" for the root), its stat
    taken just before the listing, and the entries.

    Relative paths are built from the entry names as strings: a pathlib object per file would be
    most of an idle sync's time on a large library (~25 µs a file).
    """
    files: set[str] = set()
    parts: list[Path] = []
    links: set[str] = set()
    if not root.exists():
        return files, parts, links
    stack: list[tuple[str, str]] = [(str(root), "")]  # (directory, its relative POSIX prefix)
    while stack:
        directory, prefix = stack.pop()
        try:
            before = (os.lstat if prefix else os.stat)(directory) if observe is not None else None
            with os.scandir(directory) as scan:
                entries = list(scan)
        except OSError:
            continue
        if observe is not None and before is not None:
            observe(prefix[:-1], before, entries)
        for entry in entries:
            if entry.is_symlink():
                links.add(prefix + entry.name)
            elif entry.is_dir(follow_symlinks=False):
                stack.append((entry.path, f"{prefix}{entry.name}/"))
            elif not entry.is_file(follow_symlinks=False):
                continue  # a FIFO, socket or device: nothing a library holds, and opening one may block
            elif entry.name.endswith(PART):
                parts.append(Path(entry.path))
            elif _owned_name(entry.name):
                files.add(prefix + entry.name)
    return files, parts, links


def _owned_name(name: str) -> bool:
    """A name `walk_library` lists as a file of the library (not the database, lock or stamp)."""
    return name not in SKIP_NAMES and not database_file(name)


def database_file(name: str) -> bool:
    """The database, its journal or WAL files, a copy `rebuild` moved aside
    (`archiver.db.damaged-YYYYmmdd-HHMMSS` and its WAL files) or the one it is writing
    (`archiver.db.rebuilding`); exactly these names, so that a song titled "archiver.db…" is a
    file of the library like any other."""
    if not name.startswith(DB_NAME):
        return False
    rest = name[len(DB_NAME):].removeprefix(REBUILDING)
    if rest.startswith(".damaged-"):
        stamp, rest = rest[9:24], rest[24:]
        if not (len(stamp) == 15 and stamp[8] == "-" and (stamp[:8] + stamp[9:]).isdecimal()):
            return False
    return rest in DB_SUFFIXES


def holds_a_file(root: Path) -> bool:
    """Whether `walk_library(root)` would list any file, stopping at the first: a sync's check
    that its disk is mounted need not list 40,000 files."""
    stack = [str(root)]
    while stack:
        try:
            with os.scandir(stack.pop()) as scan:
                entries = list(scan)  # a folder that cannot be read whole counts as empty, as in the walk
        except OSError:
            continue
        for entry in entries:
            if entry.is_symlink():
                continue
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
            elif not entry.name.endswith(PART) and _owned_name(entry.name):
                return True
    return False


def sidecars(paths: Iterable[str]) -> set[str]:
    """The lyrics sidecars archived audio files may have beside them (`.txt`; `.lrc` from older
    releases until `retag` moves it)."""
    return {p.rsplit(".", 1)[0] + ext for p in paths for ext in (".txt", ".lrc")}


def stem_key(path: str) -> str:
    """Paths compared without extension and case: siblings share a stem, and macOS/Windows fold case."""
    return path.rsplit(".", 1)[0].casefold()
