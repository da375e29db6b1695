"""What one poll request costs in the API client beyond the HTTP exchange itself."""

from __future__ import annotations

import asyncio
import importlib.machinery
from typing import Any

import pytest

from archiver.config import load_config
from archiver.providers import get_source
from archiver.providers.http import ApiClient, Counters, RetryBudget, RetryPolicy


def test_a_poll_request_searches_no_import_path(sim: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """httpcore asks which event loop runs on every request; with its helper missing, each ask
    was a failed import that searched every path entry again (four a request)."""
    ids = [sim.add_task("acedata", steps=10**6) for _ in range(3)]
    env = {"ARCHIVER_ACEDATA_TOKEN": sim.tokens["acedata"], "ARCHIVER_ACEDATA_BASE_URL": sim.provider_url("acedata")}
    settings = load_config(env=env, overrides={"library": "/nonexistent"}).provider("acedata")
    searched: list[str] = []
    real = importlib.machinery.PathFinder.find_spec

    def counting(name: str, *args: Any, **kwargs: Any) -> Any:
        searched.append(name)
        return real(name, *args, **kwargs)

    async def poll() -> int:
        async with ApiClient(settings, connect_timeout=2, read_timeout=2, budget=RetryBudget(0),
                             counters=Counters(), policy=RetryPolicy(attempts=1)) as client:
            await client.fetch(get_source("acedata"), ids)  # the first request may load what it needs
            monkeypatch.setattr(importlib.machinery.PathFinder, "find_spec", counting)
            found = 0
            for _ in range(5):
                records, _missing = await client.fetch(get_source("acedata"), ids)
                found += len(records)
            return found

    assert asyncio.run(poll()) == 15
    assert searched == []
