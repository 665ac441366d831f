"""The whole bot in one process: store, Hub client, server, dispatcher, executor, scheduler, wired once.

`quantbot serve` runs it in the foreground (uvicorn handles SIGINT and SIGTERM; the rest stops after it);
the demo and the end-to-end tests run the same object in a background thread. Stopping is orderly: the
server stops taking webhooks, the scheduler and the dispatcher finish what they hold, the executor stops its
builds and gives their jobs back to the queue (a restart resumes them), and the database is closed.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn
from pydantic import ValidationError

from bot.eligibility.specs import SpecMaker
from bot.errors import ConfigError
from bot.execution.executor import Executor
from bot.execution.local import LocalExecutor
from bot.execution.reply_updater import ReplyUpdater
from bot.execution.slots import Slot
from bot.hub import Hub
from bot.intake.dispatcher import Dispatcher
from bot.intake.scheduler import Poller, Scheduler
from bot.intake.server import create_app, open_configured_store
from bot.publishing import publisher as publishing
from bot.settings import Settings
from builders.spec import Recipe, ValidationSettings
from handlers.context import Options
from state import Store

log = logging.getLogger(__name__)

START_TIMEOUT_S = 15.0


class _Reviews:
    """The publisher's reactions to maintainers' decisions, bound to the bot's Hub client and user."""

    def __init__(self, hub: Hub, bot_user: str) -> None:
        self.hub = hub
        self.bot_user = bot_user

    def on_pr_merged(self, repo_id: str, num: int) -> Any:
        return publishing.on_pr_merged(self.hub, repo_id, num, bot_name=self.bot_user)

    def on_pr_closed(self, repo_id: str, num: int) -> Any:
        return publishing.on_pr_closed(self.hub, repo_id, num, bot_name=self.bot_user)


@dataclass
class Bot:
    """Every part of a running bot."""

    settings: Settings
    store: Store
    hub: Hub
    options: Options
    executor: Executor
    dispatcher: Dispatcher
    poller: Poller
    scheduler: Scheduler
    app: Any
    replies: ReplyUpdater

    @classmethod
    def assemble(cls, settings: Settings, *, slots: list[Slot] | None = None) -> Bot:
        """Open the store and connect to the Hub (whoami names the bot); nothing runs until `start`."""
        hub = Hub(endpoint=settings.hf_endpoint, token=settings.token())
        bot_user = str(hub.whoami()["name"])
        options = Options.from_settings(settings, bot_user=bot_user)
        store = open_configured_store(settings)
        executor = make_executor(settings, store, hub, slots=slots)
        dispatcher = Dispatcher(
            store,
            hub=hub,
            options=options,
            planner=SpecMaker(settings, hub),
            reviews=_Reviews(hub, bot_user),
        )
        poller = Poller(settings, store, hub, wake=dispatcher.wake)
        # Housekeeping runs twice per lease, so a dead worker's job is requeued soon after its lease ends.
        housekeeping_s = min(15.0, max(1.0, settings.lease_s / 2))
        scheduler = Scheduler(poller, poll_minutes=settings.poll_interval_min, housekeeping_s=housekeeping_s)
        app = create_app(settings, store, on_event=dispatcher.wake)
        replies = ReplyUpdater(store, hub)
        return cls(settings, store, hub, options, executor, dispatcher, poller, scheduler, app, replies)

    def start_workers(self) -> Bot:
        """Start everything but the HTTP server."""
        self.replies.start()
        self.executor.start()
        self.dispatcher.start()
        self.scheduler.start()
        return self

    def stop_workers(self) -> None:
        """Stop everything but the HTTP server, in dependency order, and close the database."""
        self.scheduler.stop()
        self.dispatcher.stop()
        self.executor.stop()
        self.replies.stop()
        self.store.close()


def make_executor(settings: Settings, store: Store, hub: Hub, *, slots: list[Slot] | None = None) -> Executor:
    """The executor `settings.executor` names: local processes, or Celery workers on other machines."""
    if settings.executor == "celery":
        from bot.execution.celery_executor import CeleryExecutor
        from bot.publishing.staged import StagedPublisher

        return CeleryExecutor(settings, store, StagedPublisher(hub, settings))
    return LocalExecutor(settings, store, publishing.Publisher(hub, settings), slots=slots)


def check_build_settings(settings: Settings) -> None:
    """Refuse a bad `build_recipe` or `build_validation` at start rather than at the first build."""
    for name, model in (("build_recipe", Recipe), ("build_validation", ValidationSettings)):
        try:
            model(**getattr(settings, name))
        except (ValidationError, TypeError) as e:
            first = e.errors()[0] if isinstance(e, ValidationError) else {"loc": (), "msg": str(e)}
            where = ".".join(str(p) for p in (name, *first["loc"]))
            raise ConfigError(f"invalid setting {where}: {first['msg']}") from None


class _Server(uvicorn.Server):
    """uvicorn's server, minus re-raising SIGINT / SIGTERM once it has stopped: that would kill the process
    before the workers stop (jobs given back to the queue, the database closed)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


class BotServer:
    """The bot's HTTP server with its workers: in the foreground (`serve`) or in a thread (demo, tests)."""

    def __init__(self, bot: Bot, host: str = "127.0.0.1", port: int = 8000) -> None:
        self.bot = bot
        config = uvicorn.Config(bot.app, host=host, port=port, log_level="warning", access_log=False)
        self.server = _Server(config)
        self.host = host
        self.port = port
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    def serve_forever(self) -> None:
        """Run until SIGINT or SIGTERM (uvicorn's handlers), then stop the workers."""
        self.bot.start_workers()
        try:
            self.server.run()
        finally:
            self.bot.stop_workers()

    def start(self) -> BotServer:
        """Serve in a daemon thread; returns once the socket accepts connections."""
        self.bot.start_workers()
        self._thread = threading.Thread(target=self.server.run, name="quantbot-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.bot.stop_workers()
                raise RuntimeError(f"the bot's server did not start on {self.host}:{self.port}")
            time.sleep(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        """Stop taking webhooks, then stop the workers."""
        if self._thread is not None:
            self.server.should_exit = True
            self._thread.join(START_TIMEOUT_S)
            self._thread = None
        self.bot.stop_workers()

    def __enter__(self) -> BotServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
