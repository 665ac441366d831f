"""The publish step: built jobs become releases, one at a time, in a thread of its own.

It claims the oldest built job (publishing, leased; the lease is renewed while the publisher works), runs
the publisher on the build's output and records the release it made (or found). A failure leaves the job
to `bot.retries`: when the Hub was down or busy the job waits, built, and is published again after
a backoff (until the transient deadline); a refused card or no write access fails it with the reason. It
hears of newly built jobs from the store's change listeners, and looks every few seconds anyway.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from bot.errors import QuantbotError
from bot.publishing.publisher import Approval, PublishResult
from bot.retries import Retries, cause_of, retry_after_s
from state import BuildChange, GuardFailed, Job, JobStatus, ReleaseKind, ReleaseStatus, Store, WatchKind

log = logging.getLogger(__name__)

SWEEP_S = 5.0


class _Built(BaseModel):
    """What the publish step reads of a job's spec: where its build left the output."""

    model_config = ConfigDict(extra="ignore")

    output_dir: Path


class Publishes(Protocol):
    """What the publish step needs of a publisher (`bot.publishing.publisher.Publisher`)."""

    def publish(self, build_dir: Path, *, approval: Approval | None = None) -> PublishResult: ...


class PublishStep:
    """Publishes built jobs with `publisher`, or with `release` where the build is not on this machine."""

    def __init__(
        self,
        store: Store,
        publisher: Publishes | None,
        *,
        owner: str,
        lease_s: float,
        retries: Retries,
        release: Callable[[Job, Approval | None], PublishResult] | None = None,
    ) -> None:
        """`release(job, approval)` makes the release of a built job (default: the publisher on the build's
        output dir; a fanned-out build has none on this machine and brings its own)."""
        self.store = store
        self.publisher = publisher
        self.release = release or self._publish_output
        self.owner = owner
        self.lease_s = lease_s
        self.retries = retries
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._unlisten: Callable[[], None] | None = None

    def start(self) -> PublishStep:
        self._stopping.clear()
        self._unlisten = self.store.changes.listen(self._on_change)
        self._thread = threading.Thread(target=self._loop, name="quantbot-publish", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float) -> None:
        """Stop after the publish in hand (if that outlasts `timeout`, its lease lapses and it is retried)."""
        self._stopping.set()
        self._wake.set()
        if self._unlisten is not None:
            self._unlisten()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _on_change(self, change: BuildChange) -> None:
        if change.moved and change.status is JobStatus.BUILT:
            self._wake.set()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                job = self.store.lifecycle.claim_publish(self.owner, self.lease_s)
            except Exception:
                log.exception("claiming a job to publish failed")
                job = None
            if job is None:
                self._wake.wait(SWEEP_S)
                self._wake.clear()
                continue
            self.publish(job)

    def publish(self, job: Job) -> None:
        """Publish one built job (already claimed: publishing) and record the release it made."""
        keep_alive = threading.Event()
        beats = threading.Thread(target=self._keep_lease, args=(job.id, keep_alive), daemon=True)
        beats.start()
        try:
            result = self.release(job, self._approval(job.repo))
        except Exception as e:  # the Hub's (it waits), permanent (it fails), or a bug (retried, bounded)
            error = str(e) if isinstance(e, QuantbotError) else f"{type(e).__name__}: {e}"
            if not isinstance(e, QuantbotError):
                log.exception("publishing job %d failed", job.id)
            self._failed(job, error, e)
        else:
            self._record_release(job, result)
            try:
                self.store.lifecycle.finish_publish(job.id, self.owner, result.message)
            except GuardFailed as e:  # cancelled while it published: the release stands, the job says so
                log.warning("job %d was published, but %s", job.id, e)
                return
            log.info("job %d published: %s (%s)", job.id, result.url, result.status.value)
        finally:
            keep_alive.set()
            beats.join()

    def _publish_output(self, job: Job, approval: Approval | None) -> PublishResult:
        if self.publisher is None:
            raise RuntimeError("this publish step has no publisher for a build's output")
        return self.publisher.publish(_Built.model_validate(job.spec).output_dir, approval=approval)

    def _failed(self, job: Job, error: str, failure: Exception) -> None:
        """The policy decides (`bot.retries`): the Hub's failure waits, built; anything else fails the job."""
        try:
            self.retries.publish_failed(job, self.owner, error, cause_of(failure), retry_after_s(failure))
        except GuardFailed as e:  # cancelled or requeued meanwhile: the store already says what happened
            log.warning("job %d: the failed publish was not recorded: %s", job.id, e)

    def _keep_lease(self, job_id: int, done: threading.Event) -> None:
        while not done.wait(self.lease_s / 4):
            try:
                self.store.jobs.heartbeat(job_id, self.owner, self.lease_s)
            except GuardFailed:
                return

    def _record_release(self, job: Job, result: PublishResult) -> None:
        status = ReleaseStatus.PUBLISHED if result.status is ReleaseStatus.MERGED else result.status
        pr_number = result.pr_number if result.kind is ReleaseKind.PR else None
        releases = self.store.releases
        known = releases.find(build_key=job.build_key, repo_id=result.repo_id, pr_number=pr_number)
        if not known:
            releases.record(
                build_key=job.build_key,
                repo_id=result.repo_id,
                kind=result.kind,
                url=result.url,
                pr_number=pr_number,
                job_id=job.id,
                status=status,
            )
        moves = [(r, {r.status}, status) for r in known if r.status is not status]
        for num in result.superseded:
            moves += [
                (old, {ReleaseStatus.OPEN}, ReleaseStatus.SUPERSEDED)
                for old in releases.find(repo_id=result.repo_id, pr_number=num)
            ]
        for release, sources, target in moves:
            try:
                releases.set_status(release.id, sources, target)
            except (GuardFailed, ValueError) as e:  # moved by a review meanwhile, or no such edge
                log.info("release %d stays %s: %s", release.id, release.status.value, e)

    def _approval(self, upstream: str) -> Approval | None:
        """The watch's approval mode for this upstream, else None (the publisher's configured default)."""
        watches = self.store.watches
        watch = watches.find(WatchKind.REPO, upstream) or watches.find(
            WatchKind.AUTHOR, upstream.split("/")[0]
        )
        value = watch.approval.value if watch is not None else None
        return "auto" if value == "auto" else "approval" if value == "approval" else None
