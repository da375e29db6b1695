"""Read-side commands: `tasks`, `ls`, `search`, `show`, `stats` and `export`.

The SQL lives in library.py and overview.py, the query language in query.py; this module parses
options and prints. None of these commands creates or writes a library.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, Sequence, TextIO

import click

from ..errors import UsageError
from ..fields import CLIP_TABLE
from .context import Context, handle_errors, pass_ctx
from .group import cli
from .options import (COUNT_MAX, STATUS_NAMES, format_option, query_argument, query_options, sources_option,
                      statuses_option, template_format_option)

LS_TABLE = ("source", "clip_id", "title", "duration", "model", "status", "audio_path")
LS_FORMATS = ("table", "json", "csv", "m3u", "m3u8")
PLAYLISTS = ("m3u", "m3u8")  # the same UTF-8 text; players expect the .m3u8 name for non-ASCII
TEMPLATE_EXTRAS = ("length", "year")  # derived fields a --format template may use besides the columns


@cli.command("tasks")
@sources_option
@statuses_option
@format_option("table", "json", "csv")
@pass_ctx
@handle_errors
def tasks_cmd(ctx: Context, sources: tuple[str, ...], statuses: tuple[str, ...], fmt: str) -> None:
    """List tasks with their status, progress, error and clip count.

    \b
    Example:
      archiver tasks --status failed --format json
    """
    from ..library import TASK_COLUMNS, list_tasks
    from ..render import emit

    with ctx.store(readonly=True) as store:
        rows = list_tasks(store, sources=sources or None, statuses=statuses or None)
    emit(rows, fmt, table_columns=("source", "task_id", "status", "provider_status", "progress", "clips", "error"),
         all_columns=TASK_COLUMNS, title="tasks")


def _formatter(fmt: str, allowed: Sequence[str]) -> Callable[[dict[str, Any]], str] | None:
    """A template renderer when `fmt` holds `{`; None for a named format; UsageError otherwise."""
    if "{" in fmt:
        from ..library import CLIP_COLUMNS
        from ..render import clean_line, length
        from ..rowtemplate import template_renderer

        render = template_renderer(fmt, CLIP_COLUMNS + TEMPLATE_EXTRAS)

        def line(row: dict[str, Any]) -> str:
            values = {k: clean_line(v) if isinstance(v, str) else v for k, v in row.items()}
            return render({**values, "length": length(row.get("duration")),
                           "year": (row.get("created_at") or "")[:4] or None})

        return line
    if fmt not in allowed:
        raise UsageError(f"unknown format {fmt!r}; use one of {', '.join(allowed)} "
                         "or a template such as '{title} {duration}'")
    return None


def _clips(store: Any, fmt: str, query: tuple[str, ...], sources: tuple[str, ...], sort: tuple[str, ...],
           limit: int | None) -> list[Any]:
    """The matching clips: JSON texts for the json format (made by the database), else rows."""
    from ..library import clips_json, list_clips

    fetch = clips_json if fmt == "json" else list_clips
    return fetch(store, query, sources=sources or None, sort=sort, limit=limit)


def _write_rows(rows: list[Any], fmt: str, out: TextIO, *, library: Path,
                playlist_dir: Path | None, template: Callable[[dict[str, Any]], str] | None) -> None:
    from ..library import CLIP_COLUMNS, m3u
    from ..render import emit, json_lines

    if fmt == "json":
        json_lines(rows, out)
    elif template is not None:
        out.write("".join(template(row) + "\n" for row in rows))
    elif fmt in PLAYLISTS:
        out.write(m3u(rows, library, playlist_dir))
    else:
        emit(rows, fmt, table_columns=LS_TABLE, all_columns=CLIP_COLUMNS, out=out, title="clips")


@cli.command("ls")
@query_argument
@query_options
@template_format_option(*LS_FORMATS)
@pass_ctx
@handle_errors
def ls_cmd(ctx: Context, query: tuple[str, ...], sources: tuple[str, ...], sort: tuple[str, ...],
           limit: int | None, fmt: str) -> None:
    """List clips matching QUERY: title, tags, duration, model, and where their files are.

    QUERY terms are ANDed. A bare word matches title, tags or lyrics; FIELD:VALUE matches one
    field (source, status, model, title, tags, lyrics, seed, task, clip, path, year, created,
    duration, downloaded); ranges use '..' (duration:120..180, created:2026-03.., year:..2025);
    '^' excludes (^source:acedata, ^rain).

    \b
    Example:
      archiver ls rain ^source:acedata duration:2:00..3:30 --sort created- --limit 20
      archiver ls year:2026 --format '{title} ({length}) {audio_path}'
      archiver ls --source acedata --format json
    """
    template = _formatter(fmt, LS_FORMATS)
    with ctx.store(readonly=True) as store:
        rows = _clips(store, fmt, query, sources, sort, limit)
    _write_rows(rows, fmt, sys.stdout, library=ctx.config().library, playlist_dir=None, template=template)


@cli.command("export")
@click.argument("fmt", metavar="FORMAT", type=click.Choice([*PLAYLISTS, "json", "csv"]))
@query_argument
@query_options
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True), metavar="FILE",
              help="Write here instead of standard output (a regular file is replaced atomically).")
@pass_ctx
@handle_errors
def export_cmd(ctx: Context, fmt: str, query: tuple[str, ...], sources: tuple[str, ...], sort: tuple[str, ...],
               limit: int | None, output: str | None) -> None:
    """Export the clips matching QUERY (same grammar as `ls`) as a playlist, JSON or CSV.

    An M3U playlist lists only clips whose audio is downloaded, with paths relative to the
    playlist file, so it keeps working when library and playlist move together. It is UTF-8
    text; `m3u8` writes the same, for players that read non-ASCII only from a .m3u8 file.

    \b
    Example:
      archiver export m3u year:2026 ^status:failed -o ~/Music/ai-2026.m3u
      archiver export m3u8 title:über -o ~/Music/über.m3u8
      archiver export csv source:mountsea -o mountsea.csv
    """
    import io

    from ..library import owned_by_library
    from ..output import streams_into, write_output

    if output == "":
        raise UsageError("-o/--output: give a file name, or - for standard output")
    config = ctx.config()
    target = None if output is None or output == "-" else Path(output).expanduser()
    with ctx.store(readonly=True) as store:
        if target is not None and (what := owned_by_library(store, config.library, config.db_path, target)):
            raise UsageError(f"refusing to write the export over {what}: {target}")
        rows = _clips(store, fmt, query, sources, sort, limit)
    library = config.library
    if target is None:
        _write_rows(rows, fmt, sys.stdout, library=library, playlist_dir=None, template=None)
        return
    into = streams_into(target)  # a pipe or terminal has no folder for a playlist's paths to be relative to
    buffer = io.StringIO()
    _write_rows(rows, fmt, buffer, library=library, playlist_dir=None if into else target.parent, template=None)
    write_output(target, buffer.getvalue().encode("utf-8"), into=into)
    count = sum(1 for r in rows if r.get("audio_path")) if fmt in PLAYLISTS else len(rows)
    click.echo(f"wrote {count} clip(s) to {target}", err=True)


@cli.command("search")
@click.argument("words", nargs=-1, required=True)
@click.option("--limit", type=click.IntRange(min=1, max=COUNT_MAX), default=50, show_default=True, metavar="N")
@format_option("table", "json")
@pass_ctx
@handle_errors
def search_cmd(ctx: Context, words: tuple[str, ...], limit: int, fmt: str) -> None:
    """Full-text search of titles, lyrics and style tags, best match first.

    Every word must match (any order); "quoted words" must appear together; word* matches a
    prefix. Accents and case are ignored. Anything else is taken literally.

    \b
    Example:
      archiver search neon rain
      archiver search '"city lights"' --format json
    """
    from ..library import SEARCH_COLUMNS, search
    from ..render import emit

    with ctx.store(readonly=True) as store:
        rows = search(store, " ".join(words), limit=limit)
    emit(rows, fmt, table_columns=("source", "clip_id", "title", "duration", "snippet"),
         all_columns=SEARCH_COLUMNS, title="search")


def _human_bytes(size: int | None) -> str:
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


_MULTILINE = frozenset({"lyrics"})


def _fields(out: list[str], data: dict[str, Any], keys: Sequence[str], indent: str = "") -> None:
    """One `key value` line per field; only lyrics keep their line breaks, indented below the key."""
    from ..render import clean_line, clean_text

    for key in keys:
        value = data.get(key)
        if value is None or value == "":
            continue
        text = clean_text(value) if key in _MULTILINE else clean_line(value)
        if "\n" in text:
            out.append(f"{indent}{key}:")
            out.extend(f"{indent}  {line}" for line in text.split("\n"))
        else:
            out.append(f"{indent}{key:<15} {text}")


def _files(out: list[str], files: list[dict[str, Any]], indent: str) -> None:
    from ..render import clean_line

    if not files:
        out.append(f"{indent}files           (none yet)")
        return
    out.append(f"{indent}files:")
    for f in files:
        head = f"{f['kind']:<6}{f['state']:<11}{clean_line(f['path'] or '-')}"
        extra = [_human_bytes(f["size"]), f"{f['attempts']} attempt(s)"]
        if f["state"] == "downloaded":
            extra.append("tagged" if f["tagged"] else "not tagged")
        out.append(f"{indent}  {head}  ({', '.join(x for x in extra if x)})")
        for key in ("sha256", "url", "downloaded_at", "last_error", "warning"):
            if f.get(key):
                out.append(f"{indent}        {key:<14}{clean_line(f[key])}")


# The clip table's fields with the clip's place and bookkeeping; URLs, then lyrics (long) last.
_CLIP_KEYS = ("clip_id", "source", "task_id", "task_status",
              *(f.name for f in CLIP_TABLE if f.name != "clip_id" and f.name not in _MULTILINE and f.asset is None),
              "first_seen", "updated_at", *(f.name for f in CLIP_TABLE if f.asset is not None),
              *(f.name for f in CLIP_TABLE if f.name in _MULTILINE))
_TASK_KEYS = ("task_id", "source", "status", "provider_status", "progress", "error", "created_at",
              "finished_at", "provider_updated_at", "first_seen", "last_polled", "updated_at",
              "next_poll_at", "polls", "idle_polls", "poll_errors")


def _show_text(data: dict[str, Any]) -> str:
    out: list[str] = []
    if data["kind"] == "clip":
        _fields(out, data, _CLIP_KEYS)
        _files(out, data["files"], "")
        out.append("task:")
        _fields(out, data["task"], _TASK_KEYS[2:], "  ")
    else:
        _fields(out, data, _TASK_KEYS)
        out.append(f"clips           {len(data['clips'])}")
        for clip in data["clips"]:
            out.append("")
            _fields(out, clip, [k for k in _CLIP_KEYS if k not in ("source", "task_id", "task_status")], "  ")
            _files(out, clip["files"], "  ")
    return "\n".join(out) + "\n"


@cli.command("show")
@click.argument("ident", metavar="ID")
@format_option("table", "json")
@pass_ctx
@handle_errors
def show_cmd(ctx: Context, ident: str, fmt: str) -> None:
    """Everything known about one task or clip: fields, files, tag state.

    ID is a task id or clip id; a unique prefix is enough (`task:ID` / `clip:ID` to choose).

    \b
    Example:
      archiver show 1dd08826
      archiver show task_7f11 --format json
    """
    from ..library import detail
    from ..render import json_text

    with ctx.store(readonly=True) as store:
        data = detail(store, ident)
    if fmt == "json":
        click.echo(json_text(data))
    else:
        click.echo(_show_text(data), nl=False)


@cli.command("stats")
@format_option("table", "json")
@pass_ctx
@handle_errors
def stats_cmd(ctx: Context, fmt: str) -> None:
    """Counts by source and status, total duration, bytes on disk, pending files, last sync.

    \b
    Example:
      archiver stats
      archiver stats --format json | jq .files
    """
    from ..overview import stats
    from ..render import clean_line, json_text, length, rows_table

    with ctx.store(readonly=True) as store:
        data = stats(store)
    if fmt == "json":
        click.echo(json_text(data))
        return
    statuses = ", ".join(f"{k} {v}" for k, v in data["tasks_by_status"].items())
    files = data["files"]
    lines = [f"tasks      {data['tasks']}" + (f"  ({statuses})" if statuses else ""),
             f"clips      {data['clips']}  ({length(data['duration']) or '0:00'} total)",
             f"files      {files.get('downloaded', 0)} downloaded ({_human_bytes(data['bytes_on_disk'])} on disk), "
             f"{files.get('pending', 0)} pending, {files.get('failed', 0)} failed"]
    run = data["last_sync"]
    if run:
        lines.append(f"last sync  {run['started_at']} .. {run['finished_at'] or 'unfinished'}, "
                     f"exit {run['exit_code'] if run['exit_code'] is not None else '?'}, "
                     f"{run['errors']} error(s)" + (", interrupted" if run["interrupted"] else "")
                     + f"  ({run['runs']} run(s) in all)")
        for earlier in data["recent_syncs"][1:]:
            lines.append(f"earlier    {earlier['started_at']}, exit {earlier['exit_code']}"
                         + (", interrupted" if earlier["interrupted"] else ""))
    else:
        lines.append("last sync  never")
    for worker in data.get("fleet", ()):
        state = "alive" if worker["alive"] else (f"exit {worker['exit_code']}" if worker["finished_at"] else "gone")
        lines.append(f"worker     {worker['name']}  {state}, claims {worker['tasks_claimed']} task(s) "
                     f"{worker['files_claimed']} file(s), last run {worker['started_at']} .. "
                     f"{worker['finished_at'] or 'unfinished'}")
    click.echo("\n".join(clean_line(line) for line in lines) + "\n")
    columns = ("source", "tasks", *STATUS_NAMES, "clips", "duration")
    rows = [{"source": name, "tasks": s["tasks"], **{k: s["statuses"].get(k, 0) for k in STATUS_NAMES},
             "clips": s["clips"], "duration": length(s["duration"])} for name, s in data["sources"].items()]
    rows_table(rows, columns, sys.stdout, title="by source")
