"""`/formats` for one GPU: named (`--gpu L4`), by SM (`--sm 89`), or the one the requester made public on
their Hub profile; the answer names the runtimes of the runtime table that run each release on it."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from handler_support import Planner, answer, context, push_payload

from bot.settings import load_settings
from state import Store


def test_formats_for_one_gpu_named_by_sm_or_from_the_profile(
    hubsim, store: Store, repo_factory: Callable[..., str], payloads, tmp_path
) -> None:
    repo = repo_factory("model")
    sha = hubsim.api.upload_file(path_or_fileobj=b"{}", path_in_repo="config.json", repo_id=repo).oid
    planner = Planner(
        load_settings(None, data_dir=tmp_path), {"fp8": [89, 90], "gptq": [89, 90], "nvfp4": [100]}
    )
    ctx = context(hubsim, store, push_payload(payloads, repo, sha), planner)
    num = hubsim.other_api.create_discussion(repo, "Which release for my GPU?").num

    def ask(text: str) -> str:
        return answer(hubsim, ctx, num, text)

    l4 = ask("/formats --gpu L4")
    assert l4.startswith(f"On `L4` (sm89), releases of `{repo}`")
    lines = {line.split("**")[1]: line for line in l4.splitlines() if line.startswith("- **")}
    assert "vLLM" in lines["gptq"] and "planned" in lines["gptq"]
    assert "not eligible" in lines["int4_awq"]
    assert "No runtime" not in l4  # on sm89 every format has one
    a100 = ask("/formats --gpu NVIDIA A100")
    assert a100.startswith("On `NVIDIA A100` (sm80)") and a100.splitlines()[-1].endswith(
        "`w4a8_awq` on sm80."
    )
    assert ask("/formats --sm 89").startswith("On sm89,")
    assert "I don't know the GPU `Voodoo 5`" in ask("/formats --gpu Voodoo 5")
    assert "Not eligible" in ask("/formats")  # no hardware saved: every SM, as before

    item = {"sku": ["GPU", "NVIDIA", "RTX 4090"], "mem": 24, "num": 1, "isPrimary": True}
    saved = httpx.put(f"{hubsim.url}/_hubsim/users/{hubsim.other_user}/hardware", json={"items": [item]})
    assert saved.status_code == 200
    try:
        mine = ask("/formats")
        assert mine.startswith(f"On the RTX 4090 on @{hubsim.other_user}'s Hub profile (sm89)")
    finally:
        httpx.put(f"{hubsim.url}/_hubsim/users/{hubsim.other_user}/hardware", json={"items": []})
