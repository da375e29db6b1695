"""Write and read the archive's tags in every audio format we download.

Every field lives in one table (`FIELDS`): a row names the field once and says where it goes in
ID3, MP4 and Vorbis comments. The per-format codecs (`tagging_codecs`) only know how to put a
text value under a key and read it back, so adding a field means adding a row, not touching four
code paths. The format is always sniffed from the file's bytes, because callers tag
`<final>.part` files whose names say nothing about what they hold.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from mutagen import PaddingInfo
from mutagen.id3 import ID3

from .errors import TaggingError
from .media import id3_span
from .tagging_codecs import FORMATS, MULTI_SEP, Codec, prepare_cover


@dataclass(frozen=True)
class TagData:
    """Normalized clip data to write; None means "do not touch this field"."""

    title: str | None = None
    artist: str | None = None
    album: str | None = None
    albumartist: str | None = None
    track: tuple[int, int | None] | None = None  # (number, total): "track 2 of 3"
    disc: tuple[int, int | None] | None = None
    date: str | None = None
    genre: str | None = None
    comment: str | None = None
    lyrics: str | None = None
    duration: float | None = None  # seconds, from the provider payload
    source: str | None = None
    task_id: str | None = None
    clip_id: str | None = None
    model: str | None = None
    seed: str | None = None
    source_url: str | None = None
    cover: bytes | None = None
    cover_mime: str | None = None  # "image/jpeg" / "image/png"; sniffed from bytes if None


@dataclass(frozen=True)
class TagOutcome:
    """What tagging did, so callers can log a warning instead of catching exceptions."""

    format: str | None  # "mp3", "m4a", "flac", "ogg", "opus", "wav"; None if unsupported
    tagged: bool
    warning: str | None = None


class Kind(Enum):
    """How a field's value is turned into tag text (and back)."""

    TEXT = "text"
    DATE = "date"  # an ID3-style timestamp prefix: YYYY[-MM[-DD[THH[:MM[:SS]]]]]
    DURATION = "duration"  # seconds; ID3 stores integer milliseconds (TLEN's defined unit)
    POSITION = "position"  # (number, total), written "n/total" (TRCK, TPOS), or as a pair


@dataclass(frozen=True)
class TagField:
    """One row of the table: where a `TagData` attribute lives in each tag system."""

    name: str
    id3: str  # frame id, "COMM"/"USLT" (empty description), or "TXXX:<description>"
    mp4: str  # atom name, or "----:<mean>:<name>" for a freeform atom
    vorbis: str  # Vorbis comment key (FLAC, Ogg Vorbis, Ogg Opus); "NUMBER+TOTAL" for a pair
    kind: Kind = Kind.TEXT
    mp4_old: str = ""  # a name earlier versions wrote: still read (by `rebuild`), removed on write


# The table. Custom names are the same in every format, "ARCHIVER_<X>": TXXX "ARCHIVER_<X>",
# MP4 "----:com.archiver:ARCHIVER_<X>", Vorbis "ARCHIVER_<X>"; tools that show only a freeform
# atom's name (ffprobe, transcoders copying it to a Vorbis comment) then never see a bare "SOURCE".
# TLEN is ID3's own length frame; MP4 and Vorbis have none, so it is custom.
FIELDS: tuple[TagField, ...] = (
    TagField("title", "TIT2", "©nam", "TITLE"),
    TagField("artist", "TPE1", "©ART", "ARTIST"),
    TagField("album", "TALB", "©alb", "ALBUM"),
    TagField("albumartist", "TPE2", "aART", "ALBUMARTIST"),
    TagField("track", "TRCK", "trkn", "TRACKNUMBER+TRACKTOTAL", Kind.POSITION),
    TagField("disc", "TPOS", "disk", "DISCNUMBER+DISCTOTAL", Kind.POSITION),
    TagField("date", "TDRC", "©day", "DATE", Kind.DATE),
    TagField("genre", "TCON", "©gen", "GENRE"),
    TagField("comment", "COMM", "©cmt", "COMMENT"),
    TagField("lyrics", "USLT", "©lyr", "LYRICS"),
    *(
        TagField(name, id3, f"----:com.archiver:ARCHIVER_{key}", f"ARCHIVER_{key}", kind,
                 mp4_old=f"----:com.archiver:{key}")
        for name, id3, key, kind in (
            ("duration", "TLEN", "DURATION", Kind.DURATION),
            ("source", "TXXX:ARCHIVER_SOURCE", "SOURCE", Kind.TEXT),
            ("task_id", "TXXX:ARCHIVER_TASK_ID", "TASK_ID", Kind.TEXT),
            ("clip_id", "TXXX:ARCHIVER_CLIP_ID", "CLIP_ID", Kind.TEXT),
            ("model", "TXXX:ARCHIVER_MODEL", "MODEL", Kind.TEXT),
            ("seed", "TXXX:ARCHIVER_SEED", "SEED", Kind.TEXT),
            ("source_url", "TXXX:ARCHIVER_SOURCE_URL", "SOURCE_URL", Kind.TEXT),
        )
    ),
)

_DATE_RE = re.compile(r"\d{4}(?:-\d{2}(?:-\d{2}(?:T\d{2}(?::\d{2}(?::\d{2})?)?)?)?)?")


def _skip_id3(fh: Any) -> tuple[bytes, bool]:
    """Return the bytes after any leading ID3v2 tags; FLAC and MP3 may both start with one."""
    offset, seen = 0, False
    head = fh.read(512)
    while head[:3] == b"ID3" and len(head) >= 10:
        offset += id3_span(head)
        fh.seek(offset)
        head, seen = fh.read(512), True
    return head, seen


def _sniff_audio(head: bytes, after_id3: bool) -> str | None:
    """Match container magic; an ID3v2 prefix with nothing else recognizable means MP3."""
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith(b"OggS") and len(head) > 27:
        packet = head[27 + head[26] :]
        if packet.startswith(b"OpusHead"):
            return "opus"
        if packet.startswith(b"\x01vorbis"):
            return "ogg"
        return None
    if head[4:8] == b"ftyp":
        return "m4a"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    # MPEG audio frame sync with a non-reserved layer (layer bits 00 would be ADTS AAC).
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06:
        return "mp3"
    return "mp3" if after_id3 else None


def detect_format(path: Path) -> str | None:
    """Name the audio format from the file's bytes; the name may end in `.part`."""
    try:
        with open(path, "rb") as fh:
            head, after_id3 = _skip_id3(fh)
    except OSError as exc:
        raise TaggingError(f"cannot read {path}: {exc}") from exc
    return _sniff_audio(head, after_id3)


def _seconds_text(value: float) -> str:
    """Millisecond precision, like TLEN, without trailing zeros ("187.24", not "187.240")."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _encode(field: TagField, value: Any, codec: Codec, warnings: list[str]) -> str | None:
    """Turn one TagData value into tag text, or None to leave the field alone."""
    if value is None:
        return None
    if field.kind is Kind.DURATION:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            seconds = math.nan
        if not math.isfinite(seconds) or seconds < 0:
            warnings.append(f"duration {value!r} is not a valid length; not written")
            return None
        return str(round(seconds * 1000)) if codec.duration_in_ms else _seconds_text(seconds)
    if field.kind is Kind.POSITION:
        return _position_text(value, warnings)
    text = value if isinstance(value, str) else str(value)
    if text == "":
        return None  # never write empty frames: players show them as blank values
    if field.kind is Kind.DATE:
        match = _DATE_RE.match(text)
        if match is None:
            warnings.append(f"date {text!r} is not YYYY[-MM[-DD]]; not written")
            return None
        return match.group(0)  # the same normalized value in every format
    return text


def _position_text(value: Any, warnings: list[str]) -> str | None:
    """(2, 3) -> "2/3", (2, None) -> "2": the one spelling every codec splits again if it must."""
    number, total = value if isinstance(value, tuple) and len(value) == 2 else (None, None)
    number_ok = isinstance(number, int) and number >= 1
    if not number_ok or not (total is None or isinstance(total, int) and total >= number):
        warnings.append(f"position {value!r} is not (n >= 1, total >= n); not written")
        return None
    return f"{number}/{total}" if total else str(number)


def _position(text: str) -> tuple[int, int | None] | None:
    """"2/3" -> (2, 3); other software's "2" or "02" read too; garbage reads as None."""
    number, _, total = text.split(MULTI_SEP)[0].partition("/")
    try:
        return int(number), int(total) if total.strip() else None
    except ValueError:
        return None


def _decode(field: TagField, text: str | None, codec: Codec) -> Any:
    """Undo `_encode`; an unparsable duration reads as None rather than failing a rebuild."""
    if text is None or field.kind is Kind.TEXT or field.kind is Kind.DATE:
        return text
    if field.kind is Kind.POSITION:
        return _position(text)
    try:
        value = float(text.split(MULTI_SEP)[0])
    except ValueError:
        return None
    return value / 1000 if codec.duration_in_ms else value


def _key(field: TagField, codec: Codec) -> str:
    """The table column the codec's tag system reads its keys from."""
    return str(getattr(field, codec.column))


def _reason(exc: Exception) -> str:
    """Some mutagen errors have empty messages; the class name still says what went wrong."""
    return str(exc) or type(exc).__name__


def _open(path: Path, fmt: str) -> Any:
    """Open with the explicit mutagen class, so the file name never influences parsing."""
    try:
        return FORMATS[fmt][0](path)
    except Exception as exc:  # noqa: BLE001 - mutagen raises many types on corrupt input
        raise TaggingError(f"cannot read {fmt} tags of {path}: {_reason(exc)}") from exc


def tag_file(path: Path, data: TagData, *, id3_version: int = 3) -> TagOutcome:
    """Write every non-None field of `data` into the file in place.

    Unsupported formats are reported, not raised, so one odd download does not stop a sync.
    """
    if id3_version not in (3, 4):
        raise ValueError(f"id3_version must be 3 or 4, not {id3_version}")
    fmt = detect_format(path)
    if fmt is None:
        return TagOutcome(None, False, f"{path}: not a supported audio format; left untagged")
    audio = _open(path, fmt)
    try:
        return _write(audio, FORMATS[fmt][1](id3_version), data, fmt)
    except Exception as exc:  # noqa: BLE001 - wrap whatever mutagen raised, naming the file
        raise TaggingError(f"cannot write {fmt} tags to {path}: {_reason(exc)}") from exc


def _write(audio: Any, codec: Codec, data: TagData, fmt: str) -> TagOutcome:
    """Every field of the table, then the cover, into `audio`'s tags, and save them."""
    warnings: list[str] = []
    codec.ensure_tags(audio)
    for field in FIELDS:
        text = _encode(field, getattr(data, field.name), codec, warnings)
        if text is not None:
            codec.put(audio.tags, _key(field, codec), text)
            if field.mp4_old and codec.column == "mp4":
                codec.delete(audio.tags, field.mp4_old)
    cover = prepare_cover(data.cover, data.cover_mime, warnings)
    if cover is not None:
        problem = codec.put_cover(audio, cover)
        if problem:
            warnings.append(problem)
    codec.save(audio)
    return TagOutcome(fmt, True, "; ".join(warnings) or None)


MAX_KEPT_PADDING = 64 * 1024  # zeros a prelude may carry to fill the space of a bigger source tag


class _HeldTag:
    """An ID3 tag in memory, shaped like the mutagen file the codec saves: `save` renders it."""

    def __init__(self, tags: ID3, replaces: int, block: int) -> None:
        self.tags = tags
        self.replaces, self.block = replaces, block
        self.rendered = b""

    def save(self, **options: Any) -> None:
        out = io.BytesIO()
        self.tags.save(out, padding=self._padding if self.block > 0 else None, **options)
        self.rendered = out.getvalue()

    def _padding(self, info: PaddingInfo) -> int:
        """Enough to make the tag the size it replaces plus whole blocks (see `fs.graft`); but a
        source tag much bigger than ours (a provider's large cover) is not kept as zeros: the
        tag gets mutagen's usual padding, and the audio is copied behind it instead."""
        needed = -info.padding  # rendered into an empty buffer: nothing is available
        if self.replaces - needed > MAX_KEPT_PADDING:
            return info.get_default_padding()
        grow = max(0, needed - self.replaces)
        return self.replaces + -(-grow // self.block) * self.block - needed


def id3_prelude(lead: bytes, extent: int, data: TagData, *, id3_version: int = 3,
                block: int = 0) -> tuple[bytes, TagOutcome] | None:
    """The ID3 tag `tag_file` would leave at the start of an MP3 whose first bytes are `lead`
    (its own tag is `lead[:extent]`), rendered in memory: the file is then this tag followed by
    everything after the source's tag, written once, with no rewrite of the audio afterwards.
    With `block`, the tag is padded to `extent` plus whole blocks, so the file system can make
    room for it in front of the audio without copying the audio (`fs.graft`).

    None when the bytes after the tag are not an MPEG frame (a second tag, another format) or the
    source's tag cannot be read: `tag_file` judges those files as it always has.
    """
    if _sniff_audio(lead[extent:], after_id3=False) != "mp3":  # an MPEG frame must follow the tag
        return None
    try:
        held = _HeldTag(ID3(io.BytesIO(lead[:extent])) if extent else ID3(), extent, block)
        outcome = _write(held, FORMATS["mp3"][1](id3_version), data, "mp3")
    except Exception:  # noqa: BLE001 - a tag mutagen cannot parse or render is tag_file's to report
        return None
    return held.rendered, outcome


def read_tags(path: Path) -> dict[str, Any]:
    """Read every table field back, so the database can be rebuilt from the files alone.

    Keys: "format", each `FIELDS` name (None when absent; "duration" as float seconds),
    "has_cover" and "cover_mime". Unsupported files give "format": None and no values.
    """
    result: dict[str, Any] = {"format": None}
    result.update({f.name: None for f in FIELDS})
    result.update({"has_cover": False, "cover_mime": None})
    fmt = detect_format(path)
    if fmt is None:
        return result
    result["format"] = fmt
    codec = FORMATS[fmt][1]()
    audio = _open(path, fmt)
    try:
        if audio.tags is not None:
            for field in FIELDS:
                text = codec.get(audio.tags, _key(field, codec))
                if text is None and field.mp4_old and codec.column == "mp4":
                    text = codec.get(audio.tags, field.mp4_old)
                result[field.name] = _decode(field, text, codec)
        result["has_cover"], result["cover_mime"] = codec.get_cover(audio)
    except Exception as exc:  # noqa: BLE001 - malformed frames surface here, not on open
        raise TaggingError(f"cannot read {fmt} tags of {path}: {_reason(exc)}") from exc
    return result
