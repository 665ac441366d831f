"""The load stage: check the architecture from config.json, load the upstream model, score it.

The architecture is checked before any weight is read, so an unsupported model fails in a second with a
reason, not after a long load; the format's own toolchain (GPTQModel or ModelOpt) says what it supports.
"""

from __future__ import annotations

import time
from typing import Any

from builders import gptq
from builders.context import BuildContext
from builders.failures import BuildFailure
from builders.hfmodel import is_vision_language, perplexity, read_config, text_config
from builders.spec import BuildSpec
from builders.validate import eval_text, eval_text_path

# Measured with gptqmodel 7.6.0: its VLM definitions load the model with the upstream's processor and
# calibrate with images, and transformers' image processors need torchvision, which cannot be installed beside
# the build's CPU torch.
GPTQ_VLM_REASON = (
    "GPTQModel quantizes a vision-language model through its processor (images in calibration), and "
    "transformers' image processors need torchvision, which the build environment does not have"
)


def load_stage(ctx: BuildContext) -> dict[str, Any]:
    """load: check the architecture, load the upstream model, and score it on the held-out text."""
    spec, v = ctx.spec, ctx.spec.validation
    config = read_config(ctx.snapshot_dir)
    facts = check_architecture(config, spec)
    ctx.progress(0.1, f"loading {facts['architecture']} on {ctx.torch_device}")
    tokenizer = ctx.tokenizer()
    model = gptq.load_base(ctx).model if spec.format == "gptq" and gptq.loads_once(ctx) else ctx.base_model()
    ctx.progress(0.6, "measuring the base model on the held-out text")
    started = time.monotonic()
    ppl = perplexity(model, tokenizer, eval_text(v), v.eval_tokens, v.eval_seq_len)
    facts |= {
        # as stored: GPTQModel holds a model in bfloat16 on a CPU, and the base is measured as it holds it
        "dtype": facts["dtype"] or str(next(model.parameters()).dtype).removeprefix("torch."),
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "num_layers": text_config(config).get("num_hidden_layers"),
        "base_perplexity": ppl["perplexity"],
        "eval_tokens": ppl["tokens"],
        "eval_text": eval_text_path(v).name,
        "chat_template": bool(getattr(tokenizer, "chat_template", None)),
        "checked_s": round(time.monotonic() - started, 3),  # of the stage's time: the validation's part
    }
    if spec.format == "gptq" and not gptq.loads_once(ctx):
        ctx.release_model()  # GPTQModel reads it layer by layer as it quantizes
    return facts


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
    vision = is_vision_language(config)
    if not (arch.endswith("ForCausalLM") or (vision and arch.endswith("ForConditionalGeneration"))):
        raise BuildFailure(
            "unsupported_architecture",
            f"{arch} is neither a causal language model (…ForCausalLM) nor a vision-language model "
            "(…ForConditionalGeneration with a vision_config)",
            bad_input=True,
        )
    if config.get("auto_map") and not spec.trust_remote_code:
        # As the planner: a repo that names its own code is built with that code or not at all (built with
        # transformers' class instead, its release would name code it does not carry, or run other code).
        raise BuildFailure(
            "unsupported_architecture",
            f"{arch} ({model_type}) names the repo's own code (auto_map); trust_remote_code is off for it "
            "(trust_remote_code_repos)",
            bad_input=True,
        )
    facts = {
        "architecture": arch,
        "model_type": model_type,
        "dtype": config.get("dtype") or config.get("torch_dtype"),
        "vision": vision,
    }
    if spec.format == "gptq":
        if vision:
            raise BuildFailure("unsupported_architecture", GPTQ_VLM_REASON, bad_input=True)
        if str(model_type).lower() not in gptq.supported_model_types():
            raise BuildFailure(
                "unsupported_architecture",
                f"GPTQModel does not support model_type {model_type!r}",
                bad_input=True,
            )
    else:
        from modelopt.torch.export.model_utils import MODEL_NAME_TO_TYPE

        # A VLM's language model names the decoder (Llava's is a Llama); the whole model's name may not.
        names = [arch, str(text_config(config).get("model_type") or "")] if vision else [arch]
        decoder = next(
            (
                v
                for name in names
                for k, v in MODEL_NAME_TO_TYPE.items()
                if name and k.lower() in name.lower()
            ),
            None,
        )
        if decoder is None:
            raise BuildFailure(
                "unsupported_architecture",
                f"ModelOpt cannot export {arch}: no decoder type matches it",
                bad_input=True,
            )
        facts["decoder_type"] = decoder
    return facts
