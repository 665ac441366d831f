"""The one door to the Hub: every Hub call of the bot goes through `Hub`.

`Hub` wraps huggingface_hub's `HfApi` so that the rest of the bot sees only quantbot's typed errors
(`bot.errors`), and so that calls are retried, bounded, on 429 and 5xx (honouring `Retry-After`). Every
request of a token spends that token's one request budget (`bot.budget`), which holds a retry after a 429
until the Hub's reset and keeps requests for publishing and replies when polling would spend them.

One retry budget per request, never two nested: the client's own `http_backoff` already retries the
preupload, Xet token, LFS and storage requests of an upload (six tries, 23 s of backoff), and hf_xet
retries every request to the Xet CAS itself (a 429 or 5xx there surfaces as a `ConnectionError` once its
budget is spent), so a failure of one of those is final here; plain requests such as `model_info` or the
commit are not retried by the client, so they get this module's budget (four tries, 14 s). A publish that
still fails waits and is tried again whole (`bot.retries`).
"""

from __future__ import annotations

import contextlib
import functools
import glob
import json
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from huggingface_hub import (
    HfApi,
    JobInfo,
    get_session,
    hf_hub_download,
    hf_raise_for_status,
    snapshot_download,
)
from huggingface_hub import errors as hf_errors
from huggingface_hub.community import Discussion, DiscussionWithDetails
from huggingface_hub.hf_api import (
    CommitInfo,
    DatasetInfo,
    GitCommitInfo,
    ModelInfo,
    WebhookInfo,
    WebhookWatchedItem,
)
from huggingface_hub.utils import build_hf_headers, paginate

from bot.budget import CALLS, RequestBudget, acting_as, budget_for, named_caller
from bot.errors import (
    CardRefused,
    EntryNotFound,
    HubAuthError,
    HubError,
    HubRateLimited,
    HubUnavailable,
    RepoNotFound,
    RevisionNotFound,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_ENDPOINT = "https://huggingface.co"
FREE_QUOTAS = {"api": 1_000, "resolvers": 5_000}  # the Hub's free plan, per 5 minutes, until it tells
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_ATTEMPTS = 4
MAX_SLEEP_S = 30.0
_COMMIT = re.compile(r"[0-9a-f]{40}")


class PinnedReads(Generic[T]):
    """Answers read at a commit sha, kept `ttl_s` (`size` at most): a commit's files and card never change,
    and only what may (gating, likes) could go stale meanwhile."""

    def __init__(self, ttl_s: float = 120.0, size: int = 256) -> None:
        self.ttl_s, self.size = ttl_s, size
        self._kept: OrderedDict[tuple[object, ...], tuple[float, T]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[object, ...], read: Callable[[], T]) -> T:
        now = time.monotonic()
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None and now - kept[0] < self.ttl_s:
                return kept[1]
        value = read()  # a failure is not kept: the next ask reads again
        with self._lock:
            self._kept[key] = (now, value)
            self._kept.move_to_end(key)
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)
        return value


def _retry_after(response: Any, attempt: int) -> float:
    """Seconds to wait: the server's `Retry-After` when given (bounded), else exponential."""
    header = response.headers.get("Retry-After") if response is not None else None
    try:
        return min(float(header), MAX_SLEEP_S) if header is not None else min(2.0**attempt, MAX_SLEEP_S)
    except ValueError:
        return min(2.0**attempt, MAX_SLEEP_S)


def _client_retried(error: Exception) -> bool:
    """Whether the failed request is one huggingface_hub retries itself (upload paths): no second budget."""
    try:
        request = error.request if isinstance(error, httpx.TransportError) else error.response.request  # type: ignore[attr-defined]
    except (AttributeError, RuntimeError):  # no request attached
        return False
    path = request.url.path
    if request.method == "PUT":
        return not path.startswith("/api/")  # an LFS object to its storage URL
    if request.method == "GET":
        return "/xet-write-token/" in path or "/xet-read-token/" in path
    return request.method == "POST" and ("/preupload/" in path or "/info/lfs/objects/" in path)


def translate(error: Exception, repo_id: str | None = None, endpoint: str | None = None) -> HubError:
    """Map a huggingface_hub / httpx failure to quantbot's error types, keeping the response.

    An unreachable Hub is named with its endpoint and the setting that chooses it, the likeliest fix.
    """
    response = getattr(error, "response", None)
    context = {
        "repo_id": repo_id,
        "response": response,
        "request_id": getattr(error, "request_id", None),
        "server_message": getattr(error, "server_message", None),
    }
    where = f" ({repo_id})" if repo_id else ""
    if isinstance(error, hf_errors.GatedRepoError):
        return HubAuthError(f"repo is gated and this token has no access{where}", **context)
    if isinstance(error, hf_errors.RevisionNotFoundError):
        return RevisionNotFound(f"revision not found{where}: {context['server_message'] or error}", **context)
    if isinstance(error, hf_errors.RemoteEntryNotFoundError):
        return EntryNotFound(f"file not found{where}: {context['server_message'] or error}", **context)
    if isinstance(error, hf_errors.RepositoryNotFoundError):
        return RepoNotFound(f"repo not found{where}", **context)
    hub = f"the Hub at {endpoint or DEFAULT_ENDPOINT}"
    hint = "check the network, or set HF_ENDPOINT to the Hub to use"
    if isinstance(error, hf_errors.LocalEntryNotFoundError):
        return HubUnavailable(
            f"could not download from {hub}{where}: {error.__cause__ or error}; {hint}", **context
        )
    if isinstance(error, httpx.TransportError):
        return HubUnavailable(f"cannot reach {hub}{where}: {error}; {hint}", **context)
    if isinstance(error, ConnectionError):  # hf_xet: a CAS request that failed through its retries
        if str(error).startswith("Rate limited"):
            return HubRateLimited(f"rate limited by the Hub's Xet storage{where}: {error}", **context)
        return HubUnavailable(f"the Hub's Xet storage failed{where}: {error}", **context)
    status = getattr(response, "status_code", None)
    detail = context["server_message"] or str(error).splitlines()[0]
    if status in (401, 403):
        return HubAuthError(f"the Hub refused this token{where}: {detail}", **context)
    if status == 429:
        return HubRateLimited(f"rate limited by the Hub{where}: {detail}", **context)
    if status is not None and status >= 500:
        return HubUnavailable(f"the Hub failed with {status}{where}: {detail}", **context)
    return HubError(f"Hub error{where}: {detail}", **context)


class Hub:
    """quantbot's Hub client: HfApi plus typed errors and bounded retries on reads."""

    def __init__(
        self, endpoint: str | None = None, token: str | None = None, *, budget: RequestBudget | None = None
    ) -> None:
        self.endpoint = endpoint
        self.token = token
        self.api = HfApi(endpoint=endpoint, token=token)
        # one budget per token in this process, whichever Hub made it first (bot.budget)
        self.budget = budget_for(token, lambda: budget or RequestBudget(dict(FREE_QUOTAS))) if token else None
        self._pinned: PinnedReads[ModelInfo] = PinnedReads()

    def acting_as(self, caller: str) -> contextlib.AbstractContextManager[None]:
        """Name who makes the Hub requests of this thread meanwhile (the poller, the catch-up, ...)."""
        return acting_as(caller)

    def call(
        self,
        fn: Callable[..., T],
        *args: Any,
        repo_id: str | None = None,
        retry: bool = True,
        idempotent: bool = True,
        **kw: Any,
    ) -> T:
        """Run one client call; retry 429/5xx/transport failures when `retry`, then raise a HubError.

        A connection that cannot even be opened (no DNS, refused) is not retried: the Hub is not there, and
        saying so at once beats 15 s of backoff. The bot retries the event or poll later anyway.

        A call that is not `idempotent` (opening a PR, posting a comment) is retried only on 429: the Hub
        refused it before acting, whereas after a 5xx or a dropped connection it may have acted, and a
        blind retry would post twice. Callers of such calls look before they try again.
        """
        name = str(getattr(fn, "__name__", None) or getattr(getattr(fn, "func", None), "__name__", "call"))
        caller = CALLS.get(name) if named_caller() is None else None  # a reply is a reply in any thread
        attempt = 0
        while True:
            try:
                if caller is None:
                    return fn(*args, **kw)
                with acting_as(caller):
                    return fn(*args, **kw)
            except (hf_errors.HfHubHTTPError, httpx.TransportError) as e:
                response = getattr(e, "response", None)
                status = getattr(response, "status_code", None)
                if isinstance(e, httpx.ConnectError):
                    transient = False
                elif idempotent:
                    transient = isinstance(e, httpx.TransportError) or status in RETRY_STATUSES
                else:
                    transient = status == 429
                attempt += 1
                if not (retry and transient and attempt < MAX_ATTEMPTS) or _client_retried(e):
                    raise translate(e, repo_id, self.endpoint) from e
                # after a 429 the budget holds the next try until the reset the Hub named (bot.budget)
                delay = 0.0 if status == 429 and self.budget else _retry_after(response, attempt)
                log.warning("Hub call %s failed (%s); retry %d in %.1fs", name, status or e, attempt, delay)
                time.sleep(delay)
            except (hf_errors.EntryNotFoundError, hf_errors.LocalEntryNotFoundError) as e:
                raise translate(e, repo_id, self.endpoint) from e
            except ConnectionError as e:  # hf_xet's, after its own retries: the client's budget is spent
                if isinstance(e, HubError):
                    raise
                raise translate(e, repo_id, self.endpoint) from e
            except hf_errors.LocalTokenNotFoundError as e:
                raise HubAuthError(
                    "no Hub token: set HF_TOKEN (or QUANTBOT_HF_TOKEN)", repo_id=repo_id
                ) from e

    def whoami(self, *, retry: bool = True) -> dict[str, Any]:
        """Who the token belongs to (`retry=False`: one try, for a caller whose loop is the retry)."""
        return self.call(self.api.whoami, retry=retry)

    def _headers(self) -> dict[str, str]:
        """The client's request headers (token, user agent) for the calls `HfApi` sends to the wrong host."""
        return build_hf_headers(token=self.token)

    def _pages(self, url: str) -> Iterator[Any]:
        """The items of a paginated list, following the `Link: rel="next"` header as the Hub gives it."""
        next_url: str | None = url
        while next_url:
            response = get_session().get(next_url, headers=self._headers())
            hf_raise_for_status(response)
            yield from response.json()
            next_url = response.links.get("next", {}).get("url")

    def model_info(
        self, repo_id: str, revision: str | None = None, files_metadata: bool = False
    ) -> ModelInfo:
        """A repo's info; with its files at a commit sha, read once for a while (`PinnedReads`): handling a
        push asks for the same commit's files and card in several places (the watch's lookup, eligibility),
        and each ask costs the token's request budget. Other reads (gating, as publishing checks it) are
        fresh."""
        if revision is None or not files_metadata or not _COMMIT.fullmatch(revision):
            return self._model_info(repo_id, revision, files_metadata)
        key = (repo_id.lower(), revision)
        return self._pinned.get(key, lambda: self._model_info(repo_id, revision, True))

    def _model_info(self, repo_id: str, revision: str | None, files_metadata: bool) -> ModelInfo:
        return self.call(
            self.api.model_info, repo_id, revision=revision, files_metadata=files_metadata, repo_id=repo_id
        )

    def dataset_info(
        self, repo_id: str, revision: str | None = None, files_metadata: bool = False
    ) -> DatasetInfo:
        return self.call(
            self.api.dataset_info, repo_id, revision=revision, files_metadata=files_metadata, repo_id=repo_id
        )

    def resolve_revision(self, repo_id: str, revision: str | None = None) -> str:
        """The 40-hex commit sha a branch, tag or sha points to now (builds pin it)."""
        sha = self.model_info(repo_id, revision=revision).sha
        if not sha:
            raise HubError(f"the Hub gave no commit sha for {repo_id}@{revision or 'main'}", repo_id=repo_id)
        return sha

    def download(self, repo_id: str, filename: str, revision: str | None = None) -> Path:
        path = self.call(
            hf_hub_download,
            repo_id,
            filename,
            revision=revision,
            endpoint=self.endpoint,
            token=self.token,
            repo_id=repo_id,
        )
        return Path(path)

    def snapshot(self, repo_id: str, revision: str, files: list[str], folder: Path) -> Path:
        """`files` of a repo at `revision`, downloaded into `folder` with the repo's layout (and nothing
        else there, unlike the shared cache's snapshot folder, which keeps whatever was read before)."""
        path = self.call(
            snapshot_download,
            repo_id,
            revision=revision,
            allow_patterns=[glob.escape(f) for f in files],
            local_dir=folder,
            endpoint=self.endpoint,
            token=self.token,
            repo_id=repo_id,
        )
        return Path(path)

    def safetensors_parameters(self, repo_id: str, revision: str | None = None) -> dict[str, int]:
        """Parameters per dtype from the repo's safetensors headers (ranged reads: no weights downloaded)."""
        try:
            meta = self.call(self.api.get_safetensors_metadata, repo_id, revision=revision, repo_id=repo_id)
        except (hf_errors.NotASafetensorsRepoError, hf_errors.SafetensorsParsingError) as e:
            raise HubError(f"cannot read safetensors headers ({repo_id}): {e}", repo_id=repo_id) from e
        return {dtype: count for dtype, count in meta.parameter_count.items()}

    def safetensors_tensors(self, repo_id: str, filename: str, revision: str) -> list[tuple[str, str]]:
        """(name, dtype) of each tensor in one safetensors file of a repo, from its header (ranged reads:
        the weights are not downloaded); ValueError where the file is not a safetensors file."""
        try:
            meta = self.call(
                self.api.parse_safetensors_file_metadata,
                repo_id,
                filename,
                revision=revision,
                repo_id=repo_id,
            )
        except hf_errors.SafetensorsParsingError as e:
            raise ValueError(f"{filename} is not a safetensors file: {e}") from None
        return [(name, tensor.dtype) for name, tensor in meta.tensors.items()]

    # --- writes and community calls used by the publisher -------------------------------------------

    def repo_exists(self, repo_id: str) -> bool:
        """Whether the model repo exists and this token may see it."""
        try:
            self.model_info(repo_id)
        except RepoNotFound:
            return False
        return True

    def create_repo(self, repo_id: str, *, private: bool = False) -> str:
        """Create the model repo (an existing one is fine: `exist_ok`); returns its URL."""
        return str(self.call(self.api.create_repo, repo_id, private=private, exist_ok=True, repo_id=repo_id))

    def update_repo_settings(self, repo_id: str, **settings: Any) -> None:
        """Change `gated` / `private` (setting a value twice is harmless, so it is retried)."""
        self.call(self.api.update_repo_settings, repo_id, repo_id=repo_id, **settings)

    def read_text(self, repo_id: str, filename: str, revision: str | None = None) -> str | None:
        """A text file of a repo; None when the file is absent or not UTF-8."""
        try:
            return self.download(repo_id, filename, revision=revision).read_text(encoding="utf-8")
        except EntryNotFound:
            return None
        except UnicodeDecodeError:
            return None

    def read_json(self, repo_id: str, filename: str, revision: str | None = None) -> dict[str, Any] | None:
        """A JSON file of a repo as a dict; None when the file is absent or not a JSON object."""
        text = self.read_text(repo_id, filename, revision=revision)
        try:
            data = json.loads(text) if text is not None else None
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def list_commits(self, repo_id: str, revision: str | None = None) -> list[GitCommitInfo]:
        """The commits of a branch, newest first."""
        return self.call(self.api.list_repo_commits, repo_id, revision=revision, repo_id=repo_id)

    def upload_folder(self, repo_id: str, folder: Path, **kw: Any) -> CommitInfo:
        """`HfApi.upload_folder`: retried whole, since a rerun skips the files already committed."""
        upload = functools.partial(self.api.upload_folder, repo_id=repo_id, folder_path=folder, **kw)
        return self.call(upload, repo_id=repo_id)

    def create_commit(self, repo_id: str, operations: list[Any], **kw: Any) -> CommitInfo:
        """`HfApi.create_commit`: retried, since recommitting the same content changes nothing.

        The client checks a README's metadata with the Hub's validate-yaml first and raises a plain
        ValueError when the Hub refuses it; that becomes a HubError naming the repo.
        """
        try:
            return self.call(self.api.create_commit, repo_id, operations, repo_id=repo_id, **kw)
        except ValueError as e:
            raise HubError(f"the Hub refused the commit to {repo_id}: {e}", repo_id=repo_id) from e

    def validate_card(self, card: str) -> None:
        """Ask the Hub's `validate-yaml` about a README's metadata; `CardRefused` (its messages) if refused.

        The Hub checks this on the commit too, but the publisher asks first, so that a card the Hub would
        refuse costs no upload."""
        url = f"{self.api.endpoint}/api/validate-yaml"
        headers = self._headers()

        def send() -> httpx.Response:
            response = get_session().post(url, json={"content": card, "repoType": "model"}, headers=headers)
            if response.status_code != 400:  # 400 carries the verdict; anything else failing is an error
                hf_raise_for_status(response)
            return response

        response = self.call(send)
        if response.status_code == 200:
            return
        try:
            messages = [str(e.get("message")) for e in response.json().get("errors") or []]
        except (ValueError, AttributeError):
            messages = [response.text[:300]]
        raise CardRefused(
            "the Hub refused the card's metadata: " + "; ".join(messages or ["no reason given"]), messages
        )

    def pull_requests(self, repo_id: str, author: str | None = None) -> list[Discussion]:
        """Every pull request of the repo (any status), optionally only those opened by `author`."""
        return self._discussions(repo_id, author=author, discussion_type="pull_request")

    def discussions(self, repo_id: str, author: str | None = None) -> list[Discussion]:
        """Every discussion of the repo that is not a pull request (any status), optionally by `author`."""
        return self._discussions(repo_id, author=author, discussion_type="discussion")

    def open_discussions(self, repo_id: str) -> list[Discussion]:
        """The repo's open discussions and PRs (drafts too): where commands the bot missed may wait."""
        return self._discussions(repo_id, discussion_status="open")

    def _discussions(self, repo_id: str, **filters: Any) -> list[Discussion]:
        listing = self.api.get_repo_discussions
        return self.call(lambda: list(listing(repo_id, **filters)), repo_id=repo_id)

    def discussion(self, repo_id: str, num: int) -> DiscussionWithDetails:
        """A discussion or PR with its events (the first comment is its description)."""
        return self.call(self.api.get_discussion_details, repo_id, num, repo_id=repo_id)

    def open_pull_request(self, repo_id: str, title: str, description: str) -> DiscussionWithDetails:
        """Open a draft PR (not idempotent: retried only on 429)."""
        create = functools.partial(self.api.create_pull_request, repo_id, title, description=description)
        return self.call(create, repo_id=repo_id, idempotent=False)

    def comment(self, repo_id: str, num: int, text: str) -> None:
        """Post a comment (not idempotent: retried only on 429)."""
        self.call(self.api.comment_discussion, repo_id, num, text, repo_id=repo_id, idempotent=False)

    def edit_comment(self, repo_id: str, num: int, comment_id: str, text: str) -> None:
        """Replace a comment's text (the same text twice is harmless, so it is retried)."""
        self.call(self.api.edit_discussion_comment, repo_id, num, comment_id, text, repo_id=repo_id)

    def set_status(self, repo_id: str, num: int, status: str, comment: str | None = None) -> None:
        """Open (publish a draft) or close a discussion, with an optional comment; retried only on 429."""
        self.call(
            self.api.change_discussion_status,
            repo_id,
            num,
            status,
            comment=comment,
            repo_id=repo_id,
            idempotent=False,
        )

    def open_discussion(self, repo_id: str, title: str, description: str) -> DiscussionWithDetails:
        """Open a discussion (not idempotent: retried only on 429)."""
        create = functools.partial(self.api.create_discussion, repo_id, title, description=description)
        return self.call(create, repo_id=repo_id, idempotent=False)

    def tag(self, repo_id: str, tag: str, revision: str, message: str) -> None:
        """Point `tag` at `revision`, moving it if it points elsewhere (a tag names one release's commit)."""
        refs = self.call(self.api.list_repo_refs, repo_id, repo_id=repo_id)
        if any(t.name == tag for t in refs.tags):
            self.call(self.api.delete_tag, repo_id, tag=tag, repo_id=repo_id)
        self.call(
            self.api.create_tag, repo_id, tag=tag, tag_message=message, revision=revision, repo_id=repo_id
        )

    def merge_pull_request(self, repo_id: str, num: int) -> None:
        """Merge a PR (the repo's owners only); retried only on 429, as a merge cannot happen twice."""
        self.call(self.api.merge_pull_request, repo_id, num, repo_id=repo_id, idempotent=False)

    # --- the bot: commands, the poller, webhooks sync ------------------------------------------------

    def reply(self, repo_id: str, num: int, text: str) -> str:
        """Post a comment and return its id, so the bot can edit it in place later (retried only on 429)."""
        posted = self.call(self.api.comment_discussion, repo_id, num, text, repo_id=repo_id, idempotent=False)
        return str(posted.id)

    def user_gpus(self, user: str) -> list[str]:
        """The GPUs `user` saved as their hardware on their Hub profile, primary first ([] when not public).

        The overview's `hardwareItems` (hub-docs hardware.md): `{"sku": [type, provider, model], ...}`."""
        overview = self.call(self.api.get_user_overview, user)
        items = getattr(overview, "hardwareItems", None) or []
        gpus = [
            i for i in items if isinstance(i, dict) and isinstance(i.get("sku"), list) and len(i["sku"]) == 3
        ]
        gpus.sort(key=lambda i: not i.get("isPrimary"))
        return [str(i["sku"][2]) for i in gpus if i["sku"][0] == "GPU"]

    def org_members(self, org: str) -> list[str] | None:
        """The user names of an org's members; None when `org` is not an org (a user, or nobody)."""
        # HfApi.list_organization_members ignores the client's endpoint (it reads HF_ENDPOINT), so page here.
        url = f"{self.api.endpoint}/api/organizations/{quote(org, safe='')}/members"
        try:
            return self.call(lambda: [m["user"] for m in self._pages(url)])
        except HubError as e:
            if e.status_code == 404:
                return None
            raise

    def list_models(self, *, author: str | None = None, filter: str | None = None) -> list[ModelInfo]:
        """Models of an author and/or matching a tag filter (e.g. `base_model:org/name`), with their shas."""
        listing = self.api.list_models
        return self.call(
            lambda: list(listing(author=author, filter=filter, expand=["sha", "lastModified", "cardData"]))
        )

    def ranked_models(
        self, *, filter: str, author: str | None = None, sort: str = "downloads", limit: int = 100
    ) -> list[ModelInfo]:
        """The first `limit` models matching a tag filter (of an author), most first by `sort`; items carry
        their sha, downloads, likes, tags and config (where the quantization config is read)."""
        expand: list[Any] = ["sha", "downloads", "likes", "tags", "config"]
        listing = self.api.list_models
        return self.call(
            lambda: list(listing(author=author, filter=filter, sort=sort, limit=limit, expand=expand))
        )

    def models_modified_since(
        self,
        since: datetime,
        *,
        overlap: timedelta = timedelta(0),
        author: str | None = None,
        filter: str | None = None,
        page: int = 100,
        at_most: int | None = None,
    ) -> tuple[list[ModelInfo], bool]:
        """Models (of an author, matching a filter, or all) last modified at or after `since - overlap`,
        newest first: the Hub's listing sorted by last modification, read page by page until an older one
        (a quiet listing costs one request). Items carry only their id, sha, last modification and privacy.
        The flag says whether more than `at_most` items newer than `since` were there (the reading stops)."""
        params: dict[str, Any] = {"sort": "lastModified", "direction": -1, "limit": page}
        params["expand"] = ["sha", "lastModified", "private"]
        if author:
            params["author"] = author
        if filter:
            params["filter"] = filter
        url = f"{self.api.endpoint}/api/models"
        headers = self.api._build_hf_headers()

        def read() -> tuple[list[ModelInfo], bool]:
            found: list[ModelInfo] = []
            newer = 0
            for item in paginate(url, params=params, headers=headers):
                info = ModelInfo(**item)
                if info.last_modified is None or info.last_modified < since - overlap:
                    return found, False
                newer += info.last_modified > since
                if at_most is not None and newer > at_most:
                    return found, True
                found.append(info)
            return found, False

        return self.call(read)

    # HfApi's webhook calls ignore the client's endpoint (they read HF_ENDPOINT), so these send their own
    # requests to `self.api.endpoint` with the client's session and error handling.

    def list_webhooks(self) -> list[WebhookInfo]:
        """The webhooks this token's user has registered."""
        return [_webhook_info(item) for item in self._webhooks("GET", "")]

    def create_webhook(
        self, *, url: str, watched: list[dict[str, str]], domains: list[str], secret: str | None
    ) -> WebhookInfo:
        """Register a webhook (not idempotent: retried only on 429)."""
        body = {"url": url, "watched": watched, "domains": domains, "secret": secret}
        return _webhook_info(self._webhooks("POST", "", body, idempotent=False)["webhook"])

    def update_webhook(
        self,
        webhook_id: str,
        *,
        url: str,
        watched: list[dict[str, str]],
        domains: list[str],
        secret: str | None,
    ) -> WebhookInfo:
        """Replace a webhook's url, watched items, domains and secret (setting them twice is harmless)."""
        body = {"url": url, "watched": watched, "domains": domains, "secret": secret}
        return _webhook_info(self._webhooks("POST", f"/{quote(webhook_id, safe='')}", body)["webhook"])

    def _webhooks(
        self, method: str, path: str, body: dict[str, Any] | None = None, idempotent: bool = True
    ) -> Any:
        url = f"{self.api.endpoint}/api/settings/webhooks{path}"
        headers = self._headers()

        def send() -> Any:
            response = get_session().request(method, url, json=body, headers=headers)
            hf_raise_for_status(response)
            return response.json()

        return self.call(send, idempotent=idempotent)

    # --- Hugging Face Jobs: the tasks of the `hf-jobs` executor ------------------------------------

    def run_job(self, *, image: str, command: list[str], **kw: Any) -> JobInfo:
        """Start a Job (not idempotent: retried only on 429, when the Hub refused before starting it)."""
        run = functools.partial(self.api.run_job, image=image, command=command, **kw)
        return self.call(run, idempotent=False)

    def inspect_job(self, job_id: str, namespace: str | None) -> JobInfo | None:
        """A Job's stage and durations; None when the Hub no longer knows it (deleted, lost)."""
        try:
            return self.call(self.api.inspect_job, job_id=job_id, namespace=namespace)
        except HubError as e:
            if e.status_code == 404:
                return None
            raise

    def job_logs(self, job_id: str, namespace: str | None) -> Iterator[str]:
        """A Job's log lines, followed until it ends (a stream: not retried, the Job's stage decides)."""
        try:
            yield from self.api.fetch_job_logs(job_id=job_id, namespace=namespace, follow=True)
        except (hf_errors.HfHubHTTPError, httpx.TransportError) as e:
            raise translate(e, None, self.endpoint) from e

    def cancel_job(self, job_id: str, namespace: str | None) -> None:
        """Cancel a Job (cancelling twice is harmless, so it is retried)."""
        self.call(self.api.cancel_job, job_id=job_id, namespace=namespace)

    def jobs_hardware(self) -> list[Any]:
        """The Hub's Jobs flavours with their GPUs and prices."""
        return list(self.call(self.api.list_jobs_hardware))


def _webhook_info(data: dict[str, Any]) -> WebhookInfo:
    """The settings API's JSON as huggingface_hub's `WebhookInfo`."""
    return WebhookInfo(
        id=data["id"],
        url=data.get("url"),
        job=None,
        watched=[WebhookWatchedItem(type=w["type"], name=w["name"]) for w in data.get("watched") or []],
        domains=data.get("domains") or [],
        secret=data.get("secret"),
        disabled=bool(data.get("disabled")),
    )
