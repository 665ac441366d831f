"""The card sections every release shares, each true of this build: how to run it and on which GPUs (the
runtime table), what was quantized, what was uploaded (the artifact tree), what the post-upload check found,
which tool quantized it, and the evaluation as `model-index` metadata so the Hub shows it.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from huggingface_hub import EvalResult
from huggingface_hub.repocard_data import eval_results_to_model_index

from bot.eligibility.matrices import load_runtimes
from bot.eligibility.planner import producer_footnotes
from bot.publishing.gpus import gpu_lines
from bot.publishing.layout import layout_tree
from bot.publishing.scope import quantized_scope
from bot.publishing.serving import serving_rows
from bot.publishing.usage import NEW_TOKENS, is_chat_model, runs_with, usages, wrong_loaders
from bot.publishing.verification import verification_line
from builders.spec import MANIFEST_NAME, Manifest

if TYPE_CHECKING:
    from bot.publishing.upstream import Upstream

_PRODUCERS = {"modelopt": "ModelOpt", "gptqmodel": "GPTQModel", "gptq": "GPTQModel"}


def release_paths(manifest: Manifest, extra_files: tuple[str, ...] | list[str]) -> list[str]:
    """Every file the release uploads: the artifacts, the licence files, the card and the manifest."""
    return sorted({a.path for a in manifest.artifacts} | set(extra_files) | {"README.md", MANIFEST_NAME})


def quantized_with(manifest: Manifest) -> str | None:
    """`ModelOpt 0.47.0` / `GPTQModel 7.6.0`: the tool that quantized, never the runtime."""
    quant = manifest.quantization
    if quant is None:
        return None
    name = _PRODUCERS.get(quant.producer, quant.producer)
    return f"{name} {quant.producer_version}" if quant.producer_version else name


def calibration_dataset_id(manifest: Manifest) -> str | None:
    """The calibration set's Hub id, when it came from the Hub (a local text file has none to name)."""
    quant = manifest.quantization
    dataset = quant.calibration.dataset if quant and quant.calibration else None
    if not dataset or PurePosixPath(dataset).suffix or dataset.startswith(("/", ".")):
        return None
    return dataset


def eval_metadata(manifest: Manifest, repo_id: str) -> dict[str, Any]:
    """`model-index` with the measured perplexity (corpus, tokens); `datasets:` naming the calibration set."""
    out: dict[str, Any] = {}
    ppl = manifest.validation.perplexity if manifest.validation and manifest.validation.ok else None
    if ppl is not None and ppl.quantized is not None:
        result = EvalResult(
            task_type="text-generation",
            task_name="Text Generation",
            dataset_type=ppl.text,
            dataset_name=ppl.text,
            metric_type="perplexity",
            metric_value=round(ppl.quantized, 4),
            metric_name=f"Perplexity ({ppl.tokens} tokens, windows of {ppl.seq_len})",
        )
        out["model-index"] = eval_results_to_model_index(repo_id.rpartition("/")[2], [result])
    dataset = calibration_dataset_id(manifest)
    if dataset:
        out["datasets"] = [dataset]
    return out


def shared_sections(
    manifest: Manifest, upstream: Upstream, *, repo_id: str, kv_cache: str | None
) -> dict[str, Any]:
    """The template values both card templates use."""
    spec = manifest.require_spec()
    fmt, record = spec.format, manifest.verification
    family = upstream.family()
    return {
        "runs_with": runs_with(fmt, family),
        "producer_notes": producer_footnotes(fmt, family) if family else [],
        "runtime_table_label": load_runtimes().label,
        "wrong_loaders": wrong_loaders(fmt),
        "gpu_lines": gpu_lines(fmt),
        "quantized_scope": quantized_scope(manifest, kv_cache),
        "usages": usages(
            fmt,
            repo_id,
            chat=is_chat_model(manifest),
            trust_remote_code=spec.trust_remote_code,
            family=family,
        ),
        "layout": layout_tree(release_paths(manifest, upstream.licence_files)),
        "licence_files": list(upstream.licence_files),
        "verification_line": verification_line(record) if record else None,
        "tested_on": serving_rows(manifest.serving),
        "tested_revision": manifest.serving[0].revision[:12] if manifest.serving else "",
        "tested_tokens": NEW_TOKENS,
        "quantized_with": quantized_with(manifest),
    }
