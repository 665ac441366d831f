"""quantbot's settings: defaults, a TOML file, then `QUANTBOT_*` (and the Hub's own) environment variables.

A table or a list is written in the environment as in the TOML file (`QUANTBOT_SM_MEMORY_GIB='{90 = 80}'`,
`QUANTBOT_TARGET_SMS='[90, 89]'`), as JSON, or for a list also as `90,89`; anything else is one error line
naming the variable and the form it takes. Secrets are `SecretStr`, so a repr, a log line or `quantbot config`
never shows them; URLs show their credentials masked.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import shlex
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, get_origin
from urllib.parse import urlsplit, urlunsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from bot.errors import ConfigError
from bot.naming import check_template
from builders.spec import Recipe, ValidationSettings

DEFAULT_SMS = [80, 89, 90, 100, 120]


def default_data_dir() -> Path:
    """Under the user's cache dir (XDG), never the source tree: a checkout stays clean."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "quantbot"


WarmToolchain = Literal["gptq", "modelopt", "engine"]  # builders.warm.PRELOADS
WARM_TOOLCHAINS: tuple[WarmToolchain, ...] = ("gptq", "modelopt", "engine")


def parse_notation(text: str) -> Any:
    """A table or list as the TOML file writes it (`{90 = 80}`, `[90, 89]`), or as JSON; ValueError if
    neither."""
    try:
        return json.loads(text)
    except ValueError:
        return tomllib.loads(f"value = {text}")["value"]


def _split_list(value: Any) -> Any:
    """Accept `90,89`, `a/b, c/d` or `[90, 89]` from the environment as well as real lists from TOML."""
    if isinstance(value, str) and value.strip().startswith("["):
        return parse_notation(value)
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def mask_credentials(url: str) -> str:
    """`scheme://user:***@host/…`: a URL with its password hidden and everything else as it is."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


class Settings(BaseSettings):
    """Everything quantbot can be configured with; each field says what it changes."""

    model_config = SettingsConfigDict(env_prefix="QUANTBOT_", extra="forbid", populate_by_name=True)

    data_dir: Path = Field(default_factory=default_data_dir, description="Database, builds and caches.")
    hf_endpoint: str = Field(
        "https://huggingface.co",
        validation_alias=AliasChoices("hf_endpoint", "QUANTBOT_HF_ENDPOINT", "HF_ENDPOINT"),
        description="The Hub to talk to (HF_ENDPOINT is honoured).",
    )
    hf_token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("hf_token", "QUANTBOT_HF_TOKEN", "HF_TOKEN"),
        description="The bot's Hub token (HF_TOKEN is honoured).",
    )
    webhook_secret: SecretStr | None = Field(None, description="Shared secret expected in X-Webhook-Secret.")
    webhook_max_bytes: int = Field(1 << 20, gt=0, description="Largest webhook body accepted (413 above).")
    webhook_commit_s: float = Field(
        0.25, ge=0, le=5, description="Deliveries answered within this many seconds are committed together."
    )
    namespace: str | None = Field(
        None, description="Hub user or org that owns release repos (default: the token's user)."
    )
    publisher_name: str = Field("quantbot", description="Name shown on cards as the publisher.")
    publisher_url: str | None = Field(None, description="Link shown on cards next to the publisher's name.")
    trtllm_repo_template: str = Field(
        "{namespace}/{model}-{FORMAT}-TensorRT-LLM",
        description="Repo id of TensorRT-LLM releases ({namespace} {owner} {model} {format} {FORMAT}).",
    )
    gptq_repo_template: str = Field(
        "{namespace}/{model}-GPTQ", description="Release repo id of GPTQ releases (same placeholders)."
    )
    approval: Literal["auto", "approval"] = Field(
        "auto", description="Release straight to bot-owned repos (auto) or through a PR a maintainer merges."
    )
    approval_repos: dict[str, Literal["auto", "approval"]] = Field(
        default_factory=dict,
        description="Per-repo approval mode, keyed by upstream or release repo id.",
        examples=['{"org/model" = "approval"}'],
    )
    pr_fallback: bool = Field(True, description="Open a PR when the token may not push to the release repo.")
    verify_uploads: bool = Field(
        True, description="Download each release back from the Hub and check it before announcing it."
    )
    runtime_envs: bool = Field(
        True,
        description="Read each release under every runtime's transformers line in environments made with pip "
        "(once, then reused) when verifying it; off, those lines are reported as not checked.",
    )
    runtime_envs_dir: Path | None = Field(
        None, description="Where those environments live (default: runtime-envs in the data dir)."
    )
    target_sms: Annotated[list[int], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_SMS), description="SMs to plan for when no GPU is found."
    )
    remote_sms: Annotated[list[int], NoDecode] = Field(
        default_factory=list, description="SMs served by remote workers, added to the local GPUs."
    )
    policy: Literal["runtimes", "strict", "permissive"] = Field(
        "runtimes",
        description="What makes a format eligible: runtimes (what runs the family), or the seeds (strict, "
        "permissive).",
    )
    trust_remote_code_repos: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Repos whose custom code may run (auto_map)."
    )
    allow_pickle: bool = Field(
        False, description="Allow pickle (.bin/.pt) weights when no safetensors exist."
    )
    allowed_licenses: Annotated[list[str], NoDecode] | None = Field(
        None, description="Licences the bot may re-publish under; unset means any."
    )
    allow_gated: bool = Field(False, description="Build gated upstream models.")
    sm_memory_gib: dict[int, float] = Field(
        default_factory=dict,
        description="GPU memory (GiB) assumed for SMs without a local GPU.",
        examples=["{90 = 80, 89 = 48}"],
    )
    memory_headroom: float = Field(
        1.2, gt=0, description="GPU memory a quantization needs, as a multiple of the model's weight bytes."
    )
    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite in the data dir.")
    sqlite_synchronous: Literal["FULL", "NORMAL"] = Field(
        "FULL",
        description="SQLite fsync per commit (FULL) or per checkpoint (NORMAL: a power cut loses the last).",
    )
    log_level: str = Field("WARNING", description="Python logging level (INFO logs each event and job).")

    # --- the bot: commands, executor, poller (bot/intake/, bot/execution/) ---
    bot_name: str | None = Field(
        None, description="Name commands mention (@name); default: the token's user."
    )
    maintainers: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Hub users who may start builds on any repo by slash command."
    )
    allowlist: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="More Hub users who may start builds (besides owners, org members)."
    )
    command_namespaces: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Users or orgs whose repos' discussions take slash commands."
    )
    command_rate_limit: int = Field(10, ge=1, description="Commands one user may give per rate window.")
    command_rate_window_s: int = Field(3600, ge=1, description="The rate limit's window, in seconds.")
    public_url: str | None = Field(None, description="The bot's URL as the Hub reaches it (webhooks sync).")
    poll_interval_min: float = Field(
        15.0, gt=0, description="Minutes between polls (watch list, missed commands)."
    )
    calib_max_dataset_mb: int = Field(
        20_000, gt=0, description="Largest Hub dataset `/quantize --calib` may name (its files, in MB)."
    )
    reverify_days: float = Field(
        30.0, ge=0, description="Days between checks of each published release as published (0: never)."
    )
    cooldown_minutes: int = Field(
        0, ge=0, description="Minutes a new upstream revision must stay the newest before it is built."
    )
    demand_monthly_budget: int = Field(
        3, ge=0, description="Fine-tunes a demand watch builds per calendar month (a watch may set its own)."
    )
    trusted_publishers: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Users or orgs whose quantizations of a fine-tune a demand watch does not build again.",
    )
    dashboard_s: float = Field(
        60.0, gt=0, description="Seconds between refreshes of the watched upstreams' dashboard discussions."
    )
    poll_budget_share: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Share of the token's Hub requests per 5-minute window the poll and catch-up may spend.",
    )
    lease_s: float = Field(60.0, gt=0, description="Seconds a worker holds a job without a heartbeat.")
    max_attempts: int = Field(3, ge=1, description="Build attempts before a job whose lease expired fails.")
    transient_deadline_h: float = Field(
        24.0,
        gt=0,
        description="Hours a build or publish the Hub fails (5xx, 429, timeouts) is retried before it fails.",
    )
    transient_backoff_max_s: float = Field(
        600.0, gt=0, description="Longest wait between two tries of a step the Hub failed (after backoff)."
    )
    publish_retries: int = Field(
        5, ge=0, description="Times a publish that failed unexpectedly (not the Hub's doing) is retried."
    )
    publish_backoff_s: float = Field(30.0, gt=0, description="First publish retry delay; doubles each time.")
    build_retries: int = Field(
        3, ge=0, description="Times a build task that failed unexpectedly (not the Hub's doing) is retried."
    )
    build_backoff_s: float = Field(30.0, gt=0, description="First build retry delay; doubles each time.")
    shutdown_grace_s: float = Field(
        120.0, ge=0, description="Seconds a stopping bot lets a build finish its stage before requeueing it."
    )
    worker_command: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Interpreter that runs `-m builders run` (default: the bot's own)."
    )
    executor: Literal["local", "celery", "hf-jobs"] = Field(
        "local",
        description="Where builds run: bot processes (local), Celery workers (celery), Hub Jobs (hf-jobs).",
    )
    jobs_image: str = Field(
        "quantbot-worker:latest",
        description="Docker image of Hugging Face Jobs (the Dockerfile's worker target, as you pushed it).",
    )
    jobs_namespace: str | None = Field(
        None, description="User or org the Jobs run and are billed under (default: the token's user)."
    )
    jobs_timeout_s: int = Field(4 * 3600, gt=0, description="Longest a Job may run before the Hub stops it.")
    jobs_monthly_budget_usd: float | None = Field(
        None,
        ge=0,
        description="Most USD of Jobs per calendar month (UTC); builds that would pass it are refused.",
    )
    broker_url: SecretStr = Field(
        SecretStr("redis://127.0.0.1:6379/0"),
        description="Celery broker and result backend (Redis); may hold a password, so never printed.",
    )
    engine_deadline_s: float = Field(
        4 * 3600.0, gt=0, description="Seconds to wait for every SM's engine before releasing without it."
    )
    warm_toolchains: Annotated[list[WarmToolchain], NoDecode] = Field(
        default_factory=lambda: list(WARM_TOOLCHAINS),
        description="Toolchains a `quantbot worker` imports before its next build (none: builds start cold).",
    )
    broker_visibility_timeout_s: int = Field(
        24 * 3600, ge=60, description="Seconds before the broker redelivers an unacknowledged task."
    )
    build_recipe: dict[str, Any] = Field(
        default_factory=dict,
        description="Recipe fields for every build (calib_dataset, calib_samples...).",
        examples=["{calib_samples = 128, calib_seq_len = 256}"],
    )
    build_validation: dict[str, Any] = Field(
        default_factory=dict,
        description="Validation fields for every build (eval_tokens, prompt...).",
        examples=["{eval_tokens = 512}"],
    )

    @field_validator(
        "target_sms",
        "remote_sms",
        "trust_remote_code_repos",
        "allowed_licenses",
        "maintainers",
        "allowlist",
        "command_namespaces",
        "warm_toolchains",
        "trusted_publishers",
        mode="before",
    )
    @classmethod
    def _lists_from_text(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("worker_command", mode="before")
    @classmethod
    def _command_from_text(cls, value: Any) -> Any:
        return shlex.split(value) if isinstance(value, str) else value

    @field_validator("trtllm_repo_template", "gptq_repo_template")
    @classmethod
    def _repo_template(cls, value: str) -> str:
        try:
            check_template(value)
        except ConfigError as e:
            raise ValueError(e.message) from None
        return value

    @field_validator("build_recipe", "build_validation")
    @classmethod
    def _build_fields(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """Checked against the builders' own models now, so `serve` refuses a bad recipe at start rather
        than failing every build it plans."""
        model = Recipe if info.field_name == "build_recipe" else ValidationSettings
        try:
            model(**value)
        except ValidationError as e:
            first = e.errors()[0]
            raise ValueError(f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None
        return value

    @field_validator("log_level")
    @classmethod
    def _level_name(cls, value: str) -> str:
        level = value.upper()
        if level not in logging.getLevelNamesMapping():
            raise ValueError(f"{value!r} is not a logging level (DEBUG, INFO, WARNING, ERROR or CRITICAL)")
        return level

    @field_validator("hf_endpoint")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    def token(self) -> str | None:
        """The Hub token in clear, only for the Hub client."""
        return self.hf_token.get_secret_value() if self.hf_token else None

    def broker(self) -> str:
        """The broker URL in clear, only for the Celery app."""
        return self.broker_url.get_secret_value()

    def runtime_envs_folder(self) -> Path | None:
        """Where the verification makes the runtimes' transformers environments; None when it makes none."""
        return (self.runtime_envs_dir or self.data_dir / "runtime-envs") if self.runtime_envs else None

    def redacted(self) -> dict[str, Any]:
        """A printable view: secrets shown as set or unset, never their value; URLs with their credentials
        masked (which Redis or database is meant stays visible)."""
        return self.model_dump(mode="json") | {
            "hf_token": "***" if self.hf_token else None,
            "webhook_secret": "***" if self.webhook_secret else None,
            "broker_url": mask_credentials(self.broker()),
            "database_url": mask_credentials(self.database_url) if self.database_url else None,
        }


def env_names(name: str) -> list[str]:
    """The environment variables a setting is read from, in the order they are looked at."""
    alias = Settings.model_fields[name].validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices if str(choice) != name]
    return [f"QUANTBOT_{name.upper()}"]


def expected_form(name: str) -> str | None:
    """How a table or list setting is written in the environment, for the error that names it."""
    field = Settings.model_fields[name]
    if get_origin(field.annotation) is dict:
        example = (field.examples or ["{key = value}"])[0]
        return f"a table such as '{example}' (as in the TOML file) or JSON"
    if "list[" in str(field.annotation):
        return "a list such as '90,89' or '[90, 89]' (as in the TOML file)"
    return None


class _EnvSource(EnvSettingsSource):
    """The environment, with tables written as in the TOML file or as JSON; a value that is neither is one
    ConfigError naming the variable and the form it takes."""

    def decode_complex_value(self, field_name: str, field: FieldInfo, value: Any) -> Any:
        if NoDecode in field.metadata or not isinstance(value, str):
            return value
        try:
            return parse_notation(value)
        except ValueError:
            raise ConfigError(f"{env_names(field_name)[0]} is not {expected_form(field_name)}") from None


class _TomlSource(PydanticBaseSettingsSource):
    """Values from a TOML file, below the environment and explicit arguments."""

    def __init__(self, settings_cls: type[BaseSettings], values: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._values = values

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._values)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from None
    # Accept either top-level keys or a [quantbot] table.
    return data.get("quantbot", data)


def _config_path(config: Path | None) -> Path | None:
    return config or (Path(os.environ["QUANTBOT_CONFIG"]) if os.environ.get("QUANTBOT_CONFIG") else None)


def value_sources(config: Path | None = None) -> dict[str, str]:
    """Where each setting's value comes from: `env VARIABLE`, `file <path>` or `default` (highest first)."""
    path = _config_path(config)
    file_values = _read_toml(path) if path else {}
    present = {key.upper() for key in os.environ}
    sources = {}
    for name in Settings.model_fields:
        variable = next((v for v in env_names(name) if v.upper() in present), None)
        sources[name] = (
            f"env {variable}" if variable else f"file {path}" if name in file_values else "default"
        )
    return sources


def _unknown_key(key: str, origin: str) -> ConfigError:
    """A key no setting has: name the valid ones and the nearest, not pydantic's "Extra inputs"."""
    valid = list(Settings.model_fields)
    near = difflib.get_close_matches(key, valid, n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    return ConfigError(f"unknown setting {key!r}{origin}{hint}. Valid settings: {', '.join(valid)}")


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings; a bad value becomes a one-line ConfigError, not a pydantic traceback."""
    path = _config_path(config)
    file_values = _read_toml(path) if path else {}

    class _Settings(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return init_settings, _EnvSource(settings_cls), _TomlSource(settings_cls, file_values)

    try:
        loaded = _Settings(**overrides)
    except SettingsError as e:
        if isinstance(e.__cause__, ConfigError):
            raise e.__cause__ from None
        raise
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        if first["type"] == "extra_forbidden":
            raise _unknown_key(where, f" in {path}" if where in file_values else "") from None
        # A validator's own ValueError reads as it was written, without pydantic's "Value error, " prefix.
        error = first.get("ctx", {}).get("error")
        message = str(error) if first["type"] == "value_error" and error is not None else first["msg"]
        setting = str(first["loc"][0]) if first["loc"] else ""
        source = value_sources(config).get(setting, "") if setting not in overrides else ""
        if source.startswith("env "):
            raise ConfigError(f"invalid {source[4:]} ({where}): {message}") from None
        raise ConfigError(f"invalid setting {where}: {message}") from None
    return Settings.model_construct(**{name: getattr(loaded, name) for name in Settings.model_fields})
