"""The Hub's rate limits: three buckets, a quota per plan over fixed 5-minute windows, counted per user (per
IP address for anonymous callers), told in `RateLimit` / `RateLimit-Policy` headers, refused with a 429.

What the Hub documents (hub-docs `rate-limits.md`, figures of September 2025):
- buckets: `api` (the `/api/...` endpoints), `resolvers` (every URL with a `/resolve/` segment), `pages`
  (the web pages); quotas per plan in `PLANS`, over fixed 5-minute windows;
- headers after the IETF draft `draft-ietf-httpapi-ratelimit-headers-09`: `RateLimit: "api";r=R;t=T`
  (R requests left, T seconds to the reset) and `RateLimit-Policy: "fixed window";"api";q=Q;w=300`, sent on
  every answer (huggingface_hub 1.33 `utils/_http.py`: "Headers are set on every response"), a 429 once
  spent. huggingface_hub >= 1.2 parses both (`parse_ratelimit_headers`), names the bucket, R/Q and T in the
  429's message, and `http_backoff` sleeps T + 1 seconds before it retries.

hubsim's choices where the docs say nothing: a caller's window starts with its first request in that bucket;
a refused request counts in `counts` and `refused` but not against the quota; the Git LFS routes and the
storage URLs downloads are redirected to are counted as `other` and never limited (the Hub lists them in no
bucket), hubsim's own `/_hubsim/` routes not at all. Limits are off unless enabled (`RateLimits(enabled=
True)`, `quantbot hubsim`'s default), except for a user given a quota of their own (`set_quota(...,
user=...)`), which holds for that user even while everyone else is unlimited: a test can see 429s on a
shared hubsim.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from bot.hubsim.errors import ApiError, bad_request

WINDOW_S = 300
BUCKETS = ("api", "resolvers", "pages")


@dataclass(frozen=True)
class Quota:
    """Requests allowed per 5-minute window, by bucket."""

    api: int
    resolvers: int
    pages: int

    def of(self, bucket: str) -> int:
        return int(getattr(self, bucket))


# hub-docs rate-limits.md, "Rate limit Tiers" (September 2025); anonymous callers are counted per IP address
ANONYMOUS = "anonymous"
PLANS: dict[str, Quota] = {
    ANONYMOUS: Quota(500, 3_000, 100),
    "free": Quota(1_000, 5_000, 200),
    "pro": Quota(2_500, 12_000, 400),
    "team": Quota(3_000, 20_000, 400),
    "enterprise": Quota(6_000, 50_000, 600),
    "enterprise-plus": Quota(10_000, 100_000, 1_000),
    "academia": Quota(2_500, 12_000, 400),
}
USER_PLANS = tuple(plan for plan in PLANS if plan != ANONYMOUS)


OTHER = "other"  # counted, never limited: the Git LFS protocol and the storage URLs downloads go to


def bucket_of(segments: list[str], is_page: bool) -> str:
    """The bucket a request path falls in (`OTHER` for the LFS routes and storage URLs)."""
    if segments[:1] == ["api"]:
        return "api"
    at = 3 if segments[:1] in (["datasets"], ["spaces"]) else 2  # /[datasets/]{ns}/{name}/resolve/...
    if segments[at : at + 1] == ["resolve"]:
        return "resolvers"
    return "pages" if is_page else OTHER


@dataclass(frozen=True)
class Usage:
    """Where a caller stands in a bucket after a request: what the `RateLimit` headers tell."""

    bucket: str
    limit: int
    remaining: int
    reset_s: int

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit": f'"{self.bucket}";r={self.remaining};t={self.reset_s}',
            "RateLimit-Policy": f'"fixed window";"{self.bucket}";q={self.limit};w={WINDOW_S}',
        }


class RateLimitExceeded(ApiError):
    """A 429 with the Hub's rate-limit headers and `Retry-After` (the message is hubsim's words)."""

    def __init__(self, usage: Usage, message: str | None = None) -> None:
        super().__init__(
            429,
            message
            or f"Too many requests: you used your '{usage.bucket}' quota of {usage.limit} requests per "
            f"{WINDOW_S // 60} minutes; it resets in {usage.reset_s} s",
        )
        self.headers = {**usage.headers(), "Retry-After": str(usage.reset_s)}


@dataclass
class _Window:
    ends: float
    used: int = 0


class RateLimits:
    """The quotas, each caller's current windows, and every request counted by caller, bucket and route.

    `counts[(caller, bucket, route)]`: requests made (refused ones too), `caller` being a user's name or
    `anonymous@<ip>`, `route` the route's pattern (`GET /api/{rtype}/{ns}/{name}`); `refused[(caller,
    bucket)]`: requests answered 429. Thread-safe."""

    def __init__(self, enabled: bool = False, clock: Callable[[], float] = time.monotonic) -> None:
        self.enabled = enabled
        self.plans = dict(PLANS)
        self.user_quotas: dict[str, dict[str, int]] = {}
        self.counts: Counter[tuple[str, str, str]] = Counter()
        self.refused: Counter[tuple[str, str]] = Counter()
        self._windows: dict[tuple[str, str], _Window] = {}
        self._clock = clock
        self._lock = threading.Lock()

    def set_quota(self, bucket: str, limit: int, *, user: str | None = None, plan: str | None = None) -> None:
        """A bucket's quota for one user (enforced even while limits are off), or for a plan's users."""
        if bucket not in BUCKETS:
            raise bad_request(f"bucket must be one of {list(BUCKETS)}, not {bucket!r}")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise bad_request("a quota is a number of requests >= 0")
        with self._lock:
            if user is not None:
                self.user_quotas.setdefault(user, {})[bucket] = limit
            else:
                name = plan or "free"
                if name not in self.plans:
                    raise bad_request(f"plan must be one of {list(self.plans)}, not {name!r}")
                self.plans[name] = Quota(**{**vars(self.plans[name]), bucket: limit})

    def reset(self) -> None:
        """Forget per-user quotas, windows and counts (plans keep their quotas)."""
        with self._lock:
            self.user_quotas.clear()
            self._windows.clear()
            self.counts.clear()
            self.refused.clear()

    def counted(self) -> tuple[dict[tuple[str, str, str], int], dict[tuple[str, str], int]]:
        """A copy of `counts` and `refused`."""
        with self._lock:
            return dict(self.counts), dict(self.refused)

    def count(self, caller: str | None = None, bucket: str | None = None, route: str | None = None) -> int:
        """Requests counted, summed over what is not named (e.g. `count(caller="alice", bucket="api")`)."""
        with self._lock:
            return sum(
                n
                for (c, b, r), n in self.counts.items()
                if caller in (None, c) and bucket in (None, b) and route in (None, r)
            )

    def take(self, caller: str, plan: str, bucket: str, route: str) -> Usage | None:
        """Count one request; its usage when the caller is limited (None: unlimited); 429 when spent."""
        with self._lock:
            self.counts[(caller, bucket, route)] += 1
            own = self.user_quotas.get(caller, {})
            if bucket == OTHER:
                return None
            if bucket in own:
                limit = own[bucket]
            elif self.enabled:
                limit = self.plans[plan].of(bucket)
            else:
                return None
            now = self._clock()
            window = self._windows.get((caller, bucket))
            if window is None or now >= window.ends:
                window = self._windows[(caller, bucket)] = _Window(now + WINDOW_S)
            reset_s = max(1, math.ceil(window.ends - now))
            if window.used >= limit:
                self.refused[(caller, bucket)] += 1
                raise RateLimitExceeded(Usage(bucket, limit, 0, reset_s))
            window.used += 1
            return Usage(bucket, limit, limit - window.used, reset_s)
