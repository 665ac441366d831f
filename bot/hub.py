"""The one door to the Hub: every Hub call of the bot goes through `Hub`.

`Hub` wraps huggingface_hub's `HfApi` so that the rest of the bot sees only quantbot's typed errors
(`bot.errors`), and so that reads are retried, bounded, on 429 and 5xx (honouring `Retry-After`).
The client's own `http_backoff` covers uploads and listings; plain calls such as `model_info` or
`create_commit` are not retried by it, which is why reads get a retry here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub import errors as hf_errors
from huggingface_hub.hf_api import ModelInfo

from bot.errors import (
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

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_ATTEMPTS = 4
MAX_SLEEP_S = 30.0


def _retry_after(response: Any, attempt: int) -> float:
    """Seconds to wait: the server's `Retry-After` when given (bounded), else exponential."""
    header = response.headers.get("Retry-After") if response is not None else None
    try:
        return min(float(header), MAX_SLEEP_S) if header is not None else min(2.0**attempt, MAX_SLEEP_S)
    except ValueError:
        return min(2.0**attempt, MAX_SLEEP_S)


def translate(error: Exception, repo_id: str | None = None) -> HubError:
    """Map a huggingface_hub / httpx failure to quantbot's error types, keeping the response."""
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
    if isinstance(error, hf_errors.LocalEntryNotFoundError):
        return HubUnavailable(f"could not download from the Hub{where}: {error.__cause__ or error}", **context)
    if isinstance(error, httpx.TransportError):
        return HubUnavailable(f"cannot reach the Hub{where}: {error}", **context)
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

    def __init__(self, endpoint: str | None = None, token: str | None = None) -> None:
        self.endpoint = endpoint
        self.token = token
        self.api = HfApi(endpoint=endpoint, token=token)

    def call(self, fn: Callable[..., T], *args: Any, repo_id: str | None = None, retry: bool = True, **kw: Any) -> T:
        """Run one client call; retry 429/5xx/transport failures when `retry`, then raise a HubError."""
        attempt = 0
        while True:
            try:
                return fn(*args, **kw)
            except (hf_errors.HfHubHTTPError, httpx.TransportError) as e:
                response = getattr(e, "response", None)
                status = getattr(response, "status_code", None)
                transient = isinstance(e, httpx.TransportError) or status in RETRY_STATUSES
                attempt += 1
                if not (retry and transient and attempt < MAX_ATTEMPTS):
                    raise translate(e, repo_id) from e
                delay = _retry_after(response, attempt)
                log.warning("Hub call %s failed (%s); retry %d in %.1fs", fn.__name__, status or e, attempt, delay)
                time.sleep(delay)
            except (hf_errors.EntryNotFoundError, hf_errors.LocalEntryNotFoundError) as e:
                raise translate(e, repo_id) from e

    def whoami(self) -> dict[str, Any]:
        return self.call(self.api.whoami)

    def model_info(self, repo_id: str, revision: str | None = None, files_metadata: bool = False) -> ModelInfo:
        return self.call(
            self.api.model_info, repo_id, revision=revision, files_metadata=files_metadata, repo_id=repo_id
        )

    def resolve_revision(self, repo_id: str, revision: str | None = None) -> str:
        """The 40-hex commit sha a branch, tag or sha points to now (builds pin it)."""
        sha = self.model_info(repo_id, revision=revision).sha
        if not sha:
            raise HubError(f"the Hub gave no commit sha for {repo_id}@{revision or 'main'}", repo_id=repo_id)
        return sha

    def list_files(self, repo_id: str, revision: str | None = None) -> list[str]:
        return self.call(self.api.list_repo_files, repo_id, revision=revision, repo_id=repo_id)

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
