"""What the build's load stage says of a vision-language model before any weight is read: ModelOpt's formats
are built from its language model (the decoder type found from it), GPTQ is refused with the reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from builders.failures import BuildFailure
from builders.load import check_architecture
from builders.spec import BuildSpec

LLAVA = {
    "architectures": ["LlavaForConditionalGeneration"],
    "model_type": "llava",
    "text_config": {"model_type": "llama", "num_hidden_layers": 2},
    "vision_config": {"model_type": "clip_vision_model"},
}


def _spec(fmt: str) -> BuildSpec:
    return BuildSpec(
        local_dir=Path("."), format=fmt, target_sms=[90], work_dir=Path("w"), output_dir=Path("o")
    )


def test_a_vlms_decoder_is_its_language_models() -> None:
    facts = check_architecture(LLAVA, _spec("fp8"))
    assert facts["vision"] is True and facts["decoder_type"] == "llama"


def test_gptq_of_a_vlm_fails_with_the_reason_before_loading() -> None:
    with pytest.raises(BuildFailure) as failed:
        check_architecture(LLAVA, _spec("gptq"))
    assert failed.value.bad_input and "torchvision" in str(failed.value)


@pytest.mark.parametrize(
    "config",
    [
        {**LLAVA, "vision_config": None},  # a …ForConditionalGeneration without a vision tower
        {"architectures": ["T5ForConditionalGeneration"], "model_type": "t5"},
    ],
)
def test_a_conditional_generation_model_without_a_vision_tower_is_refused(config: dict[str, Any]) -> None:
    with pytest.raises(BuildFailure, match="neither a causal language model"):
        check_architecture(config, _spec("fp8"))
