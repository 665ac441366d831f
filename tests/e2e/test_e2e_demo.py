"""`quantbot demo --exit`, as a newcomer runs it: a release by webhook, then one by slash command."""

from __future__ import annotations

import os
import re
import subprocess

import pytest
from e2e_support import QUANTBOT

pytestmark = pytest.mark.slow


def test_the_demo_releases_by_webhook_and_by_slash_command(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QUANTBOT_", "HF_"))}
    done = subprocess.run(
        [QUANTBOT, "demo", "--exit", "--port", "0"],
        capture_output=True, text=True, env=env | {"XDG_CACHE_HOME": str(tmp_path)}, timeout=280,
    )  # fmt: skip
    out = done.stdout
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    hub = re.search(r"hubsim \(the local Hub\) is up at (http://127\.0\.0\.1:\d+)", out).group(1)
    assert f"released by webhook: {hub}/quantbot/tiny-llama-GPTQ" in out
    card = out.split("----- the release's model card (README.md) -----")[1].split("----- end of card -----")[
        0
    ]
    assert "base_model: alice/tiny-llama" in card and "{{" not in card
    assert "| GPTQ 4-bit (this model) |" in card  # a measured perplexity, not a placeholder
    reply = out.split("----- the bot's reply, edited as the build went -----")[1]
    assert reply.lstrip().startswith("@alice asked for **gptq** of `alice/tiny-llama-instruct`")
    assert f"published: {hub}/quantbot/tiny-llama-instruct-GPTQ" in reply and "All done" in reply
    assert re.search(r"The demo took \d+s\.", out)
    assert "Traceback" not in done.stderr
