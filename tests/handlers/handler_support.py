"""What handler tests share: a planner with a fixed answer, webhook payloads of a push, and a Context made of
real parts (a store, a Hub client on hubsim)."""

from __future__ import annotations

import logging
from typing import Any

from bot.eligibility.specs import SpecMaker
from bot.hub import Hub
from bot.intake.webhooks import event_from_payload
from handlers import slash_commands, upstream
from handlers.context import Context, Options, UpkeepPort
from handlers.inputs import Eligibility
from handlers.router import HANDLED
from state import Store


class Planner:
    """The PlannerPort with a fixed answer (plain data, as the port hands it); specs by the real SpecMaker."""

    def __init__(
        self,
        settings: Any,
        eligible: dict[str, list[int]],
        refused: str | None = None,
        fp8_kv_cache: dict[str, list[int]] | None = None,
    ) -> None:
        self.maker = SpecMaker(settings, hub=None)  # type: ignore[arg-type]
        self.eligible, self.refused, self.fp8_kv_cache = eligible, refused, fp8_kv_cache or {}
        self.asked: list[tuple[str, str]] = []

    def eligibility(self, repo_id: str, revision: str) -> Eligibility:
        self.asked.append((repo_id, revision))
        sms = tuple(sorted({sm for s in self.eligible.values() for sm in s}))
        return Eligibility(
            repo_id,
            revision,
            "strict",
            self.refused,
            sms,
            dict(self.eligible),
            model_type="llama",
            fp8_kv_cache=dict(self.fp8_kv_cache),
        )

    def specs(self, eligibility: Eligibility, **narrow: Any) -> list[Any]:
        return self.maker.specs(eligibility, **narrow)

    def gpu_sm(self, name: str) -> int | None:
        return self.maker.gpu_sm(name)

    def runs_on(self, fmt: str, sm: int) -> list[str]:
        return self.maker.runs_on(fmt, sm)


def push_payload(
    payloads: dict[str, Any], repo: str, sha: str, ref: str = "refs/heads/main"
) -> dict[str, Any]:
    payload = payloads["main_commit"]
    payload["repo"]["name"], payload["repo"]["headSha"] = repo, sha
    payload["updatedRefs"] = [{"ref": ref, "oldSha": None, "newSha": sha}]
    return payload


def context(
    hubsim,
    store: Store,
    payload: dict[str, Any],
    planner: Planner,
    upkeep: UpkeepPort | None = None,
    **options: Any,
) -> Context:
    """The Context the dispatcher would make for `payload`, stored as an event first."""
    parsed = event_from_payload(payload, "delivery")
    recorded = store.events.record(
        delivery_id=parsed.delivery_id,
        scope=parsed.scope,
        action=parsed.action,
        payload=payload,
        dedup_key=parsed.dedup_key,
        repo=parsed.repo,
    )
    return Context(
        event=store.events.get(recorded.event_id),
        hook=parsed.hook,
        hub=Hub(endpoint=hubsim.url, token=hubsim.token),
        store=store,
        options=Options(**({"bot_name": "quantbot", "namespace": "quantbot"} | options)),
        planner=planner,
        upkeep=upkeep,
        log=logging.LoggerAdapter(logging.getLogger("test"), {}),
    )


def run_push(hubsim, store: Store, payload: dict[str, Any], planner: Planner, **options: Any) -> str:
    """Handle `payload` as the dispatcher would; the handler's outcome."""
    return upstream.on_push(context(hubsim, store, payload, planner, **options))


def answer(hubsim, ctx: Context, num: int, text: str) -> str:
    """Post `text` (as other-user) in discussion `num` of the context's repo, have the command handler answer
    it, and return the last comment there (the bot's answer)."""
    comment = hubsim.other_api.comment_discussion(ctx.repo, num, text)
    assert slash_commands.handle(ctx, num, comment.id, text) == HANDLED
    details = hubsim.api.get_discussion_details(ctx.repo, num)
    return [e.content for e in details.events if e.type == "comment"][-1]
