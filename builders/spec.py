"""The contract between the bot and one build: a `BuildSpec` goes in, a `Manifest` comes out.

Between the bot and a worker, the same way: a `TaskRequest` goes out (one task of a job's `TaskGraph`, the
plan stored with the job when it was queued), a `TaskResult` comes back.

Both are plain pydantic models written as JSON files, so the bot (which never imports torch) and a worker
(which never needs FastAPI) share nothing but this module. A worker runs `python -m builders run SPEC.json`,
prints `Progress` lines on stdout and leaves `manifest.json` in the spec's output directory.

A build's identity is `BuildSpec.key()`: a hash of the upstream repo and pinned sha, the format, the
recipe fields that format uses and the versions of the toolchain that produces it (DESIGN.md, decision 3).
Engine settings, target SMs and directories are not part of it: they say where and for which GPUs, not what.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import tempfile
from datetime import UTC, datetime
from enum import StrEnum
from importlib import metadata
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

SCHEMA_VERSION: Final = 1

Format = Literal["fp8", "int8_sq", "int4_awq", "w4a8_awq", "nvfp4", "gptq"]
FORMATS: tuple[str, ...] = ("fp8", "int8_sq", "int4_awq", "w4a8_awq", "nvfp4", "gptq")
MODELOPT_FORMATS = frozenset({"fp8", "int8_sq", "int4_awq", "w4a8_awq", "nvfp4"})
AWQ_FORMATS = frozenset({"int4_awq", "w4a8_awq"})
KvCache = Literal["fp8", "int8", "none"]

STAGES: tuple[str, ...] = ("fetch", "load", "quantize", "export", "engines", "validate", "manifest")
# ModelOpt's hf_ptq default: the "3.0.0" config of abisee/cnn_dailymail, its "article" column, read through
# HF_ENDPOINT (the real Hub, or hubsim, which serves a small stand-in under the same id).
DEFAULT_CALIBRATION = "abisee/cnn_dailymail"
DEFAULT_CALIBRATION_CONFIG = "3.0.0"
DEFAULT_CALIBRATION_FIELD = "article"
MANIFEST_NAME = "manifest.json"

# Distribution names (as pip knows them) of each toolchain, read without importing anything heavy.
TOOLCHAIN_DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "transformers": ("transformers",),
    "modelopt": ("nvidia-modelopt",),
    "gptqmodel": ("gptqmodel", "GPTQModel"),
    "tensorrt_llm": ("tensorrt_llm", "tensorrt-llm"),
}
# Which toolchains produce a format's artifact, hence enter its key.
_KEY_TOOLCHAINS = {
    "modelopt": ("torch", "transformers", "modelopt"),
    "gptq": ("torch", "transformers", "gptqmodel"),
}
_SHA_RE = re.compile(r"^[0-9a-f]{40}$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------------------------- BuildSpec


class Recipe(_Model):
    """How to quantize: calibration data and the format's own knobs (defaults follow ModelOpt's hf_ptq)."""

    calib_dataset: str = Field(
        DEFAULT_CALIBRATION,
        description="A Hub dataset id (read through HF_ENDPOINT) or a local .txt/.jsonl file or folder.",
    )
    calib_config: str | None = Field(
        None, description="Config of a Hub dataset (default: '3.0.0' for cnn_dailymail, else its default)."
    )
    calib_split: str = Field("train", pattern=r"^[\w.-]+$", description="Split of a Hub dataset.")
    calib_revision: str | None = Field(
        None,
        pattern=r"^[\w.-]{1,100}$",
        description="Revision of a Hub dataset (branch, tag or sha; default: main), pinned at fetch.",
    )
    calib_text_field: str | None = Field(
        None, description="Column holding the text (default: 'article' for cnn_dailymail, else 'text')."
    )
    calib_seed: int | None = Field(
        None, description="Shuffle a Hub dataset with this seed; None: its first rows in order (as hf_ptq)."
    )
    calib_samples: int = Field(512, ge=1, le=100_000, description="Number of calibration samples.")
    calib_seq_len: int = Field(
        512, ge=8, le=131_072, description="Tokens per calibration sample (truncated)."
    )
    calib_batch_size: int = Field(1, ge=1, le=1024, description="Calibration batch; halved once on CUDA OOM.")
    awq_block_size: int = Field(128, description="AWQ weight group size (int4_awq, w4a8_awq).")
    kv_cache: KvCache = Field("none", description="KV-cache quantization (ModelOpt formats).")
    kv_cache_reason: str = Field(
        "", description="Why kv_cache has its value (a default from the matrix, an opt-out); recorded only."
    )
    gptq_bits: Literal[2, 3, 4, 8] = 4
    gptq_group_size: int = Field(128, description="GPTQ group size; -1 for per-channel.")
    gptq_desc_act: bool = Field(False, description="GPTQ activation order (TensorRT-LLM cannot serve it).")

    def for_format(self, fmt: str) -> dict[str, Any]:
        """The fields that change the artifact of `fmt`; only these enter the build key."""
        common = {
            "calib_dataset": self.calib_dataset,
            "calib_samples": self.calib_samples,
            "calib_seq_len": self.calib_seq_len,
        }
        if self.calib_hub:  # only non-default values enter, so keys of earlier builds stay what they were
            common |= {
                k: v
                for k, v in (
                    ("calib_config", self.calib_config),
                    ("calib_split", self.calib_split if self.calib_split != "train" else None),
                    ("calib_revision", self.calib_revision),
                    ("calib_text_field", self.calib_text_field),
                    ("calib_seed", self.calib_seed),
                )
                if v is not None
            }
        if fmt == "gptq":
            return common | {
                "gptq_bits": self.gptq_bits,
                "gptq_group_size": self.gptq_group_size,
                "gptq_desc_act": self.gptq_desc_act,
            }
        used = common | {"kv_cache": self.kv_cache}
        if fmt in AWQ_FORMATS:
            used["awq_block_size"] = self.awq_block_size
        return used

    @property
    def calib_hub(self) -> bool:
        """Whether calib_dataset names a Hub dataset (an id) rather than a local file or folder."""
        return is_hub_dataset_id(self.calib_dataset)

    def calib_hub_source(self) -> tuple[str, str | None, str, str]:
        """(dataset id, config, split, text column) of a Hub calibration dataset, defaults filled in."""
        default = self.calib_dataset in (DEFAULT_CALIBRATION, "cnn_dailymail")
        return (
            DEFAULT_CALIBRATION if default else self.calib_dataset,
            self.calib_config or (DEFAULT_CALIBRATION_CONFIG if default else None),
            self.calib_split,
            self.calib_text_field or (DEFAULT_CALIBRATION_FIELD if default else "text"),
        )


def is_hub_dataset_id(source: str) -> bool:
    """`org/name` (or ModelOpt's bare `cnn_dailymail`) that is not an existing local path or a file name."""
    if source == "cnn_dailymail":
        return True
    if Path(source).expanduser().exists() or source.startswith((".", "/", "~")):
        return False
    return bool(re.fullmatch(r"[\w.-]+/[\w.-]+", source)) and not source.endswith((".txt", ".jsonl", ".json"))


class EngineSettings(_Model):
    """What `trtllm-build` is told (TensorRT-LLM <= 1.2); the card reports these values."""

    max_batch_size: int = Field(8, ge=1)
    max_input_len: int = Field(2048, ge=1)
    max_output_len: int = Field(512, ge=1)
    max_seq_len: int | None = Field(None, ge=2, description="Default: max_input_len + max_output_len.")
    kv_cache_type: Literal["paged", "continuous"] = "paged"
    gemm_plugin: str = Field("auto", pattern=r"^[a-z0-9_]+$")
    timeout_s: int = Field(3 * 3600, ge=1, description="Give up on one engine build after this long.")

    @property
    def seq_len(self) -> int:
        return self.max_seq_len or self.max_input_len + self.max_output_len


class ValidationSettings(_Model):
    """How the artifact is checked after it is made; none of this changes the artifact."""

    eval_text: Path | None = Field(
        None, description="Held-out text; default: the shipped builders/data/heldout.txt."
    )
    eval_tokens: int = Field(2048, ge=16, description="Tokens of the held-out text scored for perplexity.")
    eval_seq_len: int = Field(256, ge=8, description="Window length for perplexity.")
    generate_tokens: int = Field(8, ge=1, le=512, description="Tokens generated greedily as a sample.")
    prompt: str = Field("It was a dark and stormy night;", min_length=1)
    max_perplexity_increase: float = Field(
        0.5, gt=0, description="Fail when quantized perplexity exceeds base by more than this fraction."
    )
    require_perplexity: bool = Field(
        True, description="Fail when the quantized perplexity cannot be measured on this device."
    )


class BuildSpec(_Model):
    """One build: (model, revision, format, recipe), the SMs to compile engines for, and where to work."""

    schema_version: Literal[1] = SCHEMA_VERSION
    repo_id: str | None = Field(None, description="Upstream Hub repo, e.g. 'org/model'.")
    revision: str | None = Field(None, description="Pinned 40-hex commit sha of repo_id.")
    local_dir: Path | None = Field(None, description="A local model folder instead of a Hub repo.")
    format: Format
    recipe: Recipe = Field(default_factory=Recipe)
    engine: EngineSettings = Field(default_factory=EngineSettings)
    validation: ValidationSettings = Field(default_factory=ValidationSettings)
    target_sms: list[int] = Field(default_factory=list, description="SMs to build engines for, e.g. [90].")
    engines_required: bool = Field(False, description="Fail when an engine for a target SM was not built.")
    work_dir: Path = Field(description="Stage records and intermediates; a rerun resumes from here.")
    output_dir: Path = Field(description="Artifacts (the repo layout to publish) and manifest.json.")
    cache_dir: Path | None = Field(None, description="Shared download cache; default: the HF cache.")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    allow_pickle: bool = Field(False, description="Allow .bin/.pt weights when there are no safetensors.")
    trust_remote_code: bool = False
    disk_reserve_bytes: int = Field(1 << 30, ge=0, description="Free space to keep after downloading.")
    toolchain: dict[str, str] | None = Field(
        None, description="Worker toolchain versions for key(); default: what this interpreter has installed."
    )

    @model_validator(mode="after")
    def _consistent(self) -> BuildSpec:
        if (self.repo_id is None) == (self.local_dir is None):
            raise ValueError("give exactly one of repo_id (with revision) or local_dir")
        if self.repo_id is not None:
            if not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", self.repo_id):
                raise ValueError(f"not a Hub repo id: {self.repo_id!r}")
            if self.revision is None or not _SHA_RE.match(self.revision):
                raise ValueError("revision must be the pinned 40-hex commit sha of repo_id")
        if self.format == "gptq" and self.recipe.kv_cache != "none":
            raise ValueError(
                "kv_cache applies to ModelOpt formats; GPTQ checkpoints carry no KV-cache scales"
            )
        if self.recipe.kv_cache == "int8" and self.format != "int8_sq":
            raise ValueError(
                "kv_cache int8 exists only in legacy TensorRT-LLM checkpoints (int8_sq); ModelOpt's unified "
                "checkpoint takes fp8 or none"
            )
        if self.recipe.awq_block_size not in (32, 64, 128, 256):
            raise ValueError("awq_block_size must be 32, 64, 128 or 256")
        if self.recipe.gptq_group_size != -1 and self.recipe.gptq_group_size <= 0:
            raise ValueError("gptq_group_size must be positive or -1")
        return self

    # -- identity

    def key(self, toolchain: dict[str, str] | None = None) -> str:
        """A stable 64-hex hash of what the artifact depends on: source, format, recipe, toolchain."""
        versions = toolchain or self.toolchain or installed_toolchain()
        producer = "gptq" if self.format == "gptq" else "modelopt"
        payload = {
            "schema": SCHEMA_VERSION,
            # The Hub resolves repo ids in any case: `Org/Model` and `org/model` are one source.
            "source": {"repo_id": self.repo_id.lower(), "revision": self.revision}
            if self.repo_id
            else {"local": _folder_fingerprint(self.local_dir)},
            "format": self.format,
            "recipe": self.recipe.for_format(self.format),
            "toolchain": {name: versions.get(name) for name in _KEY_TOOLCHAINS[producer]},
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    @property
    def producer(self) -> str:
        return "gptqmodel" if self.format == "gptq" else "modelopt"

    @property
    def source_label(self) -> str:
        return f"{self.repo_id}@{self.revision}" if self.repo_id else str(self.local_dir)

    @property
    def manifest_path(self) -> Path:
        return self.output_dir / MANIFEST_NAME

    # -- files

    def write(self, path: Path) -> Path:
        write_json_atomic(path, self.model_dump(mode="json"))
        return path

    @classmethod
    def read(cls, path: Path) -> BuildSpec:
        return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))


def installed_toolchain() -> dict[str, str]:
    """Versions of the toolchains this interpreter can import, from package metadata (nothing imported)."""
    found: dict[str, str] = {}
    for name, dists in TOOLCHAIN_DISTRIBUTIONS.items():
        for dist in dists:
            try:
                found[name] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    return found


def _folder_fingerprint(folder: Path | None) -> str:
    """Names, sizes and mtimes of a local model folder: changes whenever its files do."""
    root = Path(folder or ".").resolve()
    entries = sorted(
        (p.relative_to(root).as_posix(), p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    )
    return hashlib.sha256(json.dumps([str(root), entries]).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------- Progress


class Progress(_Model):
    """One line the worker prints on stdout: `{"stage", "fraction", "message"}` (+ optional extras)."""

    model_config = ConfigDict(extra="allow")

    stage: str
    fraction: float = Field(ge=0.0, le=1.0, description="Progress within the stage.")
    message: str = ""

    @classmethod
    def parse_line(cls, line: str) -> Progress | None:
        """The progress in a stdout line, or None for anything else (the worker's stdout is only these)."""
        try:
            return cls.model_validate_json(line)
        except ValidationError:
            return None

    @property
    def overall(self) -> float:
        """Progress of the whole build, counting each stage as an equal share."""
        index = STAGES.index(self.stage) if self.stage in STAGES else 0
        return min(1.0, (index + self.fraction) / len(STAGES))


# ---------------------------------------------------------------------------------------------- Manifest


class StageStatus(StrEnum):
    pending = "pending"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    skipped = "skipped"


class StageRecord(_Model):
    """What one stage did. `runs` counts starts across reruns; `resumed` means taken from an earlier run."""

    name: str
    status: StageStatus = StageStatus.pending
    started_at: datetime | None = None
    finished_at: datetime | None = None
    wall_s: float | None = None
    peak_rss_bytes: int | None = Field(
        None, description="Peak resident memory of the worker during the stage."
    )
    cuda_peak_bytes: int | None = Field(None, description="torch.cuda.max_memory_allocated during the stage.")
    runs: int = 0
    resumed: bool = False
    message: str = ""
    details: dict[str, Any] = Field(default_factory=dict)


class Toolchain(_Model):
    python: str
    torch: str | None = None
    transformers: str | None = None
    modelopt: str | None = None
    gptqmodel: str | None = None
    tensorrt_llm: str | None = None
    cuda: str | None = Field(None, description="CUDA version torch was built with (None on CPU builds).")
    driver: str | None = Field(None, description="NVIDIA driver version (None without a GPU).")
    platform: str = ""


class Device(_Model):
    kind: Literal["cpu", "cuda"]
    name: str = Field(description="GPU name, or the CPU model.")
    sm: int | None = Field(None, description="Compute capability as an SM number, e.g. 90 for 9.0.")
    memory_bytes: int | None = None
    count: int = 1
    cpu_count: int | None = None


class SourceRecord(_Model):
    repo_id: str | None = None
    revision: str | None = None
    local_dir: str | None = None
    snapshot_dir: str | None = None
    files: list[str] = Field(default_factory=list)
    total_bytes: int = 0
    downloaded_bytes: int = Field(
        0, description="Bytes this build fetched; 0 when the shared cache had them."
    )
    architecture: str | None = None
    model_type: str | None = None
    dtype: str | None = None
    num_parameters: int | None = None
    chat_template: bool | None = Field(
        None, description="Whether the upstream's tokenizer has a chat template (cards prompt through it)."
    )
    vision: bool | None = Field(
        None, description="A vision-language model: its language model alone was quantized."
    )


class CalibrationRecord(_Model):
    dataset: str = Field(description="Hub dataset id, or the local file or folder's name (never its path).")
    source: Literal["hub", "local"] = "local"
    revision: str | None = Field(None, description="Commit sha of the Hub dataset that was read.")
    config: str | None = None
    split: str | None = None
    text_field: str | None = None
    seed: int | None = Field(None, description="Shuffle seed; None: the first rows in order.")
    samples: int = Field(description="Samples used.")
    samples_requested: int | None = None
    samples_note: str | None = Field(None, description="Why fewer samples were used than requested.")
    seq_len: int
    batch_size: int = Field(description="Batch size actually used (after an OOM retry, the smaller one).")
    awq_block_size: int | None = None
    oom_retries: int = 0
    tokens: int | None = None


class QuantizationRecord(_Model):
    format: str
    producer: str
    producer_version: str | None = None
    quant_algo: str | None = None
    kv_cache_quant_algo: str | None = None
    kv_cache_reason: str | None = Field(None, description="Why the KV cache is (not) quantized.")
    group_size: int | None = None
    bits: int | None = None
    desc_act: bool | None = None
    checkpoint: str | None = Field(None, description="Artifact folder, relative to the output dir.")
    checkpoint_kind: Literal["hf_unified", "gptq", "trtllm_legacy"] | None = None
    config_file: str | None = Field(
        None, description="The quantization config file, relative to the output dir."
    )
    config: dict[str, Any] = Field(default_factory=dict, description="That file's content, as exported.")
    legacy_checkpoint: str | None = Field(
        None,
        description="Folder of the legacy TensorRT-LLM checkpoint trtllm-build (TensorRT-LLM ≤ 1.2) reads, "
        "relative to the output dir: int8_sq's only checkpoint (its root holds no weights).",
    )
    legacy_quantization: dict[str, Any] | None = Field(
        None, description="That checkpoint's config.json `quantization` section, as exported."
    )
    calibration: CalibrationRecord | None = None


class Artifact(_Model):
    path: str = Field(description="POSIX path relative to the output dir.")
    size: int
    sha256: str
    kind: Literal["checkpoint", "tokenizer", "engine", "config"]


class EngineRecord(_Model):
    sm: int
    status: Literal["built", "not_built", "failed"]
    reason: str = ""
    path: str | None = Field(None, description="Engine folder relative to the output dir, when built.")
    tensorrt_llm: str | None = None
    cuda: str | None = None
    build_s: float | None = None


# Runtimes the serving check drives (ids of bot/eligibility/matrices/runtimes.yaml): each loads a release by
# repo id in this process. trtllm_build is the engine step's; TGI runs as a container, which no worker starts.
SERVING_RUNTIMES: tuple[str, ...] = ("trtllm_pytorch", "vllm", "sglang", "transformers")


class ServingRuntime(_Model):
    """One runtime the runtime table says loads the release's format on the SM checked."""

    id: str = Field(description="The runtime's id in runtimes.yaml (one of SERVING_RUNTIMES).")
    name: str
    cpu: bool = Field(False, description="Whether it also runs on CPU (the table's `min_sm: 0`).")


class ServingRequest(_Model):
    """What one SM's serving check loads (a release by repo id at a revision) and in which runtimes."""

    repo_id: str
    revision: str = Field(description="The commit to load: the draft PR's pinned one while staged.")
    sm: int = Field(description="The SM of the per-SM task; a runtime runs only on a GPU of this SM.")
    runtimes: list[ServingRuntime] = Field(default_factory=list)
    prompt: str = Field(min_length=1, description="The card's prompt.")
    max_new_tokens: int = Field(32, ge=1, le=1024)
    trust_remote_code: bool = False


class ServingRecord(_Model):
    """What one runtime did with the release on one worker: figures only when it ran, never otherwise."""

    sm: int
    runtime: str
    runtime_name: str
    version: str | None = Field(None, description="The runtime's installed version, when installed.")
    status: Literal["passed", "failed", "not_run"]
    reason: str = Field("", description="Why it failed or did not run.")
    device: Literal["cuda", "cpu"] | None = Field(None, description="Where it ran, when it ran.")
    gpu: str | None = Field(None, description="The worker's GPU (or CPU) name, when it ran.")
    device_sm: int | None = Field(None, description="The SM of the GPU it ran on (None on CPU).")
    repo_id: str = ""
    revision: str = ""
    download_s: float | None = Field(
        None, description="Seconds to download the release by repo id into the Hub cache (0 when cached)."
    )
    load_s: float | None = Field(
        None, description="Seconds from the runtime's constructor, given the repo id, to a ready model."
    )
    generate_s: float | None = None
    new_tokens: int | None = None
    tokens_per_s: float | None = Field(None, description="new_tokens / generate_s, one greedy request.")
    peak_gpu_memory_bytes: int | None = Field(
        None, description="Highest device memory in use while loading and generating, less that before."
    )
    output: str | None = Field(None, description="The continuation generated from the prompt.")

    @model_validator(mode="after")
    def _figures_only_when_run(self) -> ServingRecord:
        figures = (
            self.download_s,
            self.load_s,
            self.generate_s,
            self.new_tokens,
            self.tokens_per_s,
            self.peak_gpu_memory_bytes,
        )
        if self.status == "not_run" and any(f is not None for f in figures):
            raise ValueError("a serving check that did not run records no figure")
        if self.status != "passed" and not self.reason:
            raise ValueError("a serving check that failed or did not run says why")
        return self

    @property
    def summary(self) -> str:
        """`loaded on CPU in 4.1 s, 12.5 tokens/s`, or `not run: why`: one line for logs and task records."""
        if self.status != "passed":
            return f"{self.status.replace('_', ' ')}: {self.reason}"
        where = "CPU" if self.device == "cpu" else f"{self.gpu} (sm{self.device_sm})"
        return f"loaded on {where} in {self.load_s} s, {self.tokens_per_s} tokens/s"


class Check(_Model):
    name: str
    ok: bool
    detail: str = ""


class Perplexity(_Model):
    text: str = Field(description="Name of the held-out text.")
    tokens: int
    seq_len: int
    base: float | None = None
    quantized: float | None = None
    delta: float | None = Field(None, description="quantized - base")
    delta_pct: float | None = Field(None, description="100 * (quantized - base) / base")
    method: str = Field(
        "", description="How the quantized model was run (fake-quant, reloaded artifact, ...)."
    )
    not_measured: str | None = Field(None, description="Why the quantized perplexity is missing, if it is.")

    # Every card, PR description, CLI summary and validation check writes a perplexity with these two.
    def base_figure(self) -> str:
        """`12.345`: the base model's perplexity."""
        return f"{self.base:.3f}" if self.base is not None else "not measured"

    def quantized_figure(self) -> str:
        """`12.987 (+5.20%)`: the quantized model's perplexity and its change from the base model's."""
        if self.quantized is None:
            return f"not measured: {self.not_measured}" if self.not_measured else "not measured"
        change = f" ({self.delta_pct:+.2f}%)" if self.delta_pct is not None else ""
        return f"{self.quantized:.3f}{change}"


class Sample(_Model):
    prompt: str
    output: str
    new_tokens: int


class ValidationRecord(_Model):
    ok: bool
    reload: str = Field("", description="What was loaded back and how.")
    checks: list[Check] = Field(default_factory=list)
    perplexity: Perplexity | None = None
    sample: Sample | None = None
    reason: str | None = Field(None, description="Why validation failed.")


class RuntimeLine(_Model):
    """A transformers line (`4.57`) and the runtimes of the table that run on it."""

    line: str
    runtimes: list[str] = Field(default_factory=list)


class LineCheck(_Model):
    """What one transformers line read of the release, compared with what it read of the upstream."""

    line: str
    runtimes: list[str] = Field(default_factory=list)
    transformers: str | None = Field(None, description="The exact version that read both (e.g. 4.57.6).")
    ok: bool | None = Field(description="Whether both read the same; None: not checked (`detail` says why).")
    detail: str = ""

    def as_check(self) -> Check:
        return Check(
            name=f"transformers {self.transformers or self.line} ({', '.join(self.runtimes)})",
            ok=bool(self.ok),
            detail=self.detail,
        )


# `python -m builders verify` exits so when the Hub failed the download: the publish is tried again later.
EXIT_HUB_FAILED = 75  # EX_TEMPFAIL


class VerifyRequest(_Model):
    """What the publisher asks a worker to verify of a release it has just committed to the Hub."""

    repo_id: str
    revision: str = Field(description="The commit to download (the release's last commit).")
    endpoint: str
    extra_files: list[str] = Field(
        default_factory=list, description="Files the publisher added beside the build's artifacts (licences)."
    )
    rules: dict[str, list[dict[str, Any]]] = Field(
        default_factory=dict, description="Runtime id → its detection rule for this format (runtimes.yaml)."
    )
    snippet: str | None = Field(
        None, description="The card's own Python usage snippet, run where it can run."
    )
    snippet_module: str | None = Field(None, description="The module the snippet imports (its runtime).")
    snippet_gpu: bool = Field(False, description="Whether the snippet's runtime needs a GPU.")
    snippet_prompt: str | None = Field(None, description="The prompt the snippet generates from.")
    snippet_timeout_s: int = Field(900, ge=1)
    upstream_repo_id: str | None = Field(None, description="The upstream, read beside the release.")
    upstream_revision: str | None = Field(None, description="The upstream's pinned revision.")
    trust_remote_code: bool = Field(False, description="Whether the repos' own code may run when read.")
    lines: list[RuntimeLine] = Field(
        default_factory=list, description="Transformers lines to read release and upstream under."
    )
    envs_dir: str | None = Field(
        None, description="Where the side environments of those lines live; None: they are not made."
    )


class VerificationRecord(_Model):
    """What a worker found when it downloaded the release back from the Hub by its repo id."""

    ok: bool
    repo_id: str
    revision: str = Field(description="The commit that was downloaded and checked.")
    files: int = Field(0, description="Files downloaded and checked.")
    checks: list[Check] = Field(default_factory=list)
    runtimes: list[str] = Field(default_factory=list, description="Runtimes whose detection rule matches.")
    lines: list[LineCheck] = Field(
        default_factory=list, description="The release read under each runtime's transformers line."
    )
    output: str | None = Field(None, description="What the card's snippet printed (prompt and continuation).")
    not_run: str | None = Field(None, description="Why the card's snippet was not run, if it was not.")
    at: datetime | None = None

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok] + [x.as_check() for x in self.lines if x.ok is False]


class BuildError(_Model):
    stage: str
    kind: str = Field(description="Stable label: invalid_spec, revision_not_found, no_safetensors, ...")
    message: str
    bad_input: bool = Field(False, description="The spec or the upstream repo is at fault, not the worker.")


class Manifest(_Model):
    """Everything measured about one build; the publisher and the bot read only this."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    key: str = Field("", description="BuildSpec.key(); empty when the spec itself was invalid.")
    status: Literal["running", "succeeded", "failed"] = "running"
    started_at: datetime
    finished_at: datetime | None = None
    wall_s: float | None = None
    spec: BuildSpec | None = Field(None, description="The spec as run; None when it did not validate.")
    toolchain: Toolchain | None = None
    device: Device | None = None
    source: SourceRecord | None = None
    stages: list[StageRecord] = Field(default_factory=list)
    quantization: QuantizationRecord | None = None
    artifacts: list[Artifact] = Field(default_factory=list)
    engines: list[EngineRecord] = Field(default_factory=list)
    serving: list[ServingRecord] = Field(
        default_factory=list,
        description="Each SM's serving check: the release loaded by repo id, per runtime.",
    )
    validation: ValidationRecord | None = None
    verification: VerificationRecord | None = Field(
        None, description="Added by the publisher once the release was downloaded back from the Hub."
    )
    errors: list[BuildError] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    def require_spec(self) -> BuildSpec:
        """The spec as run: every build that got past validating its spec records it (a publisher or card
        reading a manifest without one is handed a broken build directory, and says so)."""
        if self.spec is None:
            raise ValueError("the manifest records no build spec: the build's spec did not validate")
        return self.spec

    def stage(self, name: str) -> StageRecord | None:
        return next((s for s in self.stages if s.name == name), None)

    def write(self, path: Path) -> Path:
        write_json_atomic(path, self.model_dump(mode="json"))
        return path

    @classmethod
    def read(cls, path: Path) -> Manifest:
        return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------- tasks of a job

TaskKind = Literal["quantize", "engine"]
QUANTIZE_QUEUE: Final = "quantize"


def sm_queue(sm: int) -> str:
    """The queue of the workers whose GPU is `sm` (an engine runs only on the SM it was built on)."""
    return f"sm{sm}"


class TaskPlan(_Model):
    """One task of a job, planned when the job was queued: where it goes and what it should cost."""

    kind: TaskKind
    sm: int | None = Field(None, description="The SM of a per-SM task; None for the quantize task.")
    queue: str = Field(description="The Celery queue: `quantize`, or the SM's (`sm90`).")
    flavor: str | None = Field(None, description="The Hugging Face Jobs flavour, when builds run as Jobs.")
    usd: float | None = Field(None, description="The task's estimated cost on that flavour.")


class TaskGraph(_Model):
    """A job's tasks: quantize once, then one task per target SM. Stored with the job; never re-planned."""

    quantize: TaskPlan
    sms: list[TaskPlan] = Field(default_factory=list)

    @classmethod
    def of(
        cls,
        spec: BuildSpec,
        flavors: dict[int, str] | None = None,
        quantize_usd: dict[int, float] | None = None,
        sm_usd: dict[int, float] | None = None,
    ) -> TaskGraph:
        """The graph of `spec`: each SM on its queue and, on Jobs, its flavour (`flavors`, SM → name) with
        its estimate; the quantize task on the cheapest of its SMs' flavours."""
        flavors, quantize_usd, sm_usd = flavors or {}, quantize_usd or {}, sm_usd or {}
        placed = [sm for sm in spec.target_sms if sm in flavors]
        cheapest = min(placed, key=lambda sm: quantize_usd.get(sm, 0.0)) if placed else None
        quantize = TaskPlan(
            kind="quantize",
            queue=QUANTIZE_QUEUE,
            flavor=flavors.get(cheapest) if cheapest is not None else None,
            usd=quantize_usd.get(cheapest) if cheapest is not None else None,
        )
        sms = [
            TaskPlan(kind="engine", sm=sm, queue=sm_queue(sm), flavor=flavors.get(sm), usd=sm_usd.get(sm))
            for sm in spec.target_sms
        ]
        return cls(quantize=quantize, sms=sms)

    def task(self, sm: int | None) -> TaskPlan:
        """The quantize task (`sm` None) or an SM's; `KeyError` for an SM the job was not planned for."""
        if sm is None:
            return self.quantize
        found = next((t for t in self.sms if t.sm == sm), None)
        if found is None:
            raise KeyError(f"sm{sm} is not in the job's plan")
        return found

    @property
    def usd(self) -> float:
        """The whole job's estimate (0 where nothing was priced)."""
        return round(sum(t.usd or 0.0 for t in [self.quantize, *self.sms]), 2)


class StagedCheckpoint(_Model):
    """The release's draft PR and the commit its checkpoint is pinned at (engine tasks download it)."""

    repo_id: str
    pr_number: int
    revision: str
    url: str

    @property
    def ref(self) -> str:
        return f"refs/pr/{self.pr_number}"


class ReleaseRecord(_Model):
    """A release the quantize task found already made (the key released, declined or superseded)."""

    status: str
    kind: str
    repo_id: str
    url: str
    key: str
    pr_number: int | None = None
    superseded: list[int] = Field(default_factory=list)
    message: str = ""


class EngineOutcome(_Model):
    """What `python -m builders engine` leaves in `engine.json`: the SM's record and the engine's files."""

    record: EngineRecord
    artifacts: list[Artifact] = Field(default_factory=list)
    serving: list[ServingRecord] = Field(default_factory=list, description="The SM's serving check, if run.")


class TaskReport(_Model):
    """A running task's latest report: its build's stage and progress, and who runs it where."""

    stage: str
    progress: float = 0.0
    message: str = ""
    beat: int = 0
    worker: str | None = None
    queue: str | None = None


class TaskRequest(_Model):
    """What the bot sends a worker (Celery) or a Job: one task of one job, all it needs and nothing secret."""

    job_id: int
    kind: TaskKind
    sm: int | None = None
    queue: str = Field(description="The queue or Jobs flavour it was sent to.")
    spec: BuildSpec
    repo_id: str | None = Field(None, description="quantize: the release's repo.")
    draft: StagedCheckpoint | None = Field(None, description="engine: the checkpoint to build from.")
    files: list[str] = Field(default_factory=list, description="engine: the checkpoint's files.")
    beat_s: float = 1.0
    attempt: int = 1

    @property
    def task_name(self) -> str:
        """The task's name in ids and labels: `quantize`, or the SM's queue."""
        return self.kind if self.sm is None else sm_queue(self.sm)


class TaskResult(_Model):
    """What a task answers: who ran it, and the checkpoint staged, the release found, or the SM's record."""

    worker: str | None = None
    host: str | None = None
    queue: str | None = None
    skipped: str | None = Field(None, description="Fenced before it started: nothing ran.")
    ok: bool = True
    error: str | None = None
    hub_failed: bool = Field(
        False, description="Staging failed for the Hub's reason: the job waits to retry."
    )
    manifest: Manifest | None = None
    draft: StagedCheckpoint | None = None
    final: ReleaseRecord | None = None
    record: EngineRecord | None = None
    artifacts: list[Artifact] = Field(default_factory=list)
    serving: list[ServingRecord] = Field(
        default_factory=list, description="A per-SM task's serving check: the release loaded per runtime."
    )
    logs_url: str | None = Field(None, description="Where the task's log can be read (a Job's page).")

    @property
    def built_here(self) -> bool:
        """A quantize task that built the whole release on the bot's machine (the local transport):
        nothing staged on the Hub, its manifest is the job's and its output is published as it is."""
        return self.manifest is not None and self.draft is None and self.final is None and self.record is None

    @property
    def failed(self) -> bool:
        """A quantize task that failed, or a per-SM task whose record says its build failed."""
        return not self.ok or (self.record is not None and self.record.status == "failed")

    def summary(self) -> str:
        """One line: the SM's record, where the checkpoint went, or why it failed."""
        if self.record is not None:
            why = f" ({self.record.reason})" if self.record.reason else ""
            return f"sm{self.record.sm}: {self.record.status.replace('_', ' ')}{why}"
        if self.error:
            return self.error
        if self.draft is not None:
            return f"checkpoint uploaded to {self.draft.url}"
        if self.final is not None:
            return f"already released: {self.final.message}"
        return f"built on the bot's machine (slot {self.queue})"


# ----------------------------------------------------------------------------------------------- helpers


def utcnow() -> datetime:
    return datetime.now(UTC)


def write_json_atomic(path: Path, data: Any, durable: bool = True) -> None:
    """Write JSON so that a reader (or a rerun after a kill) sees the old file or the new one, never half.

    The rename alone gives that against a killed process; `durable` also syncs the file to disk, for a
    power cut (a build's running records skip it: one that does not read after a power cut is run again)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=False)
            f.write("\n")
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def python_version() -> str:
    return ".".join(map(str, sys.version_info[:3]))
