"""The invariance gate before upload, as the publisher runs it: a release goes up only when its build
recorded the builder's gate as passed (builders/gate.py: files, config, tokenizer and chat template,
quantized scope, size) and its files, as they are about to be uploaded, are still the upstream's at the
pinned revision on the Hub: the metadata files byte for byte, at the root and in a legacy TensorRT-LLM
checkpoint; config.json at the root but for the keys quantization adds, or as it is where the checkpoint is
the legacy one (int8_sq) (builders/invariance.py).

The second half catches what happened to a build directory after its build (a re-saved tokenizer, a config
edited by hand, a build made before the gate existed). It reads bytes and JSON only, so it runs in the bot.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bot.hub import Hub
from bot.publishing.upstream import Upstream
from builders.invariance import (
    CONFIG,
    GATE_CHECKS,
    file_problems,
    metadata_files,
    root_config_problems,
    stored_dtype,
)
from builders.spec import Manifest

WeightsDtype = Callable[[str], str | None]
"""The stored dtype of the weights in a folder of the release, given relative to it (see
`builders.invariance.stored_dtype`); ValueError where a weights file is not one."""


def gate_problems(
    hub: Hub,
    build_dir: Path,
    manifest: Manifest,
    upstream: Upstream,
    weights_dtype: WeightsDtype | None = None,
) -> list[str]:
    """Why the release of this build may not go up (empty: it may). The weights' dtype is read from their
    files in `build_dir`, unless `weights_dtype` reads it elsewhere (re-verification: from the Hub's headers,
    so the weights need not be downloaded for the gate)."""
    problems = _recorded(manifest)
    quantization, spec = manifest.quantization, manifest.require_spec()
    if quantization is None or quantization.checkpoint is None or quantization.checkpoint_kind is None:
        return [*problems, "the manifest records no checkpoint"]
    kind, root = quantization.checkpoint_kind, Path(build_dir)
    names = metadata_files(upstream.files, spec.trust_remote_code)
    originals = {name: hub.download(upstream.repo_id, name, revision=upstream.revision) for name in names}
    problems += file_problems(originals, root, kind)
    legacy = quantization.legacy_checkpoint
    if legacy:
        problems += [f"{legacy}/{p}" for p in file_problems(originals, root / legacy, "trtllm_legacy")]
    try:
        dtype = (weights_dtype or (lambda folder: stored_dtype(root / folder)))(quantization.checkpoint)
    except ValueError as e:  # a weights file that is not one: what config.json may say of it is unknown
        return [*problems, str(e)]
    original = hub.download(upstream.repo_id, CONFIG, revision=upstream.revision)
    problems += [f"{CONFIG}: {p}" for p in root_config_problems(original, root / CONFIG, kind, dtype)]
    return problems


def _recorded(manifest: Manifest) -> list[str]:
    """The build's own gate: every check of it recorded, and passed."""
    checks = {c.name: c for c in (manifest.validation.checks if manifest.validation else [])}
    missing = [name for name in GATE_CHECKS if name not in checks]
    if missing:
        return ["the build records no invariance gate (it was built before quantbot had one): build it again"]
    return [f"{name}: {checks[name].detail}" for name in GATE_CHECKS if not checks[name].ok]
