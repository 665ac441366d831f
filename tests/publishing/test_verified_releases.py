"""Releases as their users get them: each format published to hubsim, downloaded by repo id with the real
client, loaded with `AutoConfig.from_pretrained(repo_id)`, the GPTQ card's own snippet run; the card's runtime
table against the data file; licence copies; no trace of the build machine in any published file.
"""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from huggingface_hub import snapshot_download

from bot.eligibility.facts import build_facts
from bot.eligibility.matrices import load_runtimes
from bot.publishing.portable import machine_traces
from bot.publishing.publisher import Publisher
from bot.publishing.usage import runs_with, usages
from builders.spec import FORMATS, Manifest
from state.models import ReleaseStatus
from tests.publishing.conftest import LICENSE_TEXT

pytestmark = pytest.mark.slow

_NO_CUDA = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="NVFP4 fake quantization needs CUDA: NVFP4 builds run on GPU workers",
)


def _formats(*marked: tuple[str, pytest.MarkDecorator]) -> list:
    marks = dict(marked)
    return [
        pytest.param(
            f, marks=[m for m in (marks.get(f), marks.get("*")) if m] + ([_NO_CUDA] if f == "nvfp4" else [])
        )
        for f in FORMATS
    ]


_PUBLISHED: dict[tuple[str, str], tuple[str, object]] = {}
STYLES = {"llama3": "upstream", "qwen2": "qwen_upstream"}  # the upstream fixture of each model family


@pytest.fixture
def published(verifying_publisher: Publisher, builds, request, hubsim, tmp_path_factory):
    """`published(fmt, style="llama3")` → (repo id, result, local download): built, published with
    verification, downloaded by id (once per upstream and format for the whole module)."""

    def get(fmt: str, style: str = "llama3") -> tuple[str, object, Path]:
        upstream = request.getfixturevalue(STYLES[style])
        if (style, fmt) not in _PUBLISHED:
            build = builds.get(upstream.repo_id, upstream.revisions[0], fmt)
            repo_id = f"{hubsim.user}/verified-{style}-{fmt.replace('_', '-')}-{upstream.revisions[0][:6]}"
            _PUBLISHED[style, fmt] = (repo_id, verifying_publisher.publish(build, repo_id=repo_id))
        repo_id, result = _PUBLISHED[style, fmt]
        merged = result.status is ReleaseStatus.PUBLISHED
        local = Path(
            snapshot_download(
                repo_id,
                revision=None if merged else f"refs/pr/{result.pr_number}",
                endpoint=hubsim.url,
                token=hubsim.token,
                local_dir=tmp_path_factory.mktemp(f"download-{style}-{fmt}"),
            )
        )
        return repo_id, result, local

    return get


def _hub_env(hubsim, cache: Path) -> dict[str, str]:
    return os.environ | {"HF_ENDPOINT": hubsim.url, "HF_TOKEN": hubsim.token, "HF_HUB_CACHE": str(cache)}


def _card_sections(readme: str) -> dict[str, str]:
    """`### Heading` → its text, up to the next heading."""
    parts = re.split(r"^#{2,3} ", readme, flags=re.M)[1:]
    return {part.partition("\n")[0].strip(): part.partition("\n")[2] for part in parts}


@pytest.mark.parametrize("style", ["llama3", "qwen2"])
@pytest.mark.parametrize("fmt", _formats())
def test_release_loads_by_repo_id_and_records_its_verification(
    fmt: str, style: str, published, hubsim, tmp_path
) -> None:
    """Both families, every format that builds here: the release passed the invariance gate (else it would not
    be published), and under the transformers line of every runtime that loads it it reads as its upstream
    does there (RoPE, vocabulary, token ids, special tokens, chat template); card and manifest say so."""
    repo_id, result, local = published(fmt, style)

    manifest = Manifest.read(local / "manifest.json")
    assert manifest.verification is not None, "the manifest records the post-upload verification"
    failures = [f"{c.name}: {c.detail}" for c in manifest.verification.failures]
    assert manifest.verification.ok, failures
    assert result.status is ReleaseStatus.PUBLISHED
    readme = (local / "README.md").read_text()
    assert "**Verified after upload:** downloaded by repo id" in readme
    expected = {r.id for r, _ in load_runtimes().loaders(fmt)}
    assert set(manifest.verification.runtimes) == expected

    lines = load_runtimes().transformers_lines(fmt)
    checked = manifest.verification.lines
    assert [(x.line, x.runtimes, x.ok) for x in checked] == [
        (line, names, True) for line, names in lines.items()
    ]
    theta = {"llama3": "RoPE θ 500000.0 (llama3)", "qwen2": "RoPE θ 1000000.0 (default)"}[style]
    for x in checked:
        assert x.transformers.startswith(x.line + ".") and x.detail.startswith(theta), x
        assert "chat template" in x.detail
    under = ", ".join(f"{x.transformers} ({', '.join(x.runtimes)})" for x in checked)
    assert f"under transformers {under} it reads as its upstream does ({theta}" in readme
    for check in manifest.validation.checks:
        if check.name.startswith("invariance: "):
            assert check.ok, check

    load = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from transformers import AutoConfig; "
            "print(AutoConfig.from_pretrained(sys.argv[1]).model_type)",
            repo_id,
        ],
        env=_hub_env(hubsim, tmp_path / "cache"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert load.returncode == 0, load.stderr[-2000:]
    assert load.stdout.strip() == {"llama3": "llama", "qwen2": "qwen2"}[style]


@pytest.mark.parametrize("fmt", _formats())
def test_card_runtime_table_and_snippets_match_the_data_file(fmt: str, published) -> None:
    _, _, local = published(fmt)
    readme = (local / "README.md").read_text()
    rows = re.findall(r"^\| ([^|]+?) \| (yes|no[^|]*?) \| ([^|]+?) \|", readme, re.M)
    # the card's rows are the table's, each said for the model's family (a runtime that loads the format
    # but not the family says no, and why), as `plan` says it
    config = json.loads((local / "config.json").read_text())
    family = build_facts(config, name="upstream", source="hub", files=[p.name for p in local.iterdir()])
    expected = runs_with(fmt, family)
    assert rows == [(r["runtime"], r["loads"], r["sms"]) for r in expected]
    usage = readme[readme.index("## Usage") :]
    headings = re.findall(r"^### (.+)$", usage.split("\n## ", 1)[0], re.M)
    assert headings == [u.name for u in usages(fmt, "upstream", family=family)]


@pytest.mark.parametrize("fmt", _formats())
def test_no_trace_of_the_build_machine_in_any_published_file(fmt: str, published, tmp_path_factory) -> None:
    _, _, local = published(fmt)
    names = [str(Path.home()), str(tmp_path_factory.getbasetemp())]
    for path in sorted(p for p in local.rglob("*") if p.is_file() and ".cache" not in p.parts):
        if path.suffix == ".safetensors":
            with path.open("rb") as f:
                (length,) = struct.unpack("<Q", f.read(8))
                text = f.read(length).decode()
        elif path.suffix == ".engine":
            continue
        else:
            text = path.read_text(encoding="utf-8")
        assert machine_traces(text, names=names) == [], path.relative_to(local)


@pytest.mark.parametrize("fmt", _formats())
def test_licence_files_of_the_upstream_are_copied(fmt: str, published) -> None:
    _, _, local = published(fmt)
    assert (local / "LICENSE").read_text() == LICENSE_TEXT
    assert "[`LICENSE`](LICENSE)" in (local / "README.md").read_text()


def test_gptq_generates_through_the_cards_own_snippet(published, hubsim, tmp_path) -> None:
    _, _, local = published("gptq")
    readme = (local / "README.md").read_text()
    section = _card_sections(readme)["transformers + GPTQModel / optimum"]
    install = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    assert install.split() == ["pip", "install", "transformers", "accelerate", "optimum", "gptqmodel"]
    snippet = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    run = subprocess.run(
        [sys.executable, "-c", snippet],
        env=_hub_env(hubsim, tmp_path / "cache"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    printed = run.stdout[run.stdout.rfind("The future of AI is") :]  # GPTQModel logs on stdout before it
    assert printed.startswith("The future of AI is") and len(printed.strip()) > len("The future of AI is") + 5
    vllm = re.search(r"```python\n(.*?)```", _card_sections(readme)["vLLM"], re.S).group(1)
    assert 'LLM(model="' in vllm and "quantization=" not in vllm


def test_a_release_published_from_this_machine_records_each_sms_serving_check(published) -> None:
    """A local build's SMs had no task of their own: this machine (no GPU) ran their serving checks on the
    commit it uploaded. The GPU runtimes say why they did not run, with no figure; transformers ran on CPU
    once, under the first SM, and the card's "Tested on" table says so."""
    _, result, local = published("gptq")
    manifest = Manifest.read(local / "manifest.json")
    checked = {(r.sm, r.runtime): r for r in manifest.serving}
    assert set(checked) == {(sm, rt) for sm in (89, 90) for rt in ("vllm", "sglang", "transformers")}
    for sm in (89, 90):
        vllm = checked[sm, "vllm"]
        assert (vllm.status, vllm.reason, vllm.tokens_per_s) == (
            "not_run",
            "vLLM is not installed on this worker",
            None,
        )
    cpu, again = checked[89, "transformers"], checked[90, "transformers"]
    assert (cpu.status, cpu.device, cpu.repo_id) == ("passed", "cpu", manifest.serving[0].repo_id), cpu.reason
    assert cpu.tokens_per_s and cpu.tokens_per_s > 0 and cpu.load_s and cpu.peak_gpu_memory_bytes is None
    assert cpu.output and cpu.new_tokens
    assert (again.status, again.reason) == ("not_run", "measured once on this worker's CPU, under sm89")
    tested = (local / "README.md").read_text().split("## Tested on")[1].split("## Usage")[0]
    assert f"at `{cpu.revision[:12]}`" in tested
    assert "| sm89 task, run on CPU |" in tested and f"| {cpu.tokens_per_s} (CPU, transformers) |" in tested


def test_a_release_that_fails_verification_stays_a_draft_saying_why(
    verifying_publisher, builds, upstream, hubsim, release_repo, copy_build
) -> None:
    """A quantization config no runtime recognises (a quant_algo none reads) keeps the upstream's files, so it
    passes the invariance gate and every local check, then fails the runtimes' detection on the downloaded
    release: the PR stays a draft with a comment, and the card says it failed."""
    build = copy_build(builds.get(upstream.repo_id, upstream.revisions[0], "fp8"))
    quant = json.loads((build / "hf_quant_config.json").read_text())
    quant["quantization"]["quant_algo"] = "FP9"
    (build / "hf_quant_config.json").write_text(json.dumps(quant))
    manifest = Manifest.read(build / "manifest.json")
    from builders.artifacts import sha256_file

    for artifact in manifest.artifacts:
        if artifact.path == "hf_quant_config.json":
            artifact.size = (build / "hf_quant_config.json").stat().st_size
            artifact.sha256 = sha256_file(build / "hf_quant_config.json")
    manifest.write(build / "manifest.json")
    repo_id = release_repo("unverified")

    result = verifying_publisher.publish(build, repo_id=repo_id)

    assert result.status is ReleaseStatus.OPEN and "verification after upload failed" in result.message
    pr = hubsim.api.get_discussion_details(repo_id, result.pr_number)
    assert pr.status == "draft"
    comments = [e.content for e in pr.events if e.type == "comment"]
    assert any("Verification after upload failed" in c and "runtime detection" in c for c in comments[1:])
    readme = hubsim.api.hf_hub_download(repo_id, "README.md", revision=f"refs/pr/{result.pr_number}")
    assert "**Verified after upload:** **Failed**" in Path(readme).read_text()
    assert not hubsim.api.file_exists(repo_id, "config.json")  # main never got it
