"""A bot with a Jobs budget of 0 refuses a build, saying the budget, the spend so far and when it resets.

In a module of its own: no other bot answering the same commands runs beside it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_support import E2EHub, publish_upstream, wait_for
from jobs_support import forget_bot, jobs_bot

pytestmark = pytest.mark.slow


def test_a_budget_of_zero_refuses_the_build_with_budget_spend_and_reset(
    e2e_hub: E2EHub, tiny_model: Path, tmp_path: Path
) -> None:
    (tmp_path / "poor").mkdir()
    poor = jobs_bot(e2e_hub, tmp_path / "poor", jobs_monthly_budget_usd=0)
    try:
        store = poor.store()
        repo, _ = publish_upstream(e2e_hub, tiny_model, "jobs-poor")
        maya = e2e_hub.api("maya")
        discussion = maya.create_discussion(repo, "Builds", description="/quantize gptq --sm 89")

        def reply() -> str | None:
            details = maya.get_discussion_details(repo, discussion.num)
            texts = [e.content for e in details.events if e.type == "comment" and e.author == "quantbot"]
            return texts[-1] if texts else None

        text = wait_for(reply, 60, "the bot's reply")
        assert "Not started: this build would pass the monthly Jobs budget" in text
        assert "of the $0.00 budget is spent this month" in text and "resets on " in text
        assert store.jobs.list(repo=repo) == []
        store.close()
    finally:
        forget_bot(e2e_hub, poor)
