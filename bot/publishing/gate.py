"""The invariance gate before upload, as the publisher runs it: a release goes up only when its build
recorded the builder's gate as passed (builders/gate.py: files, config, tokenizer and chat template,
quantized scope, size) and its files, as they are about to be uploaded, are still the upstream's at the
pinned revision on the Hub: the metadata files byte for byte, config.json but for the keys quantization adds
(builders/invariance.py).

The second half catches what happened to a build directory after its build (a re-saved tokenizer, a config
edited by hand, a build made before the gate existed). It reads bytes and JSON only, so it runs in the bot.
"""

from __future__ import annotations

import json
from pathlib import Path

from bot.hub import Hub
from bot.publishing.upstream import Upstream
from builders.invariance import (
    CONFIG,
    GATE_CHECKS,
    config_problems,
    file_problems,
    metadata_files,
    stored_dtype,
)
from builders.spec import Manifest


def gate_problems(hub: Hub, build_dir: Path, manifest: Manifest, upstream: Upstream) -> list[str]:
    """Why the release of this build may not go up (empty: it may)."""
    problems = _recorded(manifest)
    quantization, spec = manifest.quantization, manifest.require_spec()
    if quantization is None or quantization.checkpoint is None or quantization.checkpoint_kind is None:
        return [*problems, "the manifest records no checkpoint"]
    names = metadata_files(upstream.files, spec.trust_remote_code)
    originals = {name: hub.download(upstream.repo_id, name, revision=upstream.revision) for name in names}
    root = Path(build_dir) / quantization.checkpoint
    problems += file_problems(originals, root, quantization.checkpoint_kind)
    legacy = quantization.legacy_checkpoint
    if legacy:
        problems += [
            f"{legacy}/{p}" for p in file_problems(originals, Path(build_dir) / legacy, "trtllm_legacy")
        ]
    original = json.loads(hub.download(upstream.repo_id, CONFIG, revision=upstream.revision).read_text())
    release = json.loads((root / CONFIG).read_text(encoding="utf-8"))
    problems += [f"{CONFIG}: {p}" for p in config_problems(original, release, stored_dtype(root))]
    return problems


def _recorded(manifest: Manifest) -> list[str]:
    """The build's own gate: every check of it recorded, and passed."""
    checks = {c.name: c for c in (manifest.validation.checks if manifest.validation else [])}
    missing = [name for name in GATE_CHECKS if name not in checks]
    if missing:
        return ["the build records no invariance gate (it was built before quantbot had one): build it again"]
    return [f"{name}: {checks[name].detail}" for name in GATE_CHECKS if not checks[name].ok]
