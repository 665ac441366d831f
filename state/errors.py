"""Every error the state package raises, in one place.

The tree::

    StateError                 base class
    ├── NotFound               no row with that id (also a LookupError)
    ├── IllegalTransition      the state machine has no such edge; a programming error (also a ValueError)
    └── GuardFailed            the row was not in an expected state when updated (someone else moved it)
        └── LeaseLost          a worker's lease on a job was taken over or expired

`state` imports nothing of the project, so these do not derive from `bot.errors.QuantbotError`; callers map
them where a user sees them.
"""

from __future__ import annotations

from typing import Any


class StateError(Exception):
    """Base class for the store's errors."""


class NotFound(StateError, LookupError):
    """No row of that kind has that id."""

    def __init__(self, kind: str, key: Any) -> None:
        super().__init__(f"{kind} {key!r} not found")
        self.kind = kind
        self.key = key


class IllegalTransition(StateError, ValueError):
    """A transition the state machine does not have, e.g. published → running."""

    def __init__(self, kind: str, from_states: Any, to_state: Any) -> None:
        names = ", ".join(sorted(str(getattr(s, "value", s)) for s in from_states))
        target = getattr(to_state, "value", to_state)
        super().__init__(f"{kind}: no transition from {{{names}}} to {target}")
        self.from_states = from_states
        self.to_state = to_state


class GuardFailed(StateError):
    """A guarded update found the row in another state than it expected; nothing was changed."""

    def __init__(self, kind: str, key: Any, expected: Any, actual: Any) -> None:
        names = ", ".join(sorted(str(getattr(s, "value", s)) for s in expected))
        now = getattr(actual, "value", actual)
        super().__init__(f"{kind} {key}: expected status in {{{names}}}, found {now}")
        self.kind = kind
        self.key = key
        self.expected = expected
        self.actual = actual


class LeaseLost(GuardFailed):
    """The worker no longer holds the job's lease (it expired and was requeued, or the job was cancelled)."""

    def __init__(
        self, kind: str, key: Any, owner: str, expected: Any, actual: Any, lease_owner: str | None
    ) -> None:
        super().__init__(kind, key, expected, actual)
        now = getattr(actual, "value", actual)
        held = f", leased to {lease_owner}" if lease_owner else ""
        self.args = (f"{kind} {key} is no longer leased to {owner}: it is {now}{held}",)
        self.owner = owner
        self.lease_owner = lease_owner
