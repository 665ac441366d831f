"""Laying out many repos at once, for tests and benchmarks at the Hub's scale (10,000 repos).

`POST /_hubsim/seed` (or `seed(hub, items)`) makes each repo as `create_repo` and one `upload_folder` of its
files would: the Hub's initial commit, then a commit of the files by the namespace's owner, the card's
metadata checked as on a commit (a `base_model` must exist: seed bases before their children, in one batch
or an earlier one). It sends no webhooks (a fixture being laid out is no activity anybody watches) and costs
one request per batch instead of three or four per repo through the client. Items:
`{"id": "ns/name", "type"?: "model", "private"?: false, "files"?: {path: text}, "stats"?: {"downloads": N}}`.
"""

from __future__ import annotations

from typing import Any

from bot.hubsim import popularity
from bot.hubsim.errors import ApiError, bad_request, conflict
from bot.hubsim.service import REPO_TYPES, HubService, valid_repo_name
from bot.hubsim.store import DEFAULT_BRANCH, HEADS, INITIAL_GITATTRIBUTES, Repo, apply_changes, check_path

MAX_BATCH = 10_000
_KEYS = {"id", "type", "private", "files", "stats"}


def seed(hub: HubService, items: Any) -> list[Repo]:
    """Make the repos `items` describe, in order (400 naming the first bad item; those before it stay)."""
    if not isinstance(items, list) or not 0 < len(items) <= MAX_BATCH:
        raise bad_request(f"repos must be a list of 1 to {MAX_BATCH} repos")
    made = []
    with hub.lock:
        for i, item in enumerate(items):
            try:
                made.append(_seed_one(hub, item))
            except ApiError as e:
                raise ApiError(e.status, f"repos[{i}]: {e.message} ({len(made)} made before it)") from None
    return made


def _seed_one(hub: HubService, item: Any) -> Repo:
    if not isinstance(item, dict) or set(item) - _KEYS or not isinstance(item.get("id"), str):
        raise bad_request(f"a repo is an object with an id and keys among {sorted(_KEYS)}")
    repo_type, files = item.get("type", "model"), item.get("files", {})
    namespace, _, name = item["id"].partition("/")
    if repo_type not in REPO_TYPES or not isinstance(item.get("private", False), bool):
        raise bad_request(f"type must be one of {list(REPO_TYPES)} and private a boolean")
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise bad_request("files must map paths to their text")
    owner = hub.users.canonical(namespace)
    if not hub.users.namespace_exists(owner) or not valid_repo_name(name):
        raise bad_request(f"{item['id']!r} is not namespace/name with a hubsim user or org as namespace")
    if (repo_type, f"{owner}/{name}") in hub.repos:
        raise conflict(f"You already created this {repo_type} repo: {owner}/{name}")
    contents = {check_path(path): text.encode() for path, text in files.items()}
    if "README.md" in contents:
        hub.check_card(hub.users.users.get(owner), repo_type, contents["README.md"])
    repo = Repo(repo_type, f"{owner}/{name}", owner, private=item.get("private", False))
    initial = {".gitattributes": hub.blobs.put(INITIAL_GITATTRIBUTES)}
    tip = repo.add_commit([], initial, "initial commit", "", owner)
    if contents:
        puts = {path: hub.blobs.put(data) for path, data in contents.items()}
        tip = repo.add_commit([tip.oid], apply_changes(initial, puts, [], []), "Upload folder", "", owner)
    repo.refs[HEADS + DEFAULT_BRANCH] = tip.oid
    hub.repos[(repo_type, repo.name)] = repo
    if item.get("stats"):
        popularity.set_stats(hub, repo_type, repo.name, item["stats"])
    hub.save(repo)
    return repo
