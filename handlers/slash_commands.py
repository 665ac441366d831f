"""Slash commands in discussions and PRs: `/quantize`, `/formats`, `/status`, `/cancel`, `/retry`, `/help`.

A comment is read once (the store keys commands by comment id), answered with one reply comment that the bot
then edits in place as the builds it started progress (`handlers.replies`). Anyone may ask for `/formats`,
`/status` and `/help`; starting, cancelling or retrying builds is for the repo's owner, the members of the
org that owns it (asked of the Hub), the configured maintainers and the allowlist. Everyone is rate limited.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bot.errors import HubError
from builders.spec import BuildSpec
from handlers import budget
from handlers.context import Context, Options
from handlers.inputs import Eligibility
from handlers.replies import close, job_line, reply_state
from handlers.router import HANDLED, IGNORED, REFUSED, Router
from handlers.slash_syntax import Command, help_text, parse_command
from handlers.upstream import LIVE, cooldown_end, enqueue_specs, find_watch
from state import CANCELLABLE, RETRYABLE, CommandStatus, GuardFailed, JobStatus

router = Router()

MAX_STORED_TEXT = 2000
BUILD_COMMANDS = frozenset({"quantize", "cancel", "retry"})


@dataclass
class Answer:
    """What a command comes to: the reply's opening text and the builds the reply then follows."""

    intro: str
    build_keys: list[str] = field(default_factory=list)


@router.register("discussion.comment", action="create")
def on_comment(ctx: Context) -> str:
    return _from_hook(ctx)


@router.register("discussion", action="create")
def on_new_discussion(ctx: Context) -> str:
    """The opening post of a new discussion or PR is a comment too."""
    return _from_hook(ctx)


def _from_hook(ctx: Context) -> str:
    comment, discussion = ctx.hook.comment, ctx.hook.discussion
    if comment is None or discussion is None or comment.hidden or not comment.content:
        return IGNORED
    return handle(ctx, discussion.num, comment.id, comment.content)


def handle(ctx: Context, num: int, comment_id: str, text: str) -> str:
    """Answer one comment, if it is a command for the bot and nobody answered it before."""
    options = ctx.options
    command = parse_command(text, options.bot_name, options.formats)
    if command is None:
        return IGNORED
    author = _author(ctx, num, comment_id)
    if author is None or options.is_bot(author):
        return IGNORED
    record, created = ctx.store.commands.record(
        repo=ctx.repo,
        discussion_num=num,
        comment_id=comment_id,
        author=author,
        text=text[:MAX_STORED_TEXT],
        parsed={"name": command.name, "formats": list(command.formats), "sms": list(command.sms)},
    )
    unanswered = record.reply_comment_id is None and record.status in (
        CommandStatus.RECEIVED,
        CommandStatus.FAILED,
    )
    if not created and not unanswered:  # a retry after the Hub failed mid-answer goes on; a redelivery stops
        ctx.log.info("comment %s in %s#%d was answered before", comment_id, ctx.repo, num)
        return IGNORED
    given = ctx.store.commands.count_since(
        author, datetime.now(UTC) - timedelta(seconds=options.command_rate_window_s)
    )
    if given > options.command_rate_limit:
        note = f"rate limited ({given} commands in {options.command_rate_window_s}s)"
        if given == options.command_rate_limit + 1:  # say it once, then stay quiet
            _answer(ctx, record.id, num, Answer(_rate_limited(author, options)), CommandStatus.REFUSED, note)
        else:
            ctx.store.commands.update(record.id, status=CommandStatus.REFUSED, reason=note)
        return REFUSED
    if command.name in BUILD_COMMANDS and not may_build(ctx, author):
        answer = Answer(_refusal(ctx, author))
        _answer(ctx, record.id, num, answer, CommandStatus.REFUSED, f"{author} may not build here")
        return REFUSED
    answer = _RUN[command.name](ctx, command, author, num)
    _answer(ctx, record.id, num, answer, CommandStatus.REPLIED if answer.build_keys else CommandStatus.DONE)
    return HANDLED


def may_build(ctx: Context, user: str) -> bool:
    """The repo's owner, its org's members, the maintainers and the allowlist may start builds."""
    options = ctx.options
    if user in options.maintainers or user in options.allowlist:
        return True
    owner = ctx.repo.split("/")[0]
    if user == owner:
        return True
    members = ctx.hub.org_members(owner)
    return members is not None and user in members


# ------------------------------------------------------------------------------------------- commands


def _quantize(ctx: Context, command: Command, author: str, num: int) -> Answer:
    sha = ctx.hub.resolve_revision(ctx.repo)
    eligibility = ctx.planner.eligibility(ctx.repo, sha)
    where = f"`{ctx.repo}` at `{sha[:12]}`"
    if eligibility.refused:
        return Answer(f"@{author}, I can't build {where}: {eligibility.refused}")
    lines = []
    for fmt in command.formats:
        if fmt not in eligibility.eligible:
            reasons = "; ".join(eligibility.skip_reasons(fmt)[:2])
            lines.append(f"- `{fmt}` is not eligible: {reasons}")
    targets = sorted(eligibility.target_sms)
    lines += [
        f"- sm{sm} is not one of my target SMs ({_sms(targets)})" for sm in command.sms if sm not in targets
    ]
    if command.calib is not None and (refused := ctx.planner.calibration_refusal(command.calib)):
        return Answer(f"@{author}, I can't calibrate with `{command.calib}`: {refused}.")
    off = "/quantize --kv-cache none" if command.kv_cache == "none" else None
    specs = ctx.planner.specs(
        eligibility, formats=command.formats, sms=command.sms, kv_cache_off=off, calibration=command.calib
    )
    asked = ", ".join(f"**{f}**" for f in command.formats) or "every eligible format"
    calibrated = f", calibrated with `{command.calib}`" if command.calib else ""
    intro = f"@{author} asked for {asked} of {where}{calibrated}."
    notes = ["", *lines] if lines else []
    if not specs:
        return Answer("\n".join([intro, "", "Nothing to build.", *notes]))
    if refused := _over_budget(ctx, eligibility, specs):
        return Answer("\n".join([intro, "", f"Not started: {refused}.", *notes]))
    if command.now:
        waiting = [j for j in ctx.store.jobs.list([JobStatus.QUEUED], repo=ctx.repo) if j.not_before]
        for job in waiting:
            ctx.store.lifecycle.start_now(job.id)
        not_before = None
    else:
        not_before = cooldown_end(ctx, ctx.repo, sha, find_watch(ctx, ctx.repo, sha))
    enqueue_specs(ctx, ctx.repo, specs, eligibility.jobs, not_before=not_before)
    return Answer("\n".join([intro, *notes]), [spec.key() for spec in specs])


def _over_budget(ctx: Context, eligibility: Eligibility, specs: list[BuildSpec]) -> str | None:
    """Why these builds would pass the monthly Jobs budget, if they would (builds on Hugging Face Jobs)."""
    jobs, limit = eligibility.jobs, ctx.options.jobs_budget_usd
    if jobs is None or limit is None:
        return None
    estimate = sum(jobs.estimate(spec.format, spec.target_sms) for spec in specs)
    now = datetime.now(UTC)
    return budget.refusal(limit, ctx.store.tasks.spent_since(budget.month_start(now)), estimate, now)


def _formats(ctx: Context, command: Command, author: str, num: int) -> Answer:
    sha = ctx.hub.resolve_revision(ctx.repo)
    eligibility = ctx.planner.eligibility(ctx.repo, sha)
    if command.gpu is not None:
        sm = ctx.planner.gpu_sm(command.gpu)
        if sm is None:
            return Answer(
                f"@{author}, I don't know the GPU `{command.gpu}`; write its SM instead (`/formats --sm 89`)."
            )
        return _on_gpu(ctx, eligibility, sm, f"`{command.gpu}` (sm{sm})")
    if command.sms:
        return _on_gpu(ctx, eligibility, command.sms[0], f"sm{command.sms[0]}")
    if saved := _profile_gpu(ctx, author):
        return _on_gpu(
            ctx, eligibility, saved[1], f"the {saved[0]} on @{author}'s Hub profile (sm{saved[1]})"
        )
    head = f"Formats for `{ctx.repo}` at `{sha[:12]}` (policy: {eligibility.policy}):"
    if eligibility.refused:
        return Answer(f"{head}\n\nNone: {eligibility.refused}")
    eligible, jobs = eligibility.eligible, eligibility.jobs
    lines = []
    for fmt, sms in eligible.items():
        lines.append(
            f"- **{fmt}**: {_sms(sms)}"
            + (f" · runs with {eligibility.runs_with[fmt]}" if fmt in eligibility.runs_with else "")
            + (f" · ~${jobs.estimate(fmt, sms):.2f} as Jobs (estimate)" if jobs else "")
        )
        steps = eligibility.sm_steps.get(fmt, {})
        lines += [f"  - sm{sm}: {steps[sm]}" for sm in sms if sm in steps]
    lines = lines or ["- none"]
    skipped = [fmt for fmt in ctx.options.formats if fmt not in eligible]
    if skipped:
        lines += ["", "Not eligible:"]
        lines += [f"- `{fmt}`: {'; '.join(eligibility.skip_reasons(fmt)[:2])}" for fmt in skipped]
    if jobs:
        lines += ["", "Hugging Face Jobs flavours:"]
        lines += [f"- sm{sm}: {flavor}" for sm, flavor in sorted(jobs.flavors.items())]
        lines += ["", f"Estimated from {jobs.basis}."]
    return Answer("\n".join([head, "", *lines]))


def _profile_gpu(ctx: Context, author: str) -> tuple[str, int] | None:
    """The first GPU with a known SM among those `author` made public on their Hub profile."""
    try:
        gpus = ctx.hub.user_gpus(author)
    except HubError as e:  # a profile the Hub does not show: answer for every SM instead
        ctx.log.info("hardware of %s not read: %s", author, e)
        return None
    return next(((gpu, sm) for gpu in gpus if (sm := ctx.planner.gpu_sm(gpu)) is not None), None)


def _on_gpu(ctx: Context, eligibility: Eligibility, sm: int, where: str) -> Answer:
    """Which releases of the model (published, or planned) run on a GPU of `sm`, and in which runtime."""
    released = _released(ctx)
    head = f"On {where}, releases of `{ctx.repo}` at `{str(eligibility.revision)[:12]}`:"
    lines, none = [], []
    for fmt in ctx.options.formats:
        runtimes = ctx.planner.runs_on(fmt, sm)
        if not runtimes:
            none.append(f"`{fmt}`")
            continue
        if fmt in released:
            state = f"released: {released[fmt]}"
        elif fmt in eligibility.eligible:
            state = "planned (`/quantize " + fmt + "` builds it)"
        else:
            state = "; ".join(["not eligible", *eligibility.skip_reasons(fmt)[:1]])
        lines.append(f"- **{fmt}** runs with {', '.join(runtimes)} · {state}")
    if none:
        lines += ["", f"No runtime in my table runs {', '.join(none)} on sm{sm}."]
    return Answer("\n".join([head, "", *(lines or ["- none"])]))


def _released(ctx: Context) -> dict[str, str]:
    """Format → the URL of its newest live release of this repo."""
    found: dict[str, str] = {}
    for job in ctx.store.jobs.list([JobStatus.PUBLISHED], repo=ctx.repo, newest_first=True):
        fmt = job.spec.get("format")
        live = ctx.store.releases.find(build_key=job.build_key, statuses=LIVE)
        if isinstance(fmt, str) and fmt not in found and live:
            found[fmt] = live[-1].url
    return found


def _status(ctx: Context, command: Command, author: str, num: int) -> Answer:
    jobs = ctx.store.jobs.list(repo=ctx.repo, newest_first=True, limit=10)
    if not jobs:
        return Answer(f"No builds of `{ctx.repo}` yet. Type `/quantize` to start one.")
    lines = [job_line(job, ctx.store.releases.find(build_key=job.build_key)) for job in jobs]
    return Answer("\n".join([f"The latest builds of `{ctx.repo}`:", "", *lines]))


def _cancel(ctx: Context, command: Command, author: str, num: int) -> Answer:
    keys = {key for c in ctx.store.commands.in_discussion(ctx.repo, num) for key in c.build_keys}
    jobs = ctx.store.jobs.list(CANCELLABLE, build_keys=keys) if keys else []
    # The executor running a cancelled job hears of it from the store and stops its process.
    cancelled = []
    for job in jobs:
        try:
            cancelled.append(ctx.store.lifecycle.cancel(job.id, note="cancelled by command"))
        except GuardFailed as e:  # it finished or failed meanwhile: nothing to cancel
            ctx.log.info("not cancelled: %s", e)
    if not cancelled:
        return Answer(
            f"@{author}, there is nothing to cancel: no build started in this discussion is running."
        )
    return Answer(f"@{author}, cancelled {len(cancelled)} build(s).", [job.build_key for job in cancelled])


def _retry(ctx: Context, command: Command, author: str, num: int) -> Answer:
    jobs = ctx.store.jobs.list(RETRYABLE, repo=ctx.repo)
    retried = []
    for job in jobs:
        try:
            retried.append(ctx.store.lifecycle.retry(job, note=f"/retry by {author}").build_key)
        except GuardFailed as e:  # retried by another command meanwhile
            ctx.log.info("not retried: %s", e)
    if not retried:
        return Answer(f"@{author}, no failed or cancelled builds of `{ctx.repo}` to retry.")
    return Answer(f"@{author}, retrying {len(retried)} build(s) of `{ctx.repo}`.", retried)


def _help(ctx: Context, command: Command, author: str, num: int) -> Answer:
    text = help_text(ctx.options.formats)
    return Answer(f"{command.error}\n\n{text}" if command.error else text)


_RUN: dict[str, Callable[[Context, Command, str, int], Answer]] = {
    "quantize": _quantize,
    "formats": _formats,
    "status": _status,
    "cancel": _cancel,
    "retry": _retry,
    "help": _help,
}


# -------------------------------------------------------------------------------------------- helpers


def _answer(
    ctx: Context, command_id: int, num: int, answer: Answer, status: CommandStatus, reason: str | None = None
) -> None:
    """Post the reply (rendered with the builds' state now), then remember it on the command.

    From then on the bot's reply updater edits it as its builds change; a build that moved while the reply
    was being posted (before the updater could know the reply) is caught up here."""
    store = ctx.store
    command = store.commands.get(command_id)
    parsed = dict(command.parsed or {}) | {"intro": answer.intro}
    command = store.commands.update(command_id, parsed=parsed, build_keys=answer.build_keys)
    text, _ = reply_state(store, command)
    try:
        reply_id = ctx.hub.reply(ctx.repo, num, text)
    except HubError as e:
        store.commands.update(command_id, status=CommandStatus.FAILED, reason=f"could not reply: {e}")
        raise
    command = store.commands.update(command_id, status=status, reply_comment_id=reply_id, reason=reason)
    if status is not CommandStatus.REPLIED:
        return
    now, done = reply_state(store, command)
    if now != text:
        try:
            ctx.hub.edit_comment(ctx.repo, num, reply_id, now)
        except HubError as e:  # the updater edits it again on the next change
            ctx.log.warning("could not update reply %s in %s#%d: %s", reply_id, ctx.repo, num, e)
    if done:
        close(store, command_id)


def _author(ctx: Context, num: int, comment_id: str) -> str | None:
    """Who wrote the comment: webhooks carry only the author's id, the discussion's events carry the name."""
    details = ctx.hub.discussion(ctx.repo, num)
    return next((e.author for e in details.events if e.id == comment_id), None)


def _sms(sms: list[int]) -> str:
    return ", ".join(f"sm{sm}" for sm in sms)


def _rate_limited(author: str, options: Options) -> str:
    limit, window = options.command_rate_limit, options.command_rate_window_s
    return (
        f"@{author}, you have sent more than {limit} commands in the last {window // 60} minutes, so I am "
        "ignoring your commands for a while. Please try again later."
    )


def _refusal(ctx: Context, author: str) -> str:
    owner = ctx.repo.split("/")[0]
    who = [f"the owner of this repo (`{owner}`) and the members of its organisation"]
    if ctx.options.maintainers:
        who.append("my maintainers (" + ", ".join(f"`{m}`" for m in sorted(ctx.options.maintainers)) + ")")
    if ctx.options.allowlist:
        who.append("the users on my allowlist")
    names = ", ".join(who[:-1]) + " and " + who[-1] if len(who) > 1 else who[0]
    return (
        f"Sorry @{author}, only {names} can start, cancel or retry builds here. Anyone can use `/formats`, "
        "`/status` and `/help`; you can ask one of them to run the command for you."
    )
