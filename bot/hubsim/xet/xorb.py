"""Serialized xorbs (huggingface.co/docs/xet, "Xorb Format"): read, check and decompress them.

A xorb is a sequence of chunk records, each an 8-byte header (version 0; compressed size, 3 bytes
little-endian; compression scheme; uncompressed size, 3 bytes little-endian) and the compressed bytes.
Schemes: 0 none, 1 LZ4 (frame format, as xet-core's `lz4_flex::frame`), 2 byte grouping by 4 then LZ4.
Clients send xorbs without xet-core's storage footer (`XETBLOB`...); one that follows the last chunk is
tolerated and left out of what is served. The CAS refuses a body whose chunks do not hash to the xorb's
name, a chunk larger than 128 KiB, and a xorb of more than 64 MiB of chunk data or 8192 chunks. (The
specification says 64 MiB "as serialized"; xet-core fills a xorb up to 64 MiB of uncompressed chunk data,
so incompressible data serializes a few KiB over, with the chunk headers, and the CAS takes it.)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import lz4.frame

from bot.hubsim.xet import hashes

HEADER_SIZE = 8
MAX_CHUNK_SIZE = 128 * 1024
MAX_XORB_SIZE = 64 * 1024 * 1024  # of uncompressed chunk data
MAX_XORB_CHUNKS = 8 * 1024
FOOTER_IDENT = b"XETBLOB"
NONE, LZ4, BG4_LZ4 = 0, 1, 2


class XorbError(ValueError):
    """A xorb body that is malformed or does not match its hash."""


@dataclass(frozen=True)
class Chunk:
    """One chunk of a stored xorb: its hash, uncompressed size, and where its record lies."""

    hash: bytes
    size: int
    start: int  # offset of the record's header in the serialized xorb
    end: int  # offset just past its compressed bytes


def _u24(data: bytes) -> int:
    return int.from_bytes(data, "little")


def records(data: bytes) -> list[tuple[int, int, int, int]]:
    """`(start, end, scheme, uncompressed size)` per chunk record; XorbError when malformed."""
    found: list[tuple[int, int, int, int]] = []
    pos = 0
    while pos < len(data):
        if data[pos : pos + len(FOOTER_IDENT)] == FOOTER_IDENT and found:
            break
        header = data[pos : pos + HEADER_SIZE]
        if len(header) < HEADER_SIZE:
            raise XorbError(f"truncated chunk header at byte {pos}")
        version, compressed, scheme, size = header[0], _u24(header[1:4]), header[4], _u24(header[5:8])
        if version != 0:
            raise XorbError(f"chunk {len(found)}: unknown chunk header version {version}")
        if scheme not in (NONE, LZ4, BG4_LZ4):
            raise XorbError(f"chunk {len(found)}: unknown compression scheme {scheme}")
        if size > MAX_CHUNK_SIZE or compressed > 2 * MAX_CHUNK_SIZE:
            raise XorbError(f"chunk {len(found)}: larger than the {MAX_CHUNK_SIZE}-byte chunk limit")
        end = pos + HEADER_SIZE + compressed
        if end > len(data):
            raise XorbError(f"chunk {len(found)}: {compressed} compressed bytes announced, fewer sent")
        found.append((pos, end, scheme, size))
        pos = end
    if not found:
        raise XorbError("a xorb holds at least one chunk")
    return found


def decompress(record: bytes) -> bytes:
    """The uncompressed bytes of one chunk record (header included); XorbError when they do not decode."""
    scheme, size, payload = record[4], _u24(record[5:8]), record[HEADER_SIZE:]
    try:
        if scheme == NONE:
            data = bytes(payload)
        else:
            data = lz4.frame.decompress(payload)
            if scheme == BG4_LZ4:
                data = _ungroup(data)
    except RuntimeError as e:  # lz4 reports corrupt frames as RuntimeError
        raise XorbError(f"a chunk does not decompress: {e}") from None
    if len(data) != size:
        raise XorbError(f"a chunk decompresses to {len(data)} bytes, its header says {size}")
    return data


def _ungroup(grouped: bytes) -> bytes:
    """Undo byte grouping: group k holds bytes k, k+4, k+8, ... (the first `n % 4` groups one more)."""
    n = len(grouped)
    out = bytearray(n)
    pos = 0
    for k in range(4):
        count = len(range(k, n, 4))
        out[k::4] = grouped[pos : pos + count]
        pos += count
    return bytes(out)


def verify(name: bytes, data: bytes) -> tuple[list[Chunk], int]:
    """The chunks of a xorb body whose merkle hash must be `name`, and its length without any footer."""
    found = records(data)
    if len(found) > MAX_XORB_CHUNKS or sum(size for *_, size in found) > MAX_XORB_SIZE:
        raise XorbError(f"a xorb holds at most {MAX_XORB_CHUNKS} chunks and {MAX_XORB_SIZE} bytes of data")
    chunks = []
    for start, end, _, size in found:
        chunks.append(Chunk(hashes.chunk_hash(decompress(data[start:end])), size, start, end))
    actual = hashes.xorb_hash([(c.hash, c.size) for c in chunks])
    if actual != name:
        raise XorbError(
            f"xorb content hashes to {hashes.to_hex(actual)}, not to its name {hashes.to_hex(name)}"
        )
    return chunks, chunks[-1].end


def chunk_data(data: bytes, chunks: Iterable[Chunk]) -> bytes:
    """The uncompressed bytes of `chunks` of a serialized xorb, concatenated."""
    return b"".join(decompress(data[c.start : c.end]) for c in chunks)
