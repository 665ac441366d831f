"""Commands: slash commands read in discussions, recorded once per comment, and the bot's reply."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from state.db import Database, insert_ignoring_conflict
from state.errors import GuardFailed, NotFound
from state.models import Command, CommandStatus, utcnow

_UNSET: Any = object()


class CommandStore:
    """The `commands` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record(
        self,
        *,
        repo: str,
        discussion_num: int,
        comment_id: str,
        author: str,
        text: str,
        parsed: dict[str, Any] | None = None,
    ) -> tuple[Command, bool]:
        """Store a command unless that comment was seen before; return it and whether it is new."""
        now = utcnow()
        row = {
            "repo": repo,
            "discussion_num": discussion_num,
            "comment_id": comment_id,
            "author": author,
            "text": text,
            "parsed": parsed,
            "status": CommandStatus.RECEIVED,
            "build_keys": [],
            "created_at": now,
            "updated_at": now,
        }
        stmt = insert_ignoring_conflict(self._db.dialect, Command, "comment_id").values(row)
        with self._db.write() as s:
            created = s.execute(stmt.returning(Command.id)).scalar_one_or_none() is not None
            command = s.execute(select(Command).where(Command.comment_id == comment_id)).scalar_one()
        return command, created

    def get(self, command_id: int) -> Command:
        """One command; NotFound if there is none with that id."""
        with self._db.read() as s:
            command = s.get(Command, command_id)
        if command is None:
            raise NotFound("command", command_id)
        return command

    def update(
        self,
        command_id: int,
        *,
        from_statuses: Collection[CommandStatus] | None = None,
        status: CommandStatus = _UNSET,
        reply_comment_id: str | None = _UNSET,
        reason: str | None = _UNSET,
        parsed: dict[str, Any] | None = _UNSET,
        build_keys: list[str] = _UNSET,
    ) -> Command:
        """Set the given fields; with `from_statuses`, only while the command is in one (else GuardFailed)."""
        given = {
            "status": status,
            "reply_comment_id": reply_comment_id,
            "reason": reason,
            "parsed": parsed,
            "build_keys": build_keys,
        }
        values = {name: value for name, value in given.items() if value is not _UNSET}
        guard = [Command.id == command_id]
        if from_statuses is not None:
            guard.append(Command.status.in_(list(from_statuses)))
        stmt = (
            update(Command)
            .where(*guard)
            .values(values | {"updated_at": utcnow()})
            .returning(Command)
            .execution_options(synchronize_session=False)
        )
        with self._db.write() as s:
            command = s.execute(stmt).scalar_one_or_none()
            if command is None:
                current = s.execute(
                    select(Command.status).where(Command.id == command_id)
                ).scalar_one_or_none()
                if current is None:
                    raise NotFound("command", command_id)
                raise GuardFailed("command", command_id, from_statuses or (), current)
        return command

    def count_since(self, author: str, since: datetime) -> int:
        """How many commands `author` gave since `since` (for the per-user rate limit)."""
        query = select(func.count()).where(Command.author == author, Command.created_at >= since)
        with self._db.read() as s:
            return s.execute(query).scalar_one()

    def in_discussion(self, repo: str, discussion_num: int) -> list[Command]:
        """The commands given in one discussion, oldest first (what /status and /cancel look at)."""
        query = select(Command).where(
            func.lower(Command.repo) == repo.lower(), Command.discussion_num == discussion_num
        )
        with self._db.read() as s:
            return list(s.scalars(query.order_by(Command.id)))

    def recent(self, statuses: Collection[CommandStatus] | None = None, limit: int = 20) -> list[Command]:
        """The newest commands first, optionally only those in `statuses`."""
        query = select(Command).order_by(Command.id.desc()).limit(limit)
        if statuses is not None:
            query = query.where(Command.status.in_(list(statuses)))
        with self._db.read() as s:
            return list(s.scalars(query))
