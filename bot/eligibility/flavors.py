"""Hugging Face Jobs flavours as data: which GPU and SM each has, its GPU memory, its price, and an estimate.

`jobs_flavors.yaml` (beside the support matrices) is the Hub's published price list (the Jobs pricing page
and `GET /api/jobs/hardware`). With `executor = "hf-jobs"` the planner sends each SM's build to the
cheapest flavour of that SM whose memory fits the model; an SM no flavour has is planned "not built". The
cost shown before a build is an estimate whose basis the file states; what a Job really cost is recorded
from its runtime afterwards (`state.spend`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from bot.eligibility.matrices import DATA_DIR, FORMATS, read_yaml
from bot.eligibility.matrices.reader import Positive, Source, Strict, Text, fail, validated
from bot.errors import MatrixError

GB = 10**9


@dataclass(frozen=True)
class Flavor:
    """One Jobs hardware flavour: `gpus` × `gpu` (of SM `sm`), `memory_bytes` in all, `usd_per_hour`."""

    name: str
    gpu: str
    sm: int
    gpus: int
    memory_bytes: int
    usd_per_hour: float

    def describe(self) -> str:
        count = f"{self.gpus}× " if self.gpus > 1 else ""
        return f"{self.name} ({count}{self.gpu}, {self.memory_bytes // GB} GB, ${self.usd_per_hour:.2f}/h)"

    def cost(self, minutes: float) -> float:
        """USD for `minutes` on this flavour (the Hub bills by the minute)."""
        return round(self.usd_per_hour * minutes / 60, 4)


@dataclass(frozen=True)
class Estimate:
    """The estimated minutes and cost of one Job on one flavour."""

    flavor: Flavor
    minutes: float

    @property
    def usd(self) -> float:
        return self.flavor.cost(self.minutes)

    def describe(self) -> str:
        return f"~{self.minutes:.0f} min on {self.flavor.name}, ~${self.usd:.2f} (estimate)"


@dataclass(frozen=True)
class Flavors:
    """The validated table, and the estimate model it carries."""

    path: Path
    document: str
    version: str
    flavors: Mapping[str, Flavor]
    basis: str
    minutes_per_billion: Mapping[str, float]
    engine_minutes_per_billion: float
    fixed_minutes: float

    def for_sm(self, sm: int) -> list[Flavor]:
        """The flavours whose GPU is `sm`, cheapest first."""
        return sorted(
            (f for f in self.flavors.values() if f.sm == sm), key=lambda f: (f.usd_per_hour, f.name)
        )

    def cheapest(self, sm: int, needed_bytes: int | None) -> Flavor | None:
        """The cheapest flavour of `sm` whose GPU memory holds `needed_bytes` (any, when unknown)."""
        return next(
            (f for f in self.for_sm(sm) if needed_bytes is None or needed_bytes <= f.memory_bytes), None
        )

    def quantize(self, fmt: str, parameters: int | None, flavor: Flavor) -> Estimate:
        """The quantize Job of `fmt` for a model of `parameters` on `flavor`."""
        billions = (parameters or 0) / 1e9
        return Estimate(flavor, self.fixed_minutes + self.minutes_per_billion[fmt] * billions)

    def engine(self, parameters: int | None, flavor: Flavor) -> Estimate:
        """One SM's engine Job (download, trtllm-build, upload) on `flavor`."""
        billions = (parameters or 0) / 1e9
        return Estimate(flavor, self.fixed_minutes + self.engine_minutes_per_billion * billions)

    def compare(self, hardware: Iterable[Any]) -> list[str]:
        """Where the Hub's `list_jobs_hardware` answer differs from this table, one warning per flavour."""
        warnings = []
        listed = {h.name: h for h in hardware}
        for name, flavor in self.flavors.items():
            found = listed.get(name)
            if found is None:
                warnings.append(f"Jobs flavour {name}: in {self.path.name} but not offered by the Hub")
                continue
            hourly = round(found.unit_cost_usd * (60 if found.unit_label == "minute" else 1), 2)
            if abs(hourly - flavor.usd_per_hour) > 0.005:
                warnings.append(
                    f"Jobs flavour {name}: the Hub prices it ${hourly:.2f}/h, {self.path.name} says "
                    f"${flavor.usd_per_hour:.2f}/h"
                )
            accelerator = found.accelerator
            if accelerator is not None and accelerator.model.upper() != flavor.gpu.upper():
                warnings.append(
                    f"Jobs flavour {name}: the Hub's GPU is {accelerator.model}, "
                    f"{self.path.name} says {flavor.gpu}"
                )
        for name, found in listed.items():
            if found.accelerator is not None and name not in self.flavors:
                warnings.append(
                    f"Jobs flavour {name}: offered by the Hub ({found.accelerator.model}) but not in "
                    f"{self.path.name}, so never planned"
                )
        return warnings


class FlavorEntry(Strict):
    gpu: Text
    gpus: Positive
    gpu_memory_gb: Positive
    usd_per_hour: Positive


class EstimateEntry(Strict):
    basis: Text
    minutes_per_billion_parameters: dict[str, Positive]
    engine_minutes_per_billion_parameters: Positive
    fixed_minutes_per_job: Positive


class FlavorsFile(Strict):
    """jobs_flavors.yaml as written: the GPUs' SMs, the flavours, and the estimate model."""

    source: Source
    gpus: dict[Text, Annotated[int, Field(strict=True, ge=0)]]
    flavors: dict[str, FlavorEntry]
    estimate: EstimateEntry


def _parse(path: Path, data: Any) -> Flavors:
    read = validated(FlavorsFile, path, data)
    flavors = {}
    for name, spec in read.flavors.items():
        if spec.gpu not in read.gpus:
            raise fail(path, f"flavors.{name}.gpu", f"unknown GPU {spec.gpu!r} (add it to gpus: with its SM)")
        memory = int(spec.gpu_memory_gb * GB)
        flavors[name] = Flavor(name, spec.gpu, read.gpus[spec.gpu], int(spec.gpus), memory, spec.usd_per_hour)
    per_format = read.estimate.minutes_per_billion_parameters
    missing = sorted(set(FORMATS) - set(per_format))
    if missing:
        raise fail(path, "estimate.minutes_per_billion_parameters", f"missing formats {', '.join(missing)}")
    return Flavors(
        path=path,
        document=read.source.document,
        version=read.source.version,
        flavors=flavors,
        basis=read.estimate.basis,
        minutes_per_billion={fmt: per_format[fmt] for fmt in FORMATS},
        engine_minutes_per_billion=read.estimate.engine_minutes_per_billion_parameters,
        fixed_minutes=read.estimate.fixed_minutes_per_job,
    )


@lru_cache(maxsize=4)
def load_flavors(path: Path = DATA_DIR / "jobs_flavors.yaml") -> Flavors:
    """Read and validate the flavours table (a `MatrixError` names the file and the entry)."""
    try:
        return _parse(path, read_yaml(path))
    except MatrixError:
        raise
    except (TypeError, ValueError) as e:
        raise MatrixError(f"{path.name}: {e}") from None
