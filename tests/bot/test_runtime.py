"""bot/runtime.py on its own: what `Bot.assemble` wires, and how `BotServer` starts and stops the bot.

The end-to-end tests run the whole bot in a subprocess; these check the assembly and the start/stop order
in-process, against hubsim, with the bot's SQLite store in tmp_path.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bot.errors import ServerStartError
from bot.publishing.lookup import ReleaseLookup
from bot.runtime import Bot, BotServer
from bot.settings import load_settings


def _quantbot_threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith("quantbot-") and t.is_alive()}


@pytest.fixture
def bot(hubsim, tmp_path: Path) -> Iterator[Bot]:
    settings = load_settings(
        None,
        data_dir=tmp_path,
        hf_endpoint=hubsim.url,
        hf_token=hubsim.token,
        webhook_secret="s",
        target_sms=[90],
        lease_s=4,
    )
    yield Bot.assemble(settings)


def test_assemble_wires_reviews_to_the_release_lookup_and_calls_no_hub(bot) -> None:
    # The Hub names the bot only once it answers, after start (tests/bot/test_offline_start.py).
    assert bot.options.bot_user == ""
    reviews = bot.dispatcher.reviews
    assert isinstance(reviews, ReleaseLookup) and reviews is bot.reviews
    # The executor and the reply updater hear of job changes from the same store the dispatcher writes.
    assert bot.executor.store is bot.dispatcher.store is bot.replies.store
    # Housekeeping runs twice per lease (a dead worker's job is requeued soon after its lease ends).
    housekeeping = bot.scheduler._scheduler.get_job("housekeeping")
    assert housekeeping.trigger.interval.total_seconds() == 2.0
    assert not _quantbot_threads()  # nothing runs before start
    bot.store.close()


def test_start_serves_and_runs_the_workers_stop_ends_them_all(bot, hubsim) -> None:
    server = BotServer(bot, port=0).start()
    try:
        assert httpx.get(server.url + "/").status_code == 200
        deadline = time.monotonic() + 10
        while bot.options.bot_user != hubsim.user and time.monotonic() < deadline:
            time.sleep(0.05)
        assert bot.options.namespace == hubsim.user and bot.reviews.bot_name == hubsim.user
        assert {"quantbot-server", "quantbot-dispatcher"} <= _quantbot_threads()
    finally:
        server.stop()
    assert not _quantbot_threads()
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "/", timeout=2)


def test_a_port_in_use_stops_the_workers_it_started(bot) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ServerStartError, match=f"cannot listen on 127.0.0.1:{port}"):
            BotServer(bot, port=port).start()
    assert not _quantbot_threads()


def test_serve_forever_stops_in_order_on_sigterm(bot) -> None:
    server = BotServer(bot, port=0)
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    server.serve_forever()
    timer.join()
    assert not _quantbot_threads()
