"""What a handler receives: the event, a Hub facade, the store, options, a logger tagged with the delivery.

The dispatcher builds one `Context` per event, outside the handler, so handlers hold no plumbing (probot's
`context`). The collaborators are Protocols: the bot passes its real `Hub`, planner and reviews, and a
test can pass the same real objects pointed at hubsim and a temporary database. Handlers never import the
bot: what they read comes as the plain data of `handlers.inputs`, and the jobs they queue, cancel or retry
reach the executor through the store's change listeners.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from builders.spec import FORMATS, BuildSpec
from handlers.inputs import Calibration, Eligibility, HubWebhook
from state import EventRecord, Store


class HubPort(Protocol):
    """The Hub calls handlers make (`bot.hub.Hub` implements them; errors are `bot.errors.HubError`s)."""

    def model_info(self, repo_id: str, revision: str | None = None, files_metadata: bool = False) -> Any: ...

    def resolve_revision(self, repo_id: str, revision: str | None = None) -> str: ...

    def ranked_models(
        self, *, filter: str, author: str | None = None, sort: str = "downloads", limit: int = 100
    ) -> list[Any]: ...

    def list_commits(self, repo_id: str, revision: str | None = None) -> list[Any]: ...

    def discussion(self, repo_id: str, num: int) -> Any: ...

    def reply(self, repo_id: str, num: int, text: str) -> str: ...

    def edit_comment(self, repo_id: str, num: int, comment_id: str, text: str) -> None: ...

    def org_members(self, org: str) -> list[str] | None: ...

    def user_gpus(self, user: str) -> list[str]: ...


class PlannerPort(Protocol):
    """Eligibility for one revision, and the BuildSpecs (one per format, its SMs listed) to queue."""

    def eligibility(self, repo_id: str, revision: str) -> Eligibility: ...

    def specs(
        self,
        eligibility: Eligibility,
        *,
        formats: Sequence[str] = (),
        sms: Sequence[int] = (),
        kv_cache_off: str | None = None,
        calibration: Calibration | None = None,
    ) -> list[BuildSpec]: ...

    def gpu_sm(self, name: str) -> int | None:
        """The SM of a GPU named as people write it (`L4`, `RTX 4090`), None when unknown."""
        ...

    def runs_on(self, fmt: str, sm: int) -> list[str]:
        """The runtimes (of the runtime table) that run a release in `fmt` on a GPU of `sm`."""
        ...

    def calibration_refusal(self, calibration: Calibration) -> str | None:
        """Why the builds may not calibrate with this dataset (missing, gated, too large), or None."""
        ...


class ReviewsPort(Protocol):
    """The publisher's reactions to a maintainer's decision on one of the bot's pull requests."""

    def on_pr_merged(self, repo_id: str, num: int) -> Any: ...

    def on_pr_closed(self, repo_id: str, num: int) -> Any: ...


class UpkeepPort(Protocol):
    """What the publisher does for a release between builds."""

    def metadata_only(self, upstream: str, previous: str, revision: str) -> str | None:
        """If `revision` changes no weights over `previous` (the revision released last), carry the changed
        metadata files to each release of `upstream` without a build and say what was done; None when the
        change needs a build."""
        ...


@dataclass(frozen=True)
class Options:
    """The settings handlers obey, resolved once (the bot's name comes from its token when not configured)."""

    bot_name: str
    namespace: str
    bot_user: str = ""  # the token's user, who writes the bot's comments and commits (default: bot_name)
    maintainers: frozenset[str] = frozenset()
    allowlist: frozenset[str] = frozenset()
    command_rate_limit: int = 10
    command_rate_window_s: int = 3600
    formats: tuple[str, ...] = FORMATS
    publisher_name: str = "quantbot"
    jobs_budget_usd: float | None = None  # jobs_monthly_budget_usd, when builds run as Hugging Face Jobs
    cooldown_minutes: int = 0  # minutes a new upstream revision waits before it is built (a watch may differ)
    demand_monthly_budget: int = 3  # fine-tunes a demand watch builds per calendar month (a watch may differ)
    trusted_publishers: tuple[str, ...] = ()  # their quantizations of a fine-tune are not built again
    bot_orgs: frozenset[str] | None = None  # the token's organisations, as the Hub named them (None: unknown)

    def __post_init__(self) -> None:
        if not self.bot_user:
            object.__setattr__(self, "bot_user", self.bot_name)

    def is_bot(self, user: str | None) -> bool:
        """Whether `user` is the bot itself (its mention name or its token's user)."""
        return user is not None and user in (self.bot_name, self.bot_user)

    def may_write(self, namespace: str) -> bool:
        """Whether the bot's token may push to `namespace` (yes while its organisations are unknown)."""
        if self.bot_orgs is None:
            return True
        mine = {self.bot_user, self.namespace, *self.bot_orgs}
        return namespace.lower() in {name.lower() for name in mine}

    @classmethod
    def from_settings(
        cls, settings: Any, *, bot_user: str, bot_orgs: frozenset[str] | None = None
    ) -> Options:
        return cls(
            bot_name=settings.bot_name or bot_user,
            namespace=settings.namespace or bot_user,
            bot_user=bot_user,
            maintainers=frozenset(settings.maintainers),
            allowlist=frozenset(settings.allowlist),
            command_rate_limit=settings.command_rate_limit,
            command_rate_window_s=settings.command_rate_window_s,
            publisher_name=settings.publisher_name,
            jobs_budget_usd=settings.jobs_monthly_budget_usd if settings.executor == "hf-jobs" else None,
            cooldown_minutes=settings.cooldown_minutes,
            demand_monthly_budget=settings.demand_monthly_budget,
            trusted_publishers=tuple(settings.trusted_publishers),
            bot_orgs=bot_orgs,
        )


@dataclass
class Context:
    """One event and everything a handler may use to act on it."""

    event: EventRecord
    hook: HubWebhook
    hub: HubPort
    store: Store
    options: Options
    planner: PlannerPort
    reviews: ReviewsPort | None = None
    upkeep: UpkeepPort | None = None
    log: logging.LoggerAdapter[logging.Logger] = field(
        default_factory=lambda: logging.LoggerAdapter(logging.getLogger("handlers"), {})
    )

    @property
    def repo(self) -> str:
        """The repo the event is about (`owner/name`)."""
        return self.hook.repo.name


def tagged_logger(name: str, delivery_id: str) -> logging.LoggerAdapter[logging.Logger]:
    """A logger whose lines start with the delivery id, so one event's lines can be found together."""

    class _Tagged(logging.LoggerAdapter[logging.Logger]):
        def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
            return f"[{delivery_id[:12]}] {msg}", kwargs

    return _Tagged(logging.getLogger(name), {})
