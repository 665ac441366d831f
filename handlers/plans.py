"""Reading a plan (`bot.eligibility.planner.Plan`) the way replies and job creation need it."""

from __future__ import annotations

from bot.eligibility.planner import Plan
from builders.spec import FORMATS


def eligible_sms(plan: Plan) -> dict[str, list[int]]:
    """Each format eligible somewhere, with the SMs it is eligible on (canonical format order)."""
    found: dict[str, list[int]] = {}
    for target_plan in plan.targets:
        for eligible in target_plan.eligible:
            found.setdefault(eligible.format, []).append(target_plan.target.sm)
    return {fmt: found[fmt] for fmt in FORMATS if fmt in found}


def skip_reasons(plan: Plan, fmt: str) -> list[str]:
    """Why `fmt` is not eligible, one line per SM that refused it."""
    if plan.skipped:
        return [plan.skipped]
    return [f"sm{t.target.sm}: {s.reason}" for t in plan.targets for s in t.skipped if s.format == fmt]
