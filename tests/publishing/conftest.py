"""Real builds to publish, made once per session: the tiny Llama pushed to hubsim as an upstream repo, then
quantized by the builder itself (`python -m builders run SPEC.json`, in its own process, on CPU).

Builds are made lazily, the first time a test asks for one (upstream, revision, format), and reused after;
tests that alter a build work on a copy. The bot is hubsim's default user; model authors and maintainers
are `other_user`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.hub import Hub
from bot.publishing.publisher import Publisher
from bot.settings import Settings, load_settings
from builders.spec import BuildSpec, Recipe, ValidationSettings
from builders.tiny import build_tiny_llama3, build_tiny_qwen2, calibration_text_path, push_upstream
from builders.tiny_families import build_tiny_family

UPSTREAM_CARD = {"license_name": "tiny-llama-license", "license_link": "LICENSE", "language": ["en"]}
LICENSE_TEXT = "Tiny Llama licence: use it for tests.\n"


@dataclass
class UpstreamRepo:
    """An upstream model on hubsim; `revisions[0]` is the first commit, later ones are newer."""

    repo_id: str
    revisions: list[str] = field(default_factory=list)


class Builds:
    """Runs the builder once per (upstream, revision, format) and remembers the output directory."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env
        self._done: dict[tuple[str, str, str], Path] = {}

    def get(
        self,
        repo_id: str,
        revision: str,
        fmt: str,
        *,
        trust_remote_code: bool = False,
        cwd: Path | None = None,
    ) -> Path:
        """The build's output folder; `cwd` is where the worker starts (it must leave nothing there)."""
        key = (repo_id, revision, fmt)
        if key not in self._done:
            folder = self.root / f"{repo_id.replace('/', '--')}-{revision[:8]}-{fmt}"
            spec = BuildSpec(
                repo_id=repo_id,
                revision=revision,
                format=fmt,
                recipe=Recipe(calib_dataset=str(calibration_text_path()), calib_samples=8, calib_seq_len=64),
                validation=ValidationSettings(eval_tokens=256, eval_seq_len=128),
                target_sms=[89, 90],
                work_dir=folder / "work",
                output_dir=folder / "out",
                cache_dir=self.root / "hf-cache",
                trust_remote_code=trust_remote_code,
            )
            spec_path = spec.write(folder / "spec.json")
            run = subprocess.run(
                [sys.executable, "-m", "builders", "run", str(spec_path)],
                env=self.env,
                cwd=cwd,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert run.returncode == 0, f"build {key} failed:\n{run.stderr[-3000:]}"
            self._done[key] = spec.output_dir
        return self._done[key]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Llama-3-style upstream (rope_theta 500000, llama3 rope_scaling, a chat template), as Meta's repos
    hold it: its config and tokenizer files written by transformers 4.x."""
    model = build_tiny_llama3(tmp_path_factory.mktemp("tiny") / "model")
    (model / "LICENSE").write_text(LICENSE_TEXT)
    return model


def _push(hubsim, model: Path, name: str) -> UpstreamRepo:
    repo_id = f"{hubsim.other_user}/{name}-{uuid.uuid4().hex[:8]}"
    sha = push_upstream(
        model,
        repo_id,
        endpoint=hubsim.url,
        token=hubsim.other_token,
        license="other",
        card_data=UPSTREAM_CARD,
    )
    return UpstreamRepo(repo_id, [sha])


_FAMILY_REPOS: dict[str, tuple[Path, UpstreamRepo]] = {}


@pytest.fixture
def family(hubsim, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], tuple[Path, UpstreamRepo]]:
    """`family(name)` → (its tiny folder, builders/tiny_families.py's, and its upstream repo on hubsim),
    made once per session."""

    def get(name: str) -> tuple[Path, UpstreamRepo]:
        if name not in _FAMILY_REPOS:
            folder = build_tiny_family(tmp_path_factory.mktemp(name) / "model", name)
            _FAMILY_REPOS[name] = (folder, _push(hubsim, folder, f"tiny-{name.replace('_', '-')}"))
        return _FAMILY_REPOS[name]

    return get


@pytest.fixture(scope="session")
def upstream(hubsim, tiny_model: Path) -> UpstreamRepo:
    """A public upstream with `license: other`, a licence name, a relative `license_link` and a LICENSE."""
    return _push(hubsim, tiny_model, "tiny-llama")


@pytest.fixture(scope="session")
def qwen_upstream(hubsim, tmp_path_factory: pytest.TempPathFactory) -> UpstreamRepo:
    """A Qwen2.5-style upstream (rope_theta 1,000,000, Qwen2Tokenizer with vocab.json and merges.txt, no BOS,
    a ChatML template, an embedding padded past the tokenizer), licensed as `upstream`."""
    model = build_tiny_qwen2(tmp_path_factory.mktemp("tiny-qwen") / "model")
    (model / "LICENSE").write_text(LICENSE_TEXT)
    return _push(hubsim, model, "tiny-qwen")


@pytest.fixture(scope="session")
def runtime_envs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the verification makes the runtimes' transformers environments: once for the whole session."""
    return tmp_path_factory.mktemp("runtime-envs")


@pytest.fixture(scope="session")
def newer_revision(hubsim, upstream: UpstreamRepo) -> str:
    """A second, newer commit on the upstream (its author edits the card)."""
    if len(upstream.revisions) == 1:
        commit = hubsim.other_api.upload_file(
            path_or_fileobj=b"Changelog: second revision.\n",
            path_in_repo="CHANGELOG.md",
            repo_id=upstream.repo_id,
        )
        upstream.revisions.append(commit.oid)
    return upstream.revisions[1]


@pytest.fixture(scope="session")
def builds(hubsim, tmp_path_factory: pytest.TempPathFactory) -> Builds:
    """The bot's token goes to the worker, as the bot would pass it (gated upstreams need it)."""
    env = {**os.environ, "HF_TOKEN": hubsim.token, "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    return Builds(tmp_path_factory.mktemp("builds"), env)


@pytest.fixture
def settings(hubsim, runtime_envs: Path) -> Settings:
    """The publishing mechanics' settings: the post-upload verification (test_verified_releases.py) is off
    here, so these tests do not each download their release again."""
    return load_settings(
        hf_endpoint=hubsim.url,
        hf_token=hubsim.token,
        publisher_url="https://example.org/quantbot",
        verify_uploads=False,
        runtime_envs_dir=runtime_envs,
    )


@pytest.fixture
def publisher(settings: Settings) -> Publisher:
    return Publisher.from_settings(settings)


@pytest.fixture
def verifying_publisher(settings: Settings) -> Publisher:
    """A publisher as configured by default: each release is downloaded back and verified."""
    return Publisher.from_settings(settings.model_copy(update={"verify_uploads": True}))


@pytest.fixture
def hub(hubsim) -> Hub:
    return Hub(endpoint=hubsim.url, token=hubsim.token)


@pytest.fixture
def release_repo(hubsim) -> Iterator[Callable[[str], str]]:
    """`name(prefix) -> repo id` in the bot's namespace, unique, deleted after the test (if it was made)."""
    made: list[str] = []

    def name(prefix: str = "release") -> str:
        repo_id = f"{hubsim.user}/{prefix}-{uuid.uuid4().hex[:8]}"
        made.append(repo_id)
        return repo_id

    yield name
    for repo_id in made:
        hubsim.api.delete_repo(repo_id, missing_ok=True)


@pytest.fixture
def copy_build(tmp_path: Path) -> Callable[[Path], Path]:
    """A private copy of a build directory, for tests that alter it."""

    def copy(build: Path) -> Path:
        return Path(shutil.copytree(build, tmp_path / f"build-{uuid.uuid4().hex[:6]}"))

    return copy
