"""Demand: a base-model watch that builds only the fine-tunes people use, a few a month.

The Hub's listing of the base's fine-tunes (`base_model:finetune:<base>`), sorted by downloads, ranks them
(most downloaded first, then most liked). From the top, each fine-tune gets its eligible formats built, less
the formats a trusted publisher (`trusted_publishers`) already released of it: the model tree's
quantizations of that fine-tune by that publisher, their format read from the repo's tags, its
`quantization_config`, else its name; one with nothing left to build costs no budget. A fine-tune counts
once against the watch's monthly budget (`monthly_budget`, else `demand_monthly_budget`) in the calendar
month its builds were queued; past the budget the rest wait for next month and are not read further. The
ranking, with each one's reason, is kept for the status page.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from builders.spec import BuildSpec
from handlers.context import Context
from handlers.inputs import JobCosts
from state import JobStatus, Watch

Enqueue = Callable[[Context, str, Iterable[BuildSpec], JobCosts | None], object]
"""How the upstream handler queues a revision's specs (`handlers.upstream.enqueue_specs`)."""

CANDIDATES = 20  # fine-tunes ranked per run: the head of the listing is where demand is

# words in a quantized repo's tags, quantization config or name → the format it holds; the first that
# matches wins (w4a8 before awq, nvfp4 before fp8)
_FORMAT_WORDS = (
    ("w4a8", "w4a8_awq"),
    ("nvfp4", "nvfp4"),
    ("fp8", "fp8"),
    ("gptq", "gptq"),
    ("awq", "int4_awq"),
    ("smoothquant", "int8_sq"),
    ("int8_sq", "int8_sq"),
    ("w8a8", "int8_sq"),
)


def rank_and_build(ctx: Context, watch: Watch, enqueue: Enqueue) -> list[dict[str, Any]]:
    """Rank the fine-tunes of `watch`'s base, queue builds for the top ones within its monthly budget (with
    `enqueue`), keep the ranking on the watch and return it (one entry per fine-tune: repo, sha, downloads,
    likes, reason)."""
    ranked = sorted(
        ctx.hub.ranked_models(filter=f"base_model:finetune:{watch.target}", limit=CANDIDATES),
        key=lambda m: (-(m.downloads or 0), -(m.likes or 0), m.id),
    )
    budget = ctx.options.demand_monthly_budget if watch.monthly_budget is None else watch.monthly_budget
    month = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    built = {model.id for model in ranked if _built_since(ctx, model.id, month)}
    spent = len(built)
    ranking = []
    for model in ranked:
        entry = {"repo": model.id, "sha": model.sha, "downloads": model.downloads or 0}
        entry["likes"] = model.likes or 0
        if model.id in built:
            reason = "built this month"
        elif spent >= budget:
            reason = "over budget"  # not read further: the budget bounds the Hub requests a ranking costs
        else:
            reason = _decide(ctx, watch, model, enqueue)
            spent += reason.startswith("built")
        ranking.append(entry | {"reason": reason})
    ctx.store.watches.set_ranking(watch.id, ranking)
    return ranking


def _decide(ctx: Context, watch: Watch, model: Any, enqueue: Enqueue) -> str:
    """Queue what `model` needs (the budget allows one more); the reason shown for it."""
    released = _released_by_trusted(ctx, model.id)
    eligibility = ctx.planner.eligibility(model.id, str(model.sha))
    if eligibility.refused:
        return f"nothing to build: {eligibility.refused}"
    off = f"the watch on {watch.target}" if watch.kv_cache == "none" else None
    specs = ctx.planner.specs(eligibility, formats=watch.formats, sms=watch.sms, kv_cache_off=off)
    wanted = [s for s in specs if s.format not in released]
    skipped = "; ".join(f"{fmt} already released by {who}" for fmt, who in sorted(released.items()))
    if not wanted:
        return skipped or "nothing to build"
    enqueue(ctx, model.id, wanted, eligibility.jobs)
    built = f"built ({', '.join(s.format for s in wanted)})"
    return built + (f"; {skipped}" if skipped else "")


def _built_since(ctx: Context, repo: str, since: datetime) -> bool:
    """Whether builds of `repo` were queued since `since` (cancelled ones do not count)."""
    return any(
        job.created_at >= since and job.status is not JobStatus.CANCELLED
        for job in ctx.store.jobs.list(repo=repo, newest_first=True, limit=50)
    )


def _released_by_trusted(ctx: Context, repo: str) -> dict[str, str]:
    """The formats trusted publishers already released of `repo`, each with who released it first."""
    found: dict[str, str] = {}
    for publisher in ctx.options.trusted_publishers:
        for quantized in ctx.hub.ranked_models(filter=f"base_model:quantized:{repo}", author=publisher):
            fmt = quantized_format(quantized)
            if fmt is not None:
                found.setdefault(fmt, publisher)
    return found


def quantized_format(model: Any) -> str | None:
    """The format a quantized repo holds, from its tags, then its quantization config, then its name."""
    config = (model.config or {}).get("quantization_config") or {}
    sources = [
        " ".join(t for t in model.tags or [] if not t.startswith("base_model:")),  # those name other repos
        " ".join(str(config.get(key, "")) for key in ("quant_method", "quant_algo")),
        model.id.split("/")[-1],
    ]
    for text in sources:
        words = text.lower().replace("-", "_")
        for word, fmt in _FORMAT_WORDS:
            if word in words:
                return fmt
    return None
