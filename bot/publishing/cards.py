"""A release's model card: the template and context for its format, rendered and stamped.

Cards say only what was measured (DESIGN.md, decision 8): the context comes from the build's manifest and
the upstream model's facts alone (`trtllm_card`, `gptq_card`), rendered by `rendering`. The stamp, a hidden
hash of the card's text, lets a later run tell the bot's own card from a maintainer's edit.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from bot.publishing.gptq_card import Byline, gptq_context
from bot.publishing.rendering import render_card
from bot.publishing.trtllm_card import trtllm_context
from bot.publishing.upstream import Upstream
from builders.spec import Manifest

TRTLLM_TEMPLATE = "trtllm.md.j2"
GPTQ_TEMPLATE = "gptq.md.j2"
_CARD_STAMP = re.compile(r"\n<!-- quantbot:card ([0-9a-f]{64}) -->\n*\Z")


def template_for(manifest: Manifest) -> str:
    return GPTQ_TEMPLATE if manifest.require_spec().format == "gptq" else TRTLLM_TEMPLATE


def card_context(
    manifest: Manifest, upstream: Upstream, *, repo_id: str, endpoint: str, byline: Byline
) -> dict[str, Any]:
    """Every value a card shows, from the manifest and the upstream facts only (None = leave it out)."""
    if manifest.require_spec().format == "gptq":
        return gptq_context(manifest, upstream, repo_id=repo_id, endpoint=endpoint, byline=byline)
    return trtllm_context(manifest, upstream, repo_id=repo_id)


def render_release_card(
    manifest: Manifest, upstream: Upstream, *, repo_id: str, endpoint: str, byline: Byline
) -> str:
    """The README.md of a release (before `stamp_card`)."""
    context = card_context(manifest, upstream, repo_id=repo_id, endpoint=endpoint, byline=byline)
    return render_card(template_for(manifest), context)


def stamp_card(card: str) -> str:
    """The card plus a hidden hash of itself, so a later run tells the bot's text from a maintainer's edit."""
    body = card.rstrip("\n")
    return f"{body}\n<!-- quantbot:card {hashlib.sha256(body.encode()).hexdigest()} -->\n"


def card_is_untouched(readme: str | None) -> bool:
    """Whether a README is a card the bot wrote, unedited since (its stamp matches its text)."""
    match = _CARD_STAMP.search(readme or "")
    if match is None:
        return False
    body = (readme or "")[: match.start()].rstrip("\n")
    return hashlib.sha256(body.encode()).hexdigest() == match.group(1)
