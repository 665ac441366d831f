"""From a revision to the BuildSpecs to queue: facts from the Hub, the planner's `Plan`, one spec per format.

`SpecMaker` is what handlers reach through their `PlannerPort`: it hands them the plan as plain data
(`handlers.inputs.Eligibility`), and turns that back into specs for the formats and SMs they pick.

Quantize once, compile per SM (DESIGN.md, decision 2): a format eligible on several SMs is one BuildSpec
listing them all. The spec's key (`BuildSpec.key()`) is computed against the toolchain of the interpreter
that will run the build, so the bot's job key and the worker's manifest key agree.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from bot.eligibility.facts import facts_from_hub
from bot.eligibility.matrices import load_runtimes
from bot.eligibility.planner import KV_FP8_FORMATS, Plan, PlanOptions, plan
from bot.eligibility.sm_steps import sm_step
from bot.eligibility.targets import GPU, gpu_sm, resolve_targets
from bot.errors import RepoNotFound, RevisionNotFound
from bot.hub import Hub
from bot.settings import Settings
from builders.spec import FORMATS, BuildSpec, Recipe, ValidationSettings, installed_toolchain
from handlers.inputs import Calibration, Eligibility, JobCosts

_PLACEHOLDER = Path("/unset")


def worker_toolchain(worker_command: Sequence[str]) -> dict[str, str]:
    """The toolchain versions of the worker interpreter (its package metadata; nothing heavy is imported)."""
    if not worker_command:
        return installed_toolchain()
    code = "import json; from builders.spec import installed_toolchain as t; print(json.dumps(t()))"
    done = subprocess.run(
        [*worker_command, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(done.stdout)


def job_costs(result: Plan) -> JobCosts | None:
    """The plan's Jobs flavours and estimated costs, as handlers read them (None unless on Jobs)."""
    if result.flavors is None:
        return None
    flavors, parameters = result.flavors, result.facts.parameters
    placed = [t for t in result.targets if t.flavor is not None]
    return JobCosts(
        flavors={t.target.sm: t.flavor.describe() for t in placed if t.flavor},
        quantize_usd={
            e.format: {
                t.target.sm: flavors.quantize(e.format, parameters, t.flavor).usd
                for t in placed
                if t.flavor and any(x.format == e.format for x in t.eligible)
            }
            for t in placed
            for e in t.eligible
        },
        engine_usd={t.target.sm: flavors.engine(parameters, t.flavor).usd for t in placed if t.flavor},
        basis=flavors.basis,
        names={t.target.sm: t.flavor.name for t in placed if t.flavor},
    )


def eligibility_of(result: Plan) -> Eligibility:
    """The plan as handlers read it: each format eligible somewhere with its SMs, and every skip's reason."""
    facts = result.facts
    found: dict[str, list[int]] = {}
    fp8_kv: dict[str, list[int]] = {}
    skips: dict[str, list[str]] = {}
    sources: dict[str, str] = {}  # format → what said yes (the runtimes policy's notes), on its first SM
    for target_plan in result.targets:
        sm = target_plan.target.sm
        for eligible in target_plan.eligible:
            found.setdefault(eligible.format, []).append(sm)
            said = [
                n.partition(": ")[2] for n in eligible.notes if n.startswith(("runs with: ", "made by: "))
            ]
            sources.setdefault(eligible.format, "; ".join(reversed(said)))
            if "fp8" in eligible.kv_cache:
                fp8_kv.setdefault(eligible.format, []).append(sm)
        for skipped in target_plan.skipped:
            skips.setdefault(skipped.format, []).append(f"sm{sm}: {skipped.reason}")
    return Eligibility(
        repo_id=facts.name,
        revision=facts.revision,
        policy=result.policy,
        refused=result.skipped,
        target_sms=tuple(t.target.sm for t in result.targets),
        eligible={fmt: found[fmt] for fmt in FORMATS if fmt in found},
        skips=skips,
        model_type=facts.model_type,
        fp8_kv_cache=fp8_kv,
        runs_with={fmt: sources.get(fmt) or load_runtimes().summary(fmt) for fmt in FORMATS if fmt in found},
        sm_steps={fmt: {sm: sm_step(fmt, sm).describe() for sm in found[fmt]} for fmt in found},
        jobs=job_costs(result),
    )


class SpecMaker:
    """A revision's eligibility (`eligibility(repo, sha)`), then its specs (`specs(eligibility, ...)`);
    `gpus`: this machine's, which plans for their SMs besides `remote_sms` (the caller found them)."""

    def __init__(self, settings: Settings, hub: Hub, gpus: Sequence[GPU] = ()) -> None:
        self.settings = settings
        self.hub = hub
        self.gpus = tuple(gpus)

    @cached_property
    def toolchain(self) -> dict[str, str]:
        return worker_toolchain(self.settings.worker_command)

    def plan(self, repo_id: str, revision: str) -> Plan:
        """The planner's answer for `repo_id` at `revision` on the configured targets."""
        s = self.settings
        targets = resolve_targets(
            None,
            remote_sms=s.remote_sms,
            default_sms=s.target_sms,
            memory_gib=s.sm_memory_gib,
            gpus=self.gpus,
        )
        facts = facts_from_hub(self.hub, repo_id, revision=revision)
        return plan(facts, targets.targets, PlanOptions.from_settings(s))

    def eligibility(self, repo_id: str, revision: str) -> Eligibility:
        return eligibility_of(self.plan(repo_id, revision))

    def specs(
        self,
        eligibility: Eligibility,
        *,
        formats: Sequence[str] = (),
        sms: Sequence[int] = (),
        kv_cache_off: str | None = None,
        calibration: Calibration | None = None,
    ) -> list[BuildSpec]:
        """One spec per eligible format (only `formats` if given), each with its SMs (only `sms` if given).

        `kv_cache_off` names who turned the default FP8 KV cache off (a watch, a command), if anyone;
        `calibration`: a Hub dataset a command asked to calibrate with (`calibration_refusal` checked it)."""
        revision = eligibility.revision
        if revision is None:
            raise ValueError(f"eligibility of {eligibility.repo_id} has no pinned revision")
        specs = []
        for fmt, fmt_sms in eligibility.eligible.items():
            chosen = [sm for sm in fmt_sms if not sms or sm in sms]
            if (formats and fmt not in formats) or not chosen:
                continue
            kv = build_kv_cache(eligibility, fmt, chosen, self.settings.build_recipe, off=kv_cache_off)
            specs.append(self._spec(eligibility.repo_id, revision, fmt, chosen, kv, calibration))
        return specs

    def gpu_sm(self, name: str) -> int | None:
        """The SM of a GPU named as people write it (`gpu_sms.yaml`), None when unknown."""
        return gpu_sm(name)

    def runs_on(self, fmt: str, sm: int) -> list[str]:
        """The runtimes of the runtime table that run a release in `fmt` on a GPU of `sm`."""
        return [runtime.name for runtime, cell in load_runtimes().loaders(fmt) if cell.runs_on(sm)]

    def calibration_refusal(self, calibration: Calibration) -> str | None:
        """Why builds may not calibrate with `calibration`: a dataset that is missing (or private), gated,
        larger than `calib_max_dataset_mb`, without the split, or with fewer rows in it than a build takes
        (as its card declares them); None when it may."""
        name, revision, split = calibration.dataset, calibration.revision, calibration.split
        try:
            info = self.hub.dataset_info(name, revision=revision, files_metadata=True)
        except RevisionNotFound:
            return f"the dataset {name} has no revision `{revision}`"
        except RepoNotFound:
            return f"there is no dataset {name} on the Hub (or it is private)"
        if info.gated:
            return f"{name} is gated: builds cannot read it"
        size = sum(s.size or 0 for s in info.siblings or [])
        limit = self.settings.calib_max_dataset_mb
        if size > limit * 1_000_000:
            return f"{name} holds {size / 1e6:,.0f} MB, over the {limit:,} MB a calibration set may be"
        splits = _declared_splits(info.card_data.to_dict() if info.card_data is not None else {})
        if splits and split not in splits:
            return f"{name} has no split `{split}` (it has {', '.join(f'`{s}`' for s in splits)})"
        rows, wanted = splits.get(split), Recipe(**self.settings.build_recipe).calib_samples
        if rows is not None and rows < wanted:
            return f"split `{split}` of {name} has {rows} rows; a build calibrates on {wanted}"
        return None

    def _spec(
        self,
        repo_id: str,
        revision: str,
        fmt: str,
        sms: list[int],
        kv: tuple[str, str],
        calibration: Calibration | None = None,
    ) -> BuildSpec:
        s = self.settings
        recipe = dict(s.build_recipe)
        if calibration is not None:
            recipe |= {
                "calib_dataset": calibration.dataset,
                "calib_revision": calibration.revision,
                "calib_split": calibration.split,
                "calib_config": None,
                "calib_text_field": None,
            }
        if fmt == "gptq":
            recipe.pop("kv_cache", None)
        else:
            recipe["kv_cache"], recipe["kv_cache_reason"] = kv
        draft = BuildSpec(
            repo_id=repo_id,
            revision=revision,
            format=fmt,  # type: ignore[arg-type]
            recipe=Recipe(**recipe),
            validation=ValidationSettings(**s.build_validation),
            target_sms=sms,
            work_dir=_PLACEHOLDER,
            output_dir=_PLACEHOLDER,
            allow_pickle=s.allow_pickle,
            trust_remote_code=repo_id in s.trust_remote_code_repos,
            toolchain=self.toolchain,
        )
        folder = Path(s.data_dir) / "builds" / draft.key()[:24]
        return draft.model_copy(update={"work_dir": folder / "work", "output_dir": folder / "out"})


def _declared_splits(card: dict[str, Any]) -> dict[str, int | None]:
    """A dataset card's splits (`dataset_info.splits`, one config or a list of them) → their row counts."""
    infos = card.get("dataset_info")
    found: dict[str, int | None] = {}
    for info in infos if isinstance(infos, list) else [infos] if isinstance(infos, dict) else []:
        for split in info.get("splits") or [] if isinstance(info, dict) else []:
            if isinstance(split, dict) and isinstance(split.get("name"), str):
                rows = split.get("num_examples")
                found[split["name"]] = rows if isinstance(rows, int) else None
    return found


def kv_cache_default(
    eligibility: Eligibility, fmt: str, sms: Sequence[int], off: str | None = None
) -> tuple[str, str]:
    """(kv_cache, why) for a format built for `sms`: FP8 where TensorRT-LLM's model and hardware matrices
    mark FP8 KV cache for the model on every one of them the format is eligible on, and the format takes
    it (as hf_ptq defaults), unless `off` says who turned it off."""
    if fmt not in KV_FP8_FORMATS:
        return "none", f"not quantized: {fmt} takes no FP8 KV cache by default"
    if off:
        return "none", f"not quantized: turned off by {off}"
    model = eligibility.model_type
    marked = [sm for sm in eligibility.eligible.get(fmt, []) if sm in sms]
    where = ", ".join(f"sm{sm}" for sm in (marked or sms)) or "any target"
    if marked and all(sm in eligibility.fp8_kv_cache.get(fmt, []) for sm in marked):
        return "fp8", f"fp8 by default: TensorRT-LLM's matrices mark FP8 KV cache for {model} on {where}"
    return "none", f"not quantized: TensorRT-LLM's matrices do not mark FP8 KV cache for {model} on {where}"


def build_kv_cache(
    eligibility: Eligibility, fmt: str, sms: Sequence[int], recipe: dict[str, Any], off: str | None = None
) -> tuple[str, str]:
    """(kv_cache, why) as the build of `fmt` for `sms` will have it: none for GPTQ, the `build_recipe`
    setting's where it names one, else the default (`kv_cache_default`). `quantbot plan` shows this."""
    if fmt == "gptq":
        return "none", "not quantized: GPTQ checkpoints carry no KV-cache scales"
    if "kv_cache" in recipe:
        kv = str(recipe["kv_cache"])
        return kv, str(recipe.get("kv_cache_reason") or f"{kv}: set by the build_recipe setting")
    return kv_cache_default(eligibility, fmt, sms, off)
