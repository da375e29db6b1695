"""The `archiver` group and its global options; command modules register on it."""

from __future__ import annotations

import click

from .. import __version__
from .context import Context


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
