"""A bot process with `executor = "hf-jobs"` on the e2e hubsim, for the Jobs end-to-end modules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from e2e_support import BotProcess, E2EHub


def jobs_bot(e2e_hub: E2EHub, root: Path, **extra: Any) -> BotProcess:
    running = BotProcess(root, e2e_hub)
    running.write_config(
        executor="hf-jobs", jobs_image="quantbot-worker:test", jobs_namespace="qb-releases",
        target_sms=[89, 90], engine_deadline_s=300, max_attempts=2, **extra,
    )  # fmt: skip
    running.start()
    running.cli("webhooks", "sync", "--url", running.url + "/webhooks/hub")
    return running


def forget_bot(e2e_hub: E2EHub, running: BotProcess) -> None:
    running.stop()
    for hook in list(e2e_hub.server.hub.webhooks.hooks.values()):
        if hook.url.startswith(running.url):
            del e2e_hub.server.hub.webhooks.hooks[hook.id]
