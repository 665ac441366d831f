"""Slash commands against hubsim: who may build, the rate limit, help for nonsense, one answer per comment.

The events are the payloads hubsim really sends (a hook to a closed port: the delivery fails, the payload is
logged); the handler runs on a real store, a real Hub client and hubsim's discussions.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.eligibility.specs import SpecMaker
from bot.hub import Hub
from bot.intake.webhooks import event_from_payload
from bot.settings import load_settings
from handlers import slash_commands
from handlers.context import Context, Options
from handlers.router import HANDLED, IGNORED, REFUSED
from state import CommandStatus, Store

DEAD_URL = "http://127.0.0.1:9/hook"


@pytest.fixture
def watched(hubsim, repo_factory: Callable[..., str]) -> Iterator[Callable[..., str]]:
    """Make a repo whose events hubsim logs (posted to a closed port)."""
    hooks = []

    def make(namespace: str | None = None) -> str:
        repo = repo_factory("commands", namespace=namespace)
        hooks.append(hubsim.server.register_webhook(DEAD_URL, watched=[{"type": "model", "name": repo}]))
        return repo

    yield make
    for hook in hooks:
        del hubsim.server.webhooks.hooks[hook.id]


def _comment(hubsim, repo: str, text: str, *, api=None) -> dict[str, Any]:
    """Post `text` (as other-user by default) in the repo's first discussion; the payload hubsim sent."""
    api = api or hubsim.other_api
    found = list(api.get_repo_discussions(repo, discussion_type="discussion"))
    num = found[-1].num if found else api.create_discussion(repo, "Builds").num
    comment = api.comment_discussion(repo, num, text)
    delivery = hubsim.wait_for_delivery(lambda d: (d.payload.get("comment") or {}).get("id") == comment.id)
    return delivery.payload


def _run(hubsim, store: Store, payload: dict[str, Any], planner: Any = None, **options: Any) -> str:
    parsed = event_from_payload(payload, "test-delivery")
    recorded = store.events.record(
        delivery_id="d", scope=parsed.scope, action=parsed.action, payload=payload,
        dedup_key=parsed.dedup_key + str(len(store.events.recent(1000))), repo=parsed.repo,
    )  # fmt: skip
    ctx = Context(
        event=store.events.get(recorded.event_id),
        hook=parsed.hook,
        hub=Hub(endpoint=hubsim.url, token=hubsim.token),
        store=store,
        options=Options(bot_name="quantbot", namespace="quantbot", **options),
        planner=planner,  # None where the command does not get as far as planning
        log=logging.LoggerAdapter(logging.getLogger("test"), {}),
    )
    return slash_commands.on_comment(ctx)


def _replies(hubsim, repo: str) -> list[str]:
    [discussion] = hubsim.api.get_repo_discussions(repo, discussion_type="discussion")
    details = hubsim.api.get_discussion_details(repo, discussion.num)
    return [e.content for e in details.events if e.type == "comment" and e.author == hubsim.user]


def test_help_and_nonsense_get_the_help_text_once_per_comment(hubsim, watched, store: Store) -> None:
    repo = watched()
    help_payload = _comment(hubsim, repo, "/help")
    assert _run(hubsim, store, help_payload) == HANDLED
    assert _run(hubsim, store, help_payload) == IGNORED  # the same comment, delivered again
    assert _run(hubsim, store, _comment(hubsim, repo, "@quantbot frobnicate the model")) == HANDLED
    assert _run(hubsim, store, _comment(hubsim, repo, "Nice model!")) == IGNORED
    first, second = _replies(hubsim, repo)
    assert first.startswith("I build quantized releases") and "`/quantize" in first
    assert second.startswith("I don't know the command `/frobnicate`.") and "`/status`" in second
    assert {c.status for c in store.commands.recent()} == {CommandStatus.DONE}


def test_someone_else_may_not_build_and_is_told_who_can(hubsim, watched, store: Store) -> None:
    repo = watched()
    outcome = _run(hubsim, store, _comment(hubsim, repo, "/quantize gptq"), maintainers=frozenset({"maya"}))
    assert outcome == REFUSED
    [reply] = _replies(hubsim, repo)
    assert reply.startswith(f"Sorry @{hubsim.other_user}, only the owner of this repo (`{hubsim.user}`)")
    assert "`maya`" in reply
    [command] = store.commands.recent()
    assert command.status is CommandStatus.REFUSED and command.author == hubsim.other_user
    assert store.jobs.list() == []


def test_owners_org_members_maintainers_and_the_allowlist_may_build(hubsim, watched, store: Store) -> None:
    repo = watched(namespace=hubsim.org)
    payload = _comment(hubsim, repo, "/status")
    parsed = event_from_payload(payload, "x")
    options = Options(
        bot_name="q", namespace="q", maintainers=frozenset({"maya"}), allowlist=frozenset({"al"})
    )
    hub = Hub(endpoint=hubsim.url, token=hubsim.token)
    ctx = Context(event=None, hook=parsed.hook, hub=hub, store=store, options=options, planner=None)  # type: ignore[arg-type]
    assert slash_commands.may_build(ctx, hubsim.user)  # a member of the org that owns the repo
    assert slash_commands.may_build(ctx, "maya") and slash_commands.may_build(ctx, "al")
    assert not slash_commands.may_build(ctx, hubsim.other_user)


def test_the_rate_limit_answers_once_then_stays_quiet(hubsim, watched, store: Store) -> None:
    repo = watched()
    outcomes = [_run(hubsim, store, _comment(hubsim, repo, "/help"), command_rate_limit=2) for _ in range(4)]
    assert outcomes == [HANDLED, HANDLED, REFUSED, REFUSED]
    replies = _replies(hubsim, repo)
    assert len(replies) == 3 and "more than 2 commands" in replies[2]
    assert [c.status for c in reversed(store.commands.recent())][2:] == [CommandStatus.REFUSED] * 2


HOSTILE = [
    "/quantize `[x](http://a.invalid)`",
    "/quantize a`[x](http://a.invalid)`b",
    "/quantize ![i](http://a.invalid/x.png)",
    "/quantize @someone",
    "/quantize \u202egptq",
    "/frobnicate[x](http://a.invalid)",
    "/quantize gptq --sm ``9`0``",
    "/quantize " + "a" * 400,
]


@pytest.mark.parametrize(
    "text",
    HOSTILE,
    ids=["link-in-backticks", "link-between-backticks", "image", "mention", "rlo", "cmd", "sm", "long"],
)
def test_a_reply_quotes_what_a_commenter_typed_inertly(hubsim, watched, store: Store, text: str) -> None:
    """Rendered as CommonMark (what the Hub renders), the reply holds no link, image or mention the bot did
    not write, no bidi control, and no quote longer than the cut."""
    from markdown_it import MarkdownIt

    repo = watched()
    assert _run(hubsim, store, _comment(hubsim, repo, text)) == HANDLED
    [reply] = _replies(hubsim, repo)  # read back from hubsim: what the Hub holds
    first = reply.split("\n\n")[0]
    tokens = [t for block in MarkdownIt("commonmark").parse(first) for t in block.children or []]
    assert not [t for t in tokens if t.type in ("link_open", "image", "html_inline")]
    plain = "".join(t.content for t in tokens if t.type == "text")
    assert "@" not in plain and "](" not in plain  # mentions and link syntax only inside code spans
    assert not any(0x202A <= ord(c) <= 0x202E or 0x2066 <= ord(c) <= 0x2069 for c in reply)
    assert all(len(t.content) <= 30 for t in tokens if t.type == "code_inline")
    assert any(t.type == "code_inline" for t in tokens)


def test_formats_says_per_sm_whether_an_engine_or_a_serving_check_runs(
    hubsim, watched, store: Store, tmp_path: Path
) -> None:
    repo = watched()
    config = {
        "model_type": "qwen2",
        "architectures": ["Qwen2ForCausalLM"],
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 128,
        "vocab_size": 1000,
        "torch_dtype": "bfloat16",
    }
    hubsim.api.upload_file(
        path_or_fileobj=json.dumps(config).encode(), path_in_repo="config.json", repo_id=repo
    )
    settings = load_settings(None, data_dir=tmp_path, target_sms=[90], policy="permissive")
    planner = SpecMaker(settings, Hub(endpoint=hubsim.url, token=hubsim.token))
    assert _run(hubsim, store, _comment(hubsim, repo, "/formats"), planner=planner) == HANDLED
    [reply] = _replies(hubsim, repo)
    per_format = {line.split("**")[1]: line for line in reply.split("\n- ")[1:] if "**" in line}
    assert "  - sm90: serving check (vLLM, SGLang, TensorRT-LLM ≥ 1.3)" in per_format["fp8"]
    assert "  - sm90: serving check (TensorRT-LLM ≥ 1.3)" in per_format["int4_awq"]
    assert "  - sm90: engine (trtllm-build, on a worker with TensorRT-LLM ≤ 1.2)" in per_format["int8_sq"]
