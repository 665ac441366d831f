"""Hub webhooks, verified and parsed with no I/O: headers and bytes in, a plain `Event` out, or a typed error.

The payload models live in `handlers.inputs` (handlers read them; this module validates into them). A payload
is validated once, here, where it enters (the server, the poller); the parsed `Event` is handed on.

A delivery is identified by the SHA-256 of its body: the Hub sends no delivery id, and a retried delivery
carries the same bytes. The deduplication key is finer (see `state.dedup`): repo events collapse on repo +
revision + scope, comment events on the comment id, the rest on the delivery.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from bot.errors import WebhookBadJson, WebhookBadPayload, WebhookForbidden, WebhookUnauthorized
from handlers.inputs import Envelope, HubWebhook, PayloadModel, RepoName
from state.dedup import comment_key, delivery_key, digest, revision_key

SECRET_HEADER = "X-Webhook-Secret"
VERSION = 3
# What the bot acts on. Anything else the Hub sends (another scope, a new action or repo type) is stored as
# ignored, with the reason, and acknowledged: refusing what the Hub adds would get the webhook disabled.
HANDLED_SCOPES = frozenset({"repo", "repo.content", "discussion", "discussion.comment"})
KNOWN_SCOPES = HANDLED_SCOPES | {"repo.config"}
ACTIONS = frozenset({"create", "delete", "move", "update"})
REPO_TYPES = frozenset({"model", "dataset", "space"})
MAX_ACTION = 16  # the events table's column


@dataclass(frozen=True)
class Event:
    """One webhook delivery, verified: `hook` is the validated payload, None when the bot ignores the event.

    `ignored` then says why (stored with the event); `repo` is the repo it is about, when the payload names
    one the bot can read."""

    delivery_id: str
    scope: str
    action: str
    payload: dict[str, Any]
    hook: HubWebhook | None
    dedup_key: str
    repo: str | None = None
    ignored: str | None = None
    # The body as delivered (JSON text), stored as it is (None where it may not be): how it arrived, not what
    # it says, so no part of the event's equality.
    text: str | None = field(default=None, compare=False, repr=False)

    @property
    def handled(self) -> bool:
        """Whether the bot acts on the event (else it is stored as ignored and acknowledged)."""
        return self.hook is not None


class _RepoNamed(PayloadModel):
    name: RepoName


class _Named(PayloadModel):
    repo: _RepoNamed


def verify_secret(headers: Mapping[str, str], secret: str) -> None:
    """Check the secret header in constant time: WebhookUnauthorized if absent, WebhookForbidden if wrong."""
    given = _header(headers, SECRET_HEADER)
    check_secret(None if given is None else _bytes(given), _bytes(secret))


def check_secret(given: bytes | None, secret: bytes) -> None:
    """`verify_secret` on the header's bytes as sent, against the secret's bytes prepared once."""
    if given is None:
        raise WebhookUnauthorized(f"{SECRET_HEADER} header not set")
    if not hmac.compare_digest(given, secret):
        raise WebhookForbidden(f"invalid {SECRET_HEADER}")


def parse_body(body: bytes) -> Event:
    """Decode and validate a webhook body (the secret already checked)."""
    try:
        text, storable = _decode(body)
        payload = _DECODER.decode(text)
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise WebhookBadJson(f"body is not valid JSON: {_first_line(e)}") from None
    return event_from_payload(payload, hashlib.sha256(body).hexdigest(), text if storable else None)


def parse_webhook(headers: Mapping[str, str], body: bytes, secret: str) -> Event:
    """Verify and parse one delivery: what `POST /webhooks/hub` does before it stores anything."""
    verify_secret(headers, secret)
    return parse_body(body)


def event_from_payload(payload: Any, delivery_id: str, text: str | None = None) -> Event:
    """Validate a decoded payload (a delivery, a stored event, or one the poller made) into an `Event`;
    `text` is the payload's JSON as delivered, if it may be stored as it is."""
    if not isinstance(payload, dict):
        raise WebhookBadJson(f"body must be a JSON object, not {_json_type(payload)}")
    hook = payload.get("webhook")
    if isinstance(hook, dict) and "version" in hook and hook["version"] != VERSION:
        raise WebhookBadPayload(f"unsupported webhook version {_short(hook['version'])} (expected {VERSION})")
    envelope = _validate(Envelope, payload)
    scope, action = _normalise(envelope.event.scope, envelope.event.action)
    reason = _ignore_reason(scope, action, payload)
    if reason is not None:
        key = delivery_key(delivery_id)
        name = _repo_name(payload)
        return Event(delivery_id, scope, action[:MAX_ACTION], payload, None, key, name, reason, text)
    parsed = _validate(HubWebhook, payload)
    key = _dedup_key(scope, action, parsed, delivery_id)
    return Event(delivery_id, scope, action, payload, parsed, key, parsed.repo.name, text=text)


def repo_block(endpoint: str, repo: str, private: bool, head_sha: str | None = None) -> dict[str, Any]:
    """A model repo as the Hub's payloads describe it, for the events the bot makes itself (the poller, the
    catch-up); the Hub's object ids, which its API does not give, are stable digests in their alphabet."""
    block: dict[str, Any] = {
        "type": "model",
        "name": repo,
        "id": digest("repo", repo)[:24],
        "private": private,
        "url": {"web": f"{endpoint}/{repo}", "api": f"{endpoint}/api/models/{repo}"},
        "owner": {"id": digest("owner", repo.split("/")[0])[:24]},
    }
    if head_sha is not None:
        block["headSha"] = head_sha
    return block


def _decode(body: bytes) -> tuple[str, bool]:
    """The body as text, and whether a database takes that text as it is.

    Strictly valid UTF-8 does; otherwise it is decoded leniently (`surrogatepass`: lone surrogates reach the
    JSON parser, which keeps them in strings) and its payload is stored re-serialised, with escapes."""
    encoding = json.detect_encoding(body)
    if encoding == "utf-8":
        with contextlib.suppress(UnicodeDecodeError):
            return body.decode("utf-8"), True
    return body.decode(encoding, "surrogatepass"), False


def _ignore_reason(scope: str, action: str, payload: dict[str, Any]) -> str | None:
    """Why the bot does not act on an event it cannot refuse (None: it is for the handlers)."""
    if scope not in HANDLED_SCOPES:
        return f"scope {_short(scope)} is not one the bot acts on"
    if action not in ACTIONS:
        return f"action {_short(action)} is not one the bot knows"
    repo = payload.get("repo")
    kind = repo.get("type") if isinstance(repo, dict) else None
    if isinstance(kind, str) and kind not in REPO_TYPES:
        return f"repo type {_short(kind)} is not one the bot knows"
    return None


def _repo_name(payload: dict[str, Any]) -> str | None:
    """The repo an ignored event names, if it is a well-formed repo id (it goes into a column)."""
    try:
        return _validate(_Named, payload).repo.name
    except WebhookBadPayload:
        return None


def _normalise(scope: str, action: str) -> tuple[str, str]:
    """An unknown sub-scope of a known scope is an update of that scope (the Hub's documented rule)."""
    if scope in KNOWN_SCOPES:
        return scope, action
    parents = [known for known in KNOWN_SCOPES if scope.startswith(known + ".")]
    if parents:
        return max(parents, key=len), "update"
    return scope, action


def _dedup_key(scope: str, action: str, hook: HubWebhook, delivery_id: str) -> str:
    repo = hook.repo
    if scope == "repo.content" and hook.updated_refs:
        refs = sorted(f"{r.ref}@{r.new_sha or 'deleted'}" for r in hook.updated_refs)
        revision = refs[0] if len(refs) == 1 else digest(*refs)
        return revision_key(scope, action, repo.name, revision)
    if scope.startswith("repo") and repo.head_sha:
        return revision_key(scope, action, repo.name, repo.head_sha)
    if scope == "discussion.comment" and hook.comment is not None:
        comment = hook.comment
        version = "" if action == "create" else digest(comment.content or "", str(comment.hidden))
        return comment_key(action, comment.id, version)
    return delivery_key(delivery_id)


def _validate(model: type[PayloadModel], payload: dict[str, Any]) -> Any:
    try:
        return model.model_validate(payload)
    except ValidationError as e:
        error = e.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in error["loc"]) or "payload"
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise WebhookBadPayload(f"{where}: {error['msg']}{more}") from None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name.lower()), None)
    return value


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# Made once: `json.loads` with an option builds a decoder per call, a third of a small body's parse.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _json_type(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=True)
    return text if len(text) <= 40 else text[:37] + "..."


def _first_line(error: BaseException) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0][:200]
