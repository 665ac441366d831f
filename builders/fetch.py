"""fetch: the upstream snapshot at the pinned sha, into a cache that all builds share.

Every build of one revision downloads into the same huggingface_hub cache (the spec's ``cache_dir`` or
HF's default), so N formats of one revision cost one download. Only safetensors weights are fetched
unless the spec allows pickle and the repo has nothing else; free disk is checked against what is still
missing from the cache before anything is downloaded.

The Hub down, failing (5xx) or rate limiting (429) is waited out, with backoff, for up to `RETRY_FOR_S`
(huggingface_hub resumes partial downloads); only then does the stage fail, as `hub_unavailable`, which the
bot retries later by itself. Not found, gated and pickle-only repos fail at once.
"""

from __future__ import annotations

import fnmatch
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from builders.calibration import fetch_calibration
from builders.failures import HUB_STATUSES, HUB_UNAVAILABLE, BuildFailure, human_bytes
from builders.invariance import CODE_PATTERNS, FETCH_PATTERNS, PICKLE_PATTERNS
from builders.spec import BuildSpec

RETRY_FOR_S = 120.0  # how long a Hub outage is waited out before the stage fails


def fetch(spec: BuildSpec, progress: Callable[[float, str], None]) -> dict[str, Any]:
    """Read the calibration data first (it fails fastest), then make the model's snapshot available."""
    calibration = fetch_calibration(spec, progress)
    if spec.local_dir is not None:
        found = _local(spec, spec.local_dir)
    elif spec.repo_id is None or spec.revision is None:  # the spec's validator rules this out
        raise BuildFailure(
            "invalid_spec", "the spec names neither local_dir nor repo_id@revision", bad_input=True
        )
    else:
        found = _hub(spec, spec.repo_id, spec.revision, progress)
    outputs = [calibration["rows_file"]] if "rows_file" in calibration else []
    return found | {"calibration": calibration, "outputs": outputs}


def _local(spec: BuildSpec, local_dir: Path) -> dict[str, Any]:
    root = local_dir.resolve()
    if not (root / "config.json").is_file():
        raise BuildFailure("not_a_model", f"{root} has no config.json", bad_input=True)
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    _weights_allowed(files, spec, str(root))
    return {
        "snapshot_dir": str(root),
        "files": files,
        "total_bytes": sum((root / f).stat().st_size for f in files),
        "downloaded_bytes": 0,
    }


def _weights_allowed(files: list[str], spec: BuildSpec, where: str) -> list[str]:
    """The download patterns for this repo; fails when its only weights are pickles and pickle is off."""
    patterns = FETCH_PATTERNS + (CODE_PATTERNS if spec.trust_remote_code else [])
    if any(f.endswith(".safetensors") for f in files):
        return patterns
    pickles = [f for f in files if any(fnmatch.fnmatch(f, p) for p in PICKLE_PATTERNS)]
    if not pickles:
        raise BuildFailure("no_weights", f"{where} has no weight files (*.safetensors)", bad_input=True)
    if not spec.allow_pickle:
        raise BuildFailure(
            "no_safetensors",
            f"{where} has no safetensors weights, only pickle files ({', '.join(pickles[:3])}); "
            "pickle weights can run code when loaded, so they are refused unless the spec sets allow_pickle",
            bad_input=True,
        )
    return patterns + PICKLE_PATTERNS


def _hub(
    spec: BuildSpec, repo_id: str, revision: str, progress: Callable[[float, str], None]
) -> dict[str, Any]:
    import httpx
    from huggingface_hub import errors as hf_errors

    where = f"{repo_id}@{revision[:12]}"
    give_up_at, delay = time.monotonic() + RETRY_FOR_S, 1.0
    while True:
        try:
            return _download(spec, repo_id, revision, progress, where)
        except (hf_errors.HfHubHTTPError, hf_errors.LocalEntryNotFoundError, httpx.TransportError) as e:
            status = getattr(getattr(e, "response", None), "status_code", None)
            if status is not None and status not in HUB_STATUSES:
                raise BuildFailure("hub_error", f"could not download {where}: {e}") from e
            if time.monotonic() + delay > give_up_at:
                raise BuildFailure(HUB_UNAVAILABLE, f"could not download {where}: {e}") from e
            reason = str(status or type(e).__name__)
            progress(0.05, f"the Hub is unavailable ({reason}); trying again in {delay:.0f} s")
            time.sleep(delay)
            delay = min(delay * 2, 30.0)
        except OSError as e:  # the cache's disk, not the Hub
            raise BuildFailure("download_failed", f"could not download {where}: {e}") from e


def _download(
    spec: BuildSpec, repo_id: str, revision: str, progress: Callable[[float, str], None], where: str
) -> dict[str, Any]:
    """One try at the snapshot; Hub failures that may pass are left to the caller's retry."""
    from huggingface_hub import HfApi, snapshot_download, try_to_load_from_cache
    from huggingface_hub import errors as hf_errors

    cache_dir = str(spec.cache_dir) if spec.cache_dir else None
    try:
        info = HfApi().model_info(repo_id, revision=revision, files_metadata=True)
        sizes = {s.rfilename: s.size or 0 for s in info.siblings or []}
        patterns = _weights_allowed(sorted(sizes), spec, where)
        wanted = {f: n for f, n in sizes.items() if any(fnmatch.fnmatch(f, p) for p in patterns)}
        missing = {
            f: n
            for f, n in wanted.items()
            if not isinstance(try_to_load_from_cache(repo_id, f, cache_dir=cache_dir, revision=revision), str)
        }
        need = sum(missing.values())
        _check_disk(spec, need)
        progress(0.1, f"downloading {len(missing)} of {len(wanted)} files ({human_bytes(need)}) of {where}")
        snapshot = snapshot_download(repo_id, revision=revision, cache_dir=cache_dir, allow_patterns=patterns)
    except hf_errors.RevisionNotFoundError as e:
        raise BuildFailure(
            "revision_not_found", f"revision {revision} does not exist in {repo_id}", bad_input=True
        ) from e
    except hf_errors.GatedRepoError as e:
        raise BuildFailure("gated", f"{repo_id} is gated and this token has no access", bad_input=True) from e
    except hf_errors.RepositoryNotFoundError as e:
        raise BuildFailure("repo_not_found", f"{repo_id} does not exist or is private", bad_input=True) from e
    return {
        "snapshot_dir": snapshot,
        "files": sorted(wanted),
        "total_bytes": sum(wanted.values()),
        "downloaded_bytes": need,
    }


def _check_disk(spec: BuildSpec, need: int) -> None:
    """Fail before downloading when the cache's disk cannot hold the missing files plus the reserve."""
    probe = Path(spec.cache_dir) if spec.cache_dir else _default_cache()
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free - need < spec.disk_reserve_bytes:
        raise BuildFailure(
            "disk_full",
            f"not enough disk at {probe}: the download needs {human_bytes(need)} and "
            f"{human_bytes(spec.disk_reserve_bytes)} must stay free, but only {human_bytes(free)} is free",
        )


def _default_cache() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)
