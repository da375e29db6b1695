"""The queue side: `add` and `import` put tasks in the library, `sync` polls and archives them,
`retry` queues failed ones again."""

from __future__ import annotations

import sys
from typing import Any

import click

from ..errors import EXIT_USAGE, ArchiverError
from .context import (Context, fail, failure, handle_errors, loading_libraries, pass_ctx, read_ids, read_input,
                      require_text)
from .group import cli
from .options import SourcesInHelp, json_option, query_argument, source_option, sources_option, wait_option


@cli.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(allow_dash=True, dir_okay=False))
@source_option("Force the source instead of detecting it.")
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
    with loading_libraries():
        from ..ingest import Body, import_bodies

    if task_id is not None:
        require_text(task_id, "--task-id")

    bodies = [Body("<stdin>" if name == "-" else name, read_input(name)) for name in files]
    with ctx.store() as store:
        result = import_bodies(store, bodies, source=source, task_id=task_id)
    click.echo(f"tasks: {result.tasks_added} added, {result.tasks_updated} updated; "
               f"clips: {result.clips_added} added, {result.clips_updated} updated"
               + (f"; {result.stale} stale record(s) ignored" if result.stale else ""))


@cli.command("add", cls=SourcesInHelp)
@click.argument("source")
@click.argument("task_ids", nargs=-1)
@click.option("--file", "id_file", metavar="F", type=click.Path(dir_okay=False, allow_dash=True), help="Read ids from F, one per line (# comments; '-' = stdin).")
@pass_ctx
@handle_errors
def add_cmd(ctx: Context, source: str, task_ids: tuple[str, ...], id_file: str | None) -> None:
    """Register task ids of SOURCE for `archiver sync` to poll. Idempotent.

    SOURCE is one of: {sources}. A known task that has failed is put back in the queue.

    \b
    Example:
      archiver add acedata 1a6ac2ad-10f2-4e2b-b500-66ec27fe82ad
      archiver add ccapi-suno --file ids.txt
    """
    from ..providers import get_source

    get_source(source)  # unknown source: exit 2 listing the valid ones
    ids = list(task_ids) + (read_ids(id_file) if id_file else [])
    for task_id in ids:
        require_text(task_id, "task id")
    if not ids:
        fail("no task ids given (pass them as arguments or with --file)", EXIT_USAGE)
    with loading_libraries():
        from ..sync import add_tasks

    with ctx.store() as store:
        added = add_tasks(store, source, ids)
    click.echo(f"{added.new} new task(s) added to {source}"
               + (f", {added.requeued} failed task(s) queued again" if added.requeued else "")
               + (f", {added.known} already known" if added.known else ""))


@cli.command("retry")
@query_argument
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
    with loading_libraries():
        from ..retry import retry_failed

    with ctx.store(create=False) as store:  # a mistyped --library is an error, not a new library
        chosen = retry_failed(store, query)
    click.echo(f"{len(chosen)} failed task(s) queued again")


@cli.command("sync")
@sources_option
@click.option("--now", "ignore_schedule", is_flag=True, help="Poll every unfinished task now, ignoring the schedule.")
@click.option("--interval", type=click.FloatRange(min=0.01), metavar="SECONDS", help="Base poll interval for this run.")
@click.option("--until-done", is_flag=True, help="Keep polling until nothing is pending or running (a task the "
              "provider has answered 'not found' for over 10 minutes is not waited for).")
@click.option("--timeout", type=click.FloatRange(min=0), metavar="SECONDS", help="With --until-done: give up after this long.")
@wait_option("Wait this long for another sync's lock instead of exiting 75.")
@click.option("--no-download", is_flag=True, help="Only poll; do not download files.")
@click.option("--jobs", type=click.IntRange(min=1), help="Concurrent downloads (default 4).")
@click.option("--path-template", help="Folder layout for new files, e.g. '{source}/{created:%Y}/{title} [{clip_id:.8}].{ext}'.")
@json_option("Print only a JSON summary.")
@click.option("-q", "--quiet", is_flag=True, help="Print only errors.")
@click.option("--worker-id", metavar="NAME", help="This worker's name in a PostgreSQL fleet (default host:pid).")
@pass_ctx
@handle_errors
def sync_cmd(ctx: Context, sources: tuple[str, ...], ignore_schedule: bool, interval: float | None,
             until_done: bool, timeout: float | None, wait: float | None, no_download: bool,
             jobs: int | None, path_template: str | None, as_json: bool, quiet: bool,
             worker_id: str | None) -> None:
    """Poll unfinished tasks, store results, download and tag new files.

    \b
    Exit codes: 0 all done that could be done (running tasks are fine), 1 some polls or
    downloads failed after retries, 2 usage/config error, 75 another sync holds the lock,
    130 or 143 stopped by Ctrl-C or SIGTERM.

    \b
    Example (crontab, every 5 minutes):
      */5 * * * *  archiver sync --quiet
      archiver sync --until-done --timeout 900 --json
      archiver --db postgresql+psycopg://archiver@db/music sync --worker-id nas-1
    """
    import json as jsonlib

    from ..idle import idle_run

    if timeout is not None and not until_done:
        fail("--timeout bounds --until-done; a single run ends on its own (add --until-done)", EXIT_USAGE)
    try:
        config = ctx.config(jobs=jobs, path_template=path_template)
        report = idle_run(config, sources=sources or None, ignore_schedule=ignore_schedule, until_done=until_done,
                          wait=wait)
        if report is None:
            report = _full_sync(config, sources, ignore_schedule, interval, until_done, timeout, wait, no_download,
                                quiet=quiet or as_json, worker_id=worker_id)
    except (ArchiverError, OSError) as exc:
        if as_json:  # a script reading the summary gets one for a failed run too: why, and its exit code
            click.echo(jsonlib.dumps(_failed_run(exc), ensure_ascii=False))
        raise
    if as_json:
        click.echo(jsonlib.dumps(report.as_dict(), ensure_ascii=False))
    elif not quiet:
        click.echo(f"polled {report.tasks_polled} task(s) in {report.requests} request(s); "
                   f"{report.newly_succeeded} succeeded, {report.failed} failed, {report.clips_added} new clip(s); "
                   f"{report.files_downloaded} file(s) downloaded; {report.still_unfinished} unfinished; "
                   f"{len(report.errors)} error(s)")
    sys.exit(report.exit_code)


def _failed_run(exc: ArchiverError | OSError) -> dict[str, Any]:
    """The summary of a run that ended in an error instead (the lock held, a bad setting, a
    damaged database, a full disk): the error as stderr shows it, its exit code, and no counts
    (null: a run that stopped has not measured them)."""
    from ..redact import redact
    from ..render import clean_line
    from ..report import SyncReport

    message, code = failure(exc)
    data: dict[str, Any] = {key: None for key in SyncReport().as_dict()}
    data["errors"], data["exit_code"] = [clean_line(redact(message))], code
    return data


def _full_sync(config: Any, sources: tuple[str, ...], ignore_schedule: bool, interval: float | None,
               until_done: bool, timeout: float | None, wait: float | None, no_download: bool, *,
               quiet: bool, worker_id: str | None = None) -> Any:
    from .. import tls

    tls.warm()  # OpenSSL loads the CA bundle on the other core while the libraries import
    with loading_libraries():
        from ..report import PlainReporter, RichReporter
        from ..sync import SyncOptions, run_sync

    if quiet or not sys.stderr.isatty():
        reporter: Any = PlainReporter(quiet=quiet)
    else:
        reporter = RichReporter()
    options = SyncOptions(sources=sources or None, ignore_schedule=ignore_schedule, interval=interval,
                          until_done=until_done, timeout=timeout, download=not no_download, wait=wait,
                          worker_id=worker_id)
    try:
        return run_sync(config, options, reporter)
    finally:
        reporter.close()
