"""quantbot at the Hub's scale: 2,000 watched repos among 10,000, on one free token (1,000 API requests per
5 minutes), with pushes and commands arriving all the time.

hubsim runs in a child process with the Hub's rate limits on (the bot's user on the free plan) and 10,000
repos laid out with `seed`: 20 base models and 9,980 fine-tunes by 100 authors, their last commit an hour
old (a Hub at rest: the seed's commit dates are set back, nothing else is). It prints:

1. Requests per quiet poll for 100, 1,000 and 2,000 watched repos, side by side: each a fresh store whose
   repo watches are spread over all 100 namespaces (the costliest spread), and the run's 2,000 (by author,
   base model and repo), polled twice; the second poll's requests as hubsim counts them for the bot.
2. The bot at work (`Bot.assemble`, its real dispatcher, poller, catch-up and reply updater, over HTTP):
   2,000 repos watched by author (10 authors), by base model (1 base) and one by one; a webhook for the
   authors' repos (the other watches are found by polling alone); for `--minutes` of wall-clock time (real
   time, no simulated clock) `--pushes` pushes a minute to watched repos and `--commands` commands a minute
   in the authors' discussions. Builds are not run (the executor has no slot): a push is done once its
   revision's event is handled, with a job queued or nothing to build. It prints the requests of each poll
   (poller + catch-up), p50/p99 from push to queued job (or refusal) and from command to reply, whether
   every push and command was handled, the bot's requests and 429s as hubsim counted them, and the budget.

    python benchmarks/bench_scale.py [--minutes 3] [--pushes 100] [--commands 20] [--poll-s 60]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="bench-scale-"))

import httpx  # noqa: E402  (after the environment above, on purpose)
from huggingface_hub import HfApi  # noqa: E402

BASES, AUTHORS, REPOS = 20, 100, 10_000
BOT, COMMENTER, SECRET = "quantbot", "commenter", "bench-scale-secret"
CONFIG = json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 16})
WATCHED_AUTHORS = [f"author-{i}" for i in range(10)]
WATCHED_BASE = "upstream/base-1"
TOKENS = {BOT: "hf_benchscalebot" + "0" * 18, COMMENTER: "hf_benchscalecommenter" + "0" * 12}


def token_of(user: str) -> str:
    return TOKENS.get(user) or "hf_" + (user.replace("-", "") + "x" * 34)[:34]


def tunes() -> list[tuple[str, str]]:
    """Every fine-tune with its base model."""
    return [(f"author-{i % AUTHORS}/tune-{i}", f"upstream/base-{i % BASES}") for i in range(REPOS - BASES)]


def layout() -> dict[str, Any]:
    """The 2,000 watched repos: by author, by base model, and one by one (the rest of the 2,000)."""
    by_author = {repo for repo, _ in tunes() if repo.split("/")[0] in WATCHED_AUTHORS}
    by_base = {repo for repo, base in tunes() if base == WATCHED_BASE}
    rest = [repo for repo, _ in tunes() if repo not in by_author and repo not in by_base]
    by_repo = rest[: 2_000 - len(by_author | by_base)]
    return {"by_author": sorted(by_author), "by_base": sorted(by_base - by_author), "by_repo": by_repo}


# --- the child: hubsim -----------------------------------------------------------------------------------


def serve_hubsim(port: int, bot_url: str) -> None:
    """hubsim with rate limits on, 10,000 repos an hour old, a webhook to the bot for the watched authors."""
    from bot.hubsim import Directory, HubService, HubsimServer, User, gitobjects
    from bot.hubsim.seeding import seed

    users = [User(name, token_of(name)) for name in (BOT, COMMENTER, "upstream")]
    users += [User(f"author-{i}", token_of(f"author-{i}")) for i in range(AUTHORS)]
    hub = HubService(Directory(users, []))
    hub.rate_limits.enabled = True
    card = "---\nlicense: apache-2.0\n{base}---\n# {name}\n"
    items: list[dict[str, Any]] = [
        {
            "id": f"upstream/base-{i}",
            "files": {"README.md": card.format(base="", name=i), "config.json": CONFIG},
        }
        for i in range(BASES)
    ]
    for repo, base in tunes():
        readme = card.format(base=f"base_model: {base}\n", name=repo)
        items.append({"id": repo, "files": {"README.md": readme, "config.json": CONFIG}})
    an_hour_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="milliseconds")
    real_now = gitobjects.now_iso
    gitobjects.now_iso = lambda: an_hour_ago.replace("+00:00", "Z")
    for start in range(0, len(items), 1_000):
        seed(hub, items[start : start + 1_000])
    gitobjects.now_iso = real_now
    watched = [{"type": "user", "name": name} for name in WATCHED_AUTHORS]
    hub.register_webhook(bot_url + "/webhooks/hub", SECRET, watched=watched)
    server = HubsimServer(hub, port=port).start()
    print("ready", flush=True)
    sys.stdin.read()  # until the parent closes it
    server.stop()


# --- the parent --------------------------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bot_requests(url: str) -> tuple[int, int]:
    """The bot user's requests in the `api` bucket, and its 429s, as hubsim counted them."""
    counts = httpx.get(f"{url}/_hubsim/requests", params={"caller": BOT}).json()
    refused = httpx.get(f"{url}/_hubsim/rate-limits").json()["refused"]
    return (
        sum(c["count"] for c in counts if c["bucket"] == "api"),
        sum(r["count"] for r in refused if r["caller"] == BOT),
    )


def watch_sets() -> dict[str, list[tuple[str, str]]]:
    """The watch lists of the quiet polls: 100, 1,000 and 2,000 repos watched one by one, spread over all 100
    namespaces (the costliest spread), and the 2,000 of the run by author, base model and repo."""
    spread = sorted(
        (repo for repo, _ in tunes()), key=lambda repo: (int(repo.split("-")[-1]) // AUTHORS, repo)
    )
    sets = {f"{n:,} repos one by one": [("repo", repo) for repo in spread[:n]] for n in (100, 1_000, 2_000)}
    mixed = [("author", author) for author in WATCHED_AUTHORS] + [("base_model", WATCHED_BASE)]
    sets["2,000 by author, base model, repo"] = mixed + [("repo", repo) for repo in layout()["by_repo"]]
    return sets


def quiet_polls(url: str) -> dict[str, tuple[int, int]]:
    """Requests of the first and of a quiet second poll, per watch list."""
    from bot.hub import Hub
    from bot.intake.scheduler import Poller
    from bot.settings import load_settings
    from handlers.context import Options
    from state import WatchKind, open_store, sqlite_url

    settings = load_settings(None, hf_endpoint=url)
    options = Options(bot_name=BOT, namespace=BOT, bot_user=BOT)
    figures = {}
    for label, watches in watch_sets().items():
        store = open_store(sqlite_url(tempfile.mkdtemp(prefix="bench-scale-quiet-")))
        for kind, target in watches:
            store.watches.add(WatchKind(kind), target)
        hub = Hub(endpoint=url, token=token_of(BOT))
        poller = Poller(settings, store, hub, wake=lambda *_: None, options=lambda: options)
        before = bot_requests(url)[0]
        poller.poll()
        first = bot_requests(url)[0]
        poller.poll()
        figures[label] = (first - before, bot_requests(url)[0] - first)
        store.close()
    return figures


class Measured:
    """The poller as the scheduler runs it, with each poll's requests (poller + catch-up) recorded."""

    def __init__(self, poller: Any, hub: Any) -> None:
        self.poller, self.hub = poller, hub
        self.cycles: list[tuple[int, int, float]] = []  # (requests, new events, seconds)

    def _sent(self) -> int:
        return sum(
            n for (caller, _), n in self.hub.budget.requests().items() if caller in ("poller", "catchup")
        )

    def poll(self) -> int:
        before, started = self._sent(), time.perf_counter()
        new = self.poller.poll()
        self.cycles.append((self._sent() - before, new, time.perf_counter() - started))
        return int(new)


def every(per_minute: float, minutes: float, action: Callable[[int], None], stop: threading.Event) -> None:
    """Call `action(i)` `per_minute` times a minute for `minutes` (evenly spaced; late calls catch up)."""
    gap, start, i = 60.0 / per_minute, time.monotonic(), 0
    while i < int(per_minute * minutes) and not stop.is_set():
        delay = start + i * gap - time.monotonic()
        if delay > 0:
            stop.wait(delay)
        action(i)
        i += 1


def percentiles(values: list[float]) -> str:
    if not values:
        return "none"
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return (
        f"p50 {statistics.median(ordered):.2f} s, p99 {p99:.2f} s, max {ordered[-1]:.2f} s (n={len(ordered)})"
    )


def run_bot(url: str, bot_port: int, args: argparse.Namespace) -> None:
    from bot.runtime import Bot, BotServer
    from bot.settings import load_settings
    from state import WatchKind, revision_key

    data = Path(tempfile.mkdtemp(prefix="bench-scale-bot-"))
    settings = load_settings(
        data_dir=data,
        hf_endpoint=url,
        hf_token=token_of(BOT),
        webhook_secret=SECRET,
        command_rate_limit=1_000_000,  # the synthetic commands come from one user
    )
    bot = Bot.assemble(settings, slots=[])  # no build slot: jobs stay queued, nothing is built
    measured = Measured(bot.poller, bot.hub)
    bot.scheduler.every("poll", measured.poll, seconds=args.poll_s)  # measured, in the poller's place
    watched = layout()
    for author in WATCHED_AUTHORS:
        bot.store.watches.add(WatchKind.AUTHOR, author)
    bot.store.watches.add(WatchKind.BASE_MODEL, WATCHED_BASE)
    for repo in watched["by_repo"]:
        bot.store.watches.add(WatchKind.REPO, repo)
    targets = watched["by_author"] + watched["by_base"] + watched["by_repo"]
    print(
        f"watches: {len(WATCHED_AUTHORS)} authors ({len(watched['by_author'])} repos), 1 base model "
        f"({len(watched['by_base'])} more repos), {len(watched['by_repo'])} repos one by one: {len(targets)}"
    )
    server = BotServer(bot, port=bot_port).start()
    while not bot.readiness.ready:
        time.sleep(0.2)
    commenter = HfApi(endpoint=url, token=token_of(COMMENTER))
    threads = {
        repo: commenter.create_discussion(repo, "Builds?", description="Hello").num
        for repo in random.Random(1).sample(watched["by_author"], 50)
    }
    hooked = set(watched["by_author"])  # the webhook's repos; the others' pushes are found by polling

    pushes: list[tuple[str, str, datetime]] = []  # (repo, sha, pushed at)
    commands: list[tuple[str, datetime]] = []  # (comment id, posted at)
    rng, lock, stop = random.Random(7), threading.Lock(), threading.Event()

    def push(i: int) -> None:
        repo = rng.choice(targets)
        api = HfApi(endpoint=url, token=token_of(repo.split("/")[0]))
        sha = api.upload_file(
            path_or_fileobj=f"step {i}".encode(), path_in_repo="weights.txt", repo_id=repo
        ).oid
        with lock:
            pushes.append((repo, sha, datetime.now(UTC)))

    def command(i: int) -> None:
        repo = list(threads)[i % len(threads)]
        text = "/help" if i % 2 else f"@{BOT} /status"
        posted = commenter.comment_discussion(repo, threads[repo], text)
        with lock:
            commands.append((posted.id, datetime.now(UTC)))

    db = sqlite3.connect(f"file:{data / 'quantbot.db'}?mode=ro", uri=True, check_same_thread=False)
    replied: dict[str, datetime] = {}  # comment id → when its reply was first seen stored

    def outcome() -> tuple[dict[str, float], dict[str, str], dict[str, float]]:
        """Seconds from each push to its job (or refusal), how it ended, seconds from command to reply."""
        with lock:
            events = {
                key: (eid, at)
                for eid, key, at in db.execute("SELECT id, dedup_key, processed_at FROM events")
            }
            jobs: dict[int, str] = {}
            for source, created in db.execute("SELECT source_event_id, created_at FROM jobs"):
                jobs[source] = min(jobs.get(source, created), created)
            for (cid,) in db.execute("SELECT comment_id FROM commands WHERE reply_comment_id IS NOT NULL"):
                replied.setdefault(cid, datetime.now(UTC))
            pushed, posted = list(pushes), list(commands)
        done, how = {}, {}
        for repo, sha, at in pushed:
            found = events.get(revision_key("repo.content", "update", repo, f"refs/heads/main@{sha}"))
            if found and found[1]:
                done[sha] = (_parse(jobs.get(found[0]) or found[1]) - at).total_seconds()
                how[sha] = "queued" if found[0] in jobs else "refused"
        for n, (repo, sha, _) in enumerate(pushed):  # the Hub lists a repo's last commit only
            if sha not in done and any(r == repo and s in done for r, s, _ in pushed[n + 1 :]):
                how[sha] = "superseded"
        answered = {cid: (replied[cid] - at).total_seconds() for cid, at in posted if cid in replied}
        return done, how, answered

    def sample() -> None:  # a reply's time is when it is first seen stored (every 0.5 s)
        while not stop.is_set():
            outcome()
            stop.wait(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    started = time.monotonic()
    load = [
        threading.Thread(target=every, args=(args.pushes, args.minutes, push, threading.Event())),
        threading.Thread(target=every, args=(args.commands, args.minutes, command, threading.Event())),
    ]
    for thread in [*load, sampler]:
        thread.start()
    for thread in load:
        thread.join()
    print(f"activity: {len(pushes)} pushes, {len(commands)} commands in {time.monotonic() - started:.0f} s")
    deadline = time.monotonic() + args.drain_s
    while time.monotonic() < deadline:
        done, how, answered = outcome()
        if len(how) == len(pushes) and len(answered) == len(commands):
            break
        time.sleep(2)
    stop.set()
    sampler.join()
    done, how, answered = outcome()
    requests, refused = bot_requests(url)
    budget = bot.hub.budget.snapshot() if bot.hub.budget else {}
    server.stop()
    db.close()

    print(f"polls (every {args.poll_s:.0f} s; requests of poller + catch-up, new events, seconds):")
    for n, (sent, new, seconds) in enumerate(measured.cycles):
        print(f"  poll {n}: {sent} requests, {new} new events, {seconds:.1f} s")
    ends = {kind: sum(1 for v in how.values() if v == kind) for kind in ("queued", "refused", "superseded")}
    print(
        f"pushes: {len(pushes)}; a job queued {ends['queued']}, nothing to build {ends['refused']}, "
        f"superseded before a poll saw it {ends['superseded']}, missed {len(pushes) - len(how)}"
    )
    by_hook = [done[sha] for repo, sha, _ in pushes if sha in done and repo in hooked]
    by_poll = [done[sha] for repo, sha, _ in pushes if sha in done and repo not in hooked]
    print(f"push -> queued job or refusal, all: {percentiles(list(done.values()))}")
    print(f"  webhook-covered repos: {percentiles(by_hook)}")
    print(f"  found by polling only: {percentiles(by_poll)}")
    print(
        f"commands answered: {len(answered)} of {len(commands)}; command -> reply: "
        f"{percentiles(list(answered.values()))}"
    )
    minutes = (time.monotonic() - started) / 60
    print(
        f"the bot's API requests (hubsim's count, from the quiet polls on): {requests}, the run "
        f"{minutes:.1f} min; answered 429 (hubsim enforces 1,000 a window): {refused}"
    )
    print(f"budget: {json.dumps(budget)}")


def _parse(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="minutes of activity (wall clock)")
    parser.add_argument("--pushes", type=float, default=100.0, help="pushes a minute")
    parser.add_argument("--commands", type=float, default=20.0, help="commands a minute")
    parser.add_argument("--poll-s", type=float, default=60.0, help="seconds between polls")
    parser.add_argument("--drain-s", type=float, default=300.0, help="seconds to wait for the last answers")
    parser.add_argument("--hubsim-child", nargs=2, metavar=("PORT", "BOT_URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hubsim_child:
        serve_hubsim(int(args.hubsim_child[0]), args.hubsim_child[1])
        return
    port, bot_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, __file__, "--hubsim-child", str(port), f"http://127.0.0.1:{bot_port}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready", "hubsim did not start"
        print(
            f"hubsim: {REPOS} repos by {AUTHORS} authors, rate limits on (free plan), "
            f"ready in {time.perf_counter() - started:.0f} s"
        )
        print("requests per poll (hubsim's count of the bot's API requests), first poll, then a quiet one:")
        for label, (first, quiet) in quiet_polls(url).items():
            print(f"  {label:<36} first {first:>3}, quiet {quiet:>3}")
        run_bot(url, bot_port, args)
    finally:
        if child.stdin:
            child.stdin.close()
        child.wait(30)


if __name__ == "__main__":
    main()
