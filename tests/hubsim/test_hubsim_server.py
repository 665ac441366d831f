"""hubsim as a process: persistence across restarts, users files, and the `quantbot hubsim` command
driving the plain-client example script (the issue's "done when")."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError

from bot.errors import ConfigError
from bot.hubsim import Directory, HubService, HubsimServer, User, create_hub
from bot.hubsim.popularity import set_stats

ROOT = Path(__file__).resolve().parents[2]
QUANTBOT = [sys.executable, "-c", "from bot.cli import main; main()"]


def test_state_survives_a_restart(tmp_path, model_folder, webhook_receiver):
    data = tmp_path / "data"
    with HubsimServer(HubService(Directory([User("alice", "hf_alice")]), data)) as server:
        api = HfApi(endpoint=server.url, token="hf_alice")
        api.create_repo("alice/kept", private=True)
        api.create_repo("alice/base")  # a card's base_model must exist on this hub
        (model_folder / "README.md").write_text("---\nlicense: mit\nbase_model: alice/base\n---\n# kept\n")
        pr = api.upload_folder(repo_id="alice/kept", folder_path=model_folder, create_pr=True)
        api.comment_discussion("alice/kept", pr.pr_num, "still here?")
        api.create_branch("alice/kept", branch="dev")
        # huggingface_hub 1.x sends webhook API calls to HF_ENDPOINT whatever `endpoint=` says: use Python
        hook = server.hub.register_webhook(
            webhook_receiver.url, "k", [{"type": "user", "name": "alice"}], owner="alice"
        )
        before = api.model_info("alice/kept", revision="refs/pr/1", files_metadata=True)
        set_stats(server.hub, "model", "alice/kept", {"downloads": 12, "likes": 3})

    with HubsimServer(HubService(data_dir=data)) as server:  # users come back from the data dir too
        api = HfApi(endpoint=server.url, token="hf_alice")
        after = api.model_info("alice/kept", revision="refs/pr/1", files_metadata=True)
        assert after.sha == before.sha and after.private
        assert (after.downloads, after.likes) == (12, 3)
        assert [(s.rfilename, s.size) for s in after.siblings] == [
            (s.rfilename, s.size) for s in before.siblings
        ]
        path = hf_hub_download(
            "alice/kept",
            "config.json",
            revision="refs/pr/1",
            endpoint=server.url,
            token="hf_alice",
            cache_dir=tmp_path / "cache",
        )
        assert Path(path).read_bytes() == (model_folder / "config.json").read_bytes()
        weights = hf_hub_download(  # uploaded through Xet: its xorbs and shard were kept too
            "alice/kept",
            "model.safetensors",
            revision="refs/pr/1",
            endpoint=server.url,
            token="hf_alice",
            cache_dir=tmp_path / "cache",
        )
        assert Path(weights).read_bytes() == (model_folder / "model.safetensors").read_bytes()
        assert server.hub.xet.files  # the index was rebuilt from the stored shards
        details = api.get_discussion_details("alice/kept", pr.pr_num)
        assert details.events[-1].content == "still here?"
        assert {b.name for b in api.list_repo_refs("alice/kept").branches} == {"main", "dev"}
        assert server.hub.webhooks.hooks[hook.id].secret == "k"
        api.merge_pull_request("alice/kept", pr.pr_num)
        webhook_receiver.wait(lambda p: p.get("discussion", {}).get("status") == "merged")


def test_generated_tokens_are_kept_in_the_data_dir(tmp_path):
    first = create_hub(tmp_path).users.users
    assert list(first) == ["hubsim-user"]
    assert create_hub(tmp_path).users.users["hubsim-user"].token == first["hubsim-user"].token
    alice = create_hub(tmp_path, user="alice").users.users["alice"].token
    assert create_hub(tmp_path, user="alice").users.users["alice"].token == alice
    assert create_hub(tmp_path, user="alice", token="hf_new").users.users["alice"].token == "hf_new"


def test_users_file_with_orgs_and_a_read_only_token(tmp_path):
    users = tmp_path / "users.toml"
    users.write_text(
        'users = [{name = "alice", token = "hf_a"}, {name = "reader", token = "hf_r", role = "read"}]\n'
        'orgs = [{name = "acme", members = ["alice", "reader"]}]\n'
    )
    with HubsimServer(create_hub(users_file=users)) as server:
        alice, reader = HfApi(endpoint=server.url, token="hf_a"), HfApi(endpoint=server.url, token="hf_r")
        alice.create_repo("acme/tool")
        assert reader.whoami()["auth"]["accessToken"]["role"] == "read"
        assert reader.model_info("acme/tool").id == "acme/tool"
        for attempt in (
            lambda: reader.create_repo("acme/other"),
            lambda: reader.create_discussion("acme/tool", "hi!"),
        ):
            with pytest.raises(HfHubHTTPError) as excinfo:
                attempt()
            assert excinfo.value.response.status_code == 403


@pytest.mark.parametrize(
    "content",
    [
        'users = [{name = "a"}]',
        "users = [",
        '{"users": []}',
        '{"users": [{"name": "a", "token": "t"}], "orgs": [{"name": "o", "members": ["ghost"]}]}',
        '{"users": [{"name": "a", "token": "t", "plan": "platinum"}]}',
    ],
    ids=["no-token", "bad-toml", "no-users", "unknown-member", "unknown-plan"],
)
def test_bad_users_files_are_config_errors(tmp_path, content):
    path = tmp_path / ("users.toml" if content.startswith("users") else "users.json")
    path.write_text(content)
    with pytest.raises(ConfigError):
        create_hub(users_file=path)


def _wait_until_serving(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            if httpx.get(f"{url}/_hubsim/health").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise TimeoutError(f"quantbot hubsim did not serve on {url}")


def test_quantbot_hubsim_serves_the_roundtrip_example(tmp_path, webhook_receiver):

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    args = [
        "hubsim",
        "--port",
        str(port),
        "--data",
        str(tmp_path / "data"),
        "--user",
        "alice",
        "--token",
        "hf_alice_token",
        "--webhook",
        webhook_receiver.url,
        "--webhook-secret",
        "cli-secret",
    ]
    server = subprocess.Popen([*QUANTBOT, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_until_serving(url, server)
        env = {
            **os.environ,
            "HF_ENDPOINT": url,
            "HF_TOKEN": "hf_alice_token",
            "HF_HOME": str(tmp_path / "hf"),
        }
        env.pop("HF_HUB_CACHE")
        example = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "hubsim_roundtrip.py")],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert example.returncode == 0, example.stdout + example.stderr
        assert "RepositoryNotFoundError, as expected" in example.stdout
        assert "round trip OK" in example.stdout
        merged = webhook_receiver.wait(lambda p: p.get("discussion", {}).get("status") == "merged")
        assert merged.headers["X-Webhook-Secret"] == "cli-secret"
    finally:
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=20)
    assert server.returncode == 0, output
    assert output.rstrip().endswith("hubsim stopped.")
    assert f"export HF_ENDPOINT={url} HF_TOKEN=hf_alice_token\n" in output
    assert "user alice (write) token hf_alice_token" in output
    assert "rate limits: on, per 5 minutes for a free user 1000 API" in output


def test_a_busy_port_is_one_line_exit_1():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [*QUANTBOT, "hubsim", "--port", str(port)], capture_output=True, text=True, timeout=60
        )
    assert result.returncode == 1
    assert result.stderr.strip() == f"Error: hubsim cannot listen on 127.0.0.1:{port}: Address already in use"
    assert result.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        ["--webhook-secret", "s"],
        ["--users", "users.json", "--user", "x"],
        ["--port", "0"],
        ["--webhook", "ftp://x"],
        ["--quota", "api=lots"],
        ["--quota", "gpus=5"],
        ["--quota", "platinum.api=5"],
    ],
    ids=[
        "secret-without-url",
        "users-and-user",
        "bad-port",
        "bad-webhook-url",
        "quota-nan",
        "quota-bucket",
        "quota-plan",
    ],
)
def test_cli_usage_errors_are_one_line_exit_2(tmp_path, args):
    (tmp_path / "users.json").write_text('{"users": [{"name": "a", "token": "t"}]}')
    result = subprocess.run(
        [*QUANTBOT, "hubsim", *args], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
