"""Whether the Hub has answered yet: the bot starts and stores webhooks without it, and acts once it answers.

`quantbot serve` must come up while the Hub is down (a deploy during an outage, a network not ready yet):
the webhook endpoint only needs the database. Everything that acts (dispatcher, executor, poller, reply
updater) needs to know who the bot is, which the Hub's `whoami` says; so `HubReadiness` asks it in the
background, with backoff, until it answers, then hands the name on. Until then `/healthz` says
"degraded: Hub unreachable" (the process is alive: 200) and `/readyz` answers 503.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from bot.errors import HubError

log = logging.getLogger(__name__)

FIRST_DELAY_S = 1.0
MAX_DELAY_S = 60.0


class HubReadiness:
    """Asks the Hub who the bot is until it answers, then calls `on_ready(name)` once."""

    def __init__(
        self, hub: Any, *, first_delay_s: float = FIRST_DELAY_S, max_delay_s: float = MAX_DELAY_S
    ) -> None:
        self.hub = hub
        self.first_delay_s, self.max_delay_s = first_delay_s, max_delay_s
        self.user: str | None = None
        self.orgs: frozenset[str] | None = None  # the organisations whoami names: where the token may write
        self.last_error: str | None = None
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def ready(self) -> bool:
        """The Hub answered (the bot knows its name)."""
        return self._ready.is_set()

    def start(self, on_ready: Callable[[str], None]) -> HubReadiness:
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._connect, args=(on_ready,), name="quantbot-hub-readiness", daemon=True
        )
        self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the Hub answered (True) or `timeout` passed (False)."""
        return self._ready.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _connect(self, on_ready: Callable[[str], None]) -> None:
        delay = self.first_delay_s
        while not self._stop.is_set():
            try:
                # One try per round: this loop is the retry, with its own (longer) backoff.
                who = self.hub.whoami(retry=False)
            except HubError as e:
                if self.last_error is None:
                    log.warning(
                        "the Hub is unreachable (%s); webhooks are stored, handled once it answers", e
                    )
                self.last_error = str(e)
                self._stop.wait(delay)
                delay = min(self.max_delay_s, delay * 2)
                continue
            name = str(who["name"])
            self.orgs = frozenset(
                str(o["name"]) for o in who.get("orgs") or () if isinstance(o, dict) and "name" in o
            )
            self.user, self.last_error = name, None
            log.info("the Hub answered: the bot is %s", name)
            on_ready(name)
            self._ready.set()
            return
