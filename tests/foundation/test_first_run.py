"""A newcomer's first commands: offline errors, `version`, `config`, `serve --port 0` without a secret."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bot.errors import HubUnavailable
from bot.hub import Hub
from bot.hubsim import Directory, HubService, HubsimServer, User

CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens, the connection is refused


def _quantbot(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", "from bot.cli import main; main()", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("QUANTBOT_", "HF_"))}
    return clean | {"QUANTBOT_DATA_DIR": str(tmp_path / "data"), "HF_HOME": str(tmp_path / "hf")} | extra


def test_an_unreachable_hub_is_named_with_hf_endpoint_after_one_try() -> None:
    calls = []

    def refused() -> None:
        calls.append(1)
        raise httpx.ConnectError("[Errno 111] Connection refused")

    with pytest.raises(HubUnavailable) as raised:
        Hub(endpoint=CLOSED).call(refused)
    assert len(calls) == 1
    assert str(raised.value).startswith(f"cannot reach the Hub at {CLOSED}: ")
    assert "HF_ENDPOINT" in str(raised.value)


def test_plan_offline_is_one_line_naming_the_endpoint(tmp_path: Path) -> None:
    done = _quantbot("plan", "org/model", env=_env(tmp_path, HF_ENDPOINT=CLOSED))
    out, err = done.communicate(timeout=60)
    assert done.returncode != 0 and out == ""
    assert err.count("\n") == 1 and CLOSED in err and "HF_ENDPOINT" in err and "retry" not in err


def test_version_lists_the_libraries(tmp_path: Path) -> None:
    done = _quantbot("version", env=_env(tmp_path))
    out, _ = done.communicate(timeout=60)
    names = [line.split()[0] for line in out.splitlines()]
    assert names[:2] == ["quantbot", "python"]
    assert {"huggingface_hub", "torch", "transformers", "nvidia-modelopt", "gptqmodel"} <= set(names)


def test_config_says_where_each_value_comes_from(tmp_path: Path) -> None:
    config = tmp_path / "q.toml"
    config.write_text('policy = "permissive"\n')
    done = _quantbot("--config", str(config), "config", env=_env(tmp_path, QUANTBOT_LEASE_S="7"))
    lines = dict(line.split(" = ", 1) for line in done.communicate(timeout=60)[0].splitlines())
    assert lines["policy"] == f'"permissive"  # file {config}'
    assert lines["lease_s"] == "7.0  # env QUANTBOT_LEASE_S" and lines["log_level"] == '"WARNING"  # default'


@pytest.fixture
def hub() -> Iterator[HubsimServer]:
    server = HubsimServer(HubService(Directory([User("quantbot", "hf_quantbot_first_run")]))).start()
    try:
        yield server
    finally:
        server.stop()


def test_serve_on_port_0_prints_its_port_and_says_webhooks_are_off(tmp_path: Path, hub: HubsimServer) -> None:
    env = _env(tmp_path, HF_ENDPOINT=hub.url, HF_TOKEN="hf_quantbot_first_run")
    serve = _quantbot("serve", "--port", "0", env=env)
    try:
        assert serve.stdout is not None
        line = serve.stdout.readline()
        found = re.search(r"serving on http://127\.0\.0\.1:(\d+)", line)
        assert found and int(found.group(1)) > 0, line
        url = f"http://127.0.0.1:{found.group(1)}"
        assert "no webhook_secret" in httpx.get(f"{url}/healthz", timeout=10).json()["webhooks"]
        assert httpx.get(f"{url}/", timeout=10).status_code == 200
    finally:
        serve.send_signal(signal.SIGTERM)
        _, err = serve.communicate(timeout=30)
    assert "warning: webhooks are disabled: no webhook_secret" in err and "QUANTBOT_WEBHOOK_SECRET" in err


def test_serve_without_a_token_refuses_to_start_in_one_line(tmp_path: Path, hub: HubsimServer) -> None:
    done = _quantbot("serve", "--port", "0", env=_env(tmp_path, HF_ENDPOINT=hub.url))
    out, err = done.communicate(timeout=60)
    assert done.returncode == 2 and out == "" and err.count("\n") == 1, err
    assert err.startswith("Error: no Hub token: set HF_TOKEN") and "--allow-anonymous" in err


def test_serve_allowed_anonymous_shows_the_degraded_hub_as_a_banner(
    tmp_path: Path, hub: HubsimServer
) -> None:
    serve = _quantbot("serve", "--port", "0", "--allow-anonymous", env=_env(tmp_path, HF_ENDPOINT=hub.url))
    try:
        assert serve.stdout is not None
        url = re.search(r"serving on (http://127\.0\.0\.1:\d+)", serve.stdout.readline()).group(1)
        status = httpx.get(f"{url}/api/status", timeout=10).json()
        assert status["hub_problem"]  # the Hub does not know an anonymous bot
        page = httpx.get(f"{url}/", timeout=10).text
        assert 'class="banner" role="alert"' in page
        assert f"cannot work with the Hub at {hub.url}</strong>" in page
        assert "quantbot watch add repo ORG/MODEL" in page  # the empty watch list's hint runs as written
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.communicate(timeout=30)
