"""hubsim's Jobs pages at the Hub's URLs: `/jobs/{namespace}` lists a namespace's Jobs, newest first, and
`/jobs/{namespace}/{job_id}` (the URL `JobInfo.url` gives) shows one Job with the end of its log.

Who may see them is the API's rule (`Jobs.get`): the namespace's user or its org's members, signed in by
token or by hubsim's session cookie (`/login`); anyone else gets the page of a missing Job, so a 404 tells
nothing about whether it exists. A secret's value never reaches the page: only secret and environment
names are shown, and any secret value in the command or the log is masked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlencode

from starlette.responses import Response

from bot.hubsim.errors import ApiError
from bot.hubsim.jobs import Job
from bot.hubsim.pages import html
from bot.hubsim.routing import Call, Router
from bot.hubsim.users import User

LOG_LINES = 500  # the end of the log shown on a Job's page
MASK = "***"
T = TypeVar("T")


def register(router: Router) -> None:
    """Before the repo pages, whose `/{ns}/{name}` would take `/jobs/{namespace}`."""
    router.add("GET", "/jobs/{namespace}", listing)
    router.add("GET", "/jobs/{namespace}/{job_id}", job_page)


def listing(call: Call) -> Response:
    """A namespace's Jobs, newest first, each with its stage, flavour and age."""
    namespace = call.params["namespace"]
    found = _visible(call, lambda user: call.hub.jobs.listed(user, namespace, [], []))
    if found is None:
        return _hidden(call, f"Jobs of {namespace}")
    jobs = [job.api_json() for job in found]
    return html("jobs.html.j2", title=f"Jobs of {namespace}", namespace=namespace, jobs=jobs)


def job_page(call: Call) -> Response:
    """One Job as the Hub's Jobs page shows it: what it runs, where, its stage and the end of its log."""
    namespace, job_id = call.params["namespace"], call.params["job_id"]
    job = _visible(call, lambda user: call.hub.jobs.get(user, namespace, job_id))
    if job is None:
        return _hidden(call, f"Job {namespace}/{job_id}")
    info = job.api_json()
    with job.changed:
        lines = [line for _, line in job.logs]
    return html(
        "job.html.j2",
        title=f"Job {job.id}",
        job=job,
        info=info,
        image=info.get("dockerImage") or info.get("spaceId"),
        argv=[_masked(job, part) for part in (*info["command"], *info["arguments"])],
        env_names=sorted(info["environment"]),
        secret_names=sorted(info["secrets"]),
        log=[_masked(job, line) for line in lines[-LOG_LINES:]],
        log_cut=max(len(lines) - LOG_LINES, 0),
        duration=_duration(info["durations"]),
    )


def _visible(call: Call, fetch: Callable[[User], T]) -> T | None:
    """What `fetch(user)` returns when the caller may see it (None when missing or not theirs)."""
    try:
        return fetch(call.hub.require_user(call.user)) if call.user is not None else None
    except ApiError as e:
        if e.status in (401, 403, 404):
            return None
        raise


def _hidden(call: Call, what: str) -> Response:
    """The same 404 page for what does not exist and what the caller may not see; signed out, with the
    way to sign in and come back."""
    message = f"No {what} here, or not for you to see: Jobs are shown to their namespace's members."
    sign_in = None if call.user else "/login?" + urlencode({"next": call.request.url.path})
    return html("error.html.j2", status=404, title="404", message=message, code=404, sign_in=sign_in)


def _masked(job: Job, text: str) -> str:
    """`text` with every value of the Job's secrets replaced by `***`."""
    for value in (job.spec.get("secrets") or {}).values():
        if str(value):
            text = text.replace(str(value), MASK)
    return text


def _duration(durations: dict[str, int | None]) -> str:
    """`1 min 5 s` of running (or of waiting to start, before it runs)."""
    seconds = (
        durations["runningSecs"] if durations["runningSecs"] is not None else durations["schedulingSecs"]
    )
    minutes, rest = divmod(int(seconds or 0), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"
