"""Upload and download of a 200 MiB model folder through Xet and through Git LFS on hubsim, side by side.

Starts hubsim on loopback and, for each round, makes a model folder (two 100 MiB safetensors shards of
random bytes, which neither compress nor deduplicate, plus a config and a tokenizer file), then, with the
client as installed (Xet) and with Xet turned off (as an older client or `HF_HUB_DISABLE_XET=1` makes it:
Git LFS), times `HfApi.upload_folder` to a new repo and `snapshot_download` of it into an empty cache. The
two arms alternate which goes first. Each arm of each round has content of its own, so that neither
deduplication against an earlier upload (Xet's chunks; hubsim's LFS batch API, which asks for no upload of
content it holds in Xet) counts as upload speed. Prints each round and the medians.

    python benchmarks/bench_xet.py [--rounds 3] [--mib 200]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="bench-xet-hf-")  # hf_xet's caches too, fresh

from huggingface_hub import HfApi, constants, snapshot_download  # noqa: E402  (after the environment)

from bot.hubsim import Directory, HubService, HubsimServer, User  # noqa: E402

ARMS = ("xet", "lfs")


def make_folder(root: Path, mib: int) -> Path:
    folder = root / f"model-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    shards = 2
    for i in range(shards):
        name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        (folder / name).write_bytes(os.urandom(mib * 1024 * 1024 // shards))
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 4096}))
    (folder / "tokenizer.json").write_text(json.dumps({"version": "1.0", "model": {"vocab": {}}}))
    return folder


def run_arm(arm: str, api: HfApi, user: str, folder: Path, scratch: Path) -> tuple[float, float]:
    """(upload seconds, download seconds) of one arm."""
    constants.HF_HUB_DISABLE_XET = arm == "lfs"  # what the variable does, read at call time
    repo_id = f"{user}/bench-{arm}-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id)
    started = time.perf_counter()
    api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message="weights")
    uploaded = time.perf_counter() - started
    cache = scratch / f"cache-{arm}-{uuid.uuid4().hex[:6]}"
    started = time.perf_counter()
    local = snapshot_download(repo_id, cache_dir=cache, token=api.token, endpoint=api.endpoint)
    downloaded = time.perf_counter() - started
    for shard in folder.glob("*.safetensors"):
        if (Path(local) / shard.name).read_bytes() != shard.read_bytes():
            raise SystemExit(f"{arm}: {shard.name} came back different")
    shutil.rmtree(cache)
    api.delete_repo(repo_id)
    return uploaded, downloaded


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mib", type=int, default=200, help="size of the model folder's weights")
    args = parser.parse_args()
    user = User("bench", "hf_bench_" + uuid.uuid4().hex)
    hub = HubService(Directory([user], []))
    server = HubsimServer(hub).start()
    api = HfApi(endpoint=server.url, token=user.token)
    times: dict[str, dict[str, list[float]]] = {arm: {"upload": [], "download": []} for arm in ARMS}
    print(f"hubsim at {server.url}; {args.mib} MiB of weights per folder, {args.rounds} rounds")
    try:
        with tempfile.TemporaryDirectory(prefix="bench-xet-") as tmp:
            scratch = Path(tmp)
            for round_ in range(args.rounds):
                order = ARMS if round_ % 2 == 0 else ARMS[::-1]
                for arm in order:
                    folder = make_folder(scratch, args.mib)
                    up, down = run_arm(arm, api, user.name, folder, scratch)
                    shutil.rmtree(folder)
                    times[arm]["upload"].append(up)
                    times[arm]["download"].append(down)
                    print(f"round {round_ + 1} {arm:>3}: upload {up:6.2f} s  download {down:6.2f} s")
    finally:
        server.stop()
    print(f"\nmedians over {args.rounds} rounds ({args.mib} MiB):")
    for step in ("upload", "download"):
        xet, lfs = (statistics.median(times[arm][step]) for arm in ARMS)
        mib_s = ", ".join(f"{arm} {args.mib / statistics.median(times[arm][step]):.0f} MiB/s" for arm in ARMS)
        print(f"  {step:>8}: xet {xet:6.2f} s  lfs {lfs:6.2f} s  xet/lfs {xet / lfs:4.2f}  ({mib_s})")
    print(f"  CAS: {len(hub.xet.xorbs)} xorbs stored, {hub.xet.stats.shards} shards, "
          f"{hub.xet.stats.dedupe_queries} dedupe queries")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
