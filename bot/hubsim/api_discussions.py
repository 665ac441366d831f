"""Discussion and pull-request routes, with the answer keys the client reads (`num`, `newMessage`,
`newTitle`, `newStatus`, `updatedComment`) and page-numbered listing (`?p=`, `count`, `start`)."""

from __future__ import annotations

from starlette.responses import JSONResponse, Response

from bot.hubsim.api_repos import REPO, repo_id
from bot.hubsim.discussions import details_json, event_json, summary_json
from bot.hubsim.errors import ApiError, bad_request
from bot.hubsim.routing import Call, Router

DISCUSSION = REPO + "/discussions/{num}"
PAGE_SIZE = 50


def register(router: Router) -> None:
    router.add("GET", REPO + "/discussions", list_discussions)
    router.add("POST", REPO + "/discussions", create_discussion)
    router.add("GET", DISCUSSION, details)
    router.add("POST", DISCUSSION + "/comment", comment)
    router.add("POST", DISCUSSION + "/title", title)
    router.add("POST", DISCUSSION + "/status", status)
    router.add("POST", DISCUSSION + "/merge", merge)
    router.add("POST", DISCUSSION + "/comment/{comment_id}/edit", edit_comment)
    router.add("POST", DISCUSSION + "/comment/{comment_id}/hide", hide_comment)


def _num(call: Call) -> int:
    text = call.params["num"]
    if not text.isdigit() or int(text) < 1:
        raise ApiError(404, f"Discussion not found: {text}")
    return int(text)


def _target(call: Call) -> tuple[str, str, int]:
    return call.params["rtype"], repo_id(call), _num(call)


def list_discussions(call: Call) -> Response:
    found = call.hub.community.list(
        call.user,
        call.params["rtype"],
        repo_id(call),
        call.query("type"),
        call.query("status"),
        call.query("author"),
    )
    page = call.int_query("p", 0)
    if page < 0:
        raise bad_request("p must be >= 0")
    size = call.hub.page_size or PAGE_SIZE
    items = [
        summary_json(d, repo_id(call), call.params["rtype"]) for d in found[page * size : (page + 1) * size]
    ]
    return JSONResponse(
        {"discussions": items, "count": len(found), "start": page * size, "numClosedDiscussions": 0}
    )


def create_discussion(call: Call) -> Response:
    body = call.json()
    pull_request = body.get("pullRequest", False)
    if not isinstance(pull_request, bool):
        raise bad_request("pullRequest must be a boolean")
    discussion = call.hub.community.open(
        call.user,
        call.params["rtype"],
        repo_id(call),
        body.get("title"),
        body.get("description") or "",
        pull_request,
    )
    return JSONResponse({"num": discussion.num, "pullRequest": pull_request, "id": discussion.id})


def details(call: Call) -> Response:
    repo, discussion, conflicts, diff = call.hub.community.details(call.user, *_target(call))
    diff = diff if call.flag("diff") else None
    return JSONResponse(details_json(discussion, repo.name, repo.type, conflicts, diff))


def comment(call: Call) -> Response:
    event = call.hub.community.comment(call.user, *_target(call), call.json().get("comment"))
    return JSONResponse({"newMessage": event_json(event)})


def title(call: Call) -> Response:
    event = call.hub.community.rename(call.user, *_target(call), call.json().get("title"))
    return JSONResponse({"newTitle": event_json(event)})


def status(call: Call) -> Response:
    body = call.json()
    event = call.hub.community.change_status(
        call.user, *_target(call), body.get("status"), body.get("comment")
    )
    return JSONResponse({"newStatus": event_json(event)})


def merge(call: Call) -> Response:
    """The body (`{"comment"}`) is optional; the client sends none without a comment."""
    event = call.hub.community.merge(call.user, *_target(call), call.json(optional=True).get("comment"))
    return JSONResponse({"newStatus": event_json(event)})


def edit_comment(call: Call) -> Response:
    event = call.hub.community.edit_comment(
        call.user, *_target(call), call.params["comment_id"], call.json().get("content")
    )
    return JSONResponse({"updatedComment": event_json(event)})


def hide_comment(call: Call) -> Response:
    event = call.hub.community.hide_comment(call.user, *_target(call), call.params["comment_id"])
    return JSONResponse({"updatedComment": event_json(event)})
