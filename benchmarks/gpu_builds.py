"""The ModelOpt formats built on a CUDA GPU through the real worker, for docs/gpu-builds.md.

Builds a small random Llama (default ~100M parameters, bf16) into a local folder, runs
``python -m builders run`` for each ModelOpt format with ``device: cuda`` and a target SM equal to the
GPU's, and prints (and writes as JSON) what each manifest measured: stage times, peak CUDA memory,
perplexities, the engine record, the toolchain. Needs a CUDA GPU; nothing here is simulated.

Run: ``python benchmarks/gpu_builds.py --out DIR [--work DIR] [--formats fp8,int4_awq,...]``; the
summary is ``DIR/gpu-builds.json`` and each worker's log ``DIR/<format>.log``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="Where the summary and the logs go.")
    parser.add_argument("--work", type=Path, default=Path(tempfile.mkdtemp(prefix="gpu-builds-")))
    parser.add_argument("--formats", default="fp8,int4_awq,w4a8_awq,nvfp4,int8_sq")
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--samples", type=int, default=128)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--batch", type=int, default=16)
    opts = parser.parse_args()

    import torch

    from builders.spec import BuildSpec, Manifest
    from builders.tiny import build_tiny_llama, calibration_text_path

    assert torch.cuda.is_available(), "this script measures CUDA builds; no GPU here"
    props = torch.cuda.get_device_properties(0)
    sm = props.major * 10 + props.minor
    root = opts.work
    opts.out.mkdir(parents=True, exist_ok=True)
    model = build_tiny_llama(root / "model", hidden_size=opts.hidden, num_layers=opts.layers)
    results = []
    for fmt in opts.formats.split(","):
        spec = BuildSpec.model_validate(
            {
                "local_dir": model,
                "format": fmt,
                "device": "cuda",
                "target_sms": [sm],
                "recipe": {
                    "calib_dataset": str(calibration_text_path()),
                    "calib_samples": opts.samples,
                    "calib_seq_len": opts.seq_len,
                    "calib_batch_size": opts.batch,
                    "kv_cache": "int8" if fmt == "int8_sq" else "fp8",
                },
                "work_dir": root / fmt / "work",
                "output_dir": root / fmt / "out",
            }
        )
        path = spec.write(root / fmt / "spec.json")
        t0 = time.monotonic()
        worker = [sys.executable, "-m", "builders", "run", str(path)]
        done = subprocess.run(worker, capture_output=True, text=True)
        wall = round(time.monotonic() - t0, 2)
        (opts.out / f"{fmt}.log").write_text(done.stderr)
        m = Manifest.read(spec.manifest_path)
        ppl = m.validation.perplexity if m.validation else None
        calib = m.quantization.calibration if m.quantization else None
        row = {
            "format": fmt,
            "exit": done.returncode,
            "status": m.status,
            "process_wall_s": wall,
            "stages_s": {s.name: s.wall_s for s in m.stages},
            "cuda_peak_mib": {s.name: round((s.cuda_peak_bytes or 0) / 2**20, 1) for s in m.stages},
            "calibration": calib.model_dump() if calib else None,
            "quant_algo": m.quantization.quant_algo if m.quantization else None,
            "kv_cache_quant_algo": m.quantization.kv_cache_quant_algo if m.quantization else None,
            "checkpoint_mib": round(sum(a.size for a in m.artifacts) / 2**20, 1),
            "perplexity": ppl.model_dump() if ppl else None,
            "checks_ok": [c.ok for c in m.validation.checks] if m.validation else None,
            "engines": [e.model_dump() for e in m.engines],
            "errors": [e.model_dump() for e in m.errors],
        }
        results.append(row)
        print(json.dumps(row), flush=True)
    summary = {
        "device": m.device.model_dump() if m.device else None,
        "toolchain": m.toolchain.model_dump() if m.toolchain else None,
        "model": {
            "hidden": opts.hidden,
            "layers": opts.layers,
            "parameters": m.source.num_parameters if m.source else None,
        },
        "results": results,
    }
    (opts.out / "gpu-builds.json").write_text(json.dumps(summary, indent=2, default=str))
    print(json.dumps({k: summary[k] for k in ("device", "toolchain", "model")}, default=str))


if __name__ == "__main__":
    main()
