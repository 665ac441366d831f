"""What a maintainer watching one model sees: a dashboard discussion on the upstream, a burst of pushes within
the cooldown built once (at once with `/quantize --now`), one release repo tagged with the revision it was
built from, and a push that changed only the chat template carried to the release as a PR, with no build.

One bot (a real `quantbot serve` process refreshing dashboards every second), alice's upstream watched for
GPTQ released at once (auto), with a 30-minute cooldown and a dashboard. The dashboard as hubsim's page shows
it at the end is saved under `out/dashboard/` (git-ignored) for a person to look at.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from html import unescape
from pathlib import Path

import httpx
import pytest
from e2e_support import BotProcess, E2EHub, publish_upstream, push_revision, wait_for

from bot.publishing.dashboard import TITLE
from state import Job, JobStatus, ReleaseStatus, Store

pytestmark = pytest.mark.slow

BUILD_S = 840
OUT = Path(__file__).resolve().parents[2] / "out" / "dashboard"


@pytest.fixture(scope="module")
def keeper(bot: BotProcess) -> BotProcess:
    """The module's bot, restarted with dashboards refreshed every second."""
    bot.stop()
    bot.write_config(dashboard_s=1.0)
    return bot.start()


@pytest.fixture(scope="module")
def store(keeper: BotProcess) -> Iterator[Store]:
    opened = keeper.store()
    yield opened
    opened.close()


def _dashboard(hub: E2EHub, repo: str, *wanted: str) -> tuple[int, str]:
    """The bot's dashboard discussion on `repo` once its text holds every `wanted` string."""

    def found() -> tuple[int, str] | None:
        api = hub.api("alice")
        for d in api.get_repo_discussions(repo, author="quantbot", discussion_type="discussion"):
            text = api.get_discussion_details(repo, d.num).events[0].content
            if d.title == TITLE and all(w in text for w in wanted):
                return d.num, text
        return None

    return wait_for(found, 60, f"the dashboard on {repo} to say {wanted}")


def _jobs(store: Store, repo: str) -> dict[str, JobStatus]:
    return {j.spec["revision"]: j.status for j in store.jobs.list(repo=repo)}


@pytest.fixture(scope="module")
def upstream(keeper: BotProcess, e2e_hub: E2EHub, tiny_model: Path) -> str:
    repo, _ = publish_upstream(e2e_hub, tiny_model, "kept")
    watch = ["--formats", "gptq", "--approval", "auto", "--cooldown", "30", "--dashboard"]
    keeper.cli("watch", "add", "repo", repo, *watch)
    keeper.cli("webhooks", "sync", "--url", keeper.url + "/webhooks/hub")
    return repo


def _job(store: Store, repo: str, sha: str) -> Job:
    [job] = [j for j in store.jobs.list(repo=repo) if j.spec["revision"] == sha]
    return job


def test_a_burst_of_pushes_within_the_cooldown_waits_as_one_build(
    e2e_hub: E2EHub, upstream: str, store: Store
) -> None:
    _dashboard(e2e_hub, upstream, "| **GPTQ** |", " | planned | ")
    first = push_revision(e2e_hub, upstream, "revision 2")
    wait_for(lambda: _jobs(store, upstream).get(first) is JobStatus.QUEUED, 30, "the first push's build")
    second = push_revision(e2e_hub, upstream, "revision 3")
    replaced = {first: JobStatus.CANCELLED, second: JobStatus.QUEUED}
    wait_for(lambda: _jobs(store, upstream) == replaced, 30, "the second push to replace the first")
    _dashboard(e2e_hub, upstream, " | waiting | ", second[:12], "`/quantize gptq --now`")
    assert _job(store, upstream, second).not_before is not None


@pytest.mark.timeout(900)
def test_quantize_now_builds_the_last_push_into_one_tagged_release(
    e2e_hub: E2EHub, upstream: str, store: Store
) -> None:
    num, _ = _dashboard(e2e_hub, upstream, " | waiting | ")
    second = next(sha for sha, status in _jobs(store, upstream).items() if status is JobStatus.QUEUED)
    e2e_hub.api("alice").comment_discussion(upstream, num, "/quantize gptq --now")
    done = lambda: _job(store, upstream, second).terminal  # noqa: E731
    wait_for(done, BUILD_S, "the build of the last push to be published")
    job = _job(store, upstream, second)
    assert job.status is JobStatus.PUBLISHED, job.error
    [release] = store.releases.find(build_key=job.build_key)
    api = e2e_hub.api("maya")
    [tag] = api.list_repo_refs(release.repo_id).tags
    assert (tag.name, tag.target_commit) == (f"upstream-{second[:12]}", api.model_info(release.repo_id).sha)
    _dashboard(e2e_hub, upstream, " | published | ", f"({release.url})")


def test_a_fixed_chat_template_reaches_the_release_without_a_build(
    e2e_hub: E2EHub, upstream: str, store: Store
) -> None:
    [release] = store.releases.find(statuses=[ReleaseStatus.PUBLISHED])
    api = e2e_hub.api("maya")
    config = json.loads(Path(api.hf_hub_download(upstream, "tokenizer_config.json")).read_text())
    config["chat_template"] = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}"
    fixed = json.dumps(config, indent=2).encode()
    template = (
        e2e_hub.api("alice")
        .upload_file(
            path_or_fileobj=fixed,
            path_in_repo="tokenizer_config.json",
            repo_id=upstream,
            commit_message="Fix",
        )
        .oid
    )
    num, text = _dashboard(e2e_hub, upstream, "Metadata-only updates", template[:12], " | published | ")
    assert template not in _jobs(store, upstream)
    prs = api.get_repo_discussions(release.repo_id, author="quantbot", discussion_type="pull_request")
    [pr] = [p for p in prs if p.title.startswith("Metadata of")]  # besides the release's own, merged
    assert pr.title.startswith(f"Metadata of {upstream} at {template[:12]}") and pr.status == "open"
    files = api.get_discussion_details(release.repo_id, pr.num).diff or ""
    assert "tokenizer_config.json" in files and ".safetensors" not in files

    html = httpx.get(f"{e2e_hub.url}/{upstream}/discussions/{num}").text
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "dashboard.html").write_text(html)
    (OUT / "dashboard.md").write_text(text)
    page = re.sub(r"<style.*?</style>", "", html.partition("Earlier versions")[0], flags=re.DOTALL)
    shown = unescape(re.sub(r"<[^>]+>", " ", page))
    (OUT / "dashboard.txt").write_text(re.sub(r"[ \t]*\n\s*", "\n", shown).strip() + "\n")
    assert "published" in shown and "Metadata-only updates" in shown
