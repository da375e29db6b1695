"""CCAPI, producer platform (FUZZ-2.0): `GET /producer/fetch/{id}`, `POST /producer/fetch`."""

from __future__ import annotations

from typing import ClassVar

from ._ccapi import CcapiSource


class CcapiProducer(CcapiSource):
    name: ClassVar[str] = "ccapi-producer"
    platform: ClassVar[str] = "producer"
