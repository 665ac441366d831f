"""Calibration data from a local text, JSONL file or folder, and a clear failure for anything else."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from builders.calibration import batches, load_calibration
from builders.failures import BuildFailure
from builders.spec import Recipe
from builders.tiny import calibration_text_path

pytestmark = pytest.mark.slow  # transformers


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def recipe(source: Path | str, samples: int = 4, seq_len: int = 32) -> Recipe:
    return Recipe(calib_dataset=str(source), calib_samples=samples, calib_seq_len=seq_len)


def test_a_text_file_is_cut_into_full_length_windows(tokenizer: Any) -> None:
    calib = load_calibration(recipe(calibration_text_path(), samples=5, seq_len=64), tokenizer, {})
    assert len(calib.samples) == 5 and {len(s) for s in calib.samples} == {64}
    assert tokenizer.decode(calib.samples[0]).startswith("CHAPTER I. Down the Rabbit-Hole")
    assert calib.tokens == 320 and calib.name == "calibration.txt"


def test_jsonl_lines_are_samples_truncated_to_the_sequence_length(tokenizer: Any, tmp_path: Path) -> None:
    path = tmp_path / "calib.jsonl"
    long = "word " * 200
    path.write_text("\n".join(json.dumps({"text": t}) for t in ["Alice was tired.", long, "The Rabbit ran."]))
    calib = load_calibration(recipe(path, samples=10), tokenizer, {})
    assert len(calib.samples) == 3 and max(len(s) for s in calib.samples) == 32


def test_a_folder_contributes_its_files_in_name_order(tokenizer: Any, tmp_path: Path) -> None:
    (tmp_path / "b.jsonl").write_text(json.dumps({"text": "The second file."}))
    (tmp_path / "a.txt").write_text("The first file, with enough words to fill a window. " * 4)
    (tmp_path / "ignored.csv").write_text("x,y")
    calib = load_calibration(recipe(tmp_path, samples=10), tokenizer, {})
    assert tokenizer.decode(calib.samples[0], skip_special_tokens=True).startswith("The first file")
    assert tokenizer.decode(calib.samples[-1], skip_special_tokens=True).startswith("The second file")


@pytest.mark.parametrize(
    ("content", "kind"),
    [('{"text": "ok"}\nnot json', "calibration_invalid"), ('{"prompt": "no text"}', "calibration_invalid")],
)
def test_bad_jsonl_names_the_line(tokenizer: Any, tmp_path: Path, content: str, kind: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(BuildFailure) as failure:
        load_calibration(recipe(path), tokenizer, {})
    assert failure.value.kind == kind and failure.value.bad_input and "bad.jsonl:" in failure.value.message


def test_a_missing_file_is_bad_input(tokenizer: Any, tmp_path: Path) -> None:
    with pytest.raises(BuildFailure, match="not found") as failure:
        load_calibration(recipe(tmp_path / "nope.txt"), tokenizer, {})
    assert failure.value.kind == "calibration_missing"


def test_batches_are_left_padded_with_a_mask(tokenizer: Any) -> None:
    from builders.calibration import CalibrationSet

    calib = CalibrationSet("x", [[5, 6, 7], [8]], seq_len=3)
    (batch,) = batches(calib, 2, pad_id=0, device="cpu")
    assert batch["input_ids"].tolist() == [[5, 6, 7], [0, 0, 8]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]


def test_a_hub_dataset_is_pinned_at_the_revision_asked_for(hubsim, repo_factory, monkeypatch) -> None:
    """`/quantize --calib org/dataset@rev`: the build reads that revision (a tag or branch: its sha)."""
    from huggingface_hub import constants

    from builders.calibration import _dataset_revision

    monkeypatch.setattr(constants, "ENDPOINT", hubsim.url)
    dataset = repo_factory("texts", repo_type="dataset")

    def commit(text: bytes) -> str:
        api = hubsim.api
        return api.upload_file(
            path_or_fileobj=text, path_in_repo="a.txt", repo_id=dataset, repo_type="dataset"
        ).oid

    first = commit(b"first")
    hubsim.api.create_tag(dataset, tag="v1", revision=first, repo_type="dataset")
    head = commit(b"second")

    assert (_dataset_revision(dataset, "v1"), _dataset_revision(dataset)) == (first, head)
    with pytest.raises(BuildFailure, match="it has no revision 'v9'"):
        _dataset_revision(dataset, "v9")
