"""The `archiver` command line: parse options, build a Config, call library code, map errors.

Heavy libraries (sqlalchemy, httpx, mutagen) are imported inside the commands that need them so
that `archiver --help` and `archiver --version` start fast.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Any, Callable, TypeVar

import click

from . import __version__
from .config import Config, load_config
from .errors import EXIT_USAGE, ArchiverError

F = TypeVar("F", bound=Callable[..., Any])

SOURCE_CHOICES = ("ccapi-suno", "ccapi-producer", "mountsea", "acedata", "aimusicapi")
STATUS_CHOICES = ("pending", "running", "succeeded", "failed", "cancelled")


class Context:
    """Global options, turned into a Config on first use."""

    def __init__(self, config_file: str | None, library: str | None, db: str | None) -> None:
        self.config_file = config_file
        self.overrides: dict[str, Any] = {"library": library, "db": db}
        self._config: Config | None = None

    def config(self, **overrides: Any) -> Config:
        if self._config is None or overrides:
            merged = {**self.overrides, **overrides}
            self._config = load_config(config_file=self.config_file, overrides=merged)
        return self._config

    def store(self, *, create: bool = True) -> Any:
        from .store import Store

        return Store(self.config().db_url, create=create)


def fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def handle_errors(func: F) -> F:
    """Turn ArchiverError into one line on stderr and its exit code; never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ArchiverError as exc:
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except OSError as exc:
            fail(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "), 1)
        except Exception as exc:  # a bug: say so briefly unless debugging
            if os.environ.get("ARCHIVER_DEBUG"):
                raise
            fail(f"internal error: {type(exc).__name__}: {exc} (set ARCHIVER_DEBUG=1 for a traceback)", 70)

    return wrapper  # type: ignore[return-value]


pass_ctx = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="archiver")
@click.option("--config", "config_file", metavar="FILE", envvar="ARCHIVER_CONFIG",
              help="Config file (TOML). Default: archiver/config.toml in your user config dir.")
@click.option("--library", metavar="DIR", help="Library root (default: your music dir + /archiver).")
@click.option("--db", metavar="URL", help="Database: an SQLAlchemy URL or a file path (default: <library>/archiver.db).")
@click.pass_context
def cli(ctx: click.Context, config_file: str | None, library: str | None, db: str | None) -> None:
    """Keep a complete, tagged, offline archive of AI-music generation tasks.

    \b
    Example:
      archiver demo                       # try it against the built-in simulator
      archiver add ccapi-suno task_7f11c4b772f44710ac0fae0d5b3dc4c1
      archiver sync                       # from cron: poll, download, tag
      archiver ls --format json
    """
    ctx.obj = Context(config_file, library, db)


@cli.command("config")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@pass_ctx
@handle_errors
def config_cmd(ctx: Context, fmt: str) -> None:
    """Print the effective configuration and where each value came from (tokens redacted).

    \b
    Example:
      ARCHIVER_ACEDATA_TOKEN=... archiver config
    """
    data = ctx.config().redacted()
    from .render import emit, rows_json

    if fmt == "json":
        rows_json([data], sys.stdout)
        return
    rows = [{"key": k, "value": v["value"], "from": v["from"]} for k, v in data.items() if k != "providers"]
    for name, entry in data["providers"].items():
        rows += [{"key": f"providers.{name}.{k}", "value": v["value"], "from": v["from"]} for k, v in entry.items()]
    emit(rows, "table", table_columns=("key", "value", "from"), all_columns=("key", "value", "from"))


@cli.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(allow_dash=True, dir_okay=False))
@click.option("--source", type=click.Choice(SOURCE_CHOICES), help="Force the source instead of detecting it.")
@click.option("--task-id", help="Task id for bodies that carry none (aimusicapi).")
@pass_ctx
@handle_errors
def import_cmd(ctx: Context, files: tuple[str, ...], source: str | None, task_id: str | None) -> None:
    """Ingest saved fetch responses (single or batch, any source) without any network.

    FILES are JSON bodies as the providers return them; '-' reads standard input.

    \b
    Example:
      archiver import response.json
      curl -s ... | archiver import --source aimusicapi --task-id 1234 -
    """
    from .ingest import Body, import_bodies

    bodies = []
    for name in files:
        if name == "-":
            bodies.append(Body("<stdin>", sys.stdin.read()))
        else:
            try:
                bodies.append(Body(name, Path(name).read_text(encoding="utf-8")))
            except (OSError, UnicodeDecodeError) as exc:
                fail(f"{name}: cannot read: {getattr(exc, 'strerror', None) or exc}", EXIT_USAGE)
    with ctx.store() as store:
        result = import_bodies(store, bodies, source=source, task_id=task_id)
    click.echo(f"tasks: {result.tasks_added} added, {result.tasks_updated} updated; "
               f"clips: {result.clips_added} added, {result.clips_updated} updated"
               + (f"; {result.stale} stale record(s) ignored" if result.stale else ""))


@cli.command("tasks")
@click.option("--source", "sources", multiple=True, type=click.Choice(SOURCE_CHOICES), help="Only this source (repeatable).")
@click.option("--status", "statuses", multiple=True, type=click.Choice(STATUS_CHOICES), help="Only this status (repeatable).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@pass_ctx
@handle_errors
def tasks_cmd(ctx: Context, sources: tuple[str, ...], statuses: tuple[str, ...], fmt: str) -> None:
    """List tasks with their status, progress, error and clip count.

    \b
    Example:
      archiver tasks --status failed --format json
    """
    from .library import TASK_COLUMNS, list_tasks
    from .render import emit

    with ctx.store() as store:
        rows = list_tasks(store, sources=sources or None, statuses=statuses or None)
    emit(rows, fmt, table_columns=("source", "task_id", "status", "provider_status", "progress", "clips", "error"),
         all_columns=TASK_COLUMNS, title="tasks")


@cli.command("ls")
@click.option("--source", "sources", multiple=True, type=click.Choice(SOURCE_CHOICES), help="Only this source (repeatable).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@pass_ctx
@handle_errors
def ls_cmd(ctx: Context, sources: tuple[str, ...], fmt: str) -> None:
    """List clips: title, tags, duration, model, and where their files are.

    \b
    Example:
      archiver ls --source acedata --format json
    """
    from .library import CLIP_COLUMNS, list_clips
    from .render import emit

    with ctx.store() as store:
        rows = list_clips(store, sources=sources or None)
    emit(rows, fmt, table_columns=("source", "clip_id", "title", "duration", "model", "status", "audio_path"),
         all_columns=CLIP_COLUMNS, title="clips")


def main() -> None:
    cli(prog_name="archiver")


if __name__ == "__main__":
    main()
