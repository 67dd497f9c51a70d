"""Real result bytes: small PNG images and minimal ISO-BMFF (MP4) videos, distinct per job.

Images are built whole (they are tiny). Videos are ``ftyp`` + ``moov/mvhd`` + ``mdat``, where
``mdat`` holds the job's label followed by zero padding up to the configured size; they are
produced as a stream of chunks so a large file is never held in memory.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Iterator

__all__ = ["CHUNK_SIZE", "md5_of", "mp4_chunks", "mp4_size", "png_bytes"]

CHUNK_SIZE = 64 * 1024
_MP4_EPOCH_OFFSET = 2_082_844_800  # seconds from 1904-01-01 (MP4 epoch) to 1970-01-01
_ZEROS = bytes(CHUNK_SIZE)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png_bytes(label: str, *, width: int = 32, height: int = 32) -> bytes:
    """A valid RGB PNG whose colours and ``tEXt`` comment derive from ``label``."""
    digest = hashlib.sha256(label.encode("utf-8")).digest()
    rows = []
    for y in range(height):
        # Two colour bands from the digest, so different labels give visibly different images.
        colour = digest[0:3] if (y * 4 // height) % 2 == 0 else digest[3:6]
        rows.append(b"\x00" + colour * width)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"".join(
        [
            b"\x89PNG\r\n\x1a\n",
            _png_chunk(b"IHDR", header),
            _png_chunk(b"tEXt", b"Comment\x00" + label.encode("utf-8")),
            _png_chunk(b"IDAT", zlib.compress(b"".join(rows), 9)),
            _png_chunk(b"IEND", b""),
        ]
    )


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _mp4_head(label: str, created: float, duration: float) -> tuple[bytes, int]:
    """The boxes before ``mdat``'s payload, and the label bytes that open the payload."""
    ftyp = _box(b"ftyp", b"isom" + struct.pack(">I", 512) + b"isomiso2avc1mp41")
    when = (int(created) + _MP4_EPOCH_OFFSET) & 0xFFFFFFFF
    matrix = struct.pack(">9I", 0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000)
    mvhd = _box(
        b"mvhd",
        struct.pack(">B3xIIII", 0, when, when, 1000, int(duration * 1000))
        + struct.pack(">IH2x8x", 0x00010000, 0x0100)
        + matrix
        + bytes(24)
        + struct.pack(">I", 1),
    )
    moov = _box(b"moov", mvhd)
    return ftyp + moov, len(label.encode("utf-8"))


def mp4_size(label: str, size: int) -> int:
    """The real size of the MP4 for ``label``: ``size``, or the minimum if that is smaller."""
    head, label_len = _mp4_head(label, 0, 0)
    return max(size, len(head) + 8 + label_len)


def mp4_chunks(
    label: str, size: int, *, created: float = 0.0, duration: float = 10.0
) -> Iterator[bytes]:
    """Yield a minimal valid MP4 of ``mp4_size(label, size)`` bytes in chunks."""
    head, _ = _mp4_head(label, created, duration)
    total = mp4_size(label, size)
    label_bytes = label.encode("utf-8")
    mdat_size = total - len(head)
    yield head + struct.pack(">I", mdat_size) + b"mdat" + label_bytes
    remaining = mdat_size - 8 - len(label_bytes)
    while remaining > 0:
        step = min(remaining, CHUNK_SIZE)
        yield _ZEROS[:step]
        remaining -= step


def md5_of(chunks: Iterator[bytes]) -> str:
    """Hex MD5 of a stream of chunks (the ``ETag`` S3 and CloudFront send)."""
    digest = hashlib.md5(usedforsecurity=False)
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()
