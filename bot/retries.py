"""Transient is never terminal: the one policy for a build or publish step that failed, on every executor.

A step fails for one of three kinds of cause (`Cause`):

- the Hub's (`HUB`): a 5xx, a 429, a timeout, a connection refused or dropped, an Xet CAS error, or a
  builder's `hub_unavailable` (a download or a calibration read). The step waits, its job back in the queue
  (a build) or built (a publish, the build kept), and is tried again after a capped exponential backoff with
  jitter (`build_backoff_s` / `publish_backoff_s` doubling, at most `transient_backoff_max_s`; never before a
  429's `Retry-After` or `RateLimit` reset), until `transient_deadline_h` has passed since the step's first
  such failure. Only then does the job fail, with the reason, the time the Hub failed it and `/retry`;
- an unexpected error (`OTHER`, a bug or a worker's crash): the same waits, `build_retries` /
  `publish_retries` times, as a fix deployed meanwhile then takes effect;
- anything else (`PERMANENT`: not found, gated, a refused card, a build that failed on its own): the job
  fails at once with the reason.

The executors tell this module how a step ended (`Retries.build_failed`, `Retries.publish_failed`) and it
moves the job through `state.lifecycle`; the status page and the job's replies show the wait
(`state.lifecycle.retrying`). A job waiting is claimed again once its time has come.
"""

from __future__ import annotations

import enum
import logging
import random
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
from huggingface_hub import errors as hf_errors

from bot.errors import HubError, QuantbotError, transient
from bot.settings import Settings
from builders.spec import Manifest
from state import Job, Store
from state.lifecycle import Wait
from state.models import utcnow

log = logging.getLogger(__name__)

# Builder failure kinds (a manifest's `errors[0].kind`) the Hub caused: builders/fetch.py, calibration.py.
HUB_KINDS = frozenset({"hub_unavailable"})
HUB_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_RATELIMIT_RESET = re.compile(r";\s*t=(\d+)")


class Cause(enum.Enum):
    """Why a step failed, as far as retrying goes."""

    HUB = "the Hub"
    OTHER = "an unexpected error"
    PERMANENT = "permanent"


def cause_of(error: BaseException) -> Cause:
    """The cause of an exception a step raised (quantbot's typed errors, or the client's own)."""
    if isinstance(error, QuantbotError):
        if isinstance(error, HubError) and transient(error):
            return Cause.HUB
        return Cause.PERMANENT
    if isinstance(error, httpx.TransportError | TimeoutError | ConnectionError):
        return Cause.HUB
    if isinstance(error, hf_errors.HfHubHTTPError):
        status = getattr(error.response, "status_code", None)
        return Cause.HUB if status in HUB_STATUSES else Cause.PERMANENT
    return Cause.OTHER


def cause_of_manifest(manifest: Manifest | None) -> Cause:
    """The cause of a build that ended with this manifest (None: the worker died without one)."""
    errors = manifest.errors if manifest else []
    return Cause.HUB if errors and errors[0].kind in HUB_KINDS else Cause.PERMANENT


def retry_after_s(error: BaseException | None) -> float:
    """Seconds the Hub asked to wait (a 429's `Retry-After`, or its `RateLimit` reset `t=`); 0 if none."""
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return 0.0
    asked = headers.get("Retry-After")
    if asked is not None and asked.strip().isdigit():
        return float(asked)
    reset = _RATELIMIT_RESET.search(headers.get("RateLimit") or "")
    return float(reset.group(1)) if reset else 0.0


def backoff_s(first_s: float, most_s: float, tries: int, jitter: float = 1.0) -> float:
    """The wait after the `tries`-th failure: doubling from `first_s`, at most `most_s`, then between half
    and all of it by `jitter` (in [0, 1]), so the jobs one outage failed do not all come back at once."""
    return min(first_s * 2 ** (tries - 1), most_s) * (0.5 + jitter / 2)


class Retries:
    """Moves a job whose build or publish failed: waiting for another try, or failed with the reason."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        clock: Callable[[], datetime] = utcnow,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.jitter = jitter

    @property
    def deadline(self) -> timedelta:
        return timedelta(hours=self.settings.transient_deadline_h)

    def build_failed(
        self,
        job: Job,
        owner: str,
        error: str,
        manifest: dict[str, Any] | None,
        cause: Cause,
        asked_s: float = 0.0,
    ) -> Job:
        """A running job's build failed: it waits in the queue, or fails (`GuardFailed` if it was moved
        meanwhile, as every move)."""
        lifecycle = self.store.lifecycle
        wait = self.wait(job, cause, self.settings.build_backoff_s, self.settings.build_retries, asked_s)
        if wait is None:
            return lifecycle.fail_build(job.id, owner, self._final(job, error, cause), manifest)
        moved = lifecycle.defer_build(job.id, owner, error, wait)
        log.warning("job %d: the build failed (%s): %s; %s", job.id, cause.value, error, wait.words)
        return moved

    def publish_failed(self, job: Job, owner: str, error: str, cause: Cause, asked_s: float = 0.0) -> Job:
        """A publishing job's publish failed: it waits, built, or fails (`GuardFailed` if it was moved)."""
        lifecycle = self.store.lifecycle
        wait = self.wait(job, cause, self.settings.publish_backoff_s, self.settings.publish_retries, asked_s)
        if wait is None:
            return lifecycle.fail_publish(job.id, owner, self._final(job, error, cause))
        moved = lifecycle.defer_publish(job.id, owner, error, wait)
        log.warning("job %d: the publish failed (%s): %s; %s", job.id, cause.value, error, wait.words)
        return moved

    def wait(self, job: Job, cause: Cause, first_s: float, retries: int, asked_s: float = 0.0) -> Wait | None:
        """When the failed step tries again, or None when it should fail now."""
        if cause is Cause.PERMANENT:
            return None
        now, tries = self.clock(), job.transient_tries + 1  # the failures of this step so far
        since = job.transient_since or now
        if cause is Cause.HUB and now - since >= self.deadline:
            return None
        if cause is Cause.OTHER and tries > retries:
            return None
        delay = max(backoff_s(first_s, self.settings.transient_backoff_max_s, tries, self.jitter()), asked_s)
        retry_at = now + timedelta(seconds=delay)
        if cause is Cause.HUB:
            retry_at = min(retry_at, since + self.deadline)  # one last try at the deadline
        return Wait(retry_at=retry_at, since=since, attempt=tries + 1)

    def _final(self, job: Job, error: str, cause: Cause) -> str:
        if cause is Cause.PERMANENT:
            return error
        tries = job.transient_tries + 1
        since = (job.transient_since or self.clock()).strftime("%Y-%m-%d %H:%M UTC")
        why = "the Hub kept failing" if cause is Cause.HUB else "it kept failing"
        return f"{error} ({why} since {since}, {tries} attempts; type `/retry` to try again)"
