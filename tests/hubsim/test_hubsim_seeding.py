"""Many repos at once through `/_hubsim/seed`: what they hold, that cards are checked, that nothing is
announced by webhook, and that a bad item is refused by its index."""

from __future__ import annotations

import json
import uuid

import httpx

CONFIG = json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama"})


def _seed(hubsim, repos: list[dict[str, object]]) -> httpx.Response:
    return httpx.post(f"{hubsim.url}/_hubsim/seed", json={"repos": repos})


def test_seeded_repos_are_as_if_uploaded_and_listed_with_their_stats(hubsim, webhook_receiver):
    tag = uuid.uuid4().hex[:8]
    base = f"{hubsim.org}/seed-base-{tag}"
    tunes = [f"{hubsim.user}/seed-{tag}-{i}" for i in range(30)]
    hook = hubsim.server.register_webhook(webhook_receiver.url)
    try:
        answer = _seed(
            hubsim,
            [{"id": base, "files": {"README.md": "---\nlicense: mit\n---\n# base\n", "config.json": CONFIG}}]
            + [
                {
                    "id": tune,
                    "files": {"README.md": f"---\nbase_model: {base}\n---\n# tune\n", "config.json": CONFIG},
                    "stats": {"downloads": i, "likes": 30 - i},
                }
                for i, tune in enumerate(tunes)
            ],
        )
        assert answer.status_code == 200 and answer.json()["made"] == 31
        hubsim.api.create_repo(f"{hubsim.user}/seed-after-{tag}")  # a webhook for this, none for the seeding
        webhook_receiver.wait(lambda p: p["repo"]["name"].startswith(f"{hubsim.user}/seed-after"))
    finally:
        hubsim.server.webhooks.hooks.pop(hook.id)
        hubsim.api.delete_repo(f"{hubsim.user}/seed-after-{tag}")
    announced = {r.payload["repo"]["name"] for r in webhook_receiver.received}
    assert announced & {base, *tunes} == set()
    info = hubsim.api.model_info(tunes[3])
    assert [s.rfilename for s in info.siblings] == [".gitattributes", "README.md", "config.json"]
    assert info.sha == answer.json()["sha"][tunes[3]] and (info.downloads, info.likes) == (3, 27)
    assert len(list(hubsim.api.list_repo_commits(tunes[3]))) == 2  # the Hub's initial commit, then the files
    top = [
        m.id for m in hubsim.api.list_models(filter=f"base_model:finetune:{base}", sort="downloads", limit=3)
    ]
    assert top == tunes[-1:-4:-1]
    assert hubsim.api.model_info(base, expand=["childrenModelCount"]).children_model_count == {"finetune": 30}


def test_a_bad_item_is_refused_by_its_index_and_those_before_it_stay(hubsim):
    tag = uuid.uuid4().hex[:8]
    good, dup = f"{hubsim.user}/seed-ok-{tag}", f"{hubsim.user}/seed-dup-{tag}"
    card = {"README.md": "---\nbase_model: nobody/missing\n---\n"}
    answers = {
        "card": _seed(hubsim, [{"id": good}, {"id": f"{hubsim.user}/seed-card-{tag}", "files": card}]),
        "twice": _seed(hubsim, [{"id": dup}, {"id": dup}]),
        "namespace": _seed(hubsim, [{"id": f"nobody-{tag}/x"}]),
        "path": _seed(hubsim, [{"id": f"{hubsim.user}/seed-path-{tag}", "files": {"../x": "y"}}]),
        "shape": _seed(hubsim, [{"id": f"{hubsim.user}/seed-shape-{tag}", "colour": "red"}]),
        "empty": _seed(hubsim, []),
    }
    assert answers["card"].status_code == 400
    assert (
        answers["card"].json()["error"].startswith('repos[1]: Invalid metadata in README.md.\n- "base_model"')
    )
    assert answers["card"].json()["error"].endswith("(1 made before it)")
    assert answers["twice"].status_code == 409 and answers["twice"].json()["error"].startswith("repos[1]: ")
    assert all(answers[k].status_code in (400, 422) for k in ("namespace", "path", "shape", "empty"))
    assert hubsim.api.model_info(good).id == good
    for repo_id in (good, dup):
        hubsim.api.delete_repo(repo_id)
