"""Options and arguments that several commands share, each written once.

Source choices are read from the provider registry when a command line is parsed (or its help
drawn), so a provider registered at run time is a valid `--source`; the registry is imported
only then, which keeps `archiver --help` light.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence, TypeVar

import click

from ..fields import Status

F = TypeVar("F", bound=Callable[..., Any])

STATUS_NAMES: tuple[str, ...] = tuple(status.value for status in Status)
COUNT_MAX = 2**63 - 1  # the largest integer SQLite binds: a larger --limit would fail in the query


def source_names() -> tuple[str, ...]:
    """The registered sources, in registry order, as they are at this moment."""
    from ..providers import SOURCES

    return tuple(SOURCES)


class SourceChoice(click.Choice):  # type: ignore[type-arg]
    """A Choice over the provider registry, read each time it is consulted."""

    def __init__(self) -> None:
        super().__init__((), case_sensitive=True)

    @property  # type: ignore[override]
    def choices(self) -> tuple[str, ...]:
        return source_names()

    @choices.setter
    def choices(self, value: Sequence[str]) -> None:
        """click's constructor assigns the choices; the registry stays their only owner."""


class SourcesInHelp(click.Command):
    """A command whose help names the registered sources where its docstring says {sources}."""

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        written = self.help
        self.help = (written or "").replace("{sources}", ", ".join(source_names()))
        try:
            super().format_help_text(ctx, formatter)
        finally:
            self.help = written


def format_option(*choices: str) -> Callable[[F], F]:
    """`--format` among named formats, `table` by default."""
    return click.option("--format", "fmt", type=click.Choice(choices), default="table", show_default=True)


def template_format_option(*choices: str) -> Callable[[F], F]:
    """`--format` that also takes a template of fields; checked by the command, not by click."""
    return click.option("--format", "fmt", default="table", show_default=True, metavar="FORMAT",
                        help=f"{', '.join(choices)}, or a template like '{{title}} ({{length}})'.")


def json_option(help: str) -> Callable[[F], F]:
    return click.option("--json", "as_json", is_flag=True, help=help)


def wait_option(help: str) -> Callable[[F], F]:
    return click.option("--wait", type=click.FloatRange(min=0), metavar="SECONDS", help=help)


def sources_option(func: F) -> F:
    """`--source`, repeatable: only these sources."""
    return click.option("--source", "sources", multiple=True, type=SourceChoice(),
                        help="Only this source (repeatable).")(func)


def source_option(help: str) -> Callable[[F], F]:
    """`--source` once: one source chosen by hand."""
    return click.option("--source", type=SourceChoice(), help=help)


def statuses_option(func: F) -> F:
    """`--status`, repeatable: only tasks in these states."""
    return click.option("--status", "statuses", multiple=True, type=click.Choice(STATUS_NAMES),
                        help="Only this status (repeatable).")(func)


def query_argument(func: F) -> F:
    """QUERY terms in the `ls` grammar (query.py), any number."""
    return click.argument("query", nargs=-1)(func)


def query_options(func: F) -> F:
    """--source, --sort and --limit, shared by `ls` and `export`."""
    func = click.option("--limit", type=click.IntRange(min=0, max=COUNT_MAX), metavar="N",
                        help="At most N clips.")(func)
    func = click.option("--sort", "sort", multiple=True, metavar="FIELD[-]",
                        help="Sort key; '-' suffix for descending (repeatable or comma-separated).")(func)
    return sources_option(func)
