"""Discussions and pull requests: their events, and the JSON shapes huggingface_hub reads.

Shapes follow `get_repo_discussions`, `get_discussion_details` and `community.deserialize_event` in the
client: every item has `num`, `title`, `status`, `isPullRequest`, `createdAt`, `repo{name,type}` and an
`author` dict; PR details always carry `changes.base` and `filesWithConflicts`.
"""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass, field
from typing import Any

from bot.hubsim import gitobjects
from bot.hubsim.errors import ApiError

OPEN_STATUSES = ("open", "draft")
CLOSED_STATUSES = ("closed", "merged")
HIDDEN_TEXT = "This comment has been hidden"


@dataclass
class Event:
    """One item of a discussion's timeline: comment, status-change, commit or title-change."""

    type: str
    author: str
    data: dict[str, Any]
    id: str = field(default_factory=gitobjects.object_id)
    created_at: str = field(default_factory=gitobjects.now_iso)


@dataclass
class Discussion:
    """A discussion or a pull request (`refs/pr/{num}` holds a PR's head commit, in the repo's refs)."""

    num: int
    title: str
    author: str
    is_pull_request: bool
    status: str
    id: str = field(default_factory=gitobjects.object_id)
    created_at: str = field(default_factory=gitobjects.now_iso)
    events: list[Event] = field(default_factory=list)
    base_ref: str = "refs/heads/main"
    base_oid: str | None = None
    merge_commit_id: str | None = None
    pinned: bool = False

    @property
    def git_ref(self) -> str:
        """The ref of a PR's head."""
        return f"refs/pr/{self.num}"

    def add_event(self, type_: str, author: str, data: dict[str, Any]) -> Event:
        """Append an event to the timeline and return it."""
        event = Event(type_, author, data)
        self.events.append(event)
        return event

    def add_comment(self, author: str, raw: str) -> Event:
        """Append a comment event."""
        version = _version(raw, author)
        data = {
            "edited": False,
            "hidden": False,
            "latest": version,
            "numEdits": 0,
            "editors": [author],
            "history": [version],
            "reactions": [],
            "isReport": False,
        }
        return self.add_event("comment", author, data)

    def comment(self, comment_id: str) -> Event:
        """The comment event with this id (404 otherwise)."""
        for event in self.events:
            if event.type == "comment" and event.id == comment_id.lower():
                return event
        raise ApiError(404, f"Comment not found: {comment_id}")

    @staticmethod
    def edit(event: Event, author: str, raw: str) -> None:
        """Replace a comment's text, keeping the earlier versions in its history."""
        version = _version(raw, author)
        data = event.data
        data.update(edited=True, latest=version, numEdits=data["numEdits"] + 1)
        data["history"].insert(0, version)
        if author not in data["editors"]:
            data["editors"].append(author)

    @staticmethod
    def hide(event: Event, author: str) -> None:
        """Hide a comment for good: its text is gone, like on the Hub."""
        event.data.update(hidden=True, latest=_version(HIDDEN_TEXT, author), history=[])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, for persistence."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Discussion:
        """The inverse of `to_dict`."""
        return cls(**{**data, "events": [Event(**e) for e in data["events"]]})


def _version(raw: str, author: str) -> dict[str, Any]:
    return {
        "raw": raw,
        "html": f"<p>{html.escape(raw)}</p>",
        "updatedAt": gitobjects.now_iso(),
        "author": author_json(author),
    }


def author_json(name: str) -> dict[str, Any]:
    """A user as discussion payloads show one."""
    return {
        "_id": gitobjects.stable_object_id("user", name),
        "name": name,
        "fullname": name,
        "type": "user",
        "avatarUrl": "",
        "isPro": False,
        "isHf": False,
    }


def event_json(event: Event) -> dict[str, Any]:
    """An event as `deserialize_event` reads it."""
    return {
        "id": event.id,
        "type": event.type,
        "createdAt": event.created_at,
        "author": author_json(event.author),
        "data": event.data,
    }


def summary_json(discussion: Discussion, repo_name: str, repo_type: str) -> dict[str, Any]:
    """A discussion as the list endpoint shows it."""
    return {
        "num": discussion.num,
        "title": discussion.title,
        "status": discussion.status,
        "isPullRequest": discussion.is_pull_request,
        "createdAt": discussion.created_at,
        "author": author_json(discussion.author),
        "repo": {"name": repo_name, "type": repo_type},
        "numComments": sum(1 for e in discussion.events if e.type == "comment"),
        "pinned": discussion.pinned,
        "topReactions": [],
    }


def details_json(
    discussion: Discussion, repo_name: str, repo_type: str, conflicts: list[str], diff: str | None
) -> dict[str, Any]:
    """A discussion with its events; PRs add `changes`, `filesWithConflicts` and the `diff`."""
    details = summary_json(discussion, repo_name, repo_type)
    details["events"] = [event_json(e) for e in discussion.events]
    if discussion.is_pull_request:
        changes: dict[str, Any] = {"base": discussion.base_ref}
        if discussion.merge_commit_id:
            changes["mergeCommitId"] = discussion.merge_commit_id
        details.update(changes=changes, filesWithConflicts=conflicts)
        if diff is not None:
            details["diff"] = diff
    return details


def matches(discussion: Discussion, kind: str | None, status: str | None, author: str | None) -> bool:
    """The list endpoint's filters: `type` all|discussion|pull_request, `status` all|open|closed, `author`."""
    if kind == "discussion" and discussion.is_pull_request:
        return False
    if kind == "pull_request" and not discussion.is_pull_request:
        return False
    if status == "open" and discussion.status not in OPEN_STATUSES:
        return False
    if status == "closed" and discussion.status not in CLOSED_STATUSES:
        return False
    return author is None or discussion.author == author
