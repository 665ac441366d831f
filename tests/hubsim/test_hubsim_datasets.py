"""Dataset repos served to the `datasets` library as the Hub serves them: dataset info by revision, tree
and paths-info listings, README `configs`, and ranged downloads of parquet, JSONL and text files.

The calibration stand-in that `quantbot hubsim` and `quantbot demo` publish is read here exactly as a
build reads the default calibration set."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import pytest

from bot.hubsim.datasets import DATA_FILE, calibration_rows, publish_calibration_dataset
from builders.spec import DEFAULT_CALIBRATION, DEFAULT_CALIBRATION_CONFIG, DEFAULT_CALIBRATION_FIELD

datasets = pytest.importorskip("datasets")


def test_the_calibration_stand_in_streams_at_a_pinned_revision(hubsim: Any) -> None:
    sha = publish_calibration_dataset(hubsim.server)
    info = hubsim.api.dataset_info(DEFAULT_CALIBRATION)
    assert info.sha == sha and DATA_FILE in {s.rfilename for s in info.siblings}
    assert "stand-in" in (info.card_data or {}).get("pretty_name", "")
    [data] = hubsim.api.get_paths_info(DEFAULT_CALIBRATION, [DATA_FILE], repo_type="dataset", revision=sha)
    assert data.xet_hash  # in Xet storage, as the Hub keeps datasets' data files: builds read it through Xet
    rows = datasets.load_dataset(
        DEFAULT_CALIBRATION, DEFAULT_CALIBRATION_CONFIG, split="train", revision=sha, streaming=True
    )
    texts = [row[DEFAULT_CALIBRATION_FIELD] for row in rows]
    assert texts == calibration_rows() and len(texts) > 400
    assert texts[0].startswith("CHAPTER I. Down the Rabbit-Hole")


def test_publishing_again_changes_nothing(hubsim: Any) -> None:
    first = publish_calibration_dataset(hubsim.server)
    assert publish_calibration_dataset(hubsim.server) == first
    assert len(hubsim.api.list_repo_commits(DEFAULT_CALIBRATION, repo_type="dataset")) == 2
    with pytest.raises(Exception, match="403|rights"):  # the namespace is the dataset owner's, not ours
        hubsim.api.upload_file(
            path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=DEFAULT_CALIBRATION, repo_type="dataset"
        )


def _upload(hubsim: Any, repo_id: str, files: dict[str, bytes]) -> str:
    from huggingface_hub import CommitOperationAdd

    ops = [CommitOperationAdd(path, data) for path, data in files.items()]
    return hubsim.api.create_commit(repo_id, ops, commit_message="data", repo_type="dataset").oid


def test_parquet_configs_load_streaming_and_downloaded(hubsim: Any, repo_factory: Callable[..., str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    repo_id = repo_factory("parquet", repo_type="dataset")
    buffers = {}
    for split, n in (("train", 30), ("test", 5)):
        out = io.BytesIO()
        pq.write_table(pa.table({"text": [f"{split} row {i}" for i in range(n)]}), out)
        buffers[f"main/{split}-00000-of-00001.parquet"] = out.getvalue()
    card = (
        "---\nconfigs:\n- config_name: main\n  data_files:\n  - split: train\n    path: main/train-*\n"
        "  - split: test\n    path: main/test-*\n---\n# rows\n"
    )
    sha = _upload(hubsim, repo_id, {**buffers, "README.md": card.encode()})
    assert datasets.get_dataset_split_names(repo_id, "main", revision=sha) == ["train", "test"]
    streamed = datasets.load_dataset(repo_id, "main", split="test", revision=sha, streaming=True)
    assert [r["text"] for r in streamed] == [f"test row {i}" for i in range(5)]
    downloaded = datasets.load_dataset(repo_id, "main", split="train", revision=sha)
    assert downloaded.num_rows == 30 and downloaded[29]["text"] == "train row 29"


def test_jsonl_and_text_files_load_without_a_card(hubsim: Any, repo_factory: Callable[..., str]) -> None:
    repo_id = repo_factory("files", repo_type="dataset")
    jsonl = "".join(json.dumps({"text": f"line {i}"}) + "\n" for i in range(12)).encode()
    sha = _upload(hubsim, repo_id, {"train.jsonl": jsonl, "notes/a.txt": b"first\nsecond\n"})
    rows = datasets.load_dataset(repo_id, split="train", revision=sha, streaming=True)
    assert [r["text"] for r in rows] == [f"line {i}" for i in range(12)]
    text = datasets.load_dataset(repo_id, data_files="notes/*.txt", split="train", revision=sha)
    assert text["text"] == ["first", "second"]


def test_a_private_dataset_needs_its_owners_token(hubsim: Any, repo_factory: Callable[..., str]) -> None:
    repo_id = repo_factory("private", repo_type="dataset", private=True)
    sha = _upload(hubsim, repo_id, {"train.jsonl": b'{"text": "secret"}\n'})
    with pytest.raises(datasets.exceptions.DatasetNotFoundError):
        datasets.load_dataset(repo_id, split="train", revision=sha, streaming=True, token=False)
    rows = datasets.load_dataset(repo_id, split="train", revision=sha, streaming=True, token=hubsim.token)
    assert [r["text"] for r in rows] == ["secret"]


def test_an_unknown_revision_is_an_error(hubsim: Any, repo_factory: Callable[..., str]) -> None:
    repo_id = repo_factory("revs", repo_type="dataset")
    _upload(hubsim, repo_id, {"train.jsonl": b'{"text": "x"}\n'})
    with pytest.raises(Exception, match="(?i)revision"):
        datasets.load_dataset(repo_id, split="train", revision="f" * 40, streaming=True)
