"""The Hub's webhook settings API (`/api/settings/webhooks`, as `HfApi.create_webhook` & co call it) and
hubsim's own admin routes under `/_hubsim/` (health, fault injection, delivery log, rate limits and request
counts, a repo's downloads and likes, a user's saved hardware, many repos at once; no auth: local only)."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, Response

from bot.hubsim import popularity, profiles, seeding
from bot.hubsim.errors import ApiError, bad_request
from bot.hubsim.ratelimit import WINDOW_S
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
    router.add("GET", "/_hubsim/rate-limits", rate_limits)
    router.add("POST", "/_hubsim/rate-limits", set_rate_limits)
    router.add("DELETE", "/_hubsim/rate-limits", reset_rate_limits)
    router.add("GET", "/_hubsim/requests", request_counts)
    router.add("POST", "/_hubsim/{rtype}/{ns}/{name}/stats", set_stats)
    router.add("PUT", "/_hubsim/users/{user}/hardware", set_hardware)
    router.add("POST", "/_hubsim/seed", seed)


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


def rate_limits(call: Call) -> Response:
    """Whether limits are on, each plan's quotas, users' own quotas, and the requests refused so far."""
    limits = call.hub.rate_limits
    refused = limits.counted()[1]
    return JSONResponse(
        {
            "enabled": limits.enabled,
            "windowSeconds": WINDOW_S,
            "plans": {name: vars(quota) for name, quota in limits.plans.items()},
            "users": limits.user_quotas,
            "refused": [{"caller": c, "bucket": b, "count": n} for (c, b), n in sorted(refused.items())],
        }
    )


def set_rate_limits(call: Call) -> Response:
    """`{"enabled"?: bool, "user"?: name, "plan"?: name, "quotas"?: {"api": 20, ...}}`: turn limits on or
    off, and set quotas of one user (enforced even while limits are off) or of a plan (default `free`)."""
    body = call.json()
    enabled, user, plan = body.get("enabled"), body.get("user"), body.get("plan")
    quotas = body.get("quotas", {})
    if enabled is not None and not isinstance(enabled, bool):
        raise bad_request("enabled must be a boolean")
    if not isinstance(quotas, dict) or (user is not None and user not in call.hub.users.users):
        raise bad_request("quotas must be an object, and user the name of a hubsim user")
    for bucket, limit in quotas.items():
        call.hub.rate_limits.set_quota(bucket, limit, user=user, plan=plan)
    if enabled is not None:
        call.hub.rate_limits.enabled = enabled
    return rate_limits(call)


def reset_rate_limits(call: Call) -> Response:
    """Forget users' own quotas, current windows and request counts."""
    call.hub.rate_limits.reset()
    return JSONResponse({})


def request_counts(call: Call) -> Response:
    """Requests counted since the last reset, `[{"caller", "bucket", "route", "count"}]` (`?caller=`)."""
    caller = call.query("caller")
    return JSONResponse(
        [
            {"caller": c, "bucket": b, "route": r, "count": n}
            for (c, b, r), n in sorted(call.hub.rate_limits.counted()[0].items())
            if caller in (None, c)
        ]
    )


def set_stats(call: Call) -> Response:
    """`{"downloads"?, "downloadsAllTime"?, "likes"?, "trendingScore"?}`: what the Hub would have counted."""
    repo_id = f"{call.params['ns']}/{call.params['name']}"
    stats = popularity.set_stats(call.hub, call.params["rtype"], repo_id, call.json())
    return JSONResponse({key: getattr(stats, field) for key, field in popularity.STAT_KEYS.items()})


def set_hardware(call: Call) -> Response:
    """`{"items": [{"sku": [type, provider, model], "mem", "num", "isPrimary"?}], "public"?: true}`: what the
    user saved in their Hub settings (`profiles`)."""
    body = call.json()
    user = profiles.set_hardware(call.hub, call.params["user"], body.get("items"), body.get("public", True))
    return JSONResponse({"items": user.hardware, "public": user.hardware_public})


def seed(call: Call) -> Response:
    """`{"repos": [{"id", "type"?, "private"?, "files"?, "stats"?}]}`: many repos at once (`seeding`)."""
    made = seeding.seed(call.hub, call.json().get("repos"))
    return JSONResponse({"made": len(made), "sha": {repo.name: repo.head.oid for repo in made}})
