"""Fault injection: make chosen routes answer 429 or 5xx for the next N calls.

Reliability tests arm a fault (method + a regex searched in the decoded request path), run the client
and check how it copes. A 429 carries `RateLimit: "api";r=0;t=N`, `RateLimit-Policy` and `Retry-After: N`
like the Hub's (`ratelimit`), so huggingface_hub's `http_backoff` sleeps `N + 1` seconds before it retries.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any

from bot.hubsim.errors import ApiError, bad_request
from bot.hubsim.gitobjects import object_id
from bot.hubsim.ratelimit import RateLimitExceeded, Usage


@dataclass
class Fault:
    """One armed fault: answers `status` to matching requests, `times` more times."""

    method: str
    path: str
    status: int
    times: int
    retry_after: int = 0
    id: str = field(default_factory=object_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "times": self.times,
            "retry_after": self.retry_after,
        }

    def error(self) -> ApiError:
        """The answer to give."""
        if self.status == 429:
            spent = Usage("api", 500, 0, self.retry_after)
            return RateLimitExceeded(spent, "You have been rate-limited (hubsim injected fault)")
        return ApiError(self.status, f"hubsim injected fault: {self.status}")


class Faults:
    """The armed faults, consulted (thread-safely) before every Hub route."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(
        self, path: str = ".*", *, method: str = "*", status: int = 503, times: int = 1, retry_after: int = 0
    ) -> Fault:
        """Arm a fault; `path` is a regex searched in the decoded path (e.g. `/preupload/`)."""
        if not 400 <= status <= 599:
            raise bad_request(f"fault status must be 4xx or 5xx, not {status}")
        if times < 1 or retry_after < 0:
            raise bad_request("fault times must be >= 1 and retry_after >= 0")
        try:
            re.compile(path)
        except re.error as e:
            raise bad_request(f"fault path is not a valid regex: {e}") from None
        fault = Fault(method.upper(), path, status, times, retry_after)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        """Disarm every fault."""
        with self._lock:
            self._faults.clear()

    def list(self) -> list[Fault]:
        """The faults still armed."""
        with self._lock:
            return list(self._faults)

    def take(self, method: str, path: str) -> Fault | None:
        """The first armed fault matching this request, with one use consumed."""
        with self._lock:
            for fault in self._faults:
                if fault.method in ("*", method) and re.search(fault.path, path):
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                    return fault
        return None
