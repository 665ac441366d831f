"""Signing a browser in to hubsim's pages, as the Hub's login does: `/login` takes a user's token and keeps
it in the `token` cookie (HttpOnly, SameSite=Lax), which pages, and only pages, read (`app._caller`).
Pages that only members may see (a namespace's Jobs) need it; without it they answer as for a missing page.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from bot.hubsim.pages import html
from bot.hubsim.routing import Call, Router
from bot.hubsim.service import HubService
from bot.hubsim.users import User

COOKIE = "token"


def register(router: Router) -> None:
    router.add("GET", "/login", form)
    router.add("POST", "/login", sign_in)


def signed_in(hub: HubService, request: Request) -> User | None:
    """The user the browser's cookie names (None without one, or for a token hubsim no longer has)."""
    token = request.cookies.get(COOKIE)
    return hub.users.by_token(token) if token else None


def form(call: Call) -> Response:
    """The sign-in form; `?next=` is where it goes once signed in."""
    return _form(_local(call.query("next")))


def sign_in(call: Call) -> Response:
    """Check the token, set the cookie, and go back to the page that asked (401 and the form again)."""
    fields = parse_qs(call.body.decode("utf-8", "replace"))
    token, target = (fields.get("token") or [""])[0].strip(), _local((fields.get("next") or [""])[0])
    user = call.hub.users.by_token(token) if token else None
    if user is None:
        return _form(target, "No user has that token.", status=401)
    answer = RedirectResponse(target, status_code=303)
    answer.set_cookie(COOKIE, token, httponly=True, samesite="lax", path="/")
    return answer


def _form(target: str, error: str | None = None, status: int = 200) -> Response:
    return html("login.html.j2", status=status, title="Sign in", target=target, error=error)


def _local(target: str | None) -> str:
    """`target` when it is a path on this site, else `/` (never a redirect to another site)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"
