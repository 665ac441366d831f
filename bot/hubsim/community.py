"""Discussions and pull requests: opening, commenting, status and title changes, merging.

Rules: anyone authenticated who can see a repo may open discussions and PRs and comment; a discussion's
author or the repo's owners may change its status or title; only a comment's author edits it (in place:
the earlier versions stay in its history); only the repo's owners merge and pin. Pinning is the Hub's
website's (its community tab shows pinned discussions first, and `pinned` is in the listings and in webhook
payloads); neither huggingface_hub nor the Hub's documented API has a route for it, so hubsim offers the
page's button only. Merging applies the PR's changes (its branch point → its head) onto the base
branch's tip as a new two-parent commit and records it as `changes.mergeCommitId`.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Protocol

from bot.hubsim import merging
from bot.hubsim.discussions import Discussion, Event, matches
from bot.hubsim.errors import ApiError, bad_request, conflict, forbidden
from bot.hubsim.store import PRS, Commit, Repo
from bot.hubsim.users import User


class Host(Protocol):
    """What discussions need of the service that holds them (`bot.hubsim.service.HubService`)."""

    def repo(self, user: User | None, repo_type: str, repo_id: str, *, write: bool = False) -> Repo: ...

    @staticmethod
    def require_user(user: User | None) -> User: ...

    def can_write(self, user: User | None, repo: Repo) -> bool: ...

    def save(self, repo: Repo) -> None: ...

    def emit(
        self,
        scope: str,
        action: str,
        repo: Repo,
        *,
        refs: Sequence[tuple[str, str | None, str | None]] = (),
        discussion: Discussion | None = None,
        comment: Event | None = None,
    ) -> None: ...

    def read(self, oid: str) -> bytes: ...

    def move_ref(self, repo: Repo, ref: str, commit: Commit, old: str | None) -> None: ...


class Community:
    """The discussion side of a `HubService`."""

    def __init__(self, hub: Host) -> None:
        self.hub = hub

    # ---------------------------------------------------------------- lookups

    @staticmethod
    def discussion(repo: Repo, num: int) -> Discussion:
        """Discussion or PR `num` of `repo` (404 otherwise)."""
        for discussion in repo.discussions:
            if discussion.num == num:
                return discussion
        raise ApiError(404, f"Discussion #{num} not found in {repo.name}")

    def pull_request(self, repo: Repo, num: int) -> Discussion:
        """PR `num` (404 when missing, 400 when it is a plain discussion)."""
        discussion = self.discussion(repo, num)
        if not discussion.is_pull_request:
            raise bad_request(f"#{num} is a discussion, not a pull request")
        return discussion

    def list(
        self,
        user: User | None,
        repo_type: str,
        repo_id: str,
        kind: str | None,
        status: str | None,
        author: str | None,
    ) -> list[Discussion]:
        """The repo's discussions matching the filters, newest first."""
        repo = self.hub.repo(user, repo_type, repo_id)
        if kind not in (None, "all", "discussion", "pull_request") or status not in (
            None,
            "all",
            "open",
            "closed",
        ):
            raise bad_request("type must be all|discussion|pull_request and status all|open|closed")
        return [d for d in reversed(repo.discussions) if matches(d, kind, status, author)]

    def details(
        self, user: User | None, repo_type: str, repo_id: str, num: int
    ) -> tuple[Repo, Discussion, builtins.list[str], str | None]:
        """A discussion with, for PRs, its conflicting files and its diff."""
        repo = self.hub.repo(user, repo_type, repo_id)
        discussion = self.discussion(repo, num)
        if not discussion.is_pull_request or discussion.base_oid is None:
            return repo, discussion, [], None
        base = repo.commits[discussion.base_oid].files
        head = repo.commits[repo.refs[discussion.git_ref]].files
        target = repo.commits[repo.refs.get(discussion.base_ref, discussion.base_oid)].files
        conflicts = merging.conflicts(base, target, head) if discussion.status != "merged" else []
        return repo, discussion, conflicts, merging.unified_diff(base, head, self.hub.read)

    # ---------------------------------------------------------------- opening

    def open(
        self,
        user: User | None,
        repo_type: str,
        repo_id: str,
        title: object,
        description: object,
        pull_request: bool,
    ) -> Discussion:
        """`POST .../discussions`: a discussion, or a draft PR branching from the default branch.

        The text fields are what the client sent (JSON), checked here."""
        repo = self.hub.repo(user, repo_type, repo_id)
        user = self.hub.require_user(user)
        if not isinstance(title, str) or not 3 <= len(title.strip()) <= 200:
            raise bad_request("title must be 3 to 200 characters long")
        if not isinstance(description, str):
            raise bad_request("description must be a string")
        if pull_request:
            return self.open_pull_request(
                user, repo, title.strip(), description, repo.head, "draft", announce=True
            )
        discussion = self._new(repo, user, title.strip(), False, "open")
        first = discussion.add_comment(user.name, description) if description else None
        self.hub.save(repo)
        self.hub.emit("discussion", "create", repo, discussion=discussion, comment=first)
        return discussion

    def open_pull_request(
        self,
        user: User,
        repo: Repo,
        title: str,
        description: str,
        base: Commit,
        status: str,
        announce: bool = False,
    ) -> Discussion:
        """A PR whose `refs/pr/N` starts at `base`; `announce` sends the new ref's `repo.content` event."""
        pr = self._new(repo, user, title, True, status)
        pr.base_oid = base.oid
        first = pr.add_comment(user.name, description) if description else None
        repo.refs[pr.git_ref] = base.oid
        self.hub.save(repo)
        self.hub.emit("discussion", "create", repo, discussion=pr, comment=first)
        if announce:
            self.hub.emit("repo.content", "update", repo, refs=[(pr.git_ref, None, base.oid)])
        return pr

    @staticmethod
    def _new(repo: Repo, user: User, title: str, is_pr: bool, status: str) -> Discussion:
        discussion = Discussion(len(repo.discussions) + 1, title, user.name, is_pr, status)
        repo.discussions.append(discussion)
        return discussion

    def record_commit(self, repo: Repo, pr: Discussion, commit: Commit) -> None:
        """Show a commit pushed to a PR in its timeline."""
        pr.add_event("commit", commit.author, {"subject": commit.title, "oid": commit.oid})
        self.hub.save(repo)

    # ---------------------------------------------------------------- changes

    def _target(
        self, user: User | None, repo_type: str, repo_id: str, num: int
    ) -> tuple[Repo, Discussion, User]:
        repo = self.hub.repo(user, repo_type, repo_id)
        return repo, self.discussion(repo, num), self.hub.require_user(user)

    def _check_author_or_owner(self, user: User, repo: Repo, discussion: Discussion) -> None:
        if user.name != discussion.author and not self.hub.can_write(user, repo):
            raise forbidden(f"Only the author of #{discussion.num} and the repo's owners can do this")

    def comment(self, user: User | None, repo_type: str, repo_id: str, num: int, text: object) -> Event:
        """Add a comment (`text` as the client sent it, checked here)."""
        repo, discussion, user = self._target(user, repo_type, repo_id, num)
        if not isinstance(text, str) or not text.strip():
            raise bad_request("comment must be a non-empty string")
        return self._add_comment(repo, discussion, user, text)

    def _add_comment(self, repo: Repo, discussion: Discussion, user: User, text: str) -> Event:
        event = discussion.add_comment(user.name, text)
        self.hub.save(repo)
        self.hub.emit("discussion.comment", "create", repo, discussion=discussion, comment=event)
        return event

    def edit_comment(
        self, user: User | None, repo_type: str, repo_id: str, num: int, comment_id: str, content: object
    ) -> Event:
        """Replace a comment's text (its author only)."""
        repo, discussion, user = self._target(user, repo_type, repo_id, num)
        event = discussion.comment(comment_id)
        if event.author != user.name:
            raise forbidden("Only the author of a comment can edit it")
        if event.data["hidden"]:
            raise bad_request("A hidden comment cannot be edited")
        if not isinstance(content, str) or not content.strip():
            raise bad_request("content must be a non-empty string")
        Discussion.edit(event, user.name, content)
        self.hub.save(repo)
        self.hub.emit("discussion.comment", "update", repo, discussion=discussion, comment=event)
        return event

    def hide_comment(
        self, user: User | None, repo_type: str, repo_id: str, num: int, comment_id: str
    ) -> Event:
        """Hide a comment (its author or the repo's owners)."""
        repo, discussion, user = self._target(user, repo_type, repo_id, num)
        event = discussion.comment(comment_id)
        if event.author != user.name and not self.hub.can_write(user, repo):
            raise forbidden("Only the author of a comment and the repo's owners can hide it")
        Discussion.hide(event, user.name)
        self.hub.save(repo)
        self.hub.emit("discussion.comment", "update", repo, discussion=discussion, comment=event)
        return event

    def change_status(
        self, user: User | None, repo_type: str, repo_id: str, num: int, status: object, comment: str | None
    ) -> Event:
        """Open or close a discussion or PR, optionally with a comment."""
        repo, discussion, user = self._target(user, repo_type, repo_id, num)
        if status not in ("open", "closed"):
            raise bad_request("status must be 'open' or 'closed'")
        self._check_author_or_owner(user, repo, discussion)
        if discussion.status == "merged":
            raise bad_request(f"Pull request #{num} is merged; its status cannot change")
        if discussion.status == status:
            raise bad_request(f"#{num} is already {status}")
        return self._set_status(repo, discussion, user, status, comment)

    def _set_status(
        self, repo: Repo, discussion: Discussion, user: User, status: str, comment: str | None
    ) -> Event:
        discussion.status = status
        event = discussion.add_event("status-change", user.name, {"status": status})
        self.hub.save(repo)
        self.hub.emit("discussion", "update", repo, discussion=discussion)
        if isinstance(comment, str) and comment.strip():
            self._add_comment(repo, discussion, user, comment)
        return event

    def rename(self, user: User | None, repo_type: str, repo_id: str, num: int, title: object) -> Event:
        """Change the title."""
        repo, discussion, user = self._target(user, repo_type, repo_id, num)
        if not isinstance(title, str) or not 3 <= len(title.strip()) <= 200:
            raise bad_request("title must be 3 to 200 characters long")
        self._check_author_or_owner(user, repo, discussion)
        event = discussion.add_event(
            "title-change", user.name, {"from": discussion.title, "to": title.strip()}
        )
        discussion.title = title.strip()
        self.hub.save(repo)
        self.hub.emit("discussion", "update", repo, discussion=discussion)
        return event

    def merge(self, user: User | None, repo_type: str, repo_id: str, num: int, comment: str | None) -> Event:
        """Merge an open (or draft) PR into its base branch (the repo's owners only)."""
        repo = self.hub.repo(user, repo_type, repo_id, write=True)
        user = self.hub.require_user(user)
        pr = self.pull_request(repo, num)
        if pr.status not in ("open", "draft"):
            raise bad_request(f"Pull request #{num} is {pr.status}; only an open pull request can be merged")
        if pr.base_ref not in repo.refs or pr.base_oid is None:
            raise bad_request(f"The base branch {pr.base_ref} of #{num} no longer exists")
        target, head = repo.commits[repo.refs[pr.base_ref]], repo.commits[repo.refs[pr.git_ref]]
        base = repo.commits[pr.base_oid]
        if clashes := merging.conflicts(base.files, target.files, head.files):
            raise conflict(f"Pull request #{num} has conflicts: {', '.join(clashes)}")
        pushed = [f"- {e.data['subject']} ({e.data['oid'][:7]})" for e in pr.events if e.type == "commit"]
        files = merging.merge(base.files, target.files, head.files)
        commit = repo.add_commit(
            [target.oid, head.oid], files, f"{pr.title} (#{num})", "\n".join(pushed), user.name
        )
        pr.merge_commit_id = commit.oid
        self.hub.move_ref(repo, pr.base_ref, commit, old=target.oid)
        return self._set_status(repo, pr, user, "merged", comment)

    def pin(self, user: User | None, repo_type: str, repo_id: str, num: int, pinned: bool) -> Discussion:
        """Pin a discussion to the top of the community tab, or unpin it (the repo's owners only)."""
        repo = self.hub.repo(user, repo_type, repo_id, write=True)
        discussion = self.discussion(repo, num)
        discussion.pinned = pinned
        self.hub.save(repo)
        return discussion

    @staticmethod
    def pr_number(ref: str) -> int:
        """N of `refs/pr/N`."""
        return int(ref[len(PRS) :])
