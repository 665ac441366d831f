"""Repo listings as the Hub answers them (`GET /api/models`, `/api/datasets`, `/api/spaces`), and the
properties `expand` picks, on listings and on `model_info` & co.

What a listing does (hub-docs `api.md` before it moved to the OpenAPI playground; huggingface_hub 1.33
`list_models` and its production tests):
- filters: `author` (the owner, in any case), `search` (in the id), each `filter` (a tag, the id or the
  author; `base_model:<id>` and `base_model:<relation>:<id>` are tags, see `modeltree`), `pipeline_tag`,
  `gated`;
- `sort` by `lastModified`, `createdAt`, `downloads`, `likes`, `trendingScore` (the client maps
  `last_modified`, `created_at`, `trending_score` to these); `direction=-1` is descending and "anything else
  ascending" (the docs); without `direction` the Hub sorts descending (what the client, which no longer
  sends it, gets); ties keep a fixed order (by id);
- pages of `limit` items (at most 1000; 1000 without `limit`) linked by `Link: <...>; rel="next"`;
- a model item has, by default, only `_id`, `id`, `likes`, `trendingScore`, `private`, `downloads`, `tags`,
  `pipeline_tag`, `library_name`, `createdAt`, `modelId`: no `lastModified`, `sha` or files, which `full=true`
  adds ("the `last_modified`, the `sha`, the files", says the client's docstring), `cardData=true` and
  `config=true` add theirs; `expand=[...]` returns exactly the properties named (and `_id`, `id`), and an
  unknown one is a 400, as is one only `model_info` takes (`baseModels`, `childrenModelCount`,
  `usedStorage`). Dataset and space items keep hubsim's fuller shape (not checked against the Hub).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.responses import Response

from bot.hubsim import modeltree, views
from bot.hubsim.errors import bad_request
from bot.hubsim.routing import Call, paged
from bot.hubsim.store import MAIN_REF, Commit, Repo

# huggingface_hub 1.33 `ExpandModelProperty_T`, `ExpandDatasetProperty_T`, `ExpandSpaceProperty_T`
EXPANDABLE = {
    "model": (
        "author",
        "baseModels",
        "cardData",
        "childrenModelCount",
        "config",
        "createdAt",
        "disabled",
        "downloads",
        "downloadsAllTime",
        "evalResults",
        "gated",
        "gguf",
        "inference",
        "inferenceProviderMapping",
        "lastModified",
        "library_name",
        "likes",
        "mask_token",
        "model-index",
        "pipeline_tag",
        "private",
        "resourceGroup",
        "safetensors",
        "sha",
        "siblings",
        "spaces",
        "tags",
        "transformersInfo",
        "trendingScore",
        "usedStorage",
        "widgetData",
    ),
    "dataset": (
        "author",
        "cardData",
        "citation",
        "createdAt",
        "description",
        "disabled",
        "downloads",
        "downloadsAllTime",
        "gated",
        "lastModified",
        "likes",
        "mainSize",
        "paperswithcode_id",
        "private",
        "resourceGroup",
        "sha",
        "siblings",
        "tags",
        "trendingScore",
        "usedStorage",
    ),
    "space": (
        "author",
        "cardData",
        "createdAt",
        "datasets",
        "disabled",
        "lastModified",
        "likes",
        "models",
        "private",
        "region",
        "resourceGroup",
        "runtime",
        "sdk",
        "sha",
        "siblings",
        "subdomain",
        "tags",
        "trendingScore",
        "usedStorage",
    ),
}
DETAIL_ONLY = {"model": ("baseModels", "childrenModelCount", "usedStorage"), "dataset": ("usedStorage",)}
DETAIL_ONLY["space"] = DETAIL_ONLY["dataset"]
MODEL_ITEM = (
    "_id",
    "id",
    "likes",
    "trendingScore",
    "private",
    "downloads",
    "tags",
    "pipeline_tag",
    "library_name",
    "createdAt",
    "modelId",
)
FULL_ITEM = ("author", "sha", "lastModified", "gated", "disabled", "siblings")
SORTS: dict[str, Callable[[Repo], Any]] = {
    "lastModified": lambda repo: repo.head.date,
    "createdAt": lambda repo: repo.created_at,
    "downloads": lambda repo: repo.stats.downloads,
    "likes": lambda repo: repo.stats.likes,
    "trendingScore": lambda repo: repo.stats.trending_score,
    "id": lambda repo: repo.name.lower(),
}
MAX_PAGE = 1000


def expanded(call: Call, repo_type: str, *, detail: bool) -> list[str] | None:
    """The properties `expand` names (None without `expand`); 400 for one this endpoint does not take."""
    names = call.query_list("expand") + call.query_list("expand[]")
    if not names:
        return None
    allowed = [name for name in EXPANDABLE[repo_type] if detail or name not in DETAIL_ONLY.get(repo_type, ())]
    if unknown := [name for name in names if name not in allowed]:
        raise bad_request(f'"expand" must be one of [{", ".join(allowed)}] (got {", ".join(unknown)})')
    return names


def info(call: Call, repo: Repo, commit: Commit, expand: list[str] | None) -> dict[str, Any]:
    """`model_info` & co: everything, or with `expand` just the properties it names."""
    hub = call.hub
    blobs = call.flag("blobs") or (expand is not None and "usedStorage" in expand)
    answer = views.repo_info(hub, repo, commit, blobs=blobs)
    if expand is None:
        return answer
    if "baseModels" in expand and (bases := modeltree.base_models(hub, commit)) is not None:
        answer["baseModels"] = bases
    if "childrenModelCount" in expand:
        answer["childrenModelCount"] = modeltree.children_count(hub, call.user, repo)
    return _pick(_derived_extras(answer), expand)


def list_repos(call: Call) -> Response:
    """`list_models` & co."""
    hub, repo_type = call.hub, call.params["rtype"]
    expand = expanded(call, repo_type, detail=False)
    author = hub.users.canonical(call.query("author") or "")  # as repos keep their owner's name
    searches = [s.lower() for s in call.query_list("search")]
    filters = [f for value in call.query_list("filter") for f in value.split(",") if f]
    pipeline, gated = call.query("pipeline_tag"), call.query("gated")
    found, derived = [], hub.derived_cache
    for repo in hub.repos.values():  # one pass, cheap tests first, no call that can be spared: 10,000 repos
        if repo.type != repo_type or (author and repo.owner != author):
            continue
        if repo.private and not hub.can_see(call.user, repo):
            continue
        if searches and not all(s in repo.name.lower() for s in searches):
            continue
        if gated and (gated.lower() == "true") != bool(repo.gated):
            continue
        if filters or pipeline:
            head = repo.refs[MAIN_REF]
            facts = derived.get(head) or views.derived(hub, repo.commits[head])
            if pipeline and facts.pipeline_tag != pipeline:
                continue
            tags = facts.tags
            for value in filters:  # each names a tag, the id or the author
                if value not in tags and value != repo.name and value != repo.owner:
                    break
            else:
                found.append(repo)
            continue
        found.append(repo)
    if (sort := call.query("sort")) is not None:
        if sort not in SORTS:
            raise bad_request(f"sort must be one of {sorted(SORTS)}")
        key = SORTS[sort]
        found.sort(key=lambda repo: (key(repo), repo.name), reverse=call.query("direction") in (None, "-1"))
    limit = call.int_query("limit", 0)
    return paged(
        call, found, default_size=min(limit, MAX_PAGE) if limit > 0 else MAX_PAGE, render=_item(call, expand)
    )


def _item(call: Call, expand: list[str] | None) -> Callable[[Repo], dict[str, Any]]:
    """How one repo of a listing is shown."""
    hub, repo_type = call.hub, call.params["rtype"]
    full, card, config = call.flag("full"), call.flag("cardData"), call.flag("config")
    if expand is not None:
        fields = expand
        card = bool({"cardData", "model-index"} & set(expand))
        config, full = "config" in expand, "siblings" in expand
    elif repo_type == "model":
        fields = [*MODEL_ITEM, *(FULL_ITEM if full else ()), *(["cardData"] if card else ())]
        fields += ["config"] if config else []
    else:  # hubsim's fuller shape for datasets and spaces
        return lambda repo: views.repo_info(hub, repo, repo.head, card=card, config=config, siblings=full)

    def render(repo: Repo) -> dict[str, Any]:
        whole = views.repo_info(hub, repo, repo.head, card=card, config=config, siblings=full)
        return _pick(_derived_extras(whole), fields)

    return render


def _derived_extras(answer: dict[str, Any]) -> dict[str, Any]:
    """Properties `expand` may name that are read off others (`model-index` from the card)."""
    card = answer.get("cardData") or {}
    if "model-index" in card:
        answer["model-index"] = card["model-index"]
    answer.setdefault("spaces", [])
    return answer


def _pick(answer: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """`_id`, `id` and the named properties that the answer has (in the Hub's order: as built)."""
    wanted = {"_id", "id", *names}
    return {key: value for key, value in answer.items() if key in wanted}
