"""Write and read the archive's tags in every audio format we download.

Every field lives in one table (`FIELDS`): a row names the field once and says where it goes in
ID3, MP4 and Vorbis comments. The per-format code below only knows how to put a text value under
a key and read it back, so adding a field means adding a row, not touching four code paths. The
format is always sniffed from the file's bytes, because callers tag `<final>.part` files whose
names say nothing about what they hold.
"""

from __future__ import annotations

import base64
import math
import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import mutagen
from mutagen.flac import FLAC, Picture
from mutagen.id3 import APIC, COMM, TXXX, USLT, Encoding, Frames, PictureType
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4, AtomDataType, MP4Cover, MP4FreeForm
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

from archiver.errors import TaggingError


@dataclass(frozen=True)
class TagData:
    """Normalized clip data to write; None means "do not touch this field"."""

    title: str | None = None
    artist: str | None = None
    album: str | None = None
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


@dataclass(frozen=True)
class TagField:
    """One row of the table: where a `TagData` attribute lives in each tag system."""

    name: str
    id3: str  # frame id, "COMM"/"USLT" (empty description), or "TXXX:<description>"
    mp4: str  # atom name, or "----:<mean>:<name>" for a freeform atom
    vorbis: str  # Vorbis comment key (FLAC, Ogg Vorbis, Ogg Opus)
    kind: Kind = Kind.TEXT


# The table. Custom names follow one pattern: TXXX "ARCHIVER_<X>", MP4 "----:com.archiver:<X>",
# Vorbis "ARCHIVER_<X>". TLEN is ID3's own length frame; MP4 and Vorbis have none, so it is custom.
FIELDS: tuple[TagField, ...] = (
    TagField("title", "TIT2", "©nam", "TITLE"),
    TagField("artist", "TPE1", "©ART", "ARTIST"),
    TagField("album", "TALB", "©alb", "ALBUM"),
    TagField("date", "TDRC", "©day", "DATE", Kind.DATE),
    TagField("genre", "TCON", "©gen", "GENRE"),
    TagField("comment", "COMM", "©cmt", "COMMENT"),
    TagField("lyrics", "USLT", "©lyr", "LYRICS"),
    TagField("duration", "TLEN", "----:com.archiver:DURATION", "ARCHIVER_DURATION", Kind.DURATION),
    TagField("source", "TXXX:ARCHIVER_SOURCE", "----:com.archiver:SOURCE", "ARCHIVER_SOURCE"),
    TagField("task_id", "TXXX:ARCHIVER_TASK_ID", "----:com.archiver:TASK_ID", "ARCHIVER_TASK_ID"),
    TagField("clip_id", "TXXX:ARCHIVER_CLIP_ID", "----:com.archiver:CLIP_ID", "ARCHIVER_CLIP_ID"),
    TagField("model", "TXXX:ARCHIVER_MODEL", "----:com.archiver:MODEL", "ARCHIVER_MODEL"),
    TagField("seed", "TXXX:ARCHIVER_SEED", "----:com.archiver:SEED", "ARCHIVER_SEED"),
    TagField(
        "source_url", "TXXX:ARCHIVER_SOURCE_URL", "----:com.archiver:SOURCE_URL",
        "ARCHIVER_SOURCE_URL",
    ),
)

_DATE_RE = re.compile(r"\d{4}(?:-\d{2}(?:-\d{2}(?:T\d{2}(?::\d{2}(?::\d{2})?)?)?)?)?")
_ID3_LANG = "eng"
_V23_KEPT = ("TSOA", "TSOP", "TSOT")
_MULTI_SEP = "; "  # joins multi-valued tags written by other software when reading them back


@dataclass(frozen=True)
class _Cover:
    """A cover resolved once (MIME, size) so every format embeds the same facts."""

    data: bytes
    mime: str
    width: int = 0
    height: int = 0
    depth: int = 0


def _sniff_image(data: bytes) -> str | None:
    """Trust the bytes over a declared MIME type: CDNs often mislabel images."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _png_size(data: bytes) -> tuple[int, int, int]:
    """Read width, height and bits per pixel from the IHDR chunk, which always comes first."""
    if len(data) < 26 or data[12:16] != b"IHDR":
        return 0, 0, 0
    width = int.from_bytes(data[16:20], "big")
    height = int.from_bytes(data[20:24], "big")
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(data[25], 0)
    return width, height, data[24] * channels


def _jpeg_size(data: bytes) -> tuple[int, int, int]:
    """Walk JPEG segments to the first SOFn marker, which carries the frame size."""
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return 0, 0, 0
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height = int.from_bytes(data[i + 5 : i + 7], "big")
            width = int.from_bytes(data[i + 7 : i + 9], "big")
            return width, height, data[i + 4] * data[i + 9]
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return 0, 0, 0


def _prepare_cover(data: TagData, warnings: list[str]) -> _Cover | None:
    """Resolve the cover's MIME type and size once, for every format to share."""
    if not data.cover:
        return None
    mime = _sniff_image(data.cover) or data.cover_mime
    if not mime:
        warnings.append("cover is not a recognizable image; not embedded")
        return None
    width, height, depth = (0, 0, 0)
    if mime == "image/png":
        width, height, depth = _png_size(data.cover)
    elif mime == "image/jpeg":
        width, height, depth = _jpeg_size(data.cover)
    return _Cover(data.cover, mime, width, height, depth)


def _flac_picture(cover: _Cover) -> Picture:
    """FLAC picture blocks are shared by FLAC files and Ogg METADATA_BLOCK_PICTURE."""
    pic = Picture()
    pic.type = PictureType.COVER_FRONT
    pic.mime = cover.mime
    pic.desc = ""
    pic.width, pic.height, pic.depth = cover.width, cover.height, cover.depth
    pic.data = cover.data
    return pic


class _Codec:
    """Knows one tag system; the generic loop in `tag_file` decides what to write."""

    column = "vorbis"
    duration_in_ms = False

    def __init__(self, id3_version: int = 3) -> None:
        self.id3_version = id3_version

    def key(self, field: TagField) -> str:
        """The table column this tag system reads its keys from."""
        return str(getattr(field, self.column))

    def ensure_tags(self, audio: Any) -> None:
        if audio.tags is None:
            audio.add_tags()

    def put(self, tags: Any, key: str, text: str) -> None:
        raise NotImplementedError

    def get(self, tags: Any, key: str) -> str | None:
        raise NotImplementedError

    def put_cover(self, audio: Any, cover: _Cover) -> str | None:
        raise NotImplementedError

    def get_cover(self, audio: Any) -> tuple[bool, str | None]:
        raise NotImplementedError

    def save(self, audio: Any) -> None:
        audio.save()


class _ID3Codec(_Codec):
    """ID3v2 in MP3 files and in WAV `id3 ` chunks."""

    column = "id3"
    duration_in_ms = True

    def _encoding(self, text: str) -> Encoding:
        # v2.3 has no UTF-8; UTF-16 keeps emoji, CJK and RTL text intact there.
        if self.id3_version == 4:
            return Encoding.UTF8
        return Encoding.LATIN1 if text.isascii() else Encoding.UTF16

    def put(self, tags: Any, key: str, text: str) -> None:
        frame_id, _, desc = key.partition(":")
        enc = self._encoding(text)
        if frame_id == "TXXX":
            tags.delall(key)
            tags.add(TXXX(encoding=enc, desc=desc, text=[text]))
        elif frame_id in ("COMM", "USLT"):
            # Replace every empty-description frame whatever its language, so re-tags never pile up.
            for old in tags.getall(frame_id):
                if old.desc == "":
                    tags.delall(old.HashKey)
            frame_cls = COMM if frame_id == "COMM" else USLT
            tags.add(frame_cls(encoding=enc, lang=_ID3_LANG, desc="", text=text))
        else:
            tags.delall(frame_id)
            tags.add(Frames[frame_id](encoding=enc, text=[text]))

    def get(self, tags: Any, key: str) -> str | None:
        frame_id = key.partition(":")[0]
        if frame_id in ("COMM", "USLT"):
            frames = [f for f in tags.getall(frame_id) if f.desc == ""]
            frames.sort(key=lambda f: f.lang != _ID3_LANG)
            frame = frames[0] if frames else None
        else:
            frame = tags.get(key)
        if frame is None:
            return None
        text = frame.text
        if isinstance(text, str):
            return text
        return _MULTI_SEP.join(str(t) for t in text) if text else None

    def put_cover(self, audio: Any, cover: _Cover) -> str | None:
        tags = audio.tags
        for old in tags.getall("APIC"):
            if _front(old):
                tags.delall(old.HashKey)
        front, latin1 = PictureType.COVER_FRONT, Encoding.LATIN1
        tags.add(APIC(encoding=latin1, mime=cover.mime, type=front, desc="", data=cover.data))
        return None

    def get_cover(self, audio: Any) -> tuple[bool, str | None]:
        return _best_picture(audio.tags.getall("APIC") if audio.tags is not None else [])

    def save(self, audio: Any) -> None:
        if self.id3_version == 3:
            # mutagen only converts v2.4 frames (TDRC -> TYER/TDAT) when asked. Sort-order frames
            # are v2.4-only on paper but read by v2.3 players, so they survive the conversion.
            kept = [f for key in _V23_KEPT for f in audio.tags.getall(key)]
            audio.tags.update_to_v23()
            for frame in kept:
                audio.tags.add(frame)
        audio.save(v2_version=self.id3_version, v23_sep="/")


_MP4_IMAGE_FORMATS = {"image/jpeg": MP4Cover.FORMAT_JPEG, "image/png": MP4Cover.FORMAT_PNG}
_MP4_IMAGE_MIMES = {int(v): k for k, v in _MP4_IMAGE_FORMATS.items()}


class _MP4Codec(_Codec):
    """iTunes-style atoms; custom fields go in freeform `----` atoms as UTF-8."""

    column = "mp4"

    def put(self, tags: Any, key: str, text: str) -> None:
        if key.startswith("----:"):
            tags[key] = [MP4FreeForm(text.encode("utf-8"), dataformat=AtomDataType.UTF8)]
        else:
            tags[key] = [text]

    def get(self, tags: Any, key: str) -> str | None:
        values = tags.get(key)
        if not values:
            return None
        # Freeform atoms hold bytes (MP4FreeForm); text atoms hold str.
        texts = (v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values)
        return _MULTI_SEP.join(texts)

    def put_cover(self, audio: Any, cover: _Cover) -> str | None:
        image_format = _MP4_IMAGE_FORMATS.get(cover.mime)
        if image_format is None:
            return f"MP4 cannot hold a {cover.mime} cover; not embedded"
        # covr has no picture types: the first image is the front cover, so ours replaces all.
        audio.tags["covr"] = [MP4Cover(cover.data, imageformat=image_format)]
        return None

    def get_cover(self, audio: Any) -> tuple[bool, str | None]:
        covers = audio.tags.get("covr") if audio.tags is not None else None
        if not covers:
            return False, None
        return True, _MP4_IMAGE_MIMES.get(int(covers[0].imageformat))


class _VorbisCodec(_Codec):
    """Vorbis comments in Ogg Vorbis/Opus; the cover is a base64 METADATA_BLOCK_PICTURE."""

    column = "vorbis"
    picture_key = "METADATA_BLOCK_PICTURE"

    def put(self, tags: Any, key: str, text: str) -> None:
        tags[key] = [text]  # VCommentDict replaces the key case-insensitively

    def get(self, tags: Any, key: str) -> str | None:
        values = tags.get(key)
        return _MULTI_SEP.join(values) if values else None

    def _pictures(self, tags: Any) -> list[tuple[str, Picture | None]]:
        out: list[tuple[str, Picture | None]] = []
        for raw in tags.get(self.picture_key) or []:
            try:
                out.append((raw, Picture(base64.b64decode(raw))))
            except Exception:  # noqa: BLE001 - someone else's broken picture: keep it, opaque
                out.append((raw, None))
        return out

    def put_cover(self, audio: Any, cover: _Cover) -> str | None:
        kept = [raw for raw, pic in self._pictures(audio.tags) if pic is None or not _front(pic)]
        ours = base64.b64encode(_flac_picture(cover).write()).decode("ascii")
        audio.tags[self.picture_key] = [ours, *kept]
        return None

    def get_cover(self, audio: Any) -> tuple[bool, str | None]:
        pics = [p for _, p in self._pictures(audio.tags)] if audio.tags is not None else []
        return _best_picture([p for p in pics if p is not None])


class _FlacCodec(_VorbisCodec):
    """FLAC keeps text in Vorbis comments but pictures in native PICTURE blocks."""

    def put_cover(self, audio: Any, cover: _Cover) -> str | None:
        blocks = audio.metadata_blocks
        audio.metadata_blocks = [b for b in blocks if not (isinstance(b, Picture) and _front(b))]
        audio.add_picture(_flac_picture(cover))
        return None

    def get_cover(self, audio: Any) -> tuple[bool, str | None]:
        return _best_picture(list(audio.pictures))


def _front(pic: Any) -> bool:
    """Only the front cover is ours to replace; back covers and the like are left alone."""
    return bool(pic.type == PictureType.COVER_FRONT)


def _best_picture(pics: list[Any]) -> tuple[bool, str | None]:
    """Prefer the front cover, but report any picture so `has_cover` is honest."""
    if not pics:
        return False, None
    pics.sort(key=lambda p: not _front(p))
    return True, pics[0].mime or None


# Format name -> (explicit mutagen class, codec). Explicit classes keep file names out of parsing.
_FORMATS: dict[str, tuple[type[mutagen.FileType], type[_Codec]]] = {
    "mp3": (MP3, _ID3Codec),
    "wav": (WAVE, _ID3Codec),
    "m4a": (MP4, _MP4Codec),
    "flac": (FLAC, _FlacCodec),
    "ogg": (OggVorbis, _VorbisCodec),
    "opus": (OggOpus, _VorbisCodec),
}


def _skip_id3(fh: Any) -> tuple[bytes, bool]:
    """Return the bytes after any leading ID3v2 tags; FLAC and MP3 may both start with one."""
    offset, seen = 0, False
    head = fh.read(512)
    while head[:3] == b"ID3" and len(head) >= 10:
        size = 0
        for b in head[6:10]:
            size = (size << 7) | (b & 0x7F)
        offset += 10 + size + (10 if head[5] & 0x10 else 0)
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


def _encode(field: TagField, value: Any, codec: _Codec, warnings: list[str]) -> str | None:
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


def _decode(field: TagField, text: str | None, codec: _Codec) -> Any:
    """Undo `_encode`; an unparsable duration reads as None rather than failing a rebuild."""
    if text is None or field.kind is not Kind.DURATION:
        return text
    try:
        value = float(text.split(_MULTI_SEP)[0])
    except ValueError:
        return None
    return value / 1000 if codec.duration_in_ms else value


def _reason(exc: Exception) -> str:
    """Some mutagen errors have empty messages; the class name still says what went wrong."""
    return str(exc) or type(exc).__name__


def _open(path: Path, fmt: str) -> Any:
    """Open with the explicit mutagen class, so the file name never influences parsing."""
    try:
        return _FORMATS[fmt][0](path)
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
    codec = _FORMATS[fmt][1](id3_version)
    warnings: list[str] = []
    audio = _open(path, fmt)
    try:
        codec.ensure_tags(audio)
        for field in FIELDS:
            text = _encode(field, getattr(data, field.name), codec, warnings)
            if text is not None:
                codec.put(audio.tags, codec.key(field), text)
        cover = _prepare_cover(data, warnings)
        if cover is not None:
            problem = codec.put_cover(audio, cover)
            if problem:
                warnings.append(problem)
        codec.save(audio)
    except Exception as exc:  # noqa: BLE001 - wrap whatever mutagen raised, naming the file
        raise TaggingError(f"cannot write {fmt} tags to {path}: {_reason(exc)}") from exc
    return TagOutcome(fmt, True, "; ".join(warnings) or None)


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
    codec = _FORMATS[fmt][1]()
    audio = _open(path, fmt)
    try:
        if audio.tags is not None:
            for field in FIELDS:
                result[field.name] = _decode(field, codec.get(audio.tags, codec.key(field)), codec)
        result["has_cover"], result["cover_mime"] = codec.get_cover(audio)
    except Exception as exc:  # noqa: BLE001 - malformed frames surface here, not on open
        raise TaggingError(f"cannot read {fmt} tags of {path}: {_reason(exc)}") from exc
    return result


def audio_length(path: Path) -> float | None:
    """The playable length in seconds; None when the file cannot be parsed at all.

    A cut-off download can keep headers that describe the whole file (an MP3 Xing frame count,
    an MP4 `moov` written first), so the header's figure is capped by what the bytes can hold:
    MP3 by size and bitrate, MP4 by whether the `mdat` atom fits in the file.
    """
    try:
        fmt = detect_format(path)
        audio = _FORMATS[fmt][0](path) if fmt else mutagen.File(path)
        length = float(audio.info.length) if audio is not None and audio.info else None
        if length is not None and fmt == "mp3" and getattr(audio.info, "bitrate", 0):
            start = _audio_start(path)
            length = min(length, (path.stat().st_size - start) * 8 / audio.info.bitrate)
        elif length is not None and fmt == "m4a" and not _atoms_fit(path):
            length = 0.0
        elif length is not None and fmt == "wav":
            length = min(length, _wav_seconds_present(path))
    except Exception:  # noqa: BLE001 - "unreadable" is an answer here, not an error
        return None
    return length if length is not None and math.isfinite(length) else None


def _audio_start(path: Path) -> int:
    """Offset of the first byte after any leading ID3v2 tags."""
    offset = 0
    with path.open("rb") as fh:
        while True:
            fh.seek(offset)
            head = fh.read(10)
            if len(head) < 10 or head[:3] != b"ID3":
                return offset
            size = 0
            for b in head[6:10]:
                size = (size << 7) | (b & 0x7F)
            offset += 10 + size + (10 if head[5] & 0x10 else 0)


def _wav_seconds_present(path: Path) -> float:
    """Seconds of PCM in a WAV file; 0 when its `data` chunk is cut short.

    The header states the full size even in a cut file, so, as for an MP4 whose atoms run past
    the end, a short `data` chunk means the download is incomplete, however little is missing.
    """
    size = path.stat().st_size
    byte_rate, offset = 0, 12
    with path.open("rb") as fh:
        while offset + 8 <= size:
            fh.seek(offset)
            header = fh.read(8)
            chunk, length = header[:4], int.from_bytes(header[4:8], "little")
            if chunk == b"fmt ":
                byte_rate = int.from_bytes(fh.read(12)[8:12], "little")
            elif chunk == b"data":
                if size - offset - 8 < length or not byte_rate:
                    return 0.0
                return length / byte_rate
            offset += 8 + length + (length & 1)
    return 0.0


def _atoms_fit(path: Path) -> bool:
    """Every top-level MP4 atom lies within the file (a truncated `mdat` does not)."""
    size = path.stat().st_size
    offset = 0
    with path.open("rb") as fh:
        while offset < size:
            fh.seek(offset)
            header = fh.read(16)
            if len(header) < 8:
                return False
            length = int.from_bytes(header[:4], "big")
            if length == 1 and len(header) >= 16:
                length = int.from_bytes(header[8:16], "big")
            elif length == 0:  # runs to the end of the file
                return True
            if length < 8:
                return False
            offset += length
    return offset == size
