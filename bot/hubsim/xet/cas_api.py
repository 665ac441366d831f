"""The CAS server's HTTP API (huggingface.co/docs/xet, "CAS API") as hf_xet 1.8 calls it, under
`/_xet/{store}/` (see `cas_url`):

- `GET /v1/reconstructions/{file}` and `GET /v2/reconstructions/{file}` (a `Range` header selects bytes):
  the file's terms, trimmed to whole chunks around the range, with `offset_into_first_range`, and signed
  URLs to byte ranges of the xorbs (v1 one per term, v2 one per xorb listing its ranges);
- `GET /v1/chunks/{prefix}/{chunk}`: global dedupe, a shard naming the xorb that holds the chunk, or 404;
- `POST /v1/xorb-grants/{prefix}/{xorb}` (`{length, checksum: {algo: crc64nvme, value}}`): 200 when the xorb
  is stored already, else 201 and a grant (`id`, `method`, `url`, `headers`) to PUT the body to; then
  `POST /v1/xorb-commits/{prefix}/{xorb}/grant/{id}` checks and keeps it (404: nothing was uploaded);
  `POST /v1/xorbs/{prefix}/{xorb}` takes the body directly (the client's older path);
- `POST /v1/shards` (`{"result": 0|1}`) and `POST /v2/shards` (NDJSON progress frames ending in `result`, or
  in an `error` frame: the stream has started, so a refusal is signalled in it);
- hubsim's admin routes `POST /_hubsim/xet/expire-tokens` and `GET /_hubsim/xet/stats`;
- `POST /v1/telemetry`, at the root of the CAS's host as hf_xet sends it (accepted and counted), and
  `HEAD /v1/files/{file}` (its size).

Every route takes the Xet token (`Authorization: Bearer`): 401 when it is missing or expired (the client
refreshes it from the Hub), 403 when a read token is used to write. The storage URLs the answers hand out
(`/_xet-storage/...`) are signed instead, like presigned object-store URLs: a xorb range opens only with the
exact `Range` it was signed for, and an upload only with its grant.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import anycrc
from starlette.responses import JSONResponse, Response

from bot.hubsim import lfs
from bot.hubsim.byteranges import requested_range
from bot.hubsim.errors import ApiError, bad_request
from bot.hubsim.routing import Call, Router
from bot.hubsim.xet import hashes, shard
from bot.hubsim.xet.shard import FileInfo, ShardError
from bot.hubsim.xet.storage import ShardRefused, Token
from bot.hubsim.xet.xorb import XorbError

CAS_PREFIX = "_xet"
STORAGE_PREFIX = "_xet-storage"
CRC64_NVME = anycrc.Model("CRC64-NVME")
NDJSON = "application/x-ndjson"


def register(router: Router) -> None:
    cas = "/" + CAS_PREFIX + "/{store}"
    for version in ("v1", "v2"):
        router.add("GET", f"{cas}/{version}/reconstructions/{{file}}", reconstruction, version=version)
        router.add("POST", f"{cas}/{version}/shards", upload_shard, version=version)
    router.add("GET", cas + "/v1/chunks/{prefix}/{chunk}", dedupe)
    router.add("POST", cas + "/v1/xorb-grants/{prefix}/{xorb}", grant)
    router.add("POST", cas + "/v1/xorb-commits/{prefix}/{xorb}/grant/{grant}", commit_grant)
    router.add("POST", cas + "/v1/xorbs/{prefix}/{xorb}", upload_xorb)
    router.add("POST", "/v1/telemetry", telemetry)  # hf_xet posts it at the CAS host's root
    router.add("GET", cas + "/v1/files/{file}", file_size)
    router.add("POST", "/_hubsim/xet/expire-tokens", expire_tokens)
    router.add("GET", "/_hubsim/xet/stats", stats)
    storage = "/" + STORAGE_PREFIX
    router.add("PUT", storage + "/uploads/{grant}", store_grant)
    router.add("GET", storage + "/xorbs/{xorb}", fetch_xorb_range)


def own_auth(segments: list[str]) -> bool:
    """Whether a path is the CAS's or its storage's: Xet tokens or signed URLs, never a Hub token."""
    return segments[:1] in ([CAS_PREFIX], [STORAGE_PREFIX]) or segments == ["v1", "telemetry"]


def cas_url(call: Call) -> str:
    """The CAS endpoint the Hub's token answers name (`casUrl`): `/_xet/{store}`, `store` naming this
    storage, since clients key their local caches (shards of xorbs they may skip) by that URL: a client
    must not skip xorbs that another hubsim, or this one before an in-memory restart, held."""
    return f"{call.base_url}/{CAS_PREFIX}/{call.hub.xet.id}"


def _token(call: Call, *, write: bool = False) -> Token:
    if call.params.get("store", call.hub.xet.id) != call.hub.xet.id:
        raise ApiError(404, "No such CAS here: its storage is gone (hubsim restarted without --data?)")
    scheme, _, value = (call.request.headers.get("authorization") or "").partition(" ")
    token = call.hub.xet.token(value.strip()) if scheme.lower() == "bearer" else None
    if token is None:
        raise ApiError(401, "Missing, unknown or expired Xet token: get a new one from the Hub")
    if write and not token.write:
        raise ApiError(403, "This Xet token may only read: uploads need a write token")
    return token


def _hash(call: Call, name: str) -> bytes:
    try:
        return hashes.from_hex(call.params[name])
    except ValueError:
        raise bad_request(f"Malformed hash in the path: {call.params[name]!r}") from None


def _file(call: Call) -> FileInfo:
    file = call.hub.xet.files.get(_hash(call, "file"))
    if file is None:
        raise ApiError(404, f"File not found: {call.params['file']}")
    return file


# ---------------------------------------------------------------------- downloads


def file_size(call: Call) -> Response:
    _token(call)
    return Response(b"", headers={"Content-Length": str(_file(call).size)})


def reconstruction(call: Call) -> Response:
    """How to rebuild the file (or the bytes a `Range` asks for) from xorb ranges."""
    _token(call)
    file = _file(call)
    wanted = requested_range(call.request.headers.get("range"), file.size) or (0, file.size - 1)
    offset, terms = _plan(call, file, *wanted)
    base = lfs.storage_base(call.base_url)
    answer: dict[str, Any] = {
        "offset_into_first_range": offset,
        "terms": [
            {"hash": hashes.to_hex(x), "unpacked_length": size, "range": {"start": a, "end": b}}
            for x, a, b, size in terms
        ],
    }
    ranges: dict[bytes, dict[tuple[int, int], tuple[int, int]]] = {}
    for name, a, b, _ in terms:
        chunks = call.hub.xet.xorbs[name].chunks
        ranges.setdefault(name, {})[(a, b)] = (chunks[a].start, chunks[b - 1].end - 1)
    if call.params["version"] == "v1":
        answer["fetch_info"] = {
            hashes.to_hex(name): [
                {
                    "range": {"start": a, "end": b},
                    "url": _fetch_url(call, base, name, [span]),
                    "url_range": {"start": span[0], "end": span[1]},
                }
                for (a, b), span in spans.items()
            ]
            for name, spans in ranges.items()
        }
    else:
        answer["xorbs"] = {
            hashes.to_hex(name): [
                {
                    "url": _fetch_url(call, base, name, list(spans.values())),
                    "ranges": [
                        {"chunks": {"start": a, "end": b}, "bytes": {"start": s, "end": e}}
                        for (a, b), (s, e) in spans.items()
                    ],
                }
            ]
            for name, spans in ranges.items()
        }
    return JSONResponse(answer)


def _plan(call: Call, file: FileInfo, start: int, end: int) -> tuple[int, list[tuple[bytes, int, int, int]]]:
    """`offset_into_first_range` and the terms `(xorb, first chunk, end chunk, bytes)` covering bytes
    `[start, end]`, their first and last terms trimmed to the chunks that hold those bytes."""
    offset, pos = 0, 0
    terms: list[tuple[bytes, int, int, int]] = []
    for term in file.terms:
        lo, hi = pos, pos + term.size
        pos = hi
        if hi <= start or lo > end:
            continue
        chunks = call.hub.xet.xorbs[term.xorb].chunks
        first, last = term.start, term.end
        while lo + chunks[first].size <= start:
            lo += chunks[first].size
            first += 1
        while hi - chunks[last - 1].size > end:
            hi -= chunks[last - 1].size
            last -= 1
        if not terms:
            offset = start - lo
        terms.append((term.xorb, first, last, hi - lo))
    return offset, terms


def _fetch_url(call: Call, base: str, name: bytes, spans: list[tuple[int, int]]) -> str:
    text = ",".join(f"{s}-{e}" for s, e in spans)
    signature = call.hub.signer.sign("xet-fetch", f"{hashes.to_hex(name)}:{text}", 0)
    return f"{base}/{STORAGE_PREFIX}/xorbs/{hashes.to_hex(name)}?ranges={text}&sig={signature}"


def fetch_xorb_range(call: Call) -> Response:
    """A signed xorb URL: the serialized chunk records in the one signed range the `Range` header names."""
    name, text = call.params["xorb"], call.query("ranges") or ""
    if not call.hub.signer.check("xet-fetch", f"{name}:{text}", 0, call.query("sig")):
        raise ApiError(403, "Request has expired or its signature does not match")
    asked = (call.request.headers.get("range") or "").removeprefix("bytes=")
    if asked not in text.split(","):
        raise ApiError(403, f"This URL opens only the byte ranges it was signed for, not {asked or 'all'}")
    start, end = (int(v) for v in asked.split("-"))
    try:
        data = call.hub.xet.xorb_bytes(hashes.from_hex(name))
    except (KeyError, FileNotFoundError, ValueError):
        raise ApiError(404, f"Xorb not found: {name}") from None
    headers = {"Content-Range": f"bytes {start}-{end}/{len(data)}", "Accept-Ranges": "bytes"}
    return Response(data[start : end + 1], 206, headers, media_type="application/octet-stream")


# ---------------------------------------------------------------------- uploads


def dedupe(call: Call) -> Response:
    """A shard describing the xorb that holds the chunk (hashes HMAC'd), or 404 when it is not indexed."""
    _token(call)
    found = call.hub.xet.dedupe_xorbs(_hash(call, "chunk"))
    if not found:
        raise ApiError(404, "Chunk not tracked by global deduplication")
    body = shard.dedupe_shard(found, call.hub.xet.dedupe_key)
    return Response(body, media_type="application/octet-stream")


def grant(call: Call) -> Response:
    """An upload grant for a xorb (201), or 200 when it is stored already."""
    _token(call, write=True)
    name = _hash(call, "xorb")
    body = call.json()
    length, checksum = body.get("length"), body.get("checksum")
    if not isinstance(length, int) or isinstance(length, bool) or not length > 0:
        raise bad_request("length must be a positive integer")
    if not isinstance(checksum, dict) or checksum.get("algo") != "crc64nvme":
        raise bad_request('checksum must be {"algo": "crc64nvme", "value": "<decimal>"}')
    try:
        crc = int(str(checksum.get("value")))
    except ValueError:
        raise bad_request("checksum value must be a decimal string") from None
    if call.hub.xet.has_xorb(name):
        return JSONResponse({})
    given = call.hub.xet.new_grant(name, length, crc)
    signature = call.hub.signer.sign("xet-upload", given.id, length)
    url = f"{lfs.storage_base(call.base_url)}/{STORAGE_PREFIX}/uploads/{given.id}?sig={signature}"
    headers = {
        "Content-Type": "application/octet-stream",
        "If-None-Match": "*",
        "x-amz-checksum-crc64nvme": base64.b64encode(crc.to_bytes(8, "big")).decode(),
    }
    return JSONResponse({"id": given.id, "method": "PUT", "url": url, "headers": headers}, status_code=201)


def store_grant(call: Call) -> Response:
    """A grant's URL: the xorb body, with the length and CRC-64/NVME announced (412 when already sent)."""
    found = call.hub.xet.grants.get(call.params["grant"])
    sig = call.query("sig")
    if found is None or not call.hub.signer.check("xet-upload", found.id, found.length, sig):
        raise ApiError(403, "Request has expired or its signature does not match")
    if found.expires < time.time():
        raise ApiError(403, "Request has expired or its signature does not match")
    if found.data is not None:
        raise ApiError(412, "At least one of the pre-conditions you specified did not hold")
    if len(call.body) != found.length or CRC64_NVME.calc(call.body) != found.crc64:
        raise bad_request("BadDigest: the body does not have the length and CRC-64/NVME of the grant")
    found.data = call.body
    return Response(b"", status_code=200)


def commit_grant(call: Call) -> Response:
    """Keep the xorb uploaded through a grant, once checked (404: the grant got no data)."""
    _token(call, write=True)
    name = _hash(call, "xorb")
    found = call.hub.xet.grants.get(call.params["grant"])
    if found is None or found.xorb != name or found.data is None:
        raise ApiError(404, "No data was uploaded for this grant")
    inserted = _put_xorb(call, name, found.data)
    del call.hub.xet.grants[found.id]
    return JSONResponse({"was_inserted": inserted})


def upload_xorb(call: Call) -> Response:
    _token(call, write=True)
    return JSONResponse({"was_inserted": _put_xorb(call, _hash(call, "xorb"), call.body)})


def _put_xorb(call: Call, name: bytes, data: bytes) -> bool:
    try:
        return call.hub.xet.put_xorb(name, data)
    except XorbError as e:
        raise bad_request(f"Xorb refused: {e}") from None


def upload_shard(call: Call) -> Response:
    """Register the files of a shard. v1 answers 400 on refusal; v2 streams progress frames and ends
    with `result`, or with a non-retryable `error` frame (after the 200, as the production CAS does)."""
    _token(call, write=True)
    try:
        parsed = shard.parse(call.body)
    except ShardError as e:
        raise bad_request(f"Shard refused: {e}") from None
    total = len(parsed.files) + len(parsed.xorbs)
    try:
        new = call.hub.xet.register_shard(parsed, call.body)
    except ShardRefused as e:
        if call.params["version"] == "v1":
            raise bad_request(f"Shard refused: {e}") from None
        frames = [{"type": "validating", "verified": 0, "total": total}]
        frames.append({"type": "error", "message": f"Shard refused: {e}", "retryable": False})
        return _ndjson(frames)
    if call.params["version"] == "v1":
        return JSONResponse({"result": 1 if new else 0})
    return _ndjson(
        [
            {"type": "validating", "verified": 0, "total": total},
            {"type": "validating", "verified": total, "total": total},
            {"type": "committing", "stage": "uploading"},
            {"type": "committing", "stage": "syncing"},
            {"type": "result"},
        ]
    )


def _ndjson(frames: list[dict[str, Any]]) -> Response:
    return Response("".join(json.dumps(f) + "\n" for f in frames), media_type=NDJSON)


def telemetry(call: Call) -> Response:
    """The client's transfer summaries: accepted and counted, never stored."""
    _token(call)
    call.json()
    call.hub.xet.stats.telemetry += 1
    return JSONResponse({}, status_code=202)


def expire_tokens(call: Call) -> Response:
    """Admin: every Xet token handed out stops working now (a token expiring mid-upload)."""
    return JSONResponse({"expired": call.hub.xet.expire_tokens()})


def stats(call: Call) -> Response:
    """Admin: what the CAS received (xorb bodies per xorb, shards, dedupe queries and hits, telemetry)."""
    received = call.hub.xet.stats
    return JSONResponse(
        {
            "xorb_bodies": dict(received.xorb_bodies),
            "shards": received.shards,
            "dedupe_queries": received.dedupe_queries,
            "dedupe_hits": received.dedupe_hits,
            "telemetry": received.telemetry,
        }
    )
