"""The manifest as published: nothing of the machine that built it (no absolute path, user or host name).

The stage records in the work dir keep absolute paths (a rerun needs them); the manifest in the output
dir, which is uploaded with the release, gets folders relative to the repo, file names instead of paths,
the snapshot relative to the HF cache, and no stage detail that only names a place on this machine.
Whatever absolute path is left in a message (an error naming a file) is rewritten to a placeholder.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
from pathlib import Path, PurePosixPath
from typing import Any

from builders.spec import BuildSpec

# Stage details that only say where something lies on this machine; the manifest does not need them.
_LOCAL_DETAILS = frozenset(
    {"outputs", "snapshot_dir", "state_file", "checkpoint_dir", "legacy_checkpoint", "rows_file"}
)


def portable_manifest(data: dict[str, Any], spec: BuildSpec | None) -> dict[str, Any]:
    """``Manifest.model_dump(mode="json")`` made fit to publish."""
    if data.get("spec"):
        data["spec"] = portable_spec(data["spec"])
    for stage in data.get("stages", []):
        stage["details"] = _without_local(stage.get("details") or {})
    source = data.get("source") or {}
    if source.get("snapshot_dir"):
        source["snapshot_dir"] = _cache_relative(source["snapshot_dir"], spec)
    if source.get("local_dir"):
        source["local_dir"] = PurePosixPath(source["local_dir"]).name
    return _replace_roots(data, host_roots(spec))


def portable_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records a worker hands back to be published (serving checks): the folders they name rewritten."""
    replaced: list[dict[str, Any]] = _replace_roots(records, host_roots(None))
    return replaced


def portable_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec with this machine's folders replaced: anyone can run it from a folder of their own."""
    spec = dict(spec, work_dir="work", output_dir=".", cache_dir=None, toolchain=None)
    if spec.get("local_dir"):
        spec["local_dir"] = PurePosixPath(spec["local_dir"]).name
    recipe = dict(spec["recipe"])
    if Path(recipe["calib_dataset"]).is_absolute() or Path(recipe["calib_dataset"]).expanduser().exists():
        recipe["calib_dataset"] = Path(recipe["calib_dataset"]).name
    spec["recipe"] = recipe
    validation = dict(spec["validation"])
    if validation.get("eval_text"):
        validation["eval_text"] = PurePosixPath(validation["eval_text"]).name
    spec["validation"] = validation
    return spec


def host_roots(spec: BuildSpec | None) -> list[tuple[str, str]]:
    """(absolute folder, what it becomes) for every folder of this machine a message may name, longest
    first so that the most specific one wins."""
    roots: list[tuple[str, str]] = []
    if spec is not None:
        roots += [(str(Path(spec.output_dir).resolve()), "."), (str(Path(spec.work_dir).resolve()), "<work>")]
        if spec.cache_dir:
            roots.append((str(Path(spec.cache_dir).resolve()), "<hf-cache>"))
        if spec.local_dir:
            roots.append((str(Path(spec.local_dir).resolve()), f"<{Path(spec.local_dir).name}>"))
    roots.append((str(_hf_cache()), "<hf-cache>"))
    import builders

    roots.append((str(Path(builders.__file__).resolve().parent), "<builders>"))
    roots.append((str(Path.home()), "~"))
    return sorted({r for r in roots if len(r[0]) > 1}, key=lambda r: -len(r[0]))


def machine_names() -> list[str]:
    """The user and host names of this machine, as a scan for leaks looks for them."""
    names = {socket.gethostname(), socket.getfqdn()}
    with contextlib.suppress(KeyError, OSError):  # no passwd entry: no user name to leak
        names.add(getpass.getuser())
    return sorted(n for n in names if n and n not in ("localhost", "root"))


def _without_local(details: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in details.items() if k not in _LOCAL_DETAILS}


def _cache_relative(snapshot: str, spec: BuildSpec | None) -> str:
    """``models--org--name/snapshots/<sha>`` for a Hub snapshot; the folder's name for a local model."""
    path = Path(snapshot)
    for cache in ([Path(spec.cache_dir)] if spec and spec.cache_dir else []) + [_hf_cache()]:
        try:
            return path.resolve().relative_to(cache.resolve()).as_posix()
        except ValueError:
            continue
    return path.name


def _hf_cache() -> Path:
    from huggingface_hub import constants

    return Path(os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE)


def _replace_roots(node: Any, roots: list[tuple[str, str]]) -> Any:
    if isinstance(node, str):
        for root, placeholder in roots:
            if root in node:
                node = node.replace(root, placeholder)
        return node
    if isinstance(node, dict):
        return {k: _replace_roots(v, roots) for k, v in node.items()}
    if isinstance(node, list):
        return [_replace_roots(v, roots) for v in node]
    return node
