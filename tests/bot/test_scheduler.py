"""The poller finds what webhooks missed (once, with the webhook's own dedup key)."""

from __future__ import annotations

from collections.abc import Callable

from bot.hub import Hub
from bot.intake.scheduler import Poller
from bot.settings import load_settings
from handlers.context import Options
from state import Store, WatchKind, revision_key


def _options() -> Options:
    return Options(bot_name="quantbot", namespace="quantbot")


def _poller(hubsim, store: Store, calls: list[str]) -> Poller:
    settings = load_settings(None, hf_endpoint=hubsim.url, publish_backoff_s=60, publish_retries=2)
    hub = Hub(endpoint=hubsim.url, token=hubsim.token)
    store.changes.listen(lambda change: calls.append(f"{change.status.value}") if change.moved else None)
    return Poller(
        settings,
        store,
        hub,
        wake=lambda event_id, event: calls.append(f"wake {event.repo}"),
        options=_options,
    )


def _commit(hubsim, repo: str, path: str, text: str) -> str:
    return hubsim.api.upload_file(path_or_fileobj=text.encode(), path_in_repo=path, repo_id=repo).oid


def test_the_poll_records_changes_made_after_the_watch_once(
    hubsim, repo_factory: Callable[..., str], store: Store
) -> None:
    calls: list[str] = []
    poller = _poller(hubsim, store, calls)
    repo, fine_tune, base = repo_factory("watched"), repo_factory("fine-tune"), repo_factory("base")
    _commit(hubsim, repo, "a.txt", "before the watch")
    store.watches.add(WatchKind.REPO, repo, formats=["gptq"])
    store.watches.add(WatchKind.BASE_MODEL, base)  # the Hub refuses a card whose base_model does not exist
    assert poller.poll_watches() == 0 and calls == []  # nothing changed since the watches were added

    sha = _commit(hubsim, repo, "b.txt", "after the watch")
    tuned = _commit(hubsim, fine_tune, "README.md", f"---\nbase_model: {base}\n---\n# tuned\n")
    assert poller.poll_watches() == 2  # each new event handed on to the dispatcher, parsed
    assert sorted(calls) == sorted([f"wake {repo}", f"wake {fine_tune}"])
    events = {e.repo: e for e in store.events.pending()}
    assert events[repo].dedup_key == revision_key("repo.content", "update", repo, f"refs/heads/main@{sha}")
    assert events[fine_tune].dedup_key.endswith(tuned)
    assert poller.poll_watches() == 0  # the same revisions again: already recorded
