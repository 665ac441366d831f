"""`quantbot watch`: add, list and remove watches in the bot's database; bad input is one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import cli, main


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main([*args])
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("QUANTBOT_DATA_DIR", str(tmp_path))
    return tmp_path


def test_add_list_remove() -> None:
    runner = CliRunner()
    added = runner.invoke(
        cli, ["watch", "add", "repo", "alice/model", "--formats", "gptq,FP8", "--sm", "90,sm89"]
    )
    assert added.exit_code == 0, added.output
    assert added.output.strip() == "watching repo alice/model: gptq, fp8; sm90, sm89; auto"  # the setting's
    runner.invoke(cli, ["watch", "add", "author", "acme", "--approval", "auto"])
    listed = runner.invoke(cli, ["watch", "list"]).output.splitlines()
    assert listed[0].split()[:2] == ["repo", "alice/model"]
    assert listed[1].split()[:2] == ["author", "acme"] and listed[1].endswith(
        "every eligible format; every target SM; auto"
    )
    assert runner.invoke(cli, ["watch", "remove", "repo", "alice/model"]).exit_code == 0
    assert "alice/model" not in runner.invoke(cli, ["watch", "list"]).output


def test_approval_defaults_to_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUANTBOT_APPROVAL", "approval")
    added = CliRunner().invoke(cli, ["watch", "add", "repo", "alice/model"])
    assert added.output.strip().endswith("; approval")
    overridden = CliRunner().invoke(cli, ["watch", "add", "repo", "alice/other", "--approval", "auto"])
    assert overridden.output.strip().endswith("; auto")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["watch", "add", "repo", "alice/model", "--formats", "int3"], "unknown format(s) int3"),
        (["watch", "add", "author", "alice/model"], "author watches take a user or org name"),
        (["watch", "add", "repo", "alice"], "repo watches take a repo id"),
        (["watch", "add", "repo", "a/b", "--sm", "ninety"], "is not an SM number"),
        (["watch", "remove", "repo", "nobody/none"], "no repo watch on nobody/none"),
        (["watch", "add", "repo", "a/b", "--demand"], "--demand and --budget are for base_model watches"),
        (["watch", "add", "base_model", "a/b", "--budget", "2"], "add --demand"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(args, capsys)
    assert code == 2 and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_kv_cache_none_is_stored_on_the_watch_and_a_re_add_restores_the_default(data_dir: Path) -> None:
    from state import WatchKind, open_store, sqlite_url

    runner = CliRunner()
    added = runner.invoke(cli, ["watch", "add", "repo", "alice/model", "--kv-cache", "none"])
    assert added.exit_code == 0, added.output
    assert added.output.strip().endswith("; KV cache not quantized")
    assert runner.invoke(cli, ["watch", "list"]).output.strip().endswith("; KV cache not quantized")

    def stored() -> str | None:
        store = open_store(sqlite_url(data_dir))
        try:
            watch = store.watches.find(WatchKind.REPO, "alice/model")
            assert watch is not None
            return watch.kv_cache
        finally:
            store.close()

    assert stored() == "none"
    assert runner.invoke(cli, ["watch", "add", "repo", "alice/model"]).exit_code == 0
    assert stored() is None
    refused = runner.invoke(cli, ["watch", "add", "repo", "alice/model", "--kv-cache", "int4"])
    assert refused.exit_code == 2 and "'int4' is not 'none'" in refused.output


def test_a_demand_watch_keeps_its_monthly_budget_or_the_settings() -> None:
    runner = CliRunner()
    added = runner.invoke(cli, ["watch", "add", "base_model", "org/base", "--demand", "--budget", "2"])
    assert added.exit_code == 0, added.output
    assert added.output.strip().endswith("; demand, budget 2 a month")
    runner.invoke(cli, ["watch", "add", "base_model", "org/other", "--demand"])
    listed = runner.invoke(cli, ["watch", "list"]).output.splitlines()
    assert listed[1].endswith("; demand, budget default a month")
