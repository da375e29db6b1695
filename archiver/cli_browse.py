"""Read-side commands: `tasks`, `ls` and the other ways to browse the library.

Registered on the main `cli` group; kept apart from cli.py so each file stays small.
"""

from __future__ import annotations

from .cli import SOURCE_CHOICES, STATUS_CHOICES, Context, cli, handle_errors, pass_ctx

import click


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


