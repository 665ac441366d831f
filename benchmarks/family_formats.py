"""The family × format table, as measured on this machine: for each tiny family repo (made here, no download)
and each format, whether `plan` offers it on the SM asked (else its reason, with its source), whether the
build succeeds (`quantbot build` from a local folder, small calibration, started in an empty folder that must
stay empty), whether the release loads from its folder and generates by the card's transformers snippet (GPTQ;
no CPU runtime loads ModelOpt's formats, whose fake-quantized model generated during the build instead; a
vision-language model's also from an image, where its processor runs here), and the build's wall time.
nvfp4 needs CUDA to calibrate; it is planned but not built without a GPU.

Run: ``python benchmarks/family_formats.py [--families qwen3_moe,phi3_remote] [--formats fp8,gptq] [--sm 90]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

WORK = Path(tempfile.mkdtemp(prefix="quantbot-families-"))
os.environ["HF_HOME"] = str(WORK / "hf-home")
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"

FAMILIES = ("llama3", "qwen2", "qwen3_moe", "mixtral", "phi3_remote", "qwen2_5_vl", "llava")
FORMATS = ("fp8", "int8_sq", "int4_awq", "w4a8_awq", "nvfp4", "gptq")
GPTQMODEL = (
    "import os; os.environ.setdefault('GPTQMODEL_CPU_WORKERS', '2'); from gptqmodel import GPTQModel; "
    "from transformers import AutoTokenizer; t = AutoTokenizer.from_pretrained('{path}'); "
    "m = GPTQModel.load('{path}', device='cpu').model; "
    "print(t.decode(m.generate(**t('Alice was', return_tensors='pt'), max_new_tokens=4)[0]))"
)


def make(family: str) -> Path:
    from builders.tiny import build_tiny_llama3, build_tiny_qwen2
    from builders.tiny_families import build_tiny_family

    dest = WORK / "repos" / family
    if family == "llama3":
        return build_tiny_llama3(dest)
    if family == "qwen2":
        return build_tiny_qwen2(dest)
    return build_tiny_family(dest, family)


def planned(folder: Path, sm: int) -> dict[str, str]:
    """Format → "offered" or the plan's reason."""
    from bot.eligibility.facts import facts_from_dir
    from bot.eligibility.planner import PlanOptions, plan
    from bot.eligibility.targets import target_for

    result = plan(
        facts_from_dir(folder),
        [target_for(sm)],
        PlanOptions(trust_remote_code_repos=frozenset({str(folder)})),
    )
    target = result.targets[0]
    return {e.format: "offered" for e in target.eligible} | {s.format: s.reason for s in target.skipped}


def build(folder: Path, family: str, fmt: str, sm: int) -> dict[str, str]:
    where = WORK / "builds" / f"{family}-{fmt}"
    cwd = where / "cwd"
    cwd.mkdir(parents=True)
    trust = ["--trust-remote-code"] if family == "phi3_remote" else []
    t0 = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from bot.cli import main; main()",
            "build",
            str(folder),
            "--format",
            fmt,
            "--calib",
            "bundled",
            "--calib-samples",
            "8",
            "--calib-seq-len",
            "64",
            "--sm",
            str(sm),
            "--out",
            str(where / "out"),
            "--work",
            str(where / "work"),
            *trust,
        ],
        capture_output=True,
        text=True,
        cwd=cwd,
    )
    row = {"built": "yes" if done.returncode == 0 else "no", "build_s": f"{time.monotonic() - t0:.0f}"}
    manifest = json.loads((where / "out" / "manifest.json").read_text())
    if done.returncode:
        row["reason"] = "; ".join(e["message"] for e in manifest.get("errors", []))[:300]
    row["left_in_cwd"] = ", ".join(p.name for p in cwd.iterdir()) or "nothing"
    sample = (manifest.get("validation") or {}).get("sample") or {}
    row["generates"] = f"{sample.get('new_tokens', 0)} tokens" if sample else "not measured"
    quantize: dict[str, Any] = next(
        (s["details"] for s in manifest.get("stages", []) if s["name"] == "quantize"), {}
    )
    image = quantize.get("image_sample")  # a vision-language model's answer about an image, or why not
    if image:
        row["generates"] += (
            f", image: {image['new_tokens']} tokens"
            if "new_tokens" in image
            else (f", image: not run ({image['not_run'][:120]})")
        )
    if (
        done.returncode == 0 and fmt == "gptq"
    ):  # the card's transformers snippet, else GPTQModel, on the folder
        from bot.eligibility.facts import facts_from_dir
        from bot.eligibility.planner import runs_family
        from bot.publishing.usage import runnable_snippet

        snippet = runnable_snippet(fmt, str(where / "out"), trust_remote_code=bool(trust))
        code = GPTQMODEL.format(path=where / "out")
        if snippet and runs_family("transformers", fmt, facts_from_dir(folder))[0]:
            code = snippet.code
        load = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        ok = load.returncode == 0 and "MISSING" not in load.stderr
        row["loads"] = "yes, generates" if ok else f"no: {load.stderr.strip()[-200:]}"
    elif done.returncode == 0:
        row["loads"] = "no CPU runtime loads it (fake-quantized model generated during the build)"
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument("--sm", type=int, default=90)
    args = parser.parse_args()
    try:
        import torch

        cuda = torch.cuda.is_available()
    except ImportError:
        cuda = False
    print(f"| family | format | plan (sm{args.sm}) | built | build s | loads from its folder | left in cwd |")
    print("|---|---|---|---|---|---|---|")
    for family in args.families.split(","):
        folder = make(family)
        decided = planned(folder, args.sm)
        for fmt in args.formats.split(","):
            verdict = decided[fmt]
            if verdict != "offered":
                print(f"| {family} | {fmt} | no: {verdict} | — | — | — | — |", flush=True)
                continue
            if fmt == "nvfp4" and not cuda:
                print(f"| {family} | {fmt} | offered | not run: NVFP4 calibration needs CUDA | — | — | — |")
                continue
            row = build(folder, family, fmt, args.sm)
            built = row["built"] + (f": {row['reason']}" if "reason" in row else "")
            print(
                f"| {family} | {fmt} | offered | {built} | {row['build_s']} | {row.get('loads', '—')}; "
                f"build sample {row['generates']} | {row['left_in_cwd']} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
