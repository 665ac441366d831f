"""Repo routes: whoami, create / delete / move / settings, info, listings, tree, paths-info, refs, commits,
branches and tags, validate-yaml."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from starlette.responses import JSONResponse, Response

from bot.hubsim import cards, listing, views
from bot.hubsim.errors import ApiError, bad_request, unauthorized
from bot.hubsim.routing import Call, Router, paged
from bot.hubsim.store import Repo

REPO = "/api/{rtype}/{ns}/{name}"


def register(router: Router) -> None:
    router.add("GET", "/api/whoami-v2", whoami)
    router.add("GET", "/api/organizations/{org}/members", org_members)
    router.add(
        "GET", "/api/agent-harnesses", lambda call: JSONResponse({"standardEnvVars": [], "harnesses": {}})
    )
    router.add("POST", "/api/validate-yaml", validate_yaml)
    router.add("POST", "/api/repos/create", create_repo)
    router.add("DELETE", "/api/repos/delete", delete_repo)
    router.add("POST", "/api/repos/move", move_repo)
    router.add("GET", "/api/{rtype}", listing.list_repos)
    router.add("GET", REPO, repo_info)
    router.add("GET", REPO + "/revision/{rev}", repo_info)
    router.add("PUT", REPO + "/settings", update_settings)
    router.add("GET", REPO + "/tree/{rev}/{path*}", tree)
    router.add("POST", REPO + "/paths-info/{rev}", paths_info)
    router.add("GET", REPO + "/refs", refs)
    router.add("GET", REPO + "/commits/{rev}", commits)
    for kind in ("branch", "tag"):
        router.add("POST", REPO + f"/{kind}/{{ref*}}", create_ref, kind=kind)
        router.add("DELETE", REPO + f"/{kind}/{{ref*}}", delete_ref, kind=kind)


def repo_id(call: Call) -> str:
    return f"{call.params['ns']}/{call.params['name']}"


def visible_repo(call: Call, *, write: bool = False) -> Repo:
    """The repo the path names, as the caller may see it."""
    return call.hub.repo(call.user, call.params["rtype"], repo_id(call), write=write)


def repo_url(base_url: str, repo: Repo) -> str:
    prefix = "" if repo.type == "model" else f"{repo.type}s/"
    return f"{base_url}/{prefix}{repo.name}"


def whoami(call: Call) -> Response:
    if call.user is None:
        raise unauthorized("Invalid user token or no token provided")
    return JSONResponse(call.hub.users.whoami(call.user))


def org_members(call: Call) -> Response:
    """`list_organization_members`: the org's members (404 for a name that is not an org)."""
    org = call.hub.users.orgs.get(call.params["org"])
    if org is None:
        raise ApiError(404, f"Organization not found: {call.params['org']}")
    members = [{"user": m, "fullname": m, "type": "user", "avatarUrl": ""} for m in org.members]
    return paged(call, members, default_size=500)


def validate_yaml(call: Call) -> Response:
    """`{"content", "repoType"}` → `{"errors": [{"message"}], "warnings": [{"message"}]}`, 400 when there are
    errors; a card without metadata gets the Hub's warning. Always JSON, like the Hub: the client reads the
    body before it checks the status."""
    body = call.json()
    content, repo_type = body.get("content"), body.get("repoType") or "model"
    if not isinstance(content, str):
        errors = ['"content" must be a string']
    elif repo_type not in ("model", "dataset", "space"):
        errors = ['"repoType" must be one of [model, dataset, space]']
    else:
        errors = call.hub.card_errors(call.user, repo_type, content)
    warnings = []
    if isinstance(content, str) and not errors and not cards.card_data(content):
        warnings.append({"message": "empty or missing yaml metadata in repo card"})
    answer = {"errors": [{"message": e} for e in errors], "warnings": warnings}
    return JSONResponse(answer, status_code=400 if errors else 200)


def _repo_type(body: dict[str, Any]) -> str:
    repo_type = body.get("type") or "model"
    if repo_type not in ("model", "dataset", "space"):
        raise bad_request(f"Invalid repo type: {repo_type!r}")
    return repo_type


def create_repo(call: Call) -> Response:
    """`private` (old clients) or `visibility` (new ones); 409 with `url` when it exists."""
    body = call.json()
    private = body.get("private") is True or body.get("visibility") == "private"
    organization = body.get("organization")
    if organization is not None and not isinstance(organization, str):
        raise bad_request("organization must be a string")
    repo, created = call.hub.create_repo(call.user, _repo_type(body), body.get("name"), organization, private)
    answer = {"url": repo_url(call.base_url, repo), "name": repo.name, "id": repo.id}
    if not created:
        return JSONResponse(
            {"error": f"You already created this {repo.type} repo", **answer}, status_code=409
        )
    return JSONResponse(answer)


def delete_repo(call: Call) -> Response:
    body = call.json()
    name, organization = body.get("name"), body.get("organization")
    if not isinstance(name, str) or (organization is not None and not isinstance(organization, str)):
        raise bad_request("name (and organization) must be strings")
    namespace = organization or (call.user.name if call.user else "")
    call.hub.delete_repo(call.user, _repo_type(body), f"{namespace}/{name}")
    return JSONResponse({})


def move_repo(call: Call) -> Response:
    """`{"fromRepo", "toRepo", "type"}` (`HfApi.move_repo`)."""
    body = call.json()
    ids = [body.get("fromRepo"), body.get("toRepo")]
    if not all(isinstance(i, str) and i.count("/") == 1 for i in ids):
        raise bad_request("fromRepo and toRepo must be repo ids (namespace/name)")
    call.hub.move_repo(call.user, _repo_type(body), str(ids[0]), str(ids[1]))
    return JSONResponse({})


def update_settings(call: Call) -> Response:
    """`{"visibility": "public"|"private", "gated": false|"auto"|"manual"}`; old clients send `private`."""
    body = call.json()
    private = body.get("private")
    if "visibility" in body:
        if body["visibility"] not in ("public", "private", "protected"):
            raise bad_request("visibility must be public, private or protected")
        private = body["visibility"] == "private"
    repo = call.hub.update_settings(
        call.user, call.params["rtype"], repo_id(call), private, body.get("gated")
    )
    return JSONResponse({"private": repo.private, "gated": repo.gated})


def repo_info(call: Call) -> Response:
    """`model_info` & co, with `expand` as the Hub takes it (`listing.info`)."""
    repo = visible_repo(call)
    expand = listing.expanded(call, call.params["rtype"], detail=True)
    commit = repo.resolve(call.params.get("rev", "main"))
    return JSONResponse(listing.info(call, repo, commit, expand))


def tree(call: Call) -> Response:
    repo = visible_repo(call)
    commit = repo.resolve(call.params["rev"])
    entries = views.tree(
        call.hub, repo, commit, call.params["path"], call.flag("recursive"), call.flag("expand")
    )
    return paged(call, entries, default_size=50 if call.flag("expand") else 1000)


def paths_info(call: Call) -> Response:
    """Form-encoded `paths=a&paths=b&expand=false` (JSON `{"paths": [...]}` also accepted)."""
    repo = visible_repo(call)
    commit = repo.resolve(call.params["rev"])
    if call.request.headers.get("content-type", "").startswith("application/json"):
        body = call.json()
        paths, expand = body.get("paths"), body.get("expand") is True
    else:
        try:
            form = parse_qs(call.body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            raise bad_request("form body is not valid UTF-8") from None
        paths, expand = form.get("paths", []), (form.get("expand") or ["false"])[0].lower() in ("1", "true")
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise bad_request("paths must be a list of strings")
    return JSONResponse(views.paths_info(call.hub, repo, commit, paths, expand))


def refs(call: Call) -> Response:
    return JSONResponse(views.refs(visible_repo(call), call.flag("include_prs")))


def commits(call: Call) -> Response:
    repo = visible_repo(call)
    formatted = "formatted" in call.query_list("expand[]") + call.query_list("expand")
    history = [views.commit_json(c, formatted) for c in repo.history(repo.resolve(call.params["rev"]))]
    return paged(call, history, default_size=50)


def create_ref(call: Call) -> Response:
    """`POST .../branch/{name}` `{"startingPoint"?}`, or `POST .../tag/{revision}` `{"tag", "message"?}`."""
    body = call.json(optional=True)
    kind, rtype, rid = call.params["kind"], call.params["rtype"], repo_id(call)
    if kind == "branch":
        start = body.get("startingPoint")
        if start is not None and not isinstance(start, str):
            raise bad_request("startingPoint must be a string")
        call.hub.create_ref(call.user, rtype, rid, "branch", call.params["ref"], start)
    else:
        tag = body.get("tag")
        if not isinstance(tag, str):
            raise bad_request("tag must be a string")
        call.hub.create_ref(call.user, rtype, rid, "tag", tag, call.params["ref"])
    return JSONResponse({})


def delete_ref(call: Call) -> Response:
    if not call.params["ref"]:
        raise ApiError(404, "No reference name given")
    call.hub.delete_ref(
        call.user, call.params["rtype"], repo_id(call), call.params["kind"], call.params["ref"]
    )
    return JSONResponse({})
