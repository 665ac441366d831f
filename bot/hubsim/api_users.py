"""User routes: a user's overview (`get_user_overview`, with their public hardware, see `profiles`) and the
repos they liked (`list_liked_repos`, items `{createdAt, repo: {name, type}}`, paged by `Link`)."""

from __future__ import annotations

from starlette.responses import JSONResponse, Response

from bot.hubsim import popularity, profiles
from bot.hubsim.errors import ApiError
from bot.hubsim.routing import Call, Router, paged
from bot.hubsim.users import User


def register(router: Router) -> None:
    router.add("GET", "/api/users/{user}/overview", overview)
    router.add("GET", "/api/users/{user}/likes", liked_repos)


def _user(call: Call) -> User:
    """The user the path names (404 for anyone else, an org's name included)."""
    user = call.hub.users.users.get(call.hub.users.canonical(call.params["user"]))
    if user is None:
        raise ApiError(404, f"User not found: {call.params['user']}")
    return user


def overview(call: Call) -> Response:
    return JSONResponse(profiles.overview(call.hub, _user(call)))


def liked_repos(call: Call) -> Response:
    return paged(call, popularity.liked_by(call.hub, call.user, _user(call).name), default_size=1000)
