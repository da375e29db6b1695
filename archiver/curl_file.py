"""libcurl through ctypes, for transfers whose body goes straight into a file.

pycurl hands every piece of a body (16 KiB at most) to a Python callback, and each call needs the
GIL, which the rest of a sync holds much of the time: the transfers then wait on the event loop's
Python instead of the network. Here the body is written by C alone (libcurl's write function is
stdio's `fwrite`, into a buffered FILE over the file's descriptor), so a transfer runs at
libcurl's speed whatever else Python is doing. Python still runs for each line of the head and in
the progress callback, which libcurl calls a few times a second: that is where timeouts, the
minimum speed and cancelling are judged.

The library is the one pycurl loaded (found among the files this process has mapped, checked by
its version), so both share one libcurl and its global set-up; failing that, the system's
libcurl. pycurl's names for the options are libcurl's own numbers. Where libcurl cannot be driven
this way (not Linux, no C library to load), `CallbackEasy` does the same work on a pycurl handle,
with its write callback in Python.
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import pycurl

from .fs import write_all

FILE_BUFFER = 256 * 1024  # stdio's buffer in front of the file: one write(2) per this many bytes
_IOFBF = 0  # setvbuf: fully buffered
_GLOBAL_DEFAULT = 3  # CURL_GLOBAL_DEFAULT (SSL | WIN32)
_SIZE_DOWNLOAD_T = 0x600000 + 8  # CURLINFO_SIZE_DOWNLOAD_T: body bytes received, as a curl_off_t

HEADER_FUNCTION = ctypes.CFUNCTYPE(ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t,
                                   ctypes.c_void_p)
XFERINFO_FUNCTION = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                                     ctypes.c_int64, ctypes.c_int64)


class Unavailable(RuntimeError):
    """No libcurl could be loaded through ctypes."""


@dataclass(frozen=True)
class Options:
    """What one request sets on its handle beyond the callbacks (pycurl's option numbers)."""

    longs: tuple[tuple[int, int], ...]
    strings: tuple[tuple[int, str], ...]
    headers: tuple[str, ...]  # "Name: value" lines


@dataclass(frozen=True)
class Outcome:
    code: int  # libcurl's result: 0 = the whole response arrived
    received: int  # body bytes libcurl delivered
    write_errno: int  # why writing the body failed (0: it did not)


class _Library:
    """libcurl's and the C library's functions with their C types, loaded once per process.

    `perform`, `flush`, `fclose` and `cleanup` let go of the GIL: they wait on the network or the
    disk. Every other call returns at once, and letting go of the GIL for it would cost a wait to
    take it back behind whichever thread took it meanwhile (up to the switch interval, 5 ms).
    Linux only: these prototypes pass curl_easy_setopt's variadic argument as a fixed one, which
    the x86-64 and arm64 Linux calling conventions treat alike (Apple's arm64 does not)."""

    def __init__(self, curl: Any) -> None:
        c_void_p, c_int, c_long, c_char_p, c_size_t = (ctypes.c_void_p, ctypes.c_int, ctypes.c_long,
                                                       ctypes.c_char_p, ctypes.c_size_t)
        quick = ctypes.PyDLL(curl._name)  # the same library, called without letting go of the GIL
        self.perform = _bind(curl, "curl_easy_perform", c_int, c_void_p)
        self.version = _bind(quick, "curl_version", c_char_p)
        self.init = _bind(quick, "curl_easy_init", c_void_p)
        self.reset = _bind(quick, "curl_easy_reset", None, c_void_p)
        self.cleanup = _bind(curl, "curl_easy_cleanup", None, c_void_p)  # may close connections
        self.slist_append = _bind(quick, "curl_slist_append", c_void_p, c_void_p, c_char_p)
        self.slist_free_all = _bind(quick, "curl_slist_free_all", None, c_void_p)
        # curl_easy_setopt and curl_easy_getinfo are variadic: one prototype per argument type.
        self.set_long = ctypes.PYFUNCTYPE(c_int, c_void_p, c_int, c_long)(("curl_easy_setopt", quick))
        self.set_pointer = ctypes.PYFUNCTYPE(c_int, c_void_p, c_int, c_void_p)(("curl_easy_setopt", quick))
        self.set_string = ctypes.PYFUNCTYPE(c_int, c_void_p, c_int, c_char_p)(("curl_easy_setopt", quick))
        self.get_off = ctypes.PYFUNCTYPE(c_int, c_void_p, c_int, ctypes.POINTER(ctypes.c_int64))(
            ("curl_easy_getinfo", quick))
        libc, libc_quick = ctypes.CDLL(None, use_errno=True), ctypes.PyDLL(None, use_errno=True)
        self.flush = _bind(libc, "fflush", c_int, c_void_p)
        self.open = _bind(libc_quick, "open", c_int, c_char_p, c_int)
        self.dup3 = _bind(libc_quick, "dup3", c_int, c_int, c_int, c_int)
        self.fdopen = _bind(libc_quick, "fdopen", c_void_p, c_int, c_char_p)
        self.setvbuf = _bind(libc_quick, "setvbuf", c_int, c_void_p, c_void_p, c_int, c_size_t)
        self.fclose = _bind(libc, "fclose", c_int, c_void_p)
        self.ferror = _bind(libc_quick, "ferror", c_int, c_void_p)
        self.fwrite = ctypes.cast(libc.fwrite, c_void_p).value  # libcurl's write function: body -> FILE
        if _bind(curl, "curl_global_init", c_int, c_long)(_GLOBAL_DEFAULT) != 0:
            raise Unavailable("libcurl's global set-up failed")


def _bind(library: Any, name: str, restype: Any, *argtypes: Any) -> Any:
    function = getattr(library, name)
    function.restype, function.argtypes = restype, list(argtypes)
    return function


_loading = threading.Lock()
_loaded: list[_Library | Unavailable] = []  # what the first attempt gave, kept for the process


def _library() -> _Library:
    with _loading:
        if not _loaded and not sys.platform.startswith("linux"):
            _loaded.append(Unavailable(f"libcurl is driven through ctypes on Linux only, not {sys.platform}"))
        if not _loaded:
            try:
                _loaded.append(_Library(_load_curl()))
            except Unavailable as exc:
                _loaded.append(exc)
            except (OSError, TypeError, AttributeError) as exc:  # no C library to load, a symbol missing
                _loaded.append(Unavailable(f"libcurl cannot be driven through ctypes here ({exc})"))
        found = _loaded[0]
    if isinstance(found, Unavailable):
        raise Unavailable(str(found))
    return found


def _load_curl() -> Any:
    """The libcurl pycurl runs on: among the mapped files, the one whose version is pycurl's;
    failing that, any libcurl there is (its own global set-up is done in `_Library`)."""
    wanted = f"libcurl/{pycurl.version_info()[1]}".encode()
    loaded = []
    for path in _candidates():
        try:
            curl = ctypes.CDLL(path, use_errno=True)
            curl.curl_version.restype = ctypes.c_char_p
            version = curl.curl_version().split(b" ", 1)[0]
        except (OSError, AttributeError):
            continue
        if version == wanted:
            return curl
        loaded.append(curl)
    if loaded:
        return loaded[0]
    raise Unavailable(f"no libcurl could be loaded through ctypes (pycurl runs on {wanted.decode()})")


def _candidates() -> Iterator[str]:
    yield from _mapped_curls()
    import ctypes.util  # it runs ldconfig: asked only when no mapped file is pycurl's library

    found = ctypes.util.find_library("curl")
    if found:
        yield found


def _mapped_curls() -> list[str]:
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            paths = {fields[5].strip() for fields in (line.split(None, 5) for line in maps) if len(fields) == 6}
    except OSError:  # not Linux
        return []
    return sorted(path for path in paths if os.path.basename(path).startswith("libcurl"))


def load() -> str:
    """Load libcurl now (raises Unavailable), rather than in the first transfer's thread; its
    version, as in pycurl.version ("libcurl/8.5.0")."""
    return _library().version().split(b" ", 1)[0].decode()


def easy() -> FileEasy | CallbackEasy:
    """A handle for one transfer after another: libcurl's own where ctypes can drive it, else pycurl's."""
    try:
        return FileEasy()
    except Unavailable:
        return CallbackEasy()


class FileEasy:
    """One libcurl easy handle, reused request after request (its connections stay alive).

    `perform` writes the body of the response to whichever descriptor `write_into` named while
    the head was read (from `on_line`); until then, and for a response nobody takes, nowhere.
    """

    def __init__(self) -> None:
        self._lib = _library()
        self._handle = self._lib.init()
        if not self._handle:
            raise Unavailable("curl_easy_init failed")
        self._buffer = ctypes.create_string_buffer(FILE_BUFFER)
        self._slot = -1  # the FILE's descriptor during a perform

    def write_into(self, fd: int) -> None:
        """From `on_line`: the body goes to `fd` (its offset and O_APPEND are shared)."""
        if self._lib.dup3(fd, self._slot, os.O_CLOEXEC) < 0:
            failure = ctypes.get_errno()
            raise OSError(failure, os.strerror(failure))

    def perform(self, options: Options, on_line: Callable[[bytes], bool],
                on_progress: Callable[[int], bool]) -> Outcome:
        """Run one request in this thread, the GIL released while libcurl works. `on_line` gets
        each head line (False stops the transfer); `on_progress` the body bytes so far, a few
        times a second even when none arrive (False stops it)."""
        lib, handle = self._lib, self._handle
        slot = lib.open(os.devnull.encode(), os.O_WRONLY | os.O_CLOEXEC)
        stream = lib.fdopen(slot, b"wb") if slot >= 0 else None
        if not stream:
            failure = ctypes.get_errno()
            if slot >= 0:
                os.close(slot)
            raise OSError(failure, os.strerror(failure))
        self._slot = slot
        lib.setvbuf(stream, self._buffer, _IOFBF, FILE_BUFFER)
        headers, failed, received, raised = None, 0, ctypes.c_int64(0), []
        try:

            def line(data: int, size: int, count: int, _user: int) -> int:
                return size * count if on_line(ctypes.string_at(data, size * count)) else 0

            def progress(_user: int, _total: int, now: int, _up_total: int, _up_now: int) -> int:
                return 0 if on_progress(now) else 1

            header_cb = HEADER_FUNCTION(_guarded(line, 0, raised))
            progress_cb = XFERINFO_FUNCTION(_guarded(progress, 1, raised))
            for option, number in options.longs:  # one this libcurl lacks is left out, as pycurl's probe does
                lib.set_long(handle, option, number)
            for header in options.headers:
                grown = lib.slist_append(headers, header.encode())
                if not grown:
                    raise MemoryError("curl_slist_append failed")
                headers = grown
            required = [lib.set_string(handle, option, text.encode()) for option, text in options.strings] + [
                lib.set_pointer(handle, pycurl.HTTPHEADER, headers),
                lib.set_pointer(handle, pycurl.HEADERFUNCTION, ctypes.cast(header_cb, ctypes.c_void_p)),
                lib.set_long(handle, pycurl.NOPROGRESS, 0),
                lib.set_pointer(handle, pycurl.XFERINFOFUNCTION, ctypes.cast(progress_cb, ctypes.c_void_p)),
                lib.set_pointer(handle, pycurl.WRITEFUNCTION, lib.fwrite),
                lib.set_pointer(handle, pycurl.WRITEDATA, stream)]
            if any(required):
                raise OSError(errno.EINVAL, f"libcurl refused an option (curl error {max(required)})")
            code = lib.perform(handle)
            if code == pycurl.E_WRITE_ERROR and lib.ferror(stream):
                failed = _write_errno(lib, stream, ctypes.get_errno(), slot)
            lib.get_off(handle, _SIZE_DOWNLOAD_T, ctypes.byref(received))
        finally:
            lib.reset(handle)  # drops the callbacks and options; keeps the connection
            if headers:
                lib.slist_free_all(headers)
            if lib.flush(stream) != 0 and not failed:
                failed = _write_errno(lib, stream, ctypes.get_errno(), slot)
            lib.fclose(stream)
            self._slot = -1
        if raised:
            raise raised[0]
        return Outcome(code, received.value, failed)

    def close(self) -> None:
        if self._handle:
            self._lib.cleanup(self._handle)
            self._handle = None


_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO})


def _write_errno(lib: _Library, stream: int, seen: int, fd: int) -> int:
    """Why writing the body failed. libcurl goes on working after the failed write (it reports
    progress, closes the connection), so the errno left behind may be another call's: a write
    error is taken as it is, else the stream's held bytes are tried once more, else a full file
    system says ENOSPC, and anything else is EIO: never 0, so the failure is the disk's."""
    if seen in _WRITE_ERRNOS:
        return seen
    if lib.flush(stream) != 0 and ctypes.get_errno() in _WRITE_ERRNOS:
        return ctypes.get_errno()
    try:
        if os.fstatvfs(fd).f_bavail == 0:
            return errno.ENOSPC
    except OSError:
        pass
    return errno.EIO


def configure(handle: pycurl.Curl, options: Options, header: Callable[[bytes], int | None],
              body: Callable[[bytes], int | None], progress: Callable[[int, int, int, int], int]) -> None:
    """A pycurl handle set up for one request: its options, its head, body and progress callbacks."""
    for option, value in (*options.longs, *options.strings):
        handle.setopt(option, value)
    handle.setopt(pycurl.HTTPHEADER, list(options.headers))
    handle.setopt(pycurl.HEADERFUNCTION, header)
    handle.setopt(pycurl.WRITEFUNCTION, body)
    handle.setopt(pycurl.NOPROGRESS, 0)
    handle.setopt(pycurl.XFERINFOFUNCTION, progress)


class CallbackEasy:
    """`FileEasy`'s work on a pycurl handle, where libcurl cannot be driven through ctypes (no C
    library to load, say): pycurl's write callback writes each piece, with the GIL."""

    def __init__(self) -> None:
        self._handle = pycurl.Curl()
        self._fd = -1

    def write_into(self, fd: int) -> None:
        self._fd = fd

    def perform(self, options: Options, on_line: Callable[[bytes], bool],
                on_progress: Callable[[int], bool]) -> Outcome:
        handle, failed, raised = self._handle, 0, []
        self._fd = -1

        def body(data: bytes) -> int | None:
            nonlocal failed
            try:
                write_all(self._fd, data)
            except OSError as exc:
                failed = exc.errno or errno.EIO
                return 0
            return None

        try:
            configure(handle, options, _guarded(lambda data: len(data) if on_line(data) else 0, 0, raised), body,
                      _guarded(lambda _total, now, _up, _up_now: 0 if on_progress(now) else 1, 1, raised))
            try:
                handle.perform()
                code = 0
            except pycurl.error as exc:
                code = exc.args[0] if exc.args else -1
            received = int(handle.getinfo(pycurl.SIZE_DOWNLOAD_T))
        finally:
            handle.reset()  # drops the callbacks and options; keeps the connection
        if raised:
            raise raised[0]
        return Outcome(code, received, failed)

    def close(self) -> None:
        self._handle.close()


def _guarded(call: Callable[..., int], stop: int, raised: list[BaseException]) -> Callable[..., int]:
    """A callback for C: an exception cannot cross into libcurl, so it stops the transfer (by
    returning `stop`) and is raised again once `perform` is back in Python."""
    def guarded(*args: Any) -> int:
        try:
            return call(*args)
        except BaseException as exc:  # noqa: BLE001 - kept for `perform` to raise
            raised.append(exc)
            return stop
    return guarded
