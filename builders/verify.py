"""``python -m builders verify REQUEST.json RESULT.json``: check a release as its users will get it.

The publisher runs this in a worker after its last commit (the bot process never imports transformers): the
release is downloaded from the Hub at the committed revision with the real client, every file is checked
against manifest.json, the config is loaded by repo id with `AutoConfig` (no remote code), each runtime's
detection rule (runtimes.yaml) is applied to the downloaded files, the release and its upstream are read
under the transformers line of every runtime that loads the format (its RoPE and every other config value,
its vocabulary, the token ids of a sample text, its special tokens, its chat template: builders/readback.py,
in side environments of builders/runtime_envs.py), and the card's own snippet is run where this machine can
run it. The outcome is a `VerificationRecord`; a failed check is a result, not a crash.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from builders import readback, runtime_envs
from builders.artifacts import sha256_file
from builders.failures import HUB_UNAVAILABLE, BuildFailure, hub_caused
from builders.invariance import CODE_PATTERNS, FETCH_PATTERNS
from builders.spec import (
    EXIT_HUB_FAILED,
    MANIFEST_NAME,
    Check,
    LineCheck,
    RuntimeLine,
    VerificationRecord,
    VerifyRequest,
    installed_toolchain,
    utcnow,
    write_json_atomic,
)

# Files a release holds beside the build's artifacts: the card, the manifest, the Hub's LFS rules.
RELEASE_FILES = frozenset({"README.md", MANIFEST_NAME, ".gitattributes"})
_OUTPUT_CHARS = 400


def verify(request: VerifyRequest) -> VerificationRecord:
    """Download, hash, load the config, detect, run the snippet; every step one `Check`."""
    os.environ["HF_ENDPOINT"] = request.endpoint  # before huggingface_hub reads its constants
    with tempfile.TemporaryDirectory(prefix="quantbot-verify-") as tmp:
        root = Path(tmp)
        checks: list[Check] = []
        local, download = _download(request, root / "release")
        checks.append(download)
        files = 0
        runtimes: list[str] = []
        lines: list[LineCheck] = []
        output, not_run = None, None
        if local is not None:
            hashed, files = _hashes(local, request.extra_files)
            checks.append(hashed)
            checks.append(_autoconfig(request, root / "config-cache"))
            runtimes, detection = _detect_all(local, request.rules)
            checks.append(detection)
            lines = read_under_lines(request, local, root / "upstream")
            output, not_run, ran = _snippet(request, root / "snippet")
            if ran is not None:
                checks.append(ran)
        return VerificationRecord(
            ok=all(c.ok for c in checks) and all(x.ok is not False for x in lines),
            repo_id=request.repo_id,
            revision=request.revision,
            files=files,
            checks=checks,
            runtimes=runtimes,
            lines=lines,
            output=output,
            not_run=not_run,
            at=utcnow(),
        )


def _download(request: VerifyRequest, target: Path) -> tuple[Path | None, Check]:
    from huggingface_hub import snapshot_download

    try:
        path = snapshot_download(
            request.repo_id,
            revision=request.revision,
            local_dir=target,
            endpoint=request.endpoint,
            token=os.environ.get("HF_TOKEN") or None,
        )
    except Exception as e:  # any Hub or network error is the check's result, unless the Hub may recover
        if hub_caused(e):
            raise BuildFailure(
                HUB_UNAVAILABLE, f"the Hub failed the download: {type(e).__name__}: {e}"
            ) from e
        return None, Check(name="download", ok=False, detail=f"{type(e).__name__}: {e}"[:_OUTPUT_CHARS])
    return Path(path), Check(name="download", ok=True, detail=f"snapshot_download at {request.revision[:12]}")


def release_files(local: Path) -> list[str]:
    """Every file of a downloaded release, as repo paths (huggingface_hub's own `.cache/` left out)."""
    return sorted(
        p.relative_to(local).as_posix()
        for p in local.rglob("*")
        if p.is_file() and p.relative_to(local).parts[0] != ".cache"
    )


def _hashes(local: Path, extra_files: list[str]) -> tuple[Check, int]:
    """Every artifact manifest.json lists is there with its size and sha256, and nothing unlisted is."""
    found = release_files(local)
    try:
        manifest = json.loads((local / MANIFEST_NAME).read_text(encoding="utf-8"))
        artifacts = {a["path"]: a for a in manifest["artifacts"]}
    except (OSError, ValueError, KeyError, TypeError) as e:
        return Check(name="sha256", ok=False, detail=f"{MANIFEST_NAME} unreadable: {e}"), len(found)
    problems = []
    for path, artifact in artifacts.items():
        file = local / path
        if not file.is_file():
            problems.append(f"{path} missing")
        elif file.stat().st_size != artifact["size"] or sha256_file(file) != artifact["sha256"]:
            problems.append(f"{path} differs from {MANIFEST_NAME}")
    unlisted = [f for f in found if f not in artifacts and f not in RELEASE_FILES | set(extra_files)]
    problems += [f"{f} is not in {MANIFEST_NAME}" for f in unlisted]
    detail = "; ".join(problems) if problems else f"{len(artifacts)} artifacts match {MANIFEST_NAME}"
    return Check(name="sha256", ok=not problems, detail=detail[:_OUTPUT_CHARS]), len(found)


def _autoconfig(request: VerifyRequest, cache: Path) -> Check:
    """`AutoConfig.from_pretrained(repo_id)`: what every runtime does first, by id, not from a folder."""
    from huggingface_hub import constants
    from transformers import AutoConfig

    if constants.ENDPOINT.rstrip("/") != request.endpoint.rstrip("/"):
        detail = f"the worker's HF_ENDPOINT is {constants.ENDPOINT}, not the release's Hub"
        return Check(name="AutoConfig", ok=False, detail=detail)
    try:
        config = AutoConfig.from_pretrained(
            request.repo_id, revision=request.revision, cache_dir=cache, trust_remote_code=False
        )
    except Exception as e:  # the error is the result
        return Check(name="AutoConfig", ok=False, detail=f"{type(e).__name__}: {e}"[:_OUTPUT_CHARS])
    quant = getattr(config, "quantization_config", None)
    method = quant.get("quant_method") if isinstance(quant, dict) else getattr(quant, "quant_method", None)
    detail = f"{type(config).__name__} (model_type {config.model_type}"
    detail += f", quant_method {method})" if method else ")"
    return Check(name="AutoConfig", ok=True, detail=detail)


def _lookup(data: Any, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def matches(local: Path, rule: list[dict[str, Any]]) -> bool:
    """Whether a release folder satisfies one runtime's detection rule (every condition holds)."""
    for condition in rule:
        file = local / condition["file"]
        if not file.is_file():
            return False
        if condition.get("key"):
            try:
                value = _lookup(json.loads(file.read_text(encoding="utf-8")), condition["key"])
            except (OSError, ValueError):
                return False
            if value not in condition["values"]:
                return False
    return True


def _detect_all(local: Path, rules: dict[str, list[dict[str, Any]]]) -> tuple[list[str], Check]:
    """The runtimes the table says load this format must all recognise it in the downloaded files."""
    recognised = [runtime for runtime, rule in rules.items() if matches(local, rule)]
    missing = [runtime for runtime in rules if runtime not in recognised]
    detail = f"recognised by {', '.join(recognised) or 'no runtime'}"
    if missing:
        detail += f"; not by {', '.join(missing)} (files or keys they read are absent)"
    return recognised, Check(name="runtime detection", ok=bool(rules) and not missing, detail=detail)


def read_under_lines(request: VerifyRequest, release: Path, upstream: Path) -> list[LineCheck]:
    """The release and its upstream read under each runtime's transformers line, compared: the builder's own
    line in this process, every other one in its side environment (builders/runtime_envs.py)."""
    if not request.lines:
        return []
    try:
        _download_upstream(request, upstream)
    except Exception as e:  # no upstream to compare with: nothing was checked, and that is said
        return [
            _not_checked(x, f"the upstream could not be read: {type(e).__name__}: {e}") for x in request.lines
        ]
    readers = _readers(request)
    results = []
    for wanted in request.lines:
        try:
            reading = _read(readers[wanted.line], upstream, release, request.trust_remote_code)
        except runtime_envs.EnvUnavailable as e:
            results.append(_not_checked(wanted, str(e)))
        else:
            results.append(_compare(wanted, reading))
    return results


def _readers(request: VerifyRequest) -> dict[str, runtime_envs.SideEnv | str | None]:
    """Line → who reads under it: None for this process (the builder's own line), its side environment, or
    why there is none. Missing environments are made side by side: pip mostly waits on the network."""
    mine = ".".join(installed_toolchain().get("transformers", "").split(".")[:2])
    others = sorted({x.line for x in request.lines} - {mine})
    found: dict[str, runtime_envs.SideEnv | str | None] = {mine: None}
    if others and request.envs_dir is None:
        found |= dict.fromkeys(others, "its environment is not made on this bot (runtime_envs is off)")
    elif others:
        root = Path(request.envs_dir or ".")
        with ThreadPoolExecutor(max_workers=len(others)) as pool:
            found |= dict(zip(others, pool.map(lambda line: _env(root, line), others), strict=True))
    return found


def _download_upstream(request: VerifyRequest, target: Path) -> None:
    """The upstream's files a loader reads, at its pinned revision: everything but weights and subfolders."""
    from huggingface_hub import snapshot_download

    if request.upstream_repo_id is None or request.upstream_revision is None:
        raise ValueError("the request names no upstream")
    patterns = [p for p in FETCH_PATTERNS if p != "*.safetensors"]
    snapshot_download(
        request.upstream_repo_id,
        revision=request.upstream_revision,
        local_dir=target,
        endpoint=request.endpoint,
        token=os.environ.get("HF_TOKEN") or None,
        allow_patterns=patterns + (CODE_PATTERNS if request.trust_remote_code else []),
        ignore_patterns=["*/*", "*.safetensors"],
    )


def _env(root: Path, line: str) -> runtime_envs.SideEnv | str:
    try:
        return runtime_envs.ensure(root, line)
    except runtime_envs.EnvUnavailable as e:
        return str(e)


def _read(
    reader: runtime_envs.SideEnv | str | None, upstream: Path, release: Path, trust: bool
) -> dict[str, Any]:
    """Both readings (`readback.main`'s JSON) by `reader` (see `_readers`)."""
    if isinstance(reader, str):
        raise runtime_envs.EnvUnavailable(reader)
    if reader is not None:
        return reader.read(upstream, release, trust)
    import transformers

    return {
        "transformers": transformers.__version__,
        "upstream": readback.read(str(upstream), trust),
        "release": readback.read(str(release), trust),
    }


def _compare(wanted: RuntimeLine, reading: dict[str, Any]) -> LineCheck:
    upstream, release = reading["upstream"], reading["release"]
    problems = readback.differences(upstream, release)
    if problems:
        detail = "; ".join(problems)
    elif "config" not in upstream and "tokenizer" not in upstream:
        detail = "the upstream does not load here either: " + str(
            upstream.get("config_error") or upstream.get("tokenizer_error")
        )
    else:
        detail = readback.summary(release)
    return LineCheck(
        line=wanted.line,
        runtimes=wanted.runtimes,
        transformers=reading["transformers"],
        ok=not problems,
        detail=detail[: 2 * _OUTPUT_CHARS],
    )


def _not_checked(wanted: RuntimeLine, why: str) -> LineCheck:
    return LineCheck(line=wanted.line, runtimes=wanted.runtimes, ok=None, detail=why[:_OUTPUT_CHARS])


def _snippet(request: VerifyRequest, work: Path) -> tuple[str | None, str | None, Check | None]:
    """Run the card's snippet in its own interpreter, as a user pasting it would, when this machine can."""
    if request.snippet is None:
        return None, "no snippet of the card runs on this worker (its runtimes need a GPU)", None
    needs = request.snippet_module
    if needs and importlib.util.find_spec(needs) is None:
        return None, f"{needs} is not installed on this worker", None
    if request.snippet_gpu and not _has_gpu():
        return None, "the card's snippet needs a GPU and this worker has none", None
    work.mkdir(parents=True, exist_ok=True)
    script = work / "snippet.py"
    script.write_text(request.snippet, encoding="utf-8")
    cache = _cache_as_main(request, work / "cache")
    env = os.environ | {
        "HF_HUB_CACHE": str(cache),
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    }
    try:
        run = subprocess.run(
            [sys.executable, str(script)],
            env=env,
            cwd=work,
            capture_output=True,
            text=True,
            timeout=request.snippet_timeout_s,
        )
    except subprocess.TimeoutExpired:
        return None, None, Check(name="card snippet", ok=False, detail="timed out")
    prompt = request.snippet_prompt or ""
    at = run.stdout.rfind(prompt)  # runtimes log on stdout too: the generation is the last print
    output = run.stdout[at:].strip() if at >= 0 else ""
    if run.returncode != 0 or not output:
        return None, None, Check(name="card snippet", ok=False, detail=snippet_failure(run, prompt))
    added = len(output) - len(prompt)
    detail = f"{needs or 'python'}: it printed the prompt and {added} generated characters"
    return output[:_OUTPUT_CHARS], None, Check(name="card snippet", ok=True, detail=detail)


def _cache_as_main(request: VerifyRequest, cache: Path) -> Path:
    """A Hub cache in which `main` of the repo is the commit under test (not yet merged when it is a PR), so
    the card's snippet, which names no revision, loads exactly these files, offline."""
    from huggingface_hub import snapshot_download

    snapshot_download(
        request.repo_id,
        revision=request.revision,
        cache_dir=cache,
        endpoint=request.endpoint,
        token=os.environ.get("HF_TOKEN") or None,
    )
    refs = cache / f"models--{request.repo_id.replace('/', '--')}" / "refs"
    refs.mkdir(parents=True, exist_ok=True)
    (refs / "main").write_text(request.revision)
    return cache


def snippet_failure(run: subprocess.CompletedProcess[str], prompt: str) -> str:
    """Why a snippet run failed, in words: its exit and its exception, or what its output lacked (the last
    line of stderr is often only a library's warning, so it is never the reason by itself)."""
    if run.returncode < 0:
        return f"it was killed by signal {-run.returncode}"
    if run.returncode != 0:
        lines = [line.strip() for line in run.stderr.strip().splitlines() if line.strip()]
        errors = [line for line in lines if re.match(r"^[\w.]*(Error|Exception|Interrupt|Exit)\b", line)]
        why = errors[-1] if errors else "no exception on stderr"
        return f"it exited {run.returncode}: {why}"[:_OUTPUT_CHARS]
    if prompt and prompt not in run.stdout:
        return "it exited 0 but its output did not contain the prompt"
    return "it exited 0 but printed nothing"


def _has_gpu() -> bool:
    """Asked of torch in an interpreter of its own: this one runs without it (`without_torch`)."""
    probe = "import torch; print(torch.cuda.is_available())"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    return done.stdout.strip() == "True"


def without_torch() -> None:
    """Run this process's transformers as if torch were not installed (`sys.modules["torch"] = None` makes
    `import torch` fail and `find_spec` say there is none, which is how transformers asks).

    Verifying reads files, configs, tokenizers and chat templates: transformers needs no torch for that (the
    side environments of runtime_envs have none), and importing it costs the verification worker most of its
    time on a small release. Only `python -m builders verify` calls it, for its own process; the card's
    snippet runs in an interpreter of its own, with torch."""
    sys.modules.setdefault("torch", None)  # type: ignore[arg-type]


def main(request_path: Path, result_path: Path) -> int:
    request = VerifyRequest.model_validate_json(Path(request_path).read_text(encoding="utf-8"))
    try:
        record = verify(request)
    except BuildFailure as e:  # the Hub failed: no verdict on the release, the bot tries again later
        print(" ".join(e.message.split())[:_OUTPUT_CHARS], file=sys.stderr)  # one line: the reason
        return EXIT_HUB_FAILED
    write_json_atomic(result_path, record.model_dump(mode="json"))
    print(json.dumps({"ok": record.ok, "failures": [c.name for c in record.failures]}))
    return 0
