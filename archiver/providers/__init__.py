"""Registry of task sources: adding a provider is one module plus one line here.

Everything else asks the registry at the time it needs to know: config (settings sections and
their defaults), the CLI's `--source` choices, `archiver demo` and the simulator. Importing this
package stays light (no httpx): the network lives in `http.py`, imported only by who polls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import PayloadError, UnknownSourceError
from .acedata import Acedata
from .aimusicapi import Aimusicapi
from .base import Request, Source
from .ccapi_producer import CcapiProducer
from .ccapi_suno import CcapiSuno
from .mountsea import Mountsea

SOURCES: dict[str, Source] = {
    "ccapi-suno": CcapiSuno(),
    "ccapi-producer": CcapiProducer(),
    "mountsea": Mountsea(),
    "acedata": Acedata(),
    "aimusicapi": Aimusicapi(),
}



@dataclass(frozen=True)
class ProviderDefaults:
    """A settings section (`[providers.NAME]`) and the defaults its sources document."""

    name: str
    base_url: str
    batch_size: int


def provider_defaults() -> dict[str, ProviderDefaults]:
    """Every provider once, in registry order; sources sharing a provider share its facts."""
    found: dict[str, ProviderDefaults] = {}
    for source in SOURCES.values():
        if source.provider not in found:
            found[source.provider] = ProviderDefaults(source.provider, source.base_url, source.batch_size)
    return found


def sources_of(provider: str) -> list[Source]:
    """The sources a provider serves, in registry order."""
    return [source for source in SOURCES.values() if source.provider == provider]


def get_source(name: str) -> Source:
    try:
        return SOURCES[name]
    except KeyError:
        raise UnknownSourceError(name, list(SOURCES)) from None


def detect_source(payload: Any, label: str = "import") -> Source:
    """Which source a saved response body came from, judged by its shape (`label` names the body)."""
    matches = [source for source in SOURCES.values() if source.detect(payload)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise PayloadError(label, "cannot tell which source this body is from; pass --source")
    names = ", ".join(m.name for m in matches)
    raise PayloadError(label, f"body could come from several sources ({names}); pass --source")


__all__ = ["SOURCES", "ProviderDefaults", "Request", "Source", "detect_source", "get_source",
           "provider_defaults", "sources_of"]
