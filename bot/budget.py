"""One request budget per Hub token, shared by everything the bot asks of the Hub.

The Hub gives each token a quota of requests per bucket (`api`, `resolvers`) over fixed 5-minute windows,
and tells where a caller stands on every answer (`RateLimit: "api";r=R;t=T`, `RateLimit-Policy:
"fixed window";"api";q=Q;w=300`). `RequestBudget` sits on huggingface_hub's shared HTTP client (a request
and a response hook, so every request of the client is seen, pages of a listing and the parts of an upload
too) and, per token:

- counts each request before it is sent, by caller and bucket; the Hub's headers, when they come, correct
  the count (`remaining`, the limit and the reset), since other processes spend the same quota;
- lets the callers that can wait least go first: publishing and command replies may spend the whole
  window, the other callers (handling events, verification) all but `NORMAL_RESERVE` of it, and the poller
  and catch-up only `poll_share` of it, so a busy poll never takes the requests a reply needs;
- never sends a request into a spent window: a caller that may wait (every one but the poller and the
  catch-up) waits for the reset, the poller and the catch-up get `HubBudgetSpent` at once and try again on
  their next run. After a 429 the window counts as spent until the reset the Hub named.

Who is calling is named with `acting_as(caller)` around the work (the poller, the catch-up), else by the
thread (the bot's threads have names: `THREAD_CALLERS`). Requests of worker processes (builds,
verification) are not seen here; the Hub's next headers count them.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from huggingface_hub.utils import _http as hf_http
from huggingface_hub.utils import parse_ratelimit_headers

from bot.errors import HubBudgetSpent

WINDOW_S = 300
NORMAL_RESERVE = 0.05  # of the window, kept from everything but publishing and replies
MAX_WAIT_S = WINDOW_S + 5.0  # a caller never waits longer than one window for its request


class Priority(enum.IntEnum):
    """Who goes first when requests are scarce (a higher value first)."""

    POLL = 0
    NORMAL = 1
    URGENT = 2


CALLERS: dict[str, Priority] = {
    "poller": Priority.POLL,
    "catchup": Priority.POLL,
    "events": Priority.NORMAL,
    "verification": Priority.NORMAL,
    "builds": Priority.NORMAL,
    "other": Priority.NORMAL,
    "publishing": Priority.URGENT,
    "replies": Priority.URGENT,
}
THREAD_CALLERS = {
    "quantbot-publish": "publishing",
    "quantbot-celery": "publishing",
    "quantbot-replies": "replies",
    "quantbot-dispatcher": "events",
}
# The client's calls that reply, wherever they are made (`Hub.call` names them): a reply never waits behind
# a poll.
CALLS = {"comment_discussion": "replies", "edit_discussion_comment": "replies"}

_local = threading.local()


@contextlib.contextmanager
def acting_as(caller: str) -> Iterator[None]:
    """Name the caller of the Hub requests made in this thread meanwhile (`CALLERS`' keys)."""
    before = getattr(_local, "caller", None)
    _local.caller = caller
    try:
        yield
    finally:
        _local.caller = before


def named_caller() -> str | None:
    """The caller `acting_as` names in this thread, if any."""
    return getattr(_local, "caller", None)


def current_caller() -> str:
    return named_caller() or THREAD_CALLERS.get(threading.current_thread().name, "other")


def bucket_of(url: httpx.URL) -> str | None:
    """The Hub's bucket for a request (None: one the Hub limits in no bucket, e.g. LFS and storage)."""
    path = url.path
    if path.startswith("/api/"):
        return "api"
    if "/resolve/" in path:
        return "resolvers"
    return None


@dataclass
class Window:
    """Where the token stands in one bucket: the Hub's figures once it told them, else the assumed quota."""

    limit: int
    remaining: int
    resets_at: float | None = None  # monotonic; None: no request yet in this window
    told: bool = False  # the Hub's headers set these figures
    in_flight: int = 0


@dataclass
class RequestBudget:
    """The request budget of one token (see the module's docstring)."""

    quotas: dict[str, int]
    poll_share: float = 0.5
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    windows: dict[str, Window] = field(init=False)
    counts: Counter[tuple[str, str]] = field(init=False, default_factory=Counter)  # (caller, bucket)
    refused: Counter[str] = field(init=False, default_factory=Counter)  # 429s, by caller
    deferred: Counter[str] = field(init=False, default_factory=Counter)  # requests not sent, by caller
    waited_s: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self.windows = {bucket: Window(limit, limit) for bucket, limit in self.quotas.items()}
        self._cond = threading.Condition()

    # --- the hooks --------------------------------------------------------------------------------

    def before(self, request: httpx.Request) -> None:
        """Take one request from its bucket's window, waiting for the reset or refusing as the caller may."""
        bucket = bucket_of(request.url)
        caller = current_caller()
        priority = CALLERS.get(caller, Priority.NORMAL)
        with self._cond:
            if bucket is None or bucket not in self.windows:
                self.counts[(caller, bucket or "other")] += 1
                return
            waited = 0.0
            while True:
                window = self._current(bucket)
                if not window.told:  # the Hub limits nothing it has told of: count, hold nothing back
                    window.in_flight += 1
                    self.counts[(caller, bucket)] += 1
                    request.extensions["quantbot_budget"] = (caller, bucket)
                    return
                if window.remaining > self._floor(window.limit, priority):
                    window.remaining -= 1
                    window.in_flight += 1
                    if window.resets_at is None:
                        window.resets_at = self.clock() + WINDOW_S
                    self.counts[(caller, bucket)] += 1
                    request.extensions["quantbot_budget"] = (caller, bucket)
                    return
                wait = (window.resets_at or self.clock()) - self.clock()
                if priority is Priority.POLL or waited + wait > MAX_WAIT_S:
                    self.deferred[caller] += 1
                    raise HubBudgetSpent(
                        f"the Hub's {bucket!r} request budget for this window is spent for the {caller} "
                        f"({window.remaining} of {window.limit} left, reset in {math.ceil(max(wait, 0))} s)"
                    )
                self._cond.release()
                try:
                    self.sleep(max(wait, 0.05))
                finally:
                    self._cond.acquire()
                waited += max(wait, 0.05)
                self.waited_s += max(wait, 0.05)

    def after(self, response: httpx.Response) -> None:
        """Read the Hub's `RateLimit` headers (and a 429) into the bucket's window."""
        taken = response.request.extensions.get("quantbot_budget")
        info = parse_ratelimit_headers(response.headers)
        with self._cond:
            if taken is not None:
                caller, bucket = taken
                window = self.windows[bucket]
                window.in_flight = max(0, window.in_flight - 1)
                if response.status_code == 429:
                    self.refused[caller] += 1
            if info is None or info.resource_type not in self.windows:
                if taken is not None and response.status_code == 429:
                    self._spent(self.windows[taken[1]], _retry_after(response))
                self._cond.notify_all()
                return
            window = self.windows[info.resource_type]
            if info.limit is not None:
                window.limit = info.limit
            window.told = True
            # the Hub counted this request; those still in flight may not be counted yet
            window.remaining = max(0, info.remaining - window.in_flight)
            window.resets_at = self.clock() + info.reset_in_seconds
            if response.status_code == 429:
                self._spent(window, info.reset_in_seconds)
            self._cond.notify_all()

    # --- what the bot shows -----------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The budget as plain values: per bucket where the token stands, per caller what it spent."""
        with self._cond:
            now = self.clock()
            buckets = {}
            for bucket in self.windows:
                window = self._current(bucket)
                left = None if window.resets_at is None else max(0, math.ceil(window.resets_at - now))
                buckets[bucket] = {
                    "limit": window.limit,
                    "remaining": window.remaining,
                    "reset_s": left,
                    "from_hub": window.told,
                    "poll_limit": window.limit - self._floor(window.limit, Priority.POLL),
                }
            callers: dict[str, dict[str, int]] = {}
            for (caller, bucket), n in sorted(self.counts.items()):
                callers.setdefault(caller, {})[bucket] = n
            return {
                "window_s": WINDOW_S,
                "buckets": buckets,
                "requests": callers,
                "rate_limited": dict(self.refused),
                "deferred": dict(self.deferred),
                "waited_s": round(self.waited_s, 1),
            }

    def requests(self) -> dict[tuple[str, str], int]:
        """Requests sent since the bot started, by (caller, bucket)."""
        with self._cond:
            return dict(self.counts)

    # --- inside -----------------------------------------------------------------------------------

    def _current(self, bucket: str) -> Window:
        window = self.windows[bucket]
        if window.resets_at is not None and self.clock() >= window.resets_at:
            # a new window: the Hub's figures were for the last one; its next answer tells the new ones (and
            # a request that failed before any answer stops counting as in flight)
            window.remaining, window.resets_at, window.told, window.in_flight = window.limit, None, False, 0
        return window

    def _floor(self, limit: int, priority: Priority) -> int:
        """Requests of the window kept from callers of `priority`."""
        if priority is Priority.POLL:
            return limit - int(limit * self.poll_share)
        if priority is Priority.NORMAL:
            return int(limit * NORMAL_RESERVE)
        return 0

    def _spent(self, window: Window, reset_s: float | None) -> None:
        window.remaining, window.told = 0, True
        window.resets_at = self.clock() + (reset_s if reset_s is not None else WINDOW_S)


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


# --- one budget per token, on the client every HfApi of this process shares ---------------------------

_budgets: dict[str, RequestBudget] = {}
_installed = threading.Lock()
_hooked = False


def budget_for(token: str, make: Callable[[], RequestBudget]) -> RequestBudget:
    """The token's budget (made by `make` the first time), its hooks on huggingface_hub's client."""
    _install()
    with _installed:
        return _budgets.setdefault(_digest(token), make())


def forget(token: str) -> None:
    """Drop a token's budget (tests that start a bot afresh in one process)."""
    with _installed:
        _budgets.pop(_digest(token), None)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _owner(request: httpx.Request) -> RequestBudget | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return _budgets.get(_digest(token)) if scheme.lower() == "bearer" and token else None


def _on_request(request: httpx.Request) -> None:
    if (budget := _owner(request)) is not None:
        budget.before(request)


def _on_response(response: httpx.Response) -> None:
    if (budget := _owner(response.request)) is not None:
        budget.after(response)


def _install() -> None:
    """Put the hooks on huggingface_hub's shared client, now and on any client it makes later."""
    global _hooked
    with _installed:
        if _hooked:
            return
        _hooked = True
        make_client = hf_http._GLOBAL_CLIENT_FACTORY

        def hooked_client() -> httpx.Client:
            client = make_client()
            client.event_hooks["request"].append(_on_request)
            client.event_hooks["response"].append(_on_response)
            return client

        hf_http.set_client_factory(hooked_client)
