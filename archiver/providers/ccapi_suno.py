"""CCAPI, suno platform: `GET /suno/fetch/{id}`, `POST /suno/fetch {"ids": [...]}`."""

from __future__ import annotations

from typing import ClassVar

from ._ccapi import CcapiSource


class CcapiSuno(CcapiSource):
    name: ClassVar[str] = "ccapi-suno"
    platform: ClassVar[str] = "suno"
    sim_demo: ClassVar[tuple[str, ...]] = ("succeeded", "succeeded", "failed")
