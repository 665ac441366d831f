"""Test-wide set-up: every Hub call goes to an in-process hubsim on a free port.

huggingface_hub reads `HF_ENDPOINT` and `HF_HOME` at import time, so they are set here, when pytest
imports this file and before any test module imports the client. The client runs as installed: with
hf_xet, it uploads and downloads weights through Xet, as against the Hub (hubsim's CAS, bot/hubsim/xet/).

Fixtures:
- `hubsim` (session): the running emulator. `.url`, `.token`, `.user`, `.api` (an `HfApi` for that user),
  `.other_user` / `.other_token` / `.other_api` (a second user, for permission tests), `.org` (an org
  whose only member is `.user`), `.server` (the `HubService`: state, `faults`, `webhooks`, `page_size`),
  `fail(...)` to inject faults, `wait_for_delivery(...)` to wait for webhook deliveries.
- `repo_factory`: makes uniquely named repos and deletes them after the test.
- `lfs_client`: the client with Xet turned off for one test (an older client, or a user who set
  `HF_HUB_DISABLE_XET`): it uploads and downloads through Git LFS, which hubsim keeps offering.
- `store`: a fresh, migrated SQLite store in the test's tmp_path (tests/state runs on PostgreSQL too).
- `payloads`: fresh copies of the recorded Hub webhook payloads in tests/samples/ (docs/hub-api-contract.md,
  section 6: Example A, a PR opened, from the hub-docs; a commit on main; a discussion comment with a
  command; a PR merged), by file stem. The server and the dispatcher tests both use them. Beside them, in the
  same shapes (huggingface_hub's `WebhookPayload`), what the Hub sends and the bot must take without a 4xx:
  a repo moved (`movedTo`), a `repo.config` update, a push to a `kernel` repo (a type the client knows since
  1.33), a push to a branch named outside ASCII, a space's PR ref, and an action the bot does not know.

After each test using hubsim, its faults and page size are reset, and any exception that escaped a
hubsim handler (it answers a JSON 500, which a client retry could hide) fails the test.

The caller's own settings never reach a test: every `QUANTBOT_*`, `HF_*` and `HUGGINGFACE_*` variable is
removed when pytest imports this file, before anything reads them, and only what this file sets comes back.
`QUANTBOT_TEST_*` variables configure the test run itself and stay: `QUANTBOT_TEST_POSTGRES` (tests/state),
`QUANTBOT_TEST_CHROMIUM` and `QUANTBOT_TEST_CHROMEDRIVER` (the browser's paths), `QUANTBOT_TEST_SCREENSHOTS`
(where browser tests save their screenshots) and `QUANTBOT_TEST_BROWSER=required` (CI: a browser test whose
browser is missing fails instead of being skipped).
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


for _name in [n for n in os.environ if n.startswith(("QUANTBOT_", "HF_", "HUGGINGFACE_"))]:
    if not _name.startswith("QUANTBOT_TEST_"):
        del os.environ[_name]

HUBSIM_PORT = _free_port()
_HF_HOME = Path(tempfile.mkdtemp(prefix="quantbot-tests-hf-"))
atexit.register(shutil.rmtree, _HF_HOME, ignore_errors=True)
os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{HUBSIM_PORT}"
os.environ["HF_HOME"] = str(_HF_HOME)
os.environ["HF_HUB_CACHE"] = str(_HF_HOME / "hub")
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"

from huggingface_hub import HfApi, constants  # noqa: E402  (after the environment above, on purpose)

from bot.hubsim import Directory, HubService, HubsimServer, Org, User  # noqa: E402
from bot.hubsim.faults import Fault  # noqa: E402
from bot.hubsim.webhooks import Delivery  # noqa: E402
from state import Store, open_store, sqlite_url  # noqa: E402


@dataclass
class Hubsim:
    """The running emulator and handles for the tests."""

    running: HubsimServer
    server: HubService
    url: str
    user: str
    token: str
    other_user: str
    other_token: str
    org: str

    @property
    def api(self) -> HfApi:
        return self.api_for(self.token)

    @property
    def other_api(self) -> HfApi:
        return self.api_for(self.other_token)

    def api_for(self, token: str | None) -> HfApi:
        """A client for `token` (None: anonymous)."""
        return HfApi(endpoint=self.url, token=token if token is not None else False)

    def fail(
        self, path: str, status: int = 503, *, times: int = 1, method: str = "*", retry_after: int = 0
    ) -> Fault:
        """Make requests whose decoded path matches the regex `path` answer `status`, `times` times."""
        return self.server.faults.add(
            path, method=method, status=status, times=times, retry_after=retry_after
        )

    def wait_for_delivery(self, predicate: Callable[[Delivery], bool], timeout: float = 10.0) -> Delivery:
        """The first webhook delivery matching `predicate` (waits for it)."""
        return self.server.webhooks.wait_for(predicate, timeout)


@pytest.fixture(scope="session")
def hubsim() -> Iterator[Hubsim]:
    user, other = (
        User("hubsim-user", "hf_test_" + uuid.uuid4().hex),
        User("other-user", "hf_other_" + uuid.uuid4().hex),
    )
    org = Org("hubsim-org", [user.name])
    hub = HubService(Directory([user, other], [org]))
    running = HubsimServer(hub, port=HUBSIM_PORT).start()
    try:
        yield Hubsim(running, hub, running.url, user.name, user.token, other.name, other.token, org.name)
    finally:
        running.stop()


@pytest.fixture(autouse=True)
def _hubsim_hygiene(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "hubsim" not in request.fixturenames:
        return
    hub: Hubsim = request.getfixturevalue("hubsim")
    hub.server.faults.clear()
    hub.server.page_size = None
    hub.server.jobs.machine_env.clear()
    errors, hub.server.internal_errors[:] = list(hub.server.internal_errors), []
    assert not errors, "hubsim raised inside a handler:\n" + "\n".join(errors)


@pytest.fixture
def lfs_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """huggingface_hub without Xet, as `HF_HUB_DISABLE_XET=1` makes it (read at import, so patched here)."""
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)


@pytest.fixture
def repo_factory(hubsim: Hubsim) -> Iterator[Callable[..., str]]:
    """`make(name="repo", *, repo_type="model", private=False, namespace=None, token=None) -> repo_id`."""
    made: list[tuple[str, str, str]] = []

    def make(
        name: str = "repo",
        *,
        repo_type: str = "model",
        private: bool = False,
        namespace: str | None = None,
        token: str | None = None,
    ) -> str:
        token = token or hubsim.token
        owner = namespace or hubsim.server.users.by_token(token).name
        repo_id = f"{owner}/{name}-{uuid.uuid4().hex[:8]}"
        hubsim.api_for(token).create_repo(repo_id, repo_type=repo_type, private=private)
        made.append((repo_id, repo_type, token))
        return repo_id

    yield make
    for repo_id, repo_type, token in made:
        hubsim.api_for(token).delete_repo(repo_id, repo_type=repo_type, missing_ok=True)


SAMPLES = Path(__file__).parent / "samples"


@pytest.fixture
def payloads() -> dict[str, dict[str, Any]]:
    """Fresh copies of the recorded webhook payloads by name (`main_commit`, ...): safe to change."""
    return {path.stem: json.loads(path.read_text()) for path in sorted(SAMPLES.glob("*.json"))}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(sqlite_url(tmp_path))
    yield opened
    opened.close()


# ------------------------------------------------------------------------------------- the browser tests

BROWSER_INSTALL = "bash .ci/browser-deps (apt-get install chromium chromium-driver; pip install selenium)"


def lacking_browser(what: str) -> NoReturn:
    """Skip a browser test whose browser (or driver) is missing, saying what and how to install it; under
    `QUANTBOT_TEST_BROWSER=required` (CI, which installs it) fail instead, so CI never skips them."""
    message = f"the browser tests need {what}: install it with {BROWSER_INSTALL}"
    if os.environ.get("QUANTBOT_TEST_BROWSER") == "required":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _executable(env: str, *names: str) -> str | None:
    """`$env` when set, else the first of `names` on PATH; None unless it is an executable file."""
    found = os.environ.get(env) or next(filter(None, map(shutil.which, names)), None)
    return found if found and os.access(found, os.X_OK) and Path(found).is_file() else None


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's headless-capable `chromium` (or `$QUANTBOT_TEST_CHROMIUM`); skips the test where missing."""
    found = _executable("QUANTBOT_TEST_CHROMIUM", "chromium", "chromium-browser")
    return found or lacking_browser("chromium")


@pytest.fixture(scope="session")
def chromedriver() -> str:
    """The `chromedriver` matching it (or `$QUANTBOT_TEST_CHROMEDRIVER`); skips the test where missing."""
    return _executable("QUANTBOT_TEST_CHROMEDRIVER", "chromedriver") or lacking_browser("chromedriver")


@pytest.fixture(scope="session")
def webdriver() -> Any:
    """`selenium.webdriver` (the `[dev]` extra brings it); skips the test where it is not installed."""
    try:
        from selenium import webdriver
    except ImportError:
        lacking_browser("the selenium package")
    return webdriver


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """Where browser tests save screenshots: `$QUANTBOT_TEST_SCREENSHOTS`, else `out/screenshots/`
    (git-ignored, kept after the run for a person or CI to look at)."""
    root = Path(__file__).resolve().parents[1]
    folder = Path(os.environ.get("QUANTBOT_TEST_SCREENSHOTS") or root / "out" / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
