"""`quantbot demo`, as a newcomer runs it: a release by webhook, then one by slash command, then what to open,
said once, and a quiet screen while everything keeps running until Ctrl+C."""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import time

import httpx
import pytest
from e2e_support import QUANTBOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(720)]
DEMO_TIMEOUT_S = 540  # about two minutes on 2 idle cores; six on 2 cores shared with other test runs
QUIET_S = 12  # more than two of the demo's "still working" periods (5 s)


def _read_until(demo: subprocess.Popen[str], marker: str, timeout: float) -> str:
    """Everything the demo prints up to and including the line holding `marker`."""
    assert demo.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = demo.stdout.readline()
        if not line:
            break
        lines.append(line)
        if marker in line:
            return "".join(lines)
    raise AssertionError(f"the demo never printed {marker!r}:\n{''.join(lines)[-3000:]}")


def _printed_within(demo: subprocess.Popen[str], seconds: float) -> str:
    """What the demo prints in the next `seconds` (without blocking on a silent pipe)."""
    assert demo.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(demo.stdout, selectors.EVENT_READ)
    said, deadline = "", time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if selector.select(left):
            line = demo.stdout.readline()
            if not line:
                break
            said += line
    return said


def test_the_demo_releases_by_webhook_and_by_slash_command_then_holds_still(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QUANTBOT_", "HF_"))}
    demo = subprocess.Popen(
        [QUANTBOT, "demo", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env | {"XDG_CACHE_HOME": str(tmp_path), "PYTHONUNBUFFERED": "1"}, cwd=tmp_path,
    )  # fmt: skip
    try:
        out = _read_until(demo, "Press Ctrl+C to stop.", DEMO_TIMEOUT_S)
        opened = {
            url: httpx.get(url, timeout=30) for url in re.findall(r"^  \S.+? {2,}(http://\S+)", out, re.M)
        }
        quiet = _printed_within(demo, QUIET_S)
        demo.send_signal(signal.SIGINT)
        rest, err = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:  # Ctrl+C, as a person would: the demo stops its builds and cleans up
            demo.send_signal(signal.SIGINT)
            try:
                demo.wait(60)
            except subprocess.TimeoutExpired:
                demo.kill()
    assert demo.returncode == 0, out[-3000:] + err[-3000:]
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

    summary = out.split("Everything keeps running until Ctrl+C:")[1]
    for release in ("tiny-llama-GPTQ", "tiny-llama-instruct-GPTQ"):
        assert f"  a release               {hub}/quantbot/{release}\n" in summary
    token = re.search(r"alice's token +(hf_alice_\w+)", summary).group(1)
    assert f"export HF_ENDPOINT={hub} HF_TOKEN={token}" in summary
    assert out.count("Press Ctrl+C to stop.") == 1 and out.count("alice's token  ") == 1
    status_page = re.search(r"the bot's status page +(http://127\.0\.0\.1:\d+/)", summary).group(1)
    assert len(opened) == 4 and all(answer.status_code == 200 for answer in opened.values()), opened
    assert "tiny-llama-instruct-GPTQ" in opened[status_page].text  # the page lists the releases
    assert quiet == "", f"the finished demo kept printing: {quiet!r}"
    assert rest.strip() == "Stopping." and "Traceback" not in err
    assert not list(tmp_path.iterdir()), "the demo left files where it was started"
