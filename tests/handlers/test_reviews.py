"""A maintainer's decision on a bot PR, as the publisher reads it off the Hub, moves the release."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.intake.webhooks import event_from_payload
from handlers import reviews
from handlers.context import Context, Options
from handlers.router import HANDLED, IGNORED
from state import BuildChange, ReleaseKind, ReleaseStatus, Store

REPO = "some-user/some-repo"  # the repo of tests/samples/pr_merged.json (PR #3)


@dataclass
class Outcome:
    status: ReleaseStatus


class Publisher:
    """The ReviewsPort: what the publisher would read off the Hub for the PR, recorded per call."""

    def __init__(self, status: ReleaseStatus | None) -> None:
        self.status = status
        self.calls: list[tuple[str, str, int]] = []

    def on_pr_merged(self, repo_id: str, num: int) -> Outcome | None:
        self.calls.append(("merged", repo_id, num))
        return Outcome(self.status) if self.status else None

    def on_pr_closed(self, repo_id: str, num: int) -> Outcome | None:
        self.calls.append(("closed", repo_id, num))
        return Outcome(self.status) if self.status else None


def _run(store: Store, payload: dict[str, Any], publisher: Publisher) -> str:
    parsed = event_from_payload(payload, "delivery")
    ctx = Context(
        event=None,
        hook=parsed.hook,
        hub=None,
        store=store,
        planner=None,
        reviews=publisher,
        options=Options(bot_name="quantbot", namespace="quantbot"),
    )  # type: ignore[arg-type]
    return reviews.on_pull_request_status(ctx)


def _release(store: Store, num: int = 3, status: ReleaseStatus = ReleaseStatus.OPEN) -> int:
    url = f"http://hub/{REPO}/discussions/{num}"
    return store.releases.record(
        build_key="k" * 64, repo_id=REPO, kind=ReleaseKind.PR, url=url, pr_number=num, status=status
    ).id


def test_a_merged_pr_publishes_its_release_and_the_replies_hear_of_it(store: Store, payloads) -> None:
    release = _release(store)
    heard: list[BuildChange] = []
    store.changes.listen(heard.append)
    publisher = Publisher(ReleaseStatus.MERGED)
    assert _run(store, payloads["pr_merged"], publisher) == HANDLED
    assert publisher.calls == [("merged", REPO, 3)]
    assert store.releases.get(release).status is ReleaseStatus.PUBLISHED
    assert heard == [BuildChange("k" * 64)]  # the reply updater re-renders the replies following it
    assert _run(store, payloads["pr_merged"], publisher) == HANDLED  # a redelivery changes nothing
    assert store.releases.get(release).status is ReleaseStatus.PUBLISHED and len(heard) == 1


def test_a_closed_pr_is_declined_for_good(store: Store, payloads) -> None:
    release = _release(store)
    payload = payloads["pr_merged"]
    payload["discussion"]["status"] = "closed"
    publisher = Publisher(ReleaseStatus.DECLINED)
    assert _run(store, payload, publisher) == HANDLED
    assert publisher.calls == [("closed", REPO, 3)]
    assert store.releases.get(release).status is ReleaseStatus.DECLINED


def test_what_is_not_a_decision_on_a_bot_pr_is_ignored_without_asking_the_hub(store: Store, payloads) -> None:
    publisher = Publisher(ReleaseStatus.MERGED)
    assert _run(store, payloads["pr_merged"], publisher) == IGNORED  # no release of the bot's on PR #3
    _release(store, num=4)
    assert _run(store, payloads["pr_merged"], publisher) == IGNORED  # a release, but on another PR
    _release(store)
    reopened = payloads["pr_merged"]
    reopened["discussion"]["status"] = "open"
    assert _run(store, reopened, publisher) == IGNORED
    discussion = payloads["pr_merged"]
    discussion["discussion"]["isPullRequest"] = False
    assert _run(store, discussion, publisher) == IGNORED
    assert publisher.calls == []


def test_a_pr_the_hub_no_longer_shows_as_decided_changes_nothing(store: Store, payloads) -> None:
    release = _release(store)
    assert _run(store, payloads["pr_merged"], Publisher(None)) == IGNORED  # a late or reordered webhook
    assert store.releases.get(release).status is ReleaseStatus.OPEN
