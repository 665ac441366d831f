"""What a build's manifest measured, as the texts of a release show it: sizes, times, bits, perplexity.

Cards, PR descriptions and the artifact layout all take their figures from here, so a figure reads the
same wherever it appears (a perplexity line, say, is written by `builders.spec.Perplexity` alone).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import PurePosixPath
from typing import Any

from builders.spec import DEFAULT_CALIBRATION, Artifact, CalibrationRecord, Manifest

# Weight bits of ModelOpt's exported `quant_algo` values, when the manifest does not record `bits`.
_QUANT_ALGO_BITS = {"FP8": 8, "W8A8_SQ_PER_CHANNEL": 8, "W4A16_AWQ": 4, "W4A8_AWQ": 4, "NVFP4": 4}


def bits(manifest: Manifest) -> int | None:
    """The weights' bit width: as recorded, else from ModelOpt's `quant_algo`."""
    quant = manifest.quantization
    if quant is None:
        return None
    return quant.bits or _QUANT_ALGO_BITS.get(quant.quant_algo or "")


def calibration_note(calib: CalibrationRecord | None) -> str | None:
    """Why fewer calibration samples were used than asked for, as the card says it beside the count."""
    if calib is None or calib.samples_requested is None or calib.samples >= calib.samples_requested:
        return None
    return f"{calib.samples_requested} asked; {calib.samples_note or 'the data held no more'}"


def dataset_label(dataset: str) -> str:
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


def validation_rows(manifest: Manifest) -> list[dict[str, str]]:
    """The validation figures for PR descriptions: perplexity before and after."""
    ppl = manifest.validation.perplexity if manifest.validation else None
    if ppl is None:
        return []
    rows = []
    if ppl.base is not None:
        rows.append(
            {
                "check": "Perplexity (base)",
                "result": f"{ppl.base_figure()} on `{ppl.text}`, {ppl.tokens} tokens",
            }
        )
    if ppl.quantized is not None:
        rows.append({"check": "Perplexity (quantized)", "result": ppl.quantized_figure()})
    return rows


def validation_table(manifest: Manifest) -> dict[str, Any] | None:
    """The card's validation table: perplexity of base and quantized model, the sample, the checks."""
    record, device = manifest.validation, manifest.device
    if record is None or not record.ok:
        return None
    rows = []
    ppl = record.perplexity
    if ppl and ppl.base is not None:
        rows.append({"check": "Perplexity, base model", "result": ppl.base_figure()})
    if ppl and ppl.quantized is not None:
        method = f" ({ppl.method})" if ppl.method else ""
        rows.append({"check": f"Perplexity, quantized{method}", "result": ppl.quantized_figure()})
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


def timestamp(manifest: Manifest) -> str | None:
    when = manifest.finished_at
    return when.strftime("%Y-%m-%d %H:%M:%S UTC") if when else None


def duration(seconds: float | None) -> str | None:
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
