"""hubsim's Jobs pages: the page `JobInfo.url` points at shows the Job as the Hub's does (never a secret's
value), `/jobs/{namespace}` lists them, and only the namespace's members see either."""

from __future__ import annotations

import re
import sys
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from huggingface_hub import JobInfo

from bot.hubsim.job_pages import LOG_LINES

SECRET = "hf_page_secret_0123456789"
ENV_VALUE = "env-value-not-shown"


def _run(hubsim: Any, code: str, *args: str, **kw: Any) -> JobInfo:
    kw.setdefault("flavor", "cpu-basic")
    job = hubsim.api.run_job(image="quantbot-worker:test", command=[sys.executable, "-c", code, *args], **kw)
    hubsim.api.wait_for_job(job.id, namespace=kw.get("namespace"), timeout=30, poll_interval=0.1)
    return job


def _page(hubsim: Any, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(hubsim.url + path, headers=headers, **kw)


@pytest.fixture(scope="module")
def done(hubsim: Any) -> JobInfo:
    """A finished Job with arguments, environment, a secret it prints, labels and markup in its log."""
    code = "import os, sys; print('<script>x</script>', sys.argv[1:]); print('token', os.environ['HF_TOKEN'])"
    return _run(
        hubsim, code, "--stage", "a <b>bold</b> & 'quoted' arg", flavor="l4x1",
        env={"QUANTBOT_TASK": ENV_VALUE}, secrets={"HF_TOKEN": SECRET}, labels={"quantbot-job": "7"},
    )  # fmt: skip


def test_the_job_page_shows_the_job_its_log_and_no_secret(hubsim: Any, done: JobInfo) -> None:
    answer = _page(hubsim, f"/jobs/{hubsim.user}/{done.id}", hubsim.token)
    assert done.url == f"{hubsim.url}/jobs/{hubsim.user}/{done.id}"
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    page = answer.text
    assert done.id in page and "COMPLETED" in page and "l4x1" in page and "quantbot-worker:test" in page
    args = re.findall(r'<code class="arg">(.*?)</code>', page)
    assert args[-2:] == [
        "--stage",
        "a &lt;b&gt;bold&lt;/b&gt; &amp; &#39;quoted&#39; arg",
    ]  # as given, escaped
    assert "<code>QUANTBOT_TASK</code>" in page and "<code>HF_TOKEN</code>" in page
    assert "<b>quantbot-job</b>=7" in page
    log = re.search(r'<pre id="logs">(.*?)</pre>', page, re.S)
    assert log is not None
    assert "&lt;script&gt;x&lt;/script&gt;" in log.group(1) and "<script>" not in page
    assert "token ***" in log.group(1)  # the Job printed its secret; the page masks it
    for never in (SECRET, ENV_VALUE, hubsim.token):
        assert never not in page


def test_the_listing_is_newest_first_and_links_each_job(hubsim: Any, done: JobInfo) -> None:
    failed = _run(hubsim, "import sys; print('boom'); sys.exit(3)")
    listing = _page(hubsim, f"/jobs/{hubsim.user}", hubsim.token)
    assert listing.status_code == 200
    ids = re.findall(rf'href="/jobs/{hubsim.user}/([0-9a-f]+)"', listing.text)
    assert ids.index(failed.id) < ids.index(done.id)
    page = _page(hubsim, f"/jobs/{hubsim.user}/{failed.id}", hubsim.token).text
    assert "ERROR" in page and "Job failed with exit code: 3" in page and "boom" in page


def test_a_long_log_shows_its_last_lines(hubsim: Any) -> None:
    job = _run(hubsim, f"for i in range({LOG_LINES + 100}): print('line', i)")
    log = re.search(
        r'<pre id="logs">(.*?)</pre>', _page(hubsim, f"/jobs/{hubsim.user}/{job.id}", hubsim.token).text, re.S
    )
    assert log is not None
    lines = log.group(1).splitlines()
    assert len(lines) == LOG_LINES and lines[-1] == f"line {LOG_LINES + 99}"


def test_only_the_namespace_members_see_its_jobs(hubsim: Any, done: JobInfo) -> None:
    path = f"/jobs/{hubsim.user}/{done.id}"
    for token in (None, hubsim.other_token):  # anonymous, another user: as if there were no such Job
        for seen in (path, f"/jobs/{hubsim.user}"):
            answer = _page(hubsim, seen, token)
            assert answer.status_code == 404 and "<h1>404</h1>" in answer.text and "l4x1" not in answer.text
    missing = _page(hubsim, f"/jobs/{hubsim.user}/{'0' * 24}", hubsim.other_token)
    hidden = _page(hubsim, path, hubsim.other_token)
    assert (missing.status_code, missing.text.replace("0" * 24, done.id)) == (404, hidden.text)
    assert _page(hubsim, f"/jobs/{hubsim.user}/{'0' * 24}", hubsim.token).status_code == 404
    org_job = _run(hubsim, "print('org')", namespace=hubsim.org)
    assert _page(hubsim, f"/jobs/{hubsim.org}/{org_job.id}", hubsim.token).status_code == 200  # a member
    assert _page(hubsim, f"/jobs/{hubsim.org}/{org_job.id}", hubsim.other_token).status_code == 404


def test_a_browser_signs_in_with_its_token_to_see_its_jobs(hubsim: Any, done: JobInfo) -> None:
    path = f"/jobs/{hubsim.user}/{done.id}"
    with httpx.Client(base_url=hubsim.url) as browser:
        assert f'href="/login?next={quote(path, safe="")}"' in browser.get(path).text
        refused = browser.post("/login", data={"token": "hf_nobody", "next": path})
        assert refused.status_code == 401 and "token" not in browser.cookies
        signed = browser.post("/login", data={"token": hubsim.token, "next": path})
        assert signed.status_code == 303 and signed.headers["location"] == path
        assert "httponly" in signed.headers["set-cookie"].lower()
        page = browser.get(path)
        assert page.status_code == 200 and "COMPLETED" in page.text and hubsim.token not in page.text
        assert browser.get("/api/jobs/" + hubsim.user).status_code == 401  # the API still wants the header
        away = browser.post("/login", data={"token": hubsim.token, "next": "//evil.example/x"})
        assert away.headers["location"] == "/"
