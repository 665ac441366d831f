"""Upstream changes: a new revision of a watched model, or a new fine-tune of a watched base, becomes jobs.

`repo.content` updates of `refs/heads/main` on a watched repo (or a repo of a watched author), and new repos
whose card names a watched `base_model`, are planned at their pinned sha; every eligible BuildSpec (one per
format, listing its SMs) is queued once under its build key. Ignored: other refs (PR refs `refs/pr/N`, other
branches, tags), repos in the bot's namespace or holding its releases, and commits the bot made — so the
bot's own work never triggers it again.

A revision that changes no weights over the one released last gets no build: the publisher carries its
changed metadata files (tokenizer, chat template, generation config, licences) to each release as a PR
(`UpkeepPort`). Otherwise its jobs wait for the watch's cooldown (`cooldown_minutes`, the setting's unless the
watch sets its own): they are claimed only once that much time has passed with no newer push, and a newer
push cancels the jobs still waiting for an older revision, so a burst of pushes gives one build of the last.
A fine-tune of a base watched for demand (`handlers.demand`) ranks the base's fine-tunes again instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from builders.spec import BuildSpec, TaskGraph
from handlers import demand
from handlers.context import Context
from handlers.inputs import JobCosts
from handlers.router import HANDLED, IGNORED, Router
from state import Job, JobStatus, ReleaseStatus, Watch, WatchKind

router = Router()

MAIN = "refs/heads/main"
LIVE = (ReleaseStatus.PUBLISHED, ReleaseStatus.MERGED)
_PR_TITLE = re.compile(r"\(#(\d+)\)\s*$")


@router.register("repo.content", action="update")
def on_push(ctx: Context) -> str:
    """A push: only a new sha on `main` of a model repo matters."""
    hook = ctx.hook
    if hook.repo.type != "model":
        return IGNORED
    sha = next((r.new_sha for r in hook.updated_refs or () if r.ref == MAIN and r.new_sha), None)
    if sha is None:
        refs = ", ".join(r.ref for r in hook.updated_refs or ()) or "no refs"
        ctx.log.info("%s: %s updated, not main; ignored", ctx.repo, refs)
        return IGNORED
    return release_revision(ctx, ctx.repo, sha)


@router.register("repo", action="create")
def on_new_repo(ctx: Context) -> str:
    """A new model repo: a release only if its card already names a watched base model."""
    hook = ctx.hook
    if hook.repo.type != "model" or hook.repo.head_sha is None:
        return IGNORED
    return release_revision(ctx, ctx.repo, hook.repo.head_sha)


def release_revision(ctx: Context, repo: str, sha: str) -> str:
    """Plan `repo` at `sha` and queue one job per eligible spec, unless the revision is not for the bot."""
    if _is_own_repo(ctx, repo):
        ctx.log.info("%s is one of the bot's own repos; ignored", repo)
        return IGNORED
    watch = find_watch(ctx, repo, sha)
    if watch is None:
        ctx.log.info("%s is not watched; ignored", repo)
        return IGNORED
    if _is_own_commit(ctx, repo, sha):
        ctx.log.info("%s@%s is the bot's own commit; ignored", repo, sha[:12])
        return IGNORED
    if watch.demand and watch.kind is WatchKind.BASE_MODEL:
        ranking = demand.rank_and_build(ctx, watch, enqueue_specs)
        ctx.log.info("%s: fine-tunes of %s ranked again (%d)", repo, watch.target, len(ranking))
        return HANDLED
    previous = released_revision(ctx, repo)
    if previous is not None and previous != sha and ctx.upkeep is not None:
        done = ctx.upkeep.metadata_only(repo, previous, sha)
        if done is not None:
            ctx.log.info("%s@%s changes no weights over %s: %s", repo, sha[:12], previous[:12], done)
            return HANDLED
    eligibility = ctx.planner.eligibility(repo, sha)
    if eligibility.refused:
        ctx.log.info("%s@%s: nothing to build: %s", repo, sha[:12], eligibility.refused)
        return HANDLED
    off = f"the watch on {watch.target}" if watch.kv_cache == "none" else None
    specs = ctx.planner.specs(eligibility, formats=watch.formats, sms=watch.sms, kv_cache_off=off)
    queued = enqueue_specs(ctx, repo, specs, eligibility.jobs, not_before=cooldown_end(ctx, repo, sha, watch))
    _cancel_waiting(ctx, repo, sha)
    ctx.log.info("%s@%s: %d eligible build(s), %d new", repo, sha[:12], len(specs), len(queued))
    return HANDLED


def enqueue_specs(
    ctx: Context,
    repo: str,
    specs: Iterable[BuildSpec],
    jobs: JobCosts | None,
    not_before: datetime | None = None,
) -> list[Job]:
    """Queue each spec under its build key (an existing key is left alone), with its task graph planned now
    (each SM's queue and, on Hugging Face Jobs, its flavour and estimate: `jobs`); returns the jobs made now.

    The executor hears of a new job from the store's change listeners and sends what the graph says; one
    with `not_before` waits until then (its upstream's cooldown)."""
    made = []
    for spec in specs:
        label = f"{spec.format} @ {str(spec.revision)[:12]}"
        graph = (
            TaskGraph.of(spec, jobs.names, jobs.quantize_usd.get(spec.format), jobs.engine_usd)
            if jobs
            else TaskGraph.of(spec)
        )
        job, created = ctx.store.jobs.enqueue(
            spec.key(),
            spec.model_dump(mode="json"),
            repo=repo,
            label=label,
            source_event_id=ctx.event.id,
            plan=graph.model_dump(mode="json"),
            not_before=not_before,
        )
        if created:
            made.append(job)
    return made


def cooldown_end(ctx: Context, repo: str, sha: str, watch: Watch | None) -> datetime | None:
    """When a build of `repo` at `sha` may start: the watch's cooldown (else the setting's) after the commit
    was made; None when that time has passed or there is no cooldown."""
    minutes = ctx.options.cooldown_minutes
    if watch is not None and watch.cooldown_minutes is not None:
        minutes = watch.cooldown_minutes
    if minutes <= 0:
        return None
    commits = ctx.hub.list_commits(repo, revision=sha)
    pushed = commits[0].created_at if commits else datetime.now(UTC)
    end: datetime = pushed + timedelta(minutes=minutes)
    return end if end > datetime.now(UTC) else None


def released_revision(ctx: Context, repo: str) -> str | None:
    """The upstream revision of `repo`'s newest build when that build is on a release's `main`; None when
    there is none, or a newer one is still on its way (then a new revision is built, not patched)."""
    newest = next(
        (
            j
            for j in ctx.store.jobs.list(repo=repo, newest_first=True, limit=20)
            if j.status is not JobStatus.CANCELLED
        ),
        None,
    )
    if newest is None or newest.status is not JobStatus.PUBLISHED:
        return None
    if not ctx.store.releases.find(build_key=newest.build_key, statuses=LIVE):
        return None  # its release awaits review, or was declined: a new revision is released in full
    revision = newest.spec.get("revision")
    return revision if isinstance(revision, str) else None


def _cancel_waiting(ctx: Context, repo: str, sha: str) -> None:
    """A newer revision is queued: builds still waiting for an older one's cooldown are dropped."""
    for job in ctx.store.jobs.list([JobStatus.QUEUED], repo=repo, limit=1000):
        if job.spec.get("revision") != sha and job.not_before is not None:
            ctx.store.lifecycle.cancel(job.id, f"superseded by {sha[:12]}, pushed within the cooldown")


def find_watch(ctx: Context, repo: str, sha: str) -> Watch | None:
    """The watch covering `repo`: on the repo itself, on its author, or on the base model its card names.

    Names match in any case, as on the Hub (`Org/Model` and `org/model` are one repo)."""
    watches = ctx.store.watches
    found = watches.find(WatchKind.REPO, repo) or watches.find(WatchKind.AUTHOR, repo.split("/")[0])
    if found is not None:
        return found
    bases = {w.target.lower(): w for w in watches.list(WatchKind.BASE_MODEL)}
    if not bases:
        return None
    card = ctx.hub.model_info(repo, revision=sha, files_metadata=True).card_data  # eligibility's read too
    named = card.to_dict().get("base_model") if card is not None else None
    for base in [named] if isinstance(named, str) else named or []:
        if isinstance(base, str) and base.lower() in bases:
            return bases[base.lower()]
    return None


def _is_own_repo(ctx: Context, repo: str) -> bool:
    owner = repo.split("/")[0].lower()
    return owner == ctx.options.namespace.lower() or bool(ctx.store.releases.find(repo_id=repo))


def _is_own_commit(ctx: Context, repo: str, sha: str) -> bool:
    """The bot authored the commit, or it merges one of the bot's pull requests on this repo.

    Asked of the Hub only where the bot's token may write (its own namespace, its organisations): elsewhere
    the bot's commits reach `main` only through its pull requests, and a repo with one is the bot's own
    (`_is_own_repo`). So a push to a watched repo costs no extra request."""
    if not ctx.options.may_write(repo.split("/")[0]):
        return False
    commits = ctx.hub.list_commits(repo, revision=sha)
    if not commits:
        return False
    head = commits[0]
    if any(ctx.options.is_bot(author) for author in head.authors or []):
        return True
    merged = _PR_TITLE.search(head.title or "")
    return bool(merged and ctx.store.releases.find(repo_id=repo, pr_number=int(merged.group(1))))
