"""A release made on several machines: the checkpoint by one worker, engines by others, the card by the bot.

DESIGN.md, decision 5: the quantized checkpoint travels between machines through the release's draft PR,
pinned by revision.

1. `stage` (the quantize worker): the same look on the Hub as every publish (the key already released,
   declined or superseded ends it there), then the repo, the draft PR, and the checkpoint uploaded to it.
   Its answer names the PR and the commit it now points at, which engine tasks download;
2. engine tasks upload `trt-llm/engines/<label>/` to the same PR (`engine_revision` says where);
3. `finalise` (the bot): once every SM has a record, or the deadline passed, the card and the manifest that
   lists every engine (built or not, and why) are committed last and the PR is announced or merged, as
   the one-machine publish does; a repo made for this release gives the older release repos of its
   upstream and format `new_version`, as there;
4. `amend` (the bot): an engine that finished after that is added by a later commit of card and manifest;
5. `withdraw` (the bot): a cancelled build's draft PR is closed.
"""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import CommitOperationAdd

from bot.errors import PublishError
from bot.publishing.lookup import BotPR
from bot.publishing.publisher import Approval, Publisher, PublishResult
from bot.publishing.release import check_artifacts, load_manifest, pr_description, what_changed
from builders.spec import MANIFEST_NAME, Manifest, ReleaseRecord, StagedCheckpoint
from state.models import ReleaseKind, ReleaseStatus


def release_record(result: PublishResult) -> ReleaseRecord:
    """A publish result as the task contract carries it (it crosses the task queue)."""
    return ReleaseRecord(
        status=result.status.value,
        kind=result.kind.value,
        repo_id=result.repo_id,
        url=result.url,
        key=result.key,
        pr_number=result.pr_number,
        superseded=list(result.superseded),
        message=result.message,
    )


def from_record(record: ReleaseRecord) -> PublishResult:
    """The publish result a quantize task found already made."""
    return PublishResult(
        status=ReleaseStatus(record.status),
        kind=ReleaseKind(record.kind),
        repo_id=record.repo_id,
        url=record.url,
        key=record.key,
        pr_number=record.pr_number,
        superseded=tuple(record.superseded),
        message=record.message,
    )


class StagedPublisher(Publisher):
    """The publisher's steps, split between the worker that quantized and the bot that finalises."""

    def stage(self, build_dir: Path, repo_id: str) -> StagedCheckpoint | ReleaseRecord:
        """Upload a checked build's checkpoint to the release's draft PR (opened, or found again)."""
        build_dir = Path(build_dir)
        manifest = load_manifest(build_dir)
        check_artifacts(build_dir, manifest)
        exists = self.hub.repo_exists(repo_id)
        previous = self._previous(repo_id, exists)
        release = self._prepare(build_dir, manifest, repo_id, previous)
        _, found = self._on_hub(release, previous, exists)
        if isinstance(found, PublishResult):
            return release_record(found)
        held = self._gate(release, found)
        if held is not None:
            return release_record(held)
        self._ensure_repo(release, exists)
        if found is None:
            description = pr_description(
                release,
                changed=what_changed(release, previous),
                reason="approval",
                publisher_name=self.settings.publisher_name,
            )
            pr = self._open_pr(release, description)
        else:
            pr = found.details
        draft = StagedCheckpoint(repo_id=repo_id, pr_number=pr.num, revision="", url=pr.url)
        self._upload_artifacts(release, draft.ref)
        return draft.model_copy(update={"revision": self.hub.resolve_revision(repo_id, draft.ref)})

    def engine_revision(self, draft: StagedCheckpoint) -> str | None:
        """Where an engine goes now: the draft PR while open, `main` once merged, nowhere once declined."""
        status = self.hub.discussion(draft.repo_id, draft.pr_number).status
        if status in ("open", "draft"):
            return draft.ref
        return "main" if status == "merged" else None

    def withdraw(self, draft: StagedCheckpoint, why: str) -> None:
        """Close the draft PR of a build that will not be released (cancelled); HubError if it stays open."""
        self.hub.set_status(draft.repo_id, draft.pr_number, "closed", comment=why)

    def finalise(
        self, manifest: Manifest, draft: StagedCheckpoint, approval: Approval | None = None
    ) -> PublishResult:
        """Commit the card and the complete manifest to the draft, then announce or merge it."""
        previous = self._previous(draft.repo_id, exists=True)
        release = self._prepare(Path("."), manifest, draft.repo_id, previous, _manifest_bytes(manifest))
        prs, found = self._on_hub(release, previous, exists=True)
        if isinstance(found, PublishResult):
            return found
        if not isinstance(found, BotPR) or found.details.num != draft.pr_number:
            raise PublishError(f"the draft pull request {draft.url} is no longer open")
        approval = approval or self.approval_for(release.tag.upstream, draft.repo_id)
        result = self._release(release, True, previous, prs, found, merge=approval == "auto", artifacts=False)
        if previous is None:  # no release on `main` yet: `stage` made this repo for it
            self._succeed(release, result)
        return result

    def amend(self, manifest: Manifest, draft: StagedCheckpoint) -> str | None:
        """A late engine: card and manifest again, where the release is now; the revision, or None."""
        revision = self.engine_revision(draft)
        if revision is None:
            return None
        release = self._prepare(Path("."), manifest, draft.repo_id, None, _manifest_bytes(manifest))
        added = sorted(e.sm for e in manifest.engines if e.status == "built")
        self.hub.create_commit(
            draft.repo_id,
            [
                CommitOperationAdd("README.md", release.card.encode()),
                CommitOperationAdd(MANIFEST_NAME, release.manifest_bytes),
            ],
            commit_message=f"Add engine records ({', '.join(f'sm{s}' for s in added) or 'none built'})",
            commit_description=f"Release key: {release.tag.key}\n\n{release.tag.marker()}",
            revision=revision,
        )
        return revision


def _manifest_bytes(manifest: Manifest) -> bytes:
    return (manifest.model_dump_json(indent=2) + "\n").encode()
