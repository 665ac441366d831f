"""Every error quantbot raises on the bot side, in one place.

The tree::

    QuantbotError                  base; carries a one-line message and a CLI exit code
    ├── ConfigError                settings or a config file are invalid (exit 2)
    ├── UsageError                 a command was given arguments it cannot act on (exit 2)
    └── HubError                   the Hub answered with an error (keeps response, request id, message)
        ├── RepoNotFound           the repo does not exist or is hidden from this token (exit 2)
        ├── RevisionNotFound       the repo exists but not the branch / tag / sha (exit 2)
        ├── EntryNotFound          the repo and revision exist but not the file (exit 2)
        ├── HubAuthError           the token is missing, invalid, or lacks permission
        ├── HubRateLimited         429 after the client's own retries
        └── HubUnavailable         5xx or a connection failure after retries

Builders (their own process) report failures through the manifest, not through these classes.
"""

from __future__ import annotations

from typing import Any


class QuantbotError(Exception):
    """Base class: a one-line message a user can act on, and the exit code the CLI uses for it."""

    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(QuantbotError, ValueError):
    """Settings, a config file or a data file shipped with quantbot are invalid."""

    exit_code = 2


class UsageError(QuantbotError, ValueError):
    """A command got arguments it cannot act on."""

    exit_code = 2


class HubError(QuantbotError):
    """The Hub answered with an error; keeps what the Hub said so logs and replies can quote it."""

    def __init__(
        self,
        message: str,
        *,
        repo_id: str | None = None,
        response: Any = None,
        request_id: str | None = None,
        server_message: str | None = None,
    ) -> None:
        super().__init__(message)
        self.repo_id = repo_id
        self.response = response
        self.request_id = request_id
        self.server_message = server_message

    @property
    def status_code(self) -> int | None:
        """The HTTP status, when the failure came with a response."""
        return getattr(self.response, "status_code", None)


class RepoNotFound(HubError, LookupError):
    """The repo does not exist, or this token may not see it."""

    exit_code = 2


class RevisionNotFound(HubError, LookupError):
    """The repo exists, the revision (branch, tag or sha) does not."""

    exit_code = 2


class EntryNotFound(HubError, FileNotFoundError):
    """The file is not in the repo at that revision."""

    exit_code = 2


class HubAuthError(HubError, PermissionError):
    """The token is missing or invalid (401), or may not do this (403)."""


class HubRateLimited(HubError):
    """The Hub still answered 429 after retrying within the allowed budget."""


class HubUnavailable(HubError, ConnectionError):
    """The Hub answered 5xx or could not be reached, after retrying."""
