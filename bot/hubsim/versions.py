"""`new_version` in a model card: the model that supersedes this one.

hub-docs `model-cards.md` ("Specifying a new version"): the field holds a model id on the Hub; the model
page then shows a link to the latest version, following `new_version` from model to model ("the very latest
version will always be displayed"). The card is refused unless the id names an existing model, like
`base_model` (`metadata.validate`; the message has the shape of `base_model`'s, the Hub's own text for
`new_version` is not published).
"""

from __future__ import annotations

from bot.hubsim import views
from bot.hubsim.service import HubService
from bot.hubsim.store import Repo
from bot.hubsim.users import User


def latest(hub: HubService, viewer: User | None, repo: Repo) -> Repo | None:
    """The end of the `new_version` chain from `repo` that `viewer` may see (None: no newer version)."""
    newest: Repo | None = None
    seen = {repo.name.lower()}
    current = repo
    while isinstance(target := views.derived(hub, current.head).card.get("new_version"), str):
        found = hub.repos.get(("model", target))
        if found is None or not hub.can_see(viewer, found) or found.name.lower() in seen:
            break
        seen.add(found.name.lower())
        newest = current = found
    return newest
