"""hubsim's ASGI application: read the body, inject faults, authenticate, route, answer.

Every request's body is read in full before anything else (the client keeps one keep-alive connection;
an unread body corrupts the next request). Errors become the Hub's error answers; an unexpected
exception becomes a JSON 500 *and* is recorded in `HubService.internal_errors`, which the test fixture
checks, so a hubsim bug never hides behind a client retry.
"""

from __future__ import annotations

import logging
import traceback
import uuid
from typing import Any
from urllib.parse import quote

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from bot.hubsim import (
    api_admin,
    api_discussions,
    api_files,
    api_jobs,
    api_lfs,
    api_likes,
    api_repos,
    api_users,
    job_pages,
    pages,
    signin,
)
from bot.hubsim.errors import ApiError, RepoMoved, repo_not_found, unauthorized
from bot.hubsim.ratelimit import ANONYMOUS, Usage, bucket_of
from bot.hubsim.routing import REPO_TYPES, Call, Handler, Route, Router, split_raw_path
from bot.hubsim.service import HubService
from bot.hubsim.users import User
from bot.hubsim.xet import cas_api, hub_api

log = logging.getLogger(__name__)

ADMIN_PREFIX = "_hubsim"
API_PREFIX = "api"


def build_router() -> Router:
    """Every route hubsim serves."""
    router = Router()
    api = (api_admin, api_repos, api_discussions, api_files, api_lfs, api_jobs, api_likes, api_users)
    for module in (*api, hub_api, cas_api):
        module.register(router)
    return router


def build_page_router() -> Router:
    """hubsim's web pages, consulted only for a request outside `/api/` the API has no route for."""
    router = Router()
    for module in (signin, job_pages, pages):  # the Jobs pages before `/{ns}/{name}`, which would take them
        module.register(router)
    return router


class HubsimApp:
    """The ASGI callable serving one `HubService`."""

    def __init__(self, hub: HubService) -> None:
        self.hub = hub
        self.router = build_router()
        self.pages = build_page_router()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        try:
            body = await request.body()
        except ClientDisconnect:  # a client killed mid-upload: nobody to answer, nothing to keep
            return
        response = self.handle(request, body)
        trace_id = request.headers.get("x-amzn-trace-id") or uuid.uuid4().hex
        response.headers["X-Request-Id"] = trace_id
        await response(scope, receive, send)

    def handle(self, request: Request, body: bytes) -> Response:
        """The answer to one request (never raises)."""
        method = request.method
        usage = None
        try:
            segments = split_raw_path(request.scope.get("raw_path") or request.url.path.encode())
            is_admin = bool(segments) and segments[0] == ADMIN_PREFIX
            if not is_admin and (fault := self.hub.faults.take(method, "/" + "/".join(segments))):
                raise fault.error()
            handler, params, is_page = self._route(method, segments, "authorization" not in request.headers)
            user = None if is_admin or cas_api.own_auth(segments) else self._caller(request, is_page)
            usage = None if is_admin else self._take(request, segments, user, is_page, handler)
            with self.hub.lock:
                response = handler(Call(request, body, user, self.hub, params))
        except RepoMoved as e:
            response = moved_response(request, segments, e)
        except ApiError as e:
            response = error_response(e)
        except Exception as e:
            detail = traceback.format_exc()
            self.hub.internal_errors.append(f"{method} {request.url.path}\n{detail}")
            log.error("hubsim internal error on %s %s:\n%s", method, request.url.path, detail)
            response = error_response(ApiError(500, f"hubsim internal error: {type(e).__name__}: {e}"))
        if usage is not None:
            response.headers.update(usage.headers())
        self.hub.requests.append((method, request.url.path, response.status_code))
        return response

    def _route(
        self, method: str, segments: list[str], anonymous: bool
    ) -> tuple[Handler, dict[str, str], bool]:
        """The API's route; else, outside `/api/` and `/_hubsim/`, a page; else the API's 404 (the Hub's
        RepoNotFound for a repo route naming a repo without namespace). The flag says whether it is a page."""
        try:
            return *self.router.match(method, segments), False
        except ApiError as no_route:
            if no_route.status == 404 and (name := _lone_repo_name(segments)) is not None:
                raise repo_not_found(name, anonymous) from None
            if (
                no_route.status != 404
                or segments[0] in (API_PREFIX, ADMIN_PREFIX)
                or cas_api.own_auth(segments)
            ):
                raise
            try:
                return *self.pages.match(method, segments), True
            except ApiError:
                if (name := _lone_repo_name(segments)) is not None:
                    raise repo_not_found(name, anonymous) from None
                raise no_route from None

    def _take(
        self, request: Request, segments: list[str], user: User | None, is_page: bool, handler: Handler
    ) -> Usage | None:
        """Count the request in its rate-limit bucket (by user, by IP address when anonymous): its usage
        for the `RateLimit` headers when the caller is limited; a 429 once their quota is spent."""
        if user is None:
            caller, plan = f"{ANONYMOUS}@{request.client.host if request.client else '-'}", ANONYMOUS
        else:
            caller, plan = user.name, user.plan
        route = handler.label if isinstance(handler, Route) else request.url.path
        return self.hub.rate_limits.take(caller, plan, bucket_of(segments, is_page), route)

    def _caller(self, request: Request, is_page: bool) -> User | None:
        """The user a bearer token names; None without a token; 401 for a token nobody has. A page also
        takes the browser's session cookie (`signin`), ignored when stale (hubsim restarted)."""
        header = request.headers.get("authorization")
        if header is None:
            return signin.signed_in(self.hub, request) if is_page else None
        scheme, _, token = header.partition(" ")
        user = self.hub.users.by_token(token.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            raise unauthorized()
        return user


# What follows a repo id in the Hub's repo routes: with one segment before it, the id has no namespace.
_REPO_ROUTES = frozenset(
    {
        "revision",
        "tree",
        "paths-info",
        "refs",
        "commits",
        "commit",
        "preupload",
        "discussions",
        "settings",
        "branch",
        "tag",
        "like",
        "xet-read-token",
        "xet-write-token",
        "super-squash",
        "lfs-files",
        "resolve",
    }
)


def _lone_repo_name(segments: list[str]) -> str | None:
    """The repo id of a repo route that names it without a namespace (`/api/models/gpt2/revision/main`,
    `/gpt2/resolve/main/x`): hubsim holds no such repo; the Hub answers RepoNotFound for those it lacks."""
    api = segments[:1] == [API_PREFIX] and len(segments) >= 3 and segments[1] in REPO_TYPES
    if api and (len(segments) == 3 or segments[3] in _REPO_ROUTES):
        return segments[2]
    if len(segments) >= 3 and segments[1] == "resolve":
        return segments[0]
    return None


def error_response(error: ApiError) -> Response:
    """The Hub's error answer: status, `X-Error-Code`, `X-Error-Message` and `{"error": ...}`."""
    headers = {"X-Error-Message": _header_safe(error.message), **error.headers}
    if error.code:
        headers["X-Error-Code"] = error.code
    return JSONResponse({"error": error.message, **error.body}, status_code=error.status, headers=headers)


def moved_response(request: Request, segments: list[str], moved: RepoMoved) -> Response:
    """The Hub's answer on a renamed repo's old name: 307 to the same path under the new name (relative,
    so huggingface_hub follows it, keeping method and body); RepoNotFound when the name is not in the path.
    """
    old_ns, old_name = moved.old_id.lower().split("/")
    new_ns, new_name = moved.new_id.split("/")
    for i in range(len(segments) - 1):
        name, dot_git = segments[i + 1], ""
        if name.lower().endswith(".git") and name[:-4].lower() == old_name:
            name, dot_git = name[:-4], ".git"
        if segments[i].lower() == old_ns and name.lower() == old_name:
            parts = [*segments[:i], new_ns, new_name + dot_git, *segments[i + 2 :]]
            location = "/" + "/".join(quote(p, safe="") for p in parts)
            if request.url.query:
                location += "?" + request.url.query
            return RedirectResponse(location, status_code=307)
    return error_response(moved)


def _header_safe(text: str) -> str:
    """One line of printable ASCII (header values cannot carry control characters or raw UTF-8)."""
    ascii_text = text.encode("ascii", "backslashreplace").decode()
    return "".join(c if " " <= c < "\x7f" else " " for c in ascii_text)[:1000]


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
