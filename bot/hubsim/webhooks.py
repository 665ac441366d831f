"""Webhooks: registered hooks, version-3 payloads, asynchronous delivery and a delivery log.

Payloads have the shape of section 6 of docs/hub-api-contract.md (and validate against huggingface_hub's
`WebhookPayload`): `event{action,scope}`, `repo{type,name,id,private,url{web,api},owner{id},headSha}`,
`updatedRefs` for `repo.content`, `discussion{...}`, `comment{...}`, `webhook{id,version:3}`. A request
only enqueues; one background thread posts, in order, with `X-Webhook-Secret`, and logs each delivery's
status (or error) and latency so tests and the demo can wait for them.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from bot.hubsim.discussions import Discussion, Event
from bot.hubsim.errors import bad_request
from bot.hubsim.gitobjects import now_iso, object_id, stable_object_id
from bot.hubsim.store import Repo

log = logging.getLogger(__name__)

DOMAINS = ("repo", "discussion")
WATCH_TYPES = ("user", "org", "model", "dataset", "space")
DELIVERY_TIMEOUT_S = 10.0
LOG_SIZE = 2000


@dataclass
class Webhook:
    """A hook: where to post, with which secret, for which repos. A hook made through the Python API or
    the CLI (no `owner`) watching nothing watches everything; one made through the settings API by a
    user watches only what it lists, like the Hub's."""

    url: str
    secret: str | None = None
    watched: list[dict[str, str]] = field(default_factory=list)
    domains: list[str] = field(default_factory=lambda: list(DOMAINS))
    owner: str | None = None
    disabled: bool = False
    id: str = field(default_factory=object_id)

    def api_json(self) -> dict[str, Any]:
        """As `/api/settings/webhooks` shows it (what `WebhookInfo` is built from)."""
        return {
            "id": self.id,
            "url": self.url,
            "watched": self.watched,
            "domains": self.domains,
            "secret": self.secret,
            "disabled": self.disabled,
            "job": None,
        }

    def watches(self, repo: Repo, domain: str) -> bool:
        """Whether an event of `domain` on `repo` is for this hook."""
        if self.disabled or domain not in self.domains:
            return False
        if not self.watched:
            return self.owner is None
        namespace = repo.name.split("/")[0].lower()
        return any(
            (item["type"] in ("user", "org") and item["name"].lower() == namespace)
            or (item["type"] == repo.type and item["name"].lower() == repo.name.lower())
            for item in self.watched
        )


def check_hook_fields(url: object, watched: object, domains: object, secret: object) -> str:
    """Validate what the settings API received (400 on anything malformed); returns the url, checked."""
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise bad_request("webhook url must be an http(s) URL")
    if not isinstance(watched, list) or not all(
        isinstance(w, dict) and w.get("type") in WATCH_TYPES and isinstance(w.get("name"), str)
        for w in watched
    ):
        raise bad_request(f"watched must be a list of {{type, name}} with type in {WATCH_TYPES}")
    if not isinstance(domains, list) or not domains or not set(domains) <= set(DOMAINS):
        raise bad_request(f"domains must be a non-empty subset of {DOMAINS}")
    if secret is not None and (not isinstance(secret, str) or not secret.isascii()):
        raise bad_request("webhook secret must be an ASCII string")
    return url


@dataclass
class Delivery:
    """One attempt to post one payload to one hook."""

    webhook_id: str
    url: str
    scope: str
    action: str
    payload: dict[str, Any]
    status: int | None = None
    error: str | None = None
    latency_ms: float | None = None
    delivered_at: str | None = None
    id: str = field(default_factory=object_id)

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Webhooks:
    """The hooks, the delivery queue and thread, and the delivery log."""

    def __init__(self, hooks: list[Webhook] | None = None) -> None:
        self.hooks: dict[str, Webhook] = {h.id: h for h in hooks or []}
        self._queue: queue.Queue[tuple[Webhook, Delivery] | None] = queue.Queue()
        self._log: list[Delivery] = []
        self._changed = threading.Condition()
        self._pending = 0
        self._thread: threading.Thread | None = None

    def register(
        self,
        url: object,
        secret: str | None = None,
        watched: list[dict[str, str]] | None = None,
        domains: list[str] | None = None,
        owner: str | None = None,
    ) -> Webhook:
        """Add a hook (see `Webhook` for what an empty `watched` means)."""
        domains = list(DOMAINS) if domains is None else domains
        url = check_hook_fields(url, watched or [], domains, secret)
        hook = Webhook(url, secret, list(watched or []), domains, owner)
        self.hooks[hook.id] = hook
        return hook

    def emit(
        self, payload: dict[str, Any], repos: list[Repo], visible_to: Callable[[str | None], bool]
    ) -> None:
        """Queue `payload` once for every hook watching any of `repos` (a moved repo's old and new name)
        whose owner may see it."""
        domain = payload["event"]["scope"].split(".")[0]
        for hook in self.hooks.values():
            if any(hook.watches(repo, domain) for repo in repos) and visible_to(hook.owner):
                body = {**payload, "webhook": {"id": hook.id, "version": 3}}
                event = payload["event"]
                self._enqueue(hook, Delivery(hook.id, hook.url, event["scope"], event["action"], body))

    def _enqueue(self, hook: Webhook, delivery: Delivery) -> None:
        with self._changed:
            self._pending += 1
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._deliver_forever, name="hubsim-webhooks", daemon=True
                )
                self._thread.start()
        self._queue.put((hook, delivery))

    def _deliver_forever(self) -> None:
        with httpx.Client(timeout=DELIVERY_TIMEOUT_S) as client:
            while (item := self._queue.get()) is not None:
                hook, delivery = item
                self._deliver(client, hook, delivery)
                with self._changed:
                    self._log.append(delivery)
                    del self._log[:-LOG_SIZE]
                    self._pending -= 1
                    self._changed.notify_all()

    @staticmethod
    def _deliver(client: httpx.Client, hook: Webhook, delivery: Delivery) -> None:
        headers = {"User-Agent": "hubsim-webhooks/1"}
        if hook.secret:
            headers["X-Webhook-Secret"] = hook.secret
        start = time.perf_counter()
        try:
            response = client.post(hook.url, json=delivery.payload, headers=headers)
            delivery.status = response.status_code
        except httpx.HTTPError as e:
            delivery.error = f"{type(e).__name__}: {e}"
            log.warning("webhook %s to %s failed: %s", delivery.scope, hook.url, delivery.error)
        delivery.latency_ms = round((time.perf_counter() - start) * 1000, 1)
        delivery.delivered_at = now_iso()

    def deliveries(self) -> list[Delivery]:
        """Every finished delivery, oldest first."""
        with self._changed:
            return list(self._log)

    def wait_for(self, predicate: Callable[[Delivery], bool], timeout: float = 10.0) -> Delivery:
        """The first logged delivery matching `predicate`, waiting for it up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = next((d for d in self._log if predicate(d)), None)
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no matching webhook delivery within {timeout}s")
                self._changed.wait(left)

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until every queued delivery has been attempted."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._pending == 0, timeout):
                raise TimeoutError(f"webhook deliveries still pending after {timeout}s")

    def close(self) -> None:
        """Stop the delivery thread after the queued deliveries."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=DELIVERY_TIMEOUT_S + 5)
            self._thread = None


def repo_block(repo: Repo, owner_id: str, endpoint: str, with_head: bool) -> dict[str, Any]:
    """The `repo` object of a payload."""
    prefix = "" if repo.type == "model" else f"{repo.type}s/"
    block: dict[str, Any] = {
        "type": repo.type,
        "name": repo.name,
        "id": repo.id,
        "private": repo.private,
        "url": {"web": f"{endpoint}/{prefix}{repo.name}", "api": f"{endpoint}/api/{repo.type}s/{repo.name}"},
        "owner": {"id": owner_id},
    }
    if with_head:
        block["headSha"] = repo.head.oid
    if repo.type == "space":
        block["subdomain"] = repo.name.replace("/", "-").replace("_", "-").lower()
    return block


def discussion_block(discussion: Discussion, repo: dict[str, Any]) -> dict[str, Any]:
    """The `discussion` object of a payload (`repo` is the payload's repo block)."""
    num = discussion.num
    block: dict[str, Any] = {
        "id": discussion.id,
        "num": num,
        "title": discussion.title,
        "status": discussion.status,
        "isPullRequest": discussion.is_pull_request,
        "url": {
            "web": f"{repo['url']['web']}/discussions/{num}",
            "api": f"{repo['url']['api']}/discussions/{num}",
        },
        "author": {"id": stable_object_id("user", discussion.author)},
        "pinned": discussion.pinned,
    }
    if discussion.is_pull_request:
        block["changes"] = {"base": discussion.base_ref}
        if discussion.merge_commit_id:
            block["changes"]["mergeCommitId"] = discussion.merge_commit_id
    return block


def comment_block(event: Event, discussion: dict[str, Any]) -> dict[str, Any]:
    """The `comment` object of a payload; a hidden comment has no `content`, like on the Hub."""
    block: dict[str, Any] = {
        "id": event.id,
        "author": {"id": stable_object_id("user", event.author)},
        "hidden": event.data["hidden"],
        "url": {"web": f"{discussion['url']['web']}#{event.id}"},
    }
    if not event.data["hidden"]:
        block["content"] = event.data["latest"]["raw"]
    return block
