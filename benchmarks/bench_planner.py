"""How fast `quantbot plan` decides, and that deciding never imports torch.

    python benchmarks/bench_planner.py [MODEL_DIR] [--runs N]

MODEL_DIR is a folder with a config.json (default: a Mistral-7B config written to a temp dir). Prints:
the import time of the planner in a fresh interpreter and whether torch/transformers got imported; the
first plan (which reads and validates the matrix files); and the median of N warm runs of a whole plan
from the local folder (read config.json and the file list, map rows, decide 6 formats × 5 SMs). Exits 1
when the warm median is 50 ms or more, or when torch or transformers was imported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_MS = 50.0
SMS = (80, 89, 90, 100, 120)
MISTRAL = {
    "architectures": ["MistralForCausalLM"],
    "model_type": "mistral",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 8,
    "vocab_size": 32000,
    "torch_dtype": "bfloat16",
}
_IMPORT_PROBE = """
import sys, time
t = time.perf_counter()
import bot.eligibility.planner, bot.eligibility.facts, bot.eligibility.targets
ms = (time.perf_counter() - t) * 1000
print(ms, sorted({"torch", "transformers"} & set(sys.modules)))
"""


def import_cost() -> tuple[float, str]:
    """Milliseconds to import the planner in a fresh interpreter, and the heavy modules it pulled in."""
    probe = subprocess.run([sys.executable, "-c", _IMPORT_PROBE], capture_output=True, text=True, check=True)
    ms, heavy = probe.stdout.strip().split(" ", 1)
    return float(ms), heavy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", nargs="?", type=Path)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()

    import_ms, heavy = import_cost()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.model_dir
        if folder is None:
            folder = Path(tmp)
            (folder / "config.json").write_text(json.dumps(MISTRAL))

        from bot.eligibility.facts import facts_from_dir
        from bot.eligibility.planner import plan
        from bot.eligibility.targets import resolve_targets

        def one_plan() -> object:
            targets = resolve_targets(list(SMS), gpus=[])
            return plan(facts_from_dir(folder), targets.targets)

        start = time.perf_counter()
        one_plan()
        first_ms = (time.perf_counter() - start) * 1000
        timings = []
        for _ in range(args.runs):
            start = time.perf_counter()
            one_plan()
            timings.append((time.perf_counter() - start) * 1000)

    median = statistics.median(timings)
    p95 = sorted(timings)[int(len(timings) * 0.95) - 1]
    print(f"model: {folder if args.model_dir else 'Mistral-7B config (temp dir)'}, SMs {list(SMS)}")
    print(
        f"import bot.eligibility.planner (fresh interpreter): {import_ms:.1f} ms; "
        f"torch/transformers imported: {heavy}"
    )
    print(f"first plan (reads and validates the matrix files): {first_ms:.2f} ms")
    print(f"warm plan from the local folder, {args.runs} runs: median {median:.3f} ms, p95 {p95:.3f} ms")
    ok = median < TARGET_MS and heavy == "[]"
    print(f"target: median < {TARGET_MS:.0f} ms after import, no torch: {'met' if ok else 'NOT MET'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
