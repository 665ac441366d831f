"""Every error quantbot raises on the bot side, in one place.

The tree::

    QuantbotError                  base; carries a one-line message and a CLI exit code
    ├── ConfigError                settings or a config file are invalid (exit 2)
    │   └── MatrixError            a support-matrix data file is malformed (names the file and entry)
    ├── ModelConfigError           a model's config.json is missing or not valid (exit 2)
    ├── UnknownSM                  an SM that the hardware matrix does not place in a GPU family (exit 2)
    ├── UsageError                 a command was given arguments it cannot act on (exit 2)
    ├── WebhookError               a webhook request was refused; `status_code` is the HTTP answer (exit 2)
    │   ├── WebhookUnauthorized    X-Webhook-Secret missing (401)
    │   ├── WebhookForbidden       X-Webhook-Secret wrong (403)
    │   ├── WebhookTooLarge        the body is over the size cap (413)
    │   ├── WebhookBadJson         the body is not a JSON object (400)
    │   └── WebhookBadPayload      a JSON object of the wrong shape or webhook version (422)
    ├── PublishError               a release cannot be published (exit 1)
    │   ├── BuildDirError          a build directory without a complete, successful manifest (exit 2)
    │   ├── CardError              a card would hold a placeholder or metadata the Hub cannot parse
    │   │   └── CardRefused        the Hub's validate-yaml refused the card's metadata (its messages)
    │   ├── NoWriteAccess          the token may not write to the release repo, and no PR is allowed
    │   └── ReleaseHeld            the invariance gate holds the release: it is not its upstream's (why)
    ├── ServerStartError           an HTTP server (the bot's, hubsim's) could not listen on its host and port
    │   └── HubsimStartError       hubsim's, named for the command that starts it (exit 1)
    ├── BuildFailed                a build's worker failed; its manifest says why (exit 1, or 2 for bad input)
    └── HubError                   the Hub answered with an error (keeps response, request id, message)
        ├── RepoNotFound           the repo does not exist or is hidden from this token (exit 2)
        ├── RevisionNotFound       the repo exists but not the branch / tag / sha (exit 2)
        ├── EntryNotFound          the repo and revision exist but not the file (exit 2)
        ├── HubAuthError           the token is missing, invalid, or lacks permission
        ├── HubRateLimited         429 after the client's own retries
        │   └── HubBudgetSpent     not sent: the token's budget for this window is spent for this caller
        └── HubUnavailable         5xx or a connection failure after retries

Builders (their own process) report failures through the manifest, not through these classes.
`transient(error)` says which failures are worth another try later (the Hub down or busy).
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


class HubBudgetSpent(HubRateLimited):
    """The token's request budget for this window is spent for this caller: the request was not sent."""


class HubUnavailable(HubError, ConnectionError):
    """The Hub answered 5xx or could not be reached, after retrying."""


# --- Eligibility (support matrices, model facts, targets) ---


class MatrixError(ConfigError):
    """A support-matrix data file (bot/eligibility/matrices) is malformed; the message names the entry."""


class ModelConfigError(QuantbotError, ValueError):
    """A model's config.json is missing, unreadable or not a JSON object."""

    exit_code = 2


class UnknownSM(QuantbotError, ValueError):
    """An SM (compute capability) that the hardware matrix does not place in any GPU family."""

    exit_code = 2


# --- Publishing (cards, releases on the Hub) ---


class PublishError(QuantbotError):
    """A release cannot be published; the message says which and why."""


class BuildDirError(PublishError, ValueError):
    """A build directory without a manifest, with an incomplete one, a failed build, or altered artifacts."""

    exit_code = 2


class CardError(PublishError, ValueError):
    """A rendered card would keep a `{{` placeholder or carry metadata that does not parse."""


class CardRefused(CardError):
    """The Hub's `validate-yaml` refused the card's metadata; `hub_messages` are its words, one per error."""

    def __init__(self, message: str, hub_messages: list[str]) -> None:
        super().__init__(message)
        self.hub_messages = hub_messages


class NoWriteAccess(PublishError, PermissionError):
    """The token may not write to the release repo and falling back to a pull request is not allowed."""


class ReleaseHeld(PublishError):
    """The invariance gate before upload failed: the release does not keep its upstream's files or config,
    or its build records no gate that passed; `problems` say how, one each. Nothing was uploaded."""

    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message)
        self.problems = problems


def transient(error: BaseException) -> bool:
    """Whether trying again later may succeed: the Hub was down, failing or rate limiting.

    Everything else quantbot raises on purpose (refused card, no access, not found, bad build dir) stays
    failed until someone changes something; an unexpected exception (a bug) is kept retryable, as a
    bounded retry costs little and a fix deployed meanwhile then takes effect.
    """
    if isinstance(error, HubRateLimited | HubUnavailable):
        return True
    if isinstance(error, HubError) and not isinstance(error, RepoNotFound | RevisionNotFound | EntryNotFound):
        status = error.status_code
        return status is not None and (status >= 500 or status in (408, 429))
    return not isinstance(error, QuantbotError)


# --- Webhooks (bot/intake/webhooks.py, bot/intake/server.py) ---


class WebhookError(QuantbotError, ValueError):
    """A webhook request was refused; `status_code` is the HTTP status the server answers with."""

    exit_code = 2
    status_code = 400


class WebhookUnauthorized(WebhookError):
    """The request has no X-Webhook-Secret header."""

    status_code = 401


class WebhookForbidden(WebhookError):
    """The X-Webhook-Secret header does not match the configured secret."""

    status_code = 403


class WebhookTooLarge(WebhookError):
    """The body is larger than the configured cap."""

    status_code = 413


class WebhookBadJson(WebhookError):
    """The body is not JSON, or not a JSON object."""

    status_code = 400


class WebhookBadPayload(WebhookError):
    """The JSON object is not a Hub webhook of version 3 (a field missing or of the wrong type, say)."""

    status_code = 422


# ---------------------------------------------------------------- HTTP servers (bot/threaded_server.py)


class ServerStartError(QuantbotError):
    """An HTTP server could not listen on its host and port (address in use, no permission)."""


# hubsim's HTTP error answers are not quantbot errors: they live in bot/hubsim/errors.py.
class HubsimStartError(ServerStartError):
    """hubsim could not listen on its host and port."""


# ---------------------------------------------------------------- builds (bot side of builders/)


class BuildFailed(QuantbotError):
    """A build worker ended without a successful manifest; the message is the manifest's first error."""

    def __init__(self, message: str, *, bad_input: bool = False, log: Any = None) -> None:
        super().__init__(message + (f" (worker log: {log})" if log else ""))
        self.exit_code = 2 if bad_input else 1
        self.log = log
