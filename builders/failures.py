"""The one exception a build stage raises on purpose: a labelled, one-line reason for the manifest.

Anything else that escapes a stage is recorded as kind ``internal`` with its type and message.
"""

from __future__ import annotations

from typing import Any


class BuildFailure(Exception):
    """A stage cannot go on. ``kind`` is a stable label; ``bad_input`` blames the spec or upstream repo."""

    def __init__(
        self, kind: str, message: str, *, bad_input: bool = False, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.bad_input = bad_input
        self.details = details or {}  # what the stage had measured before it gave up (kept in its record)

    def __str__(self) -> str:
        return self.message


HUB_UNAVAILABLE = "hub_unavailable"  # the Hub failed the stage: the bot tries the build again later
HUB_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def hub_caused(error: BaseException) -> bool:
    """Whether the Hub caused `error` or what it was raised from (5xx, 429, a timeout, no connection), as
    opposed to a request the Hub refused for good (not found, gated) or a local fault."""
    import httpx
    from huggingface_hub import errors as hf_errors

    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, httpx.TransportError | TimeoutError | ConnectionError):
            return True
        if isinstance(cause, hf_errors.HfHubHTTPError):
            return getattr(cause.response, "status_code", None) in HUB_STATUSES
        cause = cause.__cause__ or cause.__context__
    return False


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KiB': disk and memory figures in error messages people read."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"
