"""`archiver sync`: poll every unfinished task, store what comes back, then fetch the files.

One run holds the library lock (an OS file lock, released by the kernel if the process dies;
on PostgreSQL, several workers share the catalog through claims with a lease instead, claims.py),
polls due tasks source by source (batched where the API allows), records per-task schedules in
the database, and ends within a bounded retry budget whatever the network does.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from typing import Sequence

from . import interrupts
from .config import Config
from .errors import ArchiverError, AuthError, DatabaseError, TaskNotFound
from .lock import LibraryLock
from .models import Task, utcnow
from .providers import SOURCES, Source, get_source
from .providers.http import ApiClient, Counters, RetryBudget, RetryPolicy
from .records import PollKind, PollOutcome, TaskRecord
from .redact import redact
from .report import Reporter, SyncReport
from .store import NOT_FOUND_AFTER, Added, DueTask, Store

# `--until-done` waits this long for a task the provider answers "not found" for (a new task may
# not be known at once), not the week after which it is given up.
UNKNOWN_WAIT = timedelta(minutes=10)



@dataclass(frozen=True)
class SyncOptions:
    sources: Sequence[str] | None = None
    ignore_schedule: bool = False  # --now
    interval: float | None = None  # --interval: base poll interval for this run
    until_done: bool = False
    timeout: float | None = None
    download: bool = True
    poll: bool = True  # False: only download (verify --repair)
    asset_ids: Sequence[int] | None = None  # only these assets (verify --repair)
    wait: float | None = None  # --wait: seconds to wait for the lock
    retry_policy: RetryPolicy = RetryPolicy()
    worker_id: str | None = None  # --worker-id: this worker's name in a PostgreSQL fleet


def run_sync(config: Config, options: SyncOptions, reporter: Reporter) -> SyncReport:
    """The whole job, as cron runs it."""
    for name in options.sources or ():
        get_source(name)  # unknown names fail before any work
    if config.path_template:
        from .paths import validate_template

        validate_template(config.path_template)  # a bad template is a config error (exit 2), not N failures
    if options.asset_ids is None:
        _refuse_absent_library(config)
    with _writer_lock(config, options.wait):
        store = Store(config.db_url)
        try:
            if store.dialect == "postgresql":
                from .claims import Fleet, default_worker_id

                store.fleet = Fleet(store.engine, options.worker_id or default_worker_id(), config.lease)
                if options.asset_ids is not None:  # a repair takes no claims: it runs alone
                    store.fleet.check_alone("repairing files")
                store.fleet.check_name()  # takes the name: of two started at once under it, one goes on
                store.fleet.warn = reporter.warning
            run_id = store.start_run()
            if store.fleet is not None:
                store.fleet.register(run_id)
            report = SyncReport()
            interrupted = False
            try:
                asyncio.run(_run(config, options, store, reporter, report))
            except KeyboardInterrupt:  # Ctrl-C, or SIGTERM through interrupts.sigterm_as_interrupt
                interrupted = True
                raise
            finally:
                report.still_unfinished = store.unfinished_count(options.sources)
                errors = ["interrupted", *report.errors] if interrupted else report.errors
                code = interrupts.exit_code() if interrupted else report.exit_code
                store.finish_run(
                    run_id, exit_code=code,
                    errors=len(report.errors), error_text=redact("\n".join(errors)) or None, **report.counts(),
                )
                if store.fleet is not None:
                    store.fleet.finish(code)
            return report
        finally:
            store.close()


def _writer_lock(config: Config, wait: float | None) -> contextlib.AbstractContextManager[object]:
    """SQLite: one sync per library (the file lock). PostgreSQL: none; workers share the catalog
    through claims in the database (claims.py)."""
    if config.db_url.startswith("postgresql"):
        return contextlib.nullcontext()
    return LibraryLock(config.library, wait)


def _refuse_absent_library(config: Config) -> None:
    """Before the lock creates the library folder: an unmounted disk is not a library to refill."""
    from .mounted import check_present

    if not config.library.exists() and config.db_path is not None and not config.db_path.exists():
        return  # a first run: nothing is recorded anywhere yet
    try:
        store = Store(config.db_url, readonly=True)
    except DatabaseError:
        return  # no database yet (or one too old to read): nothing can be recorded in it
    with store:
        check_present(config.library, store.downloaded_count())


async def _run(config: Config, options: SyncOptions, store: Store, reporter: Reporter,
               report: SyncReport) -> None:
    fleet = store.fleet
    budget = RetryBudget(config.retry_budget)
    if fleet is not None:
        from .claims import FleetBudget

        budget = FleetBudget(store.engine, config.retry_budget)
    counters = Counters()
    deadline = time.monotonic() + options.timeout if options.timeout else None
    names = list(options.sources) if options.sources else list(SOURCES)
    poller = Poller(config, options, store, reporter, report, budget, counters)
    renewing = asyncio.create_task(fleet.renewing()) if fleet is not None else None
    if options.download and options.poll:
        _preload_archive()
    try:
        while True:
            if options.poll:
                await poller.poll_pass()
            if options.download:
                await _download(config, options, store, reporter, report, poller)
            if not options.until_done:
                break
            busy = fleet is not None and await asyncio.to_thread(fleet.others_busy, names, options.download)
            waited = utcnow() - UNKNOWN_WAIT  # a new task the provider does not know yet may be soon
            if not busy and not store.unfinished_count(names, unknown_since=waited):
                if unknown := store.unfinished_count(names):  # a mistyped id: no point waiting a week
                    reporter.info(f"{unknown} task(s) the provider has not known for {UNKNOWN_WAIT.seconds // 60} "
                                  "minutes stay pending; not waiting for them")
                break
            pause = _until_next(store, names, deadline)
            if pause is None:
                reporter.info("timeout reached; tasks are still unfinished")
                break
            await asyncio.sleep(min(pause, 0.5) if busy else pause)
    finally:
        if renewing is not None:
            renewing.cancel()
        await poller.aclose()
        report.requests = counters.requests
        report.retries = counters.retries


def _preload_archive() -> None:
    """The download side (`archive`: pycurl, mutagen and the rest, ~0.1 s) loads in a thread
    while the first poll waits on the network; `_download` then finds it loaded, or waits for it."""
    def load() -> None:
        with contextlib.suppress(Exception):  # `_download`'s own import raises it again, where it is reported
            from . import archive  # noqa: F401

    with contextlib.suppress(RuntimeError):  # no thread to be had: `_download` imports it itself
        threading.Thread(target=load, name="archiver-preload").start()


def _until_next(store: Store, names: Sequence[str], deadline: float | None) -> float | None:
    """Seconds to sleep before the next task is due; None when the deadline comes first."""
    due = store.next_due(names)
    now = utcnow() if store.fleet is None else store.fleet.server_now()  # a fleet's schedule is the server's
    wait = max(0.05, (due - now).total_seconds()) if due else 0.05
    if deadline is not None:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        wait = min(wait, left)
    return wait


async def _download(config: Config, options: SyncOptions, store: Store, reporter: Reporter,
                    report: SyncReport, poller: "Poller") -> None:
    from .archive import archive_pending

    ids = list(options.asset_ids) if options.asset_ids is not None else None
    fleet = store.fleet
    while True:
        if fleet is not None and ids is None:  # a fleet worker archives the clips it claimed, batch by batch
            claimed = await asyncio.to_thread(fleet.claim_clips, max(1, config.jobs) * 8)
            if not claimed:
                return
            try:
                result = await archive_pending(config, store, reporter, refresh=poller.refresh_task,
                                               asset_ids=claimed)
            finally:
                await asyncio.to_thread(fleet.release_assets)
        else:
            result = await archive_pending(config, store, reporter, refresh=poller.refresh_task, asset_ids=ids)
        report.files_downloaded += result.downloaded
        report.bytes_downloaded += result.bytes
        report.downloads_failed += result.failed
        for message in [*result.errors, *([result.stopped] if result.stopped else [])]:
            report.errors.append(message)
            reporter.error(message)
        if fleet is None or ids is not None or result.stopped:
            return


class Poller:
    """Polls due tasks; one API client per provider for the whole run."""

    def __init__(self, config: Config, options: SyncOptions, store: Store, reporter: Reporter,
                 report: SyncReport, budget: RetryBudget, counters: Counters) -> None:
        self.config = config
        self.options = options
        self.store = store
        self.reporter = reporter
        self.report = report
        self.budget = budget
        self.counters = counters
        self.clients: dict[str, ApiClient] = {}
        self.disabled: set[str] = set()
        self.first_pass = True

    def client(self, provider: str) -> ApiClient:
        if provider not in self.clients:
            self.clients[provider] = ApiClient(
                self.config.provider(provider), connect_timeout=self.config.connect_timeout,
                read_timeout=self.config.read_timeout, budget=self.budget, counters=self.counters,
                policy=self.options.retry_policy,
            )
        return self.clients[provider]

    async def aclose(self) -> None:
        for client in self.clients.values():
            await client.aclose()

    async def poll_pass(self) -> None:
        now = utcnow()
        names = list(self.options.sources) if self.options.sources else list(SOURCES)
        ignore = self.options.ignore_schedule and self.first_pass
        self.first_pass = False
        if self.store.fleet is not None:
            await self._fleet_pass(names, ignore)
            return
        due = self.store.due_tasks(now, names, ignore_schedule=ignore)
        by_source: dict[str, list[Task]] = defaultdict(list)
        for task in due:
            by_source[task.source].append(task)
        self.report.passes += 1
        await asyncio.gather(*(self._poll_source(get_source(n), tasks) for n, tasks in by_source.items()))

    async def _fleet_pass(self, names: Sequence[str], ignore: bool) -> None:
        """A pass of a fleet worker: claim due tasks in whole batches, poll them, give them back."""
        fleet = self.store.fleet
        assert fleet is not None
        started = await asyncio.to_thread(fleet.server_now)  # a fleet's schedule runs on the server's clock
        fleet.new_pass()

        async def one_source(source: Source) -> None:
            settings = self.config.provider(source.provider)
            limit = max(1, settings.concurrency) * (settings.batch_size if source.batch else 8)
            while source.provider not in self.disabled:
                claimed = await asyncio.to_thread(fleet.claim_tasks, source.name, limit, ignore_schedule=ignore,
                                                  pass_start=started)
                if not claimed:
                    return
                try:
                    await self._poll_source(source, [DueTask(*row) for row in claimed])
                finally:
                    await asyncio.to_thread(fleet.release_tasks, [row[0] for row in claimed])

        self.report.passes += 1
        await asyncio.gather(*(one_source(get_source(n)) for n in names))

    def _slot(self, provider: str, concurrency: int) -> contextlib.AbstractAsyncContextManager[None]:
        """A fleet's shared request slot of the provider; nothing extra for a lone worker."""
        if self.store.fleet is None:
            return contextlib.nullcontext()
        return self.store.fleet.slot(provider, concurrency)

    async def _poll_source(self, source: Source, tasks: list[Task]) -> None:
        provider = source.provider
        if provider in self.disabled:
            return
        settings = self.config.provider(provider)
        if not settings.token:
            self._disable(provider, f"{provider} has no token configured (set ARCHIVER_{provider.upper()}_TOKEN "
                                    f"or token in [providers.{provider}])")
            return
        ids = [t.task_id for t in tasks]
        size = settings.batch_size if source.batch else 1
        groups = [ids[i:i + size] for i in range(0, len(ids), size)]
        limit = asyncio.Semaphore(max(1, settings.concurrency))
        records: list[TaskRecord] = []
        outcomes: dict[str, PollOutcome] = {}

        async def one(group: list[str]) -> None:
            async with limit, self._slot(provider, settings.concurrency):
                if provider in self.disabled:
                    return
                try:
                    found, missing = await self.client(provider).fetch(source, group)
                except AuthError as exc:
                    self._disable(provider, str(exc))
                    return
                except ArchiverError as exc:
                    message = str(exc)
                    self.report.errors.append(f"{message} (tasks: {', '.join(group[:3])}"
                                              f"{', ...' if len(group) > 3 else ''})")
                    self.reporter.error(message)
                    for task_id in group:
                        outcomes[task_id] = PollOutcome.error(message)
                    return
                records.extend(found)
                for record in found:
                    outcomes[record.task_id] = PollOutcome.ok()
                for task_id, exc in missing.items():
                    not_found = isinstance(exc, TaskNotFound)
                    outcomes[task_id] = PollOutcome.not_found(str(exc)) if not_found else PollOutcome.error(str(exc))

        await asyncio.gather(*(one(g) for g in groups))
        self._store(source, records, outcomes, settings.interval)

    def _store(self, source: Source, records: list[TaskRecord], outcomes: dict[str, PollOutcome],
               interval: float | None) -> None:
        base = self.options.interval or interval or source.interval
        # a fleet worker records only what it still claims, checked as it is recorded
        result, given_up, outcomes = self.store.record_polls(source.name, records, outcomes, base,
                                                             self.config.max_backoff)
        self.report.tasks_polled += len(outcomes)
        self.report.newly_succeeded += result.newly_succeeded
        self.report.failed += result.newly_failed + len(given_up)
        self.report.clips_added += result.clips_added
        for message in result.warnings:
            self.reporter.warning(message)
        for record in records:  # what a normalizer dropped as absurd (a duration of 1e308, say)
            for clip in record.clips:
                for message in clip.warnings:
                    self.reporter.warning(f"{source.name} {clip.clip_id}: {message}")
        for task_id, outcome in outcomes.items():
            if outcome.kind is not PollKind.NOT_FOUND:
                continue
            message = outcome.message or task_id
            if task_id in given_up:
                self.reporter.warning(f"{message}; not found for {NOT_FOUND_AFTER.days} days, marked failed "
                                      "(`archiver retry` queues it again)")
            else:  # a typo in a base URL or an outage looks the same: this run did not succeed
                self.report.errors.append(message)
                self.reporter.error(message)
        if result.newly_succeeded or result.newly_failed or result.clips_added:
            self.reporter.info(f"{source.name}: {len(outcomes)} polled, {result.newly_succeeded} succeeded, "
                               f"{result.newly_failed} failed, {result.clips_added} new clips")

    def _disable(self, provider: str, message: str) -> None:
        if provider in self.disabled:
            return
        self.disabled.add(provider)
        self.report.errors.append(message)
        self.reporter.error(f"{message}; skipping {provider} for this run")

    async def refresh_task(self, source_name: str, task_id: str) -> bool:
        """Re-poll one task for fresh media URLs (expired CDN links). True if it was refreshed."""
        source = get_source(source_name)
        if source.provider in self.disabled or not self.config.provider(source.provider).token:
            return False
        try:
            found, _missing = await self.client(source.provider).fetch(source, [task_id])
        except AuthError as exc:
            self._disable(source.provider, str(exc))
            return False
        except ArchiverError as exc:
            self.reporter.warning(f"could not refresh links of {task_id}: {exc}")
            return False
        if found:
            self.store.apply(found, utcnow())
        return bool(found)


def add_tasks(store: Store, source: str, task_ids: Sequence[str]) -> Added:
    """Register ids for polling; known failed ones are queued again."""
    checked = get_source(source)
    for task_id in task_ids:  # an id that could not be sent safely is a usage error now, not a poll error later
        if task_id.strip():
            checked.check_id(task_id.strip())
    return store.add_tasks(source, task_ids)
