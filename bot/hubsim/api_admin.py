"""The Hub's webhook settings API (`/api/settings/webhooks`, as `HfApi.create_webhook` & co call it) and
hubsim's own admin routes under `/_hubsim/` (health, fault injection, delivery log; no auth: local only)."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, Response

from bot.hubsim.errors import ApiError, bad_request
from bot.hubsim.routing import Call, Router
from bot.hubsim.webhooks import Webhook, check_hook_fields

HOOKS = "/api/settings/webhooks"


def register(router: Router) -> None:
    router.add("GET", HOOKS, list_hooks)
    router.add("POST", HOOKS, create_hook)
    router.add("GET", HOOKS + "/{hook_id}", get_hook)
    router.add("POST", HOOKS + "/{hook_id}", update_hook)
    router.add("DELETE", HOOKS + "/{hook_id}", delete_hook)
    router.add("POST", HOOKS + "/{hook_id}/enable", lambda call: _set_disabled(call, False))
    router.add("POST", HOOKS + "/{hook_id}/disable", lambda call: _set_disabled(call, True))
    router.add("GET", "/_hubsim/health", health)
    router.add("GET", "/_hubsim/faults", list_faults)
    router.add("POST", "/_hubsim/faults", add_fault)
    router.add("DELETE", "/_hubsim/faults", clear_faults)
    router.add("GET", "/_hubsim/deliveries", deliveries)


def _owner(call: Call) -> str:
    return call.hub.require_user(call.user).name


def _hook(call: Call) -> Webhook:
    """A hook of the caller's (404 for anyone else's)."""
    hook = call.hub.webhooks.hooks.get(call.params["hook_id"])
    if hook is None or hook.owner != _owner(call):
        raise ApiError(404, f"Webhook not found: {call.params['hook_id']}")
    return hook


def _answer(hook: Webhook) -> Response:
    return JSONResponse({"webhook": hook.api_json()})


def list_hooks(call: Call) -> Response:
    owner = _owner(call)
    return JSONResponse([h.api_json() for h in call.hub.webhooks.hooks.values() if h.owner == owner])


def create_hook(call: Call) -> Response:
    """`{"url", "watched", "domains", "secret"?}`; Jobs webhooks (`jobSourceId`) are not emulated."""
    body = call.json()
    if "jobSourceId" in body:
        raise bad_request("hubsim does not run Jobs: create the webhook with a url")
    hook = call.hub.register_webhook(
        body.get("url"), body.get("secret"), body.get("watched", []), body.get("domains"), owner=_owner(call)
    )
    return _answer(hook)


def get_hook(call: Call) -> Response:
    return _answer(_hook(call))


def update_hook(call: Call) -> Response:
    hook, body = _hook(call), call.json()
    if "jobSourceId" in body:
        raise bad_request("hubsim does not run Jobs: webhooks post to a url")
    fields: dict[str, Any] = {
        "url": hook.url,
        "watched": hook.watched,
        "domains": hook.domains,
        "secret": hook.secret,
    }
    fields.update({k: body[k] for k in fields if k in body})
    check_hook_fields(fields["url"], fields["watched"], fields["domains"], fields["secret"])
    hook.url, hook.watched, hook.domains, hook.secret = (
        fields["url"],
        fields["watched"],
        fields["domains"],
        fields["secret"],
    )
    call.hub.save_meta()
    return _answer(hook)


def delete_hook(call: Call) -> Response:
    del call.hub.webhooks.hooks[_hook(call).id]
    call.hub.save_meta()
    return JSONResponse({})


def _set_disabled(call: Call, disabled: bool) -> Response:
    hook = _hook(call)
    hook.disabled = disabled
    call.hub.save_meta()
    return _answer(hook)


def health(call: Call) -> Response:
    hub = call.hub
    return JSONResponse(
        {
            "ok": True,
            "repos": len(hub.repos),
            "users": sorted(hub.users.users),
            "internalErrors": len(hub.internal_errors),
        }
    )


def list_faults(call: Call) -> Response:
    return JSONResponse([f.to_dict() for f in call.hub.faults.list()])


def add_fault(call: Call) -> Response:
    """`{"path": regex, "method"?: "*", "status"?: 503, "times"?: 1, "retry_after"?: 0}`."""
    body = call.json()
    try:
        fault = call.hub.faults.add(
            str(body.get("path", ".*")),
            method=str(body.get("method", "*")),
            status=int(body.get("status", 503)),
            times=int(body.get("times", 1)),
            retry_after=int(body.get("retry_after", 0)),
        )
    except (TypeError, ValueError):
        raise bad_request("status, times and retry_after must be integers") from None
    return JSONResponse(fault.to_dict())


def clear_faults(call: Call) -> Response:
    call.hub.faults.clear()
    return JSONResponse({})


def deliveries(call: Call) -> Response:
    """The webhook delivery log, oldest first (`?scope=` filters)."""
    scope = call.query("scope")
    return JSONResponse([d.to_dict() for d in call.hub.webhooks.deliveries() if scope in (None, d.scope)])
