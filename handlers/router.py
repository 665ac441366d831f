"""Routing events to handlers, the way gidgethub does it: by scope, optionally narrowed by one payload key.

Each feature keeps its own `Router`; `Router(upstream.router, commands.router, ...)` merges them into the one
the dispatcher uses. A route is `(scope, key=value)` with at most one key, matched against the event's
`action` or a top-level string field of the payload::

    router = Router()

    @router.register("discussion.comment", action="create")
    def on_comment(ctx: Context) -> str: ...

A handler returns an outcome (`HANDLED`, `IGNORED`, `REFUSED`) or None (= ignored). The dispatcher records
the strongest outcome of the handlers that ran; an exception is recorded as `FAILED` by the dispatcher.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

HANDLED = "handled"
REFUSED = "refused"
IGNORED = "ignored"
FAILED = "failed"
_RANK = {IGNORED: 0, REFUSED: 1, HANDLED: 2}

Handler = Callable[[Any], "str | None"]


class Router:
    """Handlers by scope (shallow routes) and by scope plus one payload key and value (deep routes)."""

    def __init__(self, *others: Router) -> None:
        self._shallow: dict[str, list[Handler]] = defaultdict(list)
        self._deep: dict[str, dict[str, dict[str, list[Handler]]]] = defaultdict(
            lambda: defaultdict(lambda: defaultdict(list))
        )
        for other in others:
            for scope, handlers in other._shallow.items():
                self._shallow[scope].extend(handlers)
            for scope, keys in other._deep.items():
                for key, values in keys.items():
                    for value, handlers in values.items():
                        self._deep[scope][key][value].extend(handlers)

    def add(self, handler: Handler, scope: str, **data: str) -> None:
        """Route `scope` (and, if given, the one `key=value`) to `handler`."""
        if len(data) > 1:
            raise TypeError(f"a route takes at most one payload key, got {sorted(data)}")
        if not data:
            self._shallow[scope].append(handler)
            return
        [(key, value)] = data.items()
        self._deep[scope][key][value].append(handler)

    def register(self, scope: str, **data: str) -> Callable[[Handler], Handler]:
        """Decorator form of `add`."""

        def decorator(handler: Handler) -> Handler:
            self.add(handler, scope, **data)
            return handler

        return decorator

    def fetch(self, scope: str, fields: Mapping[str, Any]) -> list[Handler]:
        """The handlers for an event of `scope` whose routing fields (action, payload keys) are `fields`."""
        found = list(self._shallow.get(scope, ()))
        for key, values in self._deep.get(scope, {}).items():
            value = fields.get(key)
            if isinstance(value, str):
                found.extend(values.get(value, ()))
        return found

    def dispatch(self, scope: str, fields: Mapping[str, Any], context: Any) -> str:
        """Run every matching handler on `context`; the strongest outcome, `IGNORED` when none matched."""
        outcome = IGNORED
        for handler in self.fetch(scope, fields):
            result = handler(context) or IGNORED
            if _RANK.get(result, 0) > _RANK[outcome]:
                outcome = result
        return outcome


def routing_fields(action: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """What a route's key is matched against: the event's action and the payload's top-level strings."""
    fields = {key: value for key, value in payload.items() if isinstance(value, str)}
    fields["action"] = action
    return fields
