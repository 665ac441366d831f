"""The whole bot in one process: store, Hub client, server, dispatcher, executor, scheduler, wired once.

The Hub need not answer for the bot to start: the server stores webhooks at once, and the parts that act
start when the Hub first answers `whoami` (`bot.intake.readiness`), which names the bot.

`quantbot serve` runs it in the foreground until SIGINT or SIGTERM; the demo and the end-to-end tests run
the same object in the background (the HTTP server is in a thread either way: bot/threaded_server.py).
Stopping is orderly: the server stops taking webhooks, the scheduler and the dispatcher finish what they
hold, the executor stops its builds and gives their jobs back to the queue (a restart resumes them), and
the database is closed.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.budget import RequestBudget
from bot.dashboard.reply_updater import ReplyUpdater
from bot.eligibility.specs import SpecMaker
from bot.execution.housekeeping import Housekeeping
from bot.execution.local import LocalTransport
from bot.execution.orchestrator import Orchestrator
from bot.execution.slots import Slot
from bot.host.gpus import local_gpus
from bot.hub import FREE_QUOTAS, Hub
from bot.intake.dispatcher import Dispatcher
from bot.intake.readiness import HubReadiness
from bot.intake.scheduler import Poller
from bot.intake.server import create_app, open_configured_store
from bot.publishing.dashboard import UpstreamDashboards
from bot.publishing.lookup import ReleaseLookup
from bot.publishing.metadata_update import MetadataUpdates
from bot.publishing.reverify import Reverifier
from bot.publishing.staged import StagedPublisher
from bot.scheduler import Scheduler
from bot.settings import Settings
from bot.threaded_server import ThreadedServer
from handlers.context import Options
from state import Store

log = logging.getLogger(__name__)

REVERIFY_SWEEP_S = 3600.0  # how often the releases due for re-verification (`reverify_days`) are looked for


@dataclass
class Bot:
    """Every part of a running bot."""

    settings: Settings
    store: Store
    hub: Hub
    options: Options
    executor: Orchestrator
    dispatcher: Dispatcher
    poller: Poller
    scheduler: Scheduler
    app: Any
    replies: ReplyUpdater
    readiness: HubReadiness
    reviews: ReleaseLookup
    upkeep: MetadataUpdates
    reverifier: Reverifier

    @classmethod
    def assemble(cls, settings: Settings, *, slots: list[Slot] | None = None) -> Bot:
        """Open the store and wire the parts; no Hub call (the Hub may be down). Nothing runs until `start`.

        Until the Hub names the bot, `options` holds the configured `bot_name` (or nothing)."""
        budget = RequestBudget(dict(FREE_QUOTAS), poll_share=settings.poll_budget_share)
        hub = Hub(endpoint=settings.hf_endpoint, token=settings.token(), budget=budget)
        bot_user = settings.bot_name or ""
        options = Options.from_settings(settings, bot_user=bot_user)
        readiness = HubReadiness(hub)
        store = open_configured_store(settings)
        scheduler = Scheduler()
        executor = make_executor(settings, store, hub, slots=slots, scheduler=scheduler)
        reviews = ReleaseLookup(hub, bot_user)
        upkeep = MetadataUpdates(hub, store, bot_user, settings.hf_endpoint)
        planner = SpecMaker(settings, hub, local_gpus())
        dispatcher = Dispatcher(
            store, hub=hub, options=options, planner=planner, reviews=reviews, upkeep=upkeep
        )
        dashboards = UpstreamDashboards(hub, store, planner.eligibility, upkeep, settings.hf_endpoint)
        reverifier = Reverifier(settings, hub, store, bot_user)
        poller = Poller(settings, store, hub, wake=dispatcher.wake, options=lambda: dispatcher.options)
        scheduler.every("poll", poller.poll, seconds=settings.poll_interval_min * 60)
        # Housekeeping runs twice per lease, so a dead worker's job is requeued soon after its lease ends.
        housekeeping = Housekeeping(settings, store).housekeeping
        scheduler.every("housekeeping", housekeeping, seconds=min(15.0, max(1.0, settings.lease_s / 2)))
        scheduler.every("dashboards", dashboards.refresh, seconds=settings.dashboard_s)
        scheduler.every("reverify", reverifier.sweep, seconds=REVERIFY_SWEEP_S)
        app = create_app(settings, store, on_event=dispatcher.wake, readiness=readiness)
        replies = ReplyUpdater(store, hub, scheduler)
        return cls(
            settings,
            store,
            hub,
            options,
            executor,
            dispatcher,
            poller,
            scheduler,
            app,
            replies,
            readiness,
            reviews,
            upkeep,
            reverifier,
        )

    def start_workers(self) -> Bot:
        """Start everything but the HTTP server once the Hub answers (at once if it does)."""
        self.readiness.start(self._hub_answered)
        return self

    def _hub_answered(self, bot_user: str) -> None:
        """The Hub named the bot: the parts that act start (events stored meanwhile are swept up)."""
        self.options = Options.from_settings(self.settings, bot_user=bot_user, bot_orgs=self.readiness.orgs)
        self.dispatcher.options = self.options
        self.reviews.bot_name = bot_user
        self.upkeep.bot_name = bot_user
        self.reverifier.bot_name = bot_user
        self.replies.start()
        self.executor.start()
        self.dispatcher.start()
        self.scheduler.start()

    def stop_workers(self, *, drain: bool = True) -> None:
        """Stop everything but the HTTP server, in dependency order, and close the database."""
        self.readiness.stop()
        self.scheduler.stop()
        self.dispatcher.stop()
        self.executor.stop(drain=drain)
        self.replies.stop()
        self.store.close()


def make_executor(
    settings: Settings,
    store: Store,
    hub: Hub,
    *,
    slots: list[Slot] | None = None,
    scheduler: Scheduler | None = None,
) -> Orchestrator:
    """The orchestrator over the transport `settings.executor` names: processes on this machine (on
    `slots`), Celery workers on other machines or Hugging Face Jobs; its rounds run on `scheduler` (the
    bot's)."""
    publisher = StagedPublisher(hub, settings, store.events.former_names)
    if settings.executor == "local":
        return Orchestrator(settings, store, publisher, LocalTransport(settings, slots), scheduler=scheduler)
    if settings.executor == "hf-jobs":
        from bot.eligibility.flavors import load_flavors
        from bot.execution.jobs_transport import JobsTransport

        jobs = JobsTransport(settings, hub, load_flavors(), lambda: publisher.bot_name)
        return Orchestrator(settings, store, publisher, jobs, poll_s=1.0, scheduler=scheduler)
    from bot.execution.celery_transport import CeleryTransport
    from bot.host.celery_app import make_app

    return Orchestrator(settings, store, publisher, CeleryTransport(make_app(settings)), scheduler=scheduler)


class BotServer:
    """The bot's HTTP server with its workers: in the foreground (`serve`) or the background (demo, tests)."""

    def __init__(self, bot: Bot, host: str = "127.0.0.1", port: int = 8000) -> None:
        self.bot = bot
        self.server = ThreadedServer(bot.app, host, port, name="quantbot-server")

    @property
    def url(self) -> str:
        return self.server.url

    def serve_forever(self, on_started: Callable[[BotServer], None] | None = None) -> None:
        """Serve until SIGINT or SIGTERM, then stop taking webhooks and stop the workers.

        `on_started` is called once the socket listens, when `url` holds the port taken (port 0: a free one).
        """
        received: int | None = None
        self.start()
        try:
            if on_started is not None:
                on_started(self)
            received = self.server.wait()
        finally:  # Ctrl+C stops builds at once; SIGTERM (a deploy) lets each finish its stage first
            self.stop(drain=received != signal.SIGINT)

    def start(self) -> BotServer:
        """Start the workers, then serve; returns once the socket accepts connections."""
        self.bot.start_workers()
        try:
            self.server.start()
        except BaseException:
            self.bot.stop_workers()
            raise
        return self

    def stop(self, *, drain: bool = True) -> None:
        """Stop taking webhooks, then stop the workers (`drain`: builds may finish their stage first)."""
        self.server.stop()
        self.bot.stop_workers(drain=drain)

    def __enter__(self) -> BotServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
