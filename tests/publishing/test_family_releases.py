"""Families beyond the dense Llama: mixtures of experts (Qwen3-MoE and Mixtral style) and a remote-code model
(Phi-3 with `auto_map` and its .py files), each made here as a tiny repo, pushed to hubsim, planned, built,
published and loaded by repo id with transformers, or, where nothing installed here loads the release, read
by id and its tensors checked against the upstream's names. The build starts in a folder of its own and
leaves nothing there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import snapshot_download

from bot.eligibility.facts import facts_from_dir
from bot.eligibility.planner import PlanOptions, plan
from bot.eligibility.targets import target_for
from bot.publishing.publisher import Publisher
from bot.publishing.usage import PROMPT, is_chat_model, runnable_snippet
from builders.spec import Manifest
from builders.tiny_families import PHI3_CODE
from state.models import ReleaseStatus

pytestmark = pytest.mark.slow

# A GPTQ mixture of experts loaded by repo id as GPTQModel loads it (one linear layer per expert in its
# model definitions), then generating.
_GPTQMODEL_LOAD = """
import os, sys
os.environ.setdefault("GPTQMODEL_CPU_WORKERS", "2")
from gptqmodel import GPTQModel
from transformers import AutoTokenizer
tokenizer = AutoTokenizer.from_pretrained(sys.argv[1])
model = GPTQModel.load(sys.argv[1], device="cpu").model
inputs = tokenizer("Alice was beginning", return_tensors="pt")
out = model.generate(**inputs, max_new_tokens=4, min_new_tokens=4, do_sample=False)
print("NEW_TOKENS", out.shape[1] - inputs["input_ids"].shape[1])
"""


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("qwen3_moe", "gptq"), ("qwen3_moe", "fp8"), ("phi3_remote", "gptq"), ("mixtral", "gptq")],
)
def test_a_family_release_is_planned_built_published_and_loads_by_repo_id(
    name: str, fmt: str, family, builds, publisher: Publisher, hubsim, tmp_path: Path
) -> None:
    folder, upstream = family(name)
    trust = name == "phi3_remote"
    facts = facts_from_dir(folder)
    planned = plan(facts, [target_for(90)], PlanOptions(trust_remote_code_repos=frozenset({str(folder)})))
    assert fmt in {e.format for e in planned.targets[0].eligible}, planned.targets[0].skipped

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    build = builds.get(upstream.repo_id, upstream.revisions[0], fmt, trust_remote_code=trust, cwd=cwd)
    assert list(cwd.iterdir()) == [], "the build left files where it was started"
    manifest = Manifest.read(build / "manifest.json")
    assert manifest.validation is not None and manifest.validation.ok
    assert manifest.validation.sample is not None and manifest.validation.sample.new_tokens > 0

    repo_id = f"{hubsim.user}/family-{name.replace('_', '-')}-{fmt}-{upstream.revisions[0][:6]}"
    result = publisher.publish(build, repo_id=repo_id)
    assert result.status is ReleaseStatus.PUBLISHED
    local = Path(
        snapshot_download(repo_id, endpoint=hubsim.url, token=hubsim.token, local_dir=tmp_path / "dl")
    )
    readme = (local / "README.md").read_text()
    if trust:  # the upstream's code, verbatim, and snippets that pass the flag
        assert {f: (local / f).read_text() for f in PHI3_CODE} == PHI3_CODE
        assert "trust_remote_code=True" in readme and "--trust-remote-code" in readme
    else:
        assert "trust_remote_code" not in readme

    env = os.environ | {
        "HF_ENDPOINT": hubsim.url,
        "HF_TOKEN": hubsim.token,
        "HF_HUB_CACHE": str(tmp_path / "c"),
    }
    if fmt == "gptq" and name == "qwen3_moe":  # transformers 5.14 cannot fill fused experts: the card says so
        assert "| transformers + GPTQModel / optimum | no, not Qwen3MoeForCausalLM |" in readme
        assert "AutoModelForCausalLM" not in readme
        run = subprocess.run(
            [sys.executable, "-c", _GPTQMODEL_LOAD, repo_id],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        assert "NEW_TOKENS 4" in run.stdout
    elif fmt == "gptq" and name == "mixtral":  # the upstream's names, which neither loader here reads
        _assert_upstream_names(local, folder)
        assert "| transformers + GPTQModel / optimum | no, not MixtralForCausalLM |" in readme
        assert "| vLLM | yes |" in readme and "| SGLang | yes |" in readme, readme
        assert manifest.validation.reload.startswith("GPTQModel.load(the quantize stage's checkpoint")
    elif fmt == "gptq":  # transformers loads GPTQ on CPU: the card's own snippet loads it by id and generates
        snippet = runnable_snippet(fmt, repo_id, chat=is_chat_model(manifest), trust_remote_code=trust)
        assert snippet is not None and snippet.code in readme and snippet.runtime == "transformers"
        code = (
            snippet.code
            + "print('NEW', outputs.shape[1] - inputs['input_ids'].shape[1], type(model).__module__)\n"
        )
        run = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600
        )
        assert run.returncode == 0, run.stderr[-3000:]
        new_tokens, module = run.stdout.rpartition("NEW ")[2].split()
        assert PROMPT in run.stdout and int(new_tokens) > 0
        assert "MISSING" not in run.stderr, "every weight of the release loads"
        assert module.startswith("transformers_modules") is trust  # the release's own code ran
    else:  # no runtime here loads FP8 (they need CUDA): the release reads by id; it generated fake-quantized
        probe = (
            "import sys; from transformers import AutoConfig; print(AutoConfig.from_pretrained(sys.argv[1]))"
        )
        run = subprocess.run(
            [sys.executable, "-c", probe, repo_id], env=env, capture_output=True, text=True, timeout=300
        )
        assert run.returncode == 0, run.stderr[-3000:]
        assert (local / "hf_quant_config.json").exists()


def _assert_upstream_names(release: Path, upstream: Path) -> None:
    """Every linear layer of the upstream's experts and attention has its GPTQ tensors under the upstream's
    own name (`block_sparse_moe.experts.N.w1`, as vLLM's and SGLang's Mixtral loaders read it); the routers
    keep their weights as the upstream stores them; nothing is left under transformers 5's names."""
    from safetensors.torch import load_file

    def tensors(folder: Path) -> dict:
        return {n: t for f in sorted(folder.glob("*.safetensors")) for n, t in load_file(f).items()}

    ours, theirs = tensors(release), tensors(upstream)
    layers = [n.removesuffix(".weight") for n, t in theirs.items() if ".layers." in n and t.dim() == 2]
    routers = [m for m in layers if m.endswith(".block_sparse_moe.gate")]
    experts = [m for m in layers if ".block_sparse_moe.experts." in m]
    assert len(routers) == 2 and len(experts) == 2 * 4 * 3 and {m[-2:] for m in experts} == {"w1", "w2", "w3"}
    for module in set(layers) - set(routers):
        assert {f"{module}.{k}" for k in ("qweight", "qzeros", "scales", "g_idx")} <= ours.keys(), module
        assert f"{module}.weight" not in ours
    for router in routers:
        assert ours[f"{router}.weight"].equal(theirs[f"{router}.weight"]), router
    assert not [n for n in ours if ".mlp." in n], "a layer left under transformers 5's names"
