"""The model tree as the Hub serves it: `baseModels` and `childrenModelCount` through `model_info(expand=)`,
the `base_model:<relation>:<id>` filters, and the model page's tree, counts and "newer version" notice."""

from __future__ import annotations

import json

import httpx
import pytest
from huggingface_hub import CommitOperationAdd


def _card(**meta: object) -> bytes:
    return ("---\n" + json.dumps(meta) + "\n---\n# card\n").encode()


@pytest.fixture
def tree(hubsim, repo_factory):
    """A base model and one child of each relation the Hub knows (the finetune's and adapter's inferred)."""
    base, other = repo_factory("tree-base"), repo_factory("tree-other")
    children = {
        relation: repo_factory(f"tree-{relation}") for relation in ("quantized", "finetune", "adapter")
    }
    children["merge"] = repo_factory("tree-merge")
    hubsim.api.upload_file(
        repo_id=children["quantized"],
        path_or_fileobj=_card(base_model=base, base_model_relation="quantized"),
        path_in_repo="README.md",
    )
    hubsim.api.upload_file(
        repo_id=children["finetune"], path_or_fileobj=_card(base_model=base), path_in_repo="README.md"
    )
    hubsim.api.create_commit(
        children["adapter"],
        [
            CommitOperationAdd("README.md", _card(base_model=base)),
            CommitOperationAdd("adapter_config.json", b'{"r": 8}'),
        ],
        commit_message="LoRA",
    )
    hubsim.api.upload_file(
        repo_id=children["merge"], path_or_fileobj=_card(base_model=[base, other]), path_in_repo="README.md"
    )
    return base, children


def test_model_info_expands_base_models_and_children_counts(hubsim, tree):
    base, children = tree
    counts = hubsim.api.model_info(base, expand=["childrenModelCount"]).children_model_count
    assert counts == {"quantized": 1, "finetune": 1, "adapter": 1, "merge": 1}
    quant = hubsim.api.model_info(children["quantized"], expand=["baseModels", "cardData"])
    assert quant.base_models["relation"] == "quantized"
    assert quant.base_models["models"] == [{"_id": hubsim.server.repos[("model", base)].id, "id": base}]
    assert quant.card_data["base_model"] == base
    assert hubsim.api.model_info(base, expand=["baseModels"]).base_models is None


def test_list_models_finds_each_relation_by_its_tag(hubsim, tree):
    base, children = tree
    for relation, child in children.items():
        assert [m.id for m in hubsim.api.list_models(filter=f"base_model:{relation}:{base}")] == [child]
    assert sorted(m.id for m in hubsim.api.list_models(filter=f"base_model:{base}")) == sorted(
        children.values()
    )


def test_the_base_models_page_counts_its_children_by_relation(hubsim, tree):
    base, children = tree
    page = httpx.get(f"{hubsim.url}/{base}").text
    for label in ("Quantizations (1)", "Finetunes (1)", "Adapters (1)", "Merges (1)"):
        assert label in page
    assert page.index("Quantizations") < page.index("Finetunes") < page.index("Adapters")


def test_the_page_of_an_old_version_links_the_latest_one(hubsim, repo_factory):
    v1, v2, v3 = repo_factory("v1"), repo_factory("v2"), repo_factory("v3")
    hubsim.api.upload_file(repo_id=v2, path_or_fileobj=_card(new_version=v3), path_in_repo="README.md")
    hubsim.api.upload_file(repo_id=v1, path_or_fileobj=_card(new_version=v2), path_in_repo="README.md")
    page = httpx.get(f"{hubsim.url}/{v1}").text
    assert f'A newer version of this model is available: <a href="/{v3}">{v3}</a>' in page  # the chain's end
    assert "newer version" not in httpx.get(f"{hubsim.url}/{v3}").text
    assert hubsim.api.model_info(v1).card_data["new_version"] == v2
    with pytest.raises(ValueError, match='"new_version" with value "nobody/v9" is not valid'):
        hubsim.api.upload_file(
            repo_id=v3, path_or_fileobj=_card(new_version="nobody/v9"), path_in_repo="README.md"
        )
