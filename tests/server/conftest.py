"""A real bot server for the server tests: uvicorn in a thread on a free loopback port, SQLite in tmp_path.

Payloads are the ones of docs/hub-api-contract.md, section 6, verbatim: Example A (a PR opened, from the
hub-docs) and the three assembled ones (a commit on main, a discussion comment with a command, a PR merged).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from bot.intake.server import create_app
from bot.settings import load_settings
from bot.threaded_server import ThreadedServer
from state import Store, open_store, sqlite_url

SECRET = "test-webhook-secret"

PR_OPENED = {
    "event": {"action": "create", "scope": "discussion"},
    "repo": {
        "type": "model", "name": "openai-community/gpt2", "id": "621ffdc036468d709f17434d", "private": False,
        "url": {
            "web": "https://huggingface.co/openai-community/gpt2",
            "api": "https://huggingface.co/api/models/openai-community/gpt2",
        },
        "owner": {"id": "628b753283ef59b5be89e937"},
    },
    "discussion": {
        "id": "6399f58518721fdd27fc9ca9", "title": "Update co2 emissions",
        "url": {
            "web": "https://huggingface.co/openai-community/gpt2/discussions/19",
            "api": "https://huggingface.co/api/models/openai-community/gpt2/discussions/19",
        },
        "status": "open", "author": {"id": "61d2f90c3c2083e1c08af22d"}, "num": 19, "isPullRequest": True,
        "changes": {"base": "refs/heads/main"},
    },
    "comment": {
        "id": "6399f58518721fdd27fc9caa", "author": {"id": "61d2f90c3c2083e1c08af22d"},
        "content": "Add co2 emissions information to the model card", "hidden": False,
        "url": {"web": "https://huggingface.co/openai-community/gpt2/discussions/19#6399f58518721fdd27fc9caa"},
    },
    "webhook": {"id": "6390e855e30d9209411de93b", "version": 3},
}  # fmt: skip

_REPO = {
    "type": "model", "name": "some-user/some-repo", "id": "6366c000a2abcdf2fd69a080", "private": False,
    "url": {
        "web": "https://huggingface.co/some-user/some-repo",
        "api": "https://huggingface.co/api/models/some-user/some-repo",
    },
    "owner": {"id": "61d2000c3c2083e1c08af22d"},
}  # fmt: skip

MAIN_COMMIT = {
    "event": {"action": "update", "scope": "repo.content"},
    "repo": {**_REPO, "headSha": "575db8b7a51b6f85eb06eee540738584589f131c"},
    "webhook": {"id": "6390e855e30d9209411de93b", "version": 3},
    "updatedRefs": [
        {
            "ref": "refs/heads/main",
            "oldSha": "ce9a4674fa833a68d5a73ec355f0ea95eedd60b7",
            "newSha": "575db8b7a51b6f85eb06eee540738584589f131c",
        }
    ],
}

COMMAND_COMMENT = {
    "event": {"action": "create", "scope": "discussion.comment"},
    "repo": _REPO,
    "discussion": {
        "id": "639885d811ae2bad2b7ba461", "title": "Please evaluate this model", "num": 4,
        "isPullRequest": False, "status": "open",
        "url": {
            "web": "https://huggingface.co/some-user/some-repo/discussions/4",
            "api": "https://huggingface.co/api/models/some-user/some-repo/discussions/4",
        },
        "author": {"id": "61d2000c3c2083e1c08af22d"},
    },
    "comment": {
        "id": "6398872887bfcfb93a306f18", "author": {"id": "61d2000c3c2083e1c08af22d"},
        "content": "@my-bot /run-eval --task mmlu", "hidden": False,
        "url": {"web": "https://huggingface.co/some-user/some-repo/discussions/4#6398872887bfcfb93a306f18"},
    },
    "webhook": {"id": "6390e855e30d9209411de93b", "version": 3},
}  # fmt: skip

PR_MERGED = {
    "event": {"action": "update", "scope": "discussion"},
    "repo": _REPO,
    "discussion": {
        "id": "639885d811ae2bad2b7ba461", "title": "Update config.json", "num": 3, "isPullRequest": True,
        "status": "merged",
        "url": {
            "web": "https://huggingface.co/some-user/some-repo/discussions/3",
            "api": "https://huggingface.co/api/models/some-user/some-repo/discussions/3",
        },
        "author": {"id": "61d2000c3c2083e1c08af22d"},
        "changes": {"base": "refs/heads/main", "mergeCommitId": "575db8b7a51b6f85eb06eee540738584589f131c"},
    },
    "webhook": {"id": "6390e855e30d9209411de93b", "version": 3},
}  # fmt: skip

CONTRACT_PAYLOADS = {
    "pr_opened": PR_OPENED,
    "main_commit": MAIN_COMMIT,
    "command_comment": COMMAND_COMMENT,
    "pr_merged": PR_MERGED,
}


@dataclass
class BotServer:
    """A running server: its URL, store, an HTTP client, and the event ids `on_event` was called with."""

    url: str
    store: Store
    client: httpx.Client
    app: Any
    notified: list[int] = field(default_factory=list)
    secret: str = SECRET

    def deliver(self, payload: Any, *, secret: str | None = SECRET, **kwargs: Any) -> httpx.Response:
        """POST a payload (a dict is sent as JSON, bytes as they are) to the webhook endpoint."""
        headers = dict(kwargs.pop("headers", {}))
        if secret is not None:
            headers["X-Webhook-Secret"] = secret
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return self.client.post("/webhooks/hub", content=body, headers=headers, **kwargs)

    def internal_errors(self) -> float:
        return self.app.state.metrics.internal_errors._value.get()


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run `app` under uvicorn in a thread; yields its base URL, stops it cleanly afterwards."""
    with ThreadedServer(app, name="uvicorn-test", lifespan="on") as server:
        yield server.url


@pytest.fixture
def make_server(tmp_path) -> Iterator[Callable[..., BotServer]]:
    """Start a bot server with setting overrides (and optionally an `on_event`); stopped after the test."""
    stack = ExitStack()

    def start(on_event: Callable[[int], object] | None = None, **overrides: Any) -> BotServer:
        settings = load_settings(**({"data_dir": tmp_path, "webhook_secret": SECRET} | overrides))
        store = open_store(sqlite_url(settings.data_dir))
        stack.callback(store.close)
        notified: list[int] = []

        def record(event_id: int) -> None:
            notified.append(event_id)
            if on_event is not None:
                on_event(event_id)

        app = create_app(settings, store, on_event=record)
        url = stack.enter_context(serve(app))
        client = stack.enter_context(httpx.Client(base_url=url, timeout=30))
        return BotServer(url, store, client, app, notified)

    with stack:
        yield start


@pytest.fixture
def bot(make_server: Callable[..., BotServer]) -> BotServer:
    """A bot server on the default settings with the test secret."""
    return make_server()


@pytest.fixture
def payloads() -> dict[str, dict[str, Any]]:
    """Fresh copies of the contract's payloads, safe to change in a test."""
    return copy.deepcopy(CONTRACT_PAYLOADS)
