"""`quantbot build`: one quantized build of a model, run in its own worker process.

The bot never imports torch: this command writes a `BuildSpec` (revision pinned to a sha through
`bot.hub.Hub`), starts ``python -m builders run SPEC.json``, turns the worker's JSON-lines progress into a
progress bar on stderr, and prints the manifest's path and a summary. The worker's own logs go to
``worker.log`` in the build's work dir.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from bot.cli import settings_from
from bot.errors import BuildFailed, UsageError
from bot.execution.launch import Worker
from bot.settings import Settings
from builders.spec import DEFAULT_CALIBRATION, FORMATS, BuildSpec, Manifest, Progress


@click.command()
@click.argument("model")
@click.option("--format", "fmt", required=True, type=click.Choice(FORMATS), help="Quantized format to build.")
@click.option("--revision", help="Branch, tag or commit of a Hub repo (default: main); pinned to its sha.")
@click.option(
    "--sm",
    "sms",
    multiple=True,
    type=click.IntRange(min=10),
    help="Target SM for engines, e.g. 90 (repeatable).",
)
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder (default: in the data dir).",
)
@click.option(
    "--work", "work", type=click.Path(file_okay=False, path_type=Path), help="Work folder; rerun to resume."
)
@click.option(
    "--kv-cache", type=click.Choice(["auto", "fp8", "int8", "none"]), default="auto", show_default=True,
    help="KV-cache quantization; auto: fp8 where TensorRT-LLM's matrices mark FP8 KV cache for the model "
    "and the format takes it (as ModelOpt's hf_ptq defaults), else none.",
)  # fmt: skip
@click.option(
    "--calib",
    help=f"Calibration data: a Hub dataset id (default {DEFAULT_CALIBRATION}, read through the endpoint), "
    "a local .txt/.jsonl file or folder, or 'bundled' (the text shipped with quantbot).",
)
@click.option("--calib-samples", type=click.IntRange(min=1), help="Calibration samples (default 512).")
@click.option(
    "--calib-seq-len", type=click.IntRange(min=8), help="Tokens per calibration sample (default 512)."
)
@click.option(
    "--calib-batch-size", type=click.IntRange(min=1), help="Calibration batch (halved once on OOM)."
)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--allow-pickle", is_flag=True, help="Allow .bin/.pt weights when the repo has no safetensors.")
@click.option("--trust-remote-code", is_flag=True, help="Run the repo's own modelling code (auto_map).")
@click.pass_context
def command(ctx: click.Context, model: str, fmt: str, revision: str | None, sms: tuple[int, ...],
            out: Path | None, work: Path | None, kv_cache: str, calib: str | None, calib_samples: int | None,
            calib_seq_len: int | None, calib_batch_size: int | None, device: str, allow_pickle: bool,
            trust_remote_code: bool) -> None:  # fmt: skip
    """Quantize MODEL (a Hub repo id or a local folder) into one format and validate the result."""
    settings = settings_from(ctx)
    source = _source(model, revision, settings)
    kv_reason = f"{kv_cache}: asked for with --kv-cache {kv_cache}"
    if kv_cache == "auto":
        kv_cache, kv_reason = _kv_cache_default(settings, source, fmt, sms)
    elif kv_cache == "none":
        kv_reason = "not quantized: turned off by --kv-cache none"
    recipe_fields = {"kv_cache": kv_cache, "kv_cache_reason": kv_reason, "calib_dataset": calib,
                     "calib_samples": calib_samples, "calib_seq_len": calib_seq_len,
                     "calib_batch_size": calib_batch_size}  # fmt: skip
    try:
        spec = BuildSpec.model_validate(
            {
                **source,
                "format": fmt,
                "recipe": {k: v for k, v in recipe_fields.items() if v is not None},
                "target_sms": list(sms),
                "device": device,
                "allow_pickle": allow_pickle or settings.allow_pickle,
                "trust_remote_code": trust_remote_code or model in settings.trust_remote_code_repos,
                "work_dir": Path("."),
                "output_dir": Path("."),
            }
        )
    except ValueError as e:
        raise UsageError(_first_error(e)) from None
    key = spec.key()
    name = f"{_slug(model)}-{fmt}-{key[:12]}"
    spec = spec.model_copy(
        update={
            "work_dir": (work or settings.data_dir / "work" / name).resolve(),
            "output_dir": (out or settings.data_dir / "builds" / name).resolve(),
        }
    )
    returncode = run_worker(settings, spec, _progress_bar())
    manifest = _read_manifest(spec)
    click.echo(summary(manifest, spec.manifest_path))
    if returncode != 0 or not manifest.ok:
        error = manifest.errors[0] if manifest.errors else None
        message = (
            f"build failed in {error.stage}: {error.message}" if error else f"worker exited {returncode}"
        )
        raise BuildFailed(
            message, bad_input=bool(error and error.bad_input), log=Path(spec.work_dir) / "worker.log"
        )


def run_worker(settings: Settings, spec: BuildSpec, on_progress: Callable[[Progress], None]) -> int:
    """Run one build in a worker process; call ``on_progress`` for each progress line; return its exit code.

    The spec is written into its work dir; the worker's stderr goes to ``worker.log`` beside it.
    """
    Path(spec.work_dir).mkdir(parents=True, exist_ok=True)
    worker = Worker.start(settings, spec, log_path=Path(spec.work_dir) / "worker.log")
    return worker.wait(on_progress)


def _source(model: str, revision: str | None, settings: Any) -> dict[str, Any]:
    path = Path(model).expanduser()
    if path.is_dir():
        if revision:
            raise UsageError("--revision applies to Hub repos, not to a local folder")
        return {"local_dir": path.resolve()}
    if (
        path.exists()
        or model.startswith((".", "/", "~"))
        or not re.fullmatch(r"[\w.-]+/[\w.-]+|[\w.-]+", model)
    ):
        raise UsageError(f"{model!r} is neither a model folder nor a Hub repo id such as org/name")
    from bot.hub import Hub

    hub = Hub(endpoint=settings.hf_endpoint, token=settings.token())
    return {"repo_id": model, "revision": hub.resolve_revision(model, revision)}


def _kv_cache_default(
    settings: Settings, source: dict[str, Any], fmt: str, sms: tuple[int, ...]
) -> tuple[str, str]:
    """The planner's KV-cache default for this model, format and target SMs (the settings' when none)."""
    from bot.eligibility.facts import facts_from_dir, facts_from_hub
    from bot.eligibility.planner import PlanOptions, plan
    from bot.eligibility.specs import eligibility_of, kv_cache_default
    from bot.eligibility.targets import resolve_targets
    from bot.hub import Hub

    targets = resolve_targets(
        list(sms) or None,
        remote_sms=settings.remote_sms,
        default_sms=settings.target_sms,
        memory_gib=settings.sm_memory_gib,
    ).targets
    if "local_dir" in source:
        facts = facts_from_dir(source["local_dir"])
    else:
        hub = Hub(endpoint=settings.hf_endpoint, token=settings.token())
        facts = facts_from_hub(hub, source["repo_id"], revision=source["revision"])
    result = plan(facts, targets, PlanOptions.from_settings(settings))
    return kv_cache_default(eligibility_of(result), fmt, [t.sm for t in targets])


def _progress_bar() -> Callable[[Progress], None]:
    """A tqdm bar on a terminal; elsewhere (logs, CI) one line per stage as it starts."""
    if not sys.stderr.isatty():
        seen: set[str] = set()

        def log(p: Progress) -> None:
            if p.stage not in seen:
                seen.add(p.stage)
                # the outcome (and a failure's message) is printed once, after the summary
                message = "written" if p.stage == "manifest" else p.message
                click.echo(f"[{p.stage}] {message}", err=True)

        return log
    from tqdm import tqdm

    bar = tqdm(total=100, unit="%", file=sys.stderr, bar_format="{l_bar}{bar}| {elapsed} {postfix}")

    def update(p: Progress) -> None:
        bar.set_description(p.stage)
        bar.set_postfix_str(p.message[:60], refresh=False)
        bar.update(max(0.0, round(100 * p.overall, 1) - bar.n))
        if p.stage == "manifest":
            bar.close()

    return update


def _read_manifest(spec: BuildSpec) -> Manifest:
    try:
        return Manifest.read(spec.manifest_path)
    except (OSError, ValueError) as e:
        log = Path(spec.work_dir) / "worker.log"
        raise BuildFailed(f"the worker left no readable manifest ({e}); see {log}", log=log) from None


def summary(m: Manifest, path: Path) -> str:
    """A few lines a person reads after a build; every value comes from the manifest."""
    lines = [f"manifest: {path}"]
    spec = m.spec
    what = f"{spec.format} of {spec.source_label}" if spec else "invalid spec"
    lines.append(f"status: {m.status} — {what}" + (f" in {m.wall_s:.1f} s" if m.wall_s is not None else ""))
    if m.artifacts:
        size = sum(a.size for a in m.artifacts)
        lines.append(f"artifacts: {len(m.artifacts)} files, {size / 2**20:.2f} MiB in {path.parent}")
    if m.quantization:
        q = m.quantization
        lines.append(f"quantization: {q.quant_algo} by {q.producer} {q.producer_version or ''}".rstrip()
                     + (f", kv-cache {q.kv_cache_quant_algo}" if q.kv_cache_quant_algo else ""))  # fmt: skip
    ppl = m.validation.perplexity if m.validation else None
    if ppl and ppl.base is not None:
        lines.append(
            f"perplexity on {ppl.text} ({ppl.tokens} tokens): base {ppl.base_figure()}, "
            f"quantized {ppl.quantized_figure()}"
        )
    for engine in m.engines:
        lines.append(
            f"engine sm{engine.sm}: {engine.status}"
            + (f" — {engine.reason}" if engine.reason else f" at {engine.path}")
        )
    lines += [f"error in {e.stage}: {e.kind}" for e in m.errors]  # its message follows, as the Error line
    return "\n".join(lines)


def _slug(model: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "--", Path(model).name if Path(model).is_dir() else model).strip("-")


def _first_error(error: ValueError) -> str:
    errors = getattr(error, "errors", None)
    if callable(errors):
        return "; ".join(e["msg"].removeprefix("Value error, ") for e in errors())
    return str(error)
