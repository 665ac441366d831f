"""A release prepared on this machine, before any Hub call: the build checked, its files mapped to the repo
layout, and the texts (card, PR description, commit message) rendered.

A build directory becomes a release only when its manifest says the build succeeded and every artifact it
lists is on disk with the size and sha256 it records; anything else is a `BuildDirError` and nothing goes
to the Hub. Every release carries its `ReleaseTag` (bot/publishing/lookup.py) in the PR description and
the last commit's message, which is how the publisher finds its own earlier work.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import ValidationError

from bot.errors import BuildDirError, CardError
from bot.naming import display_format, with_article
from bot.publishing.cards import render_release_card, stamp_card
from bot.publishing.figures import artifact_folders, human_size, validation_rows
from bot.publishing.gptq_card import Byline
from bot.publishing.licences import LicenceFile
from bot.publishing.lookup import ReleaseTag, new_engine_sms
from bot.publishing.portable import machine_traces
from bot.publishing.rendering import render_template
from bot.publishing.upstream import Upstream
from bot.publishing.verification import verification_line
from builders.spec import MANIFEST_NAME, Manifest, ServingRecord, VerificationRecord

_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class UploadGroup:
    """One folder of artifacts, uploaded in one `upload_folder` call (a resumable unit)."""

    local_dir: Path
    path_in_repo: str
    files: tuple[str, ...]  # relative to local_dir
    size: int


@dataclass(frozen=True)
class Release:
    """Everything the publisher sends, prepared and checked locally."""

    build_dir: Path
    manifest: Manifest
    tag: ReleaseTag
    upstream: Upstream
    repo_id: str
    groups: tuple[UploadGroup, ...]
    card: str
    manifest_bytes: bytes
    licences: tuple[LicenceFile, ...] = ()
    endpoint: str = ""
    byline: Byline = Byline(None)

    @property
    def format_display(self) -> str:
        return display_format(self.manifest.require_spec().format)

    @property
    def title(self) -> str:
        return f"{self.format_display} release of {self.tag.upstream} at {self.tag.revision[:7]}"

    def with_verification(self, record: VerificationRecord, serving: list[ServingRecord]) -> Release:
        """The release with the post-upload checks in its manifest and card: the verification line, and the
        serving checks' "Tested on" table."""
        manifest = self.manifest.model_copy(update={"verification": record, "serving": serving})
        card = stamp_card(
            render_release_card(
                manifest, self.upstream, repo_id=self.repo_id, endpoint=self.endpoint, byline=self.byline
            )
        )
        data = json.dumps(manifest.model_dump(mode="json"), indent=2) + "\n"
        return replace(self, manifest=manifest, card=card, manifest_bytes=data.encode())

    def commit_message(self) -> tuple[str, str]:
        """Summary and description of the commit that adds the card and manifest: the release's last step."""
        return (
            f"Add {self.format_display} card and manifest for {self.tag.upstream}@{self.tag.revision[:12]}",
            f"Release key: {self.tag.key}\n\n{self.tag.marker()}",
        )


def load_manifest(build_dir: Path) -> Manifest:
    """The build's manifest, if it is complete and the build succeeded; else a one-line BuildDirError."""
    path = Path(build_dir) / MANIFEST_NAME
    if not Path(build_dir).is_dir():
        raise BuildDirError(f"not a build directory: {build_dir}")
    try:
        manifest = Manifest.read(path)
    except FileNotFoundError:
        raise BuildDirError(f"no {MANIFEST_NAME} in {build_dir}: the build did not finish") from None
    except (ValidationError, ValueError, OSError) as e:
        first = e.errors()[0] if isinstance(e, ValidationError) else None
        where = ".".join(str(p) for p in first["loc"]) + ": " + first["msg"] if first else str(e)
        raise BuildDirError(f"{path} is not a complete manifest ({where})") from None
    if manifest.status != "succeeded":
        error = manifest.errors[0].message if manifest.errors else f"status is {manifest.status}"
        raise BuildDirError(f"the build in {build_dir} did not succeed: {error}")
    if manifest.spec is None or not manifest.key:
        raise BuildDirError(f"the manifest in {build_dir} records no build spec or key")
    if manifest.spec.repo_id is None or manifest.spec.revision is None:
        raise BuildDirError(
            f"the build in {build_dir} is of a local folder: a release needs an upstream Hub repo to name as "
            "base_model and inherit the licence from"
        )
    if manifest.quantization is None or not manifest.artifacts:
        raise BuildDirError(f"the manifest in {build_dir} records no quantized artifacts")
    return manifest


def check_artifacts(build_dir: Path, manifest: Manifest) -> None:
    """Every artifact on disk with the recorded size and sha256: never publish what the build did not make."""
    for artifact in manifest.artifacts:
        path = build_dir / artifact.path
        if not path.is_file():
            raise BuildDirError(
                f"artifact {artifact.path} listed in the manifest is missing from {build_dir}"
            )
        if path.stat().st_size != artifact.size:
            raise BuildDirError(f"artifact {artifact.path} has changed since the build (size differs)")
        digest = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(_HASH_CHUNK):
                digest.update(chunk)
        if digest.hexdigest() != artifact.sha256:
            raise BuildDirError(f"artifact {artifact.path} has changed since the build (sha256 differs)")


def upload_groups(build_dir: Path, manifest: Manifest) -> tuple[UploadGroup, ...]:
    """The artifacts by folder; the build's output dir already has the repo's layout (the seed's
    `trt-llm/checkpoints/…` and `trt-llm/engines/<label>/…`, or a GPTQ checkpoint at the root)."""
    groups = []
    for folder, artifacts in artifact_folders(manifest).items():
        files = tuple(str(PurePosixPath(a.path).relative_to(folder)) if folder else a.path for a in artifacts)
        groups.append(UploadGroup(build_dir / folder, folder, files, sum(a.size for a in artifacts)))
    return tuple(groups)


def prepare(
    build_dir: Path,
    manifest: Manifest,
    *,
    repo_id: str,
    upstream: Upstream,
    endpoint: str,
    byline: Byline,
    licences: tuple[LicenceFile, ...] = (),
    manifest_bytes: bytes | None = None,
) -> Release:
    """Render the card and map the files of a build already checked (`load_manifest`, `check_artifacts`).

    `manifest_bytes` is the manifest to publish when it is not the build dir's own (a fanned-out build's,
    completed with the engine records of other workers)."""
    build_dir = Path(build_dir)
    card = stamp_card(
        render_release_card(manifest, upstream, repo_id=repo_id, endpoint=endpoint, byline=byline)
    )
    check_portable("the card", card)
    return Release(
        build_dir=build_dir,
        manifest=manifest,
        tag=ReleaseTag.of(manifest),
        upstream=upstream,
        repo_id=repo_id,
        groups=upload_groups(build_dir, manifest),
        card=card,
        manifest_bytes=manifest_bytes or (build_dir / MANIFEST_NAME).read_bytes(),
        licences=licences,
        endpoint=endpoint,
        byline=byline,
    )


def check_portable(what: str, text: str) -> None:
    """Refuse to publish a text the bot wrote that names this machine (a path, the host): a bug to fix."""
    traces = machine_traces(text)
    if traces:
        raise CardError(f"{what} would publish this machine's {', '.join(traces[:3])}: not publishing")


def what_changed(release: Release, previous: dict[str, Any] | None) -> str:
    """One sentence for the PR description, comparing with the manifest on the repo's main branch."""
    fmt, upstream = release.format_display, release.tag.upstream
    if not previous:
        return f"First {fmt} release of {upstream} in this repository."
    recorded = previous.get("spec")
    spec = recorded if isinstance(recorded, dict) else {}
    if spec.get("repo_id") != upstream or spec.get("format") != release.tag.format:
        return f"Adds {with_article(fmt)} release of {upstream} to this repository."
    old_revision = spec.get("revision")
    if old_revision and old_revision != release.tag.revision:
        return (
            f"Updates the {fmt} release to upstream revision `{release.tag.revision[:12]}` "
            f"(was `{str(old_revision)[:12]}`)."
        )
    new_sms = new_engine_sms(release.manifest, previous)
    if new_sms:
        return f"Adds {fmt} engines for {', '.join(f'sm{s}' for s in sorted(new_sms))}."
    if previous.get("key") == release.tag.key:
        return f"Updates the card of the {fmt} release (same build)."
    return f"Rebuilds the {fmt} release of the same revision with a different recipe or toolchain."


def pr_description(release: Release, *, changed: str, reason: str, publisher_name: str) -> str:
    """The PR's description: what changed, upstream sha, formats and SMs, validation, how to reproduce.

    `reason` says why it is a PR: `approval` (a maintainer decides), `fallback` (no push rights), `auto`
    (the bot merges it itself once complete, so that `main` changes in one step).
    """
    manifest, tag = release.manifest, release.tag
    versions = [f"{name} {version}" for name, _, version in _toolchain(manifest)]
    built = sorted(e.sm for e in manifest.engines if e.status == "built")
    checkpoint_sms = [s for s in manifest.require_spec().target_sms if s not in built]
    device = manifest.device
    record = manifest.verification
    files = sum(len(g.files) for g in release.groups)
    size = sum(g.size for g in release.groups)
    return render_template(
        "pr_description.md.j2",
        {
            "marker": tag.marker(),
            "what_changed": changed,
            "upstream": tag.upstream,
            "upstream_url": release.upstream.url,
            "revision": tag.revision,
            "format": tag.format,
            "format_display": release.format_display,
            "engine_sms": ", ".join(f"sm{s}" for s in built) or None,
            "checkpoint_sms": ", ".join(f"sm{s}" for s in checkpoint_sms) or None,
            "toolchain": ", ".join(versions) or None,
            "device": (device.name if device.kind == "cuda" else f"CPU ({device.name})") if device else None,
            "validation_rows": validation_rows(manifest),
            "files_summary": f"{files} files, {human_size(size)}",
            "key": tag.key,
            "reproduce": _reproduce(manifest),
            "spec_json": json.dumps(_portable_spec(manifest), indent=2),
            "reason": reason,
            "publisher_name": publisher_name,
            "verification_line": verification_line(record) if record else None,
        },
    )


def _portable_spec(manifest: Manifest) -> dict[str, Any]:
    """The spec with this machine's folders replaced by relative ones, so anyone can run it."""
    spec = manifest.require_spec().model_dump(mode="json")
    spec.update(work_dir="work", output_dir="out", cache_dir=None, toolchain=None)
    dataset = spec["recipe"]["calib_dataset"]
    if "/" in dataset or Path(dataset).suffix:
        spec["recipe"]["calib_dataset"] = PurePosixPath(dataset).name
    if spec["validation"].get("eval_text"):
        spec["validation"]["eval_text"] = PurePosixPath(spec["validation"]["eval_text"]).name
    return spec


def _toolchain(manifest: Manifest) -> list[tuple[str, str, str]]:
    """(display name, pip distribution, version) of the tools that made this format's artifact."""
    toolchain = manifest.toolchain
    producer = (
        ("GPTQModel", "gptqmodel", "gptqmodel")
        if manifest.require_spec().format == "gptq"
        else ("ModelOpt", "nvidia-modelopt[hf]", "modelopt")
    )
    tools = [
        producer,
        ("TensorRT-LLM", "", "tensorrt_llm"),
        ("transformers", "transformers", "transformers"),
        ("torch", "torch", "torch"),
        ("CUDA", "", "cuda"),
    ]
    return [
        (name, dist, getattr(toolchain, attr))
        for name, dist, attr in tools
        if toolchain and getattr(toolchain, attr)
    ]


def _reproduce(manifest: Manifest) -> str:
    # A local version label (`2.13.0+cpu`) names a wheel index, not a PyPI release: pin the release.
    pins = [f"{dist}=={version.split('+')[0]}" for _, dist, version in _toolchain(manifest) if dist]
    lines = ["# with quantbot installed (it provides `python -m builders`):"]
    lines += [f"pip install {' '.join(pins)}"] if pins else []
    lines += ["# save the build spec below as spec.json, then:", "python -m builders run spec.json"]
    return "\n".join(lines)
