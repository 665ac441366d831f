"""How to run a release: the "Runs with" rows from the runtime table and a usage snippet for each runtime that
loads the format, and only for those (a card never shows a command its runtime would refuse).

The snippets are the card's text and the verification's script at once: the post-upload check runs the
very snippet a user copies (`runnable_snippet`), so what the card shows is what was tried.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.eligibility.matrices import load_runtimes
from bot.eligibility.matrices.runtimes import Runtime, RuntimeCell

PROMPT = "The future of AI is"
NEW_TOKENS = 32

_PYTHON_SNIPPETS = {
    "vllm": (
        "vllm",
        True,
        'from vllm import LLM, SamplingParams\n\nllm = LLM(model="{repo}")\n'
        'outputs = llm.generate(["{prompt}"], SamplingParams(max_tokens={tokens}))\n'
        "print(outputs[0].outputs[0].text)\n",
    ),
    "trtllm_pytorch": (
        "tensorrt_llm",
        True,
        'from tensorrt_llm import LLM, SamplingParams\n\nllm = LLM(model="{repo}")\n'
        'outputs = llm.generate(["{prompt}"], SamplingParams(max_tokens={tokens}))\n'
        "print(outputs[0].outputs[0].text)\n",
    ),
    "transformers": (
        "transformers",
        False,
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
        'model_id = "{repo}"\ntokenizer = AutoTokenizer.from_pretrained(model_id)\n'
        'model = AutoModelForCausalLM.from_pretrained(model_id, device_map="auto")\n'
        'inputs = tokenizer("{prompt}", return_tensors="pt").to(model.device)\n'
        "outputs = model.generate(**inputs, max_new_tokens={tokens}, do_sample=False)\n"
        "print(tokenizer.decode(outputs[0], skip_special_tokens=True))\n",
    ),
}
_SHELL_SNIPPETS = {
    "sglang": "python -m sglang.launch_server --model-path {repo}\n",
    "trtllm_build": (
        'hf download {repo} --include "trt-llm/checkpoints/*" --local-dir release\n'
        "trtllm-build --checkpoint_dir release/trt-llm/checkpoints --output_dir engine\n"
    ),
    "tgi": (
        "docker run --gpus all --shm-size 1g -p 8080:80 \\\n"
        "  ghcr.io/huggingface/text-generation-inference:latest \\\n"
        "  --model-id {repo}\n"
    ),
}


@dataclass(frozen=True)
class Usage:
    """One runtime's way to run the release: its install line and snippet."""

    runtime: str
    name: str
    install: str
    language: str  # "python" or "bash"
    code: str
    module: str | None  # what the Python snippet imports (None for shell)
    needs_gpu: bool
    note: str


def runs_with(fmt: str) -> list[dict[str, str]]:
    """Every runtime's row for a format: loads it or not, on which SMs, and the source of the cell."""
    rows = []
    for runtime, cell in load_runtimes().cells(fmt):
        rows.append(
            {
                "runtime": runtime.name,
                "loads": "yes" if cell.loads else "no",
                "sms": cell.sm_text,
                "detail": cell.note if cell.loads else cell.why,
                "source": cell.source,
            }
        )
    return rows


def usages(fmt: str, repo_id: str) -> list[Usage]:
    """The snippets of the runtimes that load `fmt`, in the table's order."""
    return [_usage(runtime, cell, repo_id) for runtime, cell in load_runtimes().loaders(fmt)]


def _usage(runtime: Runtime, cell: RuntimeCell, repo_id: str) -> Usage:
    values = {"repo": repo_id, "prompt": PROMPT, "tokens": NEW_TOKENS}
    if runtime.id in _PYTHON_SNIPPETS:
        module, gpu, template = _PYTHON_SNIPPETS[runtime.id]
        return Usage(
            runtime.id,
            runtime.name,
            runtime.install,
            "python",
            template.format(**values),
            module,
            gpu,
            cell.note,
        )
    template = _SHELL_SNIPPETS[runtime.id]
    return Usage(
        runtime.id, runtime.name, runtime.install, "bash", template.format(**values), None, True, cell.note
    )


def runnable_snippet(fmt: str, repo_id: str) -> Usage | None:
    """The snippet the verification runs: a Python one, preferring one that needs no GPU."""
    python = [u for u in usages(fmt, repo_id) if u.language == "python"]
    return next((u for u in python if not u.needs_gpu), python[0] if python else None)


def detection_rules(fmt: str) -> dict[str, list[dict[str, object]]]:
    """Runtime id → its detection rule for `fmt`, as the verification worker applies it."""
    return {r.id: [d.as_json() for d in c.detect] for r, c in load_runtimes().loaders(fmt)}
