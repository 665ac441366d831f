"""File routes: preupload, the NDJSON commit endpoint, and `resolve` downloads (HEAD and GET).

Preupload answers `uploadMode: "regular"` and `shouldIgnore: false` for every file, so every client
version sends contents inline as base64 `file` lines and never starts LFS or Xet (hf_xet may be
installed and `HF_HUB_DISABLE_XET` unset). An `lfsFile` line is therefore a client we did not expect,
and gets a clear 400.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any
from urllib.parse import quote

from starlette.responses import JSONResponse, Response

from bot.hubsim.api_repos import REPO, repo_id, repo_url, visible_repo
from bot.hubsim.errors import ApiError, bad_request, entry_not_found
from bot.hubsim.mediatypes import media_type
from bot.hubsim.routing import Call, Router
from bot.hubsim.service import Changes
from bot.hubsim.store import check_path

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def register(router: Router) -> None:
    router.add("POST", REPO + "/preupload/{rev}", preupload)
    router.add("POST", REPO + "/commit/{rev}", commit)
    for prefix, repo_type in (("", "model"), ("/datasets", "dataset"), ("/spaces", "space")):
        for method in ("GET", "HEAD"):
            router.add(method, prefix + "/{ns}/{name}/resolve/{rev}/{path*}", resolve, rtype=repo_type)


def preupload(call: Call) -> Response:
    """`{"files": [{"path", "sample", "size"}]}` → every file `regular`, with its current oid if it exists."""
    repo = visible_repo(call)
    call.hub.commit_target(call.user, repo, call.params["rev"], call.flag("create_pr"))
    tip = repo.resolve(call.params["rev"])
    files = call.json().get("files")
    if not isinstance(files, list):
        raise bad_request("files must be a list")
    answer = []
    for item in files:
        if not isinstance(item, dict) or not isinstance(item.get("size"), int) or item["size"] < 0:
            raise bad_request("each file needs a path, a base64 sample and a size")
        path = check_path(item.get("path"))
        _b64(item.get("sample", ""), f"sample of {path}")
        entry: dict[str, Any] = {"path": path, "uploadMode": "regular", "shouldIgnore": False}
        if path in tip.files:
            entry["oid"] = tip.files[path]
        answer.append(entry)
    return JSONResponse({"files": answer, "commitOid": tip.oid})


def commit(call: Call) -> Response:
    """The NDJSON commit: a `header` line, then `file` / `deletedFile` / `deletedFolder` lines."""
    header, changes = parse_ndjson(call.body)
    commit_, pr = call.hub.commit(
        call.user,
        call.params["rtype"],
        repo_id(call),
        call.params["rev"],
        changes,
        header["summary"],
        header["description"],
        header["parentCommit"],
        call.flag("create_pr"),
    )
    url = repo_url(call.base_url, call.hub.repo(call.user, call.params["rtype"], repo_id(call)))
    answer = {
        "success": True,
        "commitOid": commit_.oid,
        "commitUrl": f"{url}/commit/{commit_.oid}",
        "hookOutput": "",
    }
    if pr is not None:
        answer["pullRequestUrl"] = f"{url}/discussions/{pr.num}"
    return JSONResponse(answer)


def parse_ndjson(body: bytes) -> tuple[dict[str, Any], Changes]:
    """The commit header and changes; 400 with the offending line on anything malformed."""
    header: dict[str, Any] | None = None
    changes = Changes()
    for number, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise bad_request(f"commit line {number} is not valid JSON") from None
        if not isinstance(item, dict) or not isinstance(item.get("value"), dict):
            raise bad_request(f'commit line {number} must be {{"key": ..., "value": {{...}}}}')
        key, value = item.get("key"), item["value"]
        if key == "header":
            header = _header(value)
        elif key == "file":
            if value.get("encoding", "base64") != "base64":
                raise bad_request(f"commit line {number}: only base64 file content is supported")
            path = check_path(value.get("path"))
            changes.puts[path] = _b64(value.get("content"), f"content of {path}")
        elif key == "deletedFile":
            changes.deleted_files.append(check_path(value.get("path")))
        elif key == "deletedFolder":
            folder = value.get("path")
            check_path(folder.rstrip("/") if isinstance(folder, str) else folder)
            changes.deleted_folders.append(folder)
        elif key == "lfsFile":
            raise bad_request(
                f"commit line {number}: hubsim does not store LFS files; its preupload answers 'regular' "
                "for every file, so clients send contents inline"
            )
        else:
            raise bad_request(f"commit line {number}: unknown key {key!r}")
    if header is None:
        raise bad_request("commit has no header line")
    return header, changes


def _header(value: dict[str, Any]) -> dict[str, Any]:
    summary, description = value.get("summary"), value.get("description") or ""
    parent = value.get("parentCommit")
    if not isinstance(summary, str) or not summary.strip():
        raise bad_request("commit header needs a non-empty summary")
    if not isinstance(description, str) or (parent is not None and not isinstance(parent, str)):
        raise bad_request("commit description and parentCommit must be strings")
    return {"summary": summary.strip(), "description": description, "parentCommit": parent}


def _b64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise bad_request(f"{what} must be a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request(f"{what} is not valid base64") from None


def resolve(call: Call) -> Response:
    """A file's bytes with `X-Repo-Commit`, `ETag` (git blob sha1), `Content-Length` and a text or binary
    `Content-Type` (see `mediatypes`); `Range` honoured."""
    repo = visible_repo(call)
    call.hub.check_gate(call.user, repo)
    commit_ = repo.resolve(call.params["rev"])
    path = call.params["path"]
    if path not in commit_.files:
        error = entry_not_found(path)
        error.headers["X-Repo-Commit"] = commit_.oid
        raise error
    oid = commit_.files[path]
    headers = {
        "X-Repo-Commit": commit_.oid,
        "ETag": f'"{oid}"',
        "Accept-Ranges": "bytes",
        "Content-Disposition": f"inline; filename*=UTF-8''{quote(path.rsplit('/', 1)[-1])}",
    }
    size, content_type = call.hub.blobs.size(oid), media_type(path)
    if call.request.method == "HEAD":
        return Response(b"", headers={**headers, "Content-Length": str(size)}, media_type=content_type)
    data = call.hub.read(oid)
    wanted = _range(call.request.headers.get("range"), size)
    if wanted is None:
        return Response(data, headers=headers, media_type=content_type)
    start, end = wanted
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return Response(data[start : end + 1], status_code=206, headers=headers, media_type=content_type)


def _range(header: str | None, size: int) -> tuple[int, int] | None:
    """The byte range a single-range `Range` header asks for (None: send everything); 416 if unsatisfiable."""
    match = _RANGE.fullmatch((header or "").strip())
    if match is None or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first == "":
        start, end = max(size - int(last), 0), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        error = ApiError(416, f"Range not satisfiable: {header} (size {size})")
        error.headers["Content-Range"] = f"bytes */{size}"
        raise error
    return start, end
