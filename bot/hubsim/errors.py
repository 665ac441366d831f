"""The error answers hubsim gives, shaped the way huggingface_hub's `hf_raise_for_status` reads them.

These are HTTP answers of the emulated Hub, not quantbot errors (those live in `bot.errors`): raising one
anywhere in hubsim ends the request with `status`, `X-Error-Code` (when the client maps it to a class),
`X-Error-Message` (HEAD answers have no body) and a JSON body `{"error": message, ...}`.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error answer: HTTP status, optional `X-Error-Code`, a message, and extra JSON body keys."""

    def __init__(self, status: int, message: str, code: str | None = None, **body: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.body = body
        self.headers: dict[str, str] = {}


def repo_not_found(repo_id: str, anonymous: bool) -> ApiError:
    """Like the Hub: 401 to an anonymous caller, 404 to an authenticated one, always `RepoNotFound`."""
    return ApiError(401 if anonymous else 404, f"Repository not found: {repo_id}", "RepoNotFound")


def revision_not_found(revision: str) -> ApiError:
    """An unknown branch, tag, PR ref or commit sha."""
    return ApiError(404, f"Invalid rev id: {revision}", "RevisionNotFound")


def entry_not_found(path: str) -> ApiError:
    """A path that does not exist at the revision."""
    return ApiError(404, f"Entry not found: {path}", "EntryNotFound")


def bad_request(message: str) -> ApiError:
    """Malformed input: the client raises `BadRequestError` (a `ValueError`)."""
    return ApiError(400, message)


def unauthorized(message: str = "Invalid credentials in Authorization header") -> ApiError:
    """A missing or invalid token where one is needed (the Hub's own message for a bad token)."""
    return ApiError(401, message)


def forbidden(message: str) -> ApiError:
    """Authenticated, but this user (or this read-only token) may not do that."""
    return ApiError(403, message)


def conflict(message: str, **body: Any) -> ApiError:
    """The thing already exists, or the state does not allow the change."""
    return ApiError(409, message, **body)


class RepoMoved(ApiError):
    """A repo's old name after a rename or transfer: the Hub redirects it (a relative 307 to the same path
    under the new name, which huggingface_hub follows); where the old name is not in the path, it is a
    RepoNotFound."""

    def __init__(self, old_id: str, new_id: str, anonymous: bool) -> None:
        super().__init__(401 if anonymous else 404, f"Repository not found: {old_id}", "RepoNotFound")
        self.old_id = old_id
        self.new_id = new_id
