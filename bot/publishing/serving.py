"""The serving check of a release, asked and shown: which runtimes each SM's check loads the release in (from
the runtime table), the check run on this machine after a one-machine upload, and the card's "Tested on" rows.

The check itself runs where the GPU is (builders/serving_check.py): in the per-SM task of a fanned-out job
(the release's draft PR, by repo id at its pinned revision), or on the machine that published a local build.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from bot.eligibility.sm_steps import serving_loaders
from bot.publishing.usage import NEW_TOKENS, PROMPT
from bot.publishing.verification import run_worker
from bot.settings import Settings
from builders.spec import BuildSpec, ServingRecord, ServingRequest, ServingRuntime

_TIMEOUT_S = 3600


def serving_requests(spec: BuildSpec, repo_id: str, revision: str, sms: list[int]) -> list[ServingRequest]:
    """One request per SM: the runtimes of the table that load the format on that SM and that the serving
    check drives (TensorRT-LLM's PyTorch backend, vLLM, SGLang, transformers)."""
    requests = []
    for sm in sms:
        runtimes = [
            ServingRuntime(id=runtime.id, name=runtime.name, cpu=cell.min_sm == 0 and not cell.sms)
            for runtime, cell in serving_loaders(spec.format, sm)
        ]
        requests.append(
            ServingRequest(
                repo_id=repo_id,
                revision=revision,
                sm=sm,
                runtimes=runtimes,
                prompt=PROMPT,
                max_new_tokens=NEW_TOKENS,
                trust_remote_code=spec.trust_remote_code,
            )
        )
    return requests


def requests_json(requests: list[ServingRequest]) -> str:
    return json.dumps([r.model_dump(mode="json") for r in requests])


def run_serving(settings: Settings, requests: list[ServingRequest]) -> list[ServingRecord]:
    """`python -m builders serve` on this machine; a worker that fails leaves each runtime "failed", why."""
    if not any(r.runtimes for r in requests):
        return []
    text, why = run_worker(
        settings,
        "serve",
        requests_json(requests),
        name="serving check",
        repo_id=requests[0].repo_id,
        timeout_s=_TIMEOUT_S,
    )
    if text is None:
        return [
            ServingRecord(
                sm=r.sm,
                runtime=rt.id,
                runtime_name=rt.name,
                status="failed",
                reason=why[:400],
                repo_id=r.repo_id,
                revision=r.revision,
            )
            for r in requests
            for rt in r.runtimes
        ]
    return [ServingRecord.model_validate(item) for item in json.loads(text)]


@dataclass(frozen=True)
class ServingRow:
    """One row of the card's "Tested on" table."""

    gpu: str
    sm: str
    runtime: str
    loads: str
    tokens_per_s: str
    load_s: str
    memory: str


def serving_rows(records: list[ServingRecord]) -> list[ServingRow]:
    """The card's rows: where each runtime was tried, and what it did; a row that did not run says why and
    shows no figure."""
    rows = []
    for r in records:
        version = f"{r.runtime_name} {r.version}" if r.version else r.runtime_name
        if r.status == "passed":
            cpu = r.device == "cpu"
            rows.append(
                ServingRow(
                    gpu=f"none: CPU ({r.gpu})" if cpu else str(r.gpu),
                    sm=f"sm{r.sm} task, run on CPU" if cpu else f"sm{r.device_sm}",
                    runtime=f"{version} (CPU)" if cpu else version,
                    loads="yes",
                    tokens_per_s=f"{r.tokens_per_s} (CPU, transformers)" if cpu else f"{r.tokens_per_s}",
                    load_s=f"{r.load_s} s",
                    memory=_gib(r.peak_gpu_memory_bytes),
                )
            )
            continue
        verdict = "no: " if r.status == "failed" else "not run: "
        why = r.reason.replace("|", "\\|").replace("\n", " ")
        rows.append(ServingRow(r.gpu or "—", f"sm{r.sm}", version, verdict + why, "—", "—", "—"))
    return rows


def _gib(size: int | None) -> str:
    return f"{size / 2**30:.2f} GiB" if size is not None else "—"
