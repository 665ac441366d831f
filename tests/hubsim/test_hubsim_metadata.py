"""Card metadata refused as the Hub refuses it: in `validate-yaml` and in the commit itself."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

VALID = """---
license: llama3.1
base_model:
- {base}
base_model_relation: quantized
model-index:
- name: tiny-fp8
  results:
  - task:
      type: text-generation
    dataset:
      name: WikiText-2
      type: wikitext
      config: wikitext-2-raw-v1
      split: test
    metrics:
    - type: perplexity
      value: 12.5
      name: Perplexity
    source:
      url: https://example.org/eval
---
# tiny
"""


def _validate(hubsim, content: str, repo_type: str = "model") -> tuple[int, list[str]]:
    answer = httpx.post(
        f"{hubsim.url}/api/validate-yaml",
        json={"content": content, "repoType": repo_type},
        headers={"authorization": f"Bearer {hubsim.token}"},
    )
    assert answer.json()["warnings"] == []
    return answer.status_code, [e["message"] for e in answer.json()["errors"]]


def _card(**fields: object) -> str:
    return "---\n" + json.dumps(fields) + "\n---\n# card\n"  # JSON is YAML


def test_a_complete_card_is_valid(hubsim, base_model):
    assert _validate(hubsim, VALID.format(base=base_model)) == (200, [])
    assert _validate(hubsim, VALID.format(base=base_model.upper())) == (200, [])  # ids are case-insensitive


def test_licence_must_be_one_of_the_hubs_ids(hubsim):
    status, [message] = _validate(hubsim, _card(license="Apache 2.0"))
    assert status == 400
    assert message.startswith('"license" must be one of [apache-2.0, mit, openrail, ')
    assert message.endswith(", gemma, unknown, other]")
    assert _validate(hubsim, _card(license=["mit", "nope"]))[1][0].startswith('"license[1]" must be one of [')


def test_base_model_must_be_a_model_that_exists(hubsim, base_model):
    assert _validate(hubsim, _card(base_model="/workspace/llama")) == (
        400,
        [
            '"base_model" with value "/workspace/llama" is not valid. Use a model id from https://hf.co/models.'
        ],
    )
    assert _validate(hubsim, _card(base_model=[base_model, "nobody/missing"]))[1] == [
        '"base_model" with value "nobody/missing" is not valid. Use a model id from https://hf.co/models.'
    ]
    assert _validate(hubsim, _card(base_model="nobody/missing"), repo_type="dataset") == (200, [])


def test_private_base_model_is_valid_only_for_who_can_see_it(hubsim, repo_factory):
    private = repo_factory("private-base", private=True)
    assert _validate(hubsim, _card(base_model=private)) == (200, [])
    answer = httpx.post(f"{hubsim.url}/api/validate-yaml", json={"content": _card(base_model=private)})
    assert answer.status_code == 400


def test_new_version_must_be_one_model_that_exists(hubsim, base_model):
    assert _validate(hubsim, _card(new_version=base_model)) == (200, [])
    assert _validate(hubsim, _card(new_version="nobody/successor")) == (
        400,
        [
            '"new_version" with value "nobody/successor" is not valid. Use a model id from https://hf.co/models.'
        ],
    )
    assert _validate(hubsim, _card(new_version=[base_model]))[0] == 400  # one id, not a list


def test_base_model_relation_values(hubsim, base_model):
    for relation in ("adapter", "merge", "quantized", "finetune"):
        assert _validate(hubsim, _card(base_model=base_model, base_model_relation=relation)) == (200, [])
    assert _validate(hubsim, _card(base_model=base_model, base_model_relation="quantised")) == (
        400,
        ['"base_model_relation" must be one of [adapter, merge, quantized, finetune]'],
    )


@pytest.mark.parametrize(
    ("model_index", "errors"),
    [
        ({"name": "x"}, ['"model-index" must be an array']),
        ([{"results": []}], ['"model-index[0].name" is required']),
        ([{"name": "x"}], ['"model-index[0].results" is required']),
        (
            [{"name": "x", "results": [{"task": {}, "dataset": {"name": "d", "type": "d"}, "metrics": {}}]}],
            [
                '"model-index[0].results[0].task.type" is required',
                '"model-index[0].results[0].metrics" must be an array',
            ],
        ),
        (
            [
                {
                    "name": "x",
                    "results": [
                        {
                            "task": {"type": "t"},
                            "dataset": {"name": "d", "type": "d", "config": {"a": 1}},
                            "metrics": [{"type": "acc", "config": {"scale": 5}}],
                            "source": {"name": "s"},
                        }
                    ],
                }
            ],
            [
                '"model-index[0].results[0].dataset.config" must be a string',
                '"model-index[0].results[0].metrics[0].value" is required',
                '"model-index[0].results[0].metrics[0].config" must be a string',
                '"model-index[0].results[0].source.url" is required',
            ],
        ),
    ],
)
def test_model_index_schema(hubsim, model_index, errors):
    assert _validate(hubsim, _card(**{"model-index": model_index})) == (400, errors)


def test_the_client_refuses_a_bad_card_before_uploading_anything(hubsim, repo_factory, tmp_path):
    """`upload_folder` validates README.md first: no weights go up when the Hub would refuse the card."""
    repo_id = repo_factory()
    folder = tmp_path / "release"
    folder.mkdir()
    (folder / "README.md").write_text(_card(license="apache2"))
    (folder / "model.safetensors").write_bytes(b"\x00" * 4096)
    hubsim.server.requests.clear()
    with pytest.raises(ValueError, match=r'Invalid metadata in README.md.\n- "license" must be one of \['):
        hubsim.api.upload_folder(repo_id=repo_id, folder_path=folder)
    assert [path for _, path, _ in hubsim.server.requests] == ["/api/validate-yaml"]


def test_the_commit_endpoint_refuses_a_bad_card_too(hubsim, repo_factory):
    """A client that skips validate-yaml still cannot commit it (the Hub checks on commit)."""
    repo_id = repo_factory()
    card = base64.b64encode(_card(base_model_relation="copy").encode()).decode()
    lines = [
        {"key": "header", "value": {"summary": "card"}},
        {"key": "file", "value": {"path": "README.md", "content": card, "encoding": "base64"}},
    ]
    answer = httpx.post(
        f"{hubsim.url}/api/models/{repo_id}/commit/main",
        content="\n".join(json.dumps(line) for line in lines),
        headers={"authorization": f"Bearer {hubsim.token}", "content-type": "application/x-ndjson"},
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == (
        "Invalid metadata in README.md.\n"
        '- "base_model_relation" must be one of [adapter, merge, quantized, finetune]'
    )
