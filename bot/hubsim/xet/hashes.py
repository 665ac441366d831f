"""The Xet protocol's hashes (huggingface.co/docs/xet, "Hashing"), computed as the CAS must to check uploads.

- A chunk hash is the blake3 keyed hash of the chunk's bytes with `DATA_KEY`.
- A xorb hash is the root of a merkle tree over its chunks' `(hash, size)` pairs: each level is cut into
  groups of 2 to 9 nodes (a group ends after a node whose hash is 0 mod 4, counting from its third node),
  and a group's hash is the blake3 keyed hash, with `INTERNAL_NODE_KEY`, of one line
  `"{hash hex} : {size}\\n"` per node; its size is the sum of theirs.
- A file hash is that root over the file's chunks, hashed again with an all-zero key.
- A term's verification hash (shard uploads) is the keyed hash, with `VERIFICATION_KEY`, of the raw chunk
  hashes of the term's chunk range.

Hashes are 32 raw bytes here. Their text form (paths, JSON, the merkle lines) reads the 32 bytes as four
little-endian u64 and prints each as 16 hex digits, so each 8-byte group appears byte-reversed.
"""

from __future__ import annotations

from collections.abc import Sequence

import blake3

HASH_SIZE = 32
DATA_KEY = bytes(
    [102, 151, 245, 119, 91, 149, 80, 222, 49, 53, 203, 172, 165, 151, 24, 28]
    + [157, 228, 33, 16, 155, 235, 43, 88, 180, 208, 176, 75, 147, 173, 242, 41]
)
INTERNAL_NODE_KEY = bytes(
    [1, 126, 197, 199, 165, 71, 41, 150, 253, 148, 102, 102, 180, 138, 2, 230]
    + [93, 221, 83, 111, 55, 199, 109, 210, 248, 99, 82, 230, 74, 83, 113, 63]
)
VERIFICATION_KEY = bytes(
    [127, 24, 87, 214, 206, 86, 237, 102, 18, 127, 249, 19, 231, 165, 195, 243]
    + [164, 205, 38, 213, 181, 219, 73, 230, 65, 36, 152, 127, 40, 251, 148, 195]
)
ZERO_KEY = bytes(HASH_SIZE)
MEAN_BRANCHING = 4
MAX_GROUP = 2 * MEAN_BRANCHING + 1

Node = tuple[bytes, int]  # (hash, size in bytes)


def keyed(key: bytes, data: bytes) -> bytes:
    return blake3.blake3(data, key=key).digest()


def chunk_hash(data: bytes) -> bytes:
    """The hash of one chunk's (uncompressed) bytes."""
    return keyed(DATA_KEY, data)


def to_hex(digest: bytes) -> str:
    """The protocol's text form of a hash (each 8-byte group byte-reversed, then hex)."""
    return "".join(digest[i : i + 8][::-1].hex() for i in range(0, HASH_SIZE, 8))


def from_hex(text: str) -> bytes:
    """The raw hash of a text form (ValueError when it is not 64 hex digits)."""
    if len(text) != 2 * HASH_SIZE:
        raise ValueError(f"not a 64-hex Xet hash: {text!r}")
    raw = bytes.fromhex(text)
    return b"".join(raw[i : i + 8][::-1] for i in range(0, HASH_SIZE, 8))


def _cut(level: Sequence[Node], start: int) -> int:
    """The end of the group starting at `start`: after the first node (from the third) whose hash's last
    u64 is 0 mod 4, or after at most `MAX_GROUP` nodes."""
    if len(level) - start <= 2:
        return len(level)
    end = min(start + MAX_GROUP, len(level))
    for i in range(start + 2, end):
        if int.from_bytes(level[i][0][24:], "little") % MEAN_BRANCHING == 0:
            return i + 1
    return end


def _merge(group: Sequence[Node]) -> Node:
    lines = "".join(f"{to_hex(h)} : {size}\n" for h, size in group)
    return keyed(INTERNAL_NODE_KEY, lines.encode()), sum(size for _, size in group)


def merkle_root(nodes: Sequence[Node]) -> bytes:
    """The root of the aggregated merkle tree over `nodes` (all-zero for none)."""
    if not nodes:
        return ZERO_KEY
    level = list(nodes)
    while len(level) > 1:
        merged = []
        start = 0
        while start < len(level):
            end = _cut(level, start)
            merged.append(_merge(level[start:end]))
            start = end
        level = merged
    return level[0][0]


def xorb_hash(chunks: Sequence[Node]) -> bytes:
    return merkle_root(chunks)


def file_hash(chunks: Sequence[Node]) -> bytes:
    """A file's id: the merkle root over its chunks, keyed once more with zeros (all-zero when empty)."""
    return keyed(ZERO_KEY, merkle_root(chunks)) if chunks else ZERO_KEY


def verification_hash(chunk_hashes: Sequence[bytes]) -> bytes:
    """The range hash a shard's `FileVerificationEntry` carries for one term."""
    return keyed(VERIFICATION_KEY, b"".join(chunk_hashes))


def hmac(digest: bytes, key: bytes) -> bytes:
    """A chunk hash as a dedupe shard protects it (`chunk_hash_hmac_key`)."""
    return keyed(key, digest)
