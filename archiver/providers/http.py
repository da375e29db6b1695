"""Talking to a provider's API: one httpx client per provider, typed errors, bounded retries.

Every httpx exception is turned into an ArchiverError here, and no message built here ever
includes a request header, so a token cannot leak through an error.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from dataclasses import dataclass
from datetime import timezone
from typing import Any, Protocol, Sequence

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from .. import __version__, tls
from .._httpx import httpx
from ..errors import ArchiverError, AuthError, ProviderError, TaskNotFound, TransientError
from ..records import TaskRecord
from ..redact import redactor
from .base import Request, Source, parse_json


class Endpoint(Protocol):
    """What a client needs of a provider's settings (`config.ProviderSettings` has it); config
    sits above the providers (it reads their registry), so this package does not import it."""

    @property
    def name(self) -> str: ...

    @property
    def base_url(self) -> str: ...

    @property
    def token(self) -> str | None: ...

    @property
    def concurrency(self) -> int: ...

USER_AGENT = f"archiver/{__version__}"
# The most an answer may hold once decoded: a batch of 50 tasks with lyrics is tens of kB; a
# compressed body that inflates past this (a gzip bomb) is refused before it fills the memory.
MAX_ANSWER = 32 * 1024 * 1024
# An error's body is read only for the message it may carry, which is short.
MAX_ERROR_BODY = 256 * 1024
# A refusal, throttle or fault is decided by its status; its body is read on only so that the
# connection can serve the retry, while it is short and quick (else the connection is dropped).
DRAIN_BODY, DRAIN_SECONDS = 64 * 1024, 1.0


def join_url(base: str, path: str) -> str:
    """Base URL + documented path, whatever slashes either side carries (the docs show `//`)."""
    return base.rstrip("/") + "/" + path.lstrip("/")


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    current = now if now is not None else time.time()
    return max(0.0, when.timestamp() - current)


class RetryBudget:
    """Retries left for the whole run, shared by every provider, so a run always ends."""

    def __init__(self, total: int) -> None:
        self.left = total

    def take(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        return True


@dataclass
class Counters:
    """API requests and retries of the whole run, for its report."""

    requests: int = 0
    retries: int = 0


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    initial: float = 0.5
    maximum: float = 30.0
    max_retry_after: float = 120.0


class ApiClient:
    """One provider's HTTP client (keep-alive pool shared by its sources).

    Each request, its body included, must be done within `deadline` seconds (by default the
    connect timeout plus twice the read timeout): httpx's read timeout restarts with every byte,
    so a body trickled a byte at a time would otherwise hold a poll, and the library lock, forever.
    """

    def __init__(self, settings: Endpoint, *, connect_timeout: float, read_timeout: float,
                 budget: RetryBudget, counters: Counters, policy: RetryPolicy = RetryPolicy(),
                 transport: httpx.AsyncBaseTransport | None = None, deadline: float | None = None) -> None:
        self.settings = settings
        self.deadline = deadline if deadline is not None else connect_timeout + 2 * read_timeout
        self.budget = budget
        self.counters = counters
        self.policy = policy
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if settings.token:
            headers["Authorization"] = f"Bearer {settings.token}"
        limit = max(1, settings.concurrency)
        self._client = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            limits=httpx.Limits(max_connections=limit, max_keepalive_connections=limit),
            follow_redirects=True,
            max_redirects=5,
            transport=transport,
            verify=tls.context() if transport is None else True,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> "ApiClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def fetch(self, source: Source, ids: Sequence[str]) -> tuple[list[TaskRecord], dict[str, Exception]]:
        """Fetch ids through `source`; returns the records and a per-id error for ids not returned.

        An id that cannot be sent safely (control characters, a dot segment) gets its own error
        and is never sent; the rest of its batch still is.
        """
        refused: dict[str, Exception] = {}
        for task_id in ids:
            try:
                source.check_id(task_id)
            except ArchiverError as exc:
                refused[task_id] = exc
        ids = [i for i in ids if i not in refused]
        if not ids:
            return [], refused
        request = source.request_for(ids)
        task_id = ids[0] if len(ids) == 1 else None
        try:
            payload = await self.call(source, request, ids)
            records = source.normalize(payload, task_id=task_id)
        except TaskNotFound as exc:
            return [], {**refused, **{i: self._scrubbed(exc) for i in ids}}
        except ArchiverError as exc:
            raise self._scrubbed(exc)
        wanted = set(ids)
        records = [r for r in records if r.task_id in wanted]
        got = {r.task_id for r in records}
        missing: dict[str, Exception] = {
            i: TaskNotFound(source.name, i, "not in the provider's answer (unknown task id?)")
            for i in ids if i not in got
        }
        return records, {**refused, **missing}

    async def call(self, source: Source, request: Request, ids: Sequence[str]) -> Any:
        """One logical request, retried on transient failures within the run's budget."""
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(TransientError),
            stop=stop_after_attempt(self.policy.attempts) | self._budget_spent,
            wait=self._wait,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._once(source, request, ids)
        raise AssertionError("unreachable")  # pragma: no cover

    def _budget_spent(self, state: RetryCallState) -> bool:
        if self.budget.take():
            self.counters.retries += 1
            return False
        return True

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return min(float(retry_after), self.policy.max_retry_after)
        backoff = self.policy.initial * (2 ** (state.attempt_number - 1))
        return min(self.policy.maximum, backoff) * random.uniform(0.5, 1.0)

    def _scrubbed(self, exc: ArchiverError) -> ArchiverError:
        """The error with every secret out of its message: the last net at the provider boundary."""
        scrub = redactor([self.settings.token])
        exc.args = tuple(scrub.text(a) if isinstance(a, str) else a for a in exc.args)
        for name in ("detail",):
            if isinstance(getattr(exc, name, None), str):
                setattr(exc, name, scrub.text(getattr(exc, name)))
        return exc

    async def _once(self, source: Source, request: Request, ids: Sequence[str]) -> Any:
        name = self.settings.name
        url = join_url(self.settings.base_url, request.path)
        self.counters.requests += 1
        try:
            async with asyncio.timeout(self.deadline):
                async with self._client.stream(request.method, url, params=request.params,
                                               json=request.json) as response:
                    if _status_says_all(response.status_code):
                        content = None
                        await _drain(response)
                    else:
                        content = await _capped(response, MAX_ERROR_BODY if response.status_code >= 400
                                                else MAX_ANSWER)
        except TimeoutError:
            raise TransientError(name, f"timed out (stalled: no whole answer within {self.deadline:g} s)") from None
        except httpx.TimeoutException:
            raise TransientError(name, "timed out") from None
        except httpx.TooManyRedirects:
            raise ProviderError(name, "too many redirects") from None
        except httpx.DecodingError:  # a Content-Encoding the body does not match (a broken proxy)
            raise TransientError(name, "body could not be decoded") from None
        except httpx.TransportError as exc:
            raise TransientError(name, f"connection failed ({type(exc).__name__})") from None
        status = response.status_code
        if status in (401, 403):
            raise AuthError(name, status)
        if _status_says_all(status):
            raise TransientError(name, f"HTTP {status}", status_code=status,
                                 retry_after=parse_retry_after(response.headers.get("retry-after")))
        if content is None and status < 400:
            raise ProviderError(name, f"answer larger than {MAX_ANSWER // (1024 * 1024)} MiB once decoded; refused")
        try:  # an error whose body is too long to be a message reads as one without a body
            payload = None if content is None else parse_json(content, secrets=[self.settings.token])
        except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested beyond reason
            if status >= 400:
                raise source.error_for(status, None, ids) from None
            raise TransientError(name, f"HTTP {status} with a body that is not JSON", status_code=status) from None
        if status >= 400:
            raise source.error_for(status, payload, ids)
        return payload


def _status_says_all(status: int) -> bool:
    return status in (401, 403, 408, 429) or status >= 500


async def _drain(response: httpx.Response) -> None:
    """Read a body nobody needs if it is short and quick, so that its connection is kept; one
    that is long or slow is left unread (its connection closes with the response)."""
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            await _capped(response, DRAIN_BODY)
    except (TimeoutError, httpx.HTTPError):
        pass


async def _capped(response: httpx.Response, limit: int) -> bytes | None:
    """The decoded body, or None once it has grown past `limit` (checked per decoded piece: one
    piece may overshoot it by what one compressed chunk inflates to)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
