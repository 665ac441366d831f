"""How to run a release: the "Runs with" rows from the runtime table and a usage snippet for each runtime that
loads the format, and only for those (a card never shows a command its runtime would refuse).

The snippets are the card's text and the verification's script at once: the post-upload check runs the
very snippet a user copies (`runnable_snippet`), so what the card shows is what was tried. A chat model (its
tokenizer has a chat template) is prompted through that template, as its users prompt it.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.eligibility.facts import ModelFacts
from bot.eligibility.matrices import load_runtimes
from bot.eligibility.matrices.runtimes import Runtime, RuntimeCell
from bot.eligibility.planner import runs_family
from builders.spec import Manifest

PROMPT = "The future of AI is"
# A vision-language model's snippets pass an image with a question (an image transformers' docs use).
IMAGE_URL = "http://images.cocodataset.org/val2017/000000039769.jpg"
IMAGE_PROMPT = "Describe this image."
NEW_TOKENS = 32
TGI_IMAGE = "ghcr.io/huggingface/text-generation-inference:3.3.7"

_MESSAGES = 'messages = [{{"role": "user", "content": "{prompt}"}}]\n'
_SAMPLING = "SamplingParams(max_tokens={tokens})"
_CHAT_PROMPT = (
    _MESSAGES + 'prompt = AutoTokenizer.from_pretrained("{tokenizer}"{rc}).apply_chat_template(\n'
    "    messages, tokenize=False, add_generation_prompt=True\n)\n"
)
# Python snippets: (module imported, needs a GPU, code for a plain model, code for a chat model).
_PYTHON_SNIPPETS = {
    "vllm": (
        "vllm",
        True,
        'from vllm import LLM, SamplingParams\n\nllm = LLM(model="{repo}"{rc})\n'
        f'outputs = llm.generate(["{{prompt}}"], {_SAMPLING})\n'
        "print(outputs[0].outputs[0].text)\n",
        'from vllm import LLM, SamplingParams\n\nllm = LLM(model="{repo}"{rc})\n'
        + _MESSAGES
        + f"outputs = llm.chat(messages, {_SAMPLING})\n"
        "print(outputs[0].outputs[0].text)\n",
    ),
    "trtllm_pytorch": (
        "tensorrt_llm",
        True,
        'from tensorrt_llm import LLM, SamplingParams\n\nllm = LLM(model="{repo}"{rc})\n'
        f'outputs = llm.generate(["{{prompt}}"], {_SAMPLING})\n'
        "print(outputs[0].outputs[0].text)\n",
        "from tensorrt_llm import LLM, SamplingParams\nfrom transformers import AutoTokenizer\n\n"
        'llm = LLM(model="{repo}"{rc})\n'
        + _CHAT_PROMPT.replace("{tokenizer}", "{repo}")
        + f"outputs = llm.generate([prompt], {_SAMPLING})\n"
        "print(outputs[0].outputs[0].text)\n",
    ),
    "transformers": (
        "transformers",
        False,
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
        'model_id = "{repo}"\ntokenizer = AutoTokenizer.from_pretrained(model_id{rc})\n'
        'model = AutoModelForCausalLM.from_pretrained(model_id, device_map="auto"{rc})\n'
        'inputs = tokenizer("{prompt}", return_tensors="pt").to(model.device)\n'
        "outputs = model.generate(**inputs, max_new_tokens={tokens}, do_sample=False)\n"
        "print(tokenizer.decode(outputs[0], skip_special_tokens=True))\n",
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
        'model_id = "{repo}"\ntokenizer = AutoTokenizer.from_pretrained(model_id{rc})\n'
        'model = AutoModelForCausalLM.from_pretrained(model_id, device_map="auto"{rc})\n'
        + _MESSAGES
        + "inputs = tokenizer.apply_chat_template(\n"
        '    messages, add_generation_prompt=True, return_tensors="pt", return_dict=True\n'
        ").to(model.device)\n"
        "outputs = model.generate(**inputs, max_new_tokens={tokens}, do_sample=False)\n"
        "print(tokenizer.decode(outputs[0], skip_special_tokens=True))\n",
    ),
}
# Shell snippets: (plain, chat). Servers are started, then asked once; trtllm-build builds the engine from
# the legacy checkpoint on the GPU that will run it, then TensorRT-LLM's engine runner generates with it.
_CHAT_BODY = (
    '{{"model": "{model}", "messages": [{{"role": "user", "content": "{prompt}"}}], "max_tokens": {tokens}}}'
)
_DOWNLOAD_AND_BUILD = (
    'hf download {repo} --include "trt-llm/checkpoints/*" --local-dir release\n'
    "trtllm-build --checkpoint_dir release/trt-llm/checkpoints --output_dir engine --gemm_plugin auto\n"
)


def _engine_run(setup: str, prompt_arg: str) -> str:
    """The engine runner of TensorRT-LLM ≤ 1.2 on the engine just built, with the checkpoint's tokenizer."""
    return (
        _DOWNLOAD_AND_BUILD + "python - <<'EOF'\n"
        "from tensorrt_llm import SamplingParams\n"
        "from tensorrt_llm._tensorrt_engine import LLM  # the TensorRT engine runner\n"
        f"{setup}\n"
        'llm = LLM(model="engine", tokenizer="release/trt-llm/checkpoints")\n'
        f"outputs = llm.generate([{prompt_arg}], {_SAMPLING})\n"
        "print(outputs[0].outputs[0].text)\nEOF\n"
    )


_SHELL_SNIPPETS = {
    "sglang": (
        "python -m sglang.launch_server --model-path {repo}{rc_flag}\n"
        "# then, once the server is up:\n"
        "curl http://localhost:30000/v1/completions -H 'Content-Type: application/json' \\\n"
        """  -d '{{"model": "{repo}", "prompt": "{prompt}", "max_tokens": {tokens}}}'\n""",
        "python -m sglang.launch_server --model-path {repo}{rc_flag}\n"
        "# then, once the server is up:\n"
        "curl http://localhost:30000/v1/chat/completions -H 'Content-Type: application/json' \\\n"
        "  -d '" + _CHAT_BODY.replace("{model}", "{repo}") + "'\n",
    ),
    "trtllm_build": (
        _engine_run("", '"{prompt}"'),
        _engine_run(
            "from transformers import AutoTokenizer\n\n"
            + _CHAT_PROMPT.replace("{tokenizer}", "release/trt-llm/checkpoints"),
            "prompt",
        ),
    ),
    "tgi": (
        "docker run --gpus all --shm-size 1g -p 8080:80 \\\n"
        f"  {TGI_IMAGE} \\\n"
        "  --model-id {repo}{rc_flag}\n"
        "# then, once the server is up:\n"
        "curl http://localhost:8080/generate -H 'Content-Type: application/json' \\\n"
        """  -d '{{"inputs": "{prompt}", "parameters": {{"max_new_tokens": {tokens}}}}}'\n""",
        "docker run --gpus all --shm-size 1g -p 8080:80 \\\n"
        f"  {TGI_IMAGE} \\\n"
        "  --model-id {repo}{rc_flag}\n"
        "# then, once the server is up:\n"
        "curl http://localhost:8080/v1/chat/completions -H 'Content-Type: application/json' \\\n"
        "  -d '" + _CHAT_BODY.replace("{model}", "tgi") + "'\n",
    ),
}


_IMAGE_MESSAGES = (
    'messages = [{{"role": "user", "content": [\n'
    '    {{"type": "image_url", "image_url": {{"url": "{image}"}}}},\n'
    '    {{"type": "text", "text": "{image_prompt}"}},\n'
    "]}}]\n"
)
_IMAGE_BODY = (
    '{{"model": "{model}", "messages": [{{"role": "user", "content": ['
    '{{"type": "image_url", "image_url": {{"url": "{image}"}}}}, {{"type": "text", "text": "{image_prompt}"}}'
    ']}}], "max_tokens": {tokens}}}'
)
# A vision-language model's snippet per runtime, in its chat form with an image (the upstream's auto class
# and processor for transformers); a runtime without one shows its text snippet.
_IMAGE_SNIPPETS = {
    "vllm": 'from vllm import LLM, SamplingParams\n\nllm = LLM(model="{repo}"{rc})\n'
    + _IMAGE_MESSAGES
    + f"outputs = llm.chat(messages, {_SAMPLING})\n"
    "print(outputs[0].outputs[0].text)\n",
    "transformers": "from transformers import AutoModelForImageTextToText, AutoProcessor\n\n"
    'model_id = "{repo}"\nprocessor = AutoProcessor.from_pretrained(model_id{rc})\n'
    'model = AutoModelForImageTextToText.from_pretrained(model_id, device_map="auto"{rc})\n'
    'messages = [{{"role": "user", "content": [\n'
    '    {{"type": "image", "url": "{image}"}},\n'
    '    {{"type": "text", "text": "{image_prompt}"}},\n'
    "]}}]\n"
    "inputs = processor.apply_chat_template(\n"
    '    messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"\n'
    ").to(model.device)\n"
    "outputs = model.generate(**inputs, max_new_tokens={tokens}, do_sample=False)\n"
    "print(processor.decode(outputs[0], skip_special_tokens=True))\n",
    "sglang": "python -m sglang.launch_server --model-path {repo}{rc_flag}\n"
    "# then, once the server is up:\n"
    "curl http://localhost:30000/v1/chat/completions -H 'Content-Type: application/json' \\\n"
    "  -d '" + _IMAGE_BODY.replace("{model}", "{repo}") + "'\n",
    "tgi": "docker run --gpus all --shm-size 1g -p 8080:80 \\\n"
    f"  {TGI_IMAGE} \\\n"
    "  --model-id {repo}{rc_flag}\n"
    "# then, once the server is up:\n"
    "curl http://localhost:8080/v1/chat/completions -H 'Content-Type: application/json' \\\n"
    "  -d '" + _IMAGE_BODY.replace("{model}", "tgi") + "'\n",
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


def runs_with(fmt: str, family: ModelFacts | None = None) -> list[dict[str, str]]:
    """Every runtime's row for a format: loads it or not, on which SMs, and the source of the cell; with the
    model's `family`, a runtime that loads the format but not that family says no, and why (as `plan`)."""
    rows = []
    for runtime, cell in load_runtimes().cells(fmt):
        loads, detail = cell.verdict, cell.note if cell.loads else cell.why
        if family is not None and cell.loads:
            runs, why = runs_family(runtime.id, fmt, family)
            if not runs:
                arch = family.architectures[0] if family.architectures else family.model_type
                loads, detail = f"no, not {arch}", why
        rows.append(
            {
                "runtime": runtime.name,
                "loads": loads,
                "sms": cell.sm_text,
                "detail": detail,
                "source": cell.source,
            }
        )
    return rows


def wrong_loaders(fmt: str) -> list[dict[str, str]]:
    """The runtimes that take a release of `fmt` without an error and compute something else: a card warns."""
    return [
        {"runtime": runtime.name, "why": cell.why}
        for runtime, cell in load_runtimes().cells(fmt)
        if cell.wrong
    ]


def is_chat_model(manifest: Manifest) -> bool:
    """Whether the upstream's tokenizer has a chat template (the build recorded it): snippets use it."""
    return bool(manifest.source and manifest.source.chat_template)


def usages(
    fmt: str,
    repo_id: str,
    *,
    chat: bool = False,
    trust_remote_code: bool = False,
    family: ModelFacts | None = None,
) -> list[Usage]:
    """The snippets of the runtimes that load `fmt` (and run the model's `family`, when given), in the
    table's order; `chat` prompts through the model's chat template; `trust_remote_code` (a release that
    carries its upstream's code, auto_map) passes each runtime's flag for it, without which it won't load;
    a vision-language `family` is asked about an image."""
    vision = bool(family and family.vision)
    return [
        _usage(runtime, cell, repo_id, chat, trust_remote_code, vision)
        for runtime, cell in load_runtimes().loaders(fmt)
        if family is None or runs_family(runtime.id, fmt, family)[0]
    ]


def _usage(
    runtime: Runtime, cell: RuntimeCell, repo_id: str, chat: bool, trust_remote_code: bool, vision: bool
) -> Usage:
    values = {
        "repo": repo_id,
        "prompt": PROMPT,
        "image": IMAGE_URL,
        "image_prompt": IMAGE_PROMPT,
        "tokens": NEW_TOKENS,
        "rc": ", trust_remote_code=True" if trust_remote_code else "",
        "rc_flag": " --trust-remote-code" if trust_remote_code else "",
    }
    image = _IMAGE_SNIPPETS.get(runtime.id) if vision else None
    if runtime.id in _PYTHON_SNIPPETS:
        module, gpu, plain, templated = _PYTHON_SNIPPETS[runtime.id]
        code = (image or (templated if chat else plain)).format(**values)
        return Usage(runtime.id, runtime.name, runtime.install, "python", code, module, gpu, cell.note)
    plain, templated = _SHELL_SNIPPETS[runtime.id]
    code = (image or (templated if chat else plain)).format(**values)
    return Usage(runtime.id, runtime.name, runtime.install, "bash", code, None, True, cell.note)


def runnable_snippet(
    fmt: str,
    repo_id: str,
    *,
    chat: bool = False,
    trust_remote_code: bool = False,
    family: ModelFacts | None = None,
) -> Usage | None:
    """The snippet the verification runs: a Python one the card shows, preferring one that needs no GPU."""
    snippets = usages(fmt, repo_id, chat=chat, trust_remote_code=trust_remote_code, family=family)
    python = [u for u in snippets if u.language == "python"]
    return next((u for u in python if not u.needs_gpu), python[0] if python else None)


def detection_rules(fmt: str) -> dict[str, list[dict[str, object]]]:
    """Runtime id → its detection rule for `fmt`, as the verification worker applies it."""
    return {r.id: [d.as_json() for d in c.detect] for r, c in load_runtimes().loaders(fmt)}
