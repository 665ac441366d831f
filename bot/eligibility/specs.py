"""From a revision to the BuildSpecs to queue: facts from the Hub, the plan, then one spec per format.

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

from bot.eligibility.facts import facts_from_hub
from bot.eligibility.planner import Plan, PlanOptions, plan
from bot.eligibility.targets import resolve_targets
from bot.hub import Hub
from bot.settings import Settings
from builders.spec import BuildSpec, Recipe, ValidationSettings, installed_toolchain
from handlers.plans import eligible_sms

# Formats whose checkpoint TensorRT-LLM serves with an FP8 KV cache, which hf_ptq quantizes by default.
# int8_sq is left out: its legacy checkpoint takes an INT8 KV cache, asked for explicitly.
KV_FP8_FORMATS = frozenset({"fp8", "int4_awq", "w4a8_awq", "nvfp4"})
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


class BuildPlanner:
    """The planner the handlers use: `plan(repo, sha)` then `specs(plan, formats=..., sms=...)`."""

    def __init__(self, settings: Settings, hub: Hub) -> None:
        self.settings = settings
        self.hub = hub

    @cached_property
    def toolchain(self) -> dict[str, str]:
        return worker_toolchain(self.settings.worker_command)

    def plan(self, repo_id: str, revision: str) -> Plan:
        s = self.settings
        targets = resolve_targets(
            None, remote_sms=s.remote_sms, default_sms=s.target_sms, memory_gib=s.sm_memory_gib
        )
        facts = facts_from_hub(self.hub, repo_id, revision=revision)
        return plan(facts, targets.targets, PlanOptions.from_settings(s))

    def specs(
        self,
        result: Plan,
        *,
        formats: Sequence[str] = (),
        sms: Sequence[int] = (),
        kv_cache_off: str | None = None,
    ) -> list[BuildSpec]:
        """One spec per eligible format (only `formats` if given), each with its SMs (only `sms` if given).

        `kv_cache_off` names who turned the default FP8 KV cache off (a watch, a command), if anyone."""
        facts = result.facts
        if facts.revision is None:
            raise ValueError(f"plan of {facts.name} has no pinned revision")
        specs = []
        for fmt, fmt_sms in eligible_sms(result).items():
            chosen = [sm for sm in fmt_sms if not sms or sm in sms]
            if (formats and fmt not in formats) or not chosen:
                continue
            kv = kv_cache_default(result, fmt, chosen, off=kv_cache_off)
            specs.append(self._spec(facts.name, facts.revision, fmt, chosen, kv))
        return specs

    def _spec(self, repo_id: str, revision: str, fmt: str, sms: list[int], kv: tuple[str, str]) -> BuildSpec:
        s = self.settings
        recipe = dict(s.build_recipe)
        if fmt == "gptq":
            recipe.pop("kv_cache", None)
        elif "kv_cache" in recipe:
            recipe.setdefault("kv_cache_reason", f"{recipe['kv_cache']}: set by the build_recipe setting")
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


def kv_cache_default(result: Plan, fmt: str, sms: Sequence[int], off: str | None = None) -> tuple[str, str]:
    """(kv_cache, why) for a format built for `sms`: FP8 where TensorRT-LLM's model and hardware matrices
    mark FP8 KV cache for the model on every one of them the format is eligible on, and the format takes
    it (as hf_ptq defaults), unless `off` says who turned it off."""
    if fmt not in KV_FP8_FORMATS:
        return "none", f"not quantized: {fmt} takes no FP8 KV cache by default"
    if off:
        return "none", f"not quantized: turned off by {off}"
    model = result.facts.model_type
    marks = {
        t.target.sm: e for t in result.targets if t.target.sm in sms for e in t.eligible if e.format == fmt
    }
    where = ", ".join(f"sm{sm}" for sm in (marks or sms)) or "any target"
    if marks and all("fp8" in e.kv_cache for e in marks.values()):
        return "fp8", f"fp8 by default: TensorRT-LLM's matrices mark FP8 KV cache for {model} on {where}"
    return "none", f"not quantized: TensorRT-LLM's matrices do not mark FP8 KV cache for {model} on {where}"
