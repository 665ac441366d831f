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

from bot.eligibility.facts import facts_from_hub
from bot.eligibility.planner import Plan, PlanOptions, plan
from bot.eligibility.targets import resolve_targets
from bot.hub import Hub
from bot.settings import Settings
from builders.spec import FORMATS, BuildSpec, Recipe, ValidationSettings, installed_toolchain
from handlers.inputs import Eligibility, JobCosts

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
                for t in placed if t.flavor and any(x.format == e.format for x in t.eligible)
            }
            for t in placed for e in t.eligible
        },
        engine_usd={t.target.sm: flavors.engine(parameters, t.flavor).usd for t in placed if t.flavor},
        basis=flavors.basis,
    )  # fmt: skip


def eligibility_of(result: Plan) -> Eligibility:
    """The plan as handlers read it: each format eligible somewhere with its SMs, and every skip's reason."""
    facts = result.facts
    if facts.revision is None:
        raise ValueError(f"plan of {facts.name} has no pinned revision")
    found: dict[str, list[int]] = {}
    skips: dict[str, list[str]] = {}
    for target_plan in result.targets:
        sm = target_plan.target.sm
        for eligible in target_plan.eligible:
            found.setdefault(eligible.format, []).append(sm)
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
        jobs=job_costs(result),
    )


class SpecMaker:
    """A revision's eligibility (`eligibility(repo, sha)`), then its specs (`specs(eligibility, ...)`)."""

    def __init__(self, settings: Settings, hub: Hub) -> None:
        self.settings = settings
        self.hub = hub

    @cached_property
    def toolchain(self) -> dict[str, str]:
        return worker_toolchain(self.settings.worker_command)

    def plan(self, repo_id: str, revision: str) -> Plan:
        """The planner's answer for `repo_id` at `revision` on the configured targets."""
        s = self.settings
        targets = resolve_targets(
            None, remote_sms=s.remote_sms, default_sms=s.target_sms, memory_gib=s.sm_memory_gib
        )
        facts = facts_from_hub(self.hub, repo_id, revision=revision)
        return plan(facts, targets.targets, PlanOptions.from_settings(s))

    def eligibility(self, repo_id: str, revision: str) -> Eligibility:
        return eligibility_of(self.plan(repo_id, revision))

    def specs(
        self, eligibility: Eligibility, *, formats: Sequence[str] = (), sms: Sequence[int] = ()
    ) -> list[BuildSpec]:
        """One spec per eligible format (only `formats` if given), each with its SMs (only `sms` if given)."""
        specs = []
        for fmt, fmt_sms in eligibility.eligible.items():
            chosen = [sm for sm in fmt_sms if not sms or sm in sms]
            if (formats and fmt not in formats) or not chosen:
                continue
            specs.append(self._spec(eligibility.repo_id, eligibility.revision, fmt, chosen))
        return specs

    def _spec(self, repo_id: str, revision: str, fmt: str, sms: list[int]) -> BuildSpec:
        s = self.settings
        recipe = dict(s.build_recipe)
        if fmt == "gptq":
            recipe.pop("kv_cache", None)
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
