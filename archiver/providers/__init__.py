"""Registry of task sources: adding a provider is one module plus one line here."""

from __future__ import annotations

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

SOURCE_NAMES: tuple[str, ...] = tuple(SOURCES)


def get_source(name: str) -> Source:
    try:
        return SOURCES[name]
    except KeyError:
        raise UnknownSourceError(name, list(SOURCES)) from None


def detect_source(payload: Any) -> Source:
    """Which source a saved response body came from, judged by its shape."""
    matches = [source for source in SOURCES.values() if source.detect(payload)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise PayloadError("import", "cannot tell which source this body is from; pass --source")
    names = ", ".join(m.name for m in matches)
    raise PayloadError("import", f"body could come from several sources ({names}); pass --source")


__all__ = ["SOURCES", "SOURCE_NAMES", "Request", "Source", "detect_source", "get_source"]
