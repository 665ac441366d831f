"""`quantbot plan`: which formats a model is eligible for on each target SM, and why the others are not.

A local folder is read directly; anything else is a Hub repo id, read through `bot.hub.Hub` at the given
revision. Notes about how the targets were chosen go to stderr, so `--json` leaves exactly one JSON object
on stdout.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from bot import units
from bot.cli import settings_from
from bot.eligibility.facts import ModelFacts, facts_from_dir, facts_from_hub
from bot.eligibility.matrices import load_runtimes
from bot.eligibility.planner import Plan, PlanOptions, TargetPlan, plan
from bot.eligibility.sm_steps import sm_step
from bot.eligibility.specs import build_kv_cache, eligibility_of, job_costs
from bot.eligibility.targets import Target, parse_sms, resolve_targets
from bot.errors import UsageError
from bot.host import gpus


@click.command()
@click.argument("model")
@click.option("--revision", help="Branch, tag or commit of a Hub repo (default: main).")
@click.option("--sm", "sms", help="Comma-separated SMs to plan for, e.g. 90,89 (default: local GPUs).")
@click.option(
    "--policy",
    type=click.Choice(["runtimes", "strict", "permissive"]),
    help="Override the configured policy.",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "celery", "hf-jobs"]),
    help="Plan for where builds run (default: setting); hf-jobs adds each SM's flavour and estimated cost.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@click.pass_context
def command(
    ctx: click.Context,
    model: str,
    revision: str | None,
    sms: str | None,
    policy: str | None,
    executor: str | None,
    as_json: bool,
) -> None:
    """Plan MODEL (a Hub repo id or a local folder with a config.json)."""
    settings = settings_from(ctx)
    if executor is not None:
        settings = settings.model_copy(update={"executor": executor})
    chosen = parse_sms(sms) if sms else None
    targets = resolve_targets(
        chosen,
        remote_sms=settings.remote_sms,
        default_sms=settings.target_sms,
        memory_gib=settings.sm_memory_gib,
        gpus=gpus.local_gpus(),
    )
    facts = _facts(model, revision, settings)
    for note in targets.notes:
        click.echo(f"note: {note}", err=True)
    result = plan(facts, targets.targets, PlanOptions.from_settings(settings, policy))  # type: ignore[arg-type]
    if as_json:
        click.echo(json.dumps(result.to_json(), ensure_ascii=False, indent=2))
    else:
        click.echo(render(result, settings.build_recipe))


def _facts(model: str, revision: str | None, settings: object) -> ModelFacts:
    path = Path(model).expanduser()
    if path.is_dir():
        if revision:
            raise UsageError("--revision applies to Hub repos, not to a local folder")
        return facts_from_dir(path)
    if path.exists():
        raise UsageError(f"{model} is a file; give the model's folder (the one holding config.json)")
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    from bot.hub import Hub

    try:
        if model.startswith((".", "/", "~")) or model.count("/") > 1:
            raise HFValidationError("a path")
        validate_repo_id(model)
    except HFValidationError:
        raise UsageError(
            f"{model!r} is neither an existing folder nor a Hub repo id such as org/name"
        ) from None

    hub = Hub(endpoint=settings.hf_endpoint, token=settings.token())  # type: ignore[attr-defined]
    return facts_from_hub(hub, model, revision=revision)


def render(result: Plan, recipe: dict[str, Any] | None = None) -> str:
    """The plan as text: a header about the model, then one table per SM; each eligible format with its
    KV cache as the build (one for all its SMs, with the `build_recipe` setting) will set it."""
    f = result.facts
    revision = f.revision[:12] if f.revision else "local folder" if f.source == "local" else "main"
    params = (
        f"{units.count(f.parameters)} parameters ({f.parameters_source})" if f.parameters else "size unknown"
    )
    lines = [
        f"{f.name} @ {revision}",
        f"  model_type {f.model_type or '?'} · {', '.join(f.architectures) or 'no architectures'} · {params}"
        f" · {f.dtype or 'dtype unknown'}",
        f"  ModelOpt row: {_rows(f.modelopt.rows)} ({f.modelopt.why})",
        f"  TensorRT-LLM row: {_rows(f.trtllm.rows)} ({f.trtllm.why})",
        f"  GPTQModel: {'supports' if f.gptqmodel else 'does not support'} model_type {f.model_type!r}",
        f"  policy: {result.policy}",
    ]
    if result.skipped:
        lines += ["", f"Refused: {result.skipped}"]
        lines += ["", "Targets: " + ", ".join(f"sm{t.target.sm} {t.target.family}" for t in result.targets)]
        return "\n".join(lines)
    eligibility = eligibility_of(result)
    kv = {
        fmt: build_kv_cache(eligibility, fmt, sms, recipe or {}) for fmt, sms in eligibility.eligible.items()
    }
    legend: dict[str, int] = {}
    for target_plan in result.targets:
        lines += ["", *_table(target_plan, legend, kv)]
    if legend:
        lines += ["", *(f"[{n}] {note}" for note, n in legend.items())]
    formats = dict.fromkeys(e.format for tp in result.targets for e in tp.eligible)
    if formats:
        lines += ["", "KV cache, as each build sets it (one build for all of a format's SMs):"]
        lines += [f"  {fmt:<9} {kv[fmt][1]}" for fmt in formats]
        runtimes = load_runtimes()
        lines += ["", "Runs with (bot/eligibility/matrices/runtimes.yaml):"]
        lines += [f"  {fmt:<9} {runtimes.summary(fmt)}" for fmt in formats]
    costs = job_costs(result)
    if costs is not None and result.flavors is not None:
        eligible: dict[str, list[int]] = {}
        for tp in result.targets:
            for e in tp.eligible:
                eligible.setdefault(e.format, []).append(tp.target.sm)
        lines += [
            "",
            "As Hugging Face Jobs (quantize once on the cheapest of the SMs' flavours, an engine per SM):",
        ]
        lines += [
            f"  {fmt:<9} {', '.join(f'sm{sm}' for sm in sms)}: ~${costs.estimate(fmt, sms):.2f} (estimate)"
            for fmt, sms in eligible.items()
        ] or ["  nothing to build"]
        lines += ["", f"Costs are estimates: {result.flavors.basis}."]
        lines += [f"Flavours and prices: {result.flavors.document} ({result.flavors.version})."]
    return "\n".join(lines)


def _table(tp: TargetPlan, legend: dict[str, int], kv_cache: dict[str, tuple[str, str]]) -> list[str]:
    """One SM: eligible formats first, then skipped ones with their reasons; notes become [n] markers."""
    where = f"Jobs flavour {tp.flavor.describe()}" if tp.flavor else _where(tp.target)
    lines = [f"sm{tp.target.sm} · {tp.target.hardware_row} · {where}"]
    for e in tp.eligible:
        marks = "".join(f"[{legend.setdefault(note, len(legend) + 1)}]" for note in e.notes)
        kv = f"KV cache: {kv_cache[e.format][0]}"
        cost = tp.estimates[e.format].describe() if e.format in tp.estimates else ""
        status = "eligible" if e.status == "supported" else e.status
        lines.append(f"  {e.format:<9} {status:<9} {' '.join(x for x in (cost, kv, marks) if x)}".rstrip())
        lines.append(f"  {'':<9} {'':<9} per-SM task: {sm_step(e.format, tp.target.sm).describe()}")
    lines += [f"  {s.format:<9} {'skipped':<9} {s.reason}" for s in tp.skipped]
    lines += [f"  note: {note}" for note in tp.notes]
    return lines


def _where(target: Target) -> str:
    memory = units.size(target.memory_bytes) if target.memory_bytes else "memory unknown"
    if target.gpus:
        return f"{len(target.gpus)}× {target.gpu_name}, {memory}"
    return f"no local GPU, {memory}" + (" (configured)" if target.memory_source == "configured" else "")


def _rows(rows: tuple[str, ...]) -> str:
    return " + ".join(f'"{r}"' for r in rows) if rows else "none"
