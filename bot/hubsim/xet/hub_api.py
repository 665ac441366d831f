"""The Hub's side of Xet (huggingface.co/docs/xet, "Authentication", "File ID"): token endpoints, and what
`resolve` and tree listings say of a file stored in Xet.

`GET /api/{models|datasets|spaces}/{id}/xet-{read|write}-token/{revision}` answers
`{accessToken, exp, casUrl}` in JSON (what hf_xet reads) and as `X-Xet-Cas-Url`, `X-Xet-Access-Token`,
`X-Xet-Token-Expiration` headers (what huggingface_hub reads). A read token needs read access (and the
gate's); a write token needs the right to push to that revision (a branch, or `refs/pr/N` for its author
and the owners), or, with `?create_pr=1` (revision `None` when the client does not know it yet), any
write token, as anyone may open a pull request.
"""

from __future__ import annotations

from urllib.parse import quote

from starlette.responses import JSONResponse, Response

from bot.hubsim.api_repos import REPO, visible_repo
from bot.hubsim.routing import Call, Router
from bot.hubsim.store import Repo
from bot.hubsim.xet import hashes
from bot.hubsim.xet.cas_api import cas_url
from bot.hubsim.xet.shard import FileInfo

NO_REVISION = "None"  # huggingface_hub's path when a PR's ref is not known yet


def register(router: Router) -> None:
    for kind in ("read", "write"):
        router.add("GET", REPO + f"/xet-{kind}-token/{{rev*}}", token, kind=kind)


def token(call: Call) -> Response:
    repo = visible_repo(call)
    revision = call.params["rev"] or "main"
    write = call.params["kind"] == "write"
    if not write:
        call.hub.check_gate(call.user, repo)
        if revision != NO_REVISION:
            repo.resolve(revision)
    elif call.flag("create_pr") or revision == NO_REVISION:
        call.hub.require_user(call.user)
        if revision != NO_REVISION:
            repo.resolve(revision)
    else:
        call.hub.commit_target(call.user, repo, revision, False)
    issued = call.hub.xet.issue(write, (repo.type, repo.name))
    cas = cas_url(call)
    headers = {
        "X-Xet-Cas-Url": cas,
        "X-Xet-Access-Token": issued.value,
        "X-Xet-Token-Expiration": str(issued.expires),
    }
    return JSONResponse({"accessToken": issued.value, "exp": issued.expires, "casUrl": cas}, headers=headers)


def file_headers(call: Call, repo: Repo, commit_oid: str, file: FileInfo) -> dict[str, str]:
    """What `resolve` adds for a Xet file: its id, and where to get a read token and its reconstruction."""
    file_id = hashes.to_hex(file.hash)
    token_url = f"{call.base_url}/api/{repo.type}s/{repo.name}/xet-read-token/{quote(commit_oid)}"
    reconstruction = f"{cas_url(call)}/v1/reconstructions/{file_id}"
    return {
        "X-Xet-Hash": file_id,
        "Link": f'<{token_url}>; rel="xet-auth", <{reconstruction}>; rel="xet-reconstruction-info"',
    }
