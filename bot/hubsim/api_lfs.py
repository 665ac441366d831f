"""The Git LFS batch API (basic transfer) and the storage it hands out, as huggingface_hub's `lfs.py` uses it.

`POST /{[datasets/|spaces/]}{ns}/{name}.git/info/lfs/objects/batch` answers, per object, an `upload` href
(a signed storage URL the client PUTs the raw bytes to, without its token) and a `verify` href (POSTed
`{oid, size}` with the token), or no `actions` when the object is already stored, so the client skips it.
It never offers `multipart` (no `chunk_size`) nor `xet`: the answer's `transfer` is always `basic`.
Downloads of LFS files are redirected by `resolve` to the same storage (see `lfs.storage_base`). Objects
are known by sha256 whichever way they were uploaded: one stored through Xet needs no upload, and
downloads as any other (what a client without Xet gets from the Hub).
"""

from __future__ import annotations

import functools
from typing import Any

from starlette.responses import JSONResponse, Response

from bot.hubsim import lfs
from bot.hubsim.api_files import file_headers
from bot.hubsim.byteranges import ranged
from bot.hubsim.errors import ApiError, bad_request
from bot.hubsim.mediatypes import media_type
from bot.hubsim.routing import Call, Router
from bot.hubsim.store import Repo

LFS_JSON = "application/vnd.git-lfs+json"
_STORAGE = "/" + lfs.STORAGE_PREFIX + "/{oid}"


def register(router: Router) -> None:
    for prefix, repo_type in (("", "model"), ("/datasets", "dataset"), ("/spaces", "space")):
        base = prefix + "/{ns}/{name}/info/lfs/objects"
        router.add("POST", base + "/batch", batch, rtype=repo_type)
        router.add("POST", base + "/verify", verify, rtype=repo_type)
    router.add("PUT", _STORAGE, store_object)
    router.add("GET", _STORAGE, serve_object)


def _lfs_repo(call: Call) -> Repo:
    """The repo a `{name}.git` path names (404 for a path without `.git`, as git hosts answer)."""
    name = call.params["name"]
    if not name.endswith(".git"):
        raise ApiError(404, f"hubsim does not implement {call.request.method} {call.request.url.path}")
    return call.hub.repo(call.user, call.params["rtype"], f"{call.params['ns']}/{name[:-4]}")


def storage_url(call: Call, action: str, oid: str, size: int, **extra: str) -> str:
    return lfs.storage_url(call.hub.signer, call.base_url, action, oid, size, **extra)


def batch(call: Call) -> Response:
    """`{"operation", "transfers", "objects": [{"oid", "size"}], "hash_algo", "ref"}` → actions per object."""
    repo = _lfs_repo(call)
    body = call.json()
    operation = body.get("operation")
    if operation not in ("upload", "download"):
        raise ApiError(422, f"Unsupported LFS operation: {operation!r}")
    if body.get("hash_algo", "sha256") != "sha256":
        raise ApiError(409, "Only the sha256 hash algorithm is supported")
    if operation == "upload":
        call.hub.require_user(call.user)
    else:
        call.hub.check_gate(call.user, repo)
    objects = body.get("objects")
    if not isinstance(objects, list) or not all(isinstance(o, dict) for o in objects):
        raise bad_request("objects must be a list of {oid, size}")
    verify_href = f"{call.base_url}{call.request.url.path.rsplit('/', 1)[0]}/verify"
    answer = [_object(call, operation, o, verify_href) for o in objects]
    return JSONResponse({"transfer": "basic", "objects": answer, "hash_algo": "sha256"}, media_type=LFS_JSON)


def _object(call: Call, operation: str, obj: dict[str, Any], verify_href: str) -> dict[str, Any]:
    oid, size = obj.get("oid"), obj.get("size")
    if not lfs.is_sha256(oid) or not isinstance(size, int) or isinstance(size, bool) or size < 0:
        error = {"code": 422, "message": "Invalid object: oid or size"}
        return {"oid": str(oid), "size": size, "error": error}
    assert isinstance(oid, str)
    stored = call.hub.large_size(oid) is not None  # through LFS or Xet: the Hub serves both by sha256
    item: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
    if operation == "download":
        if not stored:
            item["error"] = {"code": 404, "message": "Object does not exist"}
        else:
            item["actions"] = {"download": {"href": storage_url(call, "download", oid, size)}}
    elif not stored:
        item["actions"] = {
            "upload": {"href": storage_url(call, "upload", oid, size)},
            "verify": {"href": verify_href},
        }
    return item


def verify(call: Call) -> Response:
    """`{"oid", "size"}`: 200 when that object is stored with that size, else 404."""
    _lfs_repo(call)
    call.hub.require_user(call.user)
    body = call.json()
    oid, size = str(body.get("oid")), body.get("size")
    if not lfs.is_sha256(oid) or call.hub.large_size(oid) != size:
        raise ApiError(404, f"LFS object {oid} of size {size} was not uploaded")
    return JSONResponse({"oid": oid, "size": size}, media_type=LFS_JSON)


def _signed(call: Call, action: str) -> tuple[str, int]:
    oid, size = call.params["oid"], call.int_query("size", -1)
    if not lfs.is_sha256(oid) or not call.hub.signer.check(action, oid, size, call.query("sig")):
        raise ApiError(403, "Request has expired or its signature does not match")
    return oid, size


def store_object(call: Call) -> Response:
    """The upload `href`: the raw bytes, which must have the announced size and sha256."""
    oid, size = _signed(call, "upload")
    if len(call.body) != size or lfs.sha256_hex(call.body) != oid:
        raise bad_request(f"Uploaded content does not match oid {oid} and size {size}")
    call.hub.lfs.put(call.body)
    return Response(b"", status_code=200)


def serve_object(call: Call) -> Response:
    """The download `Location`: the object's bytes, `Range` honoured (no token needed: the URL is signed).
    Content uploaded through Xet is served the same way, rebuilt from its xorbs, as the Hub serves it to
    clients that do not speak Xet."""
    oid, size = _signed(call, "download")
    if call.hub.large_size(oid) is None:
        raise ApiError(404, f"LFS object not found: {oid}")
    name = call.query("name") or oid
    headers = file_headers(call.query("commit") or "", oid, name)
    headers.update({"X-Linked-Etag": f'"{oid}"', "X-Linked-Size": str(size)})
    if call.request.method == "HEAD":
        headers["Content-Length"] = str(size)
        return Response(b"", headers=headers, media_type=media_type(name))
    read = functools.partial(call.hub.large_content, oid)
    return ranged(call, size, read, headers, media_type(name))
