"""One SM's serving check: the release loaded by repo id in each runtime installed on this worker that the
runtime table says loads it there, one greedy generation from the card's prompt, and what that cost.

Since TensorRT-LLM 1.3 the PyTorch backend is its only one: Hugging Face checkpoints load directly with
`LLM(model=...)` and no engine is built. For it, vLLM and SGLang, what a GPU of an SM adds to a release is
proof that the release loads and generates there, at a measured speed, so the per-SM task runs this check
(`python -m builders engine … --serving REQUEST.json`, or `python -m builders serve` after a local upload).
transformers (GPTQ through GPTQModel) also runs on a CPU worker, and its record says CPU.

Each GPU runtime runs in a child process of its own (a runtime's CUDA state and worker processes end with it).
A runtime that is not installed, a worker without a GPU of that SM, or a TensorRT-LLM ≤ 1.2 (whose SM step is
the engine) is recorded "not run" with the reason, never with a figure.
"""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from builders.portable import portable_records
from builders.spec import Device, ServingRecord, ServingRequest, ServingRuntime, write_json_atomic

RESULT_NAME = "serving.json"
_SAMPLE_S = 0.05


@dataclass(frozen=True)
class _Driver:
    """How one runtime loads a repo id at a revision on a device, generates, and lets go."""

    distributions: tuple[str, ...]
    load: Callable[[ServingRequest, str], Any]
    generate: Callable[[Any, ServingRequest], tuple[str, int]]
    minimum: tuple[int, int] | None = None  # the first version whose check this is (older: the engine)


def _llm_generate(llm: Any, request: ServingRequest, sampling: Any) -> tuple[str, int]:
    """vLLM's and TensorRT-LLM's `LLM.generate`: one prompt, its first completion's text and tokens."""
    completion = llm.generate([request.prompt], sampling)[0].outputs[0]
    return completion.text, len(completion.token_ids)


def _llm_options(request: ServingRequest) -> dict[str, Any]:
    """What vLLM's and TensorRT-LLM's `LLM` are told besides the repo id: the pinned revision, for both."""
    return {
        "revision": request.revision,
        "tokenizer_revision": request.revision,
        "trust_remote_code": request.trust_remote_code,
    }


def _trtllm_load(request: ServingRequest, device: str) -> Any:
    from tensorrt_llm import LLM

    return LLM(model=request.repo_id, **_llm_options(request))


def _trtllm_generate(llm: Any, request: ServingRequest) -> tuple[str, int]:
    from tensorrt_llm import SamplingParams

    return _llm_generate(llm, request, SamplingParams(max_tokens=request.max_new_tokens, temperature=0.0))


def _vllm_load(request: ServingRequest, device: str) -> Any:
    from vllm import LLM

    return LLM(model=request.repo_id, **_llm_options(request))


def _vllm_generate(llm: Any, request: ServingRequest) -> tuple[str, int]:
    from vllm import SamplingParams

    return _llm_generate(llm, request, SamplingParams(max_tokens=request.max_new_tokens, temperature=0.0))


def _sglang_load(request: ServingRequest, device: str) -> Any:
    import sglang

    return sglang.Engine(
        model_path=request.repo_id, revision=request.revision, trust_remote_code=request.trust_remote_code
    )


def _sglang_generate(engine: Any, request: ServingRequest) -> tuple[str, int]:
    out = engine.generate(request.prompt, {"max_new_tokens": request.max_new_tokens, "temperature": 0.0})
    return str(out["text"]), int(out["meta_info"]["completion_tokens"])


def _hf_load(request: ServingRequest, device: str) -> Any:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    options = {"revision": request.revision, "trust_remote_code": request.trust_remote_code}
    tokenizer = AutoTokenizer.from_pretrained(request.repo_id, **options)
    model = AutoModelForCausalLM.from_pretrained(request.repo_id, device_map=device, **options)
    return tokenizer, model


def _hf_generate(loaded: Any, request: ServingRequest) -> tuple[str, int]:
    tokenizer, model = loaded
    inputs = tokenizer(request.prompt, return_tensors="pt").to(model.device)
    out = model.generate(**inputs, max_new_tokens=request.max_new_tokens, do_sample=False)
    new = out[0, inputs["input_ids"].shape[1] :]
    return tokenizer.decode(new, skip_special_tokens=True), int(new.numel())


DRIVERS: dict[str, _Driver] = {
    "trtllm_pytorch": _Driver(("tensorrt_llm", "tensorrt-llm"), _trtllm_load, _trtllm_generate, (1, 3)),
    "vllm": _Driver(("vllm",), _vllm_load, _vllm_generate),
    "sglang": _Driver(("sglang",), _sglang_load, _sglang_generate),
    "transformers": _Driver(("transformers",), _hf_load, _hf_generate),
}


def check(requests: list[ServingRequest], device: Device) -> list[ServingRecord]:
    """Every runtime of every SM's request on this worker: run where it can run, else "not run" and why.

    A CPU run is the same for every SM, so it is measured once, under the first SM asked."""
    records: list[ServingRecord] = []
    for request in requests:
        for runtime in request.runtimes:
            version, reason, where = _placement(request, runtime, device)
            first = next((r for r in records if r.runtime == runtime.id and r.device == "cpu"), None)
            if where == "cpu" and not reason and first is not None:
                reason = f"measured once on this worker's CPU, under sm{first.sm}"
            if reason:
                records.append(_record(request, runtime, version, status="not_run", reason=reason))
            else:
                records.append(_run_apart(request, runtime, version, where, device))
    return records


def _placement(
    request: ServingRequest, runtime: ServingRuntime, device: Device
) -> tuple[str | None, str, str]:
    """(installed version, why it cannot run here or "", the device it runs on)."""
    driver = DRIVERS.get(runtime.id)
    if driver is None:
        return None, f"the serving check has no way to run {runtime.name}", ""
    version = _installed(driver.distributions)
    if version is None:
        return None, f"{runtime.name} is not installed on this worker", ""
    if driver.minimum and _release(version) < driver.minimum:
        low = ".".join(map(str, driver.minimum))
        return (
            version,
            (
                f"{runtime.name} {version} on this worker builds engines (trtllm-build); the serving "
                f"check needs TensorRT-LLM ≥ {low}, whose PyTorch backend loads the checkpoint directly"
            ),
            "",
        )
    if device.kind == "cuda" and device.sm == request.sm:
        return version, "", "cuda"
    if device.kind != "cuda":
        return version, ("" if runtime.cpu else "no CUDA GPU on this worker"), "cpu"
    return version, f"this worker's GPU is sm{device.sm} ({device.name}), not sm{request.sm}", ""


def _installed(distributions: tuple[str, ...]) -> str | None:
    for name in distributions:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def _release(version: str) -> tuple[int, ...]:
    from packaging.version import InvalidVersion, Version

    try:
        return Version(version).release[:2]
    except InvalidVersion:
        return (0, 0)


def _record(
    request: ServingRequest, runtime: ServingRuntime, version: str | None, **fields: Any
) -> ServingRecord:
    return ServingRecord(
        sm=request.sm,
        runtime=runtime.id,
        runtime_name=runtime.name,
        version=version,
        repo_id=request.repo_id,
        revision=request.revision,
        **fields,
    )


def _run_apart(
    request: ServingRequest, runtime: ServingRuntime, version: str | None, where: str, device: Device
) -> ServingRecord:
    """One runtime on a GPU in a fresh child process (its CUDA state and worker processes end with it, and a
    crash there is this runtime's failure, not the task's); on the CPU in this process."""
    ran = {"device": where, "gpu": device.name, "device_sm": device.sm if where == "cuda" else None}
    try:
        if where == "cpu":
            measured = measure(runtime.id, request.model_dump_json(), where)
        else:
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                measured = pool.submit(measure, runtime.id, request.model_dump_json(), where).result()
    except Exception as e:  # the child died (a CUDA fault, OOM) or the runtime raised
        return _record(
            request, runtime, version, status="failed", reason=f"{type(e).__name__}: {e}"[:400], **ran
        )
    return _record(request, runtime, version, status="passed", **ran, **measured)


def measure(runtime_id: str, request_json: str, device: str) -> dict[str, Any]:
    """Download the release by repo id into the Hub cache, then load it from there by the same id and generate
    once: each step timed apart, GPU memory sampled while the runtime loads and generates."""
    from huggingface_hub import snapshot_download

    request = ServingRequest.model_validate_json(request_json)
    driver = DRIVERS[runtime_id]
    started = time.monotonic()
    snapshot_download(request.repo_id, revision=request.revision)  # HF_ENDPOINT, HF_TOKEN: the worker's
    download_s = time.monotonic() - started
    with _GpuMemory(device == "cuda") as memory:
        started = time.monotonic()
        loaded = driver.load(request, device)
        load_s = time.monotonic() - started
        started = time.monotonic()
        text, tokens = driver.generate(loaded, request)
        generate_s = time.monotonic() - started
    return {
        "download_s": round(download_s, 3),
        "load_s": round(load_s, 3),
        "generate_s": round(generate_s, 3),
        "new_tokens": tokens,
        "tokens_per_s": round(tokens / generate_s, 2) if generate_s > 0 else None,
        "peak_gpu_memory_bytes": memory.peak,
        "output": text[:500],
    }


class _GpuMemory:
    """The device's memory in use, sampled in a thread (runtimes allocate in their own worker processes
    too, so a process's own allocator peak would miss them); the peak less what was in use before."""

    def __init__(self, on_gpu: bool) -> None:
        self.on_gpu = on_gpu
        self.peak: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._base = 0
        self._high = 0

    def __enter__(self) -> _GpuMemory:
        if self.on_gpu:
            self._base = self._high = _in_use()
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.on_gpu:
            self._stop.set()
            self._thread.join()
            self.peak = max(0, max(self._high, _in_use()) - self._base)

    def _sample(self) -> None:
        while not self._stop.wait(_SAMPLE_S):
            self._high = max(self._high, _in_use())


def _in_use() -> int:
    import torch

    free, total = torch.cuda.mem_get_info()
    return int(total - free)


def read_requests(path: Path) -> list[ServingRequest]:
    """A JSON list of requests, one per SM."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return [ServingRequest.model_validate(item) for item in data]


def main(request_path: Path, result_path: Path) -> int:
    """`python -m builders serve REQUESTS.json RESULT.json`: the checks of a list of SMs on this worker."""
    from builders.environment import detect_device

    requests = read_requests(request_path)
    records = check(requests, detect_device("auto"))
    write_json_atomic(result_path, portable_records([r.model_dump(mode="json") for r in records]))
    return 0
