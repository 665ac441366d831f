"""Settings: precedence (args > environment > TOML > defaults), secrets never shown, bad values explained."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.settings import load_settings, value_sources


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "HF_TOKEN",
        "QUANTBOT_HF_TOKEN",
        "QUANTBOT_CONFIG",
        "QUANTBOT_TARGET_SMS",
        "QUANTBOT_POLICY",
    ):
        monkeypatch.delenv(name, raising=False)


def test_defaults_keep_data_out_of_the_source_tree(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    settings = load_settings()
    assert settings.data_dir == tmp_path / "quantbot"
    assert settings.target_sms == [80, 89, 90, 100, 120]
    assert settings.policy == "runtimes"


def test_hub_variables_are_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9999/")
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value")
    settings = load_settings()
    assert settings.hf_endpoint == "http://127.0.0.1:9999"
    assert settings.token() == "hf_secret_value"


def test_secrets_never_appear_in_repr_or_redacted_view(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value")
    monkeypatch.setenv("QUANTBOT_WEBHOOK_SECRET", "whsec_value")
    settings = load_settings()
    for text in (repr(settings), str(settings), str(settings.redacted())):
        assert "hf_secret_value" not in text
        assert "whsec_value" not in text
    assert settings.redacted()["hf_token"] == "***"


def test_toml_file_is_below_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "quantbot.toml"
    config.write_text('policy = "permissive"\ntarget_sms = [90]\nnamespace = "from-file"\n')
    monkeypatch.setenv("QUANTBOT_TARGET_SMS", "89, 90")
    settings = load_settings(config)
    assert settings.policy == "permissive"
    assert settings.namespace == "from-file"
    assert settings.target_sms == [89, 90]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("policy = [", "not valid TOML"),
        ('policy = "loose"', "invalid setting policy"),
        (
            'polcy = "strict"',
            r"unknown setting 'polcy' in .*bad.toml \(did you mean 'policy'\?\)\. Valid settings: data_dir, ",
        ),
    ],
)
def test_bad_config_is_one_clear_error(tmp_path: Path, text: str, expected: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text + "\n")
    with pytest.raises(ConfigError, match=expected):
        load_settings(config)


def test_an_unknown_key_lists_the_valid_ones_without_pydantic_words(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("zzz_qqq = 1\n")
    with pytest.raises(ConfigError) as raised:
        load_settings(config)
    message = str(raised.value)
    assert "Extra inputs" not in message and "did you mean" not in message
    assert "unknown setting 'zzz_qqq'" in message and "webhook_secret" in message


def test_value_sources_say_default_file_or_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "q.toml"
    config.write_text('policy = "permissive"\nlease_s = 5\n')
    monkeypatch.setenv("QUANTBOT_LEASE_S", "7")
    sources = value_sources(config)
    assert sources["policy"] == f"file {config}" and sources["lease_s"] == "env QUANTBOT_LEASE_S"
    assert sources["data_dir"] == "default"


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("QUANTBOT_SM_MEMORY_GIB", "{90 = 80, 89 = 48}", {90: 80.0, 89: 48.0}),  # as the TOML file writes it
        ("QUANTBOT_SM_MEMORY_GIB", '{"90": 80}', {90: 80.0}),  # JSON
        ("QUANTBOT_BUILD_RECIPE", "{calib_samples = 128, calib_seq_len = 256}", None),
        ("QUANTBOT_APPROVAL_REPOS", '{"org/model" = "approval"}', {"org/model": "approval"}),
        ("QUANTBOT_TARGET_SMS", "[90, 89]", [90, 89]),
        ("QUANTBOT_TARGET_SMS", "90, 89", [90, 89]),
    ],
)
def test_tables_and_lists_from_the_environment_as_the_toml_file_writes_them(
    monkeypatch: pytest.MonkeyPatch, name: str, text: str, expected: object
) -> None:
    monkeypatch.setenv(name, text)
    setting = name.removeprefix("QUANTBOT_").lower()
    value = getattr(load_settings(), setting)
    assert value == (expected if expected is not None else {"calib_samples": 128, "calib_seq_len": 256})
    assert value_sources()[setting] == f"env {name}"


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("QUANTBOT_SM_MEMORY_GIB", "{90 = eighty}", "QUANTBOT_SM_MEMORY_GIB is not a table such as '{90"),
        ("QUANTBOT_SM_MEMORY_GIB", "{90 = -}", "(as in the TOML file) or JSON"),
        ("QUANTBOT_BUILD_RECIPE", "calib_samples=128", "QUANTBOT_BUILD_RECIPE is not a table such as"),
        ("QUANTBOT_BUILD_RECIPE", "{calib_samples = 0}", "invalid QUANTBOT_BUILD_RECIPE (build_recipe): "),
        ("QUANTBOT_TARGET_SMS", "9x,89", "invalid QUANTBOT_TARGET_SMS (target_sms.0): Input should be"),
        ("QUANTBOT_TARGET_SMS", "[90, 89", "invalid QUANTBOT_TARGET_SMS (target_sms): "),
    ],
)
def test_a_table_or_list_that_does_not_read_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, text: str, expected: str
) -> None:
    monkeypatch.setenv(name, text)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    message = str(raised.value)
    assert expected in message and "\n" not in message and "pydantic" not in message.lower()


def test_config_shows_where_secrets_come_from_and_urls_with_credentials_masked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value")
    monkeypatch.setenv("QUANTBOT_DATABASE_URL", "postgresql+psycopg://bot:pg_secret@db.example:5432/quantbot")
    settings, sources = load_settings(), value_sources()
    shown = settings.redacted()
    assert (shown["hf_token"], sources["hf_token"]) == ("***", "env HF_TOKEN")
    assert shown["database_url"] == "postgresql+psycopg://bot:***@db.example:5432/quantbot"
    assert (shown["broker_url"], sources["broker_url"]) == ("redis://127.0.0.1:6379/0", "default")
    assert shown["webhook_secret"] is None and "pg_secret" not in str(shown)
