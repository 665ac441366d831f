"""hubsim's pages as a user sees them in Chromium: a release's model page with its card table, a pull
request thread with the bot's reply, and a file tree; each saved as a screenshot."""

from __future__ import annotations

import sys
import uuid

import pytest
from huggingface_hub import CommitOperationAdd

pytestmark = pytest.mark.browser

CONFIG = b'{"model_type": "llama", "architectures": ["LlamaForCausalLM"]}'
CARD = """---
license: apache-2.0
library_name: transformers
base_model: {base}
base_model_relation: quantized
tags:
- gptq
- 4-bit
---

# tiny-llama - GPTQ Quantized

This is a 4-bit GPTQ quantized version of [{base}](/{base}).

## Files

| format | bits | group size | size |
|---|--:|--:|--:|
| GPTQ | 4 | 128 | 0.8 MB |

```python
from transformers import AutoModelForCausalLM
model = AutoModelForCausalLM.from_pretrained("{repo}")
```

<img src="missing.png" onerror="document.title = 'pwned'">
<script>document.title = 'pwned'</script>
"""
REPLY = "Released **GPTQ 4-bit**: {url}\n\n| format | status |\n|---|---|\n| GPTQ | ready |"


@pytest.fixture(scope="module")
def release(hubsim):
    """An upstream model and its GPTQ release (a repo plus a pull request the bot answered in)."""
    suffix = uuid.uuid4().hex[:6]
    base, repo = f"{hubsim.org}/tiny-llama-{suffix}", f"{hubsim.user}/tiny-llama-{suffix}-GPTQ"
    api = hubsim.api
    api.create_repo(base)
    api.upload_file(repo_id=base, path_or_fileobj=b"---\nlicense: apache-2.0\n---\n# tiny-llama\n",
                    path_in_repo="README.md")  # fmt: skip
    api.create_repo(repo)
    api.create_commit(
        repo,
        [
            CommitOperationAdd("README.md", CARD.format(base=base, repo=repo).encode()),
            CommitOperationAdd("config.json", CONFIG),
            CommitOperationAdd("model.safetensors", bytes(range(256)) * 64),
            CommitOperationAdd("quantize/manifest.json", b'{"format": "gptq"}'),
        ],
        commit_message="Release GPTQ 4-bit",
    )
    pr = hubsim.other_api.create_commit(
        repo, [CommitOperationAdd("notes.md", b"# notes\n")], commit_message="Add notes",
        commit_description="Could you add a GPTQ 8-bit build?", create_pr=True,
    )  # fmt: skip
    api.comment_discussion(repo, pr.pr_num, REPLY.format(url=f"{hubsim.url}/{repo}"))
    api.change_discussion_status(repo, pr.pr_num, "closed", comment="Closing: 8-bit is not planned.")
    yield base, repo, pr.pr_num
    for repo_id in (repo, base):
        api.delete_repo(repo_id, missing_ok=True)


def test_model_page_shows_the_rendered_card_and_its_metadata(page, release):
    base, repo, _ = release
    page.open(f"/{repo}")
    assert page.title == f"{repo} · hubsim"  # and no script in the card changed it
    assert page.text("h1") == repo.replace("/", " / ")
    table = page.find("#card table")
    assert table.is_displayed() and table.size["height"] > 40
    assert [th.text for th in table.find_elements("css selector", "th")] == [
        "format",
        "bits",
        "group size",
        "size",
    ]
    assert [td.text for td in table.find_elements("css selector", "td")] == ["GPTQ", "4", "128", "0.8 MB"]
    assert "from_pretrained" in page.text("#card pre")
    assert "License: apache-2.0" in page.text(".chips")
    tree = page.text("#model-tree")
    assert base in tree and "quantized" in tree
    assert page.find(f'#model-tree a[href="/{base}"]').is_displayed()
    assert page.shoot("model").stat().st_size > 10_000
    page.open(f"/{base}")
    assert repo in page.text("#model-tree")  # the base model lists its quantization
    page.shoot("base-model")


def test_discussion_shows_the_thread_with_the_bots_reply(page, hubsim, release):
    _, repo, num = release
    page.open(f"/{repo}/discussions/{num}")
    timeline = page.text("#timeline")
    assert "Could you add a GPTQ 8-bit build?" in timeline
    reply = page.find_all("#timeline .comment")[1]
    assert reply.find_element("css selector", ".head b").text == hubsim.user
    assert reply.find_element("css selector", "strong").text == "GPTQ 4-bit"
    assert reply.find_element("css selector", "table").is_displayed()
    reply.find_element("css selector", f'a[href="{hubsim.url}/{repo}"]').click()  # a bare URL is a link
    assert page.text("h1") == repo.replace("/", " / ")
    page.driver.back()
    assert "changed pull request status to closed" in timeline
    assert "Closing: 8-bit is not planned." in timeline
    assert "notes.md" in page.text("#files-changed + ul")
    page.shoot("discussion")
    page.open(f"/{repo}/discussions")
    assert "Add notes" in page.text("#discussions")


def test_file_tree_lists_files_and_opens_a_folder_and_a_file(page, release):
    _, repo, _ = release
    page.open(f"/{repo}/tree/main")
    rows = [row.text for row in page.find_all("#files tr")]
    assert rows[0] == "quantize/"  # folders first, as on the Hub
    assert any(r.startswith("model.safetensors 16.4 kB Release GPTQ 4-bit") for r in rows)
    page.shoot("tree")
    page.follow('#files a[href$="/tree/main/quantize"]')
    assert page.driver.current_url.endswith(f"/{repo}/tree/main/quantize")
    page.follow('#files a[href$="/blob/main/quantize/manifest.json"]')
    assert '{"format": "gptq"}' in page.text("#file")
    page.shoot("blob")


def test_a_jobs_page_after_signing_in_shows_its_status_and_log(page, hubsim):
    job = hubsim.api.run_job(image="quantbot-worker:test", command=[sys.executable, "-c", "print('built')"])
    hubsim.api.wait_for_job(job.id, timeout=30, poll_interval=0.1)
    page.open(f"/jobs/{hubsim.user}/{job.id}")  # Jobs are for their owner: the sign-in form comes first
    page.follow("a[href^='/login']")
    page.find("input[name=token]").send_keys(hubsim.token)
    page.follow("form button")
    assert page.driver.current_url == job.url
    assert page.text("#status") == "COMPLETED"
    assert page.text("#logs").splitlines()[-1] == "built"
    page.shoot("job")
