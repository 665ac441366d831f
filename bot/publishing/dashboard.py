"""A dashboard per watched upstream: one discussion on the upstream's repo that says where its releases stand.

For each format the watch asks for: planned (eligible, not built yet), waiting (for the upstream's cooldown),
queued, running, published (with links), open for review, held (the gate or the verification stopped it),
declined, failed, or refused (with the planner's reasons, per SM), and the command for the next step; then the
metadata-only updates carried as pull requests. A watch opts in (`watch add … --dashboard`); only watches of
one repo have a dashboard (an author's or a base model's watch would open one on every repo it covers).

The discussion is opened once and edited in place, never reposted: its first comment is the dashboard, its
text is kept in the store, and the Hub is written only when the text changes. The text holds no clock but
the times it names (a cooldown's end), so an unchanged state never edits it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from bot.errors import HubError
from bot.hub import Hub
from bot.naming import display_format
from bot.publishing.metadata_update import MetadataUpdates
from builders.spec import FORMATS
from handlers.inputs import Eligibility
from state import Job, JobStatus, Release, ReleaseStatus, Store, WatchKind
from state.models import utcnow

log = logging.getLogger(__name__)

TITLE = "Quantized releases of this model: where they stand"
_HELD = ("held by the invariance gate", "verification after upload failed")


@dataclass(frozen=True)
class Row:
    """One format's line on the dashboard."""

    format: str
    sms: str
    state: str
    detail: str
    next_step: str

    def markdown(self) -> str:
        cells = (f"**{display_format(self.format)}**", self.sms, self.state, self.detail, self.next_step)
        return "| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") or "—" for c in cells) + " |"


class UpstreamDashboards:
    """Renders each opted-in watch's dashboard and keeps its discussion in step."""

    def __init__(
        self,
        hub: Hub,
        store: Store,
        eligibility: Callable[[str, str], Eligibility],
        upkeep: MetadataUpdates,
        endpoint: str,
    ) -> None:
        self.hub = hub
        self.store = store
        self.eligibility = eligibility
        self.upkeep = upkeep
        self.web = endpoint.rstrip("/")
        self._plans: dict[tuple[str, str], Eligibility] = {}  # (upstream, sha) → its eligibility

    def refresh(self) -> int:
        """Open or edit every opted-in dashboard whose text changed; how many discussions were written."""
        written = 0
        for watch in self.store.watches.list(WatchKind.REPO):
            if not watch.dashboard:
                continue
            try:
                written += self.sync(watch.target, tuple(watch.formats))
            except HubError as e:  # the next refresh tries again
                log.warning("dashboard of %s not refreshed: %s", watch.target, e)
        return written

    def sync(self, upstream: str, formats: tuple[str, ...] = ()) -> int:
        """Bring one upstream's dashboard discussion in line with `render`; 1 if it was written."""
        text = self.render(upstream, formats)
        saved = self.store.dashboards.find(upstream)
        if saved is not None and saved.text == text:
            return 0
        if saved is None:
            opened = self.hub.open_discussion(upstream, TITLE, text)
            self.store.dashboards.save(upstream, opened.num, text)
            log.info("dashboard of %s opened: discussion #%d", upstream, opened.num)
            return 1
        details = self.hub.discussion(upstream, saved.discussion_num)
        first = next(e for e in details.events if e.type == "comment")
        self.hub.edit_comment(upstream, saved.discussion_num, first.id, text)
        self.store.dashboards.save(upstream, saved.discussion_num, text)
        return 1

    def render(self, upstream: str, formats: tuple[str, ...] = ()) -> str:
        """The dashboard's text for `upstream` now (the watch's `formats`, all when empty)."""
        head = self.hub.resolve_revision(upstream)
        plan = self._plan(upstream, head)
        latest: dict[str, Job] = {}
        for job in self.store.jobs.list(repo=upstream, newest_first=True, limit=200):
            fmt = job.spec.get("format")
            if isinstance(fmt, str) and fmt not in latest and job.status is not JobStatus.CANCELLED:
                latest[fmt] = job
        rows = [
            self._row(fmt, plan, latest.get(fmt), head) for fmt in FORMATS if not formats or fmt in formats
        ]
        lines = [
            f"# Quantized releases of `{upstream}`",
            "",
            f"Upstream `main` is at [`{head[:12]}`]({self.web}/{upstream}/commit/{head}). "
            "This comment is edited in place as builds move; commands go in a new comment below.",
            "",
            "| format | SMs | state | detail | next step |",
            "|---|---|---|---|---|",
            *(row.markdown() for row in rows),
        ]
        updates = self._metadata_updates(upstream)
        if updates:
            lines += ["", "## Metadata-only updates (no rebuild)", "", *updates]
        if plan.refused:
            lines += ["", f"Nothing is built for this model: {plan.refused}."]
        return "\n".join(lines) + "\n"

    def _plan(self, upstream: str, head: str) -> Eligibility:
        key = (upstream, head)
        if key not in self._plans:
            self._plans[key] = self.eligibility(upstream, head)
        return self._plans[key]

    def _row(self, fmt: str, plan: Eligibility, job: Job | None, head: str) -> Row:
        sms = ", ".join(f"sm{sm}" for sm in plan.eligible.get(fmt, [])) or "—"
        if job is None:
            if fmt not in plan.eligible:
                reasons = "; ".join(dict.fromkeys(plan.skip_reasons(fmt))) or "not eligible"
                return Row(fmt, "—", "refused", reasons, "—")
            return Row(fmt, sms, "planned", "not built yet", f"`/quantize {fmt}`")
        spec = job.spec
        sms = ", ".join(f"sm{sm}" for sm in spec.get("target_sms") or []) or sms
        revision = str(spec.get("revision") or "")
        built_from = f"`{revision[:12]}`" + ("" if revision == head else f" (upstream now `{head[:12]}`)")
        if job.status is JobStatus.QUEUED:
            if job.not_before is not None and job.not_before > utcnow():
                until = f"{job.not_before:%Y-%m-%d %H:%M} UTC"
                return Row(
                    fmt, sms, "waiting", f"{built_from} until {until} (cooldown)", f"`/quantize {fmt} --now`"
                )
            return Row(fmt, sms, "queued", built_from, "—")
        if job.status in (JobStatus.RUNNING, JobStatus.BUILT, JobStatus.PUBLISHING):
            # the stage, not the percentage: the discussion is edited as the build moves on, not each tick
            stage = (job.progress_message or job.status.value).partition(": ")[0]
            return Row(fmt, sms, "running", f"{built_from}: {stage}", "—")
        if job.status is JobStatus.FAILED:
            return Row(fmt, sms, "failed", f"{built_from}: {_one_line(job.error or '')}", "`/retry`")
        return self._released(fmt, sms, job, built_from)

    def _released(self, fmt: str, sms: str, job: Job, built_from: str) -> Row:
        release: Release | None = max(
            self.store.releases.find(build_key=job.build_key), key=_id, default=None
        )
        message = job.progress_message or ""
        if release is None:
            return Row(fmt, sms, "done", f"{built_from}: {_one_line(message)}", "—")
        link = f"[{release.repo_id}]({release.url})"
        if any(message.startswith(h) for h in _HELD):
            return Row(
                fmt, sms, "held", f"{built_from}: {_one_line(message)} · {link}", "see the pull request"
            )
        if release.status in (ReleaseStatus.PUBLISHED, ReleaseStatus.MERGED):
            return Row(fmt, sms, "published", f"{link} from {built_from}", "—")
        if release.status is ReleaseStatus.OPEN:
            return Row(fmt, sms, "open for review", f"{link} from {built_from}", "a maintainer merges it")
        words = {ReleaseStatus.DECLINED: "declined", ReleaseStatus.SUPERSEDED: "superseded"}
        return Row(
            fmt, sms, words.get(release.status, release.status.value), f"{link} from {built_from}", "—"
        )

    def _metadata_updates(self, upstream: str) -> list[str]:
        lines = []
        for repo in self.upkeep.releases(upstream):
            try:
                prs = self.upkeep.metadata_prs(repo)
            except HubError as e:  # a release repo deleted or renamed since: the rest of the dashboard holds
                log.warning("metadata updates of %s not read: %s", repo, e)
                continue
            for pr in prs:
                lines.append(
                    f"- [{repo}#{pr.num}]({pr.url}): `{pr.revision[:12]}`'s {pr.files} ({pr.status})"
                )
        return lines


def _id(release: Release) -> int:
    return release.id


def _one_line(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
