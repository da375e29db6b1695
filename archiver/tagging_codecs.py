"""Per-format tag codecs: how ID3, MP4 atoms and Vorbis comments store a text value and a cover.

A codec knows nothing of the field table in `tagging`; it only puts text under a key and reads it
back, so the table stays the one place that says which field goes where.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import mutagen
from mutagen.flac import FLAC, Picture
from mutagen.id3 import APIC, COMM, TXXX, USLT, Encoding, Frames, PictureType
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4, AtomDataType, MP4Cover, MP4FreeForm
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

_ID3_LANG = "XXX"  # ID3's "unknown language": no provider says which language its lyrics are in
_V23_KEPT = ("TSOA", "TSOP", "TSOT")
MULTI_SEP = "; "  # joins multi-valued tags written by other software when reading them back


@dataclass(frozen=True)
class Cover:
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


def prepare_cover(
    data: bytes | None, declared_mime: str | None, warnings: list[str]
) -> Cover | None:
    """Resolve the cover's MIME type and size once, for every format to share."""
    if not data:
        return None
    mime = _sniff_image(data) or declared_mime
    if not mime:
        warnings.append("cover is not a recognizable image; not embedded")
        return None
    width, height, depth = (0, 0, 0)
    if mime == "image/png":
        width, height, depth = _png_size(data)
    elif mime == "image/jpeg":
        width, height, depth = _jpeg_size(data)
    return Cover(data, mime, width, height, depth)


def _flac_picture(cover: Cover) -> Picture:
    """FLAC picture blocks are shared by FLAC files and Ogg METADATA_BLOCK_PICTURE."""
    pic = Picture()
    pic.type = PictureType.COVER_FRONT
    pic.mime = cover.mime
    pic.desc = ""
    pic.width, pic.height, pic.depth = cover.width, cover.height, cover.depth
    pic.data = cover.data
    return pic


class Codec:
    """Knows one tag system; the generic loop in `tag_file` decides what to write."""

    column = "vorbis"
    duration_in_ms = False

    def __init__(self, id3_version: int = 3) -> None:
        self.id3_version = id3_version

    def ensure_tags(self, audio: Any) -> None:
        if audio.tags is None:
            audio.add_tags()

    def put(self, tags: Any, key: str, text: str) -> None:
        raise NotImplementedError

    def get(self, tags: Any, key: str) -> str | None:
        raise NotImplementedError

    def delete(self, tags: Any, key: str) -> None:
        tags.pop(key, None)

    def put_cover(self, audio: Any, cover: Cover) -> str | None:
        raise NotImplementedError

    def get_cover(self, audio: Any) -> tuple[bool, str | None]:
        raise NotImplementedError

    def save(self, audio: Any) -> None:
        audio.save()


class _ID3Codec(Codec):
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
        return MULTI_SEP.join(str(t) for t in text) if text else None

    def put_cover(self, audio: Any, cover: Cover) -> str | None:
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


_MP4_PAIRS = ("trkn", "disk")  # integer (number, total) atoms, not text
_MP4_IMAGE_FORMATS = {"image/jpeg": MP4Cover.FORMAT_JPEG, "image/png": MP4Cover.FORMAT_PNG}
_MP4_IMAGE_MIMES = {int(v): k for k, v in _MP4_IMAGE_FORMATS.items()}


class _MP4Codec(Codec):
    """iTunes-style atoms; custom fields go in freeform `----` atoms as UTF-8."""

    column = "mp4"

    def put(self, tags: Any, key: str, text: str) -> None:
        if key.startswith("----:"):
            tags[key] = [MP4FreeForm(text.encode("utf-8"), dataformat=AtomDataType.UTF8)]
        elif key in _MP4_PAIRS:
            number, _, total = text.partition("/")
            tags[key] = [(int(number), int(total or 0))]  # 0 is the atom's "no total"
        else:
            tags[key] = [text]

    def get(self, tags: Any, key: str) -> str | None:
        values = tags.get(key)
        if not values:
            return None
        if key in _MP4_PAIRS:
            number, total = values[0]
            return f"{number}/{total}" if total else str(number)
        # Freeform atoms hold bytes (MP4FreeForm); text atoms hold str.
        texts = (v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values)
        return MULTI_SEP.join(texts)

    def put_cover(self, audio: Any, cover: Cover) -> str | None:
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


class _VorbisCodec(Codec):
    """Vorbis comments in Ogg Vorbis/Opus; the cover is a base64 METADATA_BLOCK_PICTURE."""

    column = "vorbis"
    picture_key = "METADATA_BLOCK_PICTURE"

    def put(self, tags: Any, key: str, text: str) -> None:
        number_key, plus, total_key = key.partition("+")
        if plus:  # a pair: TRACKNUMBER=2 and TRACKTOTAL=3, the spelling players read
            number, _, total = text.partition("/")
            tags[number_key] = [number]
            if total:
                tags[total_key] = [total]
            elif total_key in tags:
                del tags[total_key]
            return
        tags[key] = [text]  # VCommentDict replaces the key case-insensitively

    def get(self, tags: Any, key: str) -> str | None:
        number_key, plus, total_key = key.partition("+")
        if plus:
            number, total = tags.get(number_key), tags.get(total_key)
            if not number:
                return None
            # Some taggers write "2/3" into TRACKNUMBER itself; a separate total wins.
            return f"{number[0].partition('/')[0]}/{total[0]}" if total else number[0]
        values = tags.get(key)
        return MULTI_SEP.join(values) if values else None

    def delete(self, tags: Any, key: str) -> None:
        for part in key.split("+"):
            if part in tags:
                del tags[part]

    def _pictures(self, tags: Any) -> list[tuple[str, Picture | None]]:
        out: list[tuple[str, Picture | None]] = []
        for raw in tags.get(self.picture_key) or []:
            try:
                out.append((raw, Picture(base64.b64decode(raw))))
            except Exception:  # noqa: BLE001 - someone else's broken picture: keep it, opaque
                out.append((raw, None))
        return out

    def put_cover(self, audio: Any, cover: Cover) -> str | None:
        kept = [raw for raw, pic in self._pictures(audio.tags) if pic is None or not _front(pic)]
        ours = base64.b64encode(_flac_picture(cover).write()).decode("ascii")
        audio.tags[self.picture_key] = [ours, *kept]
        return None

    def get_cover(self, audio: Any) -> tuple[bool, str | None]:
        pics = [p for _, p in self._pictures(audio.tags)] if audio.tags is not None else []
        return _best_picture([p for p in pics if p is not None])


class _FlacCodec(_VorbisCodec):
    """FLAC keeps text in Vorbis comments but pictures in native PICTURE blocks."""

    def put_cover(self, audio: Any, cover: Cover) -> str | None:
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
FORMATS: dict[str, tuple[type[mutagen.FileType], type[Codec]]] = {
    "mp3": (MP3, _ID3Codec),
    "wav": (WAVE, _ID3Codec),
    "m4a": (MP4, _MP4Codec),
    "flac": (FLAC, _FlacCodec),
    "ogg": (OggVorbis, _VorbisCodec),
    "opus": (OggOpus, _VorbisCodec),
}
