"""The emulated Hub's state and rules: repos, refs, commits, permissions, persistence, webhook events.

The HTTP layer (`app` and the `api_*` modules) only parses requests and shapes answers; every rule lives
here, so the Python API that tests use and the HTTP API behave the same. Methods take the calling `User`
(None when anonymous) and raise `ApiError` with the Hub's status and `X-Error-Code`.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bot.hubsim import cards, lfs, metadata
from bot.hubsim.community import Community
from bot.hubsim.discussions import Discussion, Event
from bot.hubsim.errors import (
    ApiError,
    RepoMoved,
    bad_request,
    conflict,
    forbidden,
    repo_not_found,
    unauthorized,
)
from bot.hubsim.faults import Faults
from bot.hubsim.jobs import Jobs
from bot.hubsim.persistence import DataDir
from bot.hubsim.ratelimit import RateLimits
from bot.hubsim.store import (
    DEFAULT_BRANCH,
    HEADS,
    INITIAL_GITATTRIBUTES,
    PRS,
    TAGS,
    BlobStore,
    Commit,
    Repo,
    RepoIndex,
    apply_changes,
    check_ref_name,
)
from bot.hubsim.users import Directory, User
from bot.hubsim.webhooks import Webhook, Webhooks, comment_block, discussion_block, repo_block
from bot.hubsim.xet.storage import XetStorage

REPO_TYPES = ("model", "dataset", "space")
_REPO_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")


def valid_repo_name(name: object) -> bool:
    """Whether the Hub takes `name` as the name part of a repo id."""
    return isinstance(name, str) and bool(_REPO_NAME.fullmatch(name)) and not name.endswith(".git")


@dataclass
class Changes:
    """What one commit does: files to write (path → content), LFS files to point at (path → pointer to
    content already uploaded, `size` None for a copy) and files / folders to delete."""

    puts: dict[str, bytes] = field(default_factory=dict)
    lfs_puts: dict[str, tuple[str, int | None]] = field(default_factory=dict)
    deleted_files: list[str] = field(default_factory=list)
    deleted_folders: list[str] = field(default_factory=list)


class HubService:
    """All of hubsim's state. Thread-safe: callers hold `lock` (the HTTP app does, per request)."""

    def __init__(
        self,
        directory: Directory | None = None,
        data_dir: Path | None = None,
        endpoint: str = "http://127.0.0.1",
    ) -> None:
        self.lock = threading.RLock()
        self.endpoint = endpoint.rstrip("/")
        self.page_size: int | None = None
        self.internal_errors: list[str] = []
        self.requests: deque[tuple[str, str, int]] = deque(maxlen=2000)  # (method, path, status), newest last
        self.derived_cache: dict[str, Any] = {}  # commit oid -> card/config/tags (views.derived)
        self.faults = Faults()
        self.rate_limits = RateLimits()  # off until enabled; counts every request either way
        self._disk = DataDir(data_dir) if data_dir is not None else None
        self.blobs = BlobStore(self._disk.blobs if self._disk else None)
        self.lfs = BlobStore(self._disk.lfs if self._disk else None, key=lfs.sha256_hex)
        self.xet = XetStorage(self._disk.xet if self._disk else None)
        self.signer = lfs.Signer()
        self._pointers: dict[str, lfs.Pointer | None] = {}  # blob oid -> the LFS pointer it holds, if any
        meta = self._disk.load_meta() if self._disk else None
        saved_users = Directory.from_dict(meta["directory"]) if meta else None
        self.users = directory or saved_users or Directory.single()
        self.webhooks = Webhooks([Webhook(**h) for h in meta["webhooks"]] if meta else None)
        self.repos = RepoIndex()
        for repo in self._disk.load_repos() if self._disk else []:
            self.repos[(repo.type, repo.name)] = repo
        # (type, old id in lower case) -> new id: what a moved repo's old name redirects to
        self.moved: dict[tuple[str, str], str] = {
            (m["type"], m["from"].lower()): m["to"] for m in (meta or {}).get("moved", [])
        }
        self.community = Community(self)
        self.jobs = Jobs(self.users, self.endpoint)
        self.save_meta()

    # ---------------------------------------------------------------- persistence and events

    def save_meta(self) -> None:
        """Persist users and hooks (no-op in memory)."""
        if self._disk:
            with self.lock:
                moved = [{"type": t, "from": old, "to": new} for (t, old), new in self.moved.items()]
                hooks = [asdict(h) for h in self.webhooks.hooks.values()]
                self._disk.save_meta(self.users.to_dict(), hooks, moved)

    def save(self, repo: Repo) -> None:
        """Persist one repo (no-op in memory)."""
        if self._disk:
            self._disk.save_repo(repo)

    def register_webhook(
        self,
        url: object,
        secret: str | None = None,
        watched: list[dict[str, str]] | None = None,
        domains: list[str] | None = None,
        owner: str | None = None,
    ) -> Webhook:
        """Add a hook (Python API, CLI, settings API: `url` is checked here); `watched=None` watches all."""
        with self.lock:
            hook = self.webhooks.register(url, secret, watched, domains, owner)
            self.save_meta()
            return hook

    def emit(
        self,
        scope: str,
        action: str,
        repo: Repo,
        *,
        refs: Sequence[tuple[str, str | None, str | None]] = (),
        discussion: Discussion | None = None,
        comment: Event | None = None,
        config: dict[str, Any] | None = None,
        moved_to: Repo | None = None,
    ) -> None:
        """Queue a version-3 webhook payload for the hooks watching `repo` (or `moved_to`, its new name)."""
        repo_json = repo_block(repo, self.users.owner_id(repo.owner), self.endpoint, scope.startswith("repo"))
        payload: dict[str, Any] = {"event": {"action": action, "scope": scope}, "repo": repo_json}
        if discussion is not None:
            payload["discussion"] = discussion_block(discussion, repo_json)
            if comment is not None:
                payload["comment"] = comment_block(comment, payload["discussion"])
        if refs:
            payload["updatedRefs"] = [{"ref": r, "oldSha": old, "newSha": new} for r, old, new in refs]
        if config is not None:
            payload["updatedConfig"] = config
        if moved_to is not None:
            owner = {"id": self.users.owner_id(moved_to.owner)}
            payload["movedTo"] = {"name": moved_to.name, "owner": owner}
        self.webhooks.emit(
            payload,
            [repo] if moved_to is None else [repo, moved_to],
            lambda owner: owner is None or self.can_see(self.users.users.get(owner), moved_to or repo),
        )

    # ---------------------------------------------------------------- permissions

    def can_see(self, user: User | None, repo: Repo) -> bool:
        """Public repos are visible to all; private ones to the owner and the owning org's members."""
        return not repo.private or self.users.can_read_private(user, repo.owner)

    def can_write(self, user: User | None, repo: Repo) -> bool:
        """The owner (and the owning org's members), with a write token."""
        return self.users.can_write(user, repo.owner)

    @staticmethod
    def require_user(user: User | None) -> User:
        """The caller, who must be authenticated with a write token (discussions, PRs, commits)."""
        if user is None:
            raise unauthorized("Authentication required: pass a token (Authorization: Bearer ...)")
        if user.role != "write":
            raise forbidden("This token is read-only")
        return user

    def repo(self, user: User | None, repo_type: str, repo_id: str, *, write: bool = False) -> Repo:
        """The repo as `user` may see it (RepoNotFound otherwise); with `write`, 403 unless they may write."""
        repo = self.repos.get((repo_type, repo_id))
        moved = self.moved_to(repo_type, repo_id) if repo is None else None
        if moved is not None and self.can_see(user, moved):
            raise RepoMoved(repo_id, moved.name, anonymous=user is None)
        if repo is None or not self.can_see(user, repo):
            raise repo_not_found(repo_id, anonymous=user is None)
        if write and not self.can_write(self.require_user(user), repo):
            raise forbidden(f"You don't have the rights to change {repo_id}. Open a pull request instead.")
        return repo

    def moved_to(self, repo_type: str, repo_id: str) -> Repo | None:
        """The repo an old name now leads to, following moves in turn (None: not a moved name)."""
        seen = set()
        key = (repo_type, repo_id.lower())
        while key in self.moved and key not in seen:
            seen.add(key)
            target = self.moved[key]
            if (repo := self.repos.get((repo_type, target))) is not None:
                return repo
            key = (repo_type, target.lower())
        return None

    def check_gate(self, user: User | None, repo: Repo) -> None:
        """Downloads from a gated repo need the owner's rights or a granted access request."""
        if (
            repo.gated
            and not self.can_write(user, repo)
            and (user is None or user.name not in repo.gate_grants)
        ):
            message = f"Access to model {repo.name} is restricted."
            if user is not None:  # the Hub's words to a signed-in user without access
                message = (
                    f"Access to model {repo.name} is restricted and you are not in the authorized list. "
                    f"Visit {self.endpoint}/{repo.name} to ask for access."
                )
            raise ApiError(401 if user is None else 403, message, "GatedRepo")

    def grant_access(self, repo_type: str, repo_id: str, username: str) -> None:
        """Python API: let `username` download from a gated repo."""
        with self.lock:
            repo = self.repos[(repo_type, repo_id)]
            repo.gate_grants.append(username)
            self.save(repo)

    # ---------------------------------------------------------------- repos

    def create_repo(
        self, user: User | None, repo_type: str, name: object, namespace: str | None, private: bool
    ) -> tuple[Repo, bool]:
        """Create a repo with the Hub's initial commit; `(repo, False)` when it already exists.

        `name` is what the client sent, checked here."""
        user = self.require_user(user)
        if repo_type not in REPO_TYPES:
            raise bad_request(f"Invalid repo type: {repo_type!r}")
        if not isinstance(name, str) or not _REPO_NAME.fullmatch(name) or name.endswith(".git"):
            raise bad_request(f"Invalid repo name: {name!r} (letters, digits, '-', '_', '.'; at most 96)")
        namespace = self.users.canonical(namespace or user.name)
        if not self.users.namespace_exists(namespace):
            raise ApiError(404, f"Namespace not found: {namespace}")
        if not self.users.can_write(user, namespace):
            raise forbidden(f"You don't have the rights to create a repo under the namespace {namespace}")
        repo_id = f"{namespace}/{name}"
        if (existing := self.repos.get((repo_type, repo_id))) is not None:
            return existing, False
        repo = Repo(repo_type, repo_id, namespace, private=private)
        commit = repo.add_commit(
            [], {".gitattributes": self.blobs.put(INITIAL_GITATTRIBUTES)}, "initial commit", "", user.name
        )
        repo.refs[HEADS + DEFAULT_BRANCH] = commit.oid
        self.repos[(repo_type, repo_id)] = repo
        self.save(repo)
        self.emit("repo", "create", repo)
        return repo, True

    def move_repo(self, user: User | None, repo_type: str, from_id: str, to_id: str) -> Repo:
        """Rename or transfer a repo (`POST /api/repos/move`): the old name then redirects to the new one,
        and hooks watching either get a `repo` `move` event with `movedTo`."""
        user = self.require_user(user)
        repo = self.repo(user, repo_type, from_id, write=True)
        namespace, _, name = to_id.partition("/")
        if not _REPO_NAME.fullmatch(name) or name.endswith(".git"):
            raise bad_request(f"Invalid repo name: {name!r} (letters, digits, '-', '_', '.'; at most 96)")
        namespace = self.users.canonical(namespace)
        if not self.users.namespace_exists(namespace):
            raise ApiError(404, f"Namespace not found: {namespace}")
        if not self.users.can_write(user, namespace):
            raise forbidden(f"You don't have the rights to move a repo to the namespace {namespace}")
        new_id = f"{namespace}/{name}"
        existing = self.repos.get((repo_type, new_id))
        if existing is not None and existing is not repo:
            raise conflict(f"A {repo_type} repository called {existing.name} already exists")
        if new_id == repo.name:
            raise bad_request(f"{repo.name} already has that name")
        old = Repo(repo.type, repo.name, repo.owner, id=repo.id, private=repo.private)
        old.commits, old.refs = repo.commits, repo.refs
        del self.repos[(repo_type, repo.name)]
        if self._disk:
            self._disk.delete_repo(repo)
        repo.name, repo.owner = new_id, namespace
        self.repos[(repo_type, new_id)] = repo
        self.moved[(repo_type, old.name.lower())] = new_id
        self.moved.pop((repo_type, new_id.lower()), None)  # a name that is a repo again redirects no more
        self.save(repo)
        self.save_meta()
        self.emit("repo", "move", old, moved_to=repo)
        return repo

    def delete_repo(self, user: User | None, repo_type: str, repo_id: str) -> None:
        """Delete a repo (RepoNotFound when missing, 403 without write rights)."""
        repo = self.repo(user, repo_type, repo_id, write=True)
        del self.repos[(repo_type, repo_id)]
        if self._disk:
            self._disk.delete_repo(repo)
        self.emit("repo", "delete", repo)

    def update_settings(
        self, user: User | None, repo_type: str, repo_id: str, private: Any, gated: Any
    ) -> Repo:
        """Change visibility and gating (`PUT .../settings`)."""
        repo = self.repo(user, repo_type, repo_id, write=True)
        if private is not None and not isinstance(private, bool):
            raise bad_request("private must be a boolean")
        if gated is not None and gated not in (False, "auto", "manual"):
            raise bad_request("gated must be false, 'auto' or 'manual'")
        changed = private is not None and private != repo.private
        repo.private = repo.private if private is None else private
        repo.gated = repo.gated if gated is None else gated
        self.save(repo)
        self.emit("repo.config", "update", repo, config={"private": repo.private} if changed else {})
        return repo

    def visible_repos(self, user: User | None, repo_type: str) -> list[Repo]:
        """Every repo of a type that `user` may see."""
        return [
            r
            for (t, _), r in self.repos.items()
            if t == repo_type and (not r.private or self.can_see(user, r))
        ]

    def read(self, oid: str) -> bytes:
        """A blob's content."""
        return self.blobs.get(oid)

    # ---------------------------------------------------------------- refs

    def create_ref(
        self, user: User | None, repo_type: str, repo_id: str, kind: str, name: str, start: str | None
    ) -> None:
        """Create a branch (`kind="branch"`) or tag at `start` (default: the default branch)."""
        repo = self.repo(user, repo_type, repo_id, write=True)
        target = repo.resolve(start) if start else repo.head  # an unknown revision first, as the Hub
        ref = (HEADS if kind == "branch" else TAGS) + check_ref_name(name)
        if ref in repo.refs:
            raise conflict(f"Reference {ref} already exists")
        repo.refs[ref] = target.oid
        self.save(repo)
        self.emit("repo.content", "update", repo, refs=[(ref, None, target.oid)])

    def delete_ref(self, user: User | None, repo_type: str, repo_id: str, kind: str, name: str) -> None:
        """Delete a branch (never the default one) or a tag."""
        repo = self.repo(user, repo_type, repo_id, write=True)
        ref = (HEADS if kind == "branch" else TAGS) + name
        if ref == HEADS + DEFAULT_BRANCH:
            raise ApiError(403, f"Cannot delete {ref}: it is the default branch")
        if ref not in repo.refs:
            raise ApiError(404, f"Invalid rev id: {name}", "RevisionNotFound")
        old = repo.refs.pop(ref)
        self.save(repo)
        self.emit("repo.content", "update", repo, refs=[(ref, old, None)])

    def commit_target(self, user: User | None, repo: Repo, revision: str, create_pr: bool) -> str:
        """The ref a commit (or a preupload) to `revision` moves, after checking the caller may push there."""
        user = self.require_user(user)
        ref = repo.ref_name(revision)
        if revision.startswith(PRS):
            if ref is None:
                raise ApiError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
            pr = self.community.pull_request(repo, Community.pr_number(revision))
            if pr.author != user.name and not self.can_write(user, repo):
                raise forbidden(
                    f"Only the author of pull request #{pr.num} and the repo's owners can push to it"
                )
            if pr.status == "merged":
                raise bad_request(f"Pull request #{pr.num} is already merged")
            return ref
        if ref is None:  # a commit sha too: the Hub commits (and opens PRs) on branches only
            raise ApiError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        if not ref.startswith(HEADS):
            raise bad_request(f"Can only commit to a branch or a pull request ref, not {revision}")
        if not create_pr and not self.can_write(user, repo):
            raise forbidden(
                f"You don't have the rights to push to {repo.name}. Open a pull request (create_pr=1)."
            )
        return ref

    # ---------------------------------------------------------------- commits

    def commit(
        self,
        user: User | None,
        repo_type: str,
        repo_id: str,
        revision: str,
        changes: Changes,
        summary: str,
        description: str,
        parent: str | None,
        create_pr: bool,
    ) -> tuple[Commit, Discussion | None]:
        """Commit `changes` (paths already checked by the caller) to a branch or `refs/pr/N`; with
        `create_pr`, open a PR branching from `parent` (default: the revision's tip) that holds the commit."""
        repo = self.repo(user, repo_type, repo_id)
        ref = self.commit_target(user, repo, revision, create_pr)
        user = self.require_user(user)
        if "README.md" in changes.puts:
            self.check_card(user, repo.type, changes.puts["README.md"])
        base = repo.resolve(parent) if create_pr and parent else repo.commits[repo.refs[ref]]
        if not create_pr and parent is not None and parent != base.oid:
            raise ApiError(
                412, "The branch was updated since you opened this page. Please refresh and try again."
            )
        puts = {path: self.blobs.put(data) for path, data in changes.puts.items()}
        puts.update({path: self._lfs_pointer(path, *ref_) for path, ref_ in changes.lfs_puts.items()})
        files = apply_changes(base.files, puts, changes.deleted_files, changes.deleted_folders)
        pr = None
        if create_pr:
            pr = self.community.open_pull_request(user, repo, summary, description, base, status="open")
            ref = pr.git_ref
        commit = repo.add_commit([base.oid], files, summary, description, user.name)
        self.move_ref(repo, ref, commit, old=None if create_pr else base.oid)
        if ref.startswith(PRS):
            self.community.record_commit(
                repo, pr or self.community.pull_request(repo, Community.pr_number(ref)), commit
            )
        return commit, pr

    def move_ref(self, repo: Repo, ref: str, commit: Commit, old: str | None) -> None:
        """Point `ref` at `commit`, save, and send the `repo.content` event (`old=None`: a new ref)."""
        repo.refs[ref] = commit.oid
        self.save(repo)
        self.emit("repo.content", "update", repo, refs=[(ref, old, commit.oid)])

    def _lfs_pointer(self, path: str, sha256: str, size: int | None) -> str:
        """Store the pointer file for content uploaded through LFS or Xet (commits name both by sha256);
        400 when no such content was uploaded."""
        stored = self.large_size(sha256) if lfs.is_sha256(sha256) else None
        if stored is None:
            raise bad_request(
                f"Your push was rejected because an LFS pointer pointed to a file that does not exist: {path}"
            )
        if size is not None and size != stored:
            raise bad_request(f"LFS file {path}: size {size} does not match the uploaded object")
        return self.blobs.put(lfs.Pointer(sha256, stored).text())

    def large_size(self, sha256: str) -> int | None:
        """The size of content uploaded through LFS or Xet, by sha256 (None: never uploaded)."""
        if sha256 in self.lfs:
            return self.lfs.size(sha256)
        xet_file = self.xet.file_by_sha256(sha256)
        return xet_file.size if xet_file is not None else None

    def large_content(self, sha256: str, start: int = 0, end: int | None = None) -> bytes:
        """Bytes `[start, end)` of content uploaded through LFS or Xet (KeyError: never uploaded)."""
        if sha256 in self.lfs:
            return self.lfs.get(sha256)[start:end]
        xet_file = self.xet.file_by_sha256(sha256)
        if xet_file is None:
            raise KeyError(sha256)
        return self.xet.read(xet_file, start, end)

    def lfs_pointer(self, oid: str) -> lfs.Pointer | None:
        """The LFS pointer blob `oid` is, when its content was uploaded (None for an ordinary file); the
        parse is cached, since blobs never change."""
        if oid not in self._pointers:
            self._pointers[oid] = (
                lfs.parse_pointer(self.blobs.get(oid)) if self.blobs.size(oid) <= 200 else None
            )
        pointer = self._pointers[oid]
        return pointer if pointer is not None and self.large_size(pointer.sha256) is not None else None

    def card_errors(self, user: User | None, repo_type: str, readme: str) -> list[str]:
        """What the Hub would refuse in this README's metadata (YAML first, then the schema)."""
        try:
            card = cards.card_data(readme)
        except cards.CardError as e:
            return [str(e)]

        def model_exists(repo_id: str) -> bool:
            try:
                self.repo(user, "model", repo_id)
            except RepoMoved:
                return True
            except ApiError:
                return False
            return True

        return metadata.validate(card, repo_type, model_exists)

    def check_card(self, user: User | None, repo_type: str, readme: bytes) -> None:
        """400 unless the README's metadata is valid (the Hub refuses such commits too)."""
        try:
            text = readme.decode("utf-8")
        except UnicodeDecodeError:
            raise bad_request("README.md must be UTF-8 text") from None
        if errors := self.card_errors(user, repo_type, text):
            raise bad_request("\n".join([metadata.INVALID, *(f"- {e}" for e in errors)]))
