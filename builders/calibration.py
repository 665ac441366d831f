"""Calibration data: ModelOpt's named datasets (cnn_dailymail by default) or local text.

A local ``.txt`` file is cut into consecutive windows of ``calib_seq_len`` tokens (so a short text still
yields full-length samples); each line of a ``.jsonl`` file is one sample (its ``text`` field); a folder
contributes all its ``.txt`` and ``.jsonl`` files in name order. Samples are token-id lists, batched with
left padding as ModelOpt's hf_ptq does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builders.failures import BuildFailure
from builders.spec import Recipe


@dataclass
class CalibrationSet:
    name: str
    samples: list[list[int]]
    seq_len: int

    @property
    def tokens(self) -> int:
        return sum(len(s) for s in self.samples)

    def record(self, batch_size: int, oom_retries: int) -> dict[str, Any]:
        """What the manifest says of the calibration a build actually ran."""
        return {
            "dataset": self.name,
            "samples": len(self.samples),
            "seq_len": self.seq_len,
            "tokens": self.tokens,
            "batch_size": batch_size,
            "oom_retries": oom_retries,
        }


def load_calibration(recipe: Recipe, tokenizer: Any) -> CalibrationSet:
    """The recipe's samples, tokenized and truncated to ``calib_seq_len``."""
    source = recipe.calib_dataset
    path = Path(source).expanduser()
    if path.exists():
        samples = _from_path(path, tokenizer, recipe.calib_seq_len, recipe.calib_samples)
        name = path.name
    elif "/" in source or source.endswith((".txt", ".jsonl", ".json")):
        raise BuildFailure(
            "calibration_missing", f"calibration file or folder not found: {source}", bad_input=True
        )
    else:
        texts = _named_dataset(source, recipe.calib_samples)
        samples = _truncated(texts, tokenizer, recipe.calib_seq_len)[: recipe.calib_samples]
        name = source
    if not samples:
        raise BuildFailure(
            "calibration_empty", f"calibration data {source} yielded no samples", bad_input=True
        )
    return CalibrationSet(name=name, samples=samples, seq_len=recipe.calib_seq_len)


def batches(calib: CalibrationSet, batch_size: int, pad_id: int, device: Any) -> Iterator[dict[str, Any]]:
    """Left-padded ``input_ids`` / ``attention_mask`` tensors, ``batch_size`` samples at a time."""
    import torch

    for start in range(0, len(calib.samples), batch_size):
        chunk = calib.samples[start : start + batch_size]
        width = max(len(s) for s in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, sample in enumerate(chunk):
            ids[row, width - len(sample) :] = torch.tensor(sample, dtype=torch.long)
            mask[row, width - len(sample) :] = 1
        yield {"input_ids": ids.to(device), "attention_mask": mask.to(device)}


def _from_path(path: Path, tokenizer: Any, seq_len: int, limit: int) -> list[list[int]]:
    files = sorted(p for p in path.rglob("*") if p.suffix in (".txt", ".jsonl")) if path.is_dir() else [path]
    samples: list[list[int]] = []
    for file in files:
        if file.suffix == ".jsonl":
            samples += _truncated(_jsonl_texts(file), tokenizer, seq_len)
        else:
            ids = tokenizer(file.read_text(encoding="utf-8"), add_special_tokens=False)["input_ids"]
            samples += [ids[i : i + seq_len] for i in range(0, len(ids) - seq_len // 2, seq_len)]
        if len(samples) >= limit:
            break
    return samples[:limit]


def _jsonl_texts(file: Path) -> list[str]:
    texts = []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise BuildFailure(
                "calibration_invalid", f"{file}:{number} is not JSON: {e}", bad_input=True
            ) from e
        text = record.get("text") if isinstance(record, dict) else None
        if not isinstance(text, str):
            raise BuildFailure(
                "calibration_invalid", f"{file}:{number} has no string 'text' field", bad_input=True
            )
        texts.append(text)
    return texts


def _truncated(texts: list[str], tokenizer: Any, seq_len: int) -> list[list[int]]:
    out = []
    for text in texts:
        ids = tokenizer(text, truncation=True, max_length=seq_len)["input_ids"]
        if len(ids) > 1:
            out.append(ids)
    return out


def _named_dataset(name: str, count: int) -> list[str]:
    """A dataset ModelOpt knows by name (through `datasets`; needs the Hub or a local datasets cache)."""
    try:
        from modelopt.torch.utils.dataset_utils import get_dataset_samples
    except ImportError as e:
        raise BuildFailure(
            "calibration_unavailable", f"named dataset {name} needs nvidia-modelopt: {e}"
        ) from e
    try:
        return list(get_dataset_samples(name, count))
    except Exception as e:  # datasets raises many types (connection, missing config, auth)
        raise BuildFailure(
            "calibration_unavailable",
            f"calibration dataset {name!r} could not be loaded ({type(e).__name__}: {str(e)[:200]}); "
            "set recipe.calib_dataset to a local .txt/.jsonl file or folder",
        ) from e
