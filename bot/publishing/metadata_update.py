"""An upstream push that changes no weights: its changed metadata files go to each release, with no build.

Upstream authors often fix a chat template, a tokenizer or a generation config after release; the releases
keep those files as the upstream's own bytes (builders/invariance.py), so the fix is carried as it is: one PR
on each published release of the upstream holding exactly the changed files (where the release has them: at
its root, and in int8_sq's legacy checkpoint folder too), and saying that nothing was rebuilt. A change to a
weight file or to config.json (merged into the release's own) needs a build; a change to the upstream's
README alone needs nothing, since a release has its own card.

Each PR carries a hidden marker naming the upstream revision, so a redelivered push opens nothing twice and a
PR a maintainer closed is never opened again for that revision.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass

from huggingface_hub import CommitOperationAdd, CommitOperationDelete

from bot.hub import Hub
from builders.invariance import is_licence_file, metadata_files
from state import JobStatus, ReleaseStatus, Store

log = logging.getLogger(__name__)

_MARKER = re.compile(r"<!-- quantbot:metadata (\{.*?\}) -->")
_CARD = "README.md"
_LIVE = (ReleaseStatus.PUBLISHED, ReleaseStatus.MERGED)


def marker(upstream: str, revision: str, files: list[str]) -> str:
    payload = json.dumps({"upstream": upstream, "revision": revision, "files": files}, sort_keys=True)
    return f"<!-- quantbot:metadata {payload} -->"


@dataclass(frozen=True)
class MetadataPR:
    """One of the bot's metadata-only pull requests on a release repo."""

    num: int
    url: str
    status: str
    upstream: str
    revision: str
    files: str  # the changed files, in words


class MetadataUpdates:
    """The handlers' `UpkeepPort`: metadata-only upstream changes carried to the releases as PRs."""

    def __init__(self, hub: Hub, store: Store, bot_name: str, endpoint: str) -> None:
        self.hub = hub
        self.store = store
        self.bot_name = bot_name
        self.web = endpoint.rstrip("/")

    def metadata_only(self, upstream: str, previous: str, revision: str) -> str | None:
        """Carry what `revision` changed over `previous` to the releases, if it changed no weights; what was
        done, in words, or None when the change needs a build."""
        before, after = self._blobs(upstream, previous), self._blobs(upstream, revision)
        changed = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
        kept = set(metadata_files(before.keys() | after.keys())) | {p for p in changed if is_licence_file(p)}
        if any(p not in kept and p != _CARD for p in changed):
            return None
        files = [p for p in changed if p in kept]
        if not files:
            return "only the upstream's card changed; the releases have their own, so nothing to do"
        done = [
            self._carry(repo, upstream, previous, revision, files, after) for repo in self.releases(upstream)
        ]
        opened = [d for d in done if d]
        listed = ", ".join(f"`{f}`" for f in files)
        return f"carried {listed} without a build in {len(opened)} pull request(s): " + (
            ", ".join(opened) or "none needed"
        )

    def releases(self, upstream: str) -> list[str]:
        """The release repos of `upstream` with a release on `main`, oldest first."""
        keys = [j.build_key for j in self.store.jobs.list([JobStatus.PUBLISHED], repo=upstream, limit=1000)]
        repos: dict[str, None] = {}
        for key in keys:
            for release in self.store.releases.find(build_key=key, statuses=_LIVE):
                repos.setdefault(release.repo_id, None)
        return list(repos)

    def _blobs(self, repo: str, revision: str) -> dict[str, str]:
        """Each file of `repo` at `revision` → its content id (the LFS sha256, else the git blob id)."""
        info = self.hub.model_info(repo, revision=revision, files_metadata=True)
        return {
            s.rfilename: (s.lfs.sha256 if s.lfs is not None else str(s.blob_id)) for s in info.siblings or []
        }

    def metadata_prs(self, repo: str) -> list[MetadataPR]:
        """The bot's metadata-only PRs on a release repo (any status), oldest first."""
        found = []
        for pr in self.hub.pull_requests(repo, author=self.bot_name):
            details = self.hub.discussion(repo, pr.num)
            first = next((e for e in details.events if e.type == "comment"), None)
            match = _MARKER.search(getattr(first, "content", None) or "")
            if match is None:
                continue
            try:
                tag = json.loads(match.group(1))
                files = ", ".join(f"`{f}`" for f in tag["files"])
                found.append(
                    MetadataPR(pr.num, details.url, details.status, tag["upstream"], tag["revision"], files)
                )
            except (ValueError, KeyError, TypeError):
                continue
        return sorted(found, key=lambda p: p.num)

    def _carry(
        self, repo: str, upstream: str, previous: str, revision: str, files: list[str], after: dict[str, str]
    ) -> str | None:
        """One PR on `repo` with the changed files; its URL, or None when one exists already (any status)."""
        if any(p.upstream == upstream and p.revision == revision for p in self.metadata_prs(repo)):
            return None
        present = [s.rfilename for s in self.hub.model_info(repo).siblings or []]
        operations: list[CommitOperationAdd | CommitOperationDelete] = []
        for name in files:
            targets = [p for p in present if p == name or p.endswith("/" + name)] or [name]
            for path in targets:
                if name in after:
                    content = self.hub.download(upstream, name, revision=revision).read_bytes()
                    operations.append(CommitOperationAdd(path, content))
                elif path in present:
                    operations.append(CommitOperationDelete(path))
        listed = "\n".join(f"- `{op.path_in_repo}`" for op in operations)
        description = (
            f"`{upstream}` changed files this release keeps as they are, and no weights, between "
            f"[`{previous[:12]}`]({self.web}/{upstream}/commit/{previous}) and "
            f"[`{revision[:12]}`]({self.web}/{upstream}/commit/{revision}). This pull request carries them "
            f"as the upstream has them now; **nothing was rebuilt**, the quantized weights are unchanged.\n\n"
            f"{listed}\n\n{marker(upstream, revision, files)}"
        )
        commit = self.hub.create_commit(
            repo,
            operations,
            commit_message=f"Metadata of {upstream} at {revision[:12]} (no rebuild)",
            commit_description=description,
            create_pr=True,
        )
        log.info("metadata of %s@%s carried to %s: %s", upstream, revision[:12], repo, commit.pr_url)
        return str(commit.pr_url)
