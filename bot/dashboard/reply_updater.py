"""Replies follow their builds: the store reports a change, the updater re-renders and edits the reply.

Each answered command's reply (`handlers.replies`) lists the builds it started. The store tells the updater
of every job move, progress and release change; the updater edits, on the bot's scheduler (`bot.scheduler`,
nudged at once by a change; never in the thread that moved the job), the replies that follow that build.
Progress within a stage is not worth a Hub call: only a new stage is. An edit that would not change the
text is skipped; a failed edit is logged and retried on the next change. A reply whose builds are all
finished is closed and no longer followed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

from bot.errors import HubError
from bot.scheduler import Scheduler
from handlers.replies import close, following, reply_state
from state import BuildChange, Store

log = logging.getLogger(__name__)

SWEEP_S = 1.0
JOB = "replies"  # its name on the scheduler


class _Editor(Protocol):
    def edit_comment(self, repo_id: str, num: int, comment_id: str, text: str) -> None: ...


class ReplyUpdater:
    """Edits the discussion replies that follow a build whenever the store reports a change of it."""

    def __init__(self, store: Store, hub: _Editor, scheduler: Scheduler | None = None) -> None:
        """`scheduler`: the bot's, which the bot starts and stops; without one, the updater runs its own."""
        self.store = store
        self.hub = hub
        self.scheduler = scheduler or Scheduler()
        self._own_scheduler = scheduler is None
        self._lock = threading.Lock()
        self._pending: set[str] = set()  # build keys whose replies to re-render
        self._stages: dict[int, str] = {}  # job id → the stage last rendered
        self._seen: dict[str, str] = {}  # reply comment id → the text last posted
        self._unlisten: Callable[[], None] | None = None

    def start(self) -> ReplyUpdater:
        self._unlisten = self.store.changes.listen(self.on_change)
        self.scheduler.every(JOB, self.flush, seconds=SWEEP_S)
        if self._own_scheduler:
            self.scheduler.start()
        return self

    def stop(self) -> None:
        """Stop listening; the changes heard so far are still shown."""
        if self._unlisten is not None:
            self._unlisten()
        if self._own_scheduler:
            self.scheduler.stop()
        self.flush()

    def on_change(self, change: BuildChange) -> None:
        """Note the build (only that: this runs in whichever thread changed it)."""
        with self._lock:
            if change.job_id is not None and change.status is not None and not change.moved:
                if self._stages.get(change.job_id) == change.stage:
                    return  # progress within the stage already shown
                self._stages[change.job_id] = change.stage or ""
            elif change.job_id is not None:
                self._stages.pop(change.job_id, None)  # a new status (a retry starts its stages anew)
            self._pending.add(change.build_key)
        self.scheduler.nudge(JOB)

    def flush(self) -> None:
        """Edit the replies of every build noted so far."""
        with self._lock:
            keys, self._pending = self._pending, set()
        for key in keys:
            try:
                self._update(key)
            except Exception:  # a reply is a courtesy: never let it stop the others
                log.exception("could not update the replies following %s", key[:12])

    def _update(self, build_key: str) -> None:
        for command in following(self.store, build_key):
            text, done = reply_state(self.store, command)
            comment_id = command.reply_comment_id
            if comment_id and self._seen.get(comment_id) != text:
                try:
                    self.hub.edit_comment(command.repo, command.discussion_num, comment_id, text)
                except HubError as e:
                    where = f"{command.repo}#{command.discussion_num}"
                    log.warning("could not edit reply %s in %s: %s", comment_id, where, e)
                    continue
                self._seen[comment_id] = text
            if done:
                close(self.store, command.id)
                self._seen.pop(comment_id or "", None)
