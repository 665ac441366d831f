"""Loading the upstream model with transformers, and the two measurements every build makes on it.

The architecture is checked from config.json before any weight is read, so an unsupported model fails in
a second with a reason, not after a long load. Perplexity is scored on the held-out text in
non-overlapping windows; the sample is a short greedy generation.
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


def check_architecture(config: dict[str, Any], spec: BuildSpec) -> dict[str, Any]:
    """Facts about the model; fails when the format's toolchain cannot handle its architecture."""
    archs = config.get("architectures") or []
    model_type = config.get("model_type")
    if not archs:
        raise BuildFailure(
            "unsupported_architecture",
            "config.json does not name the model's architecture ('architectures' is empty); "
            "ModelOpt's export and GPTQModel both need it",
            bad_input=True,
        )
    arch = archs[0]
    if not arch.endswith("ForCausalLM"):
        raise BuildFailure(
            "unsupported_architecture",
            f"{arch} is not a causal language model (…ForCausalLM)",
            bad_input=True,
        )
    if config.get("auto_map") and not spec.trust_remote_code and not _transformers_knows(model_type):
        raise BuildFailure(
            "unsupported_architecture",
            f"{arch} ({model_type}) needs the repo's own code (auto_map); trust_remote_code is off",
            bad_input=True,
        )
    facts = {
        "architecture": arch,
        "model_type": model_type,
        "dtype": config.get("dtype") or config.get("torch_dtype"),
    }
    if spec.format == "gptq":
        from builders.gptq import supported_model_types

        if str(model_type).lower() not in supported_model_types():
            raise BuildFailure(
                "unsupported_architecture",
                f"GPTQModel does not support model_type {model_type!r}",
                bad_input=True,
            )
    else:
        from modelopt.torch.export.model_utils import MODEL_NAME_TO_TYPE

        decoder = next((v for k, v in MODEL_NAME_TO_TYPE.items() if k.lower() in arch.lower()), None)
        if decoder is None:
            raise BuildFailure(
                "unsupported_architecture",
                f"ModelOpt cannot export {arch}: no decoder type matches it",
                bad_input=True,
            )
        facts["decoder_type"] = decoder
    return facts


def _transformers_knows(model_type: str | None) -> bool:
    from transformers import CONFIG_MAPPING

    return model_type in CONFIG_MAPPING


def load_tokenizer(snapshot: Path, spec: BuildSpec, fix_padding: bool = True) -> Any:
    """The upstream tokenizer; for batching, a missing pad token becomes EOS (not when saved as is)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(snapshot, trust_remote_code=spec.trust_remote_code)
    if fix_padding and tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(snapshot: Path, spec: BuildSpec, device: str) -> Any:
    """The upstream model in its stored dtype; spread over the GPUs on CUDA (as hf_ptq loads it)."""
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {
        "dtype": "auto",
        "trust_remote_code": spec.trust_remote_code,
        "use_safetensors": None if spec.allow_pickle else True,
    }
    if device == "cuda":
        kwargs["device_map"] = "auto"
    model = AutoModelForCausalLM.from_pretrained(snapshot, **kwargs)
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


def load_stage(ctx: Any) -> dict[str, Any]:
    """load: check the architecture, load the upstream model, and score it on the held-out text."""
    from builders.validate import eval_text, eval_text_path

    spec, v = ctx.spec, ctx.spec.validation
    config = read_config(ctx.snapshot_dir)
    facts = check_architecture(config, spec)
    ctx.progress(0.1, f"loading {facts['architecture']} on {ctx.torch_device}")
    tokenizer = ctx.tokenizer()
    model = ctx.base_model()
    ctx.progress(0.6, "measuring the base model on the held-out text")
    ppl = perplexity(model, tokenizer, eval_text(v), v.eval_tokens, v.eval_seq_len)
    facts |= {
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "num_layers": config.get("num_hidden_layers"),
        "base_perplexity": ppl["perplexity"],
        "eval_tokens": ppl["tokens"],
        "eval_text": eval_text_path(v).name,
    }
    if spec.format == "gptq":
        ctx.release_model()  # GPTQModel loads its own copy
    return facts
