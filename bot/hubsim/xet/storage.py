"""The CAS's state: xorbs, the files that shards registered, the global dedupe index, tokens and grants.

Every upload is checked as the CAS checks it (huggingface.co/docs/xet, "CAS API", "Shard Format"):
a xorb must hash to its name; a shard may only name xorbs that are stored, with the chunks they hold; each
file's terms must be whole chunk ranges of those xorbs, with the sizes and verification hashes of those
chunks, and the file's id must be the file hash of its chunks. hubsim also checks the sha256 the shard
declares for each file against the content, since commits name Xet files by that sha256, as LFS files.

With a data directory, xorbs and accepted shards are kept on disk and the index is rebuilt from them.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bot.hubsim.store import atomic_write
from bot.hubsim.xet import hashes, xorb
from bot.hubsim.xet import shard as shard_format
from bot.hubsim.xet.shard import GLOBAL_DEDUP_CHUNK, FileInfo, Shard, XorbChunk, XorbInfo

DEDUPE_MODULUS = 1024  # a chunk is indexed for global dedupe when its hash's last u64 is 0 mod this
TOKEN_TTL_S = 3600
GRANT_TTL_S = 900
SERVER_CHUNK = 64 * 1024


class ShardRefused(ValueError):
    """A shard the CAS does not accept (the spec's 400), with the reason."""


@dataclass
class Token:
    """A Xet access token as the Hub hands it out: scope, repo, expiry."""

    value: str
    write: bool
    repo: tuple[str, str]
    expires: int


@dataclass
class Grant:
    """An upload grant for one xorb: what the client announced, and the bytes once they arrive."""

    id: str
    xorb: bytes
    length: int
    crc64: int
    expires: float
    data: bytes | None = None


@dataclass
class StoredXorb:
    chunks: list[xorb.Chunk]
    length: int
    info: XorbInfo | None = None  # as the first shard naming it described it (for dedupe answers)


@dataclass
class Stats:
    """What the CAS received, for tests and benchmarks."""

    xorb_bodies: Counter[str] = field(default_factory=Counter)  # xorb hex -> bodies received
    shards: int = 0
    dedupe_queries: int = 0
    dedupe_hits: int = 0
    telemetry: int = 0


class XetStorage:
    """The CAS behind hubsim's Xet routes. Callers hold the hub's lock."""

    def __init__(self, root: Path | None = None) -> None:
        self._root = root
        self.tokens: dict[str, Token] = {}
        self.grants: dict[str, Grant] = {}
        self.xorbs: dict[bytes, StoredXorb] = {}
        self.files: dict[bytes, FileInfo] = {}
        self.by_sha256: dict[str, FileInfo] = {}
        self.dedupe: dict[bytes, bytes] = {}  # chunk hash -> xorb hash
        self.token_ttl_s = TOKEN_TTL_S
        self.dedupe_key = secrets.token_bytes(hashes.HASH_SIZE)  # protects chunk hashes in dedupe answers
        self.stats = Stats()
        self._memory: dict[bytes, bytes] = {}
        self.id = secrets.token_hex(8)  # names this storage in the CAS URL (`cas_api.cas_url`)
        if root is not None:
            self._load(root)

    # ------------------------------------------------------------------ tokens

    def issue(self, write: bool, repo: tuple[str, str]) -> Token:
        now = int(time.time())
        self.tokens = {k: t for k, t in self.tokens.items() if t.expires > now - TOKEN_TTL_S}  # drop the old
        token = Token("xet_" + secrets.token_urlsafe(24), write, repo, now + self.token_ttl_s)
        self.tokens[token.value] = token
        return token

    def token(self, value: str | None) -> Token | None:
        """The live token `value` names (None: unknown or expired)."""
        token = self.tokens.get(value or "")
        return token if token is not None and token.expires > time.time() else None

    def expire_tokens(self) -> int:
        """Fault injection: every token handed out so far stops working now (clients must refresh)."""
        for token in self.tokens.values():
            token.expires = 0
        return len(self.tokens)

    # ------------------------------------------------------------------ xorbs

    def has_xorb(self, name: bytes) -> bool:
        return name in self.xorbs

    def put_xorb(self, name: bytes, data: bytes) -> bool:
        """Check and keep a xorb body; False when it was stored already. XorbError when it is refused."""
        self.stats.xorb_bodies[hashes.to_hex(name)] += 1
        if name in self.xorbs:
            return False
        chunks, length = xorb.verify(name, data)
        self._write_xorb(name, data[:length], chunks)
        return True

    def new_grant(self, name: bytes, length: int, crc64: int) -> Grant:
        now = time.time()
        self.grants = {k: g for k, g in self.grants.items() if g.expires > now}
        grant = Grant(secrets.token_hex(16), name, length, crc64, now + GRANT_TTL_S)
        self.grants[grant.id] = grant
        return grant

    def lose_xorb(self, name: bytes) -> None:
        """Fault injection: storage loses a xorb (its dedupe entries stay, as a stale index would)."""
        self.xorbs.pop(name, None)
        self._memory.pop(name, None)
        if self._root is not None:
            self._xorb_path(name).unlink(missing_ok=True)

    def xorb_bytes(self, name: bytes) -> bytes:
        if self._root is None:
            return self._memory[name]
        return self._xorb_path(name).read_bytes()

    # ------------------------------------------------------------------ shards

    def register_shard(self, shard: Shard, raw: bytes) -> bool:
        """Check a shard and register its files and xorbs; False when it registered nothing new."""
        for info in shard.xorbs:
            self._check_xorb_info(info)
        for file in shard.files:
            self._check_file(file)
        new = any(f.hash not in self.files for f in shard.files) or any(
            self.xorbs[x.hash].info is None for x in shard.xorbs
        )
        self._index(shard)
        self.stats.shards += 1
        if new and self._root is not None:
            atomic_write(self._root / "shards" / hashlib.sha256(raw).hexdigest(), raw)
        return new

    def _check_xorb_info(self, info: XorbInfo) -> None:
        stored = self.xorbs.get(info.hash)
        if stored is None:
            raise ShardRefused(f"xorb {hashes.to_hex(info.hash)} was never uploaded")
        if [(c.hash, c.size) for c in info.chunks] != [(c.hash, c.size) for c in stored.chunks]:
            raise ShardRefused(f"xorb {hashes.to_hex(info.hash)}: the shard lists other chunks than it holds")

    def _check_file(self, file: FileInfo) -> None:
        name = hashes.to_hex(file.hash)
        if file.verification is None or file.sha256 is None:
            raise ShardRefused(f"file {name}: a shard upload needs verification entries and the sha256")
        nodes: list[hashes.Node] = []
        for term, expected in zip(file.terms, file.verification, strict=True):
            stored = self.xorbs.get(term.xorb)
            if stored is None:
                raise ShardRefused(f"file {name}: xorb {hashes.to_hex(term.xorb)} was never uploaded")
            chunks = stored.chunks[term.start : term.end]
            if term.end > len(stored.chunks) or sum(c.size for c in chunks) != term.size:
                raise ShardRefused(f"file {name}: a term does not match xorb {hashes.to_hex(term.xorb)}")
            if hashes.verification_hash([c.hash for c in chunks]) != expected:
                raise ShardRefused(f"file {name}: a term's verification hash does not match its chunks")
            nodes += [(c.hash, c.size) for c in chunks]
        if hashes.file_hash(nodes) != file.hash:
            raise ShardRefused(f"file {name}: its chunks hash to {hashes.to_hex(hashes.file_hash(nodes))}")
        digest = hashlib.sha256()
        for piece in self._pieces(file, 0, file.size):
            digest.update(piece)
        if digest.hexdigest() != hashes.to_hex(file.sha256):
            raise ShardRefused(f"file {name}: its content does not have the sha256 the shard declares")

    def _index(self, shard: Shard) -> None:
        for info in shard.xorbs:
            stored = self.xorbs[info.hash]
            stored.info = stored.info or info
            for chunk in info.chunks:
                eligible = chunk.flags & GLOBAL_DEDUP_CHUNK or _dedupe_eligible(chunk.hash)
                if eligible:
                    self.dedupe.setdefault(chunk.hash, info.hash)
        for file in shard.files:
            if file.hash in self.files:
                continue
            self.files[file.hash] = file
            assert file.sha256 is not None
            self.by_sha256.setdefault(hashes.to_hex(file.sha256), file)
            # the first chunk of every file is queried by clients, so it is indexed too
            first = file.terms[0] if file.terms else None
            if first is not None and first.xorb in self.xorbs:
                self.dedupe.setdefault(self.xorbs[first.xorb].chunks[first.start].hash, first.xorb)

    def dedupe_xorbs(self, chunk: bytes) -> list[XorbInfo]:
        """The xorbs a global dedupe query for `chunk` answers with (empty: unknown chunk)."""
        self.stats.dedupe_queries += 1
        name = self.dedupe.get(chunk)
        stored = self.xorbs.get(name) if name is not None else None
        if stored is None:
            return []
        self.stats.dedupe_hits += 1
        return [stored.info or _info(name or b"", stored)]

    def add_file(self, data: bytes) -> FileInfo:
        """Store `data` as a client would upload it (hubsim's own files: the calibration stand-in): cut
        into fixed 64 KiB chunks, stored uncompressed in xorbs of at most 64 MiB, registered by a shard."""
        pieces = [data[i : i + SERVER_CHUNK] for i in range(0, len(data), SERVER_CHUNK)]
        nodes = [(hashes.chunk_hash(p), len(p)) for p in pieces]
        per_xorb = xorb.MAX_XORB_SIZE // SERVER_CHUNK
        terms, verification, infos = [], [], []
        for at in range(0, len(pieces), per_xorb):
            group, group_nodes = pieces[at : at + per_xorb], nodes[at : at + per_xorb]
            name = hashes.xorb_hash(group_nodes)
            body = b"".join(
                bytes([0]) + len(p).to_bytes(3, "little") + bytes([0]) + len(p).to_bytes(3, "little") + p
                for p in group
            )
            self.put_xorb(name, body)
            infos.append(_info(name, self.xorbs[name]))
            terms.append(shard_format.Term(name, sum(s for _, s in group_nodes), 0, len(group)))
            verification.append(hashes.verification_hash([h for h, _ in group_nodes]))
        sha256 = hashes.from_hex(hashlib.sha256(data).hexdigest())
        file = FileInfo(hashes.file_hash(nodes), terms, verification, sha256)
        self.register_shard(Shard([file], infos), shard_format.serialize_upload(Shard([file], infos)))
        return file

    # ------------------------------------------------------------------ content

    def file_by_sha256(self, sha256: str) -> FileInfo | None:
        return self.by_sha256.get(sha256)

    def read(self, file: FileInfo, start: int = 0, end: int | None = None) -> bytes:
        """Bytes `[start, end)` of a file, decompressed from its xorbs."""
        end = file.size if end is None else min(end, file.size)
        return b"".join(self._pieces(file, start, end))

    def _pieces(self, file: FileInfo, start: int, end: int) -> Iterator[bytes]:
        pos = 0
        for term in file.terms:
            stored = self.xorbs[term.xorb]
            data = self.xorb_bytes(term.xorb)
            for chunk in stored.chunks[term.start : term.end]:
                lo, hi = pos, pos + chunk.size
                pos = hi
                if hi <= start or lo >= end:
                    continue
                piece = xorb.decompress(data[chunk.start : chunk.end])
                yield piece[max(start - lo, 0) : min(end, hi) - lo]
            if pos >= end:
                return

    # ------------------------------------------------------------------ persistence

    def _xorb_path(self, name: bytes) -> Path:
        assert self._root is not None
        text = hashes.to_hex(name)
        return self._root / "xorbs" / text[:2] / text[2:]

    def _write_xorb(self, name: bytes, data: bytes, chunks: list[xorb.Chunk]) -> None:
        if self._root is None:
            self._memory[name] = data
        else:
            path = self._xorb_path(name)
            index = [[c.hash.hex(), c.size, c.start, c.end] for c in chunks]
            atomic_write(path.with_suffix(".json"), json.dumps(index).encode())
            atomic_write(path, data)
        self.xorbs[name] = StoredXorb(chunks, len(data))

    def _load(self, root: Path) -> None:
        id_file = root / "id"
        if id_file.exists():
            self.id = id_file.read_text().strip()
        else:
            atomic_write(id_file, self.id.encode())
        for index_path in sorted((root / "xorbs").glob("*/*.json")):
            chunks = [
                xorb.Chunk(bytes.fromhex(h), s, a, b) for h, s, a, b in json.loads(index_path.read_text())
            ]
            name = hashes.from_hex(index_path.parent.name + index_path.stem)
            if index_path.with_suffix("").exists():
                self.xorbs[name] = StoredXorb(chunks, chunks[-1].end)
        for shard_path in sorted((root / "shards").glob("*")):
            self._index(shard_format.parse(shard_path.read_bytes()))


def _dedupe_eligible(chunk: bytes) -> bool:
    return int.from_bytes(chunk[24:], "little") % DEDUPE_MODULUS == 0


def _info(name: bytes, stored: StoredXorb) -> XorbInfo:
    offset, chunks = 0, []
    for c in stored.chunks:
        chunks.append(XorbChunk(c.hash, offset, c.size))
        offset += c.size
    return XorbInfo(name, chunks, stored.length)
