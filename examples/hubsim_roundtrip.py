"""A plain huggingface_hub round trip against hubsim (or any Hub): nothing here knows about quantbot.

    quantbot hubsim --port 8765            # prints its user and token
    export HF_ENDPOINT=http://127.0.0.1:8765 HF_TOKEN=<the printed token>
    python examples/hubsim_roundtrip.py

It creates a repo, uploads a folder as a pull request, merges it, downloads a snapshot, and checks that a
missing repo raises `RepositoryNotFoundError`. Exit code 0 means every step did what the Hub would do.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import uuid
from pathlib import Path

from huggingface_hub import HfApi, snapshot_download
from huggingface_hub.errors import RepositoryNotFoundError

FILES = {
    "README.md": "---\nlicense: apache-2.0\n---\n# Round trip\n",
    "config.json": json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama"}),
    "weights/part-1.bin": "0123456789" * 100,
}


def main() -> int:
    if not os.environ.get("HF_ENDPOINT") or not os.environ.get("HF_TOKEN"):
        print("set HF_ENDPOINT and HF_TOKEN first (quantbot hubsim prints both)", file=sys.stderr)
        return 2
    api = HfApi()
    user = api.whoami()["name"]
    repo_id = f"{user}/roundtrip-{uuid.uuid4().hex[:8]}"
    print(f"endpoint {api.endpoint}, user {user}")

    print(f"create repo: {api.create_repo(repo_id)}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp, "model")
        for name, text in FILES.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text)
        commit = api.upload_folder(
            repo_id=repo_id, folder_path=folder, create_pr=True, commit_message="Add model"
        )
        print(f"opened PR #{commit.pr_num}: {commit.pr_url}")

        if api.get_discussion_details(repo_id, commit.pr_num).status == "draft":
            api.change_discussion_status(repo_id, commit.pr_num, "open")  # publish the draft before merging
        api.merge_pull_request(repo_id, commit.pr_num, comment="Looks good.")
        details = api.get_discussion_details(repo_id, commit.pr_num)
        print(f"PR #{commit.pr_num} is {details.status}, merge commit {details.merge_commit_oid}")
        if details.status != "merged" or details.merge_commit_oid != api.model_info(repo_id).sha:
            print("merge did not land on main", file=sys.stderr)
            return 1

        snapshot = Path(snapshot_download(repo_id, cache_dir=Path(tmp, "cache")))
        got = {str(p.relative_to(snapshot)): p.read_text() for p in snapshot.rglob("*") if p.is_file()}
        missing = {name for name, text in FILES.items() if got.get(name) != text}
        print(f"snapshot {snapshot.name}: {sorted(got)}")
        if missing:
            print(f"snapshot lacks or differs on {sorted(missing)}", file=sys.stderr)
            return 1

    try:
        api.model_info(f"{user}/no-such-repo-{uuid.uuid4().hex[:8]}")
    except RepositoryNotFoundError:
        print("missing repo: RepositoryNotFoundError, as expected")
    else:
        print("a missing repo was found", file=sys.stderr)
        return 1
    api.delete_repo(repo_id)
    print("round trip OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
