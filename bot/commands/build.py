"""`quantbot build`: one quantized build of a model, run in its own worker process.

The bot never imports torch: this command writes a `BuildSpec` (revision pinned to a sha through
`bot.hub.Hub`), starts ``python -m builders run SPEC.json``, turns the worker's JSON-lines progress into a
progress bar on stderr (on a terminal; elsewhere a line per stage and at least every 10 s), calibration with
its steps and the time left, and prints the manifest's path and a summary. The build writes nothing outside
its work and output folders: the worker's log is ``worker.log`` in the work dir, beside the toolchain's own
``logs/``.

On a machine without a GPU the calibration is smaller than ModelOpt's hf_ptq default (512 samples of 512
tokens, an hour's work on a CPU for a model of a few million parameters): `CPU_CALIBRATION`, unless
`--calib-samples`, `--calib-seq-len` or the `build_recipe` setting say otherwise. The manifest and the card
record the size used.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from bot import units
from bot.cli import settings_from
from bot.errors import BuildFailed, UsageError
from bot.launcher.launch import Worker
from bot.settings import Settings
from builders.spec import DEFAULT_CALIBRATION, FORMATS, BuildSpec, Manifest, Progress, Recipe

# Calibration without a GPU: a tiny model (0.4M parameters) builds in about a minute on 2 cores with it.
CPU_CALIBRATION = {"calib_samples": 64, "calib_seq_len": 256}
QUIET_S = 10.0  # without a terminal, a line at least this often


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
    "--kv-cache",
    type=click.Choice(["auto", "fp8", "int8", "none"]),
    default="auto",
    show_default=True,
    help="KV-cache quantization; auto: fp8 where TensorRT-LLM's matrices mark FP8 KV cache for the model "
    "and the format takes it (as ModelOpt's hf_ptq defaults), else none.",
)
@click.option(
    "--calib",
    help=f"Calibration data: a Hub dataset id (default {DEFAULT_CALIBRATION}, read through the endpoint), "
    "a local .txt/.jsonl file or folder, or 'bundled' (the text shipped with quantbot).",
)
@click.option(
    "--calib-samples",
    type=click.IntRange(min=1),
    help=f"Calibration samples (default {Recipe().calib_samples}; "
    f"{CPU_CALIBRATION['calib_samples']} without a GPU).",
)
@click.option(
    "--calib-seq-len",
    type=click.IntRange(min=8),
    help=f"Tokens per calibration sample (default {Recipe().calib_seq_len}; "
    f"{CPU_CALIBRATION['calib_seq_len']} without a GPU).",
)
@click.option(
    "--calib-batch-size", type=click.IntRange(min=1), help="Calibration batch (halved once on OOM)."
)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--allow-pickle", is_flag=True, help="Allow .bin/.pt weights when the repo has no safetensors.")
@click.option("--trust-remote-code", is_flag=True, help="Run the repo's own modelling code (auto_map).")
@click.pass_context
def command(
    ctx: click.Context,
    model: str,
    fmt: str,
    revision: str | None,
    sms: tuple[int, ...],
    out: Path | None,
    work: Path | None,
    kv_cache: str,
    calib: str | None,
    calib_samples: int | None,
    calib_seq_len: int | None,
    calib_batch_size: int | None,
    device: str,
    allow_pickle: bool,
    trust_remote_code: bool,
) -> None:
    """Quantize MODEL (a Hub repo id or a local folder) into one format and validate the result."""
    settings = settings_from(ctx)
    source = _source(model, revision, settings)
    kv_reason = f"{kv_cache}: asked for with --kv-cache {kv_cache}"
    if kv_cache == "auto":
        kv_cache, kv_reason = _kv_cache_default(settings, source, fmt, sms)
    elif kv_cache == "none":
        kv_reason = "not quantized: turned off by --kv-cache none"
    recipe_fields = {
        "kv_cache": kv_cache,
        "kv_cache_reason": kv_reason,
        "calib_dataset": calib,
        "calib_samples": calib_samples,
        "calib_seq_len": calib_seq_len,
        "calib_batch_size": calib_batch_size,
    }
    recipe = settings.build_recipe | {k: v for k, v in recipe_fields.items() if v is not None}
    if not {"calib_samples", "calib_seq_len"} <= set(recipe) and not _has_gpu(device):
        recipe = CPU_CALIBRATION | recipe
        click.echo(
            f"note: no GPU: calibrating on {recipe['calib_samples']} samples of {recipe['calib_seq_len']} "
            "tokens (--calib-samples and --calib-seq-len change it)",
            err=True,
        )
    try:
        spec = BuildSpec.model_validate(
            {
                **source,
                "format": fmt,
                "recipe": recipe,
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
    with _Talk(sys.stderr.isatty()) as talk:
        returncode = run_worker(settings, spec, talk)
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
    from bot.host.gpus import local_gpus
    from bot.hub import Hub

    targets = resolve_targets(
        list(sms) or None,
        remote_sms=settings.remote_sms,
        default_sms=settings.target_sms,
        memory_gib=settings.sm_memory_gib,
        gpus=local_gpus(),
    ).targets
    if "local_dir" in source:
        facts = facts_from_dir(source["local_dir"])
    else:
        hub = Hub(endpoint=settings.hf_endpoint, token=settings.token())
        facts = facts_from_hub(hub, source["repo_id"], revision=source["revision"])
    result = plan(facts, targets, PlanOptions.from_settings(settings))
    return kv_cache_default(eligibility_of(result), fmt, [t.sm for t in targets])


def _has_gpu(device: str) -> bool:
    """Whether the build will calibrate on a GPU: asked for one, or left to `auto` where NVML finds one."""
    if device != "auto":
        return device == "cuda"
    from bot.host.gpus import local_gpus

    return bool(local_gpus())


class _Talk:
    """The worker's progress as a person follows it: a tqdm bar on a terminal (redrawn every second, so its
    clock moves), elsewhere a line per stage as it starts and then at least every `QUIET_S` seconds; while
    the builder counts its calibration steps, each line says how many are done and about how long is left."""

    def __init__(self, tty: bool) -> None:
        self.tty = tty
        self.latest: Progress | None = None
        self.said_at = time.monotonic()
        self.said = ""
        self.stage_started = time.monotonic()
        self._rate: tuple[str, float, int] | None = None  # (what is counted, when, step) at the first count
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._bar: Any = None
        if tty:
            from tqdm import tqdm

            self._bar = tqdm(
                total=100, unit="%", file=sys.stderr, bar_format="{l_bar}{bar}| {elapsed} {postfix}"
            )

    def __call__(self, p: Progress) -> None:
        with self._lock:
            new_stage = self.latest is None or p.stage != self.latest.stage
            if new_stage:
                self.stage_started, self.said = time.monotonic(), ""
            self.latest = p
            self._count(p)
            if self._bar is not None:
                self._bar.set_description(p.stage)
                self._bar.set_postfix_str(self.describe(p)[:80], refresh=False)
                self._bar.update(max(0.0, round(100 * p.overall, 1) - self._bar.n))
                if p.stage == "manifest":
                    self._bar.close()
            elif new_stage:
                # the outcome (and a failure's message) is printed once, after the summary
                self._say("written" if p.stage == "manifest" else p.message)

    def describe(self, p: Progress) -> str:
        """The message, with the calibration's steps done and the time left where the builder counts them."""
        step, steps = getattr(p, "step", None), getattr(p, "steps", None)
        if not isinstance(step, int) or not isinstance(steps, int) or not steps:
            return p.message
        left = self._left(step, steps)
        eta = f" · about {units.duration(left)} left" if left is not None else ""
        return f"{p.message} · step {step}/{steps}{eta}"

    def _count(self, p: Progress) -> None:
        """Remember when the counted work started, to tell its rate (a new count restarts it)."""
        step, steps = getattr(p, "step", None), getattr(p, "steps", None)
        what = f"{p.stage}/{steps}"
        if isinstance(step, int) and (self._rate is None or self._rate[0] != what):
            self._rate = (what, time.monotonic(), step)

    def _left(self, step: int, steps: int) -> float | None:
        if self._rate is None or step <= self._rate[2]:
            return None
        _, since, first = self._rate
        return (steps - step) * (time.monotonic() - since) / (step - first)

    def _say(self, message: str) -> None:
        """One line: the stage, how long it has run, and the news (`…` when there is none since the last)."""
        assert self.latest is not None
        elapsed = time.monotonic() - self.stage_started
        clock = f" {units.duration(elapsed)}" if elapsed >= 1 else ""
        news = f"… {message}" if message == self.said else message
        click.echo(f"[{self.latest.stage}{clock}] {news}", err=True)
        self.said_at, self.said = time.monotonic(), message

    def heartbeat(self) -> None:
        """Each second: redraw the bar (its clock moves), or repeat the news after `QUIET_S` of silence."""
        with self._lock:
            if self._bar is not None:
                self._bar.refresh()
            elif self.latest is not None and time.monotonic() - self.said_at >= QUIET_S:
                self._say(self.describe(self.latest))

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            self.heartbeat()

    def __enter__(self) -> _Talk:
        threading.Thread(target=self._tick, name="build-progress", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._bar is not None:
            self._bar.close()


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
        lines.append(
            f"quantization: {q.quant_algo} by {q.producer} {q.producer_version or ''}".rstrip()
            + (f", kv-cache {q.kv_cache_quant_algo}" if q.kv_cache_quant_algo else "")
        )
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
