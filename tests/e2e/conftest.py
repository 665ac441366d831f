"""End-to-end set-up: a hubsim of its own, the bot as a real `quantbot serve` process, real builds.

The hub has four users: `alice` publishes upstream models, `quantbot` is the bot, `maya` maintains the
bot's releases (she and the bot are the members of the `qb-releases` org, the bot's namespace) and
`mallory` is anybody. The bot runs as a subprocess (so a test can SIGKILL it) from a TOML config, on
SQLite in a temporary data dir, with small calibration settings so that a GPTQ build of the tiny Llama takes
about half a minute on 2 cores. Helpers are in `e2e_support.py`.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import RELEASES_ORG, USERS, BotProcess, E2EHub

from bot.hubsim import Directory, HubService, HubsimServer, Org, User


@pytest.fixture(scope="session")
def e2e_hub() -> Iterator[E2EHub]:
    tokens = {name: f"hf_{name}_{uuid.uuid4().hex[:12]}" for name in USERS}
    users = Directory([User(n, t) for n, t in tokens.items()], [Org(RELEASES_ORG, ["quantbot", "maya"])])
    server = HubsimServer(HubService(users)).start()
    try:
        yield E2EHub(server, tokens)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny real Llama (random weights, trained tokenizer), made once per session."""
    from builders.tiny import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny-llama")


@pytest.fixture(scope="module")
def bot_settings() -> dict[str, Any]:
    """Settings a module adds to its bot's config (a module that needs some overrides this fixture)."""
    return {}


@pytest.fixture(scope="module")
def bot(
    e2e_hub: E2EHub, tmp_path_factory: pytest.TempPathFactory, bot_settings: dict[str, Any]
) -> Iterator[BotProcess]:
    """A running bot (its webhook and watches are the tests' to set up); stopped and forgotten after."""
    running = BotProcess(tmp_path_factory.mktemp("bot"), e2e_hub)
    running.write_config(**bot_settings)
    running.start()
    try:
        yield running
    finally:
        if running.process is not None:
            running.stop()
        for hook in list(e2e_hub.server.hub.webhooks.hooks.values()):
            if hook.url.startswith(running.url):
                del e2e_hub.server.hub.webhooks.hooks[hook.id]
        shutil.rmtree(running.root / "data" / "builds", ignore_errors=True)
