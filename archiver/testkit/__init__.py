"""What the tests and `bench/torture.py` drive archiver with: a library of many clips over the
simulator (`library`), a loopback server for hand-made answers (`loopback`), syncs killed at
chosen points (`kills`) and the catalog read as an independent client on either engine
(`catalog`). Test support shipped beside the simulator, never imported by archiver."""

from .catalog import Catalog, Row
from .kills import (KILL_POINTS, KILLER, SYNC_ARGS, Kill, add_tasks, base_env, crash_loop, point_kill, spawn,
                    timed_kill)
from .library import (BLANK, CONFIG, SOURCES, SYNC, Figures, Lib, Plan, age_unknown, audio_essence,
                      check_library, drop_database, inject_storm, media_requests_for, mp4_media,
                      no_tracebacks, pending_recoverable, populate, rebuild_matches, sim_clips, snapshot, storm,
                      strip_id3)
from .loopback import Loopback

__all__ = ["BLANK", "CONFIG", "KILLER", "KILL_POINTS", "SOURCES", "SYNC", "SYNC_ARGS", "Catalog", "Figures", "Kill",
           "Lib", "Loopback", "Plan", "Row", "add_tasks", "age_unknown", "audio_essence", "base_env", "check_library",
           "crash_loop", "drop_database", "inject_storm", "media_requests_for", "mp4_media",
           "no_tracebacks", "pending_recoverable", "point_kill", "populate", "rebuild_matches", "sim_clips",
           "snapshot", "spawn", "storm", "strip_id3", "timed_kill"]
