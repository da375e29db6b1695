"""What every command shares at run time: the Context built from the global options, and the
one way a command fails (a single inert line on stderr and the exit code of its error class)."""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, NoReturn, TypeVar

import click

from ..errors import EXIT_USAGE, ArchiverError

if TYPE_CHECKING:
    from ..config import Config

F = TypeVar("F", bound=Callable[..., Any])


class Context:
    """Global options, turned into a Config on first use."""

    def __init__(self, config_file: str | None, library: str | None, db: str | None) -> None:
        self.config_file = config_file
        self.overrides: dict[str, Any] = {"library": library, "db": db}
        self._config: Config | None = None

    def config(self, **overrides: Any) -> Config:
        """Loaded on first use: `--help` and `--version` need no configuration."""
        from ..config import load_config

        if self._config is None or overrides:
            merged = {**self.overrides, **overrides}
            self._config = load_config(config_file=self.config_file, overrides=merged)
        return self._config

    def store(self, *, create: bool = True, readonly: bool = False) -> Any:
        """`readonly` for commands that only read: nothing is created, migrated or written.

        An SQLite library is then read through the standard library (readdb.ReadDB), and a
        PostgreSQL catalog through psycopg (pgdb.PgReadDB), which library.py queries without
        importing SQLAlchemy; other databases, and verify (through `orm_store`), keep the ORM's
        read-only Store.
        """
        url = self.config().db_url
        if readonly and url.startswith("sqlite"):
            from ..readdb import ReadDB

            return ReadDB(url)
        if readonly and url.startswith("postgresql"):
            from ..pgdb import PgReadDB

            return PgReadDB(url)
        with loading_libraries():
            from ..store import Store

        return Store(url, create=create, readonly=readonly)

    def orm_store(self) -> Any:
        """A read-only Store, for the code that reads through the ORM (verify)."""
        with loading_libraries():
            from ..store import Store

        return Store(self.config().db_url, create=False, readonly=True)


@contextlib.contextmanager
def loading_libraries() -> Iterator[None]:
    """Around a command's import of its heavy libraries (SQLAlchemy, SQLModel, httpx): they leave
    ~120,000 objects alive that last as long as the process, which the garbage collector would
    walk again and again as they arrive. It pauses while they load; then they are frozen out of
    its generations, so that later full collections do not walk them either (a 400-file sync:
    ~160 collections fewer, two of them full, 190 -> 40 ms, all before its downloads start)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


pass_ctx = click.make_pass_decorator(Context)


def fail(message: str, code: int) -> NoReturn:
    """One inert line: no secret, no escape sequence or line break from provider or file text."""
    from ..redact import redact
    from ..render import clean_line

    click.echo(f"error: {clean_line(redact(message))}", err=True)
    sys.exit(code)


def failure(exc: ArchiverError | OSError) -> tuple[str, int]:
    """What an error ends a command with: its message (before `fail` cleans it) and exit code."""
    if isinstance(exc, ArchiverError):
        return str(exc), exc.exit_code
    return f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "), 1


def handle_errors(func: F) -> F:
    """Turn ArchiverError into one line on stderr and its exit code; never a traceback.

    Ctrl-C and SIGTERM both print "interrupted" and exit 130 or 143, after `finally` blocks ran.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from ..interrupts import exit_code, sigterm_as_interrupt

        try:
            _check_text(kwargs)
            with sigterm_as_interrupt():
                return func(*args, **kwargs)
        except ArchiverError as exc:
            fail(*failure(exc))
        except BrokenPipeError:  # `archiver ls | head`: the reader left, nothing to report
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(0)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(exit_code())
        except OSError as exc:
            fail(*failure(exc))
        except Exception as exc:  # a bug: say so briefly unless debugging
            if os.environ.get("ARCHIVER_DEBUG"):
                raise
            fail(f"internal error: {type(exc).__name__}: {exc} (set ARCHIVER_DEBUG=1 for a traceback)", 70)

    return wrapper  # type: ignore[return-value]


def _check_text(values: dict[str, Any]) -> None:
    """Every argument and option value is checked with `require_text` before the command runs,
    but file names: any bytes name a file."""
    ctx = click.get_current_context(silent=True)
    params = {p.name: p for p in ctx.command.params} if ctx is not None else {}
    for name, value in values.items():
        param = params.get(name)
        if param is not None and isinstance(param.type, click.Path):
            continue
        shown = (param.opts[0] if isinstance(param, click.Option) else (param.name or name).upper()) \
            if param is not None else name
        secret = "token" in name or "password" in name
        for item in value if isinstance(value, tuple) else (value,):
            if isinstance(item, str):
                require_text(item, shown, show=not secret)


def require_text(value: str, what: str, *, show: bool = True) -> None:
    """Bytes that are not UTF-8 (an argument, stdin) reach Python as lone surrogates, which
    no database or terminal accepts: a usage error, not an internal one."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        shown = f": {value.encode('utf-8', 'surrogateescape')!r}" if show else ""
        fail(f"{what} is not valid UTF-8 text{shown}", EXIT_USAGE)


def read_input(name: str) -> str:
    """The text of file `name`, or standard input for '-'; an unreadable file is a usage error."""
    if name == "-":
        return sys.stdin.read()
    try:
        return Path(name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{name}: cannot read: {getattr(exc, 'strerror', None) or exc}", EXIT_USAGE)


def read_ids(file: str) -> list[str]:
    """One id per line; blank lines and `#` comments ignored; '-' is standard input."""
    ids = []
    for line in read_input(file).splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            ids.append(line)
    return ids
