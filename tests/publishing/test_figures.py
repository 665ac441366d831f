"""What a card says beside its calibration count: why fewer samples were used than asked for."""

from __future__ import annotations

from bot.publishing.figures import calibration_note
from builders.spec import CalibrationRecord


def _record(**fields: object) -> CalibrationRecord:
    return CalibrationRecord.model_validate(
        {"dataset": "abisee/cnn_dailymail", "seq_len": 512, "batch_size": 1} | fields
    )


def test_fewer_samples_than_asked_are_explained() -> None:
    calib = _record(samples=417, samples_requested=512, samples_note="split 'train' has only 417 rows")
    assert calibration_note(calib) == "512 asked; split 'train' has only 417 rows"


def test_all_samples_asked_for_need_no_note() -> None:
    assert calibration_note(_record(samples=512, samples_requested=512)) is None
    assert calibration_note(_record(samples=64)) is None
    assert calibration_note(None) is None


def test_the_gptq_card_keeps_its_lines_apart_when_it_explains_the_count() -> None:
    from bot.publishing.rendering import environment

    env = environment()
    source = env.loader.get_source(env, "gptq.md.j2")[0] if env.loader else ""
    lines = source.splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if "**Calibration Samples**" in line)
    fragment = env.from_string("".join(lines[at - 1 : at + 5]))  # its block and the next one
    text = fragment.render(calib_size=417, calib_note="512 asked; 417 rows", calib_seqlen=512)
    assert text == (
        "- **Calibration Samples**: 417 (512 asked; 417 rows)\n- **Calibration Sequence Length**: 512\n"
    )
