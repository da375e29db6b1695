"""Recognising media by its first bytes, so an HTML error page is never archived as a song."""

from __future__ import annotations

AUDIO = frozenset({"mp3", "m4a", "flac", "ogg", "opus", "wav", "aac"})
IMAGE = frozenset({"jpg", "png", "gif", "webp"})
VIDEO = frozenset({"mp4", "m4a", "webm"})
_EXPECTED = {"audio": AUDIO | {"mp4"}, "image": IMAGE, "video": VIDEO}


def expected_kinds(asset_kind: str) -> frozenset[str]:
    return _EXPECTED.get(asset_kind, frozenset())


def sniff(head: bytes) -> str | None:
    """The format of a file from its first (≥ 16) bytes, or "html", or None."""
    if head.startswith(b"ID3"):
        return "mp3"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        # MPEG audio frame sync; layer bits 00 with sync 0xFFF is AAC in ADTS
        return "aac" if head[1] & 0xF6 == 0xF0 else "mp3"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        return "m4a" if brand in (b"M4A ", b"M4B ", b"M4P ") else "mp4"
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith(b"OggS"):
        return "opus" if b"OpusHead" in head else "ogg"
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return "wav"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if stripped.startswith((b"<!doctype", b"<html", b"<?xml", b"<head", b"<body", b"<")):
        return "html"
    if stripped.startswith((b"{", b"[")):
        return "json"
    return None


def id3_span(header: bytes) -> int:
    """Bytes the ID3v2 tag whose 10-byte header this is takes: header, body and any footer."""
    size = 0
    for byte in header[6:10]:
        size = (size << 7) | (byte & 0x7F)
    return 10 + size + (10 if header[5] & 0x10 else 0)


def id3_extent(head: bytes) -> int | None:
    """Bytes an ID3v2 tag at the start of `head` takes (0 when there is none, or when its size is
    not synchsafe), from its 10-byte header; None until those 10 bytes are in."""
    if len(head) < 10:
        return None if b"ID3".startswith(head[:3]) else 0
    if head[:3] != b"ID3" or any(b & 0x80 for b in head[6:10]):
        return 0
    return id3_span(head)


def final_ext(kind: str, asset_kind: str) -> str:
    """File extension for a sniffed format: an MP4 container is .m4a for the song and .mp4 for
    a video, so that a clip's video never takes its song's name (they share the stem)."""
    if asset_kind == "audio" and kind == "mp4":
        return "m4a"
    if asset_kind == "video" and kind == "m4a":
        return "mp4"
    return kind


_TRAILERS = {"jpg": (b"\xff\xd9",), "png": (b"IEND\xaeB`\x82",), "gif": (b";",)}


def looks_complete(tail: bytes, kind: str) -> bool:
    """Whether a file's last bytes carry its format's end marker (for bodies sent without a length).

    Formats without a cheap end marker are assumed complete; audio is checked by its length.
    """
    markers = _TRAILERS.get(kind)
    if not markers:
        return True
    return tail.rstrip(b"\x00").endswith(markers)
