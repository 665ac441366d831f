"""Release repo ids come from templates in the settings, and a bad template is a one-line config error."""

from __future__ import annotations

import pytest

from bot.errors import ConfigError
from bot.naming import display_format, release_repo_id, with_article
from bot.settings import load_settings

UPSTREAM = "TheDrummer/Magidonia-24B-v4.3"


def test_default_templates_name_releases_like_the_seed() -> None:
    settings = load_settings()
    trt = release_repo_id(
        settings.trtllm_repo_template, namespace="quantbot", upstream=UPSTREAM, format_id="int4_awq"
    )
    gptq = release_repo_id(
        settings.gptq_repo_template, namespace="quantbot", upstream=UPSTREAM, format_id="gptq"
    )

    assert trt == "quantbot/Magidonia-24B-v4.3-INT4-AWQ-TensorRT-LLM"
    assert gptq == "quantbot/Magidonia-24B-v4.3-GPTQ"


def test_a_configured_template_renames_releases(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUANTBOT_TRTLLM_REPO_TEMPLATE", "{namespace}/{owner}-{model}-{format}")
    template = load_settings().trtllm_repo_template

    assert release_repo_id(template, namespace="acme", upstream=UPSTREAM, format_id="fp8") == (
        "acme/TheDrummer-Magidonia-24B-v4.3-fp8"
    )


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{namespace}/{model}-{quant}", "unknown placeholders ['quant']"),
        ("{model}-GPTQ", "must look like 'namespace/name'"),
        ("{namespace}/{model", "invalid repo name template"),
    ],
)
def test_a_bad_template_is_refused_when_settings_load(template: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_settings(gptq_repo_template=template)


def test_a_name_the_hub_would_refuse_is_an_error() -> None:
    with pytest.raises(ConfigError, match="not a valid Hub name"):
        release_repo_id("{namespace}/{model}--{FORMAT}", namespace="q", upstream=UPSTREAM, format_id="fp8")
    with pytest.raises(ConfigError, match="not a valid Hub name"):
        release_repo_id(
            "{namespace}/" + "x" * 90 + "-{model}", namespace="q", upstream=UPSTREAM, format_id="fp8"
        )


def test_display_names_of_every_canonical_format() -> None:
    shown = {f: display_format(f) for f in ("fp8", "int8_sq", "int4_awq", "w4a8_awq", "nvfp4", "gptq")}
    assert shown == {
        "fp8": "FP8",
        "int8_sq": "INT8-SQ",
        "int4_awq": "INT4-AWQ",
        "w4a8_awq": "W4A8-AWQ",
        "nvfp4": "NVFP4",
        "gptq": "GPTQ",
    }


@pytest.mark.parametrize(
    ("phrase", "expected"),
    [
        ("FP8", "an FP8"),
        ("INT8-SQ", "an INT8-SQ"),
        ("INT4-AWQ", "an INT4-AWQ"),
        ("NVFP4", "an NVFP4"),
        ("W4A8-AWQ", "a W4A8-AWQ"),
        ("GPTQ", "a GPTQ"),
        ("4-bit", "a 4-bit"),
        ("8-bit", "an 8-bit"),
        ("16-bit", "a 16-bit"),
        ("18-bit", "an 18-bit"),
        ("update", "an update"),
        ("release", "a release"),
    ],
)
def test_the_article_follows_how_the_phrase_is_read(phrase: str, expected: str) -> None:
    """Acronyms letter by letter ("an eff-pee-eight"), numbers as numbers ("an eight-bit")."""
    assert with_article(phrase) == expected
