"""Loading the upstream model with transformers, and the two measurements every build makes on it.

Perplexity is scored on the held-out text in non-overlapping windows; the sample is a short greedy
generation. Nothing here knows of build stages: the stages (`load`, `validate`, the producers) call in.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from builders.failures import BuildFailure
from builders.spec import BuildSpec

PPL_BATCH = 4


def read_config(snapshot: Path) -> dict[str, Any]:
    try:
        return json.loads((Path(snapshot) / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise BuildFailure("not_a_model", f"cannot read config.json of the model: {e}", bad_input=True) from e


def load_tokenizer(snapshot: Path, spec: BuildSpec) -> Any:
    """The upstream tokenizer; for batching, a missing pad token becomes EOS (in memory only: a release
    carries the upstream's tokenizer files as they are)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(snapshot, trust_remote_code=spec.trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def is_vision_language(config: dict[str, Any]) -> bool:
    """A vision-language model: config.json has a vision tower's config beside its language model's."""
    return isinstance(config.get("vision_config"), dict)


def text_config(config: dict[str, Any]) -> dict[str, Any]:
    """The language model's settings: a VLM's `text_config`, else the config itself."""
    inner = config.get("text_config")
    return inner if isinstance(inner, dict) else config


def load_model(snapshot: Path, spec: BuildSpec, device: str) -> Any:
    """The upstream model in its stored dtype; spread over the GPUs on CUDA (as hf_ptq loads it). A VLM is
    loaded whole by its upstream's auto class, so its export keeps the vision tower and projector as they
    are; only its language model is calibrated (with text) and quantized."""
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    kwargs: dict[str, Any] = {
        "dtype": "auto",
        "trust_remote_code": spec.trust_remote_code,
        "use_safetensors": None if spec.allow_pickle else True,
    }
    if device == "cuda":
        kwargs["device_map"] = "auto"
    auto = AutoModelForImageTextToText if is_vision_language(read_config(snapshot)) else AutoModelForCausalLM
    model = auto.from_pretrained(snapshot, **kwargs)
    return model.eval()


def model_device(model: Any) -> Any:
    return next(model.parameters()).device


def perplexity(model: Any, tokenizer: Any, text: str, max_tokens: int, seq_len: int) -> dict[str, Any]:
    """exp(mean next-token NLL) over the first ``max_tokens`` tokens of ``text``, in windows of ``seq_len``.

    Windows are scored a few at a time (logits of a large vocabulary are big), each on its own.
    """
    import torch

    ids = tokenizer(text, add_special_tokens=False)["input_ids"][:max_tokens]
    windows = [ids[i : i + seq_len] for i in range(0, len(ids), seq_len)]
    windows = [w for w in windows if len(w) >= 2]
    device = model_device(model)
    total, count = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(windows), PPL_BATCH):
            group = windows[start : start + PPL_BATCH]
            for size in sorted({len(w) for w in group}):  # only the last window can be shorter
                batch = torch.tensor([w for w in group if len(w) == size], device=device)
                logits = model(input_ids=batch, use_cache=False).logits.float()
                nll = torch.nn.functional.cross_entropy(
                    logits[:, :-1].reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1), reduction="sum"
                )
                total += float(nll)
                count += batch.shape[0] * (size - 1)
    if count == 0:
        raise BuildFailure("eval_text_too_short", "the held-out text has fewer than 2 tokens", bad_input=True)
    value = math.exp(total / count)
    if not math.isfinite(value):
        raise BuildFailure("perplexity_not_finite", f"perplexity is not finite ({value})")
    return {"perplexity": value, "tokens": count}


def generate_sample(model: Any, tokenizer: Any, prompt: str, new_tokens: int) -> dict[str, Any]:
    """A greedy continuation of ``prompt``: proof that the model runs token by token."""
    import torch

    enc = tokenizer(prompt, return_tensors="pt").to(model_device(model))
    with torch.inference_mode():
        out = model.generate(
            **enc, max_new_tokens=new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
        )
    new = out[0, enc["input_ids"].shape[1] :]
    return {
        "prompt": prompt,
        "output": tokenizer.decode(new, skip_special_tokens=True),
        "new_tokens": int(new.numel()),
    }


def generate_from_image(model: Any, snapshot: Path, question: str, new_tokens: int) -> dict[str, Any]:
    """A greedy answer about a small generated image, through the upstream's processor and chat template; or
    why it could not run: transformers' fast image and video processors need torchvision, and only some
    families have an image processor without it (`backend="pil"`)."""
    import torch
    from PIL import Image
    from transformers import AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(snapshot, backend="pil")
    except (ImportError, ValueError, OSError) as e:
        reason = " ".join(str(e).split())[:300]
        return {"not_run": f"the upstream's processor does not load in this build environment: {reason}"}
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    image = Image.new("RGB", (56, 42), (200, 60, 40))
    inputs = processor(images=image, text=text, return_tensors="pt").to(model_device(model))
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=new_tokens, do_sample=False)
    new = out[0, inputs["input_ids"].shape[1] :]
    return {
        "prompt": question,
        "image": "a 56×42 RGB image made by the build",
        "output": processor.decode(new, skip_special_tokens=True),
        "new_tokens": int(new.numel()),
    }
