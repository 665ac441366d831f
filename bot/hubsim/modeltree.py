"""The model tree: a model's base models and its relation to them, and its children by relation.

As the Hub derives it (hub-docs `model-cards.md`, "Specifying a base model"): from the card's `base_model`
(one id or a list) and `base_model_relation`, else a relation inferred from the files (`cards.tags`), shown
as the tags `base_model:<id>` and `base_model:<relation>:<id>` that `list_models(filter=...)` searches. The
Hub's `model_info(expand=[...])` adds `baseModels` (`{"relation", "models": [{"_id", "id"}]}`) and
`childrenModelCount` (`{relation: count}`, relations without children left out); both are refused by
`list_models`, whose `expand` does not take them (huggingface_hub #3182).
"""

from __future__ import annotations

from typing import Any

from bot.hubsim import views
from bot.hubsim.service import HubService
from bot.hubsim.store import Commit, Repo
from bot.hubsim.users import User

RELATIONS = ("quantized", "finetune", "adapter", "merge")  # in the order the model page lists them


def parents(hub: HubService, commit: Commit) -> tuple[str | None, list[str]]:
    """The relation and the base model ids the card names (None and [] for a model without any)."""
    facts = views.derived(hub, commit)
    return facts.relation, facts.base_models


def base_models(hub: HubService, commit: Commit) -> dict[str, Any] | None:
    """`baseModels` of `model_info` at a commit (None when its card names no base model)."""
    relation, bases = parents(hub, commit)
    if not bases:
        return None
    models = []
    for base in bases:
        found = hub.repos.get(("model", base))
        models.append({"_id": found.id, "id": found.name} if found else {"id": base})
    return {"relation": relation, "models": models}


def children(hub: HubService, viewer: User | None, repo: Repo) -> dict[str, list[Repo]]:
    """The models `viewer` may see that name `repo` as their base model, by relation, newest first."""
    found: dict[str, list[Repo]] = {relation: [] for relation in RELATIONS}
    wanted = repo.name.lower()
    for other in hub.visible_repos(viewer, "model"):
        facts = views.derived(hub, other.head)
        if facts.relation is not None and any(base.lower() == wanted for base in facts.base_models):
            found[facts.relation].append(other)
    for group in found.values():
        group.sort(key=lambda child: child.last_modified, reverse=True)
    return {relation: group for relation, group in found.items() if group}


def children_count(hub: HubService, viewer: User | None, repo: Repo) -> dict[str, int]:
    """`childrenModelCount` of `model_info`."""
    return {relation: len(group) for relation, group in children(hub, viewer, repo).items()}
