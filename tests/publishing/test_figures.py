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
