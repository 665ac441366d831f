"""The TensorRT-LLM card template against the seed's filled example, and its parameters against the publisher.

The seed README says the example was captured as rendered text: HTML tags, indentation inside the code block
and most blank lines are gone, so both sides are compared with tags stripped, lines trimmed and blank lines
dropped. Its metadata lacks `base_model_relation: quantized`, which the publishing issue requires; the
rendered metadata must be the example's plus that one key.
"""

from __future__ import annotations

import re

import pytest
import yaml

from bot.publishing.cards import TRTLLM_TEMPLATE
from bot.publishing.rendering import render_card
from tests.publishing.example_card import EXAMPLE_PARAMETERS, FILLED_EXAMPLE


def split_card(text: str) -> tuple[dict, list[str]]:
    """Front matter as data; body as the seed README says to compare it (no tags, no blank lines)."""
    match = re.match(r"\A---\n(.*?)\n---\n(.*)\Z", text, re.S)
    assert match, "card has no front matter"
    lines = (re.sub(r"<[^>]+>", "", line).strip() for line in match.group(2).splitlines())
    return yaml.safe_load(match.group(1)), [line for line in lines if line]


def test_rendering_the_example_parameters_gives_the_filled_example() -> None:
    expected_meta, expected_body = split_card(FILLED_EXAMPLE.read_text(encoding="utf-8"))
    rendered_meta, rendered_body = split_card(render_card(TRTLLM_TEMPLATE, EXAMPLE_PARAMETERS))

    assert rendered_body == expected_body
    assert rendered_meta == {**expected_meta, "base_model_relation": "quantized"}


def test_a_missing_parameter_is_an_error_not_a_blank() -> None:
    from jinja2 import UndefinedError

    incomplete = {k: v for k, v in EXAMPLE_PARAMETERS.items() if k != "gpu_name"}
    with pytest.raises(UndefinedError):
        render_card(TRTLLM_TEMPLATE, incomplete)


def test_unknown_values_leave_their_rows_out() -> None:
    unknown = dict.fromkeys(("gpu_name", "sm_arch", "max_batch_size", "tensorrt_llm_version", "cuda_toolkit"))
    _, body = split_card(render_card(TRTLLM_TEMPLATE, {**EXAMPLE_PARAMETERS, **unknown}))

    labels = ("**GPU** |", "**SM Architecture**", "**Max Batch Size**", "**TensorRT-LLM Version**", "**CUDA")
    for label in labels:
        assert not any(label in line for line in body), label
    assert not any("None" in line for line in body)
