"""Calibration data: a Hub dataset read through HF_ENDPOINT (default: ModelOpt's cnn_dailymail) or local text.

A Hub dataset is read in the fetch stage, before anything else: its revision is pinned to a commit sha,
the first ``calib_samples`` rows of the split (or a seeded shuffle of it) are streamed with the
`datasets` library and kept in the work dir, so a dataset that cannot be read fails the build in seconds,
before the model is downloaded or loaded, and a rerun reads the same rows. ``bundled`` names the text
shipped with the builders. A local ``.txt`` file is cut into consecutive windows of ``calib_seq_len``
tokens; each line of a ``.jsonl`` file is one sample (its ``text`` field); a folder contributes all its
``.txt`` and ``.jsonl`` files in name order. Samples are token-id lists, batched with left padding as
ModelOpt's hf_ptq does. When fewer samples exist than were asked for, the record says why.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builders.failures import HUB_UNAVAILABLE, BuildFailure, hub_caused
from builders.spec import BuildSpec, Recipe

BUNDLED = "bundled"
ROWS_FILE = Path("calibration") / "rows.jsonl"
SHUFFLE_BUFFER = 10_000


@dataclass
class CalibrationSet:
    name: str
    samples: list[list[int]]
    seq_len: int
    source: dict[str, Any] = field(default_factory=dict)  # Hub id, revision, split... (fetch's record)
    requested: int | None = None
    note: str | None = None

    @property
    def tokens(self) -> int:
        return sum(len(s) for s in self.samples)

    def record(self, batch_size: int, oom_retries: int) -> dict[str, Any]:
        """What the manifest says of the calibration a build actually ran."""
        return {
            "dataset": self.name,
            "source": "local",
            **self.source,
            "samples": len(self.samples),
            "samples_requested": self.requested,
            "samples_note": self.note,
            "seq_len": self.seq_len,
            "tokens": self.tokens,
            "batch_size": batch_size,
            "oom_retries": oom_retries,
        }


def bundled_text_path() -> Path:
    from builders.tiny import calibration_text_path

    return calibration_text_path()


def unavailable(source: str, why: str, *, hub_failed: bool = False) -> BuildFailure:
    """The one error an unreadable calibration source gives: what failed, and the two ways out. When the Hub
    failed the read (5xx, 429, no connection: `hub_failed`), it is the Hub's failure, which the bot waits
    out and tries again, not the data's."""
    return BuildFailure(
        HUB_UNAVAILABLE if hub_failed else "calibration_unavailable",
        f"calibration dataset {source!r} could not be read: {why}. Choose other calibration data with "
        f"--calib (recipe.calib_dataset): a Hub dataset id, a local .txt/.jsonl file or folder, or "
        f"'{BUNDLED}' for the text shipped with quantbot ({bundled_text_path().name})",
        bad_input=not hub_failed,
    )


# ------------------------------------------------------------------------------------------- fetch stage


def fetch_calibration(spec: BuildSpec, progress: Callable[[float, str], None]) -> dict[str, Any]:
    """Check (local) or download (Hub) the calibration data; the fetch stage's ``calibration`` record."""
    recipe = spec.recipe
    if not recipe.calib_hub:
        path = _local_path(recipe.calib_dataset)
        if not path.exists():
            raise BuildFailure(
                "calibration_missing",
                f"calibration file or folder not found: {recipe.calib_dataset} (--calib)",
                bad_input=True,
            )
        return {"source": "local", "dataset": path.name}
    dataset_id, config, split, text_field = recipe.calib_hub_source()
    progress(0.02, f"reading calibration dataset {dataset_id} ({config or 'default'}, {split})")
    revision = _dataset_revision(dataset_id, recipe.calib_revision)
    texts, exhausted = _stream_rows(recipe, dataset_id, config, split, text_field, revision)
    rows = Path(spec.work_dir) / ROWS_FILE
    rows.parent.mkdir(parents=True, exist_ok=True)
    partial = rows.with_suffix(".partial")
    partial.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    partial.replace(rows)
    record: dict[str, Any] = {
        "source": "hub",
        "dataset": dataset_id,
        "revision": revision,
        "config": config,
        "split": split,
        "text_field": text_field,
        "seed": recipe.calib_seed,
        "rows_file": str(rows),
    }
    if exhausted and len(texts) < recipe.calib_samples:
        record["note"] = f"split {split!r} of {dataset_id} has only {len(texts)} rows with text"
    return record


def _dataset_revision(dataset_id: str, revision: str | None = None) -> str:
    """The commit sha of the dataset's `revision` (default: main): one small call that fails fast when it is
    unreachable."""
    import httpx
    from huggingface_hub import HfApi
    from huggingface_hub import errors as hf_errors

    try:
        info = HfApi().dataset_info(dataset_id, revision=revision, timeout=30)
    except hf_errors.RevisionNotFoundError:
        raise unavailable(dataset_id, f"it has no revision {revision!r}") from None
    except hf_errors.GatedRepoError:
        raise unavailable(dataset_id, "it is gated and this token has no access") from None
    except hf_errors.RepositoryNotFoundError:
        raise unavailable(dataset_id, "no such dataset on the Hub (or it is private)") from None
    except (hf_errors.HfHubHTTPError, httpx.HTTPError, OSError) as e:
        why = f"the Hub did not answer ({type(e).__name__}: {str(e)[:160]})"
        raise unavailable(dataset_id, why, hub_failed=hub_caused(e)) from None
    if not info.sha:
        raise unavailable(dataset_id, "the Hub reported no revision for it")
    return info.sha


def _stream_rows(
    recipe: Recipe, dataset_id: str, config: str | None, split: str, text_field: str, revision: str
) -> tuple[list[str], bool]:
    """The first ``calib_samples`` non-empty texts of the split (after a seeded shuffle, when asked)."""
    from datasets import load_dataset

    texts: list[str] = []
    try:
        ds = load_dataset(dataset_id, config, split=split, revision=revision, streaming=True)
        if recipe.calib_seed is not None:
            ds = ds.shuffle(seed=recipe.calib_seed, buffer_size=SHUFFLE_BUFFER)
        for row in ds:
            if len(texts) >= recipe.calib_samples:
                return texts, False
            text = row.get(text_field)
            if not isinstance(text, str):
                columns = ", ".join(sorted(row)) or "none"
                why = f"its rows have no text column {text_field!r} (columns: {columns})"
                raise unavailable(dataset_id, why)
            if text.strip():
                texts.append(text)
    except BuildFailure:
        raise
    except Exception as e:  # datasets raises many types (missing config or split, connection, schema)
        why = f"{type(e).__name__}: {str(e)[:200]}"
        raise unavailable(dataset_id, why, hub_failed=hub_caused(e)) from None
    if not texts:
        raise unavailable(dataset_id, f"split {split!r} has no rows with text")
    return texts, True


# ----------------------------------------------------------------------------------------- quantize stage


def load_calibration(recipe: Recipe, tokenizer: Any, fetched: dict[str, Any]) -> CalibrationSet:
    """The recipe's samples, tokenized and truncated to ``calib_seq_len``; ``fetched`` is fetch's record."""
    wanted, seq_len = recipe.calib_samples, recipe.calib_seq_len
    if fetched.get("source") == "hub":
        texts = _jsonl_texts(Path(fetched["rows_file"]))
        samples = _truncated(texts, tokenizer, seq_len)[:wanted]
        note = fetched.get("note")
        source = {k: fetched[k] for k in ("source", "revision", "config", "split", "text_field", "seed")}
        name = fetched["dataset"]
    else:
        path = _local_path(recipe.calib_dataset)
        if not path.exists():
            raise BuildFailure(
                "calibration_missing", f"calibration file or folder not found: {path.name}", bad_input=True
            )
        samples, note = _from_path(path, tokenizer, seq_len, wanted)
        source, name = {}, path.name
    if not samples:
        raise BuildFailure("calibration_empty", f"calibration data {name} yielded no samples", bad_input=True)
    if len(samples) < wanted and note is None:
        note = f"{name} yields only {len(samples)} samples"
    return CalibrationSet(name, samples, seq_len, source, wanted, note if len(samples) < wanted else None)


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


def _local_path(source: str) -> Path:
    return bundled_text_path() if source == BUNDLED else Path(source).expanduser()


def _from_path(path: Path, tokenizer: Any, seq_len: int, limit: int) -> tuple[list[list[int]], str | None]:
    files = sorted(p for p in path.rglob("*") if p.suffix in (".txt", ".jsonl")) if path.is_dir() else [path]
    samples: list[list[int]] = []
    windows = 0
    for file in files:
        if file.suffix == ".jsonl":
            samples += _truncated(_jsonl_texts(file), tokenizer, seq_len)
        else:
            ids = tokenizer(file.read_text(encoding="utf-8"), add_special_tokens=False)["input_ids"]
            cut = [ids[i : i + seq_len] for i in range(0, len(ids) - seq_len // 2, seq_len)]
            samples += cut
            windows += len(cut)
        if len(samples) >= limit:
            return samples[:limit], None
    what = f"{windows} windows of {seq_len} tokens" if windows == len(samples) else f"{len(samples)} samples"
    return samples, f"{path.name} holds only {what}"


def _jsonl_texts(file: Path) -> list[str]:
    texts = []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise BuildFailure(
                "calibration_invalid", f"{file.name}:{number} is not JSON: {e}", bad_input=True
            ) from e
        text = record.get("text") if isinstance(record, dict) else None
        if not isinstance(text, str):
            raise BuildFailure(
                "calibration_invalid", f"{file.name}:{number} has no string 'text' field", bad_input=True
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
