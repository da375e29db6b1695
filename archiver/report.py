"""How a sync talks to the person (or cron) running it.

The engine calls a Reporter; the CLI picks one: rich progress on a terminal, plain log lines
otherwise, errors only with --quiet, nothing but the final JSON with --json. Every line passes
through `archiver.redact` first: the last net for a secret that slipped into a message.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Protocol, TextIO

from .errors import EXIT_FAILURES, EXIT_OK
from .fields import RunCounters
from .redact import redact
from .render import clean_line


@dataclass
class SyncReport(RunCounters):
    """The run's counters (those `sync_runs` keeps come from RunCounters) and its errors."""

    retries: int = 0
    passes: int = 0
    downloads_failed: int = 0
    still_unfinished: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_FAILURES if self.errors else EXIT_OK

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["exit_code"] = self.exit_code
        return data


class Reporter(Protocol):
    def info(self, message: str) -> None: ...
    def error(self, message: str) -> None: ...
    def warning(self, message: str) -> None: ...
    def download_started(self, name: str, total: int | None) -> object: ...
    def download_total(self, handle: object, total: int | None, done: int) -> None: ...
    def download_advanced(self, handle: object, nbytes: int) -> None: ...
    def download_finished(self, handle: object) -> None: ...
    def close(self) -> None: ...


class PlainReporter:
    """Log lines: what cron mails you."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None, *, quiet: bool = False,
                 secrets: Iterable[str | None] = ()) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.quiet = quiet
        self.secrets = tuple(s for s in secrets if s)  # besides those the loaded config registered

    def clean(self, message: str) -> str:
        return clean_line(redact(message, self.secrets))

    def info(self, message: str) -> None:
        if not self.quiet:
            print(self.clean(message), file=self.out, flush=True)

    def warning(self, message: str) -> None:
        if not self.quiet:
            print(f"warning: {self.clean(message)}", file=self.err, flush=True)

    def error(self, message: str) -> None:
        print(f"error: {self.clean(message)}", file=self.err, flush=True)

    def download_started(self, name: str, total: int | None) -> object:
        return name

    def download_total(self, handle: object, total: int | None, done: int) -> None:
        pass

    def download_advanced(self, handle: object, nbytes: int) -> None:
        pass

    def download_finished(self, handle: object) -> None:
        pass

    def close(self) -> None:
        pass


class RichReporter(PlainReporter):
    """A live progress display (bytes, speed, files) for an interactive terminal."""

    def __init__(self, *, secrets: Iterable[str | None] = ()) -> None:
        super().__init__(secrets=secrets)
        from rich.console import Console
        from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn,
                                   TimeRemainingColumn, TransferSpeedColumn)

        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("{task.description}", justify="left"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self.overall = self.progress.add_task("files 0", total=None, visible=False)
        self.files = 0
        self.progress.start()

    def clean(self, message: str) -> str:
        """Redacted, and with rich markup escaped: a `[bold]` in a provider's title is text."""
        from rich.markup import escape

        return escape(super().clean(message))

    def info(self, message: str) -> None:
        self.progress.console.print(self.clean(message))

    def warning(self, message: str) -> None:
        self.progress.console.print(f"[yellow]warning:[/] {self.clean(message)}")

    def error(self, message: str) -> None:
        self.progress.console.print(f"[red]error:[/] {self.clean(message)}")

    def download_started(self, name: str, total: int | None) -> object:
        label = name if len(name) <= 40 else name[:37] + "..."
        return self.progress.add_task(label, total=total)

    def download_total(self, handle: object, total: int | None, done: int) -> None:
        self.progress.update(handle, total=total, completed=done)  # type: ignore[arg-type]

    def download_advanced(self, handle: object, nbytes: int) -> None:
        self.progress.advance(handle, nbytes)  # type: ignore[arg-type]

    def download_finished(self, handle: object) -> None:
        self.files += 1
        self.progress.remove_task(handle)  # type: ignore[arg-type]
        self.progress.update(self.overall, description=f"files {self.files}", visible=True)

    def close(self) -> None:
        self.progress.stop()
