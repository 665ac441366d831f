"""Users, their tokens, and orgs: who is calling, and in which namespaces they may write.

Rules (the Hub's, simplified): a user writes in their own namespace and in every org they belong to; a
token with role `read` writes nowhere; anyone authenticated may open discussions and pull requests on a
repo they can see. A users file (JSON or TOML) looks like::

    users = [{name = "alice", token = "hf_alice", plan = "pro"},
             {name = "bob", token = "hf_bob", role = "read"}]
    orgs = [{name = "acme", members = ["alice"]}]

A user's `plan` (default `free`) sets its rate limits (`ratelimit.PLANS`); `hardware` is what it saved in
its Hub settings (`[{sku = ["GPU", "NVIDIA", "L4"], mem = 24, num = 1, isPrimary = true}]`, see
`profiles`), shown on its public overview unless `hardware_public = false`.
"""

from __future__ import annotations

import json
import re
import secrets
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bot.errors import ConfigError
from bot.hubsim.gitobjects import stable_object_id
from bot.hubsim.ratelimit import USER_PLANS

DEFAULT_USER = "hubsim-user"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")


def new_token() -> str:
    """A token shaped like the Hub's (`hf_` + 34 letters and digits)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    return "hf_" + "".join(secrets.choice(alphabet) for _ in range(34))


@dataclass
class User:
    """A Hub user, the one token it authenticates with, its plan (its rate limits, `isPro`) and the hardware
    saved in its settings (`profiles`: public unless `hardware_public` is false)."""

    name: str
    token: str
    role: str = "write"
    fullname: str | None = None
    plan: str = "free"
    hardware: list[dict[str, Any]] = field(default_factory=list)
    hardware_public: bool = True

    @property
    def id(self) -> str:
        return stable_object_id("user", self.name)


@dataclass
class Org:
    """An organisation; every member may write in its namespace."""

    name: str
    members: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return stable_object_id("org", self.name)


class Directory:
    """All users and orgs, looked up by token or by name."""

    def __init__(self, users: list[User], orgs: list[Org] | None = None) -> None:
        self.users = {u.name: u for u in users}
        self.orgs = {o.name: o for o in orgs or []}
        self._by_token = {u.token: u for u in users}
        self._check()

    def _check(self) -> None:
        if not self.users:
            raise ConfigError("hubsim needs at least one user")
        if len(self._by_token) != len(self.users):
            raise ConfigError("hubsim users must have distinct tokens")
        for name in [*self.users, *self.orgs]:
            if not _NAME.fullmatch(name):
                raise ConfigError(f"invalid hubsim user or org name: {name!r}")
        if clash := set(self.users) & set(self.orgs):
            raise ConfigError(f"names used by both a user and an org: {sorted(clash)}")
        for org in self.orgs.values():
            if unknown := [m for m in org.members if m not in self.users]:
                raise ConfigError(f"org {org.name} lists unknown members: {unknown}")

    @classmethod
    def single(cls, name: str = DEFAULT_USER, token: str | None = None) -> Directory:
        """One user (the default when no users file is given); a fresh token unless one is set."""
        return cls([User(name, token or new_token())])

    @classmethod
    def load(cls, path: Path) -> Directory:
        """Read a users file (`.toml`, else JSON)."""
        try:
            text = path.read_text()
            data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        except (OSError, ValueError) as e:
            raise ConfigError(f"cannot read hubsim users file {path}: {e}") from e
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Any, source: str = "users") -> Directory:
        """Build from `{"users": [{name, token, role?, fullname?, plan?, hardware?, hardware_public?}],
        "orgs": [{name, members}]}`."""
        try:
            users = [User(**u) for u in data["users"]]
            orgs = [Org(**o) for o in data.get("orgs", [])]
        except (KeyError, TypeError) as e:
            raise ConfigError(
                f"{source}: expected users = [{{name, token}}] and orgs = [{{name, members}}] ({e})"
            ) from e
        if bad := [u.name for u in users if u.role not in ("read", "write")]:
            raise ConfigError(f"{source}: role must be 'read' or 'write' (users {bad})")
        if bad := [u.name for u in users if u.plan not in USER_PLANS]:
            raise ConfigError(f"{source}: plan must be one of {', '.join(USER_PLANS)} (users {bad})")
        for user in users:
            try:
                user.hardware = check_hardware(user.hardware)
            except ValueError as e:
                raise ConfigError(f"{source}: user {user.name}: {e}") from e
        return cls(users, orgs)

    def to_dict(self) -> dict[str, Any]:
        """The inverse of `from_dict`, for persistence."""
        return {
            "users": [asdict(u) for u in self.users.values()],
            "orgs": [asdict(o) for o in self.orgs.values()],
        }

    def by_token(self, token: str) -> User | None:
        """The user a token belongs to."""
        return self._by_token.get(token)

    def orgs_of(self, user: User) -> list[Org]:
        """The orgs `user` is a member of."""
        return [o for o in self.orgs.values() if user.name in o.members]

    def namespace_exists(self, namespace: str) -> bool:
        """True for every user and org name."""
        return namespace in self.users or namespace in self.orgs

    def canonical(self, namespace: str) -> str:
        """A user or org name as it was registered, whatever its case (names are case-insensitive)."""
        lowered = namespace.lower()
        return next((n for n in (*self.users, *self.orgs) if n.lower() == lowered), namespace)

    def can_write(self, user: User | None, namespace: str) -> bool:
        """Whether `user` may create and change repos in `namespace`."""
        if user is None or user.role != "write":
            return False
        return namespace == user.name or user.name in self.orgs.get(namespace, Org(namespace)).members

    def can_read_private(self, user: User | None, namespace: str) -> bool:
        """Whether `user` may see private repos of `namespace` (its owner and the org's members)."""
        return user is not None and (
            namespace == user.name or user.name in self.orgs.get(namespace, Org("")).members
        )

    def owner_id(self, namespace: str) -> str:
        """The object id of the user or org owning a namespace."""
        return stable_object_id("org" if namespace in self.orgs else "user", namespace)

    def whoami(self, user: User) -> dict[str, Any]:
        """The `/api/whoami-v2` answer."""
        return {
            "type": "user",
            "id": user.id,
            "name": user.name,
            "fullname": user.fullname or user.name,
            "email": None,
            "emailVerified": False,
            "isPro": user.plan == "pro",
            "canPay": False,
            "avatarUrl": "",
            "periodEnd": None,
            "orgs": [
                {
                    "type": "org",
                    "id": o.id,
                    "name": o.name,
                    "fullname": o.name,
                    "roleInOrg": "write",
                    "isEnterprise": False,
                    "avatarUrl": "",
                }
                for o in self.orgs_of(user)
            ],
            "auth": {"type": "access_token", "accessToken": {"displayName": "hubsim", "role": user.role}},
        }


HARDWARE_TYPES = ("GPU", "CPU", "Apple Silicon")
_ITEM_KEYS = {"sku", "mem", "num", "isPrimary"}


def check_hardware(items: Any) -> list[dict[str, Any]]:
    """Hardware items as the Hub keeps them (ValueError naming what is wrong)."""
    if not isinstance(items, list):
        raise ValueError("hardware must be a list of items")
    checked = []
    for i, item in enumerate(items):
        where = f"hardware[{i}]"
        if not isinstance(item, dict) or set(item) - _ITEM_KEYS:
            raise ValueError(f"{where} must be an object with keys among {sorted(_ITEM_KEYS)}")
        sku, mem, num = item.get("sku"), item.get("mem"), item.get("num", 1)
        if not (isinstance(sku, list) and len(sku) == 3 and all(isinstance(s, str) and s for s in sku)):
            raise ValueError(f"{where}.sku must be [type, provider, model]")
        if sku[0] not in HARDWARE_TYPES:
            raise ValueError(f"{where}.sku's type must be one of {', '.join(HARDWARE_TYPES)}")
        if not isinstance(mem, int | float) or isinstance(mem, bool) or mem <= 0:
            raise ValueError(f"{where}.mem must be its memory in GB")
        if not isinstance(num, int) or isinstance(num, bool) or num < 1:
            raise ValueError(f"{where}.num must be a number of units >= 1")
        checked.append(
            {
                "sku": list(sku),
                "mem": mem,
                "num": num,
                **({"isPrimary": True} if item.get("isPrimary") is True else {}),
            }
        )
    if sum(1 for item in checked if "isPrimary" in item) > 1:
        raise ValueError("only one hardware item can be the primary one")
    return checked
