"""Turning pending assets into archived files: naming, fetching, checking, tagging, recording.

Per clip the cover is fetched first (so the audio can embed it) but placed after the audio, then
any video; the clip's audio path fixes the stem every sibling file shares. Clips run
concurrently up to `jobs`. Rewriting the tags of archived files lives in `retag`.

Finished files are committed in groups: each is fsynced and renamed into place as it is ready,
and a batch of them then gets one fsync per folder (making the renames durable) and one database
transaction. A run killed in between leaves files in place but unrecorded, which the next run
adopts (their tags prove whose they are); nothing is recorded before it is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Awaitable, Callable

import aiofiles

from .adoption import find_in_place, proves
from .audiolength import audio_length
from .config import Config
from .download import Fetched, Transfer, Tuning, fetch, guess_ext, media_client
from .errors import ArchiverError, ClaimLost, DatabaseError, DownloadError, StorageError, UnsafePath
from .fs import (PART, TAGGING, discard, fsync_dirs, place, read_fd, regular_size, removed_part, sha256_file,
                 temp_path)
from .fs import stem_key as _stem_key
from .fs import walk_library
from .folder_art import write_folder_covers
from .leftovers import split_leftovers
from .media import final_ext
from .models import Asset, Clip, Task
from .mounted import check_present
from .paths import DEFAULT_TEMPLATE, clip_fields, render_relpath, resolve_inside, sibling, unique_relpath
from .report import Reporter
from .finishing import Prelude, finish_audio, finish_prelude, truncated
from .retag import SIDECAR, created_of, retag_file, tag_data, tracks_of, write_lyrics
from .store import Store

GROUP_FILES = 32  # files committed together (one folder fsync each, one transaction)
GROUP_SECONDS = 1.0  # or as soon as the oldest waiting file has waited this long


@dataclass
class DownloadSummary:
    downloaded: int = 0
    bytes: int = 0
    failed: int = 0
    adopted: int = 0  # files found complete in place (a run that died before recording them)
    errors: list[str] = field(default_factory=list)
    stopped: str | None = None  # why downloads stopped early (a full disk); counts above still hold


@dataclass(frozen=True)
class _Ready:
    """A fetched, checked, tagged and fsynced file under its temporary name."""

    part: Path
    final: Path
    rel: PurePosixPath
    size: int
    digest: str
    tagged: bool
    warning: str | None
    transferred: int


async def archive_pending(config: Config, store: Store, reporter: Reporter, *,
                          refresh: Callable[[str, str], Awaitable[bool]] | None = None,
                          tuning: Tuning | None = None, asset_ids: list[int] | None = None) -> DownloadSummary:
    """Archive every pending asset of every succeeded clip (only `asset_ids`, when given)."""
    archiver = Archiver(config, store, reporter, refresh=refresh, tuning=tuning or Tuning())
    return await archiver.run(asset_ids=asset_ids)


class Archiver:
    def __init__(self, config: Config, store: Store, reporter: Reporter, *,
                 refresh: Callable[[str, str], Awaitable[bool]] | None, tuning: Tuning) -> None:
        self.config = config
        self.store = store
        self.reporter = reporter
        self.refresh_task = refresh
        self.tuning = tuning
        self.root = config.library
        self.base = self.root.resolve()  # the real root, resolved once for every file placed
        self.template = config.path_template or DEFAULT_TEMPLATE
        self.summary = DownloadSummary()
        self.taken: set[str] = set()
        self.held: dict[int, _Ready] = {}  # clip pk -> its cover, ready, waiting for the audio
        self.foreign: dict[str, list[str]] = {}  # stem key -> files on disk the database does not record
        self.keep_parts: set[Path] = set()
        self.located: set[str] = set()  # every path this run writes to (its leftovers are archiver's)
        self.covered: set[int] = set()  # audio assets tagged in this run with their cover already in
        self.unrecorded: list[tuple[Asset, _Ready]] = []  # in place, their folder not yet fsynced
        self.songs: set[int] = set()  # clips whose audio is in place: its tags prove whose the siblings are
        self.waiting_since = 0.0  # when the oldest of them was placed
        self.committing = asyncio.Lock()  # batches are recorded in the order they were placed
        self.tracks: dict[int, list[Clip]] = {}  # task pk -> its clips with audio (the album), read once
        # A fleet worker's temporary files carry its name (claims.py); it writes no more for a file whose claim it lost.
        self.part_tag, self.lost = ("", set()) if store.fleet is None else (store.fleet.tag, store.fleet.lost)
        self.sidecars: set[Path] = set()  # audio whose lyrics sidecar this run created (it goes with a dropped file)

    async def run(self, asset_ids: list[int] | None = None) -> DownloadSummary:
        recorded = self.store.downloaded_paths()  # before the walk: a file another fleet worker records is on disk
        on_disk, parts, links = walk_library(self.root)
        if asset_ids is None:
            check_present(self.root, len(recorded), on_disk)
        missing = [asset_id for path, asset_id in recorded.items() if path not in on_disk and path not in links]
        for path in sorted(links.intersection(recorded)):
            self.reporter.warning(f"{path} is now a symbolic link; not following it (see `archiver verify`)")
        if missing:
            self.reporter.warning(f"{len(missing)} archived file(s) missing from disk; fetching them again")
            self.store.mark_missing(missing)
        work = self.store.pending_work(asset_ids)
        if work:
            self.tracks = tracks_of(self.store, [task.id or 0 for _clip, task, _assets in work])
            recorded_all = self.store.all_paths()
            self.taken = {_stem_key(p) for p in recorded_all}
            for rel in on_disk | links:  # files nobody recorded block their stem too
                if rel.casefold() not in recorded_all:
                    self.foreign.setdefault(_stem_key(rel), []).append(rel)
            jobs = max(1, self.config.jobs)
            limit = asyncio.Semaphore(jobs)
            async with media_client(self.config, jobs) as client:
                try:
                    async with asyncio.TaskGroup() as group:
                        for clip, task, assets in work:
                            group.create_task(self._guarded(limit, client, clip, task, assets))
                except* StorageError as storage:  # the other transfers were cancelled with it
                    self.summary.stopped = str(storage.exceptions[0])
                except* DatabaseError as database:  # nothing more could be recorded (a full disk, say)
                    self.summary.stopped = f"{database.exceptions[0]}; downloads stopped"
                try:  # what is in place is recorded, also when the downloads stopped early
                    await self._record_placed()
                except StorageError as exc:
                    self.summary.stopped = self.summary.stopped or str(exc)
                except DatabaseError as exc:
                    self.summary.stopped = self.summary.stopped or f"{exc}; downloads stopped"
            if self.unrecorded:  # for good: a song in place is adopted later by its tags, a file beside none cannot be
                await asyncio.to_thread(discard, [ready.final for asset, ready in self.unrecorded
                                                  if asset.kind != "audio" and asset.clip_pk not in self.songs])
            if self.summary.stopped is None:  # folder covers: see folder_art
                covers = await asyncio.to_thread(write_folder_covers, self.config, self.store,
                                                 {task.id or 0 for _clip, task, _assets in work})
                for message in covers.warnings:
                    self.reporter.warning(message)
        if self.summary.adopted:
            self.reporter.info(f"{self.summary.adopted} file(s) found complete in place were recorded, not fetched")
        leftover = [part for part in parts if part not in self.keep_parts]  # from runs that died
        if leftover and self.store.fleet is None:
            stems = {_stem_key(p) for p in self.store.all_paths() | self.located}
            leftover, theirs = split_leftovers(self.root, leftover, stems)
            if theirs:
                self.reporter.warning(f"left {len(theirs)} .part file(s) that no file of the library accounts for "
                                      f"(yours?), e.g. {theirs[0].relative_to(self.root)}")
        clear = discard if self.store.fleet is None else self.store.fleet.clear_parts  # a fleet: only its own and dead workers'
        await asyncio.to_thread(clear, leftover)
        return self.summary

    async def _guarded(self, limit: asyncio.Semaphore, client: Any, clip: Clip, task: Task,
                       assets: list[Asset]) -> None:
        async with limit:
            await self._clip(client, clip, task, assets)

    def _stem(self, clip: Clip, task: Task, assets: dict[str, Asset]) -> PurePosixPath:
        """The clip's audio path (recorded, or rendered from the template and made unique)."""
        audio = assets.get("audio")
        if audio is not None and audio.path:
            return PurePosixPath(audio.path)
        for asset in assets.values():
            if asset.path:  # a cover archived before the audio: keep the stem it chose
                return sibling(PurePosixPath(asset.path), guess_ext(clip.audio_url, "audio"))
        fields = clip_fields(clip, source=clip.source, task_id=task.task_id)
        fields["created"] = fields.get("created") or created_of(clip, task)
        rel = render_relpath(self.template, fields, guess_ext(clip.audio_url, "audio"))

        def taken(candidate: str) -> bool:
            key = _stem_key(candidate)
            if key in self.taken:
                return True
            others = self.foreign.get(key)
            foreign = bool(others) and not proves(clip, [self.root / rel for rel in others])
            return foreign or not self.store.claim_stem(key, clip.id or 0)  # a fleet's other workers name files too

        rel = unique_relpath(rel, clip.clip_id, taken)
        self.taken.add(_stem_key(rel.as_posix()))
        return rel

    async def _kept(self, assets: list[Asset]) -> bool:
        """A fleet worker goes on with files only while it still claims them (renewed): one that
        stalled past its lease may find them taken over (claims.py)."""
        return self.store.fleet is None or await asyncio.to_thread(self.store.keep_claims, [a.id or 0 for a in assets])

    async def _clip(self, client: Any, clip: Clip, task: Task, assets_list: list[Asset]) -> None:
        if not await self._kept(assets_list):
            return
        assets = {a.kind: a for a in assets_list}
        try:
            stem = self._stem(clip, task, assets)
        except ArchiverError as exc:
            self._failed(clip, assets_list, str(exc))
            return
        cover_changed = False
        audio = assets.get("audio")
        # A cover is placed only after its audio: every file at a stem can then be proven to be
        # this clip's by the audio's provenance tags (a run killed in between adopts, not renames).
        waits = audio is not None and audio.state != "downloaded"
        if audio is not None and not waits:
            self.songs.add(clip.id or 0)
        for kind in ("image", "audio", "video"):
            asset = assets.get(kind)
            if asset is None or asset.state == "downloaded":
                continue
            rel = stem if kind == "audio" else sibling(stem, guess_ext(asset.url, kind))
            got: PurePosixPath | _Ready | None = None
            try:
                got = await self._asset(client, clip, task, asset, rel, assets, hold=kind == "image" and waits)
            except StorageError:
                if kind == "audio":  # its cover is written and synced already: moving it in costs no space
                    with contextlib.suppress(StorageError, DatabaseError):
                        await self._commit_held(clip, assets)
                raise  # not this file's fault: every download stops (see `run`)
            except DatabaseError:
                raise
            except (ArchiverError, OSError) as exc:
                self._failed(clip, [asset], str(removed_part(exc) or exc))
            except Exception as exc:  # noqa: BLE001 - one file's surprise must not end a cron run
                self._failed(clip, [asset], f"internal error: {type(exc).__name__}: {exc}")
            if kind == "audio":  # archived or not, its cover waits no longer
                cover_changed |= await self._commit_held(clip, assets)
            if isinstance(got, _Ready):
                self.held[clip.id or 0] = got
            elif got is not None:
                asset.path, asset.state = got.as_posix(), "downloaded"
                cover_changed |= kind == "image"
        # Only audio tagged before its cover arrived needs the cover added; audio fetched after the
        # cover in this loop already has it (rewriting it again cost a full copy, tag and fsync).
        if cover_changed and audio is not None and audio.state == "downloaded" and audio.tagged \
                and (audio.id or 0) not in self.covered:
            await self._retag(clip, task, audio, assets)

    async def _commit_held(self, clip: Clip, assets: dict[str, Asset]) -> bool:
        """Place the cover held back for this clip's audio; True when it is now archived."""
        ready = self.held.pop(clip.id or 0, None)
        image = assets.get("image")
        if ready is None or image is None:
            return False
        try:
            await self._commit(clip, image, ready)
        except (StorageError, DatabaseError):
            raise
        except (ArchiverError, OSError) as exc:
            self._failed(clip, [image], str(exc))
            return False
        image.path, image.state = ready.rel.as_posix(), "downloaded"
        return True

    def _failed(self, clip: Clip, assets: list[Asset], message: str) -> None:
        for asset in assets:
            if not self.store.asset_failed(asset.id or 0, message):
                continue  # a fleet worker's lost claim: the file is another worker's now
            self.summary.failed += 1
            text = f"{clip.source} {clip.clip_id} {asset.kind}: {message}"
            self.summary.errors.append(text)

    def _cover_path(self, clip: Clip, assets: dict[str, Asset]) -> Path | None:
        """Where the clip's cover for its audio's tags is: held back for placing, or archived."""
        held = self.held.get(clip.id or 0)
        image = assets.get("image")
        if held is not None:
            return held.part
        if image is not None and image.state == "downloaded" and image.path:
            return self.root / image.path
        return None

    async def _cover(self, clip: Clip, assets: dict[str, Asset]) -> bytes | None:
        """The cover's bytes, read with aiofiles so a slow disk never stalls the event loop."""
        path = self._cover_path(clip, assets)
        if path is None:
            return None
        try:
            async with aiofiles.open(path, "rb", opener=read_fd) as fh:
                return await fh.read()
        except (OSError, UnsafePath):
            return None

    async def _asset(self, client: Any, clip: Clip, task: Task, asset: Asset, rel: PurePosixPath,
                     assets: dict[str, Asset], *, hold: bool = False) -> PurePosixPath | _Ready:
        """Adopt the file if it is already in place, else fetch it; `hold` returns it ready but
        not yet placed (a cover waits for its audio, see `_clip`)."""
        target, adopted, held = await asyncio.to_thread(self._locate, clip, asset, rel)
        if adopted is not None:
            return adopted
        ready = await self._prepare(client, clip, task, asset, target, assets, held)
        if hold:
            return ready
        await self._commit(clip, asset, ready)
        return ready.rel

    async def _prepare(self, client: Any, clip: Clip, task: Task, asset: Asset, target: Path,
                       assets: dict[str, Asset], held: int) -> _Ready:
        """Fetch, check, tag and fsync a file under a temporary name, ready to be placed; `held`
        is what its `.part` holds from an earlier run."""
        part = self._part(target)
        handle = self.reporter.download_started(target.name, None)
        self.keep_parts.add(part)
        prelude = None  # audio: its tags, built in its transfer's thread (MP3) or written after
        try:
            if asset.kind == "audio":
                prelude = Prelude(tag_data(clip, task, self.config, None, self.tracks.get(task.id or 0, [])),
                                  self._cover_path(clip, assets), self.config.id3_version)
            fetched = await self._fetch(client, clip, task, asset, part, handle, prelude, held)
            if asset.kind == "audio":
                fetched = await self._check_length(client, clip, task, asset, fetched, handle, prelude)
            final = target.with_name(f"{target.name.rpartition('.')[0]}.{final_ext(fetched.kind, asset.kind)}")
            final_rel = PurePosixPath(final.relative_to(self.base).as_posix())
            tagged, warning = False, asset.warning
            if prelude is not None:
                # Tagged audio is not a prefix of the source: a run killed from here on must not
                # leave it where the next one resumes with Range (that spliced the source's tail
                # onto our tags); this name is only ever cleaned up. An MP3 whose tags were built
                # in its transfer's thread gets them there in front of its audio; any other file
                # is moved there and tagged in place.
                tagging = temp_path(target, target.name.rpartition(".")[0], self.part_tag + TAGGING)
                done = await asyncio.to_thread(finish_prelude, part, tagging, fetched, prelude)
                if done is None:
                    await asyncio.to_thread(os.replace, part, tagging)
                self.keep_parts.discard(part)
                part = tagging
                if done is None:  # a full disk while tagging is a StorageError: every download stops
                    done = await asyncio.to_thread(finish_audio, part, prelude.data, self._cover_path(clip, assets),
                                                   self.config.id3_version)
                tagged, size, digest = done.outcome.tagged, done.size, done.sha256
                if tagged and done.had_cover:
                    self.covered.add(asset.id or 0)
                if done.outcome.warning:
                    warning = done.outcome.warning
                    self.reporter.warning(f"{final_rel}: {done.outcome.warning}")
            else:
                size, digest = fetched.size, fetched.sha256  # fsynced by its transfer (Transfer.durable)
        except BaseException:
            if part.name.endswith(TAGGING):
                part.unlink(missing_ok=True)
            if not part.exists():
                self.keep_parts.discard(part)
            raise
        finally:
            self.reporter.download_finished(handle)
        return _Ready(part, final, final_rel, size, digest, tagged, warning, fetched.size)

    async def _commit(self, clip: Clip, asset: Asset, ready: _Ready) -> None:
        """Move a ready file into place and record it (then its lyrics sidecar, for audio)."""
        owned = ready.rel.as_posix() == asset.path  # recorded as this very file (a repair)
        try:
            if not await self._kept([asset]):
                raise ClaimLost(f"{ready.rel} was taken over by another worker; not placed")
            placing = asyncio.ensure_future(asyncio.to_thread(place, ready.part, ready.final, owned=owned,
                                                              durable=False))
            try:
                await asyncio.shield(placing)
            except asyncio.CancelledError:
                # Stopped (another download hit a full disk) while the rename ran in its thread: it
                # completes anyway, so record the file rather than leave it unrecorded in place.
                if await asyncio.gather(placing, return_exceptions=True) == [None]:
                    self._record(asset, ready)
                raise
        except BaseException as exc:
            if ready.part.name.endswith(TAGGING) or isinstance(exc, ClaimLost):  # this worker's alone
                ready.part.unlink(missing_ok=True)
            if not ready.part.exists():
                self.keep_parts.discard(ready.part)
            raise
        self.keep_parts.discard(ready.part)
        self._record(asset, ready)
        if len(self.unrecorded) >= GROUP_FILES or time.monotonic() - self.waiting_since >= GROUP_SECONDS:
            await self._record_placed()
        if asset.kind == "audio" and self.config.lyrics_sidecar and clip.lyrics and (asset.id or 0) not in self.lost:
            try:
                if await asyncio.to_thread(write_lyrics, ready.final, clip.lyrics, self.part_tag):
                    self.sidecars.add(ready.final)
            except (OSError, UnsafePath) as exc:  # the song is archived; only its sidecar is not
                self.reporter.warning(f"{ready.rel}: lyrics sidecar not written: {exc}")

    def _record(self, asset: Asset, ready: _Ready) -> None:
        """The file is complete at its final path: it joins the next group to be recorded."""
        if asset.kind == "audio":
            self.songs.add(asset.clip_pk)
        if not self.unrecorded:
            self.waiting_since = time.monotonic()
        self.unrecorded.append((asset, ready))
        asset.tagged = ready.tagged

    async def _record_placed(self) -> None:
        """Make the waiting renames durable (one fsync per folder), then record them together."""
        async with self.committing:
            group, self.unrecorded = self.unrecorded, []
            if not group:
                return
            try:
                await asyncio.to_thread(fsync_dirs, {ready.final.parent for _, ready in group})
                lost = self.store.assets_done([(asset.id or 0, ready.rel.as_posix(), ready.size, ready.digest,
                                                ready.tagged, ready.warning) for asset, ready in group])
            except BaseException:
                self.unrecorded[:0] = group  # still in place: the end of the run tries again
                raise
            if lost:  # a lost claim's file is left for its new owner to adopt, unless it recorded one elsewhere
                finals = [ready.final for asset, ready in group if lost.get(asset.id or 0) not in (None, ready.rel.as_posix())]
                await asyncio.to_thread(discard, finals + [f.with_suffix(SIDECAR) for f in finals if f in self.sidecars])
                group = [(asset, ready) for asset, ready in group if (asset.id or 0) not in lost]
            self.summary.downloaded += len(group)
            self.summary.bytes += sum(ready.transferred for _, ready in group)

    async def _fetch(self, client: Any, clip: Clip, task: Task, asset: Asset, part: Path,
                     handle: object, prelude: Prelude | None, held: int | None) -> Fetched:
        async def refresh() -> str | None:
            if self.refresh_task is None or not await self.refresh_task(clip.source, task.task_id):
                return None
            return self.store.asset_url(asset.id or 0)

        # Audio is hashed in its transfer's thread only behind a prelude (its tags come first);
        # other audio is hashed once tagged, since tags rewrite it.
        job = Transfer(url=asset.url or "", part=part, expect=asset.kind, max_size=self.config.max_file_size,
                       hash=asset.kind != "audio", prelude=prelude, tuning=self.tuning,
                       durable=asset.kind != "audio", measure=audio_length if asset.kind == "audio" else None,
                       offset=held,
                       on_total=lambda total, done: self.reporter.download_total(handle, total, done))
        return await fetch(client, job, refresh=refresh,
                           on_bytes=lambda n: self.reporter.download_advanced(handle, n),
                           warn=self.reporter.warning)

    async def _check_length(self, client: Any, clip: Clip, task: Task, asset: Asset, fetched: Fetched,
                            handle: object, prelude: Prelude | None) -> Fetched:
        """A file much shorter than the payload's duration is fetched once more before it is kept."""
        real = fetched.length  # measured in its transfer's thread
        if not truncated(real, clip.duration):
            return fetched
        first = (await asyncio.to_thread(sha256_file, fetched.part))[1]  # the bytes as sent (a prelude's hash is not)
        fetched.part.unlink(missing_ok=True)
        again = await self._fetch(client, clip, task, asset, fetched.part, handle, prelude, 0)
        real = again.length
        if truncated(real, clip.duration):
            second = (await asyncio.to_thread(sha256_file, again.part))[1]
            if second != first:
                raise DownloadError(f"audio is {real or 0:.1f} s long, payload says {clip.duration:.1f} s "
                                    "(truncated twice, differently); will retry")
            message = (f"audio is {real or 0:.1f} s long but the provider says {clip.duration:.1f} s; "
                       "kept (same file twice)")
            asset.warning = message
            self.reporter.warning(f"{clip.source} {clip.clip_id}: {message}")
        return again

    def _locate(self, clip: Clip, asset: Asset, rel: PurePosixPath) -> tuple[Path, PurePosixPath | None, int]:
        """Worker thread: where the file goes (checked inside the library, its folder made),
        whether a complete copy is already there, and what its `.part` holds from an earlier run;
        file-system calls stay off the event loop."""
        target = resolve_inside(self.root, rel, base=self.base)
        self.located.add(rel.as_posix())
        found = find_in_place(self.base, clip, asset, target)
        if found is None:
            target.parent.mkdir(parents=True, exist_ok=True)
            return target, None, regular_size(self._part(target)) or 0
        if not self.store.asset_done(asset.id or 0, path=found.rel.as_posix(), size=found.size, sha256=found.sha256,
                                     tagged=asset.kind == "audio"):
            raise ClaimLost(f"{found.rel} was taken over by another worker; not recorded")
        asset.tagged = asset.kind == "audio"
        self.summary.adopted += 1
        return target, found.rel, 0

    def _part(self, target: Path) -> Path:
        return temp_path(target, target.name, self.part_tag + PART)

    async def _retag(self, clip: Clip, task: Task, audio: Asset, assets: dict[str, Asset]) -> None:
        await self._record_placed()  # the audio's first record must not land after this one
        if not await self._kept([audio]):
            return
        cover = await self._cover(clip, assets)
        try:
            size, digest, tagged = await asyncio.to_thread(
                retag_file, self.root / (audio.path or ""),
                tag_data(clip, task, self.config, cover, self.tracks.get(task.id or 0, [])),
                self.config.id3_version, self.part_tag)
        except (ArchiverError, OSError) as exc:
            self.reporter.warning(f"could not add the cover to {audio.path}: {exc}")
            return
        self.store.asset_done(audio.id or 0, path=audio.path or "", size=size, sha256=digest, tagged=tagged,
                              warning=audio.warning, transfer=False)
