"""Secrets out of every text that leaves the program: API tokens and credentials inside URLs.

A provider may echo a token back in any spelling JSON, a URL or HTML allows (`\\/`, `\\u002d`,
`%2D`, `&#45;`), so a secret is matched in all of them at once, and decoded JSON is searched string
by string (keys too). Every text that leaves goes through here: provider payloads and errors, reporter
lines, the configuration shown by `archiver config`. Loading a config registers its secrets,
because not every path that builds a message holds the Config.
"""

from __future__ import annotations

import functools
import re
import urllib.parse
from typing import Any, Iterable

REDACTED = "<redacted>"
MIN_SECRET = 4  # a shorter "secret" protects nothing and would blank out ordinary words
PIECE = 12  # the shortest piece of a long secret that is redacted on its own (see Redactor)
PIECE_MAX = 32

_registered: set[str] = set()

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://\S+")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://)(.*)", re.DOTALL)
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")  # a '%' alone ("progress": "1%") spells nothing


def register(secrets: Iterable[str | None]) -> None:
    """Remember secrets for every later `redact`, for the life of the process."""
    _registered.update(s for s in secrets if s and len(s) >= MIN_SECRET)


def registered() -> frozenset[str]:
    return frozenset(_registered)


_ENTITIES = {"&": "amp", "<": "lt", ">": "gt", '"': "quot", "'": "apos"}


def _char_pattern(char: str) -> str:
    """One character of a secret in every spelling: itself, a JSON escape, a percent escape, an
    HTML character reference (an error page echoing the request)."""
    code = ord(char)
    forms = []
    if code < 0x10000:
        forms.append(r"\\u(?i:%04x)" % code)
    if char in '"\\/':
        forms.append(re.escape("\\" + char))
    if code < 0x80:
        forms.append("%%(?i:%02x)" % code)
    forms.append(r"&#(?:0*%d|[xX]0*(?i:%x));" % (code, code))
    if char in _ENTITIES:
        forms.append(f"&{_ENTITIES[char]};")
    forms.append(re.escape(char))  # last: a spelling that starts with the character itself ("&amp;") wins
    return "(?:" + "|".join(forms) + ")"


class Redactor:
    """Replaces a fixed set of secrets (in any escaped spelling) and URL credentials."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        kept = sorted({s for s in secrets if s and len(s) >= MIN_SECRET}, key=len, reverse=True)
        self.secrets = tuple(kept)
        self._pattern = (
            re.compile("|".join("".join(_char_pattern(c) for c in s) for s in kept)) if kept else None
        )
        # The pattern sees a secret in a JSON text in every spelling but two: a control character
        # written as \n, \t, ... and a character beyond the BMP written as a surrogate pair. A
        # secret holding neither is found in the undecoded text or not at all.
        self.escapes_hide = any(c in "\b\f\n\r\t" or ord(c) >= 0x10000 for s in kept for c in s)
        # Every other spelling than the plain one needs a percent escape or a "\u" in the text, or
        # any backslash when a secret holds '"', '\' or '/' (written \", \\ and \/).
        self._mark = "\\" if any(c in '"\\/' for s in kept for c in s) else "\\u"
        # An HTML reference starts "&#", or is the named one of a character a secret holds.
        self._references = ("&#", *sorted({f"&{_ENTITIES[c]};" for s in kept for c in s if c in _ENTITIES}))
        # A piece of a long secret is a secret too (an error echoing the token cut short, or a
        # line wrapped inside it): runs of half its length (PIECE to PIECE_MAX characters), with
        # enough different characters that none is an ordinary run of digits. A secret of up to 64
        # characters gives every run (any piece of half its length is caught); a longer one (a
        # JWT) every PIECE_MAX // 2-th, so a piece of 1.5 × PIECE_MAX is caught, and a body is
        # searched for some 2 × length / PIECE_MAX strings, not for as many as it has characters.
        # Found plainly written, a piece is redacted with the secrets' characters around it.
        self.pieces = tuple(sorted({piece for s in kept if len(s) >= 16
                                    for k in (min(max(PIECE, len(s) // 2), PIECE_MAX),)
                                    for i in range(0, len(s) - k + 1, 1 if len(s) <= 64 else k // 2)
                                    if len(set(piece := s[i:i + k])) >= 8}))
        self._alphabet = frozenset("".join(kept))

    def text(self, text: str) -> str:
        text = self.secrets_out(text)
        if "://" in text:
            text = _URL.sub(lambda m: redact_url(m.group(0)), text)
        return text

    def holds_secret(self, text: str) -> bool:
        """Whether `text` holds a secret in any spelling the pattern knows. A text without the marks
        of an escaped spelling is searched for the plain ones only (a 50-task body: ~20× faster)."""
        if self._pattern is None:
            return False
        if any(piece in text for piece in self.pieces):
            return True
        if (self._mark not in text and not any(ref in text for ref in self._references)
                and ("%" not in text or _PERCENT_ESCAPE.search(text) is None)):
            return any(secret in text for secret in self.secrets)
        return self._pattern.search(text) is not None

    def secrets_out(self, text: str) -> str:
        if self._pattern is not None:
            text = self._pattern.sub(REDACTED, text)
        if any(piece in text for piece in self.pieces):
            text = self._pieces_out(text)
        return text

    def _pieces_out(self, text: str) -> str:
        """Each piece found, widened over the secrets' characters on both sides, as REDACTED."""
        spans: list[tuple[int, int]] = []
        for piece in self.pieces:
            start = text.find(piece)
            while start >= 0:
                left, right = start, start + len(piece)
                while left > 0 and text[left - 1] in self._alphabet:
                    left -= 1
                while right < len(text) and text[right] in self._alphabet:
                    right += 1
                spans.append((left, right))
                start = text.find(piece, start + 1)
        out, at = [], 0
        for left, right in sorted(spans):
            if right <= at:
                continue
            out.append(text[at:max(left, at)] + (REDACTED if left >= at else ""))
            at = right
        out.append(text[at:])
        return "".join(out)

    def value(self, value: Any) -> Any:
        """A decoded JSON value with the secrets out of every string, keys included.

        URLs keep their credentials here: a media link may need them, and only ours are secret.
        """
        if isinstance(value, str):
            return self.secrets_out(value)
        if isinstance(value, list):
            return [self.value(item) for item in value]
        if isinstance(value, dict):
            return {self.value(key): self.value(item) for key, item in value.items()}
        return value


@functools.lru_cache(maxsize=64)
def _redactor(secrets: frozenset[str]) -> Redactor:
    return Redactor(secrets)


def redactor(secrets: Iterable[str | None] = ()) -> Redactor:
    """A Redactor for the registered secrets plus `secrets`."""
    return _redactor(frozenset(_registered.union(s for s in secrets if s)))


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` without the registered secrets, the given ones, or any URL's credentials."""
    return redactor(secrets).text(text)


def url_secrets(url: str) -> list[str]:
    """The credentials a URL carries (what `redact_url` hides), to be redacted wherever they appear."""
    shown = redact_url(url)
    if shown == url:
        return []
    head, _, tail = shown.partition(REDACTED)
    raw = url[len(head):len(url) - len(tail)]
    return list(dict.fromkeys([raw, urllib.parse.unquote(raw)]))


def redact_url(url: str) -> str:
    """`scheme://user:pass@host/...` -> `scheme://user:<redacted>@host/...` (a lone user is hidden too).

    The password runs to the last `@`: SQLAlchemy URLs may carry `/`, `:` or `@` in it unencoded.
    Hiding too much of an odd URL is preferred to showing any of a password.
    """
    match = _SCHEME.match(url)
    if match is None:
        return url
    scheme, rest = match.groups()
    authority_end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    user_end = min((i for i in (rest.find(c) for c in ":/?#@") if i >= 0), default=len(rest))
    if user_end < len(rest) and rest[user_end] == ":" and "@" in rest[user_end:]:
        at = rest.rfind("@")
        return f"{scheme}{rest[:user_end]}:{REDACTED}@{rest[at + 1:]}"
    at = rest.rfind("@", 0, authority_end)
    if at >= 0:
        return f"{scheme}{REDACTED}@{rest[at + 1:]}"
    return url
