"""Renames: a `repo` `move` event carries the old name in `repo` and the new one in `movedTo`.

The Hub redirects the old name for a while, so nothing breaks at once; but a watch on the old name would go
stale silently and a new repo made under it would be mistaken for the old one. So everything the bot keeps
under the old name (watches, the upstream's jobs, releases, commands) moves to the new one, and the bot says
so in its log; the status page lists recent moves from the stored events.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from builders.spec import BuildSpec
from handlers.context import Context
from handlers.router import HANDLED, IGNORED, Router

router = Router()


@router.register("repo", action="move")
def on_move(ctx: Context) -> str:
    moved_to = ctx.hook.moved_to
    if moved_to is None or ctx.hook.repo.type != "model":
        return IGNORED
    old, new = ctx.repo, moved_to.name
    moved = ctx.store.move_repo(old, new, rekey=_rekey)
    if not moved:
        ctx.log.info("%s moved to %s; the bot keeps nothing under that name", old, new)
        return IGNORED
    ctx.log.warning(
        "%s moved to %s: %d watch(es), %d job(s), %d release(s) and %d command(s) follow it",
        old,
        new,
        moved.watches,
        moved.jobs,
        moved.releases,
        moved.commands,
    )
    return HANDLED


def _rekey(spec: dict[str, Any]) -> str | None:
    """The build key of a spec under its new name (None: a spec this version cannot read keeps its key)."""
    try:
        return BuildSpec.model_validate(spec).key()
    except ValidationError:
        return None
