"""The planner: ModelFacts × support matrices × targets → which formats to build for which SM, and why not.

Pure and fast: no I/O beyond the (cached) matrix files, no torch. Under the `runtimes` policy (the default)
a format is offered on an SM when its producer makes it for the model (ModelOpt's current support table or
the seed's; GPTQModel's model types), no measured toolchain limit stands against it (toolchain_limits.yaml),
and a runtime that loads the format on that SM (runtimes.yaml) runs the model's architecture: by its own
model list (runtime_models.yaml), or for TensorRT-LLM by its model and hardware matrices, cell by cell. Every
yes names the table and the runtime that said so, every no each runtime's reason.

A format is eligible under the seed-only `strict` policy only when
  1. its producer supports the model: ModelOpt's matrix says ✅ (for `gptq`: GPTQModel has the model type),
  2. TensorRT-LLM's model matrix marks the format's column Y for the model's row, and
  3. TensorRT-LLM's hardware matrix marks it Y for the SM's row.
`permissive` also admits what TensorRT-LLM's model matrix does not list (a `.` cell, no row, no column) as
"untested", and says so; it never relaxes the producer's ❌/- or the hardware matrix. A format without a
column in TensorRT-LLM's matrices (int8_sq: only trtllm-build ≤ 1.2 serves it) is held to the runtime table
instead: no policy admits it on an SM where no runtime loads it, and where one does, the strict skip says that
the permissive policy would build it. Every skip names the cell (or the missing row or column) that said no.
Whole-model refusals come first and skip every format.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from bot import units
from bot.eligibility.facts import ModelFacts
from bot.eligibility.flavors import Estimate, Flavor, Flavors, load_flavors
from bot.eligibility.matrices import FORMATS, Matrices, Matrix, load_matrices, load_runtimes
from bot.eligibility.matrices.families import Families, load_families
from bot.eligibility.sm_steps import sm_step
from bot.eligibility.targets import GIB, Target

Policy = Literal["runtimes", "strict", "permissive"]
# Formats whose checkpoint TensorRT-LLM serves with an FP8 KV cache, which hf_ptq quantizes by default.
# int8_sq is left out (its legacy checkpoint takes an INT8 KV cache, asked for explicitly), and so is gptq
# (GPTQ checkpoints carry no KV-cache scales).
KV_FP8_FORMATS = frozenset({"fp8", "int4_awq", "w4a8_awq", "nvfp4"})
_DTYPE_BYTES = {"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2, "float8_e4m3fn": 1}


@dataclass(frozen=True)
class PlanOptions:
    """The configuration the planner obeys (built from Settings by `from_settings`)."""

    policy: Policy = "runtimes"
    trust_remote_code_repos: frozenset[str] = frozenset()
    allow_pickle: bool = False
    allowed_licenses: frozenset[str] | None = None
    allow_gated: bool = False
    memory_headroom: float = 1.2
    jobs: bool = False  # builds run as Hugging Face Jobs: each SM on the cheapest flavour that fits

    @classmethod
    def from_settings(cls, settings: Any, policy: Policy | None = None) -> PlanOptions:
        licences = settings.allowed_licenses
        return cls(
            policy=policy or settings.policy,
            trust_remote_code_repos=frozenset(settings.trust_remote_code_repos),
            allow_pickle=settings.allow_pickle,
            allowed_licenses=frozenset(s.lower() for s in licences) if licences is not None else None,
            allow_gated=settings.allow_gated,
            memory_headroom=settings.memory_headroom,
            jobs=getattr(settings, "executor", "local") == "hf-jobs",
        )


@dataclass(frozen=True)
class Eligible:
    """A format to build for a target; `untested` when only the permissive policy admits it."""

    format: str
    producer: str
    status: Literal["supported", "untested"]
    kv_cache: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Skipped:
    format: str
    reason: str


@dataclass(frozen=True)
class TargetPlan:
    target: Target
    eligible: tuple[Eligible, ...]
    skipped: tuple[Skipped, ...]
    notes: tuple[str, ...] = ()
    flavor: Flavor | None = None  # the Jobs flavour this SM's builds run on (executor "hf-jobs")
    estimates: dict[str, Estimate] = field(default_factory=dict)  # format → quantize + engine on `flavor`


@dataclass(frozen=True)
class Plan:
    """The answer for one model at one revision; `skipped` is the whole-model refusal, if any."""

    facts: ModelFacts
    policy: Policy
    skipped: str | None
    targets: tuple[TargetPlan, ...] = field(default=())
    flavors: Flavors | None = None  # set when the builds run as Hugging Face Jobs

    def to_json(self) -> dict[str, Any]:
        f = self.facts
        return {
            "model": f.name,
            "revision": f.revision,
            "family": {
                "model_type": f.model_type,
                "architectures": list(f.architectures),
                "modelopt_rows": list(f.modelopt.rows),
                "trtllm_rows": list(f.trtllm.rows),
                "gptqmodel": f.gptqmodel,
                "mapping": {"modelopt": f.modelopt.why, "trtllm": f.trtllm.why},
                "parameters": f.parameters,
                "parameters_source": f.parameters_source,
                "dtype": f.dtype,
                "policy": self.policy,
            },
            "skipped": self.skipped,
            "targets": [
                {
                    "sm": t.target.sm,
                    "arch": t.target.family,
                    "hardware_row": t.target.hardware_row,
                    "gpu": t.target.gpu_name,
                    "memory_gib": round(t.target.memory_bytes / GIB, 1) if t.target.memory_bytes else None,
                    "eligible": [
                        {
                            "format": e.format,
                            "producer": e.producer,
                            "status": e.status,
                            "kv_cache": list(e.kv_cache),
                            "notes": list(e.notes),
                            "sm_step": sm_step(e.format, t.target.sm).to_json(),
                        }
                        for e in t.eligible
                    ],
                    "skipped": [{"format": s.format, "reason": s.reason} for s in t.skipped],
                    "notes": list(t.notes),
                    **_jobs_json(t),
                }
                for t in self.targets
            ],
            **({"estimate_basis": self.flavors.basis} if self.flavors else {}),
        }


def _jobs_json(t: TargetPlan) -> dict[str, Any]:
    if t.flavor is None:
        return {}
    return {
        "flavor": {
            "name": t.flavor.name,
            "gpu": t.flavor.gpu,
            "gpus": t.flavor.gpus,
            "memory_gb": t.flavor.memory_bytes // 10**9,
            "usd_per_hour": t.flavor.usd_per_hour,
        },
        "estimates": {
            fmt: {"minutes": round(e.minutes, 1), "usd": e.usd, "estimate": True}
            for fmt, e in t.estimates.items()
        },
    }


def plan(
    facts: ModelFacts,
    targets: Sequence[Target],
    options: PlanOptions | None = None,
    matrices: Matrices | None = None,
    flavors: Flavors | None = None,
) -> Plan:
    """Decide every (target, format) pair: each appears exactly once, as eligible or skipped with a reason."""
    options = options or PlanOptions()
    m = matrices or load_matrices()
    refusals = model_refusals(facts, options)
    needed = memory_needed(facts, options)
    flavors = (flavors or load_flavors()) if options.jobs else None
    chosen: dict[int, Flavor] = {}
    if flavors is not None:
        targets, chosen = _on_flavors(targets, flavors, needed)
    no_flavor = {
        t.sm for t in targets if flavors is not None and t.sm not in chosen and not flavors.for_sm(t.sm)
    }
    fits = {t.sm: _fits(t, needed) for t in targets if t.sm not in no_flavor}
    if fits and all(fit is False for fit in fits.values()):
        memories = ", ".join(f"sm{t.sm} {_size(t.memory_bytes)}" for t in targets if t.sm in fits)
        basis = _need_basis(facts, options)
        refusals.append(f"too large for every target GPU: needs ~{_size(needed)} ({basis}); has {memories}")
    plans = []
    for target in targets:
        if target.sm in no_flavor:
            reason = f"not built: no Jobs flavour has sm{target.sm}"
            plans.append(TargetPlan(target, (), tuple(Skipped(fmt, reason) for fmt in FORMATS)))
            continue
        notes = _memory_notes(target, needed, fits[target.sm])
        if refusals:
            reason = "model refused: " + "; ".join(refusals)
            plans.append(TargetPlan(target, (), tuple(Skipped(fmt, reason) for fmt in FORMATS), notes))
        elif fits[target.sm] is False:
            reason = f"too large for sm{target.sm} ({_describe(target)}): needs ~{_size(needed)}"
            plans.append(TargetPlan(target, (), tuple(Skipped(fmt, reason) for fmt in FORMATS), notes))
        else:
            decisions = [_decision(fmt, facts, target, options.policy, m) for fmt in FORMATS]
            eligible = tuple(d for d in decisions if isinstance(d, Eligible))
            flavor = chosen.get(target.sm)
            estimates = {}
            if flavors is not None and flavor is not None:
                estimates = {e.format: _build_estimate(flavors, e.format, facts, flavor) for e in eligible}
            skipped = tuple(d for d in decisions if isinstance(d, Skipped))
            plans.append(TargetPlan(target, eligible, skipped, notes, flavor, estimates))
    return Plan(facts, options.policy, "; ".join(refusals) or None, tuple(plans), flavors)


def _on_flavors(
    targets: Sequence[Target], flavors: Flavors, needed: int | None
) -> tuple[list[Target], dict[int, Flavor]]:
    """Each SM's target with its Jobs flavour's memory: the cheapest that fits, else the largest (which
    then fails the memory check, naming it). SMs no flavour has keep their target and get no flavour."""
    placed, chosen = [], {}
    for target in targets:
        offered = flavors.for_sm(target.sm)
        if not offered:
            placed.append(target)
            continue
        flavor = flavors.cheapest(target.sm, needed)
        if flavor is not None:
            chosen[target.sm] = flavor
        shown = flavor or max(offered, key=lambda f: f.memory_bytes)
        placed.append(
            replace(target, memory_bytes=shown.memory_bytes, memory_source=f"Jobs flavour {shown.name}")
        )
    return placed, chosen


def _build_estimate(flavors: Flavors, fmt: str, facts: ModelFacts, flavor: Flavor) -> Estimate:
    """One SM's build of `fmt` alone on `flavor`: its quantize Job plus its engine Job."""
    quantize = flavors.quantize(fmt, facts.parameters, flavor)
    return Estimate(flavor, quantize.minutes + flavors.engine(facts.parameters, flavor).minutes)


def model_refusals(facts: ModelFacts, options: PlanOptions) -> list[str]:
    """Reasons to build nothing at all for this model, in the order a maintainer would check them."""
    reasons = []
    if not facts.text_generation and not facts.vision:
        archs = ", ".join(facts.architectures) or "none"
        reasons.append(
            f"not a text-generation model (architectures: {archs}; pipeline_tag: {facts.pipeline_tag})"
        )
    if facts.custom_code and facts.name not in options.trust_remote_code_repos:
        reasons.append(
            "needs custom code (auto_map in config.json) and the repo is not in trust_remote_code_repos"
        )
    if facts.quantization:
        reasons.append(f"already quantized (quantization_config: {facts.quantization})")
    if facts.weights == "pickle" and not options.allow_pickle:
        reasons.append(f"only pickle weights ({', '.join(facts.weight_files[:3])}) and allow_pickle is off")
    if options.allowed_licenses is not None:
        if not facts.license:
            reasons.append("licence unknown and allowed_licenses is set")
        elif facts.license.lower() not in options.allowed_licenses:
            allowed = ", ".join(sorted(options.allowed_licenses)) or "none"
            reasons.append(f"licence {facts.license!r} is not in allowed_licenses ({allowed})")
    if facts.gated and not options.allow_gated:
        reasons.append(f"gated repo (gated: {facts.gated}) and allow_gated is off")
    return reasons


def memory_needed(facts: ModelFacts, options: PlanOptions) -> int | None:
    """GPU bytes a quantization needs: parameters × bytes per weight (bf16 when unknown) × headroom."""
    if not facts.parameters:
        return None
    return int(facts.parameters * _DTYPE_BYTES.get(facts.dtype or "", 2) * options.memory_headroom)


@dataclass(frozen=True)
class _Verdict:
    """What one matrix says about one format: the supporting (row, column) cell, or the reason it says no."""

    cell: tuple[str, str] | None = None
    reason: str = ""
    unlisted: bool = False  # no row, no column, or a "not listed" cell: silence rather than a "no"
    column_missing: bool = False


def _decision(fmt: str, facts: ModelFacts, target: Target, policy: Policy, m: Matrices) -> Eligible | Skipped:
    """One (format, SM) pair by `policy`; a measured toolchain limit skips it under every policy."""
    families = load_families()
    limit = families.limit(fmt, facts.model_type, facts.vision)
    if limit is not None:
        return Skipped(fmt, f"{limit.reason} (toolchain_limits.yaml: {limit.source})")
    if policy == "runtimes":
        return _decide_by_runtimes(fmt, facts, target, m, families)
    return _decide(fmt, facts, target, policy, m)


def _decide_by_runtimes(
    fmt: str, facts: ModelFacts, target: Target, m: Matrices, families: Families
) -> Eligible | Skipped:
    """Offered where the producer makes `fmt` for the model and a runtime that loads it on the SM runs it."""
    if fmt == "gptq":
        if not facts.gptqmodel:
            g = m.gptqmodel
            return Skipped(
                fmt, f"{g.label} {g.version}: model_type {facts.model_type!r} is not among its models"
            )
        made = [f"made by: {m.gptqmodel.label} {m.gptqmodel.version} has model_type {facts.model_type}"]
    else:
        table = families.modelopt
        current = _check(
            table.matrix, table.rows_for(facts.model_type, facts.modelopt.rows), fmt, facts.model_type
        )
        seed = _check(m.modelopt, facts.modelopt.rows, fmt, facts.model_type)
        matrix, verdict = (table.matrix, current) if current.cell else (m.modelopt, seed)
        if verdict.cell is None:
            return Skipped(fmt, f"{current.reason}; {seed.reason}")
        row, column = verdict.cell
        made = [
            f"made by: {matrix.label}: {row} × {column} is supported",
            *matrix.footnote_texts(row, column),
        ]
    runs: list[str] = []
    not_here: list[str] = []
    arch = facts.architectures[0] if facts.architectures else facts.model_type
    for runtime, cell in load_runtimes().loaders(fmt):
        if not cell.runs_on(target.sm):
            not_here.append(f"{runtime.name} loads {fmt} on {cell.sm_text} only")
            continue
        runs_it, why = runs_family(runtime.id, fmt, facts, m, families)
        hardware = _check(m.trtllm_hardware, (target.hardware_row,), fmt, None)
        if runs_it and families.runtimes[runtime.id].matrices and hardware.reason:
            runs_it, why = False, hardware.reason
        (runs if runs_it else not_here).append(f"{runtime.name}{' ' if runs_it else ': '}{why}")
    if not runs:
        loaders = "; ".join(not_here) or f"no runtime in runtimes.yaml loads {fmt}"
        return Skipped(fmt, f"no runtime runs {arch} in {fmt} on sm{target.sm}: {loaders}")
    kv = ("fp8",) if fmt in KV_FP8_FORMATS and _kv_fp8(facts.trtllm.rows, target.hardware_row, m) else ()
    notes = (*made, f"runs with: {'; '.join(runs)} (runtime_models.yaml, runtimes.yaml)")
    return Eligible(fmt, FORMATS[fmt], "supported", kv, tuple(dict.fromkeys(notes)))


def runs_family(
    runtime_id: str, fmt: str, facts: ModelFacts, m: Matrices | None = None, families: Families | None = None
) -> tuple[bool, str]:
    """Whether one runtime runs the model's family in `fmt` (SMs apart), and the source that says so:
    TensorRT-LLM by its model matrix's cell, the others by their model list (runtime_models.yaml)."""
    m, families = m or load_matrices(), families or load_families()
    models = families.runtimes[runtime_id]
    if models.matrices:
        model = _check(m.trtllm_models, facts.trtllm.rows, fmt, facts.model_type)
        return (True, f"({model.cell[0]} × {model.cell[1]}: Y)") if model.cell else (False, model.reason)
    listed = models.listed(facts.architectures)
    arch = facts.architectures[0] if facts.architectures else facts.model_type
    if listed is None and models.any_architecture and models.but_not_why:
        return False, f"not {arch}: {models.but_not_why} (runtime_models.yaml)"
    return (
        (True, f"runs {listed}") if listed else (False, f"its model list has no {arch} (runtime_models.yaml)")
    )


def producer_footnotes(fmt: str, facts: ModelFacts) -> list[str]:
    """ModelOpt's footnotes on the cell that makes `fmt` for the model (its current table's, else the
    seed's), as the plan prints them; none for GPTQ."""
    if fmt == "gptq":
        return []
    m, table = load_matrices(), load_families().modelopt
    for matrix, rows in (
        (table.matrix, table.rows_for(facts.model_type, facts.modelopt.rows)),
        (m.modelopt, facts.modelopt.rows),
    ):
        verdict = _check(matrix, rows, fmt, facts.model_type)
        if verdict.cell:
            return matrix.footnote_texts(*verdict.cell)
    return []


def _decide(fmt: str, facts: ModelFacts, target: Target, policy: Policy, m: Matrices) -> Eligible | Skipped:
    producer = FORMATS[fmt]
    notes: list[str] = []
    if fmt == "gptq":
        if not facts.gptqmodel:
            g = m.gptqmodel
            return Skipped(
                fmt, f"{g.label} {g.version}: model_type {facts.model_type!r} is not among its models"
            )
    else:
        verdict = _check(m.modelopt, facts.modelopt.rows, fmt, facts.model_type)
        if verdict.cell is None:
            return Skipped(fmt, verdict.reason)
        notes += m.modelopt.footnote_texts(*verdict.cell)
    status: Literal["supported", "untested"] = "supported"
    for verdict, relaxable in (
        (model := _check(m.trtllm_models, facts.trtllm.rows, fmt, facts.model_type), model.unlisted),
        (hardware := _check(m.trtllm_hardware, (target.hardware_row,), fmt, None), hardware.column_missing),
    ):
        if verdict.reason:
            reason, admissible = verdict.reason, relaxable
            if verdict.column_missing:
                reason, admissible = _without_column(reason, fmt, target.sm, policy)
            if policy != "permissive" or not admissible:
                return Skipped(fmt, reason)
            status = "untested"
            notes.append(f"untested (permissive policy): {reason}")
    kv = ("fp8",) if fmt in KV_FP8_FORMATS and _kv_fp8(facts.trtllm.rows, target.hardware_row, m) else ()
    return Eligible(fmt, producer, status, kv, tuple(dict.fromkeys(notes)))


def _without_column(reason: str, fmt: str, sm: int, policy: Policy) -> tuple[str, bool]:
    """A format TensorRT-LLM's matrices have no column for: the reason, saying what would make it eligible
    on `sm`, and whether the permissive policy may admit it there (only where a runtime of the table loads
    it)."""
    table = load_runtimes()
    here = [runtime.name for runtime, cell in table.loaders(fmt) if cell.runs_on(sm)]
    if not here:
        return (
            f"{reason}, and no runtime loads {fmt} on sm{sm} (runtimes.yaml: {table.summary(fmt)}): "
            "no policy makes it eligible here"
        ), False
    served = f"{' and '.join(here)} {'load' if len(here) > 1 else 'loads'} it on sm{sm} (runtimes.yaml)"
    if policy == "permissive":
        return f"{reason}; {served}", True
    return (
        f"{reason}; {served}, so the permissive policy builds it here as untested: set policy = "
        '"permissive" or run `quantbot plan --policy permissive`'
    ), True


def _check(matrix: Matrix, rows: Iterable[str], fmt: str, model_type: str | None) -> _Verdict:
    """The first of `rows` whose cell supports `fmt`, else the reason naming the cell that said no."""
    rows = tuple(rows)
    column = matrix.column_for(fmt)
    if column is None:
        return _Verdict(reason=f"{matrix.label}: no column for {fmt}", unlisted=True, column_missing=True)
    if not rows:
        return _Verdict(reason=f"{matrix.label}: no row for model_type {model_type!r}", unlisted=True)
    for row in rows:
        if matrix.cell(row, column).supported:
            return _Verdict(cell=(row, column))
    first = matrix.cell(rows[0], column)
    cells = " and ".join(f"{row} × {column}" for row in rows)
    verb = "are" if len(rows) > 1 else "is"
    return _Verdict(
        reason=f"{matrix.label}: {cells} {verb} {first.meaning} ({first.text})",
        unlisted=all(matrix.cell(row, column).meaning == "not listed" for row in rows),
    )


def _kv_fp8(rows: Sequence[str], hardware_row: str, m: Matrices) -> bool:
    """FP8 KV cache is offered where both TensorRT-LLM matrices mark the FP8 KV Cache column Y."""
    model = _check(m.trtllm_models, rows, "kv_cache_fp8", None)
    return not model.reason and not _check(m.trtllm_hardware, (hardware_row,), "kv_cache_fp8", None).reason


def _fits(target: Target, needed: int | None) -> bool | None:
    if needed is None or target.memory_bytes is None:
        return None
    return needed <= target.memory_bytes


def _memory_notes(target: Target, needed: int | None, fits: bool | None) -> tuple[str, ...]:
    if needed is None:
        return ("memory check skipped: parameter count unknown",)
    if fits is None:
        return (
            f"memory check skipped: no local sm{target.sm} GPU and no sm_memory_gib configured for it "
            f"(needs ~{_size(needed)})",
        )
    return ()


def _need_basis(facts: ModelFacts, options: PlanOptions) -> str:
    per = _DTYPE_BYTES.get(facts.dtype or "", 2)
    return (
        f"{units.count(facts.parameters or 0)} parameters ({facts.parameters_source}) × {per} bytes "
        f"({facts.dtype or 'bf16 assumed'}) × {options.memory_headroom} headroom"
    )


def _describe(target: Target) -> str:
    source = target.gpu_name or target.memory_source or "memory unknown"
    return f"{source}, {_size(target.memory_bytes)}" if target.memory_bytes else source


def _size(n: int | None) -> str:
    return units.size(n or 0)
