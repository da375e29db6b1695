"""`archiver import`: saved fetch responses -> the library, without any network."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

from .errors import PayloadError
from .providers import detect_source, get_source
from .providers.base import parse_json
from .store import ApplyResult, Store


@dataclass(frozen=True)
class Body:
    label: str  # file name or "-" for stdin, for error messages
    text: str


def parse_body(body: Body) -> Any:
    try:
        return parse_json(body.text)
    except json.JSONDecodeError as exc:
        raise PayloadError(body.label, f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise PayloadError(body.label, "not valid JSON (nested too deeply)") from None


def import_bodies(store: Store, bodies: Sequence[Body], *, source: str | None = None,
                  task_id: str | None = None) -> ApplyResult:
    """Normalize every body first, then write them all in one transaction (all or nothing)."""
    forced = get_source(source) if source else None
    records = []
    for body in bodies:
        payload = parse_body(body)
        src = forced or detect_source(payload, body.label)
        try:
            records.extend(src.normalize(payload, task_id=task_id))
        except PayloadError as exc:
            raise PayloadError(body.label, str(exc)) from None
    return store.apply(records)
