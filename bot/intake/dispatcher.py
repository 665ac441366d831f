"""The dispatcher: stored events in order, a Context for each, the handlers, and how it went, recorded.

It wakes when the server or the poller stores an event (`wake`, safe to call from the event loop) and every
few seconds anyway, so an event stored while the bot was down, or whose wake-up was lost, is still handled.
The payload was validated where it entered; `wake` hands the parsed event on, and only an event stored before
a restart (or whose wake-up was lost) is read back from its stored payload. A handler
that raises marks its event `failed` with the error; the loop itself never stops for one. A Hub that is down
or rate limiting is different: the event stays pending and is retried with backoff (a few times, then fails).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from pydantic import ValidationError

from bot.errors import HubRateLimited, HubUnavailable
from bot.intake.webhooks import Event
from handlers import moves, reviews, slash_commands, upstream
from handlers.context import Context, HubPort, Options, PlannerPort, ReviewsPort, UpkeepPort, tagged_logger
from handlers.inputs import HubWebhook
from handlers.router import FAILED, Router, routing_fields
from state import EventRecord, GuardFailed, Store

log = logging.getLogger(__name__)

SWEEP_S = 5.0
MAX_ERROR = 2000
MAX_TRANSIENT_TRIES = 6
RETRY_FIRST_S = 5.0
RETRY_MAX_S = 300.0
RETRY = "retry"  # not an outcome the store records: the event stays pending


def default_router() -> Router:
    """Every feature's routes, merged."""
    return Router(upstream.router, slash_commands.router, reviews.router, moves.router)


class Dispatcher:
    """Runs stored events through the handlers, one at a time, oldest first."""

    def __init__(
        self,
        store: Store,
        *,
        hub: HubPort,
        options: Options,
        planner: PlannerPort,
        reviews: ReviewsPort | None = None,
        upkeep: UpkeepPort | None = None,
        router: Router | None = None,
        sweep_s: float = SWEEP_S,
    ) -> None:
        self.store = store
        self.hub = hub
        self.options = options
        self.planner = planner
        self.reviews = reviews
        self.upkeep = upkeep
        self.router = router or default_router()
        self.sweep_s = sweep_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._tries: dict[int, int] = {}  # event id → transient failures so far
        self._retry_at: dict[int, float] = {}  # event id → monotonic time before which it waits
        self._thread: threading.Thread | None = None
        self._parsed: dict[int, HubWebhook] = {}  # event id → its payload as validated where it entered
        self._parsed_lock = threading.Lock()

    def wake(self, event_id: int | None = None, event: Event | None = None) -> None:
        """A new event is stored, `event` its parse (only signals: callable from the server's event loop)."""
        if event_id is not None and event is not None and event.hook is not None:
            with self._parsed_lock:
                self._parsed[event_id] = event.hook
        self._wake.set()

    def start(self) -> Dispatcher:
        self._thread = threading.Thread(target=self._loop, name="quantbot-dispatcher", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the event in hand, then stop."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.drain()
            except Exception:  # the store is unreachable this round; the next sweep retries
                log.exception("dispatcher sweep failed")
            self._wake.wait(self.sweep_s)
            self._wake.clear()

    def drain(self) -> int:
        """Handle every pending event that is due now; returns how many were handled."""
        done = 0
        while not self._stop.is_set():
            now = time.monotonic()
            due = [e for e in self.store.events.pending(limit=100) if self._retry_at.get(e.id, 0.0) <= now]
            if not due:
                return done
            for event in due:
                if self._stop.is_set():
                    break
                self.dispatch(event)
                done += 1
        return done

    def dispatch(self, event: EventRecord) -> str:
        """Handle one event and record its outcome (or its failure)."""
        logger = tagged_logger("quantbot.events", event.delivery_id)
        error = None
        try:
            outcome = self.router.dispatch(
                event.scope, routing_fields(event.action, event.payload), self._context(event, logger)
            )
        except (HubUnavailable, HubRateLimited) as e:
            tries = self._tries[event.id] = self._tries.get(event.id, 0) + 1
            if tries < MAX_TRANSIENT_TRIES:  # the Hub is down or busy: keep the event, try it again later
                delay = min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** (tries - 1))
                self._retry_at[event.id] = time.monotonic() + delay
                logger.warning("event %d: %s; retry %d in %.0fs", event.id, e, tries, delay)
                return RETRY
            outcome, error = FAILED, f"{type(e).__name__} after {tries} tries: {e}"[:MAX_ERROR]
        except Exception as e:
            logger.exception("event %d (%s %s) failed", event.id, event.scope, event.action)
            outcome, error = FAILED, f"{type(e).__name__}: {e}"[:MAX_ERROR]
        self._tries.pop(event.id, None)
        self._retry_at.pop(event.id, None)
        with self._parsed_lock:
            self._parsed.pop(event.id, None)
        try:
            self.store.events.mark_processed(event.id, outcome, error)
        except GuardFailed:
            logger.warning("event %d was already marked processed", event.id)
        logger.info("event %d %s %s on %s: %s", event.id, event.scope, event.action, event.repo, outcome)
        return outcome

    def _context(self, event: EventRecord, logger: Any) -> Context:
        return Context(
            event=event,
            hook=self._hook(event),
            hub=self.hub,
            store=self.store,
            options=self.options,
            planner=self.planner,
            reviews=self.reviews,
            upkeep=self.upkeep,
            log=logger,
        )

    def _hook(self, event: EventRecord) -> HubWebhook:
        """The parse `wake` handed on, else the stored payload read back (validated before it was stored)."""
        with self._parsed_lock:
            hook = self._parsed.get(event.id)
        if hook is not None:
            return hook
        try:
            return HubWebhook.model_validate(event.payload)
        except ValidationError as e:  # stored by an older version, or by hand: a bug to see, not to retry
            raise ValueError(f"stored payload of event {event.id} does not parse: {e}") from e
