"""Likes of a repo: liking (a signed-in browser only), unliking, its likers (a user's likes: `api_users`).

Routes as huggingface_hub calls them: `DELETE /api/{type}s/{id}/like` (`HfApi.unlike`), `GET
/api/{type}s/{id}/likers` (`list_repo_likers`, items `{user, fullname, avatarUrl}`, paged by `Link`).
`POST .../like` takes the browser's session cookie and refuses a token (hubsim's words; the Hub stopped
taking likes from scripts, huggingface_hub #2739).
"""

from __future__ import annotations

from starlette.responses import JSONResponse, Response

from bot.hubsim import popularity, signin
from bot.hubsim.api_repos import REPO, repo_id, visible_repo
from bot.hubsim.errors import forbidden, unauthorized
from bot.hubsim.routing import Call, Router, paged


def register(router: Router) -> None:
    router.add("POST", REPO + "/like", like)
    router.add("DELETE", REPO + "/like", unlike)
    router.add("GET", REPO + "/likers", likers)


def like(call: Call) -> Response:
    if call.user is not None:
        raise forbidden("Liking a repo is possible on the website only, not with an access token")
    user = signin.signed_in(call.hub, call.request)
    if user is None:
        raise unauthorized("Sign in to like a repo")
    popularity.like(call.hub, user, call.hub.repo(user, call.params["rtype"], repo_id(call)))
    return JSONResponse({})


def unlike(call: Call) -> Response:
    user = call.hub.require_user(call.user)
    popularity.unlike(call.hub, user, visible_repo(call))
    return JSONResponse({})


def likers(call: Call) -> Response:
    repo = visible_repo(call)
    users = call.hub.users.users
    names = sorted(repo.stats.likers, key=repo.stats.likers.__getitem__, reverse=True)
    found = [
        {"user": name, "fullname": (users[name].fullname if name in users else None) or name, "avatarUrl": ""}
        for name in names
    ]
    return paged(call, found, default_size=1000)
