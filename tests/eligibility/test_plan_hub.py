"""Facts and plans for Hub repos, through bot.hub.Hub and the real huggingface_hub client against hubsim."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import CommitOperationAdd

from bot.cli import main
from bot.eligibility.facts import facts_from_hub
from bot.errors import ModelConfigError, RepoNotFound, RevisionNotFound
from bot.hub import Hub

CARD = "---\nlicense: apache-2.0\npipeline_tag: text-generation\n---\n# A model\n"


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, hubsim: Any) -> None:
    for name in ("QUANTBOT_CONFIG", "QUANTBOT_TARGET_SMS", "QUANTBOT_REMOTE_SMS", "QUANTBOT_POLICY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("QUANTBOT_HF_TOKEN", hubsim.token)


def upload(hubsim: Any, repo_id: str, files: dict[str, bytes], message: str = "add model") -> str:
    ops = [CommitOperationAdd(path_in_repo=path, path_or_fileobj=data) for path, data in files.items()]
    return hubsim.api.create_commit(repo_id, operations=ops, commit_message=message).oid


def safetensors_bytes(tmp_path: Path, st_writer: Any, tensors: dict[str, tuple[str, list[int]]]) -> bytes:
    path = tmp_path / "tmp.safetensors"
    st_writer(path, tensors)
    return path.read_bytes()


def quantbot(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_facts_from_a_hub_repo_at_a_revision(
    hubsim: Any, repo_factory: Any, configs: dict[str, Any], tmp_path: Path, st_writer: Any
) -> None:
    repo = repo_factory("mistral-ft")
    weights = safetensors_bytes(tmp_path, st_writer, {"w": ("BF16", [300, 20]), "b": ("BF16", [20])})
    first = upload(
        hubsim, repo, {"config.json": json.dumps(configs["mistral"]).encode(), "README.md": CARD.encode()}
    )
    second = upload(hubsim, repo, {"model.safetensors": weights}, "add weights")
    hub = Hub(endpoint=hubsim.url, token=hubsim.token)

    facts = facts_from_hub(hub, repo)
    assert facts.source == "hub" and facts.name == repo and facts.revision == second
    assert facts.modelopt.rows == ("Mistral",) and facts.trtllm.rows == ("Mistral",)
    assert (facts.parameters, facts.dtype) == (6020, "bfloat16")
    assert facts.parameters_source == "safetensors headers"  # ranged reads: hubsim's model_info has no totals
    assert (facts.license, facts.pipeline_tag, facts.gated) == ("apache-2.0", "text-generation", None)
    assert facts.weights == "safetensors"

    older = facts_from_hub(hub, repo, revision=first)  # the first commit: config only, no weights yet
    assert older.revision == first and older.weights == "none"
    assert older.parameters_source == "estimated from config.json dimensions"


def test_plan_json_for_a_hub_repo(
    hubsim: Any, repo_factory: Any, configs: dict[str, Any], capsys: Any
) -> None:
    repo = repo_factory("qwen")
    sha = upload(
        hubsim, repo, {"config.json": json.dumps(configs["qwen2"]).encode(), "README.md": CARD.encode()}
    )
    code, out, err = quantbot(
        capsys, "plan", repo, "--revision", "main", "--sm", "90", "--json", "--policy", "strict"
    )
    assert code == 0, err
    data = json.loads(out)
    assert (data["model"], data["revision"], data["skipped"]) == (repo, sha, None)
    assert [e["format"] for e in data["targets"][0]["eligible"]] == ["fp8", "int4_awq", "w4a8_awq", "gptq"]


def test_gated_repo_is_refused_unless_allowed(
    hubsim: Any, repo_factory: Any, configs: dict[str, Any], capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = repo_factory("gated")
    upload(hubsim, repo, {"config.json": json.dumps(configs["mistral"]).encode()})
    hubsim.api.update_repo_settings(repo, gated="manual")
    code, out, _ = quantbot(capsys, "plan", repo, "--sm", "90", "--json")
    assert code == 0 and json.loads(out)["skipped"] == "gated repo (gated: manual) and allow_gated is off"
    monkeypatch.setenv("QUANTBOT_ALLOW_GATED", "true")
    code, out, _ = quantbot(capsys, "plan", repo, "--sm", "90", "--json")
    assert json.loads(out)["skipped"] is None


def test_missing_repo_revision_and_config_are_one_line_exit_2(
    hubsim: Any, repo_factory: Any, configs: dict[str, Any], capsys: Any
) -> None:
    repo = repo_factory("empty")
    upload(hubsim, repo, {"README.md": CARD.encode()})
    hub = Hub(endpoint=hubsim.url, token=hubsim.token)
    with pytest.raises(ModelConfigError, match=f"no config.json in {repo}@"):
        facts_from_hub(hub, repo)
    with pytest.raises(RepoNotFound):
        facts_from_hub(hub, f"{hubsim.user}/does-not-exist")
    with pytest.raises(RevisionNotFound):
        facts_from_hub(hub, repo, revision="no-such-branch")

    for args, message in (
        ((repo,), "no config.json in"),
        ((f"{hubsim.user}/does-not-exist",), "repo not found"),
        ((repo, "--revision", "no-such-branch"), "revision not found"),
        (("not a repo id!",), "is neither an existing folder nor a Hub repo id"),
    ):
        code, out, err = quantbot(capsys, "plan", *args, "--sm", "90")
        assert code == 2, (args, err)
        assert message in err and out == "" and len(err.strip().splitlines()) == 1, err
