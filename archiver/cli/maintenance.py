"""Looking after a library: `verify`, `retag`, `rebuild`, plus `config` and `demo`.

`verify` and `rebuild` need no network: HTTP code is imported only when `verify --repair`
fetches files again.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from ..errors import DatabaseError
from .context import Context, handle_errors, loading_libraries, pass_ctx
from .group import cli
from .options import format_option, json_option, query_argument, wait_option


@cli.command("config")
@format_option("table", "json")
@pass_ctx
@handle_errors
def config_cmd(ctx: Context, fmt: str) -> None:
    """Print the effective configuration and where each value came from (tokens redacted).

    \b
    Example:
      ARCHIVER_ACEDATA_TOKEN=... archiver config
      archiver config --format json | jq .path_template
    """
    data = ctx.config().redacted()
    from ..render import emit, json_text

    if fmt == "json":  # one object, as `stats` and `show` print
        click.echo(json_text(data))
        return
    rows = [{"key": k, "value": v["value"], "from": v["from"]} for k, v in data.items() if k != "providers"]
    for name, entry in data["providers"].items():
        rows += [{"key": f"providers.{name}.{k}", "value": v["value"], "from": v["from"]} for k, v in entry.items()]
    emit(rows, "table", table_columns=("key", "value", "from"), all_columns=("key", "value", "from"))


@cli.command("verify")
@click.option("--repair", is_flag=True, help="Fetch missing or changed files again.")
@json_option("Print the report as JSON.")
@pass_ctx
@handle_errors
def verify_cmd(ctx: Context, repair: bool, as_json: bool) -> None:
    """Check that every archived file exists with its recorded size and sha256.

    Exits 1 when an archived file is missing, changed or has become a symbolic link. Also
    lists orphan media (audio, images, video no clip claims) without failing; other files in
    the library (your playlists, notes) are ignored.

    \b
    Example:
      archiver verify
      archiver verify --repair
    """
    from ..render import clean_line, json_text

    with loading_libraries():
        from ..verify import verify_library

    config = ctx.config()
    with ctx.orm_store() as store:
        report = verify_library(config.library, store)
    if as_json:
        click.echo(json_text({"checked": report.checked, "missing": report.missing, "changed": report.changed,
                              "orphans": report.orphans, "links": report.links}, indent=None))
    else:
        for label, paths in (("missing", report.missing), ("changed", report.changed), ("orphan", report.orphans),
                            ("symlink", report.links)):
            for path in paths:
                click.echo(f"{label}: {clean_line(path)}")
        click.echo(f"checked {report.checked} file(s): {len(report.missing)} missing, {len(report.changed)} changed, "
                   f"{len(report.orphans)} orphan(s)" + (f", {len(report.links)} symbolic link(s)" if report.links else ""))
    if repair and report.bad_ids:
        from ..report import PlainReporter
        from ..sync import SyncOptions, run_sync

        with ctx.store() as store:
            if store.dialect == "postgresql":  # a repair takes no claims: refused before anything changes
                from ..claims import Fleet, default_worker_id

                Fleet(store.engine, default_worker_id(), config.lease).check_alone("repairing files")
            store.mark_missing(report.bad_ids)
        options = SyncOptions(poll=False, asset_ids=report.bad_ids)
        result = run_sync(config, options, PlainReporter(quiet=as_json))
        if not as_json:
            click.echo(f"repaired {result.files_downloaded} file(s)" +
                       (f"; {len(result.errors)} could not be fetched" if result.errors else ""))
        sys.exit(1 if report.links else result.exit_code)
    sys.exit(0 if report.clean else 1)


@cli.command("retag")
@query_argument
@wait_option("Wait this long for a running sync.")
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
    from ..library import list_clips
    from ..lock import LibraryLock
    from ..readdb import existing_file, sqlite_path

    with loading_libraries():
        from ..retag import retag_library

    config = ctx.config()
    if not config.library.is_dir():  # a mistyped --library: an error before the lock makes its folder
        raise DatabaseError(f"no library at {config.library}; check --library, or run `archiver sync` to start one")
    if sqlite_path(config.db_url) is not None:
        existing_file(config.db_url)
    with LibraryLock(config.library, wait), ctx.store(create=False) as store:
        if store.dialect == "postgresql":  # fleet workers take no file lock: retag runs while none is live
            from ..claims import Fleet, default_worker_id

            Fleet(store.engine, default_worker_id(), config.lease).check_alone("retagging")
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
    from ..lock import LibraryLock
    from ..render import clean_line

    with loading_libraries():
        from ..rebuild import rebuild

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
@click.option("--dir", "directory", metavar="DIR", type=click.Path(file_okay=False), help="Where to make the demo library (default: a new temp dir).")
@handle_errors
def demo_cmd(directory: str | None) -> None:
    """Run the whole pipeline against the built-in provider simulator (no tokens, no network).

    Starts fake providers on 127.0.0.1, adds about a dozen tasks across the registered sources,
    syncs until done (poll, download, tag) and prints the library.

    \b
    Example:
      archiver demo --dir ./demo-library
      archiver --library ./demo-library ls
    """
    from ..library import list_clips
    from ..render import rows_table

    with loading_libraries():
        from ..demo import demo_directory, run_demo
        from ..report import PlainReporter, RichReporter
        from ..store import Store

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
    click.echo(f"Listen:      archiver --library {library} serve --open   (a player in your browser)")
    sys.exit(report.exit_code)
