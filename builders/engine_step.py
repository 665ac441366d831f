"""One SM's engine from a checkpoint another worker made: what a remote engine task runs in its own process.

`python -m builders engine SPEC.json --sm 89 --checkpoint DIR --out DIR` (DESIGN.md, decision 2: quantize
once, compile per SM). The checkpoint is the release's files as downloaded from its draft PR at a pinned
revision; trtllm-build reads the legacy TensorRT-LLM checkpoint among them. The engine goes to
`OUT/trt-llm/engines/<label>/`, and `OUT/engine.json` records it — or records it "not built" with the
reason (no TensorRT-LLM, no GPU of that SM, no legacy checkpoint in the release), exactly as the engines
stage of a local build does. With `--serving REQUEST.json` the same task then runs the SM's serving check
(`builders.serving_check`: the release loaded by repo id at the draft's revision in each runtime installed
here that loads it), and `engine.json` carries its records under `serving`. Progress lines go to stdout like
every build's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from builders.artifacts import hash_folder
from builders.portable import portable_records
from builders.progress import Reporter
from builders.spec import BuildSpec, ServingRequest, write_json_atomic

RECORD_NAME = "engine.json"


def legacy_checkpoint(checkpoint: Path) -> Path | None:
    """The folder holding a legacy TensorRT-LLM checkpoint (config.json beside rank0.safetensors), if any."""
    found = sorted(
        p.parent for p in checkpoint.rglob("rank0.safetensors") if (p.parent / "config.json").is_file()
    )
    return found[0] if found else None


def run(
    spec: BuildSpec,
    sm: int,
    checkpoint: Path,
    out: Path,
    reporter: Reporter,
    serving: list[ServingRequest] | None = None,
) -> dict[str, Any]:
    """Build (or record why not) the engine for `sm`, then run its serving check when asked; returns and
    writes the records and the engine's artifacts."""
    from builders.environment import detect_device
    from builders.serving_check import check
    from builders.trtllm import build_engine, not_built_reason

    reporter.emit("engines", 0.0, f"engine for sm{sm}")
    device = detect_device(spec.device)
    reason = not_built_reason(spec, device, sm)
    legacy = None if reason else legacy_checkpoint(checkpoint)
    if not reason and legacy is None:
        reason = "the release holds no legacy TensorRT-LLM checkpoint (config.json + rank0.safetensors)"
    artifacts: list[dict[str, Any]] = []
    if reason:
        record: dict[str, Any] = {"sm": sm, "status": "not_built", "reason": reason}
    else:
        assert legacy is not None
        record = build_engine(legacy, out, sm, spec.engine)
        if record["status"] == "built":
            artifacts = hash_folder(out, record["path"], engine=True)
    reporter.emit(
        "engines", 0.5, f"sm{sm}: {record['status'].replace('_', ' ')}" + (f" ({reason})" if reason else "")
    )
    records = check(serving, device) if serving else []
    for served in records:
        reporter.emit("engines", 1.0, f"sm{sm} serving check, {served.runtime_name}: {served.summary}")
    result = {
        "record": record,
        "artifacts": artifacts,
        "serving": portable_records([r.model_dump(mode="json") for r in records]),
    }
    write_json_atomic(out / RECORD_NAME, result)
    return result


def main(spec_path: Path, sm: int, checkpoint: Path, out: Path, serving_path: Path | None = None) -> int:
    from builders.serving_check import read_requests

    reporter = Reporter.take_stdout()
    spec = BuildSpec.read(spec_path)
    serving = read_requests(serving_path) if serving_path else None
    record = run(spec, sm, checkpoint, out, reporter, serving)["record"]
    return 1 if record["status"] == "failed" else 0
