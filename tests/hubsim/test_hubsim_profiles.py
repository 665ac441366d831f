"""A user's overview through `get_user_overview`, with the hardware saved in their settings while it is
public (hub-docs hardware.md), set by a test through the admin route or a users file."""

from __future__ import annotations

import httpx
import pytest
from huggingface_hub.errors import HfHubHTTPError

from bot.errors import ConfigError
from bot.hubsim import Directory

L4 = {"sku": ["GPU", "NVIDIA", "L4"], "mem": 24, "num": 2, "isPrimary": True}
MAC = {"sku": ["Apple Silicon", "-", "Apple M2 Max"], "mem": 64}


def _save(hubsim, user: str, **body: object) -> httpx.Response:
    return httpx.put(f"{hubsim.url}/_hubsim/users/{user}/hardware", json=body)


@pytest.fixture
def hardware(hubsim):
    yield
    _save(hubsim, hubsim.other_user, items=[], public=True)


def test_the_overview_shows_public_hardware_and_hides_it_once_private(hubsim, hardware, repo_factory):
    repo_factory("mine", token=hubsim.other_token)
    assert _save(hubsim, hubsim.other_user, items=[L4, MAC]).status_code == 200
    overview = hubsim.api.get_user_overview(hubsim.other_user)
    assert overview.username == hubsim.other_user and overview.num_models >= 1 and overview.is_pro is False
    assert overview.hardwareItems == [L4, {**MAC, "num": 1}]
    _save(hubsim, hubsim.other_user, items=[L4, MAC], public=False)
    assert not hasattr(hubsim.api.get_user_overview(hubsim.other_user), "hardwareItems")
    assert [o.name for o in hubsim.api.get_user_overview(hubsim.user).orgs] == [hubsim.org]


def test_malformed_hardware_is_refused_with_the_reason(hubsim, hardware):
    bad = [
        [{"sku": ["GPU", "NVIDIA"], "mem": 24}],
        [{"sku": ["TPU", "Google", "v5e"], "mem": 16}],
        [{"sku": ["GPU", "NVIDIA", "L4"], "mem": 0}],
        [{**L4}, {**L4}],  # two primaries
        "L4",
    ]
    answers = [_save(hubsim, hubsim.other_user, items=items) for items in bad]
    assert [a.status_code for a in answers] == [400] * len(bad)
    assert "type must be one of GPU, CPU, Apple Silicon" in answers[1].json()["error"]
    assert _save(hubsim, "nobody-here", items=[]).status_code == 404


def test_unknown_users_and_orgs_have_no_user_overview(hubsim):
    for name in ("nobody-here", hubsim.org):
        with pytest.raises(HfHubHTTPError) as missing:
            hubsim.api.get_user_overview(name)
        assert missing.value.response.status_code == 404


def test_a_users_file_can_hold_hardware_and_refuses_bad_items():
    users = Directory.from_dict({"users": [{"name": "a", "token": "t", "hardware": [L4], "plan": "pro"}]})
    assert users.users["a"].hardware == [L4] and users.users["a"].hardware_public
    with pytest.raises(ConfigError, match=r"user a: hardware\[0\].sku must be"):
        Directory.from_dict({"users": [{"name": "a", "token": "t", "hardware": [{"sku": "L4", "mem": 1}]}]})
