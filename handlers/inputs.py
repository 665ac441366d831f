"""What handlers receive from the bot, as plain data: the parsed Hub webhook and a revision's eligibility.

Both sides import this module (the bot parses into it, handlers read it), and it imports nothing of the
project, so data flows one way: bot → handlers, never back.

The payload models mirror huggingface_hub's `WebhookPayload` (docs/hub-api-contract.md, section 6) with two
differences: `repo.headSha` is kept (the client's model drops it), and identifiers and shas are checked
against the Hub's alphabets, so nothing a sender controls reaches a key, a log line or a column unchecked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Id = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")]
_NAME = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}"
RepoName = Annotated[str, StringConstraints(pattern=rf"^{_NAME}(/{_NAME})?$")]
Sha = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{40}([0-9a-f]{24})?$")]
# Any ref name git allows, in any script (valid UTF-8: pydantic refuses lone surrogates); no control chars.
Ref = Annotated[str, StringConstraints(pattern=r"^refs/[^\x00-\x1f\x7f]{1,250}$")]
# Scopes and actions the Hub may add tomorrow: any short word, so the bot can store and ignore them.
Word = Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1f\x7f]{1,64}$")]
Text = str  # bounded by the body cap; only identifiers need an alphabet
Url = Annotated[str, StringConstraints(max_length=2048)]


class PayloadModel(BaseModel):
    """Strict (no "3" for 3, no "true" for true), frozen, unknown keys ignored as the Hub adds fields."""

    model_config = ConfigDict(strict=True, frozen=True, extra="ignore", populate_by_name=True)


class ObjectRef(PayloadModel):
    id: Id


class Urls(PayloadModel):
    web: Url
    api: Url | None = None


class WebUrl(PayloadModel):
    web: Url


class HookEvent(PayloadModel):
    """What happened; an action or scope the bot does not know is stored and ignored (bot.intake.webhooks)."""

    action: Word
    scope: Word


class HookInfo(PayloadModel):
    id: Id
    version: Literal[3]


class Repo(PayloadModel):
    type: Word  # model, dataset, space; the Hub adds kinds (kernel), which the bot ignores
    name: RepoName
    id: Id
    private: bool
    url: Urls
    owner: ObjectRef
    head_sha: Sha | None = Field(None, alias="headSha")
    subdomain: Text | None = None
    tags: list[Text] | None = None


class Changes(PayloadModel):
    base: Text
    merge_commit_id: Sha | None = Field(None, alias="mergeCommitId")


class Discussion(PayloadModel):
    id: Id
    num: Annotated[int, Field(ge=0, lt=2**31)]
    author: ObjectRef
    url: Urls
    title: Text
    is_pull_request: bool = Field(alias="isPullRequest")
    status: Literal["open", "closed", "merged", "draft"]
    changes: Changes | None = None
    pinned: bool | None = None


class Comment(PayloadModel):
    id: Id
    author: ObjectRef
    hidden: bool
    content: Text | None = None
    url: WebUrl


class MovedTo(PayloadModel):
    name: RepoName
    owner: ObjectRef


class UpdatedRef(PayloadModel):
    ref: Ref
    old_sha: Sha | None = Field(None, alias="oldSha")
    new_sha: Sha | None = Field(None, alias="newSha")


class HubWebhook(PayloadModel):
    """A version-3 Hub webhook payload."""

    event: HookEvent
    repo: Repo
    discussion: Discussion | None = None
    comment: Comment | None = None
    webhook: HookInfo
    moved_to: MovedTo | None = Field(None, alias="movedTo")
    # no cap on the count: the Hub's mirror pushes name thousands of refs (the body's size is capped instead)
    updated_refs: list[UpdatedRef] | None = Field(None, alias="updatedRefs")


class Envelope(PayloadModel):
    """Just enough to route a payload: what happened, and which webhook version describes it."""

    event: HookEvent
    webhook: HookInfo


@dataclass(frozen=True)
class Calibration:
    """`--calib org/dataset[@revision][:split]`: the calibration dataset one command asks for."""

    dataset: str
    revision: str | None = None
    split: str = "train"

    def __str__(self) -> str:
        at = f"@{self.revision}" if self.revision else ""
        return f"{self.dataset}{at}:{self.split}"


@dataclass(frozen=True)
class JobCosts:
    """Where each SM's builds would run as Hugging Face Jobs, and what they are estimated to cost (USD)."""

    flavors: dict[int, str]  # SM → its flavour, described ("l4x1 (L4, 24 GB, $0.80/h)")
    quantize_usd: dict[str, dict[int, float]]  # format → SM → its quantize Job on that SM's flavour
    engine_usd: dict[int, float]  # SM → one engine Job on its flavour
    basis: str  # what the estimate rests on
    names: dict[int, str] = field(default_factory=dict)  # SM → its flavour's name, as `run_job` takes it

    def estimate(self, fmt: str, sms: Sequence[int]) -> float:
        """One job: quantize once, on the cheapest of its SMs' flavours, then an engine Job per SM."""
        placed = [sm for sm in sms if sm in self.engine_usd and sm in self.quantize_usd.get(fmt, {})]
        if not placed:
            return 0.0
        quantize = min(self.quantize_usd[fmt][sm] for sm in placed)
        return round(quantize + sum(self.engine_usd[sm] for sm in placed), 2)


@dataclass(frozen=True)
class Eligibility:
    """Which formats one revision may get on which SMs, and why not the others (from the planner)."""

    repo_id: str
    revision: str | None  # None for a local folder: specs need a pinned revision
    policy: str
    refused: str | None  # the whole-model refusal, if any: then nothing is eligible
    target_sms: tuple[int, ...] = ()
    eligible: dict[str, list[int]] = field(default_factory=dict)  # format → SMs, canonical format order
    skips: dict[str, list[str]] = field(default_factory=dict)  # format → one reason per SM that refused it
    model_type: str | None = None
    # format → SMs where TensorRT-LLM's matrices mark FP8 KV cache for this model (the default KV choice)
    fp8_kv_cache: dict[str, list[int]] = field(default_factory=dict)
    # format → the runtimes that load it (runtimes.yaml)
    runs_with: dict[str, str] = field(default_factory=dict)
    # format → SM → what that SM's task does: an engine, or a serving check in which runtimes (sm_steps)
    sm_steps: dict[str, dict[int, str]] = field(default_factory=dict)
    jobs: JobCosts | None = None  # set when builds run as Hugging Face Jobs

    def skip_reasons(self, fmt: str) -> list[str]:
        """Why `fmt` is not eligible, one line per SM that refused it."""
        return [self.refused] if self.refused else self.skips.get(fmt, [])
