"""Fixtures for the builders: the tiny Llama, its upstream repo on hubsim, and the session's builds.

Worker processes inherit the test environment: HF_ENDPOINT points at hubsim and the HF cache is the
session's temporary one, so every build downloads from hubsim into one cache shared by all builds.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from buildkit import Builder, Upstream

from bot.hubsim.datasets import publish_calibration_dataset
from builders.tiny import build_tiny_llama3, push_upstream


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama-3-style LlamaForCausalLM with its tokenizer (built once per session)."""
    return build_tiny_llama3(tmp_path_factory.mktemp("tiny") / "tiny-llama")


@pytest.fixture(scope="session")
def calibration_dataset(hubsim: Any) -> str:
    """The default calibration set on hubsim (its stand-in, as `quantbot hubsim` publishes it); its sha."""
    return publish_calibration_dataset(hubsim.server)


@pytest.fixture(scope="session")
def tiny_upstream(hubsim: Any, tiny_model_dir: Path, calibration_dataset: str) -> Upstream:
    """The tiny Llama published on hubsim as an upstream model (apache-2.0 in its card), beside the
    default calibration dataset every build reads."""
    repo_id = f"{hubsim.user}/tiny-llama-{uuid.uuid4().hex[:8]}"
    sha = push_upstream(tiny_model_dir, repo_id, endpoint=hubsim.url, token=hubsim.token)
    return Upstream(repo_id, sha, tiny_model_dir)


@pytest.fixture(scope="session")
def builder(tmp_path_factory: pytest.TempPathFactory, tiny_upstream: Upstream) -> Builder:
    return Builder(tmp_path_factory.mktemp("builds"), tiny_upstream)
