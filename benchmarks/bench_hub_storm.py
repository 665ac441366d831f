"""How long a publish takes to give up in a 503 storm, when its next attempt comes, and what an outage costs.

Starts hubsim on loopback, makes a repo, and arms a 503 storm (hubsim's fault injection) on the requests one
step of a publish makes, then times `bot.hub.Hub` giving up on that step, counting the requests the storm
answered:

- `upload`: the weights' upload (`Hub.upload_folder`, the publisher's longest step): 503 on `/preupload/`;
- `read`: a plain read (`Hub.model_info`, the first thing a publish does): 503 on the model's API route.

A publish the Hub failed waits (built) and is tried again (`bot.retries`): the first wait is
`publish_backoff_s` (with jitter, half to all of it), doubling up to `transient_backoff_max_s`, until
`transient_deadline_h` has passed since the first failure. So the time from the Hub failing to the next
attempt is the give-up time plus that wait; the table after it shows, for Hub incidents of several lengths
(each try failing at once while the Hub is down), how many tries the job makes and how long after the Hub is
back the next try comes (at most: no jitter), at the default settings. Run it on another checkout
(`PYTHONPATH=/path/to/other python benchmarks/bench_hub_storm.py`) to compare before and after.

    python benchmarks/bench_hub_storm.py
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

from bot.errors import HubError  # noqa: E402  (after the environment above, on purpose)
from bot.hub import Hub  # noqa: E402
from bot.hubsim import Directory, HubService, HubsimServer, User  # noqa: E402
from bot.retries import backoff_s  # noqa: E402
from bot.settings import load_settings  # noqa: E402

STORM = 1000  # more 503s than any budget spends
logging.disable(logging.WARNING)  # each retry's warning: the counts below say it shorter


def _time(hub: Hub, step: str, repo_id: str, folder: Path, server: HubService) -> tuple[float, int, str]:
    path, call = {
        "upload": (r"/preupload/", lambda: hub.upload_folder(repo_id, folder, commit_message="weights")),
        "read": (r"/api/models/", lambda: hub.model_info(repo_id)),
    }[step]
    fault = server.faults.add(path, status=503, times=STORM)
    started = time.monotonic()
    try:
        call()
        outcome = "succeeded?"
    except HubError as e:
        outcome = type(e).__name__
    finally:
        server.faults.clear()
    return time.monotonic() - started, STORM - fault.times, outcome


def _incidents(first_s: float, most_s: float, deadline_h: float) -> None:
    """Tries during a Hub incident of each length, and the longest delay after the Hub is back."""
    print(f"{'incident':>9} {'tries':>6} {'next try after the Hub is back, at most':>40}")
    for hours in (0.1, 1.0, 6.0, deadline_h + 1):
        at, tries, deadline = 0.0, 1, deadline_h * 3600
        while at < hours * 3600 and at < deadline:
            at = min(at + backoff_s(first_s, most_s, tries), deadline)
            tries += 1
        late = f"{at - hours * 3600:.0f} s" if at >= hours * 3600 else f"failed at {deadline_h:g} h, /retry"
        print(f"{hours:8g}h {tries:6d} {late:>40}")


def main() -> int:
    user = User("storm-bot", "hf_storm_" + uuid.uuid4().hex)
    service = HubService(Directory([user], []))
    server = HubsimServer(service).start()
    settings = load_settings(None)
    backoff = settings.publish_backoff_s
    try:
        hub = Hub(endpoint=server.url, token=user.token)
        repo_id = f"{user.name}/storm-{uuid.uuid4().hex[:6]}"
        hub.create_repo(repo_id)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            (folder / "model.safetensors").write_bytes(os.urandom(1 << 20))
            print(f"code under test: {Path(str(sys.modules['bot.hub'].__file__)).resolve().parent.parent}")
            print(f"{'step':>8} {'give up s':>10} {'requests':>9} {'next attempt s':>15}  error")
            for step in ("upload", "read"):
                seconds, requests, outcome = _time(hub, step, repo_id, folder, service)
                print(f"{step:>8} {seconds:10.1f} {requests:9d} {seconds + backoff:15.1f}  {outcome}")
    finally:
        server.stop()
    print(f"(next attempt: give-up time + up to publish_backoff_s = {backoff:g} s, the default)")
    _incidents(backoff, settings.transient_backoff_max_s, settings.transient_deadline_h)
    return 0


if __name__ == "__main__":
    sys.exit(main())
