"""A release repo follows its upstream: each release commit is tagged with the upstream revision it was built
from, and an older release repo of the same upstream and format (a changed naming template, a renamed
upstream) gets `new_version` pointing at the one that now follows the upstream.

Tags are `upstream-<first 12 hex of the revision>`, never 40 hex (a tag spelled as a sha would shadow the
commit of that sha when a client asks for `revision=`); the tag's message names the whole revision.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from huggingface_hub import CommitOperationAdd, ModelCard

from bot.errors import HubAuthError
from bot.hub import Hub
from builders.spec import MANIFEST_NAME

log = logging.getLogger(__name__)

TAG_PREFIX = "upstream-"
CARD = "README.md"


def revision_tag(upstream_revision: str) -> str:
    """The tag of a release commit built from `upstream_revision`."""
    return TAG_PREFIX + upstream_revision[:12]


def tag_release(hub: Hub, repo_id: str, commit: str, upstream: str, upstream_revision: str) -> str | None:
    """Tag the release commit `commit` of `repo_id` with its upstream revision; the tag's name, or None where
    the bot may not write tags (a maintainer's repo it only sends pull requests to)."""
    name = revision_tag(upstream_revision)
    try:
        hub.tag(repo_id, name, commit, f"Built from {upstream} at {upstream_revision}")
    except HubAuthError as e:
        log.info("%s not tagged %s: %s", repo_id, name, e)
        return None
    return name


def point_predecessors(
    hub: Hub,
    *,
    namespace: str,
    upstream: str,
    format_id: str,
    successor: str,
    writable: bool | None,
    former_names: Sequence[str] = (),
) -> list[str]:
    """Give each older release repo of `upstream` in `format_id` (in the bot's `namespace`, under another
    name) `new_version: successor`, once: committed where the bot may write, else as a PR. A release of the
    upstream made before it was renamed names one of its `former_names` as its base model, and the Hub lists
    it under that name. The repos changed."""
    pointed: list[str] = []
    seen = {successor.lower()}
    for info in (
        found
        for name in (upstream, *former_names)
        for found in hub.list_models(author=namespace, filter=f"base_model:{name}")
    ):
        card = info.card_data.to_dict() if info.card_data is not None else {}
        if info.id.lower() in seen or card.get("new_version"):
            continue
        seen.add(info.id.lower())
        manifest = hub.read_json(info.id, MANIFEST_NAME) or {}
        if (manifest.get("spec") or {}).get("format") != format_id:
            continue
        text = hub.read_text(info.id, CARD)
        if text is None:
            continue
        model_card = ModelCard(text, ignore_metadata_errors=True)
        model_card.data["new_version"] = successor
        hub.create_commit(
            info.id,
            [CommitOperationAdd(CARD, str(model_card).encode())],
            commit_message=f"Point to the newer release {successor}",
            commit_description=(
                f"Releases of `{upstream}` in this format now follow their upstream in `{successor}`; "
                "this repo stays as it is, and the Hub shows a link to the newer version."
            ),
            create_pr=writable is False,
        )
        log.info("%s: new_version → %s", info.id, successor)
        pointed.append(info.id)
    return pointed
