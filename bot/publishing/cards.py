"""Model cards: a context built only from the build's manifest and the upstream model's facts, rendered
with the Jinja2 templates under `templates/`.

Cards say only what was measured (DESIGN.md, decision 8): a value the manifest does not hold leaves its row,
or its whole table, out; nothing is filled with a placeholder, and a rendered card that still holds `{{` is
refused. The front matter is written with a YAML dumper, not by string substitution, so that any value
quotes correctly, and it is read back with huggingface_hub's `ModelCard` parser before it leaves here.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cache
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

import yaml
from huggingface_hub import ModelCard
from jinja2 import Environment, PackageLoader, StrictUndefined

from bot.eligibility.facts import card_metadata
from bot.eligibility.matrices import load_matrices
from bot.errors import CardError
from bot.publishing.naming import display_format
from builders.spec import AWQ_FORMATS, DEFAULT_CALIBRATION, MANIFEST_NAME, Artifact, Manifest

if TYPE_CHECKING:
    from bot.hub import Hub

TRTLLM_TEMPLATE = "trtllm.md.j2"
GPTQ_TEMPLATE = "gptq.md.j2"
# Weight bits of ModelOpt's exported `quant_algo` values, when the manifest does not record `bits`.
_QUANT_ALGO_BITS = {"FP8": 8, "W8A8_SQ_PER_CHANNEL": 8, "W4A16_AWQ": 4, "W4A8_AWQ": 4, "NVFP4": 4}
_ENGINE_EXAMPLES = "e.g., H100/H200/B200/Blackwell, L40S, 4090/RTX"


@cache
def environment() -> Environment:
    """The Jinja2 environment of every quantbot template: an unknown variable is an error, not a blank."""
    return Environment(
        loader=PackageLoader("templates", "."),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render_template(name: str, context: dict[str, Any]) -> str:
    """Render `templates/<name>`; refuse output that still holds a `{{` (an unfilled placeholder)."""
    text = environment().get_template(name).render(**context)
    if "{{" in text:
        raise CardError(f"{name} rendered with an unfilled '{{{{' placeholder")
    return text


def metadata_yaml(metadata: dict[str, Any]) -> str:
    """The card's front matter: keys in the given order, lists in block style, no trailing newline."""
    text = yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return text.rstrip("\n")


def render_card(template: str, context: dict[str, Any]) -> str:
    """A full card (front matter + body), read back with huggingface_hub's own parser."""
    text = render_template(template, {**context, "metadata": metadata_yaml(context["metadata"])})
    try:
        parsed = ModelCard(text).data.to_dict()
    except ValueError as e:
        raise CardError(f"the rendered card's metadata does not parse: {e}") from None
    if parsed != context["metadata"]:
        raise CardError("the rendered card's metadata does not read back as written")
    return text


# ------------------------------------------------------------------------------------------ upstream facts


@dataclass(frozen=True)
class Upstream:
    """What a release inherits from its base model: identity, licence, gating, language, task."""

    repo_id: str
    revision: str
    url: str
    license: str | None = None
    license_name: str | None = None
    license_link: str | None = None
    gated: str | None = None
    gated_prompt: str | None = None
    language: list[str] = field(default_factory=list)
    pipeline_tag: str | None = None

    @classmethod
    def from_card(
        cls,
        repo_id: str,
        revision: str,
        card: dict[str, Any],
        *,
        endpoint: str,
        files: list[str] | tuple[str, ...] = (),
        gated: str | None = None,
        pipeline_tag: str | None = None,
    ) -> Upstream:
        """From the base model's card metadata and file list (a relative `license_link` is made absolute)."""
        url = f"{endpoint.rstrip('/')}/{repo_id}"
        license_ = _first_text(card.get("license"))
        link = _first_text(card.get("license_link"))
        if link and not re.match(r"https?://", link):
            link = f"{url}/blob/{revision}/{link.removeprefix('./')}"
        if link is None:
            license_file = next((f for f in files if re.fullmatch(r"LICEN[CS]E(\.\w+)?", f, re.I)), None)
            link = f"{url}/blob/{revision}/{license_file}" if license_file else None
        language = card.get("language")
        prompt = card.get("extra_gated_prompt")
        return cls(
            repo_id=repo_id,
            revision=revision,
            url=url,
            license=license_,
            license_name=_first_text(card.get("license_name")),
            license_link=link,
            gated=gated or None,
            gated_prompt=prompt if isinstance(prompt, str) and prompt.strip() else None,
            language=[language]
            if isinstance(language, str)
            else [x for x in language or [] if isinstance(x, str)],
            pipeline_tag=_first_text(card.get("pipeline_tag")) or pipeline_tag,
        )

    @classmethod
    def from_hub(cls, hub: Hub, repo_id: str, revision: str, *, endpoint: str) -> Upstream:
        """Read the base model's card metadata, gating and files at the build's revision."""
        info = hub.model_info(repo_id, revision=revision)
        card = dict(info.card_data.to_dict()) if info.card_data else {}
        if not card and "README.md" in {s.rfilename for s in info.siblings or ()}:
            card = card_metadata(hub.download(repo_id, "README.md", revision=revision).read_text())
        gated = info.gated if isinstance(info.gated, str) else None
        files = [s.rfilename for s in info.siblings or ()]
        return cls.from_card(
            repo_id,
            revision,
            card,
            endpoint=endpoint,
            files=files,
            gated=gated,
            pipeline_tag=info.pipeline_tag,
        )

    def licence_metadata(self) -> dict[str, Any]:
        """`license`, plus `license_name` / `license_link` when it is `other` (the Hub asks for both)."""
        if self.license is None:
            return {}
        if self.license != "other":
            return {"license": self.license}
        return {
            "license": "other",
            "license_name": self.license_name or "other",
            "license_link": self.licence_url,
        }

    @property
    def licence_url(self) -> str:
        """Where the licence text is: the upstream's `license_link` or LICENSE file, else its model page."""
        return self.license_link or self.url

    @property
    def licence_display(self) -> str:
        if self.license == "other":
            return self.license_name or "other"
        return self.license or "not stated by the base model's card"

    def gated_note(self) -> str | None:
        if not self.gated:
            return None
        return (
            f"Access to the base model is gated: its authors ask users to accept their conditions on "
            f"[{self.repo_id}]({self.url}). This release is gated the same way ({self.gated} approval of "
            "access requests): accept the base model's conditions before you request access here."
        )


def _first_text(value: Any) -> str | None:
    if isinstance(value, list):
        value = value[0] if value else None
    return str(value) if value not in (None, "") else None


# ------------------------------------------------------------------------------------------ card context


@dataclass(frozen=True)
class Byline:
    """Who publishes (from the settings): shown on cards instead of the seed's invented vendor."""

    name: str | None
    url: str | None = None


def template_for(manifest: Manifest) -> str:
    return GPTQ_TEMPLATE if manifest.spec.format == "gptq" else TRTLLM_TEMPLATE


def card_context(
    manifest: Manifest, upstream: Upstream, *, repo_id: str, endpoint: str, byline: Byline
) -> dict[str, Any]:
    """Every value a card shows, from the manifest and the upstream facts only (None = leave it out)."""
    if manifest.spec.format == "gptq":
        return _gptq_context(manifest, upstream, repo_id=repo_id, endpoint=endpoint, byline=byline)
    return _trtllm_context(manifest, upstream)


def render_release_card(
    manifest: Manifest, upstream: Upstream, *, repo_id: str, endpoint: str, byline: Byline
) -> str:
    """The README.md of a release."""
    context = card_context(manifest, upstream, repo_id=repo_id, endpoint=endpoint, byline=byline)
    return render_card(template_for(manifest), context)


def _trtllm_context(manifest: Manifest, upstream: Upstream) -> dict[str, Any]:
    spec, quant = manifest.spec, manifest.quantization
    calib = quant.calibration if quant else None
    fmt = spec.format
    upper = display_format(fmt)
    bits = _bits(manifest)
    built = [e for e in manifest.engines if e.status == "built" and e.path]
    device = manifest.device
    on_gpu = device is not None and device.kind == "cuda"
    matrices = load_matrices()
    supported = _supported_sms(fmt)
    engine_sms = sorted({e.sm for e in built})
    min_sm = min(engine_sms) if engine_sms else (min(supported) if supported else None)
    family = matrices.sms[min_sm].family if min_sm in matrices.sms else None
    gpu_short = _short_gpu_name(device.name) if on_gpu and engine_sms else None
    metadata = {
        **upstream.licence_metadata(),
        "base_model": upstream.repo_id,
        "base_model_relation": "quantized",
        "tags": ["tensorrt-llm", "quantized", fmt] + ([f"{bits}-bit"] if bits else []),
        **({"language": upstream.language} if upstream.language else {}),
        **({"pipeline_tag": upstream.pipeline_tag} if upstream.pipeline_tag else {}),
        **_gate_metadata(upstream),
    }
    not_built = [e for e in manifest.engines if e.status != "built"]
    return {
        "metadata": metadata,
        "model_name": upstream.repo_id,
        "quant_method_upper": upper,
        "source_model_link": upstream.url,
        "w_bit": bits,
        "kv_cache_dtype": _kv_cache(manifest),
        "kv_cache_type": spec.engine.kv_cache_type if built else None,
        "kv_reuse": None,  # a runtime option of TensorRT-LLM's executor; the build does not record it
        "group_size": quant.group_size if quant else None,
        "tensorrt_llm_version": manifest.toolchain.tensorrt_llm if manifest.toolchain else None,
        "modelopt_version": quant.producer_version if quant and quant.producer == "modelopt" else None,
        "max_batch_size": spec.engine.max_batch_size if built else None,
        "max_input_len": spec.engine.max_input_len if built else None,
        "max_output_len": spec.engine.max_output_len if built else None,
        "sm_arch": ", ".join(f"sm{s}" for s in engine_sms) or None,
        "gpu_name": device.name if on_gpu else None,
        "quantized_on": f"CPU ({device.name})" if device is not None and not on_gpu else None,
        "cuda_toolkit": _cuda(manifest, built),
        "build_time": _duration(manifest.wall_s),
        "generated_at": _timestamp(manifest),
        "engines": [{"label": PurePosixPath(e.path).name} for e in built],
        "engine_note": _engine_note(not_built) if not built else None,
        "artifact_sizes": _artifact_sizes(manifest),
        "calib_dataset": _dataset_label(calib.dataset) if calib else None,
        "calib_size": calib.samples if calib else None,
        "calib_seqlen": calib.seq_len if calib else None,
        "awq_block_size": (calib.awq_block_size or spec.recipe.awq_block_size)
        if fmt in AWQ_FORMATS
        else None,
        "calib_batch_size": calib.batch_size if calib else None,
        "validation": _validation(manifest),
        "min_compute_capability": f"{min_sm // 10}.{min_sm % 10}" if min_sm else None,
        "gpu_arch_note": " / ".join(x for x in (family, gpu_short) if x) or None,
        "quant_portability_note": _portability_note(
            upper, spec.target_sms, supported, engines_built=bool(built)
        ),
        "manifest_file": MANIFEST_NAME,
        "license_display": upstream.licence_display,
        "license_link": upstream.licence_url,
        "gated_note": upstream.gated_note(),
    }


def _gptq_context(
    manifest: Manifest, upstream: Upstream, *, repo_id: str, endpoint: str, byline: Byline
) -> dict[str, Any]:
    quant, device = manifest.quantization, manifest.device
    calib = quant.calibration if quant else None
    bits = _bits(manifest)
    validation = _validation(manifest)
    ppl = manifest.validation.perplexity if manifest.validation else None
    perplexity_rows = []
    if ppl and ppl.base is not None:
        perplexity_rows.append({"model": f"Base model ({upstream.repo_id})", "score": f"{ppl.base:.3f}"})
    if ppl and ppl.quantized is not None:
        change = f" ({ppl.delta_pct:+.2f}%)" if ppl.delta_pct is not None else ""
        perplexity_rows.append(
            {"model": f"GPTQ {bits}-bit (this model)", "score": f"{ppl.quantized:.3f}{change}"}
        )
    size = sum(a.size for a in manifest.artifacts)
    base_size = manifest.source.total_bytes if manifest.source else 0
    inference_rows = []
    if size:
        inference_rows.append({"metric": "Model Size", "value": human_size(size)})
    if size and base_size:
        inference_rows.append({"metric": "Base Model Size", "value": human_size(base_size)})
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
        **_gate_metadata(upstream),
    }
    return {
        "metadata": metadata,
        "model_name": model_name,
        "base_model": upstream.repo_id,
        "source_model_link": upstream.url,
        "repo_id": repo_id,
        "repo_url": f"{endpoint.rstrip('/')}/{repo_id}",
        "bits": bits,
        "group_size": quant.group_size if quant else None,
        "desc_act": quant.desc_act if quant else None,
        "calib_dataset": _dataset_label(calib.dataset) if calib else None,
        "calib_size": calib.samples if calib else None,
        "calib_seqlen": calib.seq_len if calib else None,
        "gptqmodel_version": quant.producer_version if quant else None,
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


def _gate_metadata(upstream: Upstream) -> dict[str, Any]:
    return {"extra_gated_prompt": upstream.gated_prompt} if upstream.gated and upstream.gated_prompt else {}


def _bits(manifest: Manifest) -> int | None:
    quant = manifest.quantization
    if quant is None:
        return None
    return quant.bits or _QUANT_ALGO_BITS.get(quant.quant_algo or "")


def _kv_cache(manifest: Manifest) -> str | None:
    quant = manifest.quantization
    if quant is None:
        return None
    if quant.kv_cache_quant_algo:
        return quant.kv_cache_quant_algo.lower()
    return "not quantized (model dtype)" if manifest.spec.recipe.kv_cache == "none" else None


def _cuda(manifest: Manifest, built: list[Any]) -> str | None:
    versions = sorted({e.cuda for e in built if e.cuda})
    if versions:
        return ", ".join(versions)
    return manifest.toolchain.cuda if manifest.toolchain else None


def _supported_sms(fmt: str) -> list[int]:
    """The SMs whose row of TensorRT-LLM's hardware matrix marks the format `Y` (bot/eligibility/matrices)."""
    m = load_matrices()
    column = m.trtllm_hardware.column_for(fmt)
    if column is None:
        return []
    return sorted(sm for sm, info in m.sms.items() if m.trtllm_hardware.cell(info.row, column).supported)


def _short_gpu_name(name: str) -> str:
    """`NVIDIA H100 NVL` → `H100`: the GPU model as the seed's architecture note writes it."""
    words = name.removeprefix("NVIDIA").split()
    return words[0] if words else name


def _portability_note(
    upper: str, targets: list[int], supported: list[int], *, engines_built: bool
) -> str | None:
    """Where the checkpoint runs. With engines, as the seed example writes it: the SMs the build targeted
    (`sm89/sm90+`). Without, the GPU families TensorRT-LLM's hardware matrix supports for the format."""
    if engines_built:
        across = "/".join(f"sm{s}" for s in [s for s in targets if s in supported] or supported)
        return (
            f"{upper} checkpoints are portable across {across}+ GPUs; rebuild engines for the target GPU "
            f"({_ENGINE_EXAMPLES}) or reuse one of the prebuild engines in case they match your GPU."
        )
    if not supported:
        return None
    m = load_matrices()
    families = list(dict.fromkeys(m.sms[s].family for s in supported))
    named = f"{', '.join(families[:-1])} and {families[-1]}" if len(families) > 1 else families[0]
    return (
        f"{upper} checkpoints run on {named} GPUs ({'/'.join(f'sm{s}' for s in supported)}) according to "
        f"TensorRT-LLM's hardware support matrix; build engines on the target GPU ({_ENGINE_EXAMPLES})."
    )


def _engine_note(not_built: list[Any]) -> str:
    reasons = sorted({e.reason for e in not_built if e.reason})
    why = f" ({'; '.join(reasons)})" if reasons else ""
    return (
        f"No TensorRT engine was built for this release{why}: the repo holds the quantized checkpoint "
        "only. Build an engine from it on your GPU, or serve it with TensorRT-LLM's PyTorch backend."
    )


def _dataset_label(dataset: str) -> str:
    """ModelOpt's default set by name; a local calibration file by its file name only (no host paths)."""
    return dataset if dataset == DEFAULT_CALIBRATION else f"local text `{PurePosixPath(dataset).name}`"


def artifact_folders(manifest: Manifest) -> dict[str, list[Artifact]]:
    """The artifacts by folder: the checkpoint folder, and each `trt-llm/engines/<label>` on its own."""
    groups: dict[str, list[Artifact]] = defaultdict(list)
    for artifact in manifest.artifacts:
        parts = PurePosixPath(artifact.path).parts
        depth = 3 if parts[:2] == ("trt-llm", "engines") else 2
        groups["/".join(parts[: min(depth, len(parts) - 1)])].append(artifact)
    return dict(sorted(groups.items()))


def _artifact_sizes(manifest: Manifest) -> list[dict[str, Any]]:
    return [
        {
            "path": f"{folder}/" if folder else "(repo root)",
            "files": len(items),
            "size": human_size(sum(a.size for a in items)),
        }
        for folder, items in artifact_folders(manifest).items()
    ]


def _validation(manifest: Manifest) -> dict[str, Any] | None:
    """The validation table: perplexity of base and quantized model, the sample generation, the checks."""
    record, device = manifest.validation, manifest.device
    if record is None or not record.ok:
        return None
    rows = []
    ppl = record.perplexity
    if ppl and ppl.base is not None:
        rows.append({"check": "Perplexity, base model", "result": f"{ppl.base:.3f}"})
    if ppl and ppl.quantized is not None:
        change = f" ({ppl.delta_pct:+.2f}%)" if ppl.delta_pct is not None else ""
        method = f" ({ppl.method})" if ppl.method else ""
        rows.append({"check": f"Perplexity, quantized{method}", "result": f"{ppl.quantized:.3f}{change}"})
    if record.sample:
        rows.append(
            {"check": "Generation", "result": f"{record.sample.new_tokens} new tokens from a sample prompt"}
        )
    if record.checks:
        passed = sum(c.ok for c in record.checks)
        names = ", ".join(c.name for c in record.checks)
        rows.append(
            {"check": "Structural checks", "result": f"{passed} of {len(record.checks)} passed ({names})"}
        )
    if record.reload:
        rows.append({"check": "Reload", "result": record.reload})
    if not rows:
        return None
    where = "CPU" if device is None or device.kind == "cpu" else device.name
    text = f"`{ppl.text}`, {ppl.tokens} tokens in windows of {ppl.seq_len}" if ppl else None
    return {"where": where, "text": text, "rows": rows}


def _timestamp(manifest: Manifest) -> str | None:
    when = manifest.finished_at
    return when.strftime("%Y-%m-%d %H:%M:%S UTC") if when else None


def _duration(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def human_size(size: int) -> str:
    """Decimal units, as the Hub shows file sizes."""
    if size < 1000:
        return f"{size} B"
    value = size / 1000
    for unit in ("KB", "MB"):
        if value < 1000:
            return f"{value:.2f} {unit}"
        value /= 1000
    return f"{value:.2f} GB"
