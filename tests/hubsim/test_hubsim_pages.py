"""hubsim's web pages: what a browser gets at the Hub's URLs, that nothing in a card or comment can run
script, that `resolve` serves text as text, and that the pages leave every API route as it was."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import httpx
import pytest
from huggingface_hub import CommitOperationAdd

HOSTILE = """
<script>window.pwned = 1</script>
<img src="x.png" onerror="window.pwned = 1">
<a href="javascript:window.pwned = 1">click</a> <a href=" JaVaScRiPt:alert(1)">again</a>
[markdown link](javascript:alert(1))
<div onclick="alert(1)" style="background:url(javascript:alert(1))">d</div>
<iframe src="https://example.com"></iframe><svg onload="alert(1)"></svg>
<details><summary>Kept</summary>folded text</details>
"""


class _Tags(HTMLParser):
    """Every start tag with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))


def _tags(html: str) -> list[tuple[str, dict[str, str]]]:
    parser = _Tags()
    parser.feed(html)
    return parser.tags


def _readme(body: str, **meta: str) -> bytes:
    front = "".join(f"{key}: {value}\n" for key, value in meta.items())
    return f"---\n{front}---\n{body}".encode()


@pytest.fixture
def web(hubsim):
    """An anonymous browser-like client (no token)."""
    with httpx.Client(base_url=hubsim.url) as client:
        yield client


@pytest.fixture
def family(hubsim, repo_factory, model_folder):
    """(base model, its quantization, an unrelated finetune of it)."""
    base = repo_factory("base")
    hubsim.api.upload_folder(repo_id=base, folder_path=model_folder, commit_message="Upload base")
    hubsim.api.upload_file(
        repo_id=base, path_or_fileobj=_readme("# The base\n", license="mit"), path_in_repo="README.md"
    )
    quant = repo_factory("quant")
    card = "# Quantized\n\n| format | bits |\n|---|--:|\n| FP8 | 8 |\n\n"
    card += "[manifest](manifest.json) ![plot](plot.png)\n"
    meta = {"license": "apache-2.0", "base_model": base, "base_model_relation": "quantized"}
    hubsim.api.upload_file(
        repo_id=quant,
        path_or_fileobj=_readme(card, library_name="transformers", tags="[fp8, quantbot]", **meta),
        path_in_repo="README.md",
        commit_message="Add card",
    )
    tune = repo_factory("tune")
    hubsim.api.upload_file(
        repo_id=tune,
        path_or_fileobj=_readme("# tuned\n", base_model=base, base_model_relation="finetune"),
        path_in_repo="README.md",
    )
    return base, quant, tune


def test_model_page_shows_the_card_its_metadata_and_base_model(web, family):
    base, quant, _ = family
    page = web.get(f"/{quant}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "<h1>Quantized</h1>" in html
    assert re.search(r"<th>format</th>\s*<th[^>]*>bits</th>", html)
    assert '<td style="text-align:right">8</td>' in html
    assert "<b>License:</b> apache-2.0" in html
    assert "<dt>Library</dt><dd>transformers</dd>" in html
    assert "<dt>Tags</dt><dd>fp8, quantbot</dd>" in html
    assert f'<a href="/{base}">{base}</a>' in html and "<dd>quantized</dd>" in html
    assert f'href="/{quant}/tree/main"' in html and "Files and versions" in html
    assert f'<a href="/{quant}/blob/main/manifest.json"' in html  # relative links point into the repo
    assert f'<img src="/{quant}/resolve/main/plot.png" alt="plot">' in html
    assert "---" not in html.split('id="card"')[1].split("</article>")[0]  # the front matter is not shown


def test_base_model_page_lists_its_quantizations_apart_from_finetunes(web, family):
    base, quant, tune = family
    html = web.get(f"/{base}").text
    quantizations = html.split("Quantizations (1)")[1].split("</ul>")[0]
    assert f'href="/{quant}"' in quantizations and tune not in quantizations
    assert f'href="/{tune}"' in html.split("Finetunes (1)")[1].split("</ul>")[0]
    assert "<b>License:</b> mit" in html


def test_home_and_owner_pages_list_repos(web, hubsim, family):
    base, quant, _ = family
    for url in ("/", "/models", f"/{hubsim.user}"):
        html = web.get(url).text
        assert f'href="/{base}"' in html and f'href="/{quant}"' in html, url
    org = web.get(f"/{hubsim.org}").text
    assert "Organization" in org and f'href="/{hubsim.user}"' in org


def test_nothing_in_a_card_or_a_comment_can_run_script(web, hubsim, repo_factory):
    repo = repo_factory("hostile")
    hubsim.api.upload_file(repo_id=repo, path_or_fileobj=_readme(HOSTILE), path_in_repo="README.md")
    discussion = hubsim.api.create_discussion(repo, "hostile thread", description=HOSTILE)
    hubsim.api.comment_discussion(repo, discussion.num, HOSTILE)
    for url in (f"/{repo}", f"/{repo}/discussions/{discussion.num}"):
        html = web.get(url).text
        tags = _tags(html)
        assert not [t for t, _ in tags if t in ("script", "iframe", "svg")], url
        assert not [(t, a) for t, a in tags if any(name.startswith("on") for name in a)], url
        urls = [v for _, a in tags for k, v in a.items() if k in ("href", "src")]
        assert not [u for u in urls if "script:" in u.lower().replace(" ", "")], url
        assert not [a["style"] for _, a in tags if "url(" in a.get("style", "")], url
        assert "<summary>Kept</summary>" in html and "folded text" in html  # harmless HTML still renders


def test_files_tree_blob_commits_and_commit_pages(web, hubsim, repo_factory, model_folder):
    repo = repo_factory()
    hubsim.api.upload_folder(repo_id=repo, folder_path=model_folder, commit_message="Add model")
    hubsim.api.upload_file(
        repo_id=repo, path_or_fileobj=b"line one\nline 2\n", path_in_repo="nested/notes.txt",
        commit_message="Fix the notes",
    )  # fmt: skip
    tree = web.get(f"/{repo}/tree/main").text
    assert f'href="/{repo}/tree/main/nested">nested/</a>' in tree
    assert f'href="/{repo}/blob/main/config.json">config.json</a>' in tree
    assert "2.05 kB" in tree  # model.safetensors, in the Hub's decimal units
    assert "3 commits" in tree
    nested = web.get(f"/{repo}/tree/main/nested").text
    assert f'href="/{repo}/blob/main/nested/notes.txt">notes.txt</a>' in nested and "Fix the notes" in nested
    blob = web.get(f"/{repo}/blob/main/nested/notes.txt").text
    assert '<td class="l">line 2</td>' in blob
    assert f'href="/{repo}/resolve/main/nested/notes.txt"' in blob
    assert "binary" in web.get(f"/{repo}/blob/main/model.safetensors").text
    moved = web.get(f"/{repo}/tree/main/config.json")
    assert moved.status_code == 302 and moved.headers["location"] == f"/{repo}/blob/main/config.json"
    assert web.get(f"/{repo}/blob/main/nested").headers["location"] == f"/{repo}/tree/main/nested"
    missing = web.get(f"/{repo}/blob/main/nope.txt")
    assert missing.status_code == 404 and "Entry not found: nope.txt" in missing.text
    assert web.get(f"/{repo}/tree/no-such-branch").status_code == 404
    commits = web.get(f"/{repo}/commits/main").text
    assert commits.index("Fix the notes") < commits.index("Add model") < commits.index("initial commit")
    head = hubsim.api.model_info(repo).sha
    commit = web.get(f"/{repo}/commit/{head}").text
    assert '<span class="del">-line two</span>' in commit and '<span class="add">+line 2</span>' in commit


def test_a_pull_request_thread_shows_comments_edits_status_changes_and_files(web, hubsim, repo_factory):
    repo = repo_factory()
    pr = hubsim.other_api.create_commit(
        repo, [CommitOperationAdd("notes.md", b"# hello\n")], commit_message="Add notes",
        commit_description="First **bold** version", create_pr=True,
    )  # fmt: skip
    num = pr.pr_num
    first = hubsim.other_api.get_discussion_details(repo, num).events[0]
    hubsim.other_api.edit_discussion_comment(repo, num, first.id, "Second **bold** version")
    hubsim.api.comment_discussion(repo, num, "| ok |\n|---|\n| yes |\n\nSee https://example.org/a_b.")
    hidden = hubsim.api.comment_discussion(repo, num, "a secret")
    hubsim.api.hide_discussion_comment(repo, num, hidden.id)
    hubsim.api.rename_discussion(repo, num, "Add the notes")
    hubsim.api.merge_pull_request(repo, num)
    html = web.get(f"/{repo}/discussions/{num}").text
    assert "Add the notes" in html and "changed the title from <del>Add notes</del>" in html
    assert "Second <strong>bold</strong> version" in html and "edited 1 time" in html
    assert "Earlier versions (1)" in html and "First <strong>bold</strong> version" in html
    assert "<td>yes</td>" in html
    assert '<a href="https://example.org/a_b" rel="noopener noreferrer">https://example.org/a_b</a>.' in html
    assert "This comment has been hidden" in html and "a secret" not in html
    assert 'status to <span class="badge merged">merged</span>' in html
    assert f'href="/{repo}/blob/refs%2Fpr%2F{num}/notes.md"' in html
    assert '<span class="hunk">@@ -0,0 +1 @@</span>\n<span class="add">+# hello</span>\n' in html
    listing = web.get(f"/{repo}/discussions").text
    assert f'href="/{repo}/discussions/{num}"' in listing and "pull request" in listing
    assert "Add the notes" not in web.get(f"/{repo}/discussions?status=open").text
    pr_tree = web.get(f"/{repo}/tree/refs%2Fpr%2F{num}").text
    assert "notes.md" in pr_tree


def test_dataset_pages_live_under_datasets(web, hubsim, repo_factory):
    repo = repo_factory("data", repo_type="dataset")
    hubsim.api.upload_file(
        repo_id=repo, path_or_fileobj=_readme("# Rows\n", license="cc-by-4.0"), path_in_repo="README.md",
        repo_type="dataset",
    )  # fmt: skip
    page = web.get(f"/datasets/{repo}")
    assert page.status_code == 200 and "<h1>Rows</h1>" in page.text and "Dataset card" in page.text
    assert f'href="/datasets/{repo}/tree/main"' in page.text
    assert "README.md" in web.get(f"/datasets/{repo}/tree/main").text
    assert f'href="/datasets/{repo}"' in web.get("/datasets").text
    assert web.get(f"/{repo}").status_code == 404  # not a model


def test_hidden_and_missing_things_are_html_404s(web, hubsim, repo_factory):
    private = repo_factory("secret", private=True)
    for url in (f"/{private}", f"/{private}/tree/main", "/nobody-here", f"/{hubsim.user}/nothing"):
        page = web.get(url)
        assert page.status_code == 404 and page.headers["content-type"].startswith("text/html"), url
    assert f"Repository not found: {private}" in web.get(f"/{private}").text  # as if it did not exist
    assert web.get(f"/{private}/discussions/x").status_code == 404
    owner = httpx.get(f"{hubsim.url}/{private}", headers={"authorization": f"Bearer {hubsim.token}"})
    assert owner.status_code == 200 and "private" in owner.text


def test_resolve_serves_text_files_as_text_and_weights_as_binary(web, hubsim, repo_factory, model_folder):
    repo = repo_factory()
    hubsim.api.upload_folder(repo_id=repo, folder_path=model_folder)
    for path, expected in (
        ("README.md", "text/plain; charset=utf-8"),
        ("config.json", "text/plain; charset=utf-8"),
        ("nested/notes.txt", "text/plain; charset=utf-8"),
        ("model.safetensors", "application/octet-stream"),
    ):
        for method in ("GET", "HEAD"):
            # model.safetensors is an LFS file: a redirect to storage, which serves it
            answer = web.request(method, f"/{repo}/resolve/main/{path}", follow_redirects=True)
            assert answer.status_code == 200 and answer.headers["content-type"] == expected, (path, method)
    assert web.get(f"/{repo}/resolve/main/README.md").text.startswith("---\nlicense: apache-2.0")


def test_the_api_answers_as_before_around_the_pages(web, hubsim, repo_factory):
    repo = repo_factory()
    for method, url, status in (
        ("GET", "/api/no-such-thing", 404),
        ("GET", "/api/models/nobody/nothing/extra", 404),
        ("GET", "/_hubsim/nothing", 404),
        ("POST", f"/{repo}", 404),
        ("DELETE", f"/{repo}/discussions", 404),
        ("GET", "/no/such/route/at/all", 404),
    ):
        answer = web.request(method, url)
        assert answer.status_code == status and answer.json()["error"].startswith("hubsim does not"), url
    assert web.get("/_hubsim/health").json()
    assert web.get(f"/api/models/{repo}").json()["id"] == repo
    assert web.get(f"/{repo}/resolve/main/.gitattributes").text.startswith("*.7z")
