"""Finding the bot's own work on the Hub: the hidden release tag, the bot's PRs, and what they settle.

Every release carries a `ReleaseTag` — its key (`BuildSpec.key()`: upstream repo, sha, format, recipe,
toolchain) and its series (the same without sha and toolchain) — written as a hidden marker into PR
descriptions and commit messages. Reading the tags back tells the publisher, just before it writes, what the
Hub already holds for a key: the key on `main`, a merged PR (done), a PR a maintainer closed (declined, never
opened again), an open or draft PR (updated in place), an open PR for a *newer* upstream sha (this build is
stale), and the older open PRs of the series that a new release supersedes.

The same reading answers a maintainer's decision (`on_pr_merged` / `on_pr_closed`, the handlers'
`ReviewsPort`): webhooks may arrive late or out of order, so the Hub, not the event, decides.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from huggingface_hub.community import DiscussionWithDetails

from bot.hub import Hub
from bot.publishing.cards import card_is_untouched
from bot.publishing.succession import tag_release
from builders.spec import Manifest
from state.models import ReleaseStatus

_MARKER = re.compile(r"<!-- quantbot:release (\{.*?\}) -->")
_OPEN = ("open", "draft")


@dataclass(frozen=True)
class ReleaseTag:
    """What identifies a release on the Hub; serialised into a hidden HTML comment."""

    key: str
    series: str
    upstream: str
    revision: str
    format: str

    @classmethod
    def of(cls, manifest: Manifest) -> ReleaseTag:
        """The tag of a build (its spec names a Hub upstream: `load_manifest` checked it)."""
        spec = manifest.require_spec()
        assert spec.repo_id is not None and spec.revision is not None
        return cls(manifest.key, series_of(manifest), spec.repo_id, spec.revision, spec.format)

    def marker(self) -> str:
        return f"<!-- quantbot:release {json.dumps(asdict(self), sort_keys=True)} -->"

    @classmethod
    def find(cls, text: str | None) -> ReleaseTag | None:
        """The tag in a PR description or commit message, or None (also for a malformed one)."""
        match = _MARKER.search(text or "")
        if match is None:
            return None
        try:
            return cls(**json.loads(match.group(1)))
        except (ValueError, TypeError):
            return None


def series_of(manifest: Manifest) -> str:
    """The key without sha and toolchain: builds of one upstream, format and recipe over time."""
    spec = manifest.require_spec()
    payload = {"upstream": spec.repo_id, "format": spec.format, "recipe": spec.recipe.for_format(spec.format)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def new_engine_sms(manifest: Manifest, previous: dict[str, Any] | None) -> set[int]:
    """SMs this build has an engine for that the repo's current manifest (`previous`) lacks."""
    engines = (previous or {}).get("engines") or []
    old = {e.get("sm") for e in engines if isinstance(e, dict) and e.get("status") == "built"}
    return {e.sm for e in manifest.engines if e.status == "built"} - old


@dataclass(frozen=True)
class BotPR:
    """One of the bot's own PRs on a repo, with the tag from its description."""

    details: DiscussionWithDetails
    tag: ReleaseTag
    description_id: str
    description: str

    @property
    def is_open(self) -> bool:
        return self.details.status in _OPEN


@dataclass(frozen=True)
class Settled:
    """The Hub already holds this key's answer: nothing to upload (`pr` None: it is on `main`)."""

    status: ReleaseStatus
    pr: DiscussionWithDetails | None
    message: str


@dataclass(frozen=True)
class PullRequestOutcome:
    """A maintainer's decision on one of the bot's release PRs, as a release status."""

    repo_id: str
    pr_number: int
    url: str
    tag: ReleaseTag
    status: ReleaseStatus


_SETTLED_MESSAGES = {
    ReleaseStatus.MERGED: "already merged",
    ReleaseStatus.DECLINED: "a maintainer closed this release's PR; not opening it again",
    ReleaseStatus.SUPERSEDED: "superseded by a newer upstream revision",
}


class ReleaseLookup:
    """The bot's releases on the Hub, as its user (`bot_name`) left them."""

    def __init__(self, hub: Hub, bot_name: str) -> None:
        self.hub = hub
        self.bot_name = bot_name
        self._history: dict[str, list[str]] = {}  # upstream repo → commit shas, newest first

    def bot_prs(self, repo_id: str) -> list[BotPR]:
        """The bot's own release PRs on a repo (any status), with their tags."""
        found = []
        for summary in self.hub.pull_requests(repo_id, author=self.bot_name):
            details = self.hub.discussion(repo_id, summary.num)
            first = next((e for e in details.events if e.type == "comment"), None)
            text = getattr(first, "content", None)
            tag = ReleaseTag.find(text)
            if tag is not None and first is not None:
                found.append(BotPR(details, tag, first.id, text or ""))
        return found

    def open_pr(self, repo_id: str, key: str) -> BotPR | None:
        """The bot's open (or draft) PR for this key, read afresh (after a 5xx that may have opened it)."""
        return next((p for p in self.bot_prs(repo_id) if p.tag.key == key and p.is_open), None)

    def settle(
        self,
        tag: ReleaseTag,
        manifest: Manifest,
        card: str,
        previous: dict[str, Any] | None,
        readme: str | None,
        prs: list[BotPR],
    ) -> Settled | BotPR | None:
        """What the Hub already holds for this key: a final answer, the open PR to update, or nothing.

        `previous` and `readme` are the repo's manifest and README on `main`. The same key can still bring
        something new: engines for another SM (DESIGN.md: quantize once, compile per SM), or a card the bot
        would now write differently — replaced only while it is still the bot's own text
        (`card_is_untouched`), never over a maintainer's edit.
        """
        on_main = bool(previous) and (previous or {}).get("key") == tag.key
        news = on_main and bool(
            new_engine_sms(manifest, previous) or (card_is_untouched(readme) and readme != card)
        )
        if on_main and not news:
            return Settled(ReleaseStatus.PUBLISHED, None, "already published on main")
        for pr in prs:
            if pr.tag.key != tag.key or pr.is_open:
                continue
            status = release_status(pr.details, self.bot_name)
            if status is ReleaseStatus.MERGED and news:
                continue  # merged before; this run adds engines or updates the card
            return Settled(status, pr.details, _SETTLED_MESSAGES[status])
        mine = next((p for p in prs if p.tag.key == tag.key and p.is_open), None)
        newer = self._newer_open(tag, prs)
        if mine is None and newer is not None:
            return Settled(
                ReleaseStatus.SUPERSEDED, newer.details, "an open PR already releases a newer revision"
            )
        return mine

    def superseded_by(self, tag: ReleaseTag, prs: list[BotPR]) -> list[BotPR]:
        """The bot's open PRs of this series for older upstream revisions: a release of `tag` ends them."""
        return [
            pr
            for pr in prs
            if pr.is_open
            and pr.tag.series == tag.series
            and pr.tag.key != tag.key
            and pr.tag.revision != tag.revision
            and not self._is_newer(pr.tag.upstream, pr.tag.revision, tag.revision)
        ]

    def _newer_open(self, tag: ReleaseTag, prs: list[BotPR]) -> BotPR | None:
        for pr in prs:
            same_series = pr.is_open and pr.tag.series == tag.series and pr.tag.key != tag.key
            if same_series and self._is_newer(tag.upstream, pr.tag.revision, tag.revision):
                return pr
        return None

    def _is_newer(self, upstream: str, candidate: str, than: str) -> bool:
        """Whether upstream revision `candidate` came after `than`, from the upstream's commit history.

        A revision missing from the history (force-pushed away) counts as older than one that is in it.
        """
        if upstream not in self._history:
            self._history[upstream] = [c.commit_id for c in self.hub.list_commits(upstream)]
        order = self._history[upstream]
        position = {sha: i for i, sha in enumerate(order)}  # newest first
        return position.get(candidate, len(order)) < position.get(than, len(order))

    # ------------------------------------------------------------------ maintainers' decisions (ReviewsPort)

    def outcome(self, repo_id: str, num: int) -> PullRequestOutcome | None:
        """The state of one of the bot's release PRs as read from the Hub now; None for a PR that is not
        the bot's release."""
        details = self.hub.discussion(repo_id, num)
        if not details.is_pull_request or details.author != self.bot_name:
            return None
        first = next((e for e in details.events if e.type == "comment"), None)
        tag = ReleaseTag.find(getattr(first, "content", None))
        if tag is None:
            return None
        return PullRequestOutcome(repo_id, num, details.url, tag, release_status(details, self.bot_name))

    def on_pr_merged(self, repo_id: str, num: int) -> PullRequestOutcome | None:
        """A PR was merged: if it is one of the bot's releases, the release is published (MERGED), and the
        upstream revision's tag moves to the commit on `main`."""
        found = self.outcome(repo_id, num)
        if found is not None and found.status is ReleaseStatus.MERGED:
            head = self.hub.resolve_revision(repo_id, "main")
            tag_release(self.hub, repo_id, head, found.tag.upstream, found.tag.revision)
        return found

    def on_pr_closed(self, repo_id: str, num: int) -> PullRequestOutcome | None:
        """A PR was closed: a release is DECLINED (closed by a maintainer) or SUPERSEDED (by the bot)."""
        return self.outcome(repo_id, num)


def release_status(details: DiscussionWithDetails, bot_name: str) -> ReleaseStatus:
    """Merged → MERGED; closed by the bot (superseded) → SUPERSEDED; closed by anyone else → DECLINED."""
    if details.status == "merged":
        return ReleaseStatus.MERGED
    if details.status == "closed":
        closer = next((e.author for e in reversed(details.events) if e.type == "status-change"), None)
        return ReleaseStatus.SUPERSEDED if closer == bot_name else ReleaseStatus.DECLINED
    return ReleaseStatus.OPEN
