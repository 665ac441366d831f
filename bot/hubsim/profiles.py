"""A user's public profile: `/api/users/{user}/overview` (`HfApi.get_user_overview`), with the hardware the
user saved in their Hub settings.

hub-docs `hardware.md` ("Read hardware from the API"): while a user's hardware is public, the overview has
`hardwareItems`, a list of `{"sku": [type, provider, model], "mem": GB, "num": units, "isPrimary": true}`
(`isPrimary` only on the item marked primary); once the user turns "Publicly Visible" off, the overview has
no `hardwareItems`. The types are `GPU`, `CPU` and `Apple Silicon` (huggingface.js `tasks/src/hardware.ts`,
whose catalogue of models hubsim does not enforce). The Hub also puts the list in `/oauth/userinfo` for apps
granted the `profile` scope; hubsim has no OAuth. The rest of the overview has the keys huggingface_hub's
`User` reads; hubsim leaves `hardwareItems` out for a user who saved none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.hubsim.errors import ApiError, bad_request
from bot.hubsim.users import User, check_hardware

if TYPE_CHECKING:
    from bot.hubsim.service import HubService


def set_hardware(hub: HubService, name: str, items: Any, public: Any = True) -> User:
    """Save a user's hardware and its visibility, as their Hub settings would (400 when malformed)."""
    user = hub.users.users.get(name)
    if user is None:
        raise ApiError(404, f"User not found: {name}")
    if not isinstance(public, bool):
        raise bad_request("public must be a boolean")
    try:
        user.hardware = check_hardware(items)
    except ValueError as e:
        raise bad_request(str(e)) from None
    user.hardware_public = public
    hub.save_meta()
    return user


def overview(hub: HubService, user: User) -> dict[str, Any]:
    """`/api/users/{user}/overview` (counts of public repos, as anyone sees them)."""
    public = [repo for repo in hub.repos.values() if repo.owner == user.name and not repo.private]
    answer: dict[str, Any] = {
        "_id": user.id,
        "user": user.name,
        "fullname": user.fullname or user.name,
        "avatarUrl": "",
        "type": "user",
        "isPro": user.plan == "pro",
        "details": "",
        "numModels": sum(1 for repo in public if repo.type == "model"),
        "numDatasets": sum(1 for repo in public if repo.type == "dataset"),
        "numSpaces": sum(1 for repo in public if repo.type == "space"),
        "numLikes": sum(1 for repo in hub.repos.values() if user.name in repo.stats.likers),
        "numPapers": 0,
        "numUpvotes": 0,
        "numFollowers": 0,
        "numFollowing": 0,
        "orgs": [
            {"name": org.name, "fullname": org.name, "avatarUrl": "", "type": "org"}
            for org in hub.users.orgs_of(user)
        ],
    }
    if user.hardware_public and user.hardware:
        answer["hardwareItems"] = user.hardware
    return answer
