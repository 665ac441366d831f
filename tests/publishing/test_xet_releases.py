"""Releases through Xet as on the Hub: a multi-file release larger than one xorb (64 MiB), then the next
revision's release, which deduplicates against the first: the CAS is sent no xorb twice.

The upstream is the tiny Llama with its vocabulary padded to 16384 rows (as real models pad theirs), so
that its unquantized embeddings and head alone make the GPTQ release larger than a xorb while the build
stays a matter of seconds. Both releases are real builds (`builders`), published by the bot's publisher;
the second is verified after upload (downloaded back through Xet, in a worker).
"""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path

import pytest
from huggingface_hub import hf_hub_download

from bot.hubsim.xet import hashes
from bot.publishing.publisher import Publisher
from builders.tiny import build_tiny_llama, push_upstream
from state.models import ReleaseStatus
from tests.publishing.conftest import Builds, UpstreamRepo

pytestmark = pytest.mark.slow

XORB = 64 * 1024 * 1024
PADDED_VOCAB = 16384


@pytest.fixture(scope="session")
def large_upstream(hubsim, tmp_path_factory: pytest.TempPathFactory) -> UpstreamRepo:
    """A tiny Llama whose bf16 embeddings and head (2 × 16384 × 1024) hold 64 MiB, with a newer revision."""
    from transformers import AutoModelForCausalLM

    folder = build_tiny_llama(tmp_path_factory.mktemp("large") / "model", hidden_size=1024, num_layers=1)
    model = AutoModelForCausalLM.from_pretrained(folder)
    model.resize_token_embeddings(PADDED_VOCAB, mean_resizing=False)
    model.save_pretrained(folder)
    repo_id = f"{hubsim.other_user}/padded-llama-{uuid.uuid4().hex[:8]}"
    first = push_upstream(folder, repo_id, endpoint=hubsim.url, token=hubsim.other_token)
    second = hubsim.other_api.upload_file(
        path_or_fileobj=b"Changelog: second revision.\n", path_in_repo="CHANGELOG.md", repo_id=repo_id
    ).oid
    return UpstreamRepo(repo_id, [first, second])


def _sent(hubsim) -> Counter[str]:
    return Counter(hubsim.server.xet.stats.xorb_bodies)


def test_a_release_larger_than_a_xorb_and_the_next_one_dedupes_against_it(
    hubsim,
    builds: Builds,
    publisher: Publisher,
    verifying_publisher: Publisher,
    large_upstream: UpstreamRepo,
    release_repo,
    tmp_path: Path,
) -> None:
    xet = hubsim.server.xet
    first_build = builds.get(large_upstream.repo_id, large_upstream.revisions[0], "gptq")
    weights = sorted(first_build.rglob("*.safetensors"))
    assert sum(w.stat().st_size for w in weights) > XORB
    repo_id = release_repo("padded-gptq")

    before = _sent(hubsim)
    first = publisher.publish(first_build, repo_id=repo_id)
    first_sent = _sent(hubsim) - before
    assert first.status is ReleaseStatus.PUBLISHED
    files = {e.path: e for e in hubsim.api.list_repo_tree(repo_id, recursive=True) if hasattr(e, "size")}
    big = [e for e in files.values() if e.path.endswith(".safetensors") and e.size > XORB]
    assert big and all(e.xet_hash for e in big) and len(files) > 3
    stored = xet.file_by_sha256(big[0].lfs.sha256)
    assert len({term.xorb for term in stored.terms}) >= 2  # the file spans xorbs
    assert first_sent and set(first_sent.values()) == {1}

    second_build = builds.get(large_upstream.repo_id, large_upstream.revisions[1], "gptq")
    before = _sent(hubsim)
    second = verifying_publisher.publish(second_build, repo_id=repo_id)
    second_sent = _sent(hubsim) - before
    assert second.status is ReleaseStatus.PUBLISHED
    assert not set(second_sent) & set(first_sent)  # nothing of the first release was sent again
    assert all(count == 1 for count in _sent(hubsim).values() if count)  # no xorb was ever sent twice
    new_bytes = sum(xet.xorbs[hashes.from_hex(h)].length for h in second_sent)
    assert new_bytes < XORB / 2  # the embeddings and head, unchanged, were deduplicated

    path = hf_hub_download(repo_id, big[0].path, cache_dir=tmp_path, token=hubsim.token)
    local = next(w for w in sorted(second_build.rglob("*.safetensors")) if w.name == Path(big[0].path).name)
    assert Path(path).read_bytes() == local.read_bytes()
