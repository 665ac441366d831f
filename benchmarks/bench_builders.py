"""Builder overhead and download sharing, measured on the tiny Llama against a hubsim this script starts.

1. Wall time per ModelOpt format: ``python -m builders run SPEC.json`` end to end (fetch from the shared
   cache, load, calibrate, fake-quant evaluation, export, checks, manifest) against one process that
   does only what a user of ModelOpt would write by hand on the same model and data: load,
   ``mtq.quantize``, ``export_hf_checkpoint`` (int8_sq: ``export_tensorrt_llm_checkpoint``, as hf_ptq),
   save the tokenizer. Both are fresh processes, so both pay the same imports. Printed as medians and
   their ratio (target <= 1.5).
2. Bytes served by hubsim's file endpoint while three formats of one revision are built into one empty
   cache: it must be one download.

Run: ``python benchmarks/bench_builders.py [--reps 3] [--formats fp8,int4_awq,...]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

WORK = Path(tempfile.mkdtemp(prefix="quantbot-bench-"))
os.environ["HF_HOME"] = str(WORK / "hf-home")
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
os.environ.pop("HF_TOKEN", None)

DIRECT = r"""
import copy, json, sys, time
args = json.loads(sys.argv[1])
import torch
import modelopt.torch.quantization as mtq
from modelopt.torch.export import export_hf_checkpoint, export_tensorrt_llm_checkpoint
from transformers import AutoModelForCausalLM, AutoTokenizer
tok = AutoTokenizer.from_pretrained(args["model"])
model = AutoModelForCausalLM.from_pretrained(args["model"], dtype="auto").eval()
n, L, bs = args["samples"], args["seq_len"], args["batch"]
ids = tok(open(args["text"]).read(), add_special_tokens=False)["input_ids"]
samples = [ids[i : i + L] for i in range(0, n * L, L)]
batches = [torch.tensor(samples[i : i + bs]) for i in range(0, n, bs)]
cfg = copy.deepcopy(getattr(mtq, args["cfg"]))
start = time.monotonic()
mtq.quantize(model, cfg, lambda m: [m(input_ids=b, use_cache=False) for b in batches])
with torch.inference_mode():
    if args["legacy"]:
        export_tensorrt_llm_checkpoint(model, "llama", None, args["out"], 1, 1)
    else:
        export_hf_checkpoint(model, export_dir=args["out"])
tok.save_pretrained(args["out"])
print(json.dumps({"core_s": time.monotonic() - start}))
"""


class CountingApp:
    """ASGI wrapper counting the body bytes of file downloads (GET .../resolve/...) and of everything."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.file_bytes = 0
        self.all_bytes = 0
        self.downloads: list[str] = []

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        is_file = scope["method"] == "GET" and "/resolve/" in scope["path"]
        if is_file:
            self.downloads.append(scope["path"].rsplit("/", 1)[-1])

        async def counting(message: dict) -> None:
            if message["type"] == "http.response.body":
                size = len(message.get("body", b""))
                self.all_bytes += size
                if is_file:
                    self.file_bytes += size
            await send(message)

        await self.app(scope, receive, counting)


def start_hubsim() -> tuple[str, str, CountingApp]:
    from bot.hubsim import Directory, HubService, User
    from bot.hubsim.app import HubsimApp
    from bot.threaded_server import ThreadedServer

    user = User("bench", "hf_bench_token")
    app = CountingApp(HubsimApp(HubService(Directory([user], []))))
    url = ThreadedServer(app, name="hubsim", lifespan="off").start().url
    os.environ["HF_ENDPOINT"] = url
    return url, user.token, app


def run_builder(spec: Any) -> tuple[float, Any]:
    from builders.spec import Manifest

    path = spec.write(Path(spec.work_dir).parent / "spec.json")
    t0 = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "builders", "run", str(path)], capture_output=True, text=True
    )
    wall = time.monotonic() - t0
    if done.returncode != 0:
        sys.exit(f"builder failed for {spec.format}:\n{done.stderr[-3000:]}")
    return wall, Manifest.read(spec.manifest_path)


def run_direct(args: dict[str, Any]) -> tuple[float, float]:
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-c", DIRECT, json.dumps(args)], capture_output=True, text=True)
    wall = time.monotonic() - t0
    if done.returncode != 0:
        sys.exit(f"direct ModelOpt run failed for {args['cfg']}:\n{done.stderr[-3000:]}")
    return wall, json.loads(done.stdout.strip().splitlines()[-1])["core_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--formats", default="fp8,int4_awq,w4a8_awq,int8_sq,nvfp4")
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--eval-tokens", type=int, default=512, help="Held-out tokens the builder scores.")
    opts = parser.parse_args()

    url, token, counter = start_hubsim()
    from builders.modelopt_quant import CONFIG_NAMES
    from builders.spec import BuildSpec
    from builders.tiny import build_tiny_llama, calibration_text_path, push_upstream

    model_dir = build_tiny_llama(WORK / "tiny")
    repo_id = "bench/tiny-llama"
    sha = push_upstream(model_dir, repo_id, endpoint=url, token=token)
    recipe = {
        "calib_dataset": str(calibration_text_path()),
        "calib_samples": opts.samples,
        "calib_seq_len": opts.seq_len,
        "calib_batch_size": opts.batch,
    }

    def spec(name: str, fmt: str, cache: Path) -> BuildSpec:
        # The builder still measures base and fake-quant perplexity and a sample (the direct path does
        # neither), on 512 held-out tokens: bf16 on these CPUs is slow and the model is tiny.
        # NVFP4's fake quantization needs CUDA, so on CPU its perplexity is recorded as not measured.
        validation = {
            "eval_tokens": opts.eval_tokens,
            "generate_tokens": 4,
            "require_perplexity": fmt != "nvfp4",
        }
        return BuildSpec.model_validate(
            {
                "repo_id": repo_id,
                "revision": sha,
                "format": fmt,
                "recipe": recipe,
                "validation": validation,
                "cache_dir": cache,
                "work_dir": WORK / name / "work",
                "output_dir": WORK / name / "out",
            }
        )

    # -- downloads: three formats of one revision into an empty cache
    cache = WORK / "cache-downloads"
    before = counter.file_bytes
    manifests = [run_builder(spec(f"dl-{fmt}", fmt, cache))[1] for fmt in ("fp8", "int4_awq", "int8_sq")]
    served = counter.file_bytes - before
    one = manifests[0].source.total_bytes
    print(f"\nhubsim served {served} file bytes for 3 formats of {repo_id}@{sha[:12]}")
    print(f"  one revision's files are {one} bytes")
    print(f"  downloaded_bytes in the manifests: {[m.source.downloaded_bytes for m in manifests]}")
    print(f"  {'OK: one download' if served == one else 'MISMATCH'}")
    print(f"  files fetched: {sorted(counter.downloads)}")

    # -- overhead per format
    cache = WORK / "cache-timing"
    run_builder(spec("warm", "fp8", cache))  # fill the cache and the OS page cache once
    snapshot = manifests[0].source.snapshot_dir
    header = f"{'format':10} {'builder s':>10} {'direct s':>10} {'ratio':>6} {'direct core s':>14}"
    print(f"\n{header}  builder stages (median s)")
    for fmt in opts.formats.split(","):
        built, direct, core, stages = [], [], [], []
        for rep in range(opts.reps):
            wall, m = run_builder(spec(f"{fmt}-{rep}", fmt, cache))
            built.append(wall)
            stages.append({s.name: s.wall_s or 0.0 for s in m.stages})
            args = {
                "model": snapshot,
                "text": recipe["calib_dataset"],
                "samples": opts.samples,
                "seq_len": opts.seq_len,
                "batch": opts.batch,
                "cfg": CONFIG_NAMES[fmt],
                "legacy": fmt == "int8_sq",
                "out": str(WORK / f"direct-{fmt}-{rep}"),
            }
            d_wall, d_core = run_direct(args)
            direct.append(d_wall)
            core.append(d_core)
        b, d = statistics.median(built), statistics.median(direct)
        per_stage = {
            k: round(statistics.median(s[k] for s in stages), 2) for k in stages[0] if k != "manifest"
        }
        print(f"{fmt:10} {b:10.2f} {d:10.2f} {b / d:6.2f} {statistics.median(core):14.2f}  {per_stage}")
    print(f"\n{opts.reps} runs each, medians; tiny Llama (hidden 128, 2 layers)")
    print(f"calibration {opts.samples} x {opts.seq_len} tokens, batch {opts.batch}; {os.cpu_count()} CPUs")
    print(f"builder validation: base and fake-quant perplexity on {opts.eval_tokens} tokens, 4-token sample")
    print(f"work dir: {WORK}")


if __name__ == "__main__":
    main()
