"""A release is its upstream but for the weights: the invariance gate before upload holds one whose config or
tokenizer was re-serialised (nothing uploaded, or its draft stays a draft, saying why), and the verification's
reading under each runtime's transformers line shows what such a release would do to transformers 4.57 users.
Also the words the verification uses: its line in the card, and why a card snippet failed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bot.errors import ReleaseHeld
from bot.publishing.staged import StagedPublisher
from bot.publishing.verification import verification_line
from builders.artifacts import hash_folder
from builders.spec import (
    MANIFEST_NAME,
    LineCheck,
    Manifest,
    RuntimeLine,
    VerificationRecord,
    VerifyRequest,
)
from builders.verify import read_under_lines, snippet_failure
from state.models import ReleaseStatus

pytestmark = pytest.mark.slow


def _resaved(build: Path, copy_build, tokenizers: tuple[str, ...] = (".",)) -> Path:
    """The build as a toolchain that re-saves config (at the root) and tokenizer (in `tokenizers`) with
    transformers 5 would leave it, its manifest listing the files as they now are (so only the gate can
    tell)."""
    from transformers import AutoConfig, AutoTokenizer

    copy = copy_build(build)
    AutoConfig.from_pretrained(copy).save_pretrained(copy)
    for folder in tokenizers:
        AutoTokenizer.from_pretrained(copy / folder).save_pretrained(copy / folder)
    manifest = Manifest.read(copy / MANIFEST_NAME)
    manifest.artifacts = [a for a in hash_folder(copy, ".") if a["path"] != MANIFEST_NAME]
    manifest.write(copy / MANIFEST_NAME)
    return copy


@pytest.fixture
def fp8_build(builds, upstream) -> Path:
    return builds.get(upstream.repo_id, upstream.revisions[0], "fp8")


def test_a_re_serialised_release_is_held_before_anything_is_uploaded(
    publisher, fp8_build, copy_build, hubsim, release_repo
) -> None:
    repo_id = release_repo("held")
    with pytest.raises(ReleaseHeld) as caught:
        publisher.publish(_resaved(fp8_build, copy_build), repo_id=repo_id)
    problems = caught.value.problems
    for expected in ("config.json: rope_theta is missing", "config.json: rope_scaling is missing"):
        assert expected in problems
    assert any(p.startswith("tokenizer_config.json is not the upstream's") for p in problems)
    assert "is held: it is not its upstream's" in str(caught.value) and "nothing was uploaded" in str(
        caught.value
    )
    assert not hubsim.api.repo_exists(repo_id)


def test_an_int8_sq_release_is_held_when_its_root_config_or_legacy_tokenizer_is_not_the_upstreams(
    publisher, builds, upstream, copy_build, hubsim, release_repo
) -> None:
    """int8_sq's checkpoint is TensorRT-LLM's legacy one: the root's config.json must be the upstream's file
    as it is, and the legacy folder's tokenizer (the one its engine runs with) the upstream's bytes."""
    build = builds.get(upstream.repo_id, upstream.revisions[0], "int8_sq")
    repo_id = release_repo("held-int8-sq")
    with pytest.raises(ReleaseHeld) as caught:
        publisher.publish(_resaved(build, copy_build, ("trt-llm/checkpoints",)), repo_id=repo_id)
    problems = caught.value.problems
    assert any(p.startswith("config.json: it is not the upstream's file as it is (keys ") for p in problems)
    assert any(
        p.startswith("trt-llm/checkpoints/tokenizer_config.json is not the upstream's") for p in problems
    )
    assert not any(p.startswith("tokenizer_config.json") for p in problems)  # the root's was left alone
    assert not hubsim.api.repo_exists(repo_id)


def test_a_build_that_records_no_gate_is_held(publisher, fp8_build, copy_build, hubsim, release_repo) -> None:
    """A build that records no invariance gate (made before quantbot had one) is held until built again."""
    copy = copy_build(fp8_build)
    manifest = Manifest.read(copy / MANIFEST_NAME)
    manifest.validation.checks = [
        c for c in manifest.validation.checks if not c.name.startswith("invariance:")
    ]
    manifest.write(copy / MANIFEST_NAME)
    repo_id = release_repo("ungated")
    with pytest.raises(ReleaseHeld, match="build it again"):
        publisher.publish(copy, repo_id=repo_id)
    assert not hubsim.api.repo_exists(repo_id)


def test_a_held_release_with_a_draft_keeps_it_a_draft_and_says_why(
    publisher, settings, fp8_build, copy_build, hubsim, release_repo
) -> None:
    """An earlier attempt left a draft (its checkpoint staged); the same release, re-serialised since, is held
    there: a comment says why and the draft is never opened for review."""
    repo_id = release_repo("held-draft")
    draft = StagedPublisher.from_settings(settings).stage(copy_build(fp8_build), repo_id)

    result = publisher.publish(_resaved(fp8_build, copy_build), repo_id=repo_id)

    assert result.status is ReleaseStatus.OPEN and result.pr_number == draft.pr_number
    assert result.message.startswith("held by the invariance gate: ")
    pr = hubsim.api.get_discussion_details(repo_id, draft.pr_number)
    assert pr.status == "draft"
    comments = [e.content for e in pr.events if e.type == "comment"][1:]
    assert any(
        "The invariance gate holds this release" in c and "rope_theta is missing" in c for c in comments
    )


def test_transformers_4_57_reads_a_re_serialised_release_wrongly_and_5_14_does_not(
    fp8_build, copy_build, upstream, hubsim, runtime_envs, tmp_path
) -> None:
    """Why the gate exists, read as the runtimes read it: under TensorRT-LLM's transformers 4.57 the re-saved
    config has RoPE θ 10000 and no llama3 scaling, and the re-saved tokenizer does not load; transformers 5
    reads it as the upstream."""
    request = VerifyRequest(
        repo_id="unused/unused",
        revision="0" * 40,
        endpoint=hubsim.url,
        upstream_repo_id=upstream.repo_id,
        upstream_revision=upstream.revisions[0],
        lines=[RuntimeLine(line="4.57", runtimes=["TensorRT-LLM"]), RuntimeLine(line="5.14", runtimes=["x"])],
        envs_dir=str(runtime_envs),
    )
    old, new = read_under_lines(request, _resaved(fp8_build, copy_build), tmp_path / "upstream")
    assert (old.ok, new.ok) == (False, True)
    assert old.transformers.startswith("4.57.") and new.transformers.startswith("5.14.")
    assert "rope_theta reads 10000.0 (upstream: 500000.0)" in old.detail
    assert "its tokenizer does not load" in old.detail and "TokenizersBackend" in old.detail
    assert new.detail.startswith("RoPE θ 500000.0 (llama3), vocabulary 512")


def test_the_verification_line_names_the_lines_read_and_those_not_checked() -> None:
    record = VerificationRecord(
        ok=True,
        repo_id="q/r",
        revision="a" * 40,
        files=9,
        lines=[
            LineCheck(
                line="4.51", runtimes=["TGI"], ok=None, detail="pip could not install transformers 4.51"
            ),
            LineCheck(
                line="4.57", runtimes=["TensorRT-LLM"], transformers="4.57.6", ok=True, detail="RoPE θ 1"
            ),
            LineCheck(
                line="5.19", runtimes=["vLLM", "SGLang"], transformers="5.19.0", ok=True, detail="RoPE θ 1"
            ),
        ],
    )
    line = verification_line(record)
    under = "under transformers 4.57.6 (TensorRT-LLM), 5.19.0 (vLLM, SGLang)"
    assert f"{under} it reads as its upstream does (RoPE θ 1)" in line
    assert "not read under transformers 4.51 (TGI): pip could not install transformers 4.51" in line
    failed = record.model_copy(
        update={
            "ok": False,
            "lines": [record.lines[1].model_copy(update={"ok": False, "detail": "rope_theta reads 1"})],
        }
    )
    assert "**Failed**" in verification_line(failed)
    assert "transformers 4.57.6 (TensorRT-LLM): rope_theta reads 1" in verification_line(failed)


def test_a_failed_snippet_is_reported_with_its_real_reason() -> None:
    prompt = "The future of AI is"
    warning = (
        "UserWarning: `generation_config` default values have been modified to match model-specific defaults"
    )
    ran = subprocess.CompletedProcess([], 0, stdout="loading...\n", stderr=f"{warning}\n")
    assert snippet_failure(ran, prompt) == "it exited 0 but its output did not contain the prompt"
    traceback = "Traceback (most recent call last):\n  File x\nValueError: no GPU found\n" + warning
    assert snippet_failure(subprocess.CompletedProcess([], 1, "", traceback), prompt) == (
        "it exited 1: ValueError: no GPU found"
    )
    assert snippet_failure(subprocess.CompletedProcess([], 2, "", warning), prompt) == (
        "it exited 2: no exception on stderr"
    )
    assert snippet_failure(subprocess.CompletedProcess([], -9, "", ""), prompt) == "it was killed by signal 9"
