"""Shards (huggingface.co/docs/xet, "Shard Format"; xet-core's `metadata_shard`): the CAS reads the ones
clients upload and writes the ones its global dedupe answers with.

Layout (little-endian): a 48-byte header (a 32-byte tag, version 2, the footer's size); the file info
section (per file: a header with its hash, flags and term count, then one 48-byte entry per term, then as
many verification entries when flag 1<<31 is set, then a metadata entry holding the file's sha256 when
flag 1<<30 is set), closed by a bookend (32 bytes of 0xFF, 16 of 0); the xorb info section (per xorb: a
header with its hash, chunk count, uncompressed and serialized sizes, then one entry per chunk), closed by
a bookend; then, in a stored shard, lookup tables and a 200-byte footer. An uploaded shard omits the
footer (`footer_size` 0); one that carries it anyway is read the same. The metadata entry's sha256 is
stored as xet-core stores every hash, parsed from its hex digest (so in the text form of `hashes`, it
reads as the usual sha256 hex digest); the specification calls it the file's SHA256 without saying so.

The dedupe answer is a whole shard, footer and lookup tables included (the client looks chunks up through
the chunk table), with no files, the matching xorbs, and each chunk hash protected by the footer's HMAC key.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field

from bot.hubsim.xet import hashes

TAG = b"HFRepoMetaData\x00" + bytes(
    [85, 105, 103, 69, 106, 123, 129, 87, 131, 165, 189, 217, 92, 205, 209, 74, 169]
)
HEADER_VERSION = 2
FOOTER_VERSION = 1
ENTRY = 48
FOOTER_SIZE = 200
BOOKEND = b"\xff" * 32 + bytes(16)
WITH_VERIFICATION = 1 << 31
WITH_METADATA = 1 << 30
GLOBAL_DEDUP_CHUNK = 1 << 31


class ShardError(ValueError):
    """A shard that cannot be read."""


@dataclass(frozen=True)
class Term:
    """One term of a file: chunks `[start, end)` of a xorb, `size` bytes once unpacked."""

    xorb: bytes
    size: int
    start: int
    end: int


@dataclass
class FileInfo:
    hash: bytes
    terms: list[Term]
    verification: list[bytes] | None = None
    sha256: bytes | None = None

    @property
    def size(self) -> int:
        return sum(t.size for t in self.terms)


@dataclass(frozen=True)
class XorbChunk:
    hash: bytes
    offset: int  # uncompressed bytes before it in the xorb
    size: int
    flags: int = 0


@dataclass
class XorbInfo:
    hash: bytes
    chunks: list[XorbChunk]
    serialized_size: int = 0

    @property
    def size(self) -> int:
        return sum(c.size for c in self.chunks)


@dataclass
class Shard:
    files: list[FileInfo] = field(default_factory=list)
    xorbs: list[XorbInfo] = field(default_factory=list)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def entry(self, what: str) -> bytes:
        block = self.data[self.pos : self.pos + ENTRY]
        if len(block) < ENTRY:
            raise ShardError(f"shard ends inside {what} at byte {self.pos}")
        self.pos += ENTRY
        return block


def parse(data: bytes) -> Shard:
    """The files and xorbs an uploaded shard describes (ShardError when it is malformed)."""
    if len(data) < ENTRY or data[:32] != TAG:
        raise ShardError("not a shard: wrong header tag")
    version, footer_size = struct.unpack_from("<QQ", data, 32)
    if version != HEADER_VERSION:
        raise ShardError(f"shard header version {version}, expected {HEADER_VERSION}")
    reader = _Reader(data)
    reader.pos = ENTRY
    shard = Shard()
    while (head := reader.entry("the file info section")) != BOOKEND:
        file_hash, flags, count = head[:32], *struct.unpack_from("<II", head, 32)
        terms = []
        for _ in range(count):
            e = reader.entry(f"file {hashes.to_hex(file_hash)}")
            _, size, start, end = struct.unpack_from("<IIII", e, 32)
            if end <= start:
                raise ShardError(f"file {hashes.to_hex(file_hash)}: empty chunk range {start}..{end}")
            terms.append(Term(e[:32], size, start, end))
        info = FileInfo(file_hash, terms)
        if flags & WITH_VERIFICATION:
            info.verification = [reader.entry("verification entries")[:32] for _ in range(count)]
        if flags & WITH_METADATA:
            info.sha256 = reader.entry("the file metadata")[:32]
        shard.files.append(info)
    while (head := reader.entry("the xorb info section")) != BOOKEND:
        xorb_hash, (_, count, _, on_disk) = head[:32], struct.unpack_from("<IIII", head, 32)
        chunks = []
        for _ in range(count):
            e = reader.entry(f"xorb {hashes.to_hex(xorb_hash)}")
            offset, size, chunk_flags = struct.unpack_from("<III", e, 32)
            chunks.append(XorbChunk(e[:32], offset, size, chunk_flags))
        shard.xorbs.append(XorbInfo(xorb_hash, chunks, on_disk))
    if footer_size:
        if (
            len(data) - reader.pos < footer_size
            or struct.unpack_from("<Q", data, len(data) - footer_size)[0] != FOOTER_VERSION
        ):
            raise ShardError("shard footer missing or of an unknown version")
    elif reader.pos != len(data):
        raise ShardError(f"{len(data) - reader.pos} unexpected bytes after the xorb info section")
    return shard


def serialize_upload(shard: Shard) -> bytes:
    """A shard as a client uploads it (no footer): every file with verification entries and sha256."""
    out = bytearray(TAG + struct.pack("<QQ", HEADER_VERSION, 0))
    for f in shard.files:
        flags = (WITH_VERIFICATION if f.verification else 0) | (WITH_METADATA if f.sha256 else 0)
        out += f.hash + struct.pack("<IIQ", flags, len(f.terms), 0)
        for t in f.terms:
            out += t.xorb + struct.pack("<IIII", 0, t.size, t.start, t.end)
        out += b"".join(v + bytes(16) for v in f.verification or [])
        out += f.sha256 + bytes(16) if f.sha256 else b""
    out += BOOKEND
    for x in shard.xorbs:
        out += x.hash + struct.pack("<IIII", 0, len(x.chunks), x.size, x.serialized_size)
        for c in x.chunks:
            out += c.hash + struct.pack("<IIII", c.offset, c.size, c.flags, 0)
    return bytes(out + BOOKEND)


def dedupe_shard(xorbs: list[XorbInfo], key: bytes, valid_for_s: int = 14 * 24 * 3600) -> bytes:
    """A global dedupe answer: `xorbs` with their chunk hashes HMAC'd by `key`, lookup tables, footer."""
    out = bytearray(TAG + struct.pack("<QQ", HEADER_VERSION, FOOTER_SIZE))
    file_info_offset = len(out)
    out += BOOKEND
    xorb_info_offset = len(out)
    xorb_lookup: list[tuple[bytes, int]] = []
    chunk_lookup: list[tuple[bytes, int, int]] = []
    index = 0
    for xorb in sorted(xorbs, key=lambda x: _u64s(x.hash)):
        xorb_lookup.append((xorb.hash, index))
        out += xorb.hash + struct.pack("<IIII", 0, len(xorb.chunks), xorb.size, xorb.serialized_size)
        for i, chunk in enumerate(xorb.chunks):
            protected = hashes.hmac(chunk.hash, key)
            chunk_lookup.append((protected, index, i))
            out += protected + struct.pack("<IIII", chunk.offset, chunk.size, chunk.flags, 0)
        index += 1 + len(xorb.chunks)
    out += BOOKEND
    file_lookup_offset = xorb_lookup_offset = len(out)
    for digest, at in xorb_lookup:
        out += struct.pack("<QI", _u64s(digest)[0], at)
    chunk_lookup_offset = len(out)
    for digest, at, i in sorted(chunk_lookup, key=lambda c: _u64s(c[0])[0]):
        out += struct.pack("<QII", _u64s(digest)[0], at, i)
    footer_offset = len(out)
    now = int(time.time())
    stored = sum(x.size for x in xorbs)
    out += struct.pack(
        "<9Q",
        FOOTER_VERSION,
        file_info_offset,
        xorb_info_offset,
        file_lookup_offset,
        0,
        xorb_lookup_offset,
        len(xorb_lookup),
        chunk_lookup_offset,
        len(chunk_lookup),
    )
    out += key + struct.pack(
        "<QQ6QQQQQ",
        now,
        now + valid_for_s,
        *[0] * 6,
        sum(x.serialized_size for x in xorbs),
        stored,
        stored,
        footer_offset,
    )
    return bytes(out)


def _u64s(digest: bytes) -> tuple[int, ...]:
    """A hash as xet-core orders and truncates it: its four little-endian u64."""
    return struct.unpack("<4Q", digest)
