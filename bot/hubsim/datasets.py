"""The calibration dataset hubsim holds from the start, as the real Hub holds ModelOpt's default.

quantbot's default calibration set is ModelOpt's: the "3.0.0" config of `abisee/cnn_dailymail`, its
"article" column, train split, read with the `datasets` library through HF_ENDPOINT. hubsim has no copy
of that corpus, so `quantbot hubsim` and `quantbot demo` publish a small stand-in under the same id, with
the same config, split and column, made from the public-domain text shipped with the builders (one row
per paragraph). Its card says what it is, and a release's manifest records the dataset's revision sha,
so a build calibrated on the stand-in never passes for one calibrated on the real corpus.

The dataset repo is served by hubsim's ordinary routes (dataset info, revision, tree, paths-info,
resolve with ranges), which are the ones `datasets` calls. Its data file is stored in hubsim's Xet
storage, as the Hub stores datasets' data files, so a build downloads it through Xet.
"""

from __future__ import annotations

import json
import secrets
from importlib import resources

from bot.hubsim.service import Changes, HubService
from bot.hubsim.store import INITIAL_GITATTRIBUTES
from bot.hubsim.users import Org, User
from bot.hubsim.xet import hashes
from builders.spec import DEFAULT_CALIBRATION, DEFAULT_CALIBRATION_CONFIG, DEFAULT_CALIBRATION_FIELD

SPLIT = "train"
DATA_FILE = f"{DEFAULT_CALIBRATION_CONFIG}/{SPLIT}-00000-of-00001.jsonl"
GITATTRIBUTES = INITIAL_GITATTRIBUTES + b"*.jsonl filter=lfs diff=lfs merge=lfs -text\n"


def calibration_rows() -> list[str]:
    """The shipped calibration text, one row per paragraph."""
    text = (resources.files("builders") / "data" / "calibration.txt").read_text(encoding="utf-8")
    return [" ".join(p.split()) for p in text.split("\n\n") if p.strip()]


def dataset_card(rows: int) -> str:
    return f"""---
language:
- en
license: other
pretty_name: hubsim stand-in for {DEFAULT_CALIBRATION}
configs:
- config_name: "{DEFAULT_CALIBRATION_CONFIG}"
  data_files:
  - split: {SPLIT}
    path: "{DEFAULT_CALIBRATION_CONFIG}/{SPLIT}-*"
---
# A stand-in for {DEFAULT_CALIBRATION} on hubsim

This is **not** the CNN / Daily Mail corpus. hubsim, quantbot's local Hub, publishes it under the id of
ModelOpt's default calibration set so that builds with the default calibration run offline. It holds
{rows} rows of public-domain text shipped with quantbot (Lewis Carroll, *Alice's Adventures in
Wonderland*, chapters I-VII), one paragraph per row, in the `{DEFAULT_CALIBRATION_FIELD}` column of the
`{DEFAULT_CALIBRATION_CONFIG}` config's `{SPLIT}` split, as the real dataset lays out its articles.
"""


def publish_calibration_dataset(hub: HubService) -> str:
    """Create the stand-in (once; a hub restarted from its data dir keeps it); return its commit sha."""
    namespace, name = DEFAULT_CALIBRATION.split("/")
    with hub.lock:
        existing = hub.repos.get(("dataset", DEFAULT_CALIBRATION))
        if existing is not None:
            return existing.resolve("main").oid
        if not hub.users.namespace_exists(namespace):
            hub.users.orgs[namespace] = Org(namespace, [])  # an org nobody else may write to
            hub.save_meta()
        owner = User(namespace, "hf_hubsim_seed_" + secrets.token_hex(8))  # in no directory: no login
        hub.create_repo(owner, "dataset", name, namespace, private=False)
        rows = calibration_rows()
        data = "".join(
            json.dumps({"id": f"{i:05d}", DEFAULT_CALIBRATION_FIELD: row}) + "\n"
            for i, row in enumerate(rows)
        )
        stored = hub.xet.add_file(data.encode())
        changes = Changes(
            puts={"README.md": dataset_card(len(rows)).encode(), ".gitattributes": GITATTRIBUTES},
            lfs_puts={DATA_FILE: (hashes.to_hex(stored.sha256 or b""), stored.size)},
        )
        commit, _ = hub.commit(
            owner,
            "dataset",
            DEFAULT_CALIBRATION,
            "main",
            changes,
            "Add the calibration stand-in",
            "",
            None,
            create_pr=False,
        )
        return commit.oid
