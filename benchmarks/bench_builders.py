"""Builder overhead, measured side by side on the tiny Llama: `quantbot build` against the toolchain called
directly, the verification worker's imports, and download sharing against a hubsim this script starts.

1. Wall time per format (fp8 through ModelOpt, gptq through GPTQModel), one rep after the other on the same
   local snapshot and the same calibration (the bundled text cut into consecutive windows):
   - `quantbot build SNAPSHOT --format F ...` as a user runs it: the command, which starts the builder
     worker through the launcher (bot/launcher/launch.py), which loads, calibrates, quantizes, exports,
     checks and validates the build and writes its manifest;
   - one process doing what a user of the toolchain writes by hand: load the model, quantize on the same
     calibration windows, export or save, save the tokenizer (ModelOpt: `mtq.quantize` +
     `export_hf_checkpoint`; GPTQModel: `GPTQModel.load` + `quantize` + `save`).
   Both start fresh processes, so both pay their imports. The builder also validates what it made, which
   the direct run does not: the base and the quantized model's perplexity on the held-out text and a
   generated sample (GPTQ: on its checkpoint reloaded as a user loads it), the structural checks and the
   invariance gate; that time (the validate stage, and the measurements the manifest records in load and
   quantize as `checked_s`) is printed and kept out of the ratio the target applies to. The rest of what a
   release needs stays in it: the quantized state saved for a resumed run, the upstream's metadata files
   kept as their own bytes (`save_pretrained` rewrites the tokenizer's), the artifacts' hashes, the
   manifest. Printed: medians, the whole ratio, the validation's seconds, the ratio without them (target
   <= 1.1), and the builder's stage times.
2. The verification worker's imports (`python -m builders verify`'s modules and transformers' AutoConfig and
   AutoTokenizer, which it reads releases with): as the command runs them now (without torch), and with
   torch importable, as it ran before.
3. Bytes fetched while three formats of one revision are built into one empty cache: one download.
   Skipped with --quick.

Run: ``python benchmarks/bench_builders.py [--reps 3] [--formats fp8,gptq] [--quick]``;
``--quick`` is one rep on a small calibration, without the downloads (what tests/builders runs). Exit
status: 0 every target met, 1 one missed, 2 something could not be measured.
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

ROOT = Path(__file__).resolve().parent.parent
TARGET = 1.1

MODELOPT = r"""
import copy, json, sys
args = json.loads(sys.argv[1])
import torch
import modelopt.torch.quantization as mtq
from modelopt.torch.export import export_hf_checkpoint
from transformers import AutoModelForCausalLM, AutoTokenizer
tok = AutoTokenizer.from_pretrained(args["model"])
model = AutoModelForCausalLM.from_pretrained(args["model"], dtype="auto").eval()
n, L, bs = args["samples"], args["seq_len"], args["batch"]
ids = tok(open(args["text"]).read(), add_special_tokens=False)["input_ids"]
samples = [ids[i : i + L] for i in range(0, n * L, L)]
batches = [torch.tensor(samples[i : i + bs]) for i in range(0, n, bs)]
calibrate = lambda m: [m(input_ids=b, use_cache=False) for b in batches]
mtq.quantize(model, copy.deepcopy(mtq.FP8_DEFAULT_CFG), calibrate)
with torch.inference_mode():
    export_hf_checkpoint(model, export_dir=args["out"])
tok.save_pretrained(args["out"])
"""

GPTQMODEL = r"""
import json, os, sys
args = json.loads(sys.argv[1])
os.environ.setdefault("GPTQMODEL_CPU_WORKERS", str(max(2, ((os.cpu_count() or 1) + 1) // 2)))
from gptqmodel import GPTQModel, QuantizeConfig
from transformers import AutoTokenizer
tok = AutoTokenizer.from_pretrained(args["model"])
n, L, bs = args["samples"], args["seq_len"], args["batch"]
ids = tok(open(args["text"]).read(), add_special_tokens=False)["input_ids"]
data = [{"input_ids": ids[i : i + L], "attention_mask": [1] * L} for i in range(0, n * L, L)]
qcfg = QuantizeConfig(bits=args["bits"], group_size=args["group_size"], desc_act=args["desc_act"])
model = GPTQModel.load(args["model"], qcfg, device="cpu")
os.chdir(args["work"])
model.quantize(data, batch_size=bs)
model.save(args["out"])
tok.save_pretrained(args["out"])
"""

DIRECT = {"fp8": MODELOPT, "gptq": GPTQMODEL}

IMPORTS = r"""
import sys, time
started = time.perf_counter()
import builders.__main__, builders.verify
if sys.argv[1] == "now":
    builders.verify.without_torch()
from transformers import AutoConfig, AutoTokenizer
import builders.readback
print(time.perf_counter() - started, bool(sys.modules.get("torch")))
"""


def _clean_env(work: Path) -> dict[str, str]:
    """This machine's environment without quantbot's settings, with the data dir and HF home in `work`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QUANTBOT_", "HF_"))}
    return env | {
        "QUANTBOT_DATA_DIR": str(work / "data"),
        "HF_HOME": str(work / "hf-home"),
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(ROOT),
    }


def run_quantbot(fmt: str, model: Path, opts: argparse.Namespace, folder: Path) -> tuple[float, float, dict]:
    """`quantbot build` on the local snapshot; its wall time, its validation's part of it, and the
    manifest's stage times."""
    command = [
        sys.executable, "-c", "from bot.cli import main; main()", "build", str(model), "--format", fmt,
        "--device", "cpu", "--kv-cache", "none", "--calib", str(opts.text),
        "--calib-samples", str(opts.samples), "--calib-seq-len", str(opts.seq_len),
        "--calib-batch-size", str(opts.batch), "--out", str(folder / "out"), "--work", str(folder / "work"),
    ]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, env=_clean_env(folder), cwd=folder.parent)
    wall = time.monotonic() - started
    if done.returncode != 0:
        _fail(f"quantbot build failed for {fmt}:\n{done.stderr[-3000:]}")
    manifest = json.loads((folder / "out" / "manifest.json").read_text())
    stages = {s["name"]: s.get("wall_s") or 0.0 for s in manifest["stages"]}
    checked = stages["validate"] + sum(s["details"].get("checked_s", 0.0) for s in manifest["stages"])
    return wall, checked, stages


def run_direct(fmt: str, model: Path, opts: argparse.Namespace, folder: Path) -> float:
    """The toolchain called by hand, in one fresh process; its wall time."""
    from builders.spec import Recipe

    recipe = Recipe()
    folder.mkdir(parents=True)
    args = {
        "model": str(model), "text": str(opts.text), "samples": opts.samples, "seq_len": opts.seq_len,
        "batch": opts.batch, "out": str(folder / "out"), "work": str(folder), "bits": recipe.gptq_bits,
        "group_size": recipe.gptq_group_size, "desc_act": recipe.gptq_desc_act,
    }  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", DIRECT[fmt], json.dumps(args)],
        capture_output=True,
        text=True,
        env=_clean_env(folder),
        cwd=folder,
    )
    wall = time.monotonic() - started
    if done.returncode != 0:
        _fail(f"the direct {fmt} run failed:\n{done.stderr[-3000:]}")
    return wall


def overhead(opts: argparse.Namespace, work: Path) -> bool:
    """Section 1; whether every format is within the target."""
    from builders.tiny import build_tiny_llama

    model = build_tiny_llama(work / "tiny-llama")
    print(
        f"\n{'format':8} {'quantbot s':>10} {'direct s':>9} {'ratio':>6} {'validation s':>12} "
        f"{'ratio without':>13}  quantbot stages (median s)"
    )
    ok = True
    for fmt in opts.formats:
        built, direct, checks, stages = [], [], [], []
        for rep in range(opts.reps):
            wall, checked, record = run_quantbot(fmt, model, opts, work / f"{fmt}-{rep}-quantbot")
            built.append(wall)
            checks.append(checked)
            stages.append(record)
            direct.append(run_direct(fmt, model, opts, work / f"{fmt}-{rep}-direct"))
        b, d, c = statistics.median(built), statistics.median(direct), statistics.median(checks)
        without = statistics.median(w - k for w, k in zip(built, checks, strict=True)) / d
        per_stage = {k: round(statistics.median(s[k] for s in stages), 2) for k in stages[0]}
        verdict = "PASS" if without <= TARGET else "FAIL"
        ok &= verdict == "PASS"
        print(
            f"{fmt:8} {b:10.2f} {d:9.2f} {b / d:6.2f} {c:12.2f} {without:13.2f}  {per_stage}   "
            f"target <= {TARGET}: {verdict}"
        )
    return ok


def imports(opts: argparse.Namespace) -> None:
    """Section 2: the verification worker's imports, now and with torch importable, as before."""
    print("\nverification worker's imports (median s):")
    for mode in ("before", "now"):
        runs = []
        for _ in range(opts.reps):
            done = subprocess.run(
                [sys.executable, "-c", IMPORTS, mode], capture_output=True, text=True, check=True, cwd=ROOT
            )
            took, torch = done.stdout.split()
            runs.append(float(took))
        label = "as the command runs now" if mode == "now" else "with torch importable (before)"
        print(f"  {label:32} {statistics.median(runs):6.2f} s, torch imported: {torch}")


def downloads(work: Path) -> bool:
    """Section 3: three formats of one revision built into one empty cache fetch it once."""
    from bot.hubsim import Directory, HubService, User
    from bot.hubsim.app import HubsimApp
    from bot.threaded_server import ThreadedServer
    from builders.spec import BuildSpec, Manifest
    from builders.tiny import build_tiny_llama, calibration_text_path, push_upstream

    user = User("bench", "hf_bench_token")
    fetched: list[str] = []

    async def counting(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and "/resolve/" in scope["path"]:
            fetched.append(scope["path"].rsplit("/", 1)[-1])
        await hub(scope, receive, send)

    hub = HubsimApp(HubService(Directory([user], [])))
    with ThreadedServer(counting, name="hubsim", lifespan="off") as server:
        repo = "bench/tiny-llama"
        sha = push_upstream(build_tiny_llama(work / "upstream"), repo, endpoint=server.url, token=user.token)
        env = _clean_env(work) | {"HF_ENDPOINT": server.url, "HF_TOKEN": user.token}
        env.pop("HF_HUB_OFFLINE")
        manifests = []
        for fmt in ("fp8", "int4_awq", "gptq"):
            spec = BuildSpec.model_validate(
                {
                    "repo_id": repo, "revision": sha, "format": fmt, "cache_dir": work / "cache",
                    "recipe": {"calib_dataset": str(calibration_text_path()), "calib_samples": 8,
                               "calib_seq_len": 64},
                    "work_dir": work / f"dl-{fmt}" / "work", "output_dir": work / f"dl-{fmt}" / "out",
                }
            )  # fmt: skip
            path = spec.write(work / f"dl-{fmt}.json")
            done = subprocess.run(
                [sys.executable, "-m", "builders", "run", str(path)], capture_output=True, text=True, env=env
            )
            if done.returncode != 0:
                _fail(f"builder failed for {fmt}:\n{done.stderr[-3000:]}")
            manifests.append(Manifest.read(spec.manifest_path))
    sources = [m.source for m in manifests if m.source is not None]
    sizes = [source.downloaded_bytes for source in sources]
    total = sources[0].total_bytes
    once = sizes == [total, 0, 0] and len(fetched) == len(set(fetched))
    print(f"\n3 formats of {repo}@{sha[:12]} into one empty cache: downloaded bytes per build {sizes}")
    print(f"  the revision is {total} bytes; files fetched: {sorted(fetched)}")
    print(f"  {'OK: one download' if once else 'MISMATCH'}")
    return once


def _fail(message: str) -> None:
    """A run that could not be measured: exit 2 (1 is a target missed)."""
    print(message, file=sys.stderr)
    raise SystemExit(2)


def main() -> int:
    from builders.tiny import calibration_text_path

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--formats", default="fp8,gptq")
    parser.add_argument("--samples", type=int, default=32, help="calibration windows")
    parser.add_argument("--seq-len", type=int, default=128, help="tokens per calibration window")
    parser.add_argument("--batch", type=int, default=8, help="calibration batch")
    parser.add_argument("--quick", action="store_true", help="one rep, 8 windows of 64 tokens, no downloads")
    opts = parser.parse_args()
    opts.formats = opts.formats.split(",")
    if not set(opts.formats) <= set(DIRECT):
        parser.error(f"--formats: of {', '.join(DIRECT)}")
    if opts.quick:
        opts.reps, opts.samples, opts.seq_len, opts.batch = 1, 8, 64, 4
    opts.text = calibration_text_path()
    print(f"tiny Llama (hidden 128, 2 layers); calibration {opts.samples} x {opts.seq_len} tokens, batch "
          f"{opts.batch}; {opts.reps} rep(s), medians; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="quantbot-bench-") as tmp:
        work = Path(tmp)
        ok = overhead(opts, work)
        imports(opts)
        if not opts.quick:
            ok &= downloads(work)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
