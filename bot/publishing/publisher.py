"""Publishing a build: a release repo in the bot's namespace, or a pull request on an existing repo.

Every release goes up the same way, so that nothing half-done is ever announced:

1. look on the Hub, just before writing, for the bot's own work with this release's key (`ReleaseTag`):
   the key already on `main` → done (unless this build adds engines for another SM, or the bot's own card
   is out of date); a merged PR → done; a PR a maintainer closed → declined, never opened again; an open
   (or draft) PR → updated in place; an open PR for a *newer* upstream sha → this build is stale, not sent;
2. the invariance gate (bot/publishing/gate.py): the build recorded its gate as passed and its files are
   still the upstream's at the pinned revision (metadata bytes, config keys); else the release is held
   (`ReleaseHeld`: nothing uploaded, or the draft an earlier attempt opened stays a draft with a comment);
   ask the Hub's `validate-yaml` about the card (`CardRefused`, with the Hub's words, before anything is
   written: a card the Hub would refuse costs no upload), then open a **draft** PR (or reuse the one
   found), upload the artifacts to `refs/pr/N` folder by folder with huggingface_hub's resumable
   `upload_folder` (a rerun skips what is already there), then commit the card, `manifest.json` and the
   upstream's licence files last;
2b. (`verify_uploads`) have a worker download that commit by repo id and check it (`python -m builders
   verify`: sha256 against the manifest, `AutoConfig`, the runtimes' detection rules, the card's snippet where
   it runs), and commit the outcome into manifest and card; a failed check leaves the PR a draft with a
   comment saying what failed;
3. only then announce: mark the PR open for review (`approval`, or no push rights), or — `auto` mode on a
   repo the bot may write — merge it itself, so `main` changes in one step;
4. tag the release commit (on `main` once merged, else the PR's) with the upstream revision it was built
   from (`upstream-<sha12>`), and close the bot's older open PRs of the same series (same upstream, format
   and recipe) with a comment linking the new release; a release that made a new repo points the bot's
   older repos of the same upstream and format at it (`new_version`, bot/publishing/succession.py).

An interruption anywhere before step 3 leaves a draft PR holding the key; the next run finds it and
resumes. What the Hub already holds (steps 1 and 4) is read by `ReleaseLookup` (bot/publishing/lookup.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from huggingface_hub import CommitOperationAdd
from huggingface_hub.community import Discussion, DiscussionWithDetails

from bot.errors import HubAuthError, HubUnavailable, NoWriteAccess, PublishError, ReleaseHeld, UsageError
from bot.hub import Hub
from bot.naming import release_repo_id
from bot.publishing.gate import gate_problems
from bot.publishing.gptq_card import Byline
from bot.publishing.licences import licence_files
from bot.publishing.lookup import BotPR, ReleaseLookup, Settled
from bot.publishing.release import (
    Release,
    check_artifacts,
    check_portable,
    load_manifest,
    pr_description,
    prepare,
    what_changed,
)
from bot.publishing.rendering import render_template
from bot.publishing.serving import run_serving, serving_requests
from bot.publishing.succession import point_predecessors, tag_release
from bot.publishing.upstream import Upstream
from bot.publishing.usage import is_chat_model
from bot.publishing.verification import request_for, run_verification
from bot.settings import Settings
from builders.spec import MANIFEST_NAME, BuildSpec, Manifest, ServingRecord, VerificationRecord
from state.models import ReleaseKind, ReleaseStatus

log = logging.getLogger(__name__)

Mode = Literal["repo", "pr"]
Approval = Literal["auto", "approval"]


@dataclass(frozen=True)
class PublishResult:
    """What publishing did; `status` and `kind` use the state's vocabulary so the bot can store them as is."""

    status: ReleaseStatus
    kind: ReleaseKind
    repo_id: str
    url: str
    key: str
    pr_number: int | None = None
    superseded: tuple[int, ...] = ()
    message: str = ""


class Publisher:
    """Turns build directories into releases on the Hub, politely and idempotently."""

    def __init__(
        self, hub: Hub, settings: Settings, former_names: Callable[[str], list[str]] | None = None
    ) -> None:
        """`former_names(upstream)`: the names the upstream had before the Hub moves the bot was told of
        (the store's `move` events), whose releases the one in a new repo succeeds."""
        self.hub = hub
        self.settings = settings
        self.web = settings.hf_endpoint.rstrip("/")
        self.former_names = former_names or (lambda upstream: [])

    @classmethod
    def from_settings(cls, settings: Settings) -> Publisher:
        return cls(Hub(endpoint=settings.hf_endpoint, token=settings.token()), settings)

    # ------------------------------------------------------------------------------------ who and where

    @cached_property
    def whoami(self) -> dict[str, Any]:
        return self.hub.whoami()

    @property
    def bot_name(self) -> str:
        return str(self.whoami["name"])

    @cached_property
    def lookup(self) -> ReleaseLookup:
        return ReleaseLookup(self.hub, self.bot_name)

    def repo_id_for(self, manifest: Manifest) -> str:
        """The release repo from the settings' name template (GPTQ or TensorRT-LLM)."""
        return self.repo_id_for_spec(manifest.require_spec())

    def repo_id_for_spec(self, spec: BuildSpec) -> str:
        """The same, known before the build (a fanned-out build's workers are told where to upload)."""
        template = (
            self.settings.gptq_repo_template if spec.format == "gptq" else self.settings.trtllm_repo_template
        )
        return release_repo_id(
            template,
            namespace=self.settings.namespace or self.bot_name,
            upstream=str(spec.repo_id),
            format_id=spec.format,
        )

    def approval_for(self, upstream: str, repo_id: str) -> Approval:
        """Per-repo approval mode (release repo first, then upstream), else the default."""
        per_repo = self.settings.approval_repos
        return per_repo.get(repo_id) or per_repo.get(upstream) or self.settings.approval

    def can_write(self, repo_id: str) -> bool | None:
        """Whether the token may push to repos of this namespace (None: a fine-grained token, unknown)."""
        namespace = repo_id.partition("/")[0]
        me = self.whoami
        role = (me.get("auth") or {}).get("accessToken", {}).get("role")
        if role == "read":
            return False
        writable_orgs = {o.get("name") for o in me.get("orgs") or [] if o.get("roleInOrg") != "read"}
        if namespace != me.get("name") and namespace not in writable_orgs:
            return False
        return True if role in (None, "write", "admin") else None

    # ------------------------------------------------------------------------------------------ publish

    def publish(
        self,
        build_dir: Path,
        *,
        mode: Mode | None = None,
        repo_id: str | None = None,
        approval: Approval | None = None,
    ) -> PublishResult:
        """Publish one build directory; returns where it went and in which state (see the module doc)."""
        build_dir = Path(build_dir)
        manifest = load_manifest(build_dir)
        check_artifacts(build_dir, manifest)  # before any Hub call: bad input costs nothing remote
        target = repo_id or self.repo_id_for(manifest)
        mode = mode or "repo"
        exists = self.hub.repo_exists(target)
        if mode == "pr" and not exists:
            raise UsageError(
                f"--mode pr needs an existing repo, and {target} does not exist (use --mode repo)"
            )
        previous = self._previous(target, exists)
        release = self._prepare(build_dir, manifest, target, previous)
        prs, found = self._on_hub(release, previous, exists)
        if isinstance(found, PublishResult):
            return found
        held = self._gate(release, found)
        if held is not None:
            return held
        approval = approval or self.approval_for(release.tag.upstream, target)
        self.hub.validate_card(release.card)
        result = self._release(
            release, exists, previous, prs, found, merge=mode == "repo" and approval == "auto"
        )
        if not exists:
            self._succeed(release, result)
        return result

    def _succeed(self, release: Release, result: PublishResult) -> None:
        """A release in a repo new to it (a renamed upstream, a changed naming template): the older release
        repos of its upstream and format point at it (`new_version`, bot/publishing/succession.py)."""
        if result.status not in (ReleaseStatus.OPEN, ReleaseStatus.PUBLISHED):
            return
        point_predecessors(
            self.hub,
            namespace=release.repo_id.partition("/")[0],
            upstream=release.tag.upstream,
            format_id=release.tag.format,
            successor=release.repo_id,
            writable=self.can_write(release.repo_id),
            former_names=self.former_names(release.tag.upstream),
        )

    def _previous(self, target: str, exists: bool) -> dict[str, Any] | None:
        """The manifest on the release repo's `main`, if any."""
        return self.hub.read_json(target, MANIFEST_NAME) if exists else None

    def _prepare(
        self,
        build_dir: Path,
        manifest: Manifest,
        repo_id: str,
        previous: dict[str, Any] | None,
        manifest_bytes: bytes | None = None,
    ) -> Release:
        """The release as it will go up: upstream facts (gating refused unless allowed), licences, card."""
        spec = manifest.require_spec()
        upstream = Upstream.from_hub(self.hub, str(spec.repo_id), str(spec.revision), endpoint=self.web)
        if upstream.gated and not self.settings.allow_gated:
            raise PublishError(
                f"{upstream.repo_id} is gated and allow_gated is off: its release is not published"
            )
        if previous and previous.get("key") == manifest.key and previous.get("verification"):
            # the same build, already verified on the Hub: its card carries that line, and so does this one
            manifest = manifest.model_copy(
                update={
                    "verification": VerificationRecord.model_validate(previous["verification"]),
                    "serving": manifest.serving
                    or [ServingRecord.model_validate(r) for r in previous.get("serving") or []],
                }
            )
        return prepare(
            build_dir,
            manifest,
            repo_id=repo_id,
            upstream=upstream,
            endpoint=self.web,
            byline=Byline(self.settings.publisher_name, self.settings.publisher_url),
            licences=tuple(
                licence_files(self.hub, upstream.repo_id, upstream.revision, upstream.licence_files)
            ),
            manifest_bytes=manifest_bytes,
        )

    def _on_hub(
        self, release: Release, previous: dict[str, Any] | None, exists: bool
    ) -> tuple[list[BotPR], PublishResult | BotPR | None]:
        """The bot's PRs on the repo, and what they settle: a final answer, the open PR to update, or none."""
        target = release.repo_id
        readme = self.hub.read_text(target, "README.md") if previous else None
        prs = self.lookup.bot_prs(target) if exists else []
        found = self.lookup.settle(release.tag, release.manifest, release.card, previous, readme, prs)
        if isinstance(found, Settled):
            return prs, self._result(release, found.status, found.pr, found.message)
        return prs, found

    # ------------------------------------------------------------------------------------------- steps

    def _release(
        self,
        release: Release,
        exists: bool,
        previous: dict[str, Any] | None,
        prs: list[BotPR],
        mine: BotPR | None,
        *,
        merge: bool,
        artifacts: bool = True,
    ) -> PublishResult:
        """Make sure the repo exists, fill a draft PR, then announce it (or merge it) and supersede.

        Without `artifacts` the draft already holds them (workers uploaded them) and only the card goes up.
        """
        target = release.repo_id
        writable = self._ensure_repo(release, exists)
        if merge and writable is False:
            if not self.settings.pr_fallback:
                raise NoWriteAccess(
                    f"the token of {self.bot_name} may not push to {target}, and pr_fallback is off"
                )
            merge = False
        description = pr_description(
            release,
            changed=what_changed(release, previous),
            reason="auto" if merge else "fallback" if writable is False else "approval",
            publisher_name=self.settings.publisher_name,
        )
        check_portable("the PR description", description)
        pr = mine.details if mine else self._open_pr(release, description)
        revision = f"refs/pr/{pr.num}"
        if artifacts:
            self._upload_artifacts(release, revision)
        commit = self._commit_card(release, revision)
        if self.settings.verify_uploads:
            release = self._verify(release, commit, revision, serve=artifacts)
            description = pr_description(
                release,
                changed=what_changed(release, previous),
                reason="auto" if merge else "fallback" if writable is False else "approval",
                publisher_name=self.settings.publisher_name,
            )
        first = mine or self._own_pr(target, pr.num)
        if first is not None and first.description != description:
            self.hub.edit_comment(target, pr.num, first.description_id, description)
        record = release.manifest.verification
        if record is not None and not record.ok:
            return self._hold(release, pr, record)
        status, message = self._announce(release, pr, merge)
        if writable is not False:
            tagged = self.hub.resolve_revision(
                target, "main" if status is ReleaseStatus.PUBLISHED else revision
            )
            tag_release(self.hub, target, tagged, release.tag.upstream, release.tag.revision)
        superseded = self._supersede(release, prs, pr if status is ReleaseStatus.OPEN else None)
        return self._result(release, status, pr, message, superseded)

    def _ensure_repo(self, release: Release, exists: bool) -> bool | None:
        """Create the release repo (or match its gating); whether the token may write it (`can_write`)."""
        target = release.repo_id
        writable = self.can_write(target)
        if not exists:
            if writable is False:
                raise NoWriteAccess(
                    f"the token of {self.bot_name} may not create repos in {target.partition('/')[0]}"
                )
            self._create(target, release.upstream)
        elif writable is not False:
            self._match_gating(target, release.upstream)
        return writable

    def _create(self, target: str, upstream: Upstream) -> None:
        try:
            self.hub.create_repo(target)
        except HubAuthError as e:
            raise NoWriteAccess(
                f"the token of {self.bot_name} may not create {target}: {e.server_message or e}"
            ) from e
        self._match_gating(target, upstream)

    def _match_gating(self, target: str, upstream: Upstream) -> None:
        """A gated base model's weights stay behind a gate: the release repo is gated the same way."""
        if not upstream.gated:
            return
        if self.hub.model_info(target).gated != upstream.gated:
            try:
                self.hub.update_repo_settings(target, gated=upstream.gated)
            except HubAuthError as e:
                raise NoWriteAccess(
                    f"{upstream.repo_id} is gated and the token may not gate {target}: not publishing"
                ) from e

    def _open_pr(self, release: Release, description: str) -> DiscussionWithDetails:
        """Open the draft PR. After a 5xx the Hub may have opened it anyway: look before trying again."""
        try:
            return self.hub.open_pull_request(release.repo_id, release.title, description)
        except HubAuthError as e:
            raise NoWriteAccess(
                f"the token of {self.bot_name} may not open a pull request on {release.repo_id}: "
                f"{e.server_message or e}"
            ) from e
        except HubUnavailable:
            again = self.lookup.open_pr(release.repo_id, release.tag.key)
            if again is not None:
                return again.details
            return self.hub.open_pull_request(release.repo_id, release.title, description)

    def _verify(self, release: Release, commit: str, revision: str, *, serve: bool) -> Release:
        """Download the release just committed, by id, in a worker; commit the outcome (manifest, card).

        With `serve` (a build published from this machine, whose SMs had no task of their own) this machine
        also runs each target SM's serving check on that commit."""
        request = request_for(
            release.repo_id,
            commit,
            release.manifest.require_spec(),
            endpoint=self.web,
            extra_files=[f.path for f in release.licences],
            chat=is_chat_model(release.manifest),
            envs_dir=self.settings.runtime_envs_folder(),
            family=release.upstream.family(),
        )
        record = run_verification(self.settings, request)
        log.info(
            "verification of %s at %s: %s", release.repo_id, commit[:12], "ok" if record.ok else "failed"
        )
        serving = release.manifest.serving
        if serve:
            spec = release.manifest.require_spec()
            asked = serving_requests(spec, release.repo_id, commit, list(spec.target_sms))
            serving = run_serving(self.settings, asked)
        verified = release.with_verification(record, serving)
        self.hub.create_commit(
            release.repo_id,
            [
                CommitOperationAdd("README.md", verified.card.encode()),
                CommitOperationAdd(MANIFEST_NAME, verified.manifest_bytes),
            ],
            commit_message=f"Record the verification of {commit[:12]} in the manifest and card",
            commit_description=f"Release key: {release.tag.key}\n\n{release.tag.marker()}",
            revision=revision,
        )
        return verified

    def _gate(self, release: Release, mine: BotPR | None) -> PublishResult | None:
        """The invariance gate before upload (bot/publishing/gate.py). A release that fails it is held: with
        no pull request yet, nothing is uploaded (`ReleaseHeld`, and no repo); a draft an earlier attempt
        opened stays a draft, with a comment saying why."""
        problems = gate_problems(self.hub, release.build_dir, release.manifest, release.upstream)
        if not problems:
            return None
        why = "\n".join(f"- {p}" for p in problems)
        if mine is None:
            raise ReleaseHeld(
                f"the release of {release.tag.upstream} is held: it is not its upstream's ("
                + "; ".join(problems[:3])
                + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
                + "); nothing was uploaded",
                problems,
            )
        self.hub.comment(
            release.repo_id,
            mine.details.num,
            f"The invariance gate holds this release: compared with `{release.tag.upstream}` at "
            f"`{release.tag.revision[:12]}`, it is not its upstream's, so nothing more is uploaded:\n\n{why}",
        )
        return self._result(
            release, ReleaseStatus.OPEN, mine.details, "held by the invariance gate: " + problems[0]
        )

    def _hold(self, release: Release, pr: Discussion, record: VerificationRecord) -> PublishResult:
        """A release that failed its check stays a draft, with a comment saying what failed."""
        failed = "\n".join(f"- **{c.name}**: {c.detail}" for c in record.failures)
        self.hub.comment(
            release.repo_id,
            pr.num,
            f"Verification after upload failed for `{record.revision[:12]}`, so this pull request stays a "
            f"draft:\n\n{failed}",
        )
        message = "verification after upload failed: " + "; ".join(c.name for c in record.failures)
        return self._result(release, ReleaseStatus.OPEN, pr, message)

    def _own_pr(self, repo_id: str, num: int) -> BotPR | None:
        return next((p for p in self.lookup.bot_prs(repo_id) if p.details.num == num), None)

    def _upload_artifacts(self, release: Release, revision: str) -> None:
        """Artifacts folder by folder (each resumable); the card and manifest follow in one last commit."""
        for group in release.groups:
            label = group.path_in_repo or "checkpoint"
            self.hub.upload_folder(
                release.repo_id,
                group.local_dir,
                path_in_repo=group.path_in_repo or None,
                allow_patterns=list(group.files),
                revision=revision,
                commit_message=f"Upload {label} ({release.format_display} of {release.tag.upstream})",
                commit_description=f"Release key: {release.tag.key}",
            )

    def _commit_card(self, release: Release, revision: str) -> str:
        """The card, the manifest and the upstream's licence files, in the last commit; its sha."""
        summary, description = release.commit_message()
        operations = [
            CommitOperationAdd("README.md", release.card.encode()),
            CommitOperationAdd(MANIFEST_NAME, release.manifest_bytes),
            *(CommitOperationAdd(f.path, f.content) for f in release.licences),
        ]
        return self.hub.create_commit(
            release.repo_id,
            operations,
            commit_message=summary,
            commit_description=description,
            revision=revision,
        ).oid

    def _announce(self, release: Release, pr: Discussion, merge: bool) -> tuple[ReleaseStatus, str]:
        """Every file is in: open the draft for review, or merge it (auto mode on the bot's own repo)."""
        if pr.status == "draft":
            self.hub.set_status(release.repo_id, pr.num, "open")
        if not merge:
            return ReleaseStatus.OPEN, "pull request open for review"
        try:
            self.hub.merge_pull_request(release.repo_id, pr.num)
        except HubAuthError as e:
            if not self.settings.pr_fallback:
                raise NoWriteAccess(
                    f"the token of {self.bot_name} may not merge into {release.repo_id}"
                ) from e
            return ReleaseStatus.OPEN, "no right to merge: pull request left open for the repo's maintainers"
        return ReleaseStatus.PUBLISHED, "published on main"

    def _supersede(self, release: Release, prs: list[BotPR], new_pr: Discussion | None) -> tuple[int, ...]:
        """Close the bot's open PRs of the same series for older upstream revisions, linking the new one."""
        new_url = new_pr.url if new_pr is not None else f"{self.web}/{release.repo_id}"
        closed = []
        for pr in self.lookup.superseded_by(release.tag, prs):
            old = pr.tag
            comment = render_template(
                "comment_superseded.md.j2",
                {
                    "new_url": new_url,
                    "upstream": old.upstream,
                    "old_revision": old.revision,
                    "new_revision": release.tag.revision,
                },
            )
            self.hub.set_status(release.repo_id, pr.details.num, "closed", comment=comment)
            closed.append(pr.details.num)
        return tuple(closed)

    def _result(
        self,
        release: Release,
        status: ReleaseStatus,
        pr: Discussion | None,
        message: str,
        superseded: tuple[int, ...] = (),
    ) -> PublishResult:
        merged_into_main = status is ReleaseStatus.PUBLISHED
        log.info(
            "release %s of %s: %s, %s", release.tag.key[:12], release.tag.upstream, status.value, message
        )
        return PublishResult(
            status=status,
            kind=ReleaseKind.REPO if pr is None or merged_into_main else ReleaseKind.PR,
            repo_id=release.repo_id,
            url=f"{self.web}/{release.repo_id}" if pr is None or merged_into_main else pr.url,
            key=release.tag.key,
            pr_number=pr.num if pr is not None else None,
            superseded=superseded,
            message=message,
        )
