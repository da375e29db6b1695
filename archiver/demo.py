"""`archiver demo`: the whole pipeline against the built-in simulator, no tokens needed.

Starts the simulator on loopback, makes a fresh library, adds the tasks each registered source
asks for (its `sim_demo` outcomes: about a dozen in all), syncs until done (poll, download, tag)
and leaves the library for the user to explore.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from .config import Config, ProviderSettings
from .errors import UsageError
from .providers import SOURCES
from .report import Reporter
from .sync import SyncOptions, SyncReport, add_tasks, run_sync

CLIPS = 2  # clips per demo task, where the provider lets a task have several


def demo_plan() -> list[tuple[str, str]]:
    """(source, outcome) of every demo task, in registry order."""
    return [(name, outcome) for name, source in SOURCES.items()
            for outcome in getattr(source, "sim_demo", ())]


@dataclass(frozen=True)
class DemoResult:
    config: Config
    report: SyncReport


def demo_directory(directory: str | None) -> Path:
    """A new or empty folder: the simulator answers 404 for real task ids, so never a library."""
    if directory:
        path = Path(directory).expanduser()
        if path.exists() and not path.is_dir():
            raise UsageError(f"--dir {path} is not a directory")
        if path.is_dir() and any(path.iterdir()):
            raise UsageError(f"--dir {path} is not empty; the demo needs a new or empty folder "
                             "(it must not run on a real library)")
        path.mkdir(parents=True, exist_ok=True)
        return path
    return Path(tempfile.mkdtemp(prefix="archiver-demo-"))


def run_demo(library: Path, reporter: Reporter, *, timeout: float = 120.0) -> DemoResult:
    from .simulator import Simulator

    plan = demo_plan()
    with Simulator() as sim:
        providers = {
            name: ProviderSettings(name=name, base_url=sim.provider_url(name), token=token)
            for name, token in sim.tokens.items()
        }
        config = Config(library=library, db_url=f"sqlite:///{library.resolve() / 'archiver.db'}",
                        providers=providers, origins={"library": "demo"})
        from .store import Store

        with Store(config.db_url) as store:
            for source, outcome in plan:
                task_id = sim.add_task(source, clips=CLIPS, outcome=outcome)
                add_tasks(store, source, [task_id])
        reporter.info(f"simulator on {sim.base_url}; {len(plan)} tasks added across "
                      f"{len({source for source, _ in plan})} sources")
        options = SyncOptions(until_done=True, timeout=timeout, interval=0.2)
        report = run_sync(config, options, reporter)
    return DemoResult(config, report)
