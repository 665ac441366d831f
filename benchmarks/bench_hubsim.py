"""hubsim at the Hub's scale: making 10,000 repos, and what a listing page costs among them.

Starts hubsim on loopback and lays out the Hub a scale benchmark needs: 20 base models and 9,980
fine-tunes of them by 100 authors (tiny repos: a card naming the base model, a config.json), with
downloads and likes. It times:

- making them: through `POST /_hubsim/seed` in batches of 1,000, and (for comparison, on `--client` repos,
  extrapolated to all of them) the client's way, `create_repo` then `upload_file` of the card and config;
- what the bot's poller asks for, through `HfApi` (requests per second, the median of `--rounds` calls):
  an author's models by last modification (limit 100, `expand` sha, lastModified, cardData), a base
  model's fine-tunes the same way (and as one plain GET, without the client's parsing), the first page of
  all models (1,000 items), `model_info`, and
  `model_info(expand=["childrenModelCount"])` of a base model with ~500 fine-tunes;
- `model_info` with rate limits enforced against not enforced (the cost of counting and the headers).

    python benchmarks/bench_hubsim.py [--repos 10000] [--client 200] [--rounds 30]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable

os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="bench-hubsim-"))

import httpx  # noqa: E402  (after the environment above, on purpose)
from huggingface_hub import CommitOperationAdd, HfApi  # noqa: E402

from bot.hubsim import Directory, HubService, HubsimServer, Org, User  # noqa: E402

BASES, AUTHORS, BATCH = 20, 100, 1000
CONFIG = json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 16})


def _layout(total: int) -> list[dict[str, object]]:
    """The repos to make, bases first (a card's `base_model` must exist)."""
    card = "---\nlicense: apache-2.0\n---\n# base {i}\n"
    repos: list[dict[str, object]] = [
        {"id": f"upstream/base-{i}", "files": {"README.md": card.format(i=i), "config.json": CONFIG}}
        for i in range(BASES)
    ]
    for i in range(total - BASES):
        readme = f"---\nlicense: apache-2.0\nbase_model: upstream/base-{i % BASES}\n---\n# tune {i}\n"
        repos.append(
            {
                "id": f"author-{i % AUTHORS}/tune-{i}",
                "files": {"README.md": readme, "config.json": CONFIG},
                "stats": {"downloads": (i * 7919) % 10_000, "likes": i % 97},
            }
        )
    return repos


def _median_s(call: Callable[[], object], rounds: int) -> float:
    call()  # warm: the first call derives what later ones read from caches
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repos", type=int, default=10_000)
    parser.add_argument("--client", type=int, default=200, help="repos made the client's way, for comparison")
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()

    users = [User(f"author-{i}", f"hf_author_{i}") for i in range(AUTHORS)] + [User("bot", "hf_bot")]
    hub = HubService(Directory(users, [Org("upstream", ["bot"])]))
    with HubsimServer(hub) as server, httpx.Client(base_url=server.url, timeout=600) as raw:
        repos = _layout(args.repos)
        started = time.perf_counter()
        for i in range(0, len(repos), BATCH):
            raw.post("/_hubsim/seed", json={"repos": repos[i : i + BATCH]}).raise_for_status()
        seeded = time.perf_counter() - started
        print(f"hubsim with {len(hub.repos):,} repos ({BASES} base models, {AUTHORS} authors)")
        print(f"  made through /_hubsim/seed: {seeded:.1f} s ({len(repos) / seeded:,.0f} repos/s)")

        api = HfApi(endpoint=server.url, token="hf_bot")
        started = time.perf_counter()
        for i in range(args.client):
            repo_id = f"bot/client-{i}"
            api.create_repo(repo_id)
            files = [
                CommitOperationAdd("README.md", b"---\nlicense: mit\n---\n# tiny\n"),
                CommitOperationAdd("config.json", CONFIG.encode()),
            ]
            api.create_commit(repo_id, files, commit_message="Upload folder")
        per_repo = (time.perf_counter() - started) / args.client
        print(
            f"  made by the client (create_repo + create_commit), {args.client} repos: {1 / per_repo:,.0f} "
            f"repos/s, {per_repo * args.repos:.0f} s for {args.repos:,} (extrapolated)"
        )

        expand = ["sha", "lastModified", "cardData"]
        calls: dict[str, Callable[[], object]] = {
            "an author's models, newest first (limit 100)": lambda: list(
                api.list_models(author="author-7", sort="lastModified", limit=100, expand=expand)
            ),
            "a base model's fine-tunes, newest first (limit 100)": lambda: list(
                api.list_models(
                    filter="base_model:upstream/base-3", sort="lastModified", limit=100, expand=expand
                )
            ),
            "the same, one GET without the client (hubsim's share)": lambda: raw.get(
                "/api/models",
                params={
                    "filter": "base_model:upstream/base-3",
                    "sort": "lastModified",
                    "limit": 100,
                    "expand": expand,
                },
            ).json(),
            "first page of all models (1,000 items)": lambda: raw.get("/api/models").json(),
            "model_info": lambda: api.model_info("author-7/tune-7"),
            "model_info childrenModelCount (~500 children)": lambda: api.model_info(
                "upstream/base-3", expand=["childrenModelCount"]
            ),
        }
        print(f"  requests through HfApi, median of {args.rounds}:")
        for label, call in calls.items():
            median = _median_s(call, args.rounds)
            print(f"    {label}: {median * 1000:.1f} ms, {1 / median:,.0f} requests/s")

        info = calls["model_info"]
        hub.rate_limits.enabled = False
        off = _median_s(info, args.rounds * 3)
        hub.rate_limits.enabled = True
        on = _median_s(info, args.rounds * 3)
        print(
            f"  model_info with rate limits enforced: {on * 1000:.2f} ms, not enforced: {off * 1000:.2f} ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
