"""Published releases verified again: a release that loaded last month may not load in next month's runtime.

Every `reverify_days`, and whenever the runtime table (runtimes.yaml) changes, each release on a repo's
`main` is checked again as its users get it: downloaded by repo id at the commit `main` points to now, its
files against its manifest's sha256, `AutoConfig`, the table's detection rules for its format, and the release
read beside its upstream under the transformers line of each runtime that loads it (`python -m builders
verify`, the same worker as after upload); and the invariance gate the publisher ran before upload
(bot/publishing/gate.py) on the files at that commit against the upstream at the manifest's pinned revision:
a tokenizer file or chat template edited on the Hub after publishing, or a config.json that is no longer the
upstream's, fails it. A release that no longer holds gets one discussion on its repo saying what failed,
with the runtime table it was checked under; the same failures are never reported twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath

from bot.eligibility.matrices.runtimes import RUNTIMES_FILE
from bot.errors import HubError
from bot.hub import Hub
from bot.publishing.gate import gate_problems
from bot.publishing.upstream import Upstream
from bot.publishing.usage import is_chat_model
from bot.publishing.verification import request_for, run_verification
from bot.settings import Settings
from builders.invariance import dominant_dtype, is_licence_file
from builders.spec import MANIFEST_NAME, Check, Manifest, VerificationRecord
from state import Release, ReleaseKind, ReleaseStatus, Store
from state.models import utcnow

log = logging.getLogger(__name__)

TITLE = "This release no longer passes its checks"
GATE = "invariance gate"
# What a release repo holds besides its build's files: the card the publisher writes and the Hub's own
# .gitattributes (and the upstream's licence files, `is_licence_file`). The gate judges the rest, as it judged
# the build's folder.
_NOT_BUILT = frozenset({"README.md", ".gitattributes"})
_LIVE = (ReleaseStatus.PUBLISHED, ReleaseStatus.MERGED)


def table_fingerprint() -> str:
    """Which runtime table releases are checked under: the first 16 hex of runtimes.yaml's sha256."""
    return hashlib.sha256(RUNTIMES_FILE.read_bytes()).hexdigest()[:16]


def marker(failures: list[str]) -> str:
    return f"<!-- quantbot:reverify {json.dumps(sorted(failures))} -->"


class Reverifier:
    """Re-verifies the releases that are due and reports the ones that no longer hold."""

    def __init__(self, settings: Settings, hub: Hub, store: Store, bot_name: str) -> None:
        self.settings = settings
        self.hub = hub
        self.store = store
        self.bot_name = bot_name
        self.web = settings.hf_endpoint.rstrip("/")

    def sweep(self, now: datetime | None = None) -> int:
        """Verify every live release last verified `reverify_days` ago or under another runtime table; how
        many were checked."""
        if self.settings.reverify_days <= 0:
            return 0
        now, table = now or utcnow(), table_fingerprint()
        due = now - timedelta(days=self.settings.reverify_days)
        checked = 0
        for release in self._live():
            fresh = release.verified_at is not None and release.verified_at > due
            if fresh and release.verified_table == table:
                continue
            try:
                self.check(release, table, now)
            except HubError as e:  # the Hub is down or the repo is gone: the next sweep tries again
                log.warning("re-verification of %s skipped: %s", release.repo_id, e)
                continue
            checked += 1
        return checked

    def check(self, release: Release, table: str, now: datetime) -> VerificationRecord:
        """Verify one release as published now, remember it, and report a failure once."""
        repo = release.repo_id
        commit = self.hub.resolve_revision(repo)
        manifest = Manifest.model_validate(self.hub.read_json(repo, MANIFEST_NAME, revision=commit) or {})
        spec = manifest.require_spec()
        files = [s.rfilename for s in self.hub.model_info(repo, revision=commit).siblings or []]
        upstream = Upstream.from_hub(self.hub, str(spec.repo_id), str(spec.revision), endpoint=self.web)
        request = request_for(
            repo,
            commit,
            spec,
            endpoint=self.web,
            extra_files=[f for f in files if is_licence_file(f)],
            chat=is_chat_model(manifest),
            envs_dir=self.settings.runtime_envs_folder(),
            family=upstream.family(),
        )
        record = run_verification(self.settings, request)
        problems = self._gate(repo, commit, manifest, upstream, files)
        gate = [Check(name=GATE, ok=False, detail=p) for p in problems]
        record = record.model_copy(update={"ok": record.ok and not gate, "checks": [*record.checks, *gate]})
        log.info("re-verification of %s at %s: %s", repo, commit[:12], "ok" if record.ok else "failed")
        self.store.releases.verified(release.id, at=now, table=table, ok=record.ok)
        if not record.ok:
            self._report(repo, record, table)
        return record

    def _gate(
        self, repo: str, commit: str, manifest: Manifest, upstream: Upstream, files: list[str]
    ) -> list[str]:
        """The publisher's invariance gate on the release as it is at `commit`, against the upstream at the
        manifest's pinned revision: its build's files but the weights downloaded into a folder of their own,
        and the weights' headers read on the Hub (the verification worker downloads them whole already)."""
        built = [f for f in files if f not in _NOT_BUILT and not is_licence_file(f)]
        weights = [f for f in built if f.endswith(".safetensors")]

        def weights_dtype(folder: str) -> str | None:
            inside = [f for f in weights if PurePosixPath(f).parent == PurePosixPath(folder)]
            return dominant_dtype(t for f in inside for t in self.hub.safetensors_tensors(repo, f, commit))

        with tempfile.TemporaryDirectory(prefix="quantbot-reverify-") as folder:
            release = self.hub.snapshot(repo, commit, [f for f in built if f not in weights], Path(folder))
            return gate_problems(self.hub, release, manifest, upstream, weights_dtype)

    def _live(self) -> list[Release]:
        """The newest live release of each repo that is the bot's to check (on `main`, by the bot)."""
        newest: dict[str, Release] = {}
        for release in self.store.releases.find(statuses=_LIVE):
            if release.kind is ReleaseKind.REPO or release.status is ReleaseStatus.MERGED:
                newest[release.repo_id.lower()] = release
        return list(newest.values())

    def _report(self, repo: str, record: VerificationRecord, table: str) -> None:
        """One discussion per set of failures: the same failures found again are not reported again."""
        failures = [f"{c.name}: {c.detail}" for c in record.failures]
        mark = marker([c.name for c in record.failures])
        for discussion in self.hub.discussions(repo, author=self.bot_name):
            if discussion.title != TITLE:
                continue
            first = next(
                (e for e in self.hub.discussion(repo, discussion.num).events if e.type == "comment"), None
            )
            if mark in (getattr(first, "content", None) or ""):
                return
        listed = "\n".join(f"- **{line.split(': ', 1)[0]}**: {line.split(': ', 1)[-1]}" for line in failures)
        text = (
            f"Checked again as published (commit `{record.revision[:12]}`, downloaded by repo id, under the "
            f"runtime table `{table}`), this release no longer holds:\n\n{listed}\n\n"
            "It passed these checks when it was published: the runtimes or their transformers lines may have "
            "moved since, or the files on `main` changed. I report each set of failures once.\n\n" + mark
        )
        self.hub.open_discussion(repo, TITLE, text)
        log.warning("%s no longer passes its checks: %s", repo, "; ".join(failures))
