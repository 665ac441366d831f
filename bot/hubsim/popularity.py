"""A repo's downloads, likes and trending score, and who liked it.

On the Hub these come from traffic hubsim does not have, so tests set them (`set_stats`, the admin route
`POST /_hubsim/{models|datasets|spaces}/{ns}/{name}/stats`); `model_info`, `list_models` (with `expand`,
`sort`) and the pages show them as the Hub does. Likes follow the Hub's rules since January 2025
(huggingface_hub #2739, which removed `HfApi.like` because the Hub stopped taking likes from scripts): a
signed-in browser likes a repo, a token may only unlike (`HfApi.unlike`); `list_liked_repos` and
`list_repo_likers` read them. A like adds one to the count, an unlike takes one off.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.hubsim.errors import bad_request
from bot.hubsim.gitobjects import now_iso
from bot.hubsim.store import Repo, Stats
from bot.hubsim.users import User

if TYPE_CHECKING:
    from bot.hubsim.service import HubService

# the admin route's keys (the Hub's names) → `Stats` fields
STAT_KEYS = {
    "downloads": "downloads",
    "downloadsAllTime": "downloads_all_time",
    "likes": "likes",
    "trendingScore": "trending_score",
}


def set_stats(hub: HubService, repo_type: str, repo_id: str, values: dict[str, Any]) -> Stats:
    """Set some of a repo's counts (`{"downloads": 12, "likes": 3}`; 400 for anything else)."""
    with hub.lock:
        repo = hub.repos.get((repo_type, repo_id))
        if repo is None:
            raise bad_request(f"No {repo_type} repo {repo_id}")
        if unknown := set(values) - set(STAT_KEYS):
            raise bad_request(f"unknown stats {sorted(unknown)}: give {sorted(STAT_KEYS)}")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values.values()):
            raise bad_request("stats are whole numbers >= 0")
        for key, value in values.items():
            setattr(repo.stats, STAT_KEYS[key], value)
        hub.save(repo)
        return repo.stats


def like(hub: HubService, user: User, repo: Repo) -> None:
    """`user` likes `repo` (once)."""
    if user.name not in repo.stats.likers:
        repo.stats.likers[user.name] = now_iso()
        repo.stats.likes += 1
        hub.save(repo)


def unlike(hub: HubService, user: User, repo: Repo) -> None:
    """`user` no longer likes `repo` (nothing happens when they did not)."""
    if repo.stats.likers.pop(user.name, None) is not None:
        repo.stats.likes = max(repo.stats.likes - 1, 0)
        hub.save(repo)


def liked_by(hub: HubService, viewer: User | None, username: str) -> list[dict[str, Any]]:
    """`/api/users/{user}/likes`: what `username` liked that `viewer` may see, newest first."""
    liked = [
        (repo.stats.likers[username], repo)
        for repo in hub.repos.values()
        if username in repo.stats.likers and hub.can_see(viewer, repo)
    ]
    liked.sort(key=lambda item: item[0], reverse=True)
    return [{"createdAt": when, "repo": {"name": repo.name, "type": repo.type}} for when, repo in liked]
