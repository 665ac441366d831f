"""Verified after upload: the publisher has a worker download the release it just committed, by repo id, and
reads back a `VerificationRecord` (builders/verify.py does the work: the bot process never imports
transformers). The worker also reads the release and its upstream under the transformers line of each runtime
that loads the format (runtimes.yaml), in environments it makes once under `runtime_envs_dir`. The record goes
into the manifest, one line of the card and the PR description.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from bot.eligibility.facts import ModelFacts
from bot.eligibility.matrices import load_runtimes
from bot.errors import HubUnavailable
from bot.launcher.launch import worker_argv, worker_env
from bot.publishing.usage import PROMPT, detection_rules, runnable_snippet
from bot.settings import Settings
from builders.spec import (
    EXIT_HUB_FAILED,
    BuildSpec,
    Check,
    LineCheck,
    RuntimeLine,
    VerificationRecord,
    VerifyRequest,
    utcnow,
)

_TIMEOUT_S = 1800


def request_for(
    repo_id: str,
    revision: str,
    spec: BuildSpec,
    *,
    endpoint: str,
    extra_files: list[str],
    envs_dir: Path | None,
    chat: bool = False,
    family: ModelFacts | None = None,
) -> VerifyRequest:
    """What to check of a release of `spec`'s build: the table's detection rules, the card's runnable
    snippet (the chat form for a chat model, as its card shows it), and the transformers lines of the runtimes
    that load its format (read beside its upstream)."""
    usage = runnable_snippet(
        spec.format, repo_id, chat=chat, trust_remote_code=spec.trust_remote_code, family=family
    )
    lines = load_runtimes().transformers_lines(spec.format)
    return VerifyRequest(
        repo_id=repo_id,
        revision=revision,
        endpoint=endpoint,
        extra_files=extra_files,
        rules=detection_rules(spec.format),
        snippet=usage.code if usage else None,
        snippet_module=usage.module if usage else None,
        snippet_gpu=usage.needs_gpu if usage else False,
        snippet_prompt=PROMPT,
        upstream_repo_id=spec.repo_id,
        upstream_revision=spec.revision,
        trust_remote_code=spec.trust_remote_code,
        lines=[RuntimeLine(line=line, runtimes=names) for line, names in lines.items()],
        envs_dir=str(envs_dir) if envs_dir else None,
    )


def run_verification(settings: Settings, request: VerifyRequest) -> VerificationRecord:
    """Run `python -m builders verify` as builds run (worker_command, Hub settings in its environment)."""
    text, why = run_worker(
        settings, "verify", request.model_dump_json(), name="verification", repo_id=request.repo_id
    )
    if text is None:
        return _worker_failed(request, why)
    return VerificationRecord.model_validate_json(text)


def run_worker(
    settings: Settings, command: str, request: str, *, name: str, repo_id: str, timeout_s: int = _TIMEOUT_S
) -> tuple[str | None, str]:
    """`python -m builders COMMAND REQUEST RESULT` on this machine: (the result's text, "") or (None, why).
    A worker that could not reach the Hub gives no verdict: `HubUnavailable`, and the publish tries again."""
    with tempfile.TemporaryDirectory(prefix=f"quantbot-{command}-") as tmp:
        request_path, result_path = Path(tmp) / "request.json", Path(tmp) / "result.json"
        request_path.write_text(request, encoding="utf-8")
        argv = worker_argv(settings, request_path, [command, str(request_path), str(result_path)])
        try:
            run = subprocess.run(
                argv,
                env=worker_env(settings, {"HF_HUB_DISABLE_PROGRESS_BARS": "1"}),
                capture_output=True,
                text=True,
                timeout=timeout_s,
            )
        except subprocess.TimeoutExpired:
            return None, f"the {name} worker ran past {timeout_s} s"
        tail = (run.stderr.strip().splitlines() or [f"exit status {run.returncode}"])[-1]
        if run.returncode == EXIT_HUB_FAILED:
            raise HubUnavailable(f"{name} of {repo_id}: {tail}", repo_id=repo_id)
        if run.returncode != 0 or not result_path.is_file():
            return None, tail
        return result_path.read_text(encoding="utf-8"), ""


def _worker_failed(request: VerifyRequest, why: str) -> VerificationRecord:
    check = Check(name="verification worker", ok=False, detail=why[:400])
    return VerificationRecord(
        ok=False, repo_id=request.repo_id, revision=request.revision, checks=[check], at=utcnow()
    )


def verification_line(record: VerificationRecord) -> str:
    """One sentence for the card and the PR: what was checked on the downloaded release, or what failed."""
    at = f"`{record.revision[:12]}`"
    if not record.ok:
        failed = "; ".join(f"{c.name}: {c.detail}" for c in record.failures)
        return f"**Failed** for revision {at}: {failed}."
    parts = [f"downloaded by repo id at {at}", f"{record.files} files checked against the manifest's sha256"]
    config = next((c for c in record.checks if c.name == "AutoConfig"), None)
    if config is not None:
        parts.append(f"`AutoConfig` loads it ({config.detail})")
    runtimes = {r.id: r.name for r in load_runtimes().runtimes}
    names = [runtimes.get(r, r) for r in record.runtimes]
    if names:
        parts.append(f"the detection rules of {', '.join(names)} recognise the files")
    parts += lines_text(record.lines)
    snippet = next((c for c in record.checks if c.name == "card snippet"), None)
    if snippet is not None:
        parts.append(f"the card's snippet ran on these files ({snippet.detail})")
    elif record.not_run:
        parts.append(f"no snippet was run ({record.not_run})")
    return "; ".join(parts) + "."


def lines_text(lines: list[LineCheck]) -> list[str]:
    """The transformers lines the release was read under, as parts of the verification line: which read it as
    they read its upstream (and what was compared), which were not checked and why."""
    parts = []
    read = [x for x in lines if x.ok]
    if read:
        under = ", ".join(f"{x.transformers} ({', '.join(x.runtimes)})" for x in read)
        same = {x.detail for x in read}
        what = same.pop() if len(same) == 1 else "; ".join(f"{x.transformers}: {x.detail}" for x in read)
        parts.append(f"under transformers {under} it reads as its upstream does ({what})")
    parts += [
        f"not read under transformers {x.line} ({', '.join(x.runtimes)}): {x.detail}"
        for x in lines
        if x.ok is None
    ]
    return parts
