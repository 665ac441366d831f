"""Maintainers' decisions on the bot's pull requests: merged → the release is published; closed → declined.

The event only says that a PR's status changed; the publisher's reactions read the PR from the Hub (the Hub,
not a possibly late or reordered webhook, decides) and say what it means for the release. A declined
release is final: the publisher finds the closed PR by its key and never opens it again. The store tells
the bot's reply updater of the release's new status, which re-renders the replies that follow the build.
"""

from __future__ import annotations

import contextlib

from handlers.context import Context
from handlers.router import HANDLED, IGNORED, Router
from state import GuardFailed, ReleaseStatus

router = Router()

# What a release becomes, and from which statuses, for each status the publisher reads off the Hub.
_MOVES = {
    ReleaseStatus.MERGED: ({ReleaseStatus.OPEN}, ReleaseStatus.PUBLISHED),
    ReleaseStatus.DECLINED: ({ReleaseStatus.OPEN, ReleaseStatus.CLOSED}, ReleaseStatus.DECLINED),
    ReleaseStatus.SUPERSEDED: ({ReleaseStatus.OPEN}, ReleaseStatus.SUPERSEDED),
    ReleaseStatus.OPEN: ({ReleaseStatus.CLOSED}, ReleaseStatus.OPEN),
}


@router.register("discussion", action="update")
def on_pull_request_status(ctx: Context) -> str:
    discussion = ctx.hook.discussion
    if discussion is None or not discussion.is_pull_request or discussion.status not in ("merged", "closed"):
        return IGNORED
    releases = ctx.store.releases.find(repo_id=ctx.repo, pr_number=discussion.num)
    if not releases or ctx.reviews is None:
        return IGNORED
    react = ctx.reviews.on_pr_merged if discussion.status == "merged" else ctx.reviews.on_pr_closed
    outcome = react(ctx.repo, discussion.num)
    if outcome is None:
        return IGNORED
    sources, target = _MOVES[outcome.status]
    for release in releases:
        with contextlib.suppress(GuardFailed):  # already there (a redelivery)
            ctx.store.releases.set_status(release.id, sources, target)  # replies follow (bot side)
    ctx.log.info("%s#%d %s: release %s", ctx.repo, discussion.num, discussion.status, target.value)
    return HANDLED
