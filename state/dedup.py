"""Deduplication keys for events: two deliveries with the same key are one event.

Three rules (DESIGN.md, decision 3): the same delivery (same bytes), the same repo + revision + scope, the
same comment. Keys are readable where they are short and end in a digest where the parts would make them
longer than the column (255).
"""

from __future__ import annotations

import hashlib

MAX_KEY = 255


def digest(*parts: str) -> str:
    """A short stable digest of some text parts (surrogates and all)."""
    data = "\x1f".join(parts).encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()[:32]


def _bounded(key: str) -> str:
    return key if len(key) <= MAX_KEY else key[: MAX_KEY - 34] + ":" + digest(key)


def delivery_key(delivery_id: str) -> str:
    """The same delivery, retried: the fallback for events no finer rule covers."""
    return _bounded(f"delivery:{delivery_id}")


def revision_key(scope: str, action: str, repo: str, revision: str) -> str:
    """The same repo (in any case, as the Hub resolves it) at the same revision in the same scope: a webhook
    and the poller finding one commit."""
    return _bounded(f"{scope}:{action}:{repo.lower()}:{revision}")


def comment_key(action: str, comment_id: str, version: str = "") -> str:
    """The same comment; `version` tells edits of one comment apart (a digest of its content)."""
    return _bounded(f"comment:{action}:{comment_id}" + (f":{version}" if version else ""))
