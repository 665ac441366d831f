"""Slash-command parsing: what a commenter can type, including hostile text."""

from __future__ import annotations

import pytest

from handlers.slash_syntax import Command, help_text, parse_command

FORMATS = ("fp8", "int8_sq", "int4_awq", "w4a8_awq", "nvfp4", "gptq")


def parse(text: str) -> Command | None:
    return parse_command(text, "quantbot", FORMATS)


def test_plain_comments_are_not_for_the_bot() -> None:
    assert parse("Nice model! Does it do /quantize?") is None
    assert parse("") is None
    assert parse("   \n\n") is None


def test_quantize_with_formats_and_sms() -> None:
    assert parse("/quantize gptq int4_awq --sm 90,sm89") == Command(
        "quantize", ("gptq", "int4_awq"), (90, 89)
    )
    assert parse("/quantize --sm=90") == Command("quantize", (), (90,))
    assert parse("  /QUANTIZE FP8, gptq\nthanks!") == Command("quantize", ("fp8", "gptq"))


def test_kv_cache_none_turns_the_default_off() -> None:
    assert parse("/quantize fp8 --kv-cache none") == Command("quantize", ("fp8",), kv_cache="none")
    assert parse("/quantize --kv-cache=NONE --sm 90") == Command("quantize", (), (90,), kv_cache="none")
    assert parse("/quantize fp8").kv_cache is None


def test_now_skips_the_cooldown() -> None:
    assert parse("/quantize gptq --now") == Command("quantize", ("gptq",), now=True)
    assert parse("/quantize gptq").now is False


def test_mention_works_like_a_slash() -> None:
    assert parse("@quantbot quantize gptq") == Command("quantize", ("gptq",))
    assert parse("@quantbot /status") == Command("status")
    assert parse("@QuantBot") == Command("help")


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("/quantize int3", "not a format"),
        ("/quantize gptq --sm ninety", "is not an SM"),
        ("/quantize --sm", "is not an SM"),
        ("/quantize fp8 --kv-cache int8", "only `--kv-cache none`"),
        ("/quantize fp8 --kv-cache", "only `--kv-cache none`"),
        ("/rm -rf /", "don't know the command"),
        ("/$(reboot)", "don't know the command"),
    ],
)
def test_bad_commands_get_help_with_the_reason(text: str, error: str) -> None:
    command = parse(text)
    assert command is not None and command.name == "help"
    assert command.error is not None and error in command.error


def test_hostile_text_is_bounded() -> None:
    command = parse("/quantize " + "gptq " * 100_000)
    assert command == Command("quantize", ("gptq",))
    long_name = parse("/" + "x" * 10_000)
    assert long_name is not None and long_name.error is not None and len(long_name.error) < 100


def test_help_lists_formats() -> None:
    text = help_text(FORMATS)
    assert "/quantize" in text and "`nvfp4`" in text


def test_calib_names_a_hub_dataset_with_its_revision_and_split() -> None:
    from handlers.inputs import Calibration

    assert parse("/quantize gptq --calib org/texts").calib == Calibration("org/texts")
    assert parse("/quantize --calib=org/texts@v1.0:validation").calib == Calibration(
        "org/texts", "v1.0", "validation"
    )
    assert parse("/quantize --calib org/texts:test").calib == Calibration("org/texts", None, "test")
    for bad in ("texts", "org/texts@", "org/../x", "org/texts;rm", ""):
        assert parse(f"/quantize --calib {bad}").error.startswith("`--calib"), bad


def test_formats_for_a_gpu_by_name_or_sm() -> None:
    assert parse("/formats --gpu RTX 4090") == Command("formats", gpu="RTX 4090")
    assert parse("/formats --gpu=L4") == Command("formats", gpu="L4")
    assert parse("/formats --sm 89") == Command("formats", sms=(89,))
    assert parse("/formats") == Command("formats")
    assert parse("/formats --gpu").error == "`--gpu` needs a GPU's name, e.g. `--gpu L4`"
    assert parse("/formats --gpu <script>").error.startswith("`--gpu")
    assert parse("/formats please").error.startswith("`/formats` takes")
