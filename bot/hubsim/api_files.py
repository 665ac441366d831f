"""File routes: preupload, the NDJSON commit endpoint, and `resolve` downloads (HEAD and GET).

Preupload answers `regular` or `lfs` as the Hub does (`lfs.upload_mode`). Regular files arrive inline as
base64 `file` lines; LFS files are uploaded through the batch API (`api_lfs`) and committed as `lfsFile`
lines, stored as pointers. `resolve` serves a regular file itself and redirects an LFS file to storage,
with `X-Linked-Etag` (sha256) and `X-Linked-Size` on the redirect, like the Hub.

huggingface_hub with hf_xet uploads every `lfs` file through Xet instead (bot/hubsim/xet/): the same
`lfsFile` commit line then names content that a shard registered, by its sha256, and `resolve` adds the
Xet headers (`X-Xet-Hash`, `Link: <...xet-read-token...>; rel="xet-auth"`) to the storage redirect, where a
client without Xet reads the same bytes.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any
from urllib.parse import quote

from starlette.responses import JSONResponse, Response

from bot.hubsim import lfs
from bot.hubsim.api_repos import REPO, repo_id, repo_url, visible_repo
from bot.hubsim.byteranges import byte_range
from bot.hubsim.errors import bad_request, entry_not_found
from bot.hubsim.mediatypes import media_type
from bot.hubsim.routing import Call, Router
from bot.hubsim.service import Changes
from bot.hubsim.store import check_path
from bot.hubsim.xet import hub_api


def register(router: Router) -> None:
    router.add("POST", REPO + "/preupload/{rev}", preupload)
    router.add("POST", REPO + "/commit/{rev}", commit)
    for prefix, repo_type in (("", "model"), ("/datasets", "dataset"), ("/spaces", "space")):
        for method in ("GET", "HEAD"):
            router.add(method, prefix + "/{ns}/{name}/resolve/{rev}/{path*}", resolve, rtype=repo_type)


def preupload(call: Call) -> Response:
    """`{"files": [{"path", "sample", "size"}], "gitIgnore"?}` → each file's `uploadMode`, `shouldIgnore`
    (by the `gitIgnore` sent, else the revision's `.gitignore`) and, when the path exists at the revision,
    its current `oid` (git blob sha1 for a regular file, sha256 for an LFS file)."""
    repo = visible_repo(call)
    call.hub.commit_target(call.user, repo, call.params["rev"], call.flag("create_pr"))
    tip = repo.resolve(call.params["rev"])
    attributes = tip.files.get(".gitattributes")
    patterns = lfs.lfs_patterns(call.hub.read(attributes) if attributes else None)
    body = call.json()
    files, gitignore = body.get("files"), body.get("gitIgnore")
    if not isinstance(files, list):
        raise bad_request("files must be a list")
    if not isinstance(gitignore, str):
        gitignore = (
            call.hub.read(tip.files[".gitignore"]).decode("utf-8", "replace")
            if ".gitignore" in tip.files
            else ""
        )
    ignores = lfs.ignore_patterns(gitignore)
    answer = []
    for item in files:
        if not isinstance(item, dict) or not isinstance(item.get("size"), int) or item["size"] < 0:
            raise bad_request("each file needs a path, a base64 sample and a size")
        path = check_path(item.get("path"))
        sample = _b64(item.get("sample", ""), f"sample of {path}")
        mode = lfs.upload_mode(path, item["size"], sample, patterns)
        entry: dict[str, Any] = {"path": path, "uploadMode": mode, "shouldIgnore": lfs.tracked(path, ignores)}
        if path in tip.files:
            pointer = call.hub.lfs_pointer(tip.files[path])
            entry["oid"] = pointer.sha256 if pointer else tip.files[path]
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
    """The commit header and changes; 400 with the offending line on anything malformed, and for content
    the Hub only takes through LFS (too large, or binary and over 1 MiB) sent inline."""
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
            if refused := lfs.needs_lfs(len(changes.puts[path]), changes.puts[path]):
                raise bad_request(f"{refused} Offending file: {path}")
        elif key == "deletedFile":
            changes.deleted_files.append(check_path(value.get("path")))
        elif key == "deletedFolder":
            folder = value.get("path")
            check_path(folder.rstrip("/") if isinstance(folder, str) else folder)
            changes.deleted_folders.append(folder)
        elif key == "lfsFile":
            changes.lfs_puts[check_path(value.get("path"))] = _lfs_file(value, number)
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


def _lfs_file(value: dict[str, Any], number: int) -> tuple[str, int | None]:
    """`{"path", "algo": "sha256", "oid", "size"?}` (a copy leaves out `size`)."""
    size = value.get("size")
    if value.get("algo", "sha256") != "sha256" or not lfs.is_sha256(value.get("oid")):
        raise bad_request(f"commit line {number}: lfsFile needs algo sha256 and a 64-hex oid")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise bad_request(f"commit line {number}: lfsFile size must be a non-negative integer")
    return value["oid"], size


def _b64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise bad_request(f"{what} must be a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request(f"{what} is not valid base64") from None


def file_headers(commit_oid: str, etag: str, path: str) -> dict[str, str]:
    """The headers of a file answer: `X-Repo-Commit` (when known), `ETag`, ranges, the file name."""
    headers = {
        "ETag": f'"{etag}"',
        "Accept-Ranges": "bytes",
        "Content-Disposition": f"inline; filename*=UTF-8''{quote(path.rsplit('/', 1)[-1])}",
    }
    if commit_oid:
        headers["X-Repo-Commit"] = commit_oid
    return headers


def resolve(call: Call) -> Response:
    """A regular file's bytes with `X-Repo-Commit`, `ETag` (git blob sha1), `Content-Length` and a text or
    binary `Content-Type` (see `mediatypes`), `Range` honoured; an LFS file is a 302 to storage with
    `X-Linked-Etag` (sha256) and `X-Linked-Size`."""
    repo = visible_repo(call)
    call.hub.check_gate(call.user, repo)
    commit_ = repo.resolve(call.params["rev"])
    path = call.params["path"]
    if path not in commit_.files:
        error = entry_not_found(path)
        error.headers["X-Repo-Commit"] = commit_.oid
        raise error
    oid = commit_.files[path]
    headers = file_headers(commit_.oid, oid, path)
    if (pointer := call.hub.lfs_pointer(oid)) is not None:
        location = lfs.storage_url(
            call.hub.signer,
            call.base_url,
            "download",
            pointer.sha256,
            pointer.size,
            commit=commit_.oid,
            name=quote(path, safe=""),
        )
        headers.update(
            {"X-Linked-Etag": f'"{pointer.sha256}"', "X-Linked-Size": str(pointer.size), "Location": location}
        )
        if (xet_file := call.hub.xet.file_by_sha256(pointer.sha256)) is not None:
            headers.update(hub_api.file_headers(call, repo, commit_.oid, xet_file))
        return Response(b"", status_code=302, headers=headers)
    if call.request.method == "HEAD":
        headers["Content-Length"] = str(call.hub.blobs.size(oid))
        return Response(b"", headers=headers, media_type=media_type(path))
    return byte_range(call, call.hub.read(oid), headers, media_type(path))
