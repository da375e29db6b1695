"""The playable length of a downloaded file, which a cut-off download's headers cannot inflate."""

from __future__ import annotations

import math
from pathlib import Path

import mutagen

from .media import id3_span
from .tagging import detect_format
from .tagging_codecs import FORMATS


def audio_length(path: Path) -> float | None:
    """The playable length in seconds; None when the file cannot be parsed at all.

    A cut-off download can keep headers that describe the whole file (an MP3 Xing frame count,
    an MP4 `moov` written first), so the header's figure is capped by what the bytes can hold:
    MP3 by size and bitrate, MP4 by whether the `mdat` atom fits in the file.
    """
    try:
        fmt = detect_format(path)
        audio = FORMATS[fmt][0](path) if fmt else mutagen.File(path)
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
            offset += id3_span(head)


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
