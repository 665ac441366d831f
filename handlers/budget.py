"""The monthly Jobs budget (`jobs_monthly_budget_usd`): whether a build's estimate passes it, and the reply.

The month is the calendar month in UTC; what counts as spent is what the store recorded for Jobs that
finished in it (each Job's runtime at its flavour's price).
"""

from __future__ import annotations

from datetime import UTC, datetime


def month_start(now: datetime) -> datetime:
    """Midnight UTC on the first day of `now`'s month: when the spend so far started counting."""
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_reset(now: datetime) -> datetime:
    """Midnight UTC on the first day of the next month: when the budget resets."""
    start = month_start(now)
    return (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )


def refusal(budget: float | None, spent: float, estimate: float, now: datetime) -> str | None:
    """Why a build estimated at `estimate` USD may not run; None when it fits (or no budget is set)."""
    if budget is None or spent + estimate <= budget:
        return None
    return (
        f"this build would pass the monthly Jobs budget: it is estimated at ${estimate:.2f}, "
        f"${spent:.2f} of the ${budget:.2f} budget is spent this month, and the budget resets on "
        f"{next_reset(now):%Y-%m-%d} at 00:00 UTC"
    )
