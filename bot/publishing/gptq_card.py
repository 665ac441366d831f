"""The GPTQ card's context: what GPTQModel made, how it measured, and who publishes it.

A value the manifest does not hold is None, and the template leaves its row out (DESIGN.md, decision 8).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bot.publishing import figures
from bot.publishing.card_sections import eval_metadata, shared_sections
from bot.publishing.upstream import Upstream
from builders.spec import MANIFEST_NAME, Manifest

NO_KV_CACHE = "not quantized (model dtype)"  # GPTQModel quantizes weights only


@dataclass(frozen=True)
class Byline:
    """Who publishes (from the settings): shown on GPTQ cards instead of the seed's invented vendor."""

    name: str | None
    url: str | None = None


def gptq_context(
    manifest: Manifest, upstream: Upstream, *, repo_id: str, endpoint: str, byline: Byline
) -> dict[str, Any]:
    """Every value the GPTQ card shows, from the manifest, the upstream facts and who publishes."""
    quant, device = manifest.quantization, manifest.device
    calib = quant.calibration if quant else None
    bits = figures.bits(manifest)
    validation = figures.validation_table(manifest)
    ppl = manifest.validation.perplexity if manifest.validation else None
    perplexity_rows = []
    if ppl and ppl.base is not None:
        perplexity_rows.append({"model": f"Base model ({upstream.repo_id})", "score": ppl.base_figure()})
    if ppl and ppl.quantized is not None:
        perplexity_rows.append({"model": f"GPTQ {bits}-bit (this model)", "score": ppl.quantized_figure()})
    size = sum(a.size for a in manifest.artifacts)
    base_size = manifest.source.total_bytes if manifest.source else 0
    inference_rows = []
    if size:
        inference_rows.append({"metric": "Model Size", "value": figures.human_size(size)})
    if size and base_size:
        inference_rows.append({"metric": "Base Model Size", "value": figures.human_size(base_size)})
    tested = []
    if device is not None:
        tested.append(device.name if device.kind == "cuda" else f"CPU: {device.name}")
    if manifest.toolchain and manifest.toolchain.cuda:
        tested.append(f"CUDA Version: {manifest.toolchain.cuda}")
    if manifest.toolchain and manifest.toolchain.driver:
        tested.append(f"Driver Version: {manifest.toolchain.driver}")
    model_name = upstream.repo_id.rpartition("/")[2]
    finished = manifest.finished_at or manifest.started_at
    metadata = {
        **upstream.licence_metadata(),
        **({"language": upstream.language} if upstream.language else {}),
        "library_name": "transformers",
        "tags": ["gptq", "quantized", "gptqmodel"] + ([f"{bits}-bit"] if bits else []),
        "base_model": upstream.repo_id,
        "base_model_relation": "quantized",
        **({"pipeline_tag": upstream.pipeline_tag} if upstream.pipeline_tag else {}),
        **upstream.gate_metadata(),
        **eval_metadata(manifest, repo_id),
    }
    return {
        **shared_sections(manifest, upstream, repo_id=repo_id, kv_cache=NO_KV_CACHE),
        "metadata": metadata,
        "model_name": model_name,
        "base_model": upstream.repo_id,
        "source_model_link": upstream.url,
        "repo_id": repo_id,
        "repo_url": f"{endpoint.rstrip('/')}/{repo_id}",
        "bits": bits,
        "group_size": quant.group_size if quant else None,
        "desc_act": quant.desc_act if quant else None,
        "calib_dataset": figures.dataset_label(calib.dataset) if calib else None,
        "calib_size": calib.samples if calib else None,
        "calib_note": figures.calibration_note(calib),
        "calib_seqlen": calib.seq_len if calib else None,
        "perplexity_change": f"{ppl.delta_pct:+.2f}%" if ppl and ppl.delta_pct is not None else None,
        "perplexity_rows": perplexity_rows,
        "validation_where": validation["where"] if validation else None,
        "validation_text": validation["text"] if validation else None,
        "inference_rows": inference_rows,
        "compression_ratio": f"{base_size / size:.1f}" if size and base_size else None,
        "tested_hardware": tested,
        "citation_key": re.sub(r"\W+", "_", f"{byline.name or 'release'}_{model_name}_gptq").lower(),
        "year": finished.year,
        "publisher_name": byline.name,
        "publisher_url": byline.url,
        "manifest_file": MANIFEST_NAME,
        "license_display": upstream.licence_display,
        "license_link": upstream.licence_url,
        "gated_note": upstream.gated_note(),
    }
