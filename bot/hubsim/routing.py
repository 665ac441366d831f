"""Routing on the raw request path, and the per-request `Call` the handlers receive.

The client quotes revisions with `safe=""` (`refs/pr/1` → `refs%2Fpr%2F1`) and tree paths likewise, so
routes match on the raw path split at literal slashes, and each segment is unquoted on its own.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_to_bytes, urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot.hubsim.errors import ApiError, bad_request
from bot.hubsim.service import HubService
from bot.hubsim.users import User

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_TRUE = ("1", "true", "yes")


def split_raw_path(raw_path: bytes) -> list[str]:
    """The path's segments, each percent-decoded as UTF-8 (400 when it is not)."""
    try:
        return [unquote_to_bytes(s).decode("utf-8") for s in raw_path.split(b"/")[1:]]
    except UnicodeDecodeError:
        raise bad_request("The request path is not valid UTF-8") from None


@dataclass
class Call:
    """One request as a handler sees it: path parameters, query, body, caller, and the hub."""

    request: Request
    body: bytes
    user: User | None
    hub: HubService
    params: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        """`scheme://host[:port]` as the client addressed us, for the URLs we hand back."""
        return str(self.request.base_url).rstrip("/")

    def query(self, name: str) -> str | None:
        return self.request.query_params.get(name)

    def query_list(self, name: str) -> list[str]:
        return self.request.query_params.getlist(name)

    def flag(self, name: str) -> bool:
        """A boolean query parameter (`1`, `true`, `True`)."""
        return (self.query(name) or "").lower() in _TRUE

    def int_query(self, name: str, default: int) -> int:
        value = self.query(name)
        try:
            return default if value in (None, "") else int(value)
        except ValueError:
            raise bad_request(f"query parameter {name} must be an integer") from None

    def json(self, *, optional: bool = False) -> dict[str, Any]:
        """The JSON object body ({} for an empty body when `optional`); 400 when malformed."""
        if not self.body.strip() and optional:
            return {}
        try:
            data = json.loads(self.body)
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            raise bad_request(f"Request body is not valid JSON: {type(e).__name__}") from None
        if not isinstance(data, dict):
            raise bad_request("Request body must be a JSON object")
        return data

    def url_with(self, **query: str) -> str:
        """This request's absolute URL (raw path kept) with some query parameters replaced."""
        params = [(k, v) for k, v in self.request.query_params.multi_items() if k not in query]
        params += list(query.items())
        raw_path = self.request.scope.get("raw_path") or self.request.url.path.encode()
        return f"{self.base_url}{raw_path.decode('latin-1')}?{urlencode(params)}"


Handler = Callable[[Call], Response]


def paged(
    call: Call, items: list[Any], default_size: int, render: Callable[[Any], Any] | None = None
) -> Response:
    """One page of `items` from `?cursor=` on, with a `Link: <next>; rel="next"` while more remain; `render`
    shapes each item of the page (and only those: a listing builds only what it sends)."""
    size = call.hub.page_size or default_size
    start = call.int_query("cursor", 0)
    if start < 0:
        raise bad_request("cursor must be >= 0")
    page = items[start : start + size]
    headers = {}
    if start + size < len(items):
        headers["Link"] = f'<{call.url_with(cursor=str(start + size))}>; rel="next"'
    return JSONResponse([render(item) for item in page] if render else page, headers=headers)


@dataclass
class Route:
    """One route; calling it calls its handler; `label` (`GET /api/{rtype}/{ns}/{name}`) names it."""

    method: str
    parts: list[str]
    handler: Handler
    fixed: dict[str, str]

    @property
    def label(self) -> str:
        return f"{self.method} /{'/'.join(self.parts)}"

    def __call__(self, call: Call) -> Response:
        return self.handler(call)


class Router:
    """Patterns like `/api/{rtype}/{ns}/{name}/tree/{rev}/{path*}`: `{x}` is one segment, `{x*}` the rest
    (zero or more segments, joined by "/"), `{rtype}` one of models|datasets|spaces (as model|...)."""

    def __init__(self) -> None:
        self._routes: list[Route] = []

    def add(self, method: str, pattern: str, handler: Handler, **fixed: str) -> None:
        self._routes.append(Route(method, pattern.strip("/").split("/"), handler, fixed))

    def match(self, method: str, segments: list[str]) -> tuple[Route, dict[str, str]]:
        """The route (a handler) and path parameters (404 for no route, 405 for a known path with another
        method)."""
        allowed = []
        for route in self._routes:
            params = _match(route.parts, segments)
            if params is None:
                continue
            if route.method == method or (method == "HEAD" and route.method == "GET"):
                return route, {**route.fixed, **params}
            allowed.append(route.method)
        path = "/" + "/".join(segments)
        if allowed:
            raise ApiError(
                405, f"Method {method} not allowed on {path} (allowed: {', '.join(sorted(set(allowed)))})"
            )
        raise ApiError(404, f"hubsim does not implement {method} {path}")


def _match(parts: list[str], segments: list[str]) -> dict[str, str] | None:
    params: dict[str, str] = {}
    for i, part in enumerate(parts):
        if part.startswith("{") and part.endswith("*}"):
            params[part[1:-2]] = "/".join(segments[i:])
            return params
        if i >= len(segments):
            return None
        if part == "{rtype}":
            if segments[i] not in REPO_TYPES:
                return None
            params["rtype"] = REPO_TYPES[segments[i]]
        elif part.startswith("{"):
            if not segments[i]:
                return None
            params[part[1:-1]] = segments[i]
        elif part != segments[i]:
            return None
    return params if len(parts) == len(segments) else None
