"""The Hub's Jobs API as huggingface_hub calls it (`/api/jobs/…`), over `bot.hubsim.jobs`, and hubsim's
admin route that makes the Hub lose a Job (`POST /_hubsim/jobs/{id}/delete`)."""

from __future__ import annotations

from starlette.responses import JSONResponse, Response, StreamingResponse

from bot.hubsim.errors import ApiError
from bot.hubsim.jobs import hardware_json
from bot.hubsim.routing import Call, Router

JOBS = "/api/jobs"


def register(router: Router) -> None:
    router.add("GET", JOBS + "/hardware", hardware)  # before `/{namespace}`, which it would also match
    router.add("POST", JOBS + "/{namespace}", run)
    router.add("GET", JOBS + "/{namespace}", listed)
    router.add("GET", JOBS + "/{namespace}/{job_id}", inspect)
    router.add("GET", JOBS + "/{namespace}/{job_id}/logs", logs)
    router.add("POST", JOBS + "/{namespace}/{job_id}/cancel", cancel)
    router.add("POST", "/_hubsim/jobs/{job_id}/delete", delete)


def hardware(call: Call) -> Response:
    return JSONResponse(hardware_json())


def run(call: Call) -> Response:
    user = call.hub.require_user(call.user)
    job = call.hub.jobs.run(user, call.params["namespace"], call.json())
    return JSONResponse(job.api_json())


def listed(call: Call) -> Response:
    user = call.hub.require_user(call.user)
    found = call.hub.jobs.listed(
        user, call.params["namespace"], call.query_list("stage"), call.query_list("label")
    )
    return JSONResponse([job.api_json() for job in found])


def inspect(call: Call) -> Response:
    job = call.hub.jobs.get(call.hub.require_user(call.user), call.params["namespace"], call.params["job_id"])
    return JSONResponse(job.api_json())


def logs(call: Call) -> Response:
    """Server-sent events, one per log line, until the Job ends (streamed outside the hub's lock)."""
    job = call.hub.jobs.get(call.hub.require_user(call.user), call.params["namespace"], call.params["job_id"])
    tail = call.int_query("tail", -1)
    events = call.hub.jobs.events(job, None if tail < 0 else tail)
    return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def cancel(call: Call) -> Response:
    job = call.hub.jobs.get(call.hub.require_user(call.user), call.params["namespace"], call.params["job_id"])
    call.hub.jobs.cancel(job)
    return JSONResponse({})


def delete(call: Call) -> Response:
    job = call.hub.jobs.jobs.get(call.params["job_id"])
    if job is None:
        raise ApiError(404, f"Job {call.params['job_id']} not found")
    call.hub.jobs.delete(job)
    return JSONResponse({"id": job.id, "stage": job.stage})
