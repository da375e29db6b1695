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

    def store(self, *, create: bool = True, readonly: bool = False) -> Any:
        """`readonly` for commands that only read: nothing is created, migrated or written."""
        from .store import Store

        return Store(self.config().db_url, create=create, readonly=readonly)


def fail(message: str, code: int) -> None:
    """One inert line: no secret, no escape sequence or line break from provider or file text."""
    from .redact import redact
    from .render import clean_line

    click.echo(f"error: {clean_line(redact(message))}", err=True)
    sys.exit(code)


def handle_errors(func: F) -> F:
    """Turn ArchiverError into one line on stderr and its exit code; never a traceback.

    Ctrl-C and SIGTERM both print "interrupted" and exit 130 or 143, after `finally` blocks ran.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from .interrupts import exit_code, sigterm_as_interrupt

        try:
            with sigterm_as_interrupt():
                return func(*args, **kwargs)
        except ArchiverError as exc:
            fail(str(exc), exc.exit_code)
        except BrokenPipeError:  # `archiver ls | head`: the reader left, nothing to report
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(0)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(exit_code())
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

    if task_id is not None:
        _require_text(task_id, "--task-id")

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


def _require_text(value: str, what: str) -> None:
    """Bytes that are not UTF-8 (an argument, stdin) reach Python as lone surrogates, which
    no database or terminal accepts: a usage error, not an internal one."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        fail(f"{what} is not valid UTF-8 text: {value.encode('utf-8', 'surrogateescape')!r}", EXIT_USAGE)


def _read_ids(file: str) -> list[str]:
    """One id per line; blank lines and `#` comments ignored; '-' is standard input."""
    if file == "-":
        content = sys.stdin.read()
    else:
        try:
            content = Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"{file}: cannot read: {getattr(exc, 'strerror', None) or exc}", EXIT_USAGE)
    ids = []
    for line in content.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            ids.append(line)
    return ids


@cli.command("add")
@click.argument("source")
@click.argument("task_ids", nargs=-1)
@click.option("--file", "id_file", metavar="F", help="Read ids from F, one per line (# comments; '-' = stdin).")
@pass_ctx
@handle_errors
def add_cmd(ctx: Context, source: str, task_ids: tuple[str, ...], id_file: str | None) -> None:
    """Register task ids of SOURCE for `archiver sync` to poll. Idempotent.

    SOURCE is one of: ccapi-suno, ccapi-producer, mountsea, acedata, aimusicapi. A known task
    that has failed is put back in the queue.

    \b
    Example:
      archiver add acedata 1a6ac2ad-10f2-4e2b-b500-66ec27fe82ad
      archiver add ccapi-suno --file ids.txt
    """
    from .providers import get_source

    get_source(source)  # unknown source: exit 2 listing the valid ones
    ids = list(task_ids) + (_read_ids(id_file) if id_file else [])
    for task_id in ids:
        _require_text(task_id, "task id")
    if not ids:
        fail("no task ids given (pass them as arguments or with --file)", EXIT_USAGE)
    from .sync import add_tasks

    with ctx.store() as store:
        added = add_tasks(store, source, ids)
    click.echo(f"{added.new} new task(s) added to {source}"
               + (f", {added.requeued} failed task(s) queued again" if added.requeued else "")
               + (f", {added.known} already known" if added.known else ""))


@cli.command("retry")
@click.argument("query", nargs=-1)
@pass_ctx
@handle_errors
def retry_cmd(ctx: Context, query: tuple[str, ...]) -> None:
    """Queue failed tasks again for the next `archiver sync` (no QUERY: every failed task).

    QUERY selects tasks with the `ls` grammar: source, task (an id prefix), and clip fields for
    tasks that have clips. Their error counters are reset and they are due at once.

    \b
    Example:
      archiver retry source:acedata
      archiver retry task:1a6ac2ad && archiver sync
    """
    from .retry import retry_failed

    with ctx.store() as store:
        chosen = retry_failed(store, query)
    click.echo(f"{len(chosen)} failed task(s) queued again")


@cli.command("sync")
@click.option("--source", "sources", multiple=True, type=click.Choice(SOURCE_CHOICES), help="Only this source (repeatable).")
@click.option("--now", "ignore_schedule", is_flag=True, help="Poll every unfinished task now, ignoring the schedule.")
@click.option("--interval", type=click.FloatRange(min=0.01), metavar="SECONDS", help="Base poll interval for this run.")
@click.option("--until-done", is_flag=True, help="Keep polling until nothing is pending or running.")
@click.option("--timeout", type=click.FloatRange(min=0), metavar="SECONDS", help="With --until-done: give up after this long.")
@click.option("--wait", type=click.FloatRange(min=0), metavar="SECONDS", help="Wait this long for another sync's lock instead of exiting 75.")
@click.option("--no-download", is_flag=True, help="Only poll; do not download files.")
@click.option("--jobs", type=click.IntRange(min=1), help="Concurrent downloads (default 4).")
@click.option("--path-template", help="Folder layout for new files, e.g. '{source}/{created:%Y}/{title} [{clip_id:.8}].{ext}'.")
@click.option("--json", "as_json", is_flag=True, help="Print only a JSON summary.")
@click.option("-q", "--quiet", is_flag=True, help="Print only errors.")
@pass_ctx
@handle_errors
def sync_cmd(ctx: Context, sources: tuple[str, ...], ignore_schedule: bool, interval: float | None,
             until_done: bool, timeout: float | None, wait: float | None, no_download: bool,
             jobs: int | None, path_template: str | None, as_json: bool, quiet: bool) -> None:
    """Poll unfinished tasks, store results, download and tag new files.

    \b
    Exit codes: 0 all done that could be done (running tasks are fine), 1 some polls or
    downloads failed after retries, 2 usage/config error, 75 another sync holds the lock.

    \b
    Example (crontab, every 5 minutes):
      */5 * * * *  archiver sync --quiet
      archiver sync --until-done --timeout 900 --json
    """
    import json as jsonlib

    from .report import PlainReporter, RichReporter
    from .sync import SyncOptions, run_sync

    config = ctx.config(jobs=jobs, path_template=path_template)
    if as_json or quiet or not sys.stderr.isatty():
        reporter: Any = PlainReporter(quiet=quiet or as_json)
    else:
        reporter = RichReporter()
    options = SyncOptions(sources=sources or None, ignore_schedule=ignore_schedule, interval=interval,
                          until_done=until_done, timeout=timeout, download=not no_download, wait=wait)
    try:
        report = run_sync(config, options, reporter)
    finally:
        reporter.close()
    if as_json:
        click.echo(jsonlib.dumps(report.as_dict(), ensure_ascii=False))
    elif not quiet:
        click.echo(f"polled {report.tasks_polled} task(s) in {report.requests} request(s); "
                   f"{report.newly_succeeded} succeeded, {report.failed} failed, {report.clips_added} new clip(s); "
                   f"{report.files_downloaded} file(s) downloaded; {report.still_unfinished} unfinished; "
                   f"{len(report.errors)} error(s)")
    sys.exit(report.exit_code)


@cli.command("verify")
@click.option("--repair", is_flag=True, help="Fetch missing or changed files again.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_ctx
@handle_errors
def verify_cmd(ctx: Context, repair: bool, as_json: bool) -> None:
    """Check that every archived file exists with its recorded size and sha256.

    Reports missing, changed and orphan files (files no clip claims); exits 1 if there are any.

    \b
    Example:
      archiver verify
      archiver verify --repair
    """
    import json as jsonlib

    from .report import PlainReporter
    from .sync import SyncOptions, run_sync
    from .verify import verify_library

    config = ctx.config()
    with ctx.store(readonly=True) as store:
        report = verify_library(config.library, store)
    if as_json:
        click.echo(jsonlib.dumps({"checked": report.checked, "missing": report.missing,
                                  "changed": report.changed, "orphans": report.orphans, "links": report.links},
                                 ensure_ascii=False))
    else:
        for label, paths in (("missing", report.missing), ("changed", report.changed), ("orphan", report.orphans),
                            ("symlink", report.links)):
            for path in paths:
                click.echo(f"{label}: {path}")
        click.echo(f"checked {report.checked} file(s): {len(report.missing)} missing, {len(report.changed)} changed, "
                   f"{len(report.orphans)} orphan(s)" + (f", {len(report.links)} symbolic link(s)" if report.links else ""))
    if repair and report.bad_ids:
        with ctx.store() as store:
            store.mark_missing(report.bad_ids)
        options = SyncOptions(poll=False, asset_ids=report.bad_ids)
        result = run_sync(config, options, PlainReporter(quiet=as_json))
        if not as_json:
            click.echo(f"repaired {result.files_downloaded} file(s)" +
                       (f"; {len(result.errors)} could not be fetched" if result.errors else ""))
        sys.exit(result.exit_code if not report.orphans else 1)
    sys.exit(0 if report.clean else 1)


@cli.command("retag")
@click.argument("query", nargs=-1)
@click.option("--wait", type=click.FloatRange(min=0), metavar="SECONDS", help="Wait this long for a running sync.")
@pass_ctx
@handle_errors
def retag_cmd(ctx: Context, query: tuple[str, ...], wait: float | None) -> None:
    """Rewrite the tags of archived audio files from the database, without downloading.

    Use it after changing tag settings (artist, album, id3_version, lyrics_sidecar). QUERY
    selects clips like `archiver ls` does; no QUERY means every archived file.

    \b
    Example:
      archiver retag
      archiver retag source:acedata year:2026
    """
    from .archive import retag_library
    from .library import list_clips
    from .sync import LibraryLock

    config = ctx.config()
    with LibraryLock(config.library, wait), ctx.store(create=False) as store:
        keys = {(r["source"], r["clip_id"]) for r in list_clips(store, query)} if query else None
        summary = retag_library(config, store, keys)
    for message in summary.errors:
        click.echo(f"error: {message}", err=True)
    click.echo(f"retagged {summary.retagged} file(s), {summary.unchanged} already up to date, "
               f"{len(summary.errors)} error(s)")
    sys.exit(1 if summary.errors else 0)


@cli.command("rebuild")
@click.option("--force", is_flag=True, help="Rebuild even if the current database is readable.")
@pass_ctx
@handle_errors
def rebuild_cmd(ctx: Context, force: bool) -> None:
    """Recreate the database from the provenance tags of the archived files.

    For a lost or damaged database: every archived audio file says in its tags which source,
    task and clip it is, with its title, lyrics and duration; covers are found beside it. A
    damaged database is moved aside (never deleted).

    \b
    Example:
      archiver rebuild
    """
    from .rebuild import rebuild
    from .render import clean_line
    from .sync import LibraryLock

    config = ctx.config()
    with LibraryLock(config.library, None):
        report = rebuild(config.library, config.db_url, force=force)
    if report.moved_aside:
        click.echo(f"old database kept as {report.moved_aside}")
    for path in report.skipped:
        click.echo(f"skipped (no archiver tags): {clean_line(path)}", err=True)
    for line in report.problems:
        click.echo(line, err=True)
    click.echo(f"rebuilt {report.tasks} task(s) from {report.audio} audio file(s) and {report.covers} cover(s)")


@cli.command("demo")
@click.option("--dir", "directory", metavar="DIR", help="Where to make the demo library (default: a new temp dir).")
@handle_errors
def demo_cmd(directory: str | None) -> None:
    """Run the whole pipeline against the built-in provider simulator (no tokens, no network).

    Starts fake providers on 127.0.0.1, adds a dozen tasks across the five sources, syncs until
    done (poll, download, tag) and prints the library.

    \b
    Example:
      archiver demo --dir ./demo-library
      archiver --library ./demo-library ls
    """
    from .demo import demo_directory, run_demo
    from .library import list_clips
    from .render import rows_table
    from .report import PlainReporter, RichReporter
    from .store import Store

    library = demo_directory(directory)
    reporter: Any = RichReporter() if sys.stderr.isatty() else PlainReporter()
    try:
        result = run_demo(library, reporter)
    finally:
        reporter.close()
    report = result.report
    with Store(result.config.db_url) as store:
        rows = list_clips(store)
    rows_table(rows, ("source", "title", "duration", "status", "audio_path"), title="demo library")
    click.echo(f"\n{len(rows)} clips from {report.newly_succeeded} succeeded and {report.failed} failed task(s); "
               f"{report.files_downloaded} files (audio and covers) archived in {report.requests} API request(s).")
    click.echo(f"Library: {library}")
    click.echo(f"Explore it:  archiver --library {library} ls   |   archiver --library {library} tasks")
    sys.exit(report.exit_code)


def main() -> None:
    cli(prog_name="archiver")


from . import cli_browse  # noqa: E402,F401  (registers the read-side commands on `cli`)


if __name__ == "__main__":
    main()
