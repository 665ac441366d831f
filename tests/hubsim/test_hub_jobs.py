"""hubsim runs Jobs: huggingface_hub's own Jobs calls against it, each Job a real local process."""

from __future__ import annotations

import sys
import time
from typing import Any

import httpx
import pytest
from huggingface_hub import JobInfo
from huggingface_hub.errors import HfHubHTTPError

PY = sys.executable


def _run(api: Any, code: str, **kw: Any) -> JobInfo:
    kw.setdefault("flavor", "cpu-basic")
    return api.run_job(image="quantbot-worker:test", command=[PY, "-c", code], **kw)


def test_a_job_runs_its_command_with_env_and_secrets_and_completes(hubsim: Any) -> None:
    api = hubsim.api
    code = "import os; print('hello', os.environ['GREETING']); print('secret', len(os.environ['HF_TOKEN']))"
    job = _run(api, code, env={"GREETING": "world"}, secrets={"HF_TOKEN": "hf_secret_value"}, flavor="l4x1")
    assert job.status.stage in ("SCHEDULING", "RUNNING")
    assert job.url == f"{hubsim.url}/jobs/{hubsim.user}/{job.id}"
    done = api.wait_for_job(job.id, timeout=30, poll_interval=0.2)
    assert done.status.stage == "COMPLETED"
    assert done.flavor == "l4x1" and done.docker_image == "quantbot-worker:test"
    assert done.environment == {"GREETING": "world"}
    assert "hf_secret_value" not in str(done.secrets)  # names only, never the value
    assert done.durations is not None and done.durations.running_secs is not None
    assert list(api.fetch_job_logs(job_id=job.id)) == ["hello world", "secret 15"]
    assert list(api.fetch_job_logs(job_id=job.id, tail=1)) == ["secret 15"]


def test_logs_stream_while_the_job_runs(hubsim: Any) -> None:
    api = hubsim.api
    job = _run(api, "import time\nfor i in range(3):\n    print(i, flush=True); time.sleep(0.3)")
    assert list(api.fetch_job_logs(job_id=job.id, follow=True)) == ["0", "1", "2"]
    assert api.inspect_job(job_id=job.id).status.stage == "COMPLETED"


def test_a_failing_command_ends_in_error_with_its_exit_code(hubsim: Any) -> None:
    api = hubsim.api
    job = _run(api, "import sys; print('boom'); sys.exit(3)")
    done = api.wait_for_job(job.id, timeout=30, poll_interval=0.2)
    assert done.status.stage == "ERROR"
    assert done.status.message == "Job failed with exit code: 3"
    assert list(api.fetch_job_logs(job_id=job.id)) == ["boom"]


def test_cancel_stops_the_process(hubsim: Any, tmp_path: Any) -> None:
    api = hubsim.api
    marker = tmp_path / "still-running"
    job = _run(api, f"import time, pathlib\ntime.sleep(3)\npathlib.Path({str(marker)!r}).touch()")
    api.wait_for_job(job.id, stages=["RUNNING"], timeout=10, poll_interval=0.1)
    api.cancel_job(job_id=job.id)
    assert api.inspect_job(job_id=job.id).status.stage == "CANCELED"
    time.sleep(3.5)
    assert not marker.exists()


def test_timeout_and_a_lost_job(hubsim: Any) -> None:
    api = hubsim.api
    slow = _run(api, "import time; time.sleep(30)", timeout=1)
    done = api.wait_for_job(slow.id, timeout=15, poll_interval=0.2)
    assert (done.status.stage, done.status.message) == ("ERROR", "Job timeout after 1 s")
    lost = _run(api, "import time; time.sleep(30)")
    api.wait_for_job(lost.id, stages=["RUNNING"], timeout=10, poll_interval=0.1)
    httpx.post(f"{hubsim.url}/_hubsim/jobs/{lost.id}/delete").raise_for_status()
    assert api.inspect_job(job_id=lost.id).status.stage == "DELETED"


def test_list_filters_by_stage_and_label_and_hardware_is_listed(hubsim: Any) -> None:
    api = hubsim.api
    job = _run(api, "print(1)", labels={"quantbot-job": "42"})
    api.wait_for_job(job.id, timeout=30, poll_interval=0.2)
    found = list(api.list_jobs(labels={"quantbot-job": "42"}, namespace=hubsim.user))
    assert [j.id for j in found] == [job.id]
    assert job.id not in [j.id for j in api.list_jobs(status="RUNNING", namespace=hubsim.user)]
    names = {h.name: h for h in api.list_jobs_hardware()}
    assert names["h200"].accelerator is not None and names["h200"].accelerator.model == "H200"
    assert round(names["l4x1"].unit_cost_usd * 60, 2) == 0.80


def test_the_hub_refuses_what_it_would_refuse(hubsim: Any) -> None:
    with pytest.raises(HfHubHTTPError) as bad_flavour:
        _run(hubsim.api, "print(1)", flavor="b200x1")
    assert bad_flavour.value.response.status_code == 400
    with pytest.raises(HfHubHTTPError) as other_namespace:
        _run(hubsim.other_api, "print(1)", namespace=hubsim.user)
    assert other_namespace.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as unknown:
        hubsim.api.inspect_job(job_id="0" * 24)
    assert unknown.value.response.status_code == 404
