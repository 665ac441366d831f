"""What a release inherits from its base model: identity, licence, gating, language, task and family.

Read from the upstream's card metadata, file list and config.json at the build's revision (`from_hub`); the
release's card repeats the licence (with a link to its text) and, for a gated base model, its gate, and its
"Runs with" table is the runtime table for the model's family (its config says which).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any

from bot.eligibility.facts import ModelFacts, build_facts, card_metadata
from bot.hub import Hub
from builders.invariance import is_licence_file


@dataclass(frozen=True)
class Upstream:
    """What a release inherits from its base model: identity, licence, gating, language, task."""

    repo_id: str
    revision: str
    url: str
    license: str | None = None
    license_name: str | None = None
    license_link: str | None = None
    gated: str | None = None
    gated_prompt: str | None = None
    language: list[str] = field(default_factory=list)
    pipeline_tag: str | None = None
    licence_files: tuple[str, ...] = ()  # LICENSE*, USE_POLICY*, NOTICE*: copied into the release
    files: tuple[str, ...] = ()  # every file at the revision (the release keeps its metadata files)
    config: dict[str, Any] = field(default_factory=dict)  # config.json at the revision ({}: not read)

    @classmethod
    def from_card(
        cls,
        repo_id: str,
        revision: str,
        card: dict[str, Any],
        *,
        endpoint: str,
        files: list[str] | tuple[str, ...] = (),
        gated: str | None = None,
        pipeline_tag: str | None = None,
    ) -> Upstream:
        """From the base model's card metadata and file list (a relative `license_link` is made absolute)."""
        url = f"{endpoint.rstrip('/')}/{repo_id}"
        license_ = _first_text(card.get("license"))
        link = _first_text(card.get("license_link"))
        if link and not re.match(r"https?://", link):
            link = f"{url}/blob/{revision}/{link.removeprefix('./')}"
        if link is None:
            license_file = next((f for f in files if re.fullmatch(r"LICEN[CS]E(\.\w+)?", f, re.I)), None)
            link = f"{url}/blob/{revision}/{license_file}" if license_file else None
        language = card.get("language")
        prompt = card.get("extra_gated_prompt")
        return cls(
            repo_id=repo_id,
            revision=revision,
            url=url,
            license=license_,
            license_name=_first_text(card.get("license_name")),
            license_link=link,
            gated=gated or None,
            gated_prompt=prompt if isinstance(prompt, str) and prompt.strip() else None,
            language=[language]
            if isinstance(language, str)
            else [x for x in language or [] if isinstance(x, str)],
            pipeline_tag=_first_text(card.get("pipeline_tag")) or pipeline_tag,
            licence_files=tuple(sorted(f for f in files if is_licence_file(f))),
            files=tuple(sorted(files)),
        )

    @classmethod
    def from_hub(cls, hub: Hub, repo_id: str, revision: str, *, endpoint: str) -> Upstream:
        """Read the base model's card metadata, gating and files at the build's revision."""
        info = hub.model_info(repo_id, revision=revision)
        card = dict(info.card_data.to_dict()) if info.card_data else {}
        if not card and "README.md" in {s.rfilename for s in info.siblings or ()}:
            card = card_metadata(hub.download(repo_id, "README.md", revision=revision).read_text())
        gated = info.gated if isinstance(info.gated, str) else None
        files = [s.rfilename for s in info.siblings or ()]
        upstream = cls.from_card(
            repo_id,
            revision,
            card,
            endpoint=endpoint,
            files=files,
            gated=gated,
            pipeline_tag=info.pipeline_tag,
        )
        if "config.json" not in files:
            return upstream
        config = json.loads(
            hub.download(repo_id, "config.json", revision=revision).read_text(encoding="utf-8")
        )
        return replace(upstream, config=config if isinstance(config, dict) else {})

    def family(self) -> ModelFacts | None:
        """The base model's family as the planner reads it from its config (None: the config was not read)."""
        if not self.config:
            return None
        return build_facts(
            self.config, name=self.repo_id, source="hub", revision=self.revision, files=self.files
        )

    def licence_metadata(self) -> dict[str, Any]:
        """`license`, plus `license_name` / `license_link` when it is `other` (the Hub asks for both)."""
        if self.license is None:
            return {}
        if self.license != "other":
            return {"license": self.license}
        return {
            "license": "other",
            "license_name": self.license_name or "other",
            "license_link": self.licence_url,
        }

    @property
    def licence_url(self) -> str:
        """Where the licence text is: the upstream's `license_link` or LICENSE file, else its model page."""
        return self.license_link or self.url

    @property
    def licence_display(self) -> str:
        if self.license == "other":
            return self.license_name or "other"
        return self.license or "not stated by the base model's card"

    def gate_metadata(self) -> dict[str, Any]:
        """The base model's access prompt, for a release gated the same way."""
        return {"extra_gated_prompt": self.gated_prompt} if self.gated and self.gated_prompt else {}

    def gated_note(self) -> str | None:
        if not self.gated:
            return None
        return (
            f"Access to the base model is gated: its authors ask users to accept their conditions on "
            f"[{self.repo_id}]({self.url}). This release is gated the same way ({self.gated} approval of "
            "access requests): accept the base model's conditions before you request access here."
        )


def _first_text(value: Any) -> str | None:
    if isinstance(value, list):
        value = value[0] if value else None
    return str(value) if value not in (None, "") else None
