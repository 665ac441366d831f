"""Demand: a base-model watch ranks the base's fine-tunes by the Hub's downloads and likes, builds the top
ones within its monthly budget, and skips what a trusted publisher already released. A real store, the real
Hub client on hubsim, the counts set through hubsim's admin route."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
from handler_support import Planner, push_payload, run_push

from bot.settings import load_settings
from handlers.demand import quantized_format
from handlers.router import HANDLED
from state import Store, WatchKind


def _card(base: str, relation: str, tags: str = "") -> bytes:
    return f"---\nbase_model: {base}\nbase_model_relation: {relation}\n{tags}---\n".encode()


def test_a_demand_watch_builds_the_most_used_fine_tunes_within_its_budget_and_skips_trusted_releases(
    hubsim, store: Store, repo_factory: Callable[..., str], payloads, tmp_path
) -> None:
    base = repo_factory("demand-base")
    tunes = {name: repo_factory(f"tune-{name}") for name in ("a", "b", "c", "d")}
    shas = {}
    for name, repo in tunes.items():
        card = _card(base, "finetune")
        shas[name] = hubsim.api.upload_file(path_or_fileobj=card, path_in_repo="README.md", repo_id=repo).oid
    counts = {"a": (900, 10), "b": (5000, 50), "c": (5000, 0), "d": (10, 99)}
    for name, (downloads, likes) in counts.items():
        answer = httpx.post(
            f"{hubsim.url}/_hubsim/models/{tunes[name]}/stats", json={"downloads": downloads, "likes": likes}
        )
        assert answer.status_code == 200, answer.text

    def quantization(name: str, files: dict[str, bytes], token: str) -> None:
        repo = repo_factory(name, token=token)
        api = hubsim.api_for(token)
        for path, data in files.items():
            api.upload_file(path_or_fileobj=data, path_in_repo=path, repo_id=repo)

    trusted = hubsim.other_token
    # b's FP8 by its tags; c's GPTQ by its quantization config and its FP8 by its name
    b_files = {"README.md": _card(tunes["b"], "quantized", "tags: [fp8]\n")}
    quantization("b-quant", b_files, trusted)
    gptq = {"quantization_config": {"quant_method": "gptq", "bits": 4}}
    c_files = {"README.md": _card(tunes["c"], "quantized"), "config.json": json.dumps(gptq).encode()}
    quantization("c-quant", c_files, trusted)
    quantization("c-FP8", {"README.md": _card(tunes["c"], "quantized")}, trusted)
    # a's GPTQ by a publisher nobody trusts: a is still built in GPTQ
    quantization("a-GPTQ", {"README.md": _card(tunes["a"], "quantized")}, hubsim.token)

    store.watches.add(WatchKind.BASE_MODEL, base, formats=["fp8", "gptq"], demand=True, monthly_budget=2)
    planner = Planner(load_settings(None, data_dir=tmp_path), {"fp8": [90], "gptq": [90]})
    options = {"trusted_publishers": (hubsim.other_user,), "demand_monthly_budget": 3}

    # a new fine-tune (d) ranks them all
    def push(name: str) -> str:
        return run_push(hubsim, store, push_payload(payloads, tunes[name], shas[name]), planner, **options)

    assert push("d") == HANDLED
    built = {n: sorted(j.spec["format"] for j in store.jobs.list(repo=repo)) for n, repo in tunes.items()}
    assert built == {"a": ["fp8", "gptq"], "b": ["gptq"], "c": [], "d": []}
    [watch] = store.watches.list()
    other = hubsim.other_user
    assert [(c["repo"], c["downloads"], c["likes"], c["reason"]) for c in watch.ranking or []] == [
        (tunes["b"], 5000, 50, f"built (gptq); fp8 already released by {other}"),  # a tie: more likes first
        (tunes["c"], 5000, 0, f"fp8 already released by {other}; gptq already released by {other}"),
        (tunes["a"], 900, 10, "built (fp8, gptq)"),  # c cost no budget: a is within it
        (tunes["d"], 10, 99, "over budget"),
    ]
    assert {c["sha"] for c in watch.ranking or []} == set(shas.values())

    # ranked again later in the month: what was built counts against the budget, nothing is queued twice
    assert push("a") == HANDLED
    [watch] = store.watches.list()
    reasons = [c["reason"] for c in watch.ranking or []]
    assert (reasons[0], reasons[2], reasons[3]) == ("built this month", "built this month", "over budget")
    assert sum(len(store.jobs.list(repo=repo)) for repo in tunes.values()) == 3


def test_a_plain_base_model_watch_still_builds_every_fine_tune(
    hubsim, store: Store, repo_factory: Callable[..., str], payloads, tmp_path
) -> None:
    base, tune = repo_factory("plain-base"), repo_factory("plain-tune")
    card = _card(base, "finetune")
    sha = hubsim.api.upload_file(path_or_fileobj=card, path_in_repo="README.md", repo_id=tune).oid
    store.watches.add(WatchKind.BASE_MODEL, base, formats=["gptq"])
    planner = Planner(load_settings(None, data_dir=tmp_path), {"gptq": [90]})
    assert run_push(hubsim, store, push_payload(payloads, tune, sha), planner) == HANDLED
    assert len(store.jobs.list(repo=tune)) == 1 and store.watches.list()[0].ranking is None


def test_a_quantized_repos_format_is_read_from_tags_then_config_then_name() -> None:
    class Model:
        def __init__(self, id: str, tags: list[str], config: dict | None = None) -> None:
            self.id, self.tags, self.config = id, tags, config

    assert quantized_format(Model("org/x", ["nvfp4", "base_model:quantized:org/fp8-tune"])) == "nvfp4"
    awq = {"quantization_config": {"quant_method": "modelopt", "quant_algo": "W4A8_AWQ"}}
    assert quantized_format(Model("org/x-gptq", [], awq)) == "w4a8_awq"
    assert quantized_format(Model("org/x-AWQ", [])) == "int4_awq"
    assert quantized_format(Model("org/x", ["base_model:quantized:org/fp8-tune"])) is None
