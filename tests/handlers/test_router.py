"""The router: one route per (scope, one payload key), routers merged, the strongest outcome wins."""

from __future__ import annotations

import pytest

from handlers.router import HANDLED, IGNORED, REFUSED, Router, routing_fields


def test_routes_by_scope_and_one_key_and_merges_feature_routers() -> None:
    calls: list[str] = []
    comments, pushes = Router(), Router()

    @comments.register("discussion.comment", action="create")
    def on_create(ctx: object) -> str:
        calls.append("create")
        return HANDLED

    @comments.register("discussion.comment")
    def on_any(ctx: object) -> None:
        calls.append("any")

    @pushes.register("repo.content", action="update")
    def on_push(ctx: object) -> str:
        calls.append("push")
        return REFUSED

    router = Router(comments, pushes)
    assert router.dispatch("discussion.comment", routing_fields("create", {}), None) == HANDLED
    assert calls == ["any", "create"]
    assert router.dispatch("discussion.comment", routing_fields("update", {}), None) == IGNORED
    assert router.dispatch("repo.content", routing_fields("update", {"action": "ignored"}), None) == REFUSED
    assert router.dispatch("repo", routing_fields("create", {}), None) == IGNORED
    assert calls == ["any", "create", "any", "push"]


def test_a_route_takes_at_most_one_key() -> None:
    with pytest.raises(TypeError, match="at most one payload key"):
        Router().add(lambda ctx: None, "repo", action="create", kind="model")


def test_routing_fields_only_take_strings_and_the_action_wins() -> None:
    fields = routing_fields("create", {"action": "spoofed", "repo": {"name": "x"}, "kind": "model"})
    assert fields == {"action": "create", "kind": "model"}
